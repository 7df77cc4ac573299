"""``python -m napari_deblur``: the same as the ``napari-deblur`` command."""

import sys

from ._cli import main

sys.exit(main())

"""napari-deblur: deblur images with a measured point spread function.

The public API is :func:`deblur` (and its step-by-step form
:func:`deblur_steps`) and :func:`prepare_psf`; the engine underneath lives in
:mod:`napari_deblur.engine`.
"""

from ._api import METHODS, Progress, deblur, deblur_steps, prepare_psf

__version__ = "0.1.0"

__all__ = ["METHODS", "Progress", "__version__", "deblur", "deblur_steps", "prepare_psf"]

"""napari-deblur: deblur images with a measured point spread function.

The public API is :func:`deblur` (and its step-by-step form
:func:`deblur_steps`) and :func:`psf_from_point_source`; the engine
underneath lives in :mod:`napari_deblur.engine`.
"""

from ._api import METHODS, Plan, Progress, deblur, deblur_steps
from .engine.point_source import PointSourcePSF, PSFQualityWarning, psf_from_point_source

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "PSFQualityWarning",
    "Plan",
    "PointSourcePSF",
    "Progress",
    "__version__",
    "deblur",
    "deblur_steps",
    "psf_from_point_source",
]

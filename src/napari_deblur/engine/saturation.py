"""Clipped samples: at the sensor's saturation level a pixel no longer measures the blur.

A lamp or a specular highlight brighter than the sensor's range is recorded
at the range's top, whatever its true brightness: fitting a blur model to
those pixels makes the solver darken the light and ring round it. Such
samples are left out of the data term (Whyte et al. 2014), and the scene
there is filled in by the prior and the unclipped pixels round it.

References
----------
.. [1] O. Whyte, J. Sivic and A. Zisserman, "Deblurring shaken and
   partially saturated images", IJCV 110(2), 185-201, 2014.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Samples at or above this fraction of the saturation level count as
#: clipped: compression and demosaicing smear the flat top by a few levels.
NEAR_SATURATION = 0.99


#: The largest values of sensors of 8, 10, 12 and 14 bits, stored in wider
#: integer types.
ADC_TOPS = {2**bits - 1 for bits in (8, 10, 12, 14)}
#: Samples at a sensor's largest value that make a clipped plateau: a light
#: that merely peaks there reaches it once or twice.
PLATEAU = 3


def saturation_level(raw: np.ndarray, saturation: float | str | None = "auto") -> float | None:
    """Value at or above which a sample of `raw` is clipped, if it can be known.

    Parameters
    ----------
    raw : ndarray
        Pixels as stored.
    saturation : float, 'auto' or None
        The level itself; ``'auto'``: the largest value of an integer type,
        or of a sensor of 8, 10, 12 or 14 bits in a wider one that at least
        :data:`PLATEAU` samples reach (:data:`ADC_TOPS`);
        1.0 for floating data up to 1 that reach it in more than one sample
        (a clipped plateau: data scaled to their maximum reach it once);
        unknown otherwise; None: never clipped.

    Returns
    -------
    float or None
        The level, None where there is none.
    """
    if saturation is None:
        return None
    if isinstance(saturation, str) and saturation != "auto":
        raise ValueError(f"saturation must be a number, 'auto' or None, got {saturation!r}")
    if saturation != "auto":
        level = float(saturation)
        if not level > 0:
            raise ValueError(f"saturation must be positive, 'auto' or None, got {saturation}")
        return level
    if raw.dtype.kind in "iu":
        if raw.size and raw.dtype.itemsize > 1:
            # A camera of fewer bits than its file's type tops out at its own
            # largest value: a plateau there is clipped (a 12-bit sensor's
            # 4095 in a 16-bit file was taken for light).
            top = int(raw.max())
            if top in ADC_TOPS and np.count_nonzero(raw == top) >= PLATEAU:
                return float(top)
        return float(np.iinfo(raw.dtype).max)
    if raw.dtype.kind == "f" and raw.size and float(raw.max()) == 1.0:
        return 1.0 if np.count_nonzero(raw == 1.0) > 1 else None
    return None


def clipped_mask(raw: np.ndarray, saturation: float | str | None = "auto") -> np.ndarray | None:
    """True where a sample of `raw` is at or near the saturation level.

    Parameters
    ----------
    raw : ndarray
        Pixels as stored (encoded values: clipping happens on the sensor's
        output, before any decoding).
    saturation : float, 'auto' or None
        See :func:`saturation_level`.

    Returns
    -------
    ndarray of bool or None
        The clipped samples, or None when none are.
    """
    level = saturation_level(raw, saturation)
    if level is None:
        return None
    clipped = raw >= NEAR_SATURATION * level
    return clipped if clipped.any() else None


def clipped_regions(clipped: np.ndarray, psf_shape: tuple[int, ...]) -> np.ndarray | None:
    """The clipped samples that form regions: lights and highlights, not noise.

    Where the scene is just below the sensor's level, noise pushes single
    samples over it: those are left out of the fit, but their true blur may
    lie below what they recorded. Regions of at least a quarter of the
    PSF's support are light truly brighter than the range (a lamp blurred
    by the PSF is about that large or larger).

    Parameters
    ----------
    clipped : ndarray of bool
        Clipped samples, channels first.
    psf_shape : tuple of int
        Spatial shape of the PSF.

    Returns
    -------
    ndarray of bool or None
        The samples of such regions, None when there are none.
    """
    smallest = max(2, int(np.prod(psf_shape)) // 4)
    regions = np.zeros_like(clipped)
    for channel, found in zip(clipped, regions):
        labels, count = ndimage.label(channel)
        if count:
            large = np.bincount(labels.ravel()) >= smallest
            large[0] = False
            found[...] = large[labels]
    return regions if regions.any() else None

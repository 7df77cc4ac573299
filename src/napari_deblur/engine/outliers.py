"""Hot pixels: single samples brighter than any blurred scene could make them.

A hot pixel, a cosmic ray's hit or a sensor defect is one sample far above
its neighbours. Blur cannot make that: through a PSF ``h`` every point of a
non-negative scene lights a sample's neighbours too, so a sample exceeds
the mean of its neighbours by at most a fraction ``rho`` of its own value,
the largest ``1 - mean(neighbours of h(d)) / h(d)`` over the PSF's samples
(0.27 for a Gaussian of sigma 1.5). A sample that exceeds it by more than
the noise can is not an observation of the blur: it is left out of the
data term like a clipped one, and filled in by the prior and its neighbours.
The bound is taken for a blur :data:`MISMATCH` times narrower than the PSF
given (0.65 for that Gaussian), which a measured PSF may be: held to the
PSF itself, undersampled stars under a PSF 1.4 times too wide lost their
peaks. With no blur (``rho = 1``) nothing is found. This is the test of
L.A.Cosmic (van Dokkum 2001), which compares a sample's excess with what
the PSF allows, made exact for a known PSF.

References
----------
.. [1] P. G. van Dokkum, "Cosmic-ray rejection by Laplacian edge
   detection", PASP 113, 1420-1427, 2001.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .psf import resample_psf

#: How far beyond the PSF's bound, in noise standard deviations, a sample
#: must stand to count as hot.
HOT_SIGNIFICANCE = 8.0
#: How many times wider than the blur the PSF given may be: the bound is
#: that of the PSF this many times narrower.
MISMATCH = 2.0


def peak_excess(psf: np.ndarray) -> float:
    """The most a sample of a blurred non-negative scene exceeds its neighbours' mean, per unit.

    ``max over d of 1 - mean(h at d's neighbours) / h(d)``, over the PSF's
    positive samples (all axes: 8 neighbours in 2D, 26 in 3D).
    """
    psf = np.asarray(psf, dtype=np.float64)
    neighbours = 3**psf.ndim - 1
    total = ndimage.correlate(psf, np.ones((3,) * psf.ndim), mode="constant")
    positive = psf > 0
    mean = (total[positive] - psf[positive]) / neighbours
    return float(np.clip(np.max(1 - mean / psf[positive]), 0.0, 1.0))


def hot_pixels(
    image: np.ndarray,
    psf: np.ndarray,
    gain,
    floor,
    *,
    invalid: np.ndarray | None = None,
    significance: float = HOT_SIGNIFICANCE,
) -> np.ndarray:
    """Samples brighter than the PSF allows a blurred scene, per image of a batch.

    Parameters
    ----------
    image : ndarray
        Linear-light images, channels first: ``(channels, *spatial)``.
    psf : ndarray
        Their PSFs, ``(channels or 1, *kernel)``, non-negative.
    gain, floor : array_like
        The noise's variance ``gain * light + floor``, per channel (or one
        for all): a sample is tested against the noise of its own light,
        which for photon counts makes a few photons on a dark sky no
        outlier.
    invalid : ndarray of bool, optional
        Samples known not to be observations (clipped, bad), `image`'s
        shape: neither they nor their neighbours, whose neighbours' mean
        they would distort, are tested.
    significance : float
        Noise standard deviations beyond the bound.

    Returns
    -------
    ndarray of bool
        The hot samples, `image`'s shape.
    """
    image = np.asarray(image)
    gain, floor = (
        np.broadcast_to(np.asarray(v, dtype=np.float64), image.shape[:1]) for v in (gain, floor)
    )
    spatial = image.shape[1:]
    neighbours = 3 ** len(spatial) - 1
    # The neighbours' mean has its own noise: the excess's is a little more.
    spread = float(np.sqrt(1 + 1 / neighbours))
    box = np.ones((3,) * len(spatial))
    # The frame's outermost samples, whose neighbours are not all seen, are
    # not tested.
    inner = (slice(1, -1),) * len(spatial)
    hot = np.zeros(image.shape, dtype=bool)
    for c, channel in enumerate(image):
        # The bound of a blur half as wide as the PSF given: a measured PSF
        # may be wider than the blur, and a sharp star is no hot pixel.
        rho = peak_excess(resample_psf(psf[min(c, len(psf) - 1)], 1.0, MISMATCH))
        if rho >= 1:
            continue
        # Data below zero (an offset taken off) are lifted: the bound holds
        # for a scene on a non-negative background.
        channel = channel - min(0.0, float(channel.min()))
        # The excess over the bound, (1 - rho) y - mean of the neighbours, in
        # the neighbours' sum's array (a 24 MP photo's channels are large).
        excess = ndimage.correlate(channel, box, mode="constant")
        excess -= channel
        excess /= -neighbours
        excess += (1 - rho) * channel
        noise = np.maximum(channel, 0) * float(gain[c]) + float(floor[c])
        np.sqrt(noise, out=noise)
        hot[c][inner] = (excess > significance * spread * noise)[inner]
        if invalid is not None:
            hot[c] &= ~ndimage.binary_dilation(invalid[c], box)
    return hot

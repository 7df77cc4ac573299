"""Noise level of an image, and regularisation weights chosen from the data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import minimize_scalar, nnls
from scipy.signal.windows import tukey

from . import backend
from .color import to_linear
from .operators import gradient_spectrum
from .psf import psf_to_otf

# Median absolute value of a standard normal variable.
_MAD_TO_SIGMA = 1.482602218505602


def _finest_detail(image: np.ndarray, batch_ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Finest-scale Haar detail along all axes, and the local mean, per 2x2(x2) block.

    The detail is scaled so that white noise of variance ``s^2`` gives
    coefficients of variance ``s^2``; blur leaves almost no signal in it.
    Axes of one sample (a row of a 2D kernel, a plane of a stack) are left
    as they are.
    """
    spatial = image.shape[batch_ndim:]
    even = image[(Ellipsis,) + tuple(slice(0, n - n % 2 if n > 1 else 1) for n in spatial)]
    detail = even.astype(np.float64)
    mean = even.astype(np.float64)
    for axis in range(batch_ndim, image.ndim):
        if image.shape[axis] == 1:
            continue
        lo = [slice(None)] * image.ndim
        hi = [slice(None)] * image.ndim
        lo[axis] = slice(0, None, 2)
        hi[axis] = slice(1, None, 2)
        detail = (detail[tuple(lo)] - detail[tuple(hi)]) / np.sqrt(2)
        mean = (mean[tuple(lo)] + mean[tuple(hi)]) / 2
    return detail, mean


#: Share of an image's samples at its minimum above which its noise is
#: taken to be clipped there (data dark-subtracted and held at zero, a
#: float photo held to 0..1, crushed blacks): the minimum of unclipped
#: noise is one sample.
CLIPPED_DARK_SHARE = 0.02

#: The most of a noise bin's blocks that may hold a clipped sample for the
#: bin to be fitted: a level 2.9 noise levels above the clip.
CENSORED_BIN_SHARE = 0.01


def _clipped_dark(image: np.ndarray, batch_ndim: int) -> np.ndarray:
    """Where a sample sits at its image's minimum, if :data:`CLIPPED_DARK_SHARE` of them do."""
    axes = tuple(range(batch_ndim, image.ndim))
    at_minimum = image == np.min(image, axis=axes, keepdims=True)
    return at_minimum & (np.mean(at_minimum, axis=axes, keepdims=True) > CLIPPED_DARK_SHARE)


def binned(image: np.ndarray, batch_ndim: int, factor: int) -> np.ndarray:
    """Means of blocks of `factor` samples a side, scaled to keep white noise's level.

    The noise of a coarser sampling of the same light: its standard
    deviation is the fine samples' for white noise, and what lossy
    compression, which zeroes the finest detail's noise, leaves of it.

    Parameters
    ----------
    image : ndarray
        Images, `batch_ndim` leading batch axes then the spatial axes. Axes
        shorter than two blocks are left as they are; a remainder of fewer
        than `factor` samples at the end of the others is left out.
    batch_ndim : int
        Number of leading batch axes.
    factor : int
        Samples per block along each spatial axis.

    Returns
    -------
    ndarray
        float64 block means times the square root of the samples in a block.
    """
    spatial = image.shape[batch_ndim:]
    factors = _block_factors(spatial, factor)
    cut = image[(Ellipsis,) + tuple(slice(0, n - n % f) for n, f in zip(spatial, factors))]
    shape = image.shape[:batch_ndim] + sum(((n // f, f) for n, f in zip(spatial, factors)), ())
    blocks = cut.reshape(shape).astype(np.float64)
    means = blocks.mean(axis=tuple(range(batch_ndim + 1, len(shape), 2)))
    return means * np.sqrt(np.prod(factors))


def _block_factors(spatial: tuple[int, ...], factor: int) -> list[int]:
    """:func:`binned`'s block size along each axis: 1 on axes shorter than two blocks."""
    return [factor if n >= 2 * factor else 1 for n in spatial]


#: The least ratio of the finest second difference's variance to the Haar
#: detail's at which that detail is taken for noise (see :func:`detail_is_noise`).
NOISE_LIKE = 0.5


def detail_is_noise(image) -> bool:
    """Whether the finest detail, which the noise fit reads, is mostly noise.

    White noise gives the 2x2 diagonal Haar detail and the 3x3 second
    difference (both of unit gain on white noise) the same variance. A
    blurred scene's own detail falls towards the finest scale, which the
    second difference weighs more (its power response ``sin^4 sin^4``
    against the Haar's ``sin^2 sin^2``): it gives far less. Camera-made
    images (Poisson, 20 to 10000 counts; sRGB at 3000 photons) give ratios
    of 0.69 to 1.23, noise-free 16-bit photos 0.00 to 0.11: below
    :data:`NOISE_LIKE` the detail is the scene's, and its growth with the
    light says nothing of photon noise.

    Parameters
    ----------
    image : array_like
        Images or stacks, measured on their last two axes (each plane of a
        stack, each image of a batch) together.

    Returns
    -------
    bool
        True when the finest detail is noise-like (or too small to tell).
    """
    image = np.asarray(image, dtype=np.float32)
    planes = image.reshape((-1,) + image.shape[-2:]) if image.ndim >= 2 else image[None, None]
    if min(planes.shape[1:]) < 3:
        return True
    haar, _ = _finest_detail(planes, 1)
    # The second difference centred on every other sample of every other
    # row: as many values as the Haar detail has, enough for a median.
    rows = planes[:, :-2:2] - 2 * planes[:, 1:-1:2] + planes[:, 2::2]
    second = (rows[:, :, :-2:2] - 2 * rows[:, :, 1:-1:2] + rows[:, :, 2::2]) / 6
    spread = np.median(np.abs(haar))
    return spread == 0 or (np.median(np.abs(second)) / spread) ** 2 >= NOISE_LIKE


def estimate_noise(image, *, batch_ndim: int = 0, mask=None, scale: int = 1) -> np.ndarray:
    """Standard deviation of white additive noise, per image of a batch.

    The robust median estimator of Donoho and Johnstone on the finest-scale
    diagonal Haar coefficients: blur leaves almost no signal at that scale.

    Parameters
    ----------
    image : array_like
        Images, `batch_ndim` leading batch axes then the spatial axes (each
        of at least 2 samples).
    batch_ndim : int
        Number of leading batch axes (channels).
    mask : array_like of bool, optional
        Spatial mask: only blocks whose first sample lies in it count (to
        measure the noise of the background alone, say); NaN where none does.
    scale : int
        Measured on the :func:`binned` blocks of ``scale`` samples a side: 2
        for an image whose finest detail lost its noise to lossy compression.

    Returns
    -------
    ndarray
        Noise standard deviation, of shape ``image.shape[:batch_ndim]``.

    References
    ----------
    .. [1] D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by
       wavelet shrinkage", Biometrika 81(3), 425-455, 1994.
    """
    image = np.asarray(image)
    if scale > 1:
        factors = _block_factors(image.shape[batch_ndim:], scale)
        image = binned(image, batch_ndim, scale)
        if mask is not None:
            # A block is in the mask where its first sample is.
            mask = np.asarray(mask)[
                tuple(slice(0, n * f, f) for n, f in zip(image.shape[batch_ndim:], factors))
            ]
    detail, _ = _finest_detail(image, batch_ndim)
    if mask is not None:
        blocks = np.asarray(mask, dtype=bool)[
            tuple(slice(0, n * 2, 2) for n in detail.shape[batch_ndim:])
        ]
        detail = detail[(Ellipsis, blocks)]
        if detail.shape[-1] == 0:
            return np.full(detail.shape[:-1], np.nan)
        return _MAD_TO_SIGMA * np.median(np.abs(detail), axis=-1)
    axes = tuple(range(batch_ndim, detail.ndim))
    return _MAD_TO_SIGMA * np.median(np.abs(detail), axis=axes)


#: How far above zero, in noise levels of the darkest samples, the level at
#: which the noise would vanish must lie to be a camera's offset: the robust
#: variance of a few photons is read low, which puts that level a few
#: photons up on counts with no offset (6.6 on a ramp of 0-300 photons).
PEDESTAL_SIGNIFICANCE = 5.0


def estimate_noise_curve(
    image, *, batch_ndim: int = 0, bins: int = 16, scale: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Signal-dependent noise: ``var(y) = gain * y + floor``, per image of a batch.

    Photon (shot) noise grows with the light, read noise does not: the
    Poisson-Gaussian model of camera sensors. The finest Haar details are
    grouped by the local mean into `bins` quantile bins; the robust variance
    of each bin is fitted by non-negative least squares. Where a camera
    adds an offset to its counts, the noise vanishes at a level above zero
    (a pedestal, which Foi et al. allow: held at zero, the floor had the
    gain of counts on an offset of 100 read as a tenth of theirs): fitted as
    ``gain`` times the light above the darkest bin's plus that bin's
    variance, a pedestal :data:`PEDESTAL_SIGNIFICANCE` noise levels of the
    darkest bin above zero is taken, with a negative floor. Data held at
    a floor (over :data:`CLIPPED_DARK_SHARE` of the samples at the
    minimum: a dark-subtracted sky clipped at zero) have narrower noise
    near it, which read as noise growing with the light: the bins with
    clipped samples in over :data:`CENSORED_BIN_SHARE` of their blocks
    are left out while two others remain.

    Parameters
    ----------
    image : array_like
        Linear-light images, batch axes first.
    batch_ndim : int
        Number of leading batch axes.
    bins : int
        Number of intensity bins.
    scale : int
        Measured on blocks of ``scale`` samples a side (their means, scaled
        to keep white noise's level): 2 for an image whose finest detail
        lost its noise to lossy compression.

    Returns
    -------
    gain, floor : ndarray
        Coefficients of shape ``image.shape[:batch_ndim]``: the gain
        non-negative, the floor negative below a camera's offset (see
        :attr:`NoiseLevel.pedestal`).

    References
    ----------
    .. [1] A. Foi, M. Trimeche, V. Katkovnik and K. Egiazarian, "Practical
       Poissonian-Gaussian noise modeling and fitting for single-image
       raw-data", IEEE TIP 17(10), 1737-1754, 2008.
    """
    image = np.asarray(image)
    # Binning scales the light up with the noise's level kept: the levels
    # the noise is fitted against are the image's.
    light_scale = np.sqrt(np.prod(_block_factors(image.shape[batch_ndim:], scale)))
    if scale > 1:
        image = binned(image, batch_ndim, scale)
    detail, mean = _finest_detail(image, batch_ndim)
    clipped = _clipped_dark(image, batch_ndim)
    mean = mean / light_scale
    batch = image.shape[:batch_ndim]
    detail = detail.reshape((-1, int(np.prod(detail.shape[batch_ndim:]))))
    mean = mean.reshape(detail.shape)
    # The blocks holding a clipped sample.
    censored = np.zeros(detail.shape, bool)
    if clipped.any():
        censored = _finest_detail(clipped.astype(np.float32), batch_ndim)[1] > 0
        censored = censored.reshape(detail.shape)
    gains, floors = [], []
    for d, m, c in zip(detail, mean, censored):
        order = np.argsort(m)
        groups = np.array_split(order, min(bins, max(1, m.size // 64)))
        # Noise clipped at the dark end is narrower than the noise: the
        # levels where it is clipped are left out while two others remain.
        whole = [g for g in groups if np.mean(c[g]) <= CENSORED_BIN_SHARE]
        groups = whole if len(whole) >= 2 else groups
        levels = np.array([m[g].mean() for g in groups])
        variances = np.array([(_MAD_TO_SIGMA * np.median(np.abs(d[g]))) ** 2 for g in groups])
        (gain, floor), _ = nnls(np.stack([levels, np.ones_like(levels)], axis=1), variances)
        # With a pedestal: the gain times the light above the darkest bin's,
        # plus that bin's variance.
        darkest = levels[0]
        design = np.stack([levels - darkest, np.ones_like(levels)], axis=1)
        (above, dark), _ = nnls(design, variances)
        if above > 0 and darkest - dark / above > PEDESTAL_SIGNIFICANCE * np.sqrt(dark):
            gain, floor = above, dark - above * darkest
        gains.append(gain)
        floors.append(floor)
    return np.array(gains).reshape(batch), np.array(floors).reshape(batch)


@dataclass(frozen=True)
class NoiseLevel:
    """Noise of a batch of images: variance ``gain * light + floor`` per image.

    Attributes
    ----------
    gain, floor : ndarray
        The fitted signal-dependent noise (:func:`estimate_noise_curve`).
    light : ndarray
        Mean light of each image (negative values count as 0).
    """

    gain: np.ndarray
    floor: np.ndarray
    light: np.ndarray

    @property
    def variance(self) -> np.ndarray:
        """Expected noise variance averaged over the pixels, per image."""
        return np.maximum(self.gain * self.light + self.floor, 0.0)

    @property
    def photon_share(self) -> float:
        """Share of the variance that grows with the light (photon noise), in [0, 1]."""
        total = float(np.sum(self.variance))
        photons = float(np.sum(self.gain * (self.light - np.maximum(self.pedestal, 0.0))))
        return min(1.0, photons / total) if total > 0 else 0.0

    @property
    def pedestal(self) -> np.ndarray:
        """The camera's offset, per image (see :func:`pedestal`)."""
        return pedestal(self.gain, self.floor)


def pedestal(gain, floor) -> np.ndarray:
    """The light at which noise ``gain * light + floor`` would vanish: a camera's offset.

    Below the offset by the read noise's variance over the gain (below zero
    by that much with no offset), so that the counts above it are
    Poisson-like (their variance ``gain`` times their mean: the shifted
    Poisson model); 0 without photon noise.
    """
    gain, floor = np.asarray(gain, dtype=np.float64), np.asarray(floor, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gain > 0, -floor / gain, 0.0)


def data_weights(observed, variance, gain, floor, *, batch_ndim: int = 0) -> np.ndarray:
    """Each sample's weight in a least-squares data term: the typical noise variance over its own.

    Camera noise grows with the light (:class:`NoiseLevel`): a sample's
    variance is ``gain * light + floor``. The light is the data smoothed
    over a few samples, so that the weights do not follow the noise itself
    (which would bias the fit towards the samples that happen to be darker).
    No sample weighs more than a typical one: the weight rules
    (:func:`tv_weight`) were set for the typical noise, and trusting the
    dark samples more than that cost 1.5 dB on dark, noisy photos, where
    only the brighter ones' lower weight (the glare round a clipped lamp)
    pays.

    Parameters
    ----------
    observed : array_like
        Linear-light images, batch axes first.
    variance, gain, floor : array_like
        Per batch image: the typical noise variance, its growth per unit of
        light and its value in the dark.
    batch_ndim : int
        Number of leading batch axes.

    Returns
    -------
    ndarray
        Weights in (0, 1] of `observed`'s shape and floating type.
    """
    observed = np.asarray(observed)
    dtype = backend.float_dtype(observed.dtype)
    per_image = observed.shape[:batch_ndim] + (1,) * (observed.ndim - batch_ndim)
    variance, gain, floor = (
        np.broadcast_to(np.asarray(v, dtype=np.float64), observed.shape[:batch_ndim]).reshape(
            per_image
        )
        for v in (variance, gain, floor)
    )
    sigma = (0,) * batch_ndim + (1.5,) * (observed.ndim - batch_ndim)
    light = ndimage.gaussian_filter(np.clip(observed, 0, None).astype(dtype), sigma)
    own = np.maximum(gain * light + floor, variance)
    return (variance / own).astype(dtype)


def estimate_background(image, *, batch_ndim: int = 0) -> np.ndarray:
    """Light under the whole image (camera offset, haze), per image of a batch.

    The darkest level the image reaches over a few pixels: the first
    percentile of a copy smoothed by a Gaussian of two pixels, corrected for
    the noise left in that copy. Fluorescence stacks and astronomical frames have
    dark regions at this level; an image filled edge to edge with structure
    has none, and gets about its darkest percentile (as smoothed).

    Parameters
    ----------
    image : array_like
        Non-negative images, batch axes first.
    batch_ndim : int
        Number of leading batch axes.

    Returns
    -------
    ndarray
        Background level, of shape ``image.shape[:batch_ndim]``.
    """
    image = np.asarray(image, dtype=np.float32)
    spatial = image.shape[batch_ndim:]
    sigma = 2.0
    levels = []
    for one in image.reshape((-1,) + spatial):
        smoothed = ndimage.gaussian_filter(one, sigma)
        lowest = np.percentile(smoothed, 1)
        # The first percentile of the smoothed noise lies 2.33 of its
        # standard deviations below the mean: the white noise of the darkest
        # twentieth (its finest details, which the scene's structure there
        # does not inflate), scaled by the Gaussian's sqrt(sum of squares).
        dark = smoothed <= np.percentile(smoothed, 5)
        noise = float(estimate_noise(one, mask=dark))
        if not np.isfinite(noise):
            noise = float(estimate_noise(one))
        spread = noise * (2 * sigma * np.sqrt(np.pi)) ** (-len(spatial) / 2)
        levels.append(max(float(lowest) + 2.33 * spread, 0.0))
    return np.array(levels).reshape(image.shape[:batch_ndim])


def quantisation_noise(raw: np.ndarray, encoding: str) -> np.ndarray | None:
    """Noise of rounding to integers, in linear light at each channel's median level.

    Parameters
    ----------
    raw : ndarray
        Stored pixels, channels first.
    encoding : {'srgb', 'linear'}
        How they encode light.

    Returns
    -------
    ndarray or None
        Standard deviation per channel (one step over sqrt(12)), None for
        floating-point data.
    """
    if raw.dtype.kind not in "iu":
        return None
    top = np.iinfo(raw.dtype).max
    levels = np.minimum(np.median(raw.reshape(raw.shape[0], -1), axis=1), top - 1)
    codes = np.stack([levels, levels + 1]).astype(raw.dtype)
    step = np.abs(np.diff(to_linear(codes, encoding), axis=0)[0])
    return step / np.sqrt(12)


def estimate_noise_level(image, *, batch_ndim: int = 0, scale: int = 1) -> NoiseLevel:
    """Signal-dependent noise of each image of a batch, from the image alone.

    `scale` as for :func:`estimate_noise_curve`.
    """
    image = np.asarray(image)
    gain, floor = estimate_noise_curve(image, batch_ndim=batch_ndim, scale=scale)
    axes = tuple(range(batch_ndim, image.ndim))
    light = np.mean(np.clip(image, 0, None), axis=axes, dtype=np.float64)
    return NoiseLevel(gain, floor, light)


def mean_noise_variance(image, *, batch_ndim: int = 0) -> np.ndarray:
    """Expected noise variance averaged over the pixels, per image of a batch.

    What the mean squared residual of a fit that explains the data down to
    the noise should be (the level of the discrepancy principle).
    """
    return estimate_noise_level(image, batch_ndim=batch_ndim).variance


#: The highest frequency, in cycles per sample, at which a compressed
#: image's noise and blur are read: JPEG's quantisation zeroes most of the
#: noise above it. On the camera-made photos of ``bench_photos.py
#: --sections 6`` the weight chosen from the lower band and the noise of
#: 2 x 2 blocks came within 0.56-2.1x of the PNG's at quality 90, where the
#: whole band's was 0.003-0.3x; on the PNGs the two agree within 0.8-1.4x.
#: The parametric blurs of ``bench_blind.py --sections 4`` from JPEG 90,
#: scored up to it: 38 of 54 within 10% (26 on the whole band; PNG 47).
COMPRESSED_BAND = 0.25


def rfft_weights(shape, band: float = 0.5) -> np.ndarray:
    """How many frequencies of the full FFT each sample of an ``rfftn`` grid stands for.

    Frequencies above `band` cycles per sample along any axis count for
    none (0.5: all count).
    """
    last = shape[-1] // 2 + 1
    weights = np.full(last, 2.0)
    weights[0] = 1
    if shape[-1] % 2 == 0:
        weights[-1] = 1
    if band < 0.5:
        for frequencies in backend.rfft_frequencies(shape, np.float64):
            weights = weights * (np.abs(frequencies) <= band)
    return weights


def gcv_weight(
    data_power: np.ndarray,
    otf_power: np.ndarray,
    prior_power: np.ndarray,
    weights: np.ndarray,
    *,
    bounds: tuple[float, float] = (1e-9, 1e2),
) -> float:
    """Regularisation weight of a Fourier-diagonal filter by generalised cross-validation.

    For the filter ``X = H* Y / (|H|^2 + lam P)`` the influence is
    ``F = |H|^2 / (|H|^2 + lam P)`` and Wahba's criterion

    ``GCV(lam) = sum w |1 - F|^2 |Y|^2 / (sum w (1 - F))^2``

    predicts the error on a left-out sample; it needs no noise level.

    Parameters
    ----------
    data_power, otf_power, prior_power : ndarray
        ``|Y|^2``, ``|H|^2`` and ``P`` on an rfft grid (broadcastable).
    weights : ndarray
        Multiplicity of each frequency (:func:`rfft_weights`), broadcastable.
    bounds : (float, float)
        Range of ``lam`` searched (log scale).

    Returns
    -------
    float
        The minimiser ``lam``.

    References
    ----------
    .. [1] G. H. Golub, M. Heath and G. Wahba, "Generalized cross-validation
       as a method for choosing a good ridge parameter", Technometrics 21(2),
       215-223, 1979.
    """
    return gcv_minimum(data_power, otf_power, prior_power, weights, bounds=bounds)[0]


def gcv_minimum(
    data_power: np.ndarray,
    otf_power: np.ndarray,
    prior_power: np.ndarray,
    weights: np.ndarray,
    *,
    bounds: tuple[float, float] = (1e-9, 1e2),
) -> tuple[float, float]:
    """The GCV-minimising weight of :func:`gcv_weight` and the criterion's value there.

    The value compares blurs: the PSF that lets the filter predict left-out
    samples best has the lowest (Reeves and Mersereau's blur identification).

    Returns
    -------
    lam, value : float
    """
    # A regular subsample of at most 2^18 frequencies estimates the sums well
    # and bounds the cost of each evaluation.
    otf_power, prior_power, data_power, weights = np.broadcast_arrays(
        otf_power, prior_power, data_power, weights
    )
    stride = max(1, int(np.ceil((otf_power.size / 2**18) ** (1 / otf_power.ndim))))
    take = (slice(None, None, stride),) * otf_power.ndim
    h2 = otf_power[take].astype(np.float64).ravel()
    p = prior_power[take].astype(np.float64).ravel()
    y2 = data_power[take].astype(np.float64).ravel()
    w = weights[take].astype(np.float64).ravel()

    def criterion(log_lam: float) -> float:
        rest = 1 - h2 / (h2 + 10.0**log_lam * p + 1e-30)
        freedom = backend.dot(w, rest)
        # No frequency the prior weighs (an image of one sample, or of
        # fewer than the band holds): nothing to predict, nothing chosen.
        return backend.dot(w * rest**2, y2) / freedom**2 if freedom > 0 else np.inf

    # A coarse scan finds the basin (GCV can be flat or have a spurious local
    # minimum far out).
    grid = np.arange(np.log10(bounds[0]), np.log10(bounds[1]) + 0.25, 0.5)
    log_lam, value = minimize_on_grid(criterion, grid, xatol=0.01)
    return float(10.0**log_lam), value


def minimize_on_grid(
    function: Callable[[float], float], grid: np.ndarray, *, xatol: float
) -> tuple[float, float]:
    """The minimum of a function of one number: the grid's best, refined between its neighbours.

    The grid finds the basin where the function has several local minima
    or flat stretches; a bounded search (Brent) then refines it to `xatol`.

    Returns
    -------
    x, value : float
        The minimiser and the function's value there.
    """
    best = int(np.argmin([function(x) for x in grid]))
    result = minimize_scalar(
        function,
        bounds=(grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)]),
        method="bounded",
        options={"xatol": xatol},
    )
    return float(result.x), float(result.fun)


class BlurScore:
    """How well candidate PSFs explain a 2D image: the GCV value of each one's filter.

    For a candidate PSF, the gradient-prior Wiener filter with its
    GCV-chosen weight predicts left-out samples of the image; the lower
    the value (:func:`gcv_minimum`), the better the PSF explains the blur
    (Reeves and Mersereau's blur identification). The image's central part,
    at most `side` samples a side, is scored, its mean removed and its
    borders tapered over `reach` (:func:`tapered_power`).

    Parameters
    ----------
    image : ndarray
        The blurred image, 2D, in linear light.
    reach : sequence of float
        The largest blur scored, per axis, in samples.
    side : int
        Side of the central part scored (enough frequencies, bounded cost).
    band : float
        The highest frequency scored along each axis, in cycles per sample
        (:data:`COMPRESSED_BAND` for a compressed image, whose upper
        frequencies read as sharp detail).

    Attributes
    ----------
    crop : ndarray
        The central part scored, float64, of zero mean.
    level : float
        The mean removed from it.

    References
    ----------
    .. [1] S. J. Reeves and R. M. Mersereau, "Blur identification by the
       method of generalized cross-validation", IEEE TIP 1(3), 301-311, 1992.
    """

    def __init__(self, image: np.ndarray, reach, *, side: int = 512, band: float = 0.5):
        start = [max(0, (n - side) // 2) for n in image.shape]
        crop = np.asarray(image[tuple(slice(s, s + side) for s in start)], dtype=np.float64)
        self.level = float(crop.mean())
        self.crop = crop - self.level
        self._data_power = tapered_power(self.crop, reach)
        self._prior = gradient_spectrum(self.crop.shape, np.float64)
        self._weights = rfft_weights(self.crop.shape, band)

    def __call__(self, psf: np.ndarray) -> float:
        """The GCV value of `psf` (lower explains the image better)."""
        otf_power = np.abs(psf_to_otf(psf, self.crop.shape)) ** 2
        return gcv_minimum(self._data_power, otf_power, self._prior, self._weights)[1]


def tapered_power(observed, reach, *, batch_ndim: int = 0) -> np.ndarray:
    """Power spectrum (``rfftn``) of the frame, tapered over `reach` at each border.

    The taper removes the mismatch between the frame's opposite borders,
    which a spectrum would otherwise read as sharp detail, and is wide
    enough (a PSF's size, `reach` samples per spatial axis) to add no sharp
    edge of its own.
    """
    observed = np.asarray(observed)
    dtype = backend.float_dtype(observed.dtype)
    frame = observed.shape[batch_ndim:]
    axes = tuple(range(batch_ndim, observed.ndim))
    taper = backend.asarray(1, dtype)
    for axis, (n, k) in enumerate(zip(frame, reach)):
        view = [1] * len(frame)
        view[axis] = n
        taper = taper * backend.asarray(tukey(n, min(1.0, 2 * k / n)).reshape(view), dtype)
    return np.abs(backend.rfftn(observed * taper, axes)) ** 2


#: The smallest noise-to-signal ratio :func:`gcv_nsr` chooses. On noise-free
#: data GCV runs to the bottom of its range, where the filter's gain at the
#: frequencies the blur all but removes turns the data's round-off, and the
#: unobserved border's freedom, into the largest part of the estimate (a
#: noise-free blurred camera crop: RMS error 4.6 at 1e-9, 0.016 at 1e-6,
#: against the blurred 0.042).
SMALLEST_NSR = 1e-6


def gcv_nsr(observed, psf, *, batch_ndim: int = 0, band: float = 0.5) -> np.ndarray:
    """Noise-to-signal ratio of the gradient-prior Wiener filter, by GCV, per batch image.

    The filter is ``H* / (|H|^2 + nsr |G|^2)`` (``G``: forward differences).
    GCV sees the observed frame under a Tukey window that tapers one PSF
    width at each border: that removes the mismatch between the frame and
    any boundary model, which GCV would otherwise take for signal and
    under-regularise, and stays wide enough not to add a sharp edge.

    Parameters
    ----------
    observed : array_like
        Blurred image(s), batch axes first.
    psf : array_like
        PSF with the same number of axes (batch axes of size 1 or the images').
    batch_ndim : int
        Number of leading batch axes.
    band : float
        The highest frequency GCV looks at along each axis, in cycles per
        sample (0.5: all): 0.25 for an image whose upper half lost its noise
        to lossy compression (:data:`COMPRESSED_BAND`), which GCV would read
        as a clean image.

    Returns
    -------
    ndarray
        ``nsr`` per batch image, shape ``observed.shape[:batch_ndim]``.
    """
    observed = np.asarray(observed)
    psf = np.asarray(psf)
    dtype = backend.float_dtype(observed.dtype)
    frame = observed.shape[batch_ndim:]
    data_power = tapered_power(observed, psf.shape[batch_ndim:], batch_ndim=batch_ndim)
    otf_power = np.abs(psf_to_otf(psf, frame)) ** 2
    prior = gradient_spectrum(frame, dtype)
    weights = rfft_weights(frame, band)
    data_power = data_power.reshape((-1,) + data_power.shape[batch_ndim:])
    otf_power = otf_power.reshape((-1,) + otf_power.shape[batch_ndim:])
    nsr = [
        gcv_weight(
            d, otf_power[i % otf_power.shape[0]], prior, weights, bounds=(SMALLEST_NSR, 1e2)
        )
        for i, d in enumerate(data_power)
    ]
    return np.array(nsr).reshape(observed.shape[:batch_ndim])


#: Weight of total variation, in units of ``noise * sqrt(nsr)``: the MAP
#: weight ``noise^2 / g`` of a Laplace gradient prior whose scale ``g`` is
#: the RMS gradient ``noise / sqrt(nsr)`` that GCV's Wiener filter implies,
#: scaled by a factor validated on the benchmark set (docs/benchmarks.md).
TV_WEIGHT_FACTOR = 0.5


def tv_weight(variance, nsr) -> np.ndarray:
    """Total-variation weight from the noise variance and the GCV noise-to-signal ratio.

    Parameters
    ----------
    variance : array_like
        Noise variance per batch image (mean over the pixels).
    nsr : array_like
        :func:`gcv_nsr` of the same images.

    Returns
    -------
    ndarray
        ``TV_WEIGHT_FACTOR * sqrt(variance * nsr)``.
    """
    return TV_WEIGHT_FACTOR * np.sqrt(np.asarray(variance) * np.asarray(nsr))

"""A PSF from the blurred image alone: blur identification by generalised cross-validation.

Without a photo of a point light, the common blurs still have a known shape
with one or two numbers to find: a defocus disc (its radius), a Gaussian
(its sigma), a straight motion (its length and direction). For each
candidate PSF, the gradient-prior Wiener filter with its GCV-chosen weight
predicts left-out samples of the image; the PSF whose filter predicts them
best (the lowest GCV value) is the blur's estimate (Reeves and Mersereau).
A wrong PSF either leaves detail the data still hold (too small) or needs
detail the data lack (too large, or in the wrong direction): both predict
worse. A straight motion and a defocus disc show first in the image's
cepstrum (a spike, a ring), which measures the motion's length and
direction and brackets the disc's radius. A Gaussian's width, which GCV
reads too wide on smooth scenes, is measured on the Gaussian refined on
the image (:func:`~napari_deblur.engine.psf_fit.refine_psf`). A compressed
image (a JPEG) is read on the frequencies its compression kept. A blur of no
such shape (a camera shake) is estimated sample by sample instead
(:func:`~napari_deblur.engine.psf_fit.blind_psf`).

References
----------
.. [1] S. J. Reeves and R. M. Mersereau, "Blur identification by the method
   of generalized cross-validation", IEEE TIP 1(3), 301-311, 1992.
.. [2] M. Cannon, "Blind deconvolution of spatially invariant image blurs
   with phase", IEEE TASSP 24(1), 58-63, 1976.
.. [3] R. Rom, "On the cepstrum of two-dimensional functions", IEEE Trans.
   Inf. Theory 21(2), 214-217, 1975.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
from scipy import ndimage
from scipy.optimize import minimize, minimize_scalar

from .color import resolve_encoding, to_linear
from .noise import (
    COMPRESSED_BAND,
    BlurScore,
    binned,
    mean_noise_variance,
    minimize_on_grid,
    tapered_power,
)
from .psf import defocus_psf, gaussian_psf, motion_psf, resize_psf
from .psf_fit import blind_psf, refine_psf
from .saturation import clipped_mask

#: The blur families searched, with the PSF each parameter vector makes.
FAMILIES: dict[str, Callable[..., np.ndarray]] = {
    "defocus": lambda radius: defocus_psf(radius),
    "gaussian": lambda sigma: gaussian_psf(sigma),
    "motion": lambda length, angle: motion_psf(length, angle),
}
#: Names of each family's parameters, in the order its PSF takes them.
PARAMETERS = {
    "defocus": ("radius",),
    "gaussian": ("sigma",),
    "motion": ("length", "angle"),
}
#: The largest blur searched by default, in pixels (a motion's length, a
#: disc's diameter): an image of at least four times that a side is needed.
MAX_EXTENT = 40.0
#: The largest value of each family's first parameter searched, per pixel of
#: the largest blur: a motion's length, a disc's radius, a sixth of a
#: Gaussian's extent.
LARGEST = {"motion": 1.0, "defocus": 1 / 2, "gaussian": 1 / 6}
#: The smallest image side searched: blurs up to 4 px across.
MIN_SIDE = 16

#: Side of the central crop the search looks at (enough frequencies, bounded cost).
CROP = 512
#: Depth, in robust standard deviations of the cepstrum, of a motion's spike.
#: On the camera-made benchmark set motions reach 6-15 where the scene has
#: texture; defocus, Gaussian blur and noise stay under 5.5.
MOTION_SIGNIFICANCE = 5.5
#: Depth of a defocus disc's ring in the cepstrum's average round each
#: circle, in standard errors of that average (the cepstrum's robust spread
#: over the square root of the circle's samples). On the camera-made
#: benchmark set discs of radius 4-12 reach 7-16 where the scene has texture
#: (3-5 on the smooth moon and on rocket's small discs); Gaussian blurs and
#: motions stay under 5.3.
DEFOCUS_SIGNIFICANCE = 6.0


@dataclass(frozen=True)
class BlurEstimate:
    """A blur estimated from the blurred image alone.

    Attributes
    ----------
    kind : str
        The family: ``'defocus'``, ``'gaussian'``, ``'motion'`` or
        ``'general'``.
    parameters : dict
        Its parameters in pixels (``angle`` in degrees, counter-clockwise
        from the column axis); a general PSF's box ``size``.
    psf : ndarray
        The PSF they make (unit sum, odd sizes).
    scores : dict
        The best GCV value found in each family searched (lower predicts
        better).
    """

    kind: str
    parameters: dict[str, float]
    psf: np.ndarray
    scores: dict[str, float] = field(default_factory=dict)

    def report(self) -> str:
        """One line on what was found."""
        if self.kind == "general":
            side = int(self.parameters["size"])
            return f"estimated blur: general (camera shake), in a {side} x {side} px box"
        values = ", ".join(
            f"{name} {value:.1f}{' deg' if name == 'angle' else ' px'}"
            for name, value in self.parameters.items()
        )
        return f"estimated blur: {self.kind}, {values}"


def estimate_blur(
    image,
    *,
    kind: str = "auto",
    encoding: str = "auto",
    channel_axis: int | None = None,
    max_extent: float | None = None,
    compressed: bool = False,
) -> BlurEstimate:
    """Estimate a defocus, Gaussian, motion or general PSF from a blurred image alone.

    The image is taken to linear light and grey, and its central part (at
    most 512 samples a side) is searched: a fine grid of each family's
    parameters, then a local refinement of the best (for a Gaussian, its
    width measured on the PSF refined on the image, unless `compressed`);
    or, for a general PSF, a blind estimate coarse to fine.

    Parameters
    ----------
    image : array_like
        The blurred 2D image, optionally with colour channels.
    kind : {'auto', 'defocus', 'gaussian', 'motion', 'general'}
        The family to search, or the three shapes (``'auto'``) and the one
        that predicts best; ``'general'``: any PSF in a box of `max_extent`
        (camera shake; slower, and less sure than a shape that fits).
    encoding : {'auto', 'srgb', 'linear'}
        Whether values are gamma-encoded (``'auto'``: sRGB for uint8).
    channel_axis : int, optional
        Axis of colour channels.
    max_extent : float, optional
        The largest blur searched, in pixels: a disc's diameter, about six
        sigmas, a motion's length. By default :data:`MAX_EXTENT`, or a
        quarter of a smaller image's shorter side.
    compressed : bool
        The image was stored with lossy compression (a JPEG below quality
        98), whose blocks and quantisation read as sharp detail: the blur is
        scored on the lower frequencies
        (:data:`~napari_deblur.engine.noise.COMPRESSED_BAND`), the cepstrum
        read on 2 x 2 blocks, and a Gaussian's width taken from GCV (the
        refinement would fit the compression's sharpened edges).

    Returns
    -------
    BlurEstimate

    Raises
    ------
    ValueError
        If the image is not 2D, too small for `max_extent`, or an argument is
        invalid.
    """
    if kind not in ("auto", "general", *FAMILIES):
        raise ValueError(
            f"kind must be 'auto', 'general' or one of {tuple(FAMILIES)}, got {kind!r}"
        )
    if max_extent is not None and not (isinstance(max_extent, Real) and 2 <= max_extent < np.inf):
        raise ValueError(f"max_extent must be at least 2 pixels and finite, got {max_extent}")
    raw = np.asarray(image)
    if raw.dtype.kind not in "iubf":
        raise TypeError(f"image must hold real numbers, got {raw.dtype}")
    if not np.all(np.isfinite(raw)):
        raise ValueError("image contains NaN or infinite values; replace them first")
    linear = to_linear(raw, resolve_encoding(encoding, raw.dtype))
    if channel_axis is not None:
        if not -raw.ndim <= channel_axis < raw.ndim:
            raise ValueError(f"channel_axis {channel_axis} is out of range for {raw.ndim} axes")
        linear = linear.mean(axis=channel_axis)
    if linear.ndim != 2:
        raise ValueError(f"blur is estimated on 2D images, got {linear.ndim} spatial axes")
    if min(linear.shape) < MIN_SIDE:
        raise ValueError(
            f"image of {linear.shape} is too small to estimate a blur: "
            f"that takes at least {MIN_SIDE} px a side"
        )
    if max_extent is None:
        max_extent = min(MAX_EXTENT, min(linear.shape) / 4)
    if min(linear.shape) < 4 * max_extent:
        raise ValueError(
            f"image of {linear.shape} is too small to estimate blurs up to {max_extent} px: "
            f"that takes at least {int(np.ceil(4 * max_extent))} px a side"
        )
    blur_score = BlurScore(
        linear,
        (max_extent, max_extent),
        side=CROP,
        band=COMPRESSED_BAND if compressed else 0.5,
    )
    if not np.any(blur_score.crop):
        raise ValueError("image is flat: it shows no blur to estimate")
    crop = blur_score.crop

    def score(family: str, values) -> float:
        try:
            psf = FAMILIES[family](*values)
        except ValueError:
            return np.inf
        return blur_score(psf)

    if kind == "general":
        size = int(np.ceil(max_extent)) | 1
        if 4 * size > min(crop.shape):
            # Rounded up to an odd box, the largest blur would not fit.
            size -= 2
        psf = blind_psf(crop, size)
        return BlurEstimate("general", {"size": float(size)}, psf, {"general": blur_score(psf)})
    streak = ring = None
    if kind in ("auto", "motion", "defocus"):
        # A compressed image's cepstrum is read on 2 x 2 blocks, whose
        # spectrum is the lower band's.
        factor = 2 if compressed else 1
        reach = max_extent / factor
        cepstrum = _cepstrum(binned(crop, 0, factor) if compressed else crop, reach)
        if kind in ("auto", "defocus"):
            ring = _cepstral_defocus(cepstrum, reach)
        if kind in ("auto", "motion"):
            streak = _cepstral_motion(cepstrum, reach)
        if streak is not None and ring is not None and ring[0] <= streak[0] / 2 <= ring[1]:
            # The deepest point of a disc's ring, taken for a streak.
            streak = None
        if streak is not None:
            streak, ring = (factor * streak[0], streak[1]), None
        elif ring is not None:
            ring = (factor * ring[0], factor * ring[1])
    if streak is not None:
        # A straight motion's echo in the cepstrum is unmistakable, and
        # finds its length where GCV, whose dip the lens's own blur makes
        # shallow, prefers a shorter one.
        found = {"motion": _refine_streak(streak, lambda v: score("motion", v))}
    elif ring is not None:
        # So is a disc's ring, where GCV finds a large disc and a Gaussian
        # equally likely: GCV then picks the radius the ring brackets.
        found = {"defocus": _search("defocus", max_extent, lambda v: score("defocus", v), ring)}
    else:
        found = {
            family: _search(family, max_extent, lambda v, f=family: score(f, v))
            for family in (FAMILIES if kind == "auto" else (kind,))
        }
    best = min(found, key=lambda f: found[f][1])
    values = found[best][0]
    if best == "motion":
        values = (values[0], float(values[1]) % 180)
    if best == "gaussian" and not compressed:
        # The refinement fits the PSF to the image's edges, which a
        # compression's blocks and ringing sharpen.
        values = (_refined_width(blur_score, FAMILIES["gaussian"](*values)),)
    estimate = BlurEstimate(
        kind=best,
        parameters={name: float(v) for name, v in zip(PARAMETERS[best], values)},
        psf=FAMILIES[best](*values),
        scores={f: s for f, (_, s) in found.items()},
    )
    for doubt in _doubts(estimate, raw, max_extent):
        warnings.warn(doubt, UserWarning, stacklevel=2)
    return estimate


def _doubts(estimate: BlurEstimate, raw: np.ndarray, max_extent: float) -> list[str]:
    """What makes a parametric estimate doubtful, in words."""
    doubts = []
    value = next(iter(estimate.parameters.values()))
    # The width across the PSF (a Gaussian's full width at half maximum).
    across = {"motion": 1.0, "defocus": 2.0, "gaussian": 2.355}[estimate.kind] * value
    if value >= 0.95 * LARGEST[estimate.kind] * max_extent:
        doubts.append(
            f"the blur found is as large as any searched ({max_extent:g} px): it may be larger, "
            "or the image may show none (noise reads as a large blur)"
        )
    elif across < 2:
        doubts.append(
            "little blur found (under 2 px across): the image may be sharp already, and "
            "deblurring it would sharpen its noise"
        )
    clipped = clipped_mask(raw)
    clipped = 0.0 if clipped is None else float(np.mean(clipped))
    if clipped > 0.001:
        doubts.append(
            f"{100 * clipped:.1f}% of the pixels are clipped: their flat tops read as more "
            "blur than there is; a photo of a point light measures it better"
        )
    return doubts


def _refined_width(blur_score: BlurScore, psf: np.ndarray) -> float:
    """The sigma of the Gaussian nearest `psf` once refined on the scored image.

    GCV with a gradient prior reads a scene whose spectrum falls faster
    than the prior's (a smooth scene) as more blur: its Gaussians come out
    up to 23% too wide on camera-made images. Refined on the image
    (:func:`~napari_deblur.engine.psf_fit.refine_psf`, which fits the PSF
    to the scene's main edges), the PSF's width errs less and mostly the
    other way: on the 17 Gaussians of ``bench_blind.py`` (seed 5) read as
    Gaussians, -15% to +19% and 15 within 10%, against -3% to +23% and 11
    before.
    """
    image = blur_score.crop + blur_score.level
    variance = float(mean_noise_variance(image))
    refined, _, _ = refine_psf(image, psf, variance=variance)
    result = minimize_scalar(
        lambda sigma: float(
            np.sum((resize_psf(gaussian_psf(sigma), refined.shape) - refined) ** 2)
        ),
        bounds=(0.1, refined.shape[0] / 2),
        method="bounded",
    )
    return float(result.x)


#: Ratio between neighbouring lengths searched: a wrong blur's GCV differs
#: from the right one's mostly in a narrow dip, where the PSF's spectral
#: zeros meet the data's (about 5% wide for a disc), which a coarser grid
#: steps over.
STEP = 1.03


def _cepstrum(crop: np.ndarray, max_extent: float) -> np.ndarray:
    """The frame's power cepstrum (the transform of its log spectrum), origin at the centre."""
    power = tapered_power(crop, (max_extent, max_extent))
    return np.fft.fftshift(np.fft.irfft2(np.log(power + 1e-12 * power.max()), s=crop.shape))


def _cepstral_spread(cepstrum: np.ndarray, max_extent: float) -> tuple[np.ndarray, float]:
    """Each sample's distance from the cepstrum's origin, and the cepstrum's robust spread.

    The spread is measured where blurs leave their marks, 3 to `max_extent`
    samples from the origin.
    """
    centre = np.array(cepstrum.shape) // 2
    rows, cols = np.indices(cepstrum.shape)
    radius = np.hypot(rows - centre[0], cols - centre[1])
    values = cepstrum[(radius >= 3) & (radius <= max_extent)]
    return radius, 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _cepstral_defocus(cepstrum: np.ndarray, max_extent: float) -> tuple[float, float] | None:
    """Bounds of a defocus disc's radius from the cepstrum's ring, or None if it shows none.

    The spectrum of a disc of radius ``r`` has rings of zeros about
    ``1 / 2r`` apart, which the cepstrum turns into a negative ring about
    ``2r`` from its origin (the lens's own softening and the samples put
    it at ``2r - 1`` on camera-made images). The cepstrum is averaged round
    each circle; only a ring :data:`DEFOCUS_SIGNIFICANCE` standard errors
    deep counts, and the radius is then sought between 0.4 and 0.6 times the
    ring's radius plus two.
    """
    radius, spread = _cepstral_spread(cepstrum, max_extent)
    circle = np.round(radius).astype(int).ravel()
    count = np.bincount(circle)
    mean = np.bincount(circle, cepstrum.ravel()) / np.maximum(count, 1)
    depth = mean / (spread / np.sqrt(np.maximum(count, 1)))
    # Discs of radius 2 and more.
    first, last = 4, int(min(max_extent, len(depth) - 1))
    if last < first:
        return None
    at = first + int(np.argmin(depth[first : last + 1]))
    if -depth[at] < DEFOCUS_SIGNIFICANCE:
        return None
    return 0.4 * at, 0.6 * (at + 2)


def _cepstral_motion(cepstrum: np.ndarray, max_extent: float) -> tuple[float, float] | None:
    """A straight motion's length and angle from the power cepstrum, or None if it shows none.

    The spectrum of a motion of length ``L`` has zeros every ``1 / L``
    across the motion's direction, which the log spectrum's own transform
    (the cepstrum) turns into a negative spike at distance ``L`` along it
    (Cannon; Rom). Only a spike :data:`MOTION_SIGNIFICANCE` robust standard
    deviations deep, with the rest of its circle unremarkable (a defocus
    disc makes a ring), counts.
    """
    radius, spread = _cepstral_spread(cepstrum, max_extent)
    annulus = (radius >= 3) & (radius <= max_extent)
    centre = np.array(cepstrum.shape) // 2
    at = np.unravel_index(np.argmin(np.where(annulus, cepstrum, np.inf)), cepstrum.shape)
    peak = cepstrum[at]
    length = float(np.hypot(at[0] - centre[0], at[1] - centre[1]))
    circle = np.linspace(0, np.pi, 90, endpoint=False)
    ring = ndimage.map_coordinates(
        cepstrum,
        [centre[0] - length * np.sin(circle), centre[1] + length * np.cos(circle)],
        order=1,
    )
    if -peak < MOTION_SIGNIFICANCE * spread or np.median(ring) < 0.25 * peak:
        return None
    angle = float(np.degrees(np.arctan2(-(at[0] - centre[0]), at[1] - centre[1])) % 180)
    return length, angle


def _refine_streak(streak: tuple[float, float], score) -> tuple[tuple[float, ...], float]:
    """The cepstrum's motion refined by GCV within the cepstrum's whole-sample resolution.

    The spike lies on a whole sample: its length is known to a sample and
    its angle to a sample's arc. GCV, which elsewhere prefers a fraction of
    the length, is only asked within those bounds.
    """
    length, angle = streak
    reach = float(np.degrees(np.arctan2(1.0, length)))

    def bounded(parameters) -> float:
        near = abs(parameters[0] - length) <= 1 and abs(parameters[1] - angle) <= reach
        return score(parameters) if near else np.inf

    result = minimize(
        bounded,
        streak,
        method="Nelder-Mead",
        options={
            "initial_simplex": [streak, (length + 0.5, angle), (length, angle + reach / 2)],
            "xatol": 0.05,
            "fatol": 1e-12,
        },
    )
    return tuple(result.x), float(result.fun)


def _search(
    family: str, max_extent: float, score, bounds: tuple[float, float] | None = None
) -> tuple[tuple[float, ...], float]:
    """Best parameters of `family` and their score: a fine grid, then a local refinement.

    A one-parameter family is searched between `bounds` when given.
    """
    top = LARGEST[family] * max_extent
    if family == "motion":
        # The direction first, on a coarse grid (a wrong length still shows
        # it), then the length along it, then both together.
        coarse = [
            (length, angle)
            for length in np.geomspace(2, top, 8)
            for angle in np.arange(0, 180, 7.5)
        ]
        _, angle = coarse[int(np.argmin([score(p) for p in coarse]))]
        lengths = _fine(2, top)
        length = lengths[int(np.argmin([score((v, angle)) for v in lengths]))]

        def bounded(parameters) -> float:
            # Nelder-Mead knows no bounds: a length past them scores nothing
            # (it grew to 400 px on noise, and past the crop).
            return score(parameters) if 1 <= parameters[0] <= top else np.inf

        result = minimize(
            bounded,
            (length, angle),
            method="Nelder-Mead",
            options={
                "initial_simplex": [(length, angle), (length * STEP, angle), (length, angle + 2)],
                "xatol": 0.05,
                "fatol": 1e-12,
            },
        )
        return tuple(result.x), float(result.fun)
    value, best = minimize_on_grid(
        lambda v: score((v,)), _fine(*(bounds or (0.3, top))), xatol=0.01
    )
    return (value,), best


def _fine(low: float, high: float) -> np.ndarray:
    """Values from `low` to `high`, each :data:`STEP` times the last."""
    return np.geomspace(low, high, int(np.ceil(np.log(high / low) / np.log(STEP))) + 1)

"""A trustworthy PSF from a photo of point lights: an LED, a bead, a star.

A raw photo of a point light is not yet a PSF: it has a background (often
uneven), noise everywhere, the light somewhere between pixels, an empty frame
round it, and sometimes a clipped peak. :func:`psf_from_point_source` removes
each of these and reports what it found.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np
from scipy import ndimage, special

from .color import resolve_encoding, to_linear
from .noise import (
    CLIPPED_DARK_SHARE,
    estimate_background,
    estimate_noise,
    quantisation_noise,
)
from .operators import Convolution
from .psf import centroid, defocus_psf, normalize_psf, shift_subpixel
from .saturation import NEAR_SATURATION, saturation_level
from .solvers import Discrepancy, MaxIterations, RelativeChange, RichardsonLucy

#: A source must hold this fraction of the brightest one's light to count.
MIN_RELATIVE_FLUX = 0.1
#: Peak signal-to-noise ratio below which a PSF is too noisy to trust.
MIN_SNR = 20.0
#: Peak signal-to-noise ratio above which an image is a model, not a photo
#: (a sensor's full well of 10^5 electrons gives about 300).
MAX_PHOTO_SNR = 1e3


class PSFQualityWarning(UserWarning):
    """The point-light photo gives a doubtful PSF (clipped, or too weak)."""


@dataclass(frozen=True)
class PointSourcePSF:
    """A PSF measured from point lights, with what was found on the way.

    Attributes
    ----------
    psf : ndarray
        Non-negative, unit sum (per channel, channels first), odd sizes,
        centroid on the centre sample.
    each : ndarray
        Each source's own PSF, cleaned the same way, stacked on a first axis
        in the order of `centres`: where several sources across the frame
        see different blur, the blur at each place.
    centres : ndarray
        Sub-pixel centroid of each source used, in the photo's pixel
        coordinates, shape (sources, spatial axes).
    fwhm : tuple of float
        Full width at half maximum along each spatial axis, in pixels.
    energy_radius : float
        Radius in pixels of the ball round the centre holding half the light.
    snr : float
        Peak of the brightest source over the background noise (photon noise
        at the peak, not counted, lowers the true SNR of bright sources).
    background : float
        Mean background level subtracted, in linear light.
    noise : float
        Standard deviation of the background noise, in linear light.
    clipped : int
        Samples at the sensor's saturation level inside the sources.
    encoding : str
        How the photo's values were read: ``'srgb'`` or ``'linear'``.
    bead_diameter : float or None
        Diameter of the bead whose size was taken out of the PSF, in the
        unit of the spacing given, or None.
    """

    psf: np.ndarray
    each: np.ndarray
    centres: np.ndarray
    fwhm: tuple[float, ...]
    energy_radius: float
    snr: float
    background: float
    noise: float
    clipped: int
    encoding: str
    bead_diameter: float | None = None

    @property
    def grey(self) -> np.ndarray:
        """One PSF for all channels: the mean of the channels' PSFs (unit sum)."""
        return self.psf if self.psf.ndim == len(self.fwhm) else self.psf.mean(axis=0)

    @property
    def sources(self) -> int:
        """Number of sources averaged."""
        return len(self.centres)

    def placed(self, shape: Sequence[int]) -> np.ndarray:
        """Each source's PSF at its place in a frame of `shape`, each scaled to a peak of 1.

        The blur across the frame, to look at: the channels are summed, and
        where two boxes overlap the brighter value is kept.
        """
        frame = np.zeros(tuple(shape))
        for psf, centre in zip(self.each, self.centres):
            light = psf if psf.ndim == len(shape) else psf.sum(axis=0)
            light = light / light.max()
            start = np.round(centre).astype(int) - np.array(light.shape) // 2
            target = tuple(
                slice(max(0, a), min(n, a + k)) for a, k, n in zip(start, light.shape, shape)
            )
            source = tuple(slice(t.start - a, t.stop - a) for t, a in zip(target, start))
            frame[target] = np.maximum(frame[target], light[source])
        return frame

    def problems(self) -> list[str]:
        """What makes this PSF doubtful, in words (empty when nothing does)."""
        found = []
        if self.clipped:
            found.append(
                f"{self.clipped} samples of the point light are clipped at the sensor's "
                "maximum: the PSF's peak is cut off; take a shorter exposure"
            )
        if self.snr < MIN_SNR:
            found.append(
                f"the point light is weak (peak SNR {self.snr:.3g}, under {MIN_SNR:.0f}): "
                "the PSF is noisy; use a longer exposure or several sources"
            )
        return found

    def report(self, spacing=None, unit: str = "") -> str:
        """A few lines on what was measured.

        With `spacing` (the sample size per axis, in `unit`), the FWHM is
        given in that unit too: microscopists read a bead's extent in
        micrometres, along z, y and x.
        """
        centre = ", ".join(f"{c:.2f}" for c in self.centres[0])
        fwhm = " x ".join(f"{w:.2f}" for w in self.fwhm)
        if spacing is not None:
            sizes = np.broadcast_to(np.asarray(spacing, float), (len(self.fwhm),))
            physical = " x ".join(f"{w * d:.3g}" for w, d in zip(self.fwhm, sizes))
            fwhm += f" px = {physical} {unit}".rstrip()
        else:
            fwhm += " px"
        spatial = self.psf.shape[self.psf.ndim - len(self.fwhm) :]
        colours = f" ({self.psf.shape[0]} colours)" if self.psf.ndim > len(self.fwhm) else ""
        lines = [
            f"PSF {' x '.join(map(str, spatial))}{colours} from {self.sources} source(s), "
            f"{self.encoding} light",
            f"centre ({centre}) px, FWHM {fwhm}, half the light within "
            f"{self.energy_radius:.2f} px",
            f"peak SNR {self.snr:.0f}, background {self.background:.4g} +- {self.noise:.2g}, "
            f"clipped samples {self.clipped}",
        ]
        if self.bead_diameter is not None:
            lines.append(
                f"size of the bead ({self.bead_diameter:.3g} {unit}".rstrip() + ") removed"
            )
        return "\n".join(lines + [f"warning: {p}" for p in self.problems()])


def psf_from_point_source(
    image,
    *,
    rois: Sequence[Sequence[tuple[int, int]]] | None = None,
    sources: int | str = 1,
    encoding: str = "auto",
    channel_axis: int | None = None,
    energy: float = 0.995,
    symmetric: bool = False,
    saturation: float | str | None = "auto",
    bead_diameter: float | None = None,
    spacing: float | Sequence[float] = 1.0,
    compressed: bool = False,
) -> PointSourcePSF:
    """Measure a PSF from a photo of one or more point lights.

    Steps, in linear light: the background (a plane, for uneven light) and
    its noise are fitted to the outer band of the frame (sigma-clipped least
    squares, MAD; a normal distribution clipped at zero where the photo's
    dark is clipped there) and subtracted; what stays within the noise is
    tapered to zero smoothly, so no hard edge is left; each source is a
    connected blob of the tapered light, and one of two peaks parted by a
    dip (two lights blended) is left out while sources of one peak are
    there; its sub-pixel centroid is moved to the centre
    sample of the smallest odd box holding `energy` of its light; several
    sources are registered that way and averaged, weighted by their light.
    A bead of known size is then deconvolved out of the average.

    Parameters
    ----------
    image : array_like
        The photo: 2D (optionally with colour channels) or a 3D bead stack.
    rois : sequence of regions, optional
        Regions that each hold one source, a region being one
        ``(start, stop)`` pair per spatial axis. By default the whole frame.
    sources : int or 'auto'
        Without `rois`: how many of the brightest isolated sources to
        average, or ``'auto'`` for all that hold at least a tenth of the
        brightest one's light (with `rois`, 1: each region holds one).
    encoding : {'auto', 'srgb', 'linear'}
        Whether values are gamma-encoded (``'auto'``: sRGB for uint8).
    channel_axis : int, optional
        Axis of colour channels: each gets its own PSF, all share the
        sources' positions, so relative offsets between the channels
        (lateral chromatic aberration) are kept.
    energy : float
        Fraction of the light the cropped PSF keeps.
    symmetric : bool
        Average over rotations about the centre (about the optical axis for
        a 3D stack): less noise, for defocus discs and beads.
    saturation : float, 'auto' or None
        The sensor's saturation level in the photo's values, to report
        clipped sources (see :func:`~napari_deblur.engine.saturation.saturation_level`).
    bead_diameter : float, optional
        Diameter of the beads (in the unit of `spacing`): a bead image is
        the PSF blurred by the bead's ball, which Richardson-Lucy takes out,
        stopped once the PSF fits the average to its noise. For beads
        smaller than the resolution (under about a third of the FWHM), leave
        it out.
    spacing : float or sequence of float
        Size of a sample along each spatial axis (a stack's voxel size), in
        the unit of `bead_diameter`.
    compressed : bool
        The photo was stored with lossy compression (a JPEG below quality
        98): its noise, which sets what counts as light, is measured on 2 x 2
        blocks, as the compression left it (2D photos of at least 8 samples
        a side; JPEG holds no stacks) (measured on its finest detail it
        was nearly nil, and at quality 75 the JPEG's ringing round the light
        grew the PSF's box from 13 to 65 samples).

    Returns
    -------
    PointSourcePSF
        The PSF and the report. Clipping and weak sources also raise a
        :class:`PSFQualityWarning`.

    Raises
    ------
    ValueError
        If no light stands out of the background, or an argument is invalid.
    """
    raw = np.asarray(image)
    if raw.dtype.kind not in "iubf" or raw.ndim < 2 - (channel_axis is not None) or raw.size == 0:
        raise ValueError(f"image must be a non-empty real array, got {raw.dtype} {raw.shape}")
    if not np.all(np.isfinite(raw)):
        raise ValueError("image (the point-light photo) contains NaN or infinite values")
    if channel_axis is not None and not (
        isinstance(channel_axis, (int, np.integer)) and -raw.ndim <= channel_axis < raw.ndim
    ):
        raise ValueError(f"channel_axis {channel_axis!r} is not an axis of a {raw.ndim}D image")
    if not (isinstance(energy, Real) and 0 < energy <= 1):
        raise ValueError(f"energy must be in (0, 1], got {energy!r}")
    if not (sources == "auto" or (isinstance(sources, (int, np.integer)) and sources >= 1)):
        raise ValueError(f"sources must be a positive integer or 'auto', got {sources!r}")
    if rois is not None and sources != 1:
        raise ValueError(
            f"sources={sources!r} counts lights in the whole frame, and each of rois holds "
            "one light: give one or the other"
        )
    encoding = resolve_encoding(encoding, raw.dtype)
    raw = raw[None] if channel_axis is None else np.moveaxis(raw, channel_axis, 0)
    linear = to_linear(raw, encoding)
    spatial = linear.shape[1:]
    regions = _regions(rois, spatial)
    bead = None if bead_diameter is None else _bead(bead_diameter, spacing, spatial)
    if rois is None and bead is None and not symmetric and encoding == "linear" and _is_clean(raw):
        # A PSF cleaned before, or a model: every value is light already.
        # An even axis gets a zero sample at its end: the same filter (a
        # kernel's centre is sample k // 2 either way) in an odd box. A
        # copy: the caller's array stays theirs.
        raw = np.pad(raw, [(0, 0)] + [(0, 1 - n % 2) for n in raw.shape[1:]])
        total = raw.sum(axis=0) / raw.shape[0]
        return PointSourcePSF(
            psf=raw[0] if channel_axis is None else raw,
            each=raw if channel_axis is None else raw[None],
            centres=centroid(total)[None],
            fwhm=_fwhm(total),
            energy_radius=_energy_radius(total, 0.5),
            snr=np.inf,
            background=0.0,
            noise=0.0,
            clipped=0,
            encoding=encoding,
        )

    floor = quantisation_noise(raw, encoding)
    count = sources if rois is None else 1
    found = [_find_sources(linear, box, count, floor, compressed) for box in regions]
    blobs = [blob for f in found for blob in f.blobs]
    background = float(np.mean([f.background for f in found]))
    noise = float(np.sqrt(np.mean([f.noise**2 for f in found])))

    half = np.max([_energy_half_widths(b.total, b.anchor, energy) for b in blobs], axis=0)
    # An odd box no larger than the frame: a PSF as large as the frame (a
    # lensless camera, a bead stack of the image's size) keeps its size.
    half = np.minimum(half, [(n - 1) // 2 for n in spatial])
    stack, fluxes = [], []
    for blob in blobs:
        stack.append(_centred_window(blob, half))
        fluxes.append(blob.signal.sum(axis=tuple(range(1, blob.signal.ndim))))
    fluxes = np.array(fluxes)
    weights = fluxes / fluxes.sum(axis=0)
    light = sum(w.reshape((-1,) + (1,) * len(spatial)) * p for w, p in zip(weights, stack))
    # The noise of each channel, as a share of its light: of the average and
    # of each source's window.
    channel_noise = noise / np.sqrt(len(light))
    shares = channel_noise * np.sqrt((weights**2).sum(axis=0)) / (weights * fluxes).sum(axis=0)
    psf = _finish(light, symmetric, bead, shares)
    # One source is its own average: its PSF is not cleaned twice.
    each = (
        psf[None]
        if len(stack) == 1
        else np.stack(
            [_finish(p, symmetric, bead, channel_noise / f) for p, f in zip(stack, fluxes)]
        )
    )
    brightest = blobs[int(np.argmax(fluxes.sum(axis=1)))]
    snr = float(brightest.total.max()) / noise if noise > 0 else np.inf
    total = psf.sum(axis=0) / psf.shape[0]
    # A noise-free floating-point kernel is a model: no sensor clipped it.
    level = None if noise == 0 and floor is None else saturation_level(raw, saturation)
    clipped = 0 if level is None else sum(_clipped_samples(raw[b.window], level) for b in blobs)
    result = PointSourcePSF(
        psf=psf[0] if channel_axis is None else psf,
        each=each[:, 0] if channel_axis is None else each,
        centres=np.array([b.centre for b in blobs]),
        fwhm=_fwhm(total),
        energy_radius=_energy_radius(total, 0.5),
        snr=snr,
        background=background,
        noise=noise,
        clipped=clipped,
        encoding=encoding,
        bead_diameter=bead_diameter,
    )
    problems = result.problems()
    if rois is None and sources != "auto" and len(blobs) < sources:
        problems.append(
            f"{len(blobs)} of the {sources} sources asked for stand alone inside the frame: "
            "the PSF is theirs"
        )
    elif rois is None and sources == "auto" and (left_out := sum(f.left_out for f in found)):
        problems.append(
            f"{left_out} bright sources were left out, too near the frame's edge or another "
            f"source; {len(blobs)} used"
        )
    if spikes := sum(f.spikes for f in found):
        problems.append(
            f"{spikes} lone bright sample(s) (hot pixels, cosmic rays) left out of the photo"
        )
    if blends := sum(f.blends for f in found):
        problems.append(
            f"{blends} bright source(s) left out as two lights or more blended into one "
            "(peaks parted by a dip)"
        )
    for problem in problems:
        warnings.warn(problem, PSFQualityWarning, stacklevel=2)
    return result


@dataclass(frozen=True)
class _Blob:
    """One source: its light (channels first, background-free) near where it is."""

    signal: np.ndarray
    window: tuple[slice, ...]
    centre: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.signal.sum(axis=0)

    @property
    def anchor(self) -> np.ndarray:
        start = np.array([s.start for s in self.window[1:]])
        return np.round(self.centre).astype(int) - start


@dataclass(frozen=True)
class _Found:
    blobs: list[_Blob]
    background: float
    noise: float
    #: Bright sources not used: too near the frame's edge or another source.
    left_out: int = 0
    #: Sources left out as two lights or more blended into one.
    blends: int = 0
    #: Lone bright samples (hot pixels, cosmic rays) mended.
    spikes: int = 0


def _regions(rois, spatial: tuple[int, ...]) -> list[tuple[slice, ...]]:
    if rois is None:
        return [tuple(slice(0, n) for n in spatial)]
    regions = []
    for roi in rois:
        if len(roi) != len(spatial):
            raise ValueError(f"each roi needs one (start, stop) per spatial axis, got {roi}")
        box = tuple(slice(max(0, int(a)), min(n, int(b))) for (a, b), n in zip(roi, spatial))
        if any(s.stop - s.start < 3 for s in box):
            raise ValueError(
                f"roi {roi} holds under 3 samples of the image of shape {spatial} along an "
                "axis (it lies outside, or is too thin to hold a light)"
            )
        regions.append(box)
    if not regions:
        raise ValueError("rois is empty; give at least one region or None")
    return regions


def _find_sources(
    linear: np.ndarray,
    box: tuple[slice, ...],
    count: int | str,
    floor: np.ndarray | None,
    compressed: bool,
) -> _Found:
    """Background-free blobs of the brightest isolated sources inside `box`.

    `floor` is the noise that rounding alone puts in integer data (per
    channel), None for floating-point data; `compressed` as for
    :func:`psf_from_point_source`.
    """
    region = linear[(slice(None),) + box]
    # Each channel's outer band as noise clipped at zero, where it is.
    censored = [_censored_background(channel[_band(channel.shape)]) for channel in region]
    fits = [
        _background(channel, compressed, clipped) for channel, clipped in zip(region, censored)
    ]
    clean_band = all(
        float(np.abs(channel[_band(channel.shape)]).max()) <= np.abs(channel).max() / MAX_PHOTO_SNR
        for channel in region
    )
    if floor is not None:
        # A flat, finely quantised background can read as noise-free.
        fits = [(plane, max(noise, q)) for (plane, noise), q in zip(fits, floor)]
    elif (
        clean_band
        or all(
            max(noise, abs(float(channel.min()))) <= np.abs(channel).max() / MAX_PHOTO_SNR
            and clipped is None
            for (_, noise), channel, clipped in zip(fits, region, censored)
        )
        or (
            region.shape == linear.shape
            and region.min() >= 0
            and all(
                noise == 0 and np.allclose(channel, plane, rtol=1e-6, atol=0)
                for (plane, noise), channel in zip(fits, region)
            )
        )
    ):
        # No camera photographs a point light this cleanly (noise and darkest
        # sample, or the whole outer band, at a thousandth of the peak, its
        # noise not clipped at zero; or,
        # the whole array given, no noise and as bright at the border as
        # within, a box blur): floating-point data this clean is a model
        # PSF, whose every value is light. A smooth stack on a camera's
        # offset (a bead stack averaged down) is a photo, and a flat region
        # of a photo holds no light.
        fits = [(np.zeros_like(channel), 0.0) for channel in region]
    elif region.min() >= 0:
        # Non-negative floats whose band sits within the noise of zero have no
        # background to remove (a PSF cleaned before): removing one would eat
        # into its tail. Noise clipped at zero sits there too, and is removed.
        fits = [
            (
                np.zeros_like(plane)
                if abs(float(plane.mean())) <= noise and clipped is None
                else plane,
                noise,
            )
            for (plane, noise), clipped in zip(fits, censored)
        ]
    signal = region - np.stack([plane for plane, _ in fits])
    noise = float(np.sqrt(sum(n**2 for _, n in fits)))
    total = signal.sum(axis=0)
    if noise > 0 and len(region) > 1:
        # The channels of one sensor share their noise (demosaicing, a grey
        # photo stored as RGB): their sum's is measured on it, and is at
        # least independent channels'.
        noise = max(noise, _band_noise(total, compressed))
    spikes = _spikes(total, noise)
    if spikes.any():
        # A hot pixel or a cosmic ray: no light through optics is one sample
        # wide. Brighter than a bead, it was taken for the PSF.
        signal = _mended(signal, spikes)
        total = signal.sum(axis=0)
    weight, core, smooth, level = _light_maps(total, noise)
    labels, count_found = ndimage.label(core)
    if count_found == 0:
        raise ValueError("the point-source image holds no light above its background")
    index = np.arange(1, count_found + 1)
    light = np.clip(total, 0, None) * weight
    # Light at the level of rounding errors is no light.
    if not light.max() > 1e-6 * float(np.abs(region).max()):
        raise ValueError("the point-source image holds no light above its background")
    fluxes = ndimage.sum_labels(light, labels, index)
    if not fluxes.max() > 0:
        raise ValueError("the point-source image holds no light above its background")
    order = index[np.argsort(fluxes)[::-1]]
    candidates = [
        label for label in order if fluxes[label - 1] >= MIN_RELATIVE_FLUX * fluxes.max()
    ]
    boxes = ndimage.find_objects(labels)
    # Two lights blended into one are brighter than one, and their average
    # is no PSF: left out while a source of one peak is there to use.
    blended = {
        label
        for label in candidates
        if _blended(
            np.where(labels[boxes[label - 1]] == label, smooth[boxes[label - 1]], 0), level
        )
    }
    blends_left_out = 0
    if blended and len(blended) < len(candidates):
        blends_left_out = len(blended)
        candidates = [label for label in candidates if label not in blended]
    windows = {label: _dilate(boxes[label - 1], total.shape) for label in candidates}
    if count == 1:
        chosen = candidates[:1]
    else:
        # Several sources: only those whose surroundings hold no other source
        # and whose core lies inside the frame (the faint rest of their light
        # within EDGE_MARGIN of it), else the brightest alone. A stack's
        # planes (its first axis) hold a widefield PSF's light from end to
        # end: there, a bead may reach the first and last planes.
        across = range(total.ndim - 2 if total.ndim >= 3 else 0, total.ndim)
        chosen = [
            label
            for label in candidates
            if all(
                boxes[label - 1][a].start >= EDGE_MARGIN
                and boxes[label - 1][a].stop <= total.shape[a] - EDGE_MARGIN
                for a in across
            )
            and not any(_overlap(windows[label], boxes[o - 1]) for o in candidates if o != label)
        ]
        chosen = (chosen if count == "auto" else chosen[:count]) or candidates[:1]
    blobs = []
    for label in chosen:
        window = windows[label]
        # Keep the source's own light and its faint surroundings (rings, the
        # tail of the taper), not the other sources'.
        mask = ~np.isin(labels[window], [c for c in candidates if c != label])
        light = np.clip(signal[(slice(None),) + window] * (weight[window] * mask), 0, None)
        start = np.array([b.start + w.start for b, w in zip(box, window)])
        centre = _centre(light.sum(axis=0)) + start
        global_window = (slice(None),) + tuple(
            slice(b.start + w.start, b.start + w.stop) for b, w in zip(box, window)
        )
        blobs.append(_Blob(light, global_window, centre))
    levels = [float(plane.mean()) for plane, _ in fits]
    return _Found(
        blobs,
        float(np.mean(levels)),
        noise,
        len(candidates) - len(chosen),
        blends_left_out,
        int(spikes.sum()),
    )


def _centre(light: np.ndarray) -> np.ndarray:
    """Where a source is: the centroid of its light, of its core in a stack.

    A stack cuts off a widefield PSF's out-of-focus light, which fills every
    plane, at its first and last planes; unless the bead is midway, that
    pulls the centroid of all the light towards the middle of the stack. The
    light above half the peak (the focus) is not cut off.
    """
    if light.ndim >= 3:
        light = np.clip(light - light.max() / 2, 0, None)
    return centroid(light)


#: Samples between a source's core and the frame's edge, for the faint rest
#: of its light, when several sources are averaged.
EDGE_MARGIN = 3


def _dilate(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Widen a blob's bounding box by half its size (at least 3 samples) each way."""
    out = []
    for s, n in zip(box, shape):
        margin = max(3, (s.stop - s.start) // 2)
        out.append(slice(max(0, s.start - margin), min(n, s.stop + margin)))
    return tuple(out)


def _overlap(a: tuple[slice, ...], b: tuple[slice, ...]) -> bool:
    return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b))


def _is_clean(raw: np.ndarray) -> bool:
    """Whether `raw` (channels first) is already a PSF: what this module makes, or a model.

    Non-negative floats, unit sum per channel, the channels' mean light
    centred on the centre sample ``k // 2``, or, along an even axis, on it
    or half a sample before it (a box of even width): no photo is all of
    that.
    """
    if raw.dtype.kind != "f" or raw.min() < 0:
        return False
    sums = raw.sum(axis=tuple(range(1, raw.ndim)), dtype=np.float64)
    if not np.allclose(sums, 1, atol=1e-3):
        return False
    shape = np.array(raw.shape[1:])
    offset = centroid(raw.sum(axis=0)) - shape // 2
    lowest = np.where(shape % 2 == 0, -0.6, -0.1)
    return bool(np.all((offset >= lowest) & (offset <= 0.1)))


def _band(shape: tuple[int, ...]) -> np.ndarray:
    """The outer band of a frame, a sixteenth of each side wide (at least one sample)."""
    band = np.zeros(shape, dtype=bool)
    for axis, n in enumerate(shape):
        w = max(1, n // 16)
        sel = [slice(None)] * len(shape)
        sel[axis] = np.r_[0:w, n - w : n]
        band[tuple(sel)] = True
    return band


def _band_noise(image: np.ndarray, compressed: bool) -> float:
    """The white noise of the frame's outer band (finest wavelet details)."""
    # A compressed photo's noise is measured on 2 x 2 blocks of the band: the
    # same for white noise (the band holds no scene), and what a JPEG's
    # compression, which zeroes the finest detail's noise, leaves of it.
    blocks = 2 if compressed and image.ndim == 2 and min(image.shape) >= 8 else 1
    return float(estimate_noise(image, mask=_band(image.shape), scale=blocks))


def _background(
    image: np.ndarray, compressed: bool, censored: tuple[float, float] | None
) -> tuple[np.ndarray, float]:
    """Background and noise level of a photo of point lights.

    `censored` is the band's :func:`_censored_background`, taken for a
    photo's where its noise is clipped at zero.

    The noise is the white noise of the frame's outer band (finest wavelet
    details), which smooth structure such as a PSF's tail does not inflate.
    In a photo, a plane (constant plus one slope per axis) fitted to the band
    absorbs uneven illumination and stray light; the fit is least squares,
    repeated without the samples more than 3 robust standard deviations away
    (the tail of the source). In a stack, every plane holds a widefield PSF's
    light, spread ever wider out of focus, so the band is no background: the
    background is the darkest level the stack reaches (the camera's offset).
    """
    band = _band(image.shape)
    noise = _band_noise(image, compressed)
    if image.ndim >= 3:
        return np.full_like(image, estimate_background(image)), noise
    if censored is not None:
        level, noise = censored
        return np.full_like(image, level), noise
    coords = np.indices(image.shape, dtype=np.float64)
    design = np.stack([np.ones(int(band.sum()))] + [c[band] for c in coords], axis=1)
    values = image[band].astype(np.float64)
    keep = np.ones(values.size, dtype=bool)
    for _ in range(5):
        params = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = values - design @ params
        spread = 1.4826 * np.median(np.abs(residual[keep]))
        new_keep = np.abs(residual) <= 3 * spread if spread > 0 else residual == 0
        if new_keep.sum() < design.shape[1] * 4 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    plane = params[0] + sum(p * c for p, c in zip(params[1:], coords))
    return plane.astype(image.dtype), noise


def _censored_background(values: np.ndarray) -> tuple[float, float] | None:
    """Background level and noise of a dark band whose noise is clipped at zero, or None.

    Clipped at zero, noise loses its negative half: the wavelet details
    read it as about half its size, and the light a source's box sums
    keeps its positive half, which a box of any size gains more of (four
    Gaussian lights, noise of 1% of the peak clipped, gave a PSF of 39 x 43
    samples for 13 x 13). The noise is that of a normal distribution fitted
    to the quantiles above the clipped share, and the background the mean
    of that distribution clipped, which the noise's samples then average
    to. None if too few samples are at zero, or too many to fit.
    """
    share = float(np.mean(values == 0))
    if not CLIPPED_DARK_SHARE < share < 0.9 or float(values.min()) < 0:
        return None
    shares = share + (1 - share) * np.array([1 / 3, 2 / 3])
    low, high = np.quantile(values.astype(np.float64), shares)
    z_low, z_high = special.ndtri(shares)
    noise = (high - low) / (z_high - z_low)
    if not noise > 0:
        return None
    mean = low - noise * z_low
    # The clipped distribution's mean: its samples above zero, and zero.
    a = -mean / noise
    level = mean * special.ndtr(-a) + noise * np.exp(-(a**2) / 2) / np.sqrt(2 * np.pi)
    return float(level), float(noise)


#: The largest share of a sample's light its brightest face neighbour holds
#: for it to be a lone bright sample, not light through optics: a bead's
#: neighbours hold 50-70% of its peak, a star's of 1.5 px FWHM about 25%.
SPIKE_SHARE = 0.1


def _spikes(total: np.ndarray, noise: float) -> np.ndarray:
    """Lone bright samples (hot pixels, cosmic rays) beside light of several samples.

    A sample 8 noise levels bright, and at least :data:`MIN_RELATIVE_FLUX`
    of the brightest light of several samples, whose face neighbours each
    hold under :data:`SPIKE_SHARE` of it; none when there is no such light
    (a light too small for its samples). Fainter ones do not sway the PSF
    (in a dark 8-bit photo, whose noise reads as its rounding, single
    levels of noise stood 8 levels out).
    """
    none = np.zeros(total.shape, dtype=bool)
    if noise == 0:
        return none
    neighbours = ndimage.maximum_filter(
        total, footprint=_face_neighbours(total.ndim), mode="nearest"
    )
    spikes = (total > 8 * noise) & (neighbours < SPIKE_SHARE * total)
    peaks = (total > 8 * noise) & (total == ndimage.maximum_filter(total, size=3)) & ~spikes
    if not peaks.any():
        return none
    return spikes & (total >= MIN_RELATIVE_FLUX * total[peaks].max())


def _face_neighbours(ndim: int) -> np.ndarray:
    """A footprint of the samples sharing a face with the centre one (not itself)."""
    cross = ndimage.generate_binary_structure(ndim, 1)
    cross[(1,) * ndim] = False
    return cross


def _mended(signal: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """`signal` (channels first) with the `spikes` samples the mean of their face neighbours."""
    cross = _face_neighbours(spikes.ndim)
    kernel = cross / cross.sum()
    mended = signal.copy()
    for channel in mended:
        channel[spikes] = ndimage.convolve(channel, kernel, mode="nearest")[spikes]
    return mended


#: Depth of the dip, as a share of the lower peak, that parts two lights
#: blended into one source: a PSF of one peak (a disc's flat top, a ring)
#: stays above it between its brightest samples; two Gaussian lights 3
#: sigmas apart dip to 64%.
BLEND_DIP = 0.7


def _blended(light: np.ndarray, level: float) -> bool:
    """Whether a source's smoothed light holds two peaks parted by a dip.

    The two highest local maxima above half the peak lie apart when the
    light is cut at :data:`BLEND_DIP` of the lower one, at least 4 noise
    levels (`level`) below it.
    """
    maxima = (light == ndimage.maximum_filter(light, size=3)) & (light > light.max() / 2)
    heights = np.sort(light[maxima])
    if heights.size < 2:
        return False
    lower = heights[-2]
    cut = BLEND_DIP * lower
    if lower - cut < 4 * level:
        return False
    parts, _ = ndimage.label(light > cut)
    peaks = parts[maxima & (light >= lower)]
    return len(np.unique(peaks)) > 1


def _light_maps(
    total: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Where the light is: a weight in [0, 1] for the light kept, and the sources' cores.

    Also the smoothed copy the light is judged on, and its noise level.

    The light is judged on a copy smoothed by a Gaussian of 1 px, against the
    noise of that copy: the weight ramps from 0 at 2 to 1 at 4 of its
    standard deviations and is smoothed too, so the PSF fades out instead of
    stopping at an edge; the cores, which tell the sources apart, are where
    it exceeds 5 standard deviations.
    """
    if noise == 0:
        light = total > 0
        return light.astype(total.dtype), light, total.astype(np.float64), 0.0
    smooth = ndimage.gaussian_filter(total.astype(np.float64), 1.0)
    impulse = np.zeros((9,) * total.ndim)
    impulse[(4,) * total.ndim] = 1
    # Noise of the smoothed image: sigma times the L2 norm of the Gaussian kernel.
    level = noise * float(np.sqrt((ndimage.gaussian_filter(impulse, 1.0) ** 2).sum()))
    ramp = np.clip((smooth / level - 2) / 2, 0, 1)
    weight = ndimage.gaussian_filter(ramp, 1.0).astype(total.dtype)
    return weight, smooth > 5 * level, smooth, level


def _energy_half_widths(total: np.ndarray, anchor: np.ndarray, energy: float) -> np.ndarray:
    """Per-axis half-widths round `anchor` whose box keeps at least `energy` of the light."""
    light = total.sum(dtype=np.float64)
    # A box keeps at least 1 - sum(1 - e_axis) of the light (union bound).
    per_axis = 1 - (1 - energy) / total.ndim
    half = []
    for axis, a in enumerate(anchor):
        profile = total.sum(
            axis=tuple(i for i in range(total.ndim) if i != axis), dtype=np.float64
        )
        n = profile.size
        for h in range(max(a, n - 1 - a) + 1):
            if profile[max(0, a - h) : a + h + 1].sum() >= per_axis * light:
                break
        half.append(h)
    return np.array(half)


def _centred_window(blob: _Blob, half: np.ndarray) -> np.ndarray:
    """The blob in a box of ``2 half + 1`` samples, its centroid moved to the centre sample."""
    anchor = blob.anchor
    window = tuple(slice(a - h - 2, a + h + 3) for a, h in zip(anchor, half))
    pad = [(0, 0)] + [
        (max(0, -w.start), max(0, w.stop - n)) for w, n in zip(window, blob.total.shape)
    ]
    padded = np.pad(blob.signal, pad)
    window = (slice(None),) + tuple(
        slice(w.start + p[0], w.stop + p[0]) for w, p in zip(window, pad[1:])
    )
    start = np.array([s.start for s in blob.window[1:]])
    shift = anchor + start - blob.centre
    inner = tuple(slice(2, -2) for _ in half)
    return np.stack([shift_subpixel(channel, shift)[inner] for channel in padded[window]])


def _finish(light: np.ndarray, symmetric: bool, bead, noise_shares) -> np.ndarray:
    """A PSF (channels first) from registered light: non-negative, unit sum.

    Symmetrised first if asked, and the bead's size taken out if given.
    """
    if symmetric:
        light = np.stack([_rotational_average(channel) for channel in light])
    psf = np.stack([normalize_psf(np.clip(channel, 0, None)) for channel in light])
    if bead is not None:
        psf = np.stack([_without_bead(c, bead, share) for c, share in zip(psf, noise_shares)])
    return psf


def _bead(diameter: float, spacing, frame: tuple[int, ...]) -> np.ndarray:
    """A bead's ball sampled on voxels of size `spacing`, unit sum, if it fits in `frame`."""
    ndim = len(frame)
    sizes = np.asarray(spacing, dtype=float)
    if (
        sizes.ndim > 1
        or sizes.size not in (1, ndim)
        or not np.all(np.isfinite(sizes) & (sizes > 0))
    ):
        raise ValueError(
            f"spacing must be one positive size or one per axis ({ndim}), got {spacing}"
        )
    if not (isinstance(diameter, Real) and np.isfinite(diameter) and diameter > 0):
        raise ValueError(f"bead_diameter must be a positive size, got {diameter!r}")
    radii = np.broadcast_to(diameter / 2 / sizes, (ndim,))
    across = tuple(2 * int(np.ceil(r)) + 1 for r in radii)
    if any(b > n for b, n in zip(across, frame)):
        # Said before the ball is made: a unit mistaken makes it gigabytes.
        raise ValueError(
            f"bead_diameter gives a bead of {across} samples, larger than the photo "
            f"{frame}: check it and the spacing"
        )
    # A sharp rim: pixel integration alone softens it.
    return defocus_psf(radii, edge=0.05)


def _without_bead(measured: np.ndarray, bead: np.ndarray, noise: float) -> np.ndarray:
    """The PSF that blurs `bead` into `measured` (unit sum), by Richardson-Lucy.

    The PSF is zero beyond the measured box (which holds its light), and
    Richardson-Lucy keeps it non-negative with unit sum; it stops when the
    fit reaches the noise of the measurement (Morozov) or stops improving.
    """
    if any(b > m for b, m in zip(bead.shape, measured.shape)):
        raise ValueError(
            f"bead_diameter gives a bead of {bead.shape} samples, larger than the measured "
            f"spot {measured.shape}: check it and the spacing"
        )
    operator = Convolution(bead, measured.shape, boundary="zero", dtype=measured.dtype)
    stop = Discrepancy(noise**2) | RelativeChange(1e-3) | MaxIterations(1000)
    return normalize_psf(RichardsonLucy(operator, stop=stop).run(measured))


def _rotational_average(psf: np.ndarray, angles: int = 36) -> np.ndarray:
    """Average of `psf` rotated about its centre (the last two axes)."""
    rotated = [
        ndimage.rotate(psf, angle, axes=(-2, -1), reshape=False, order=1, mode="constant")
        for angle in np.linspace(0, 360, angles, endpoint=False)
    ]
    return np.mean(rotated, axis=0)


def _fwhm(psf: np.ndarray) -> tuple[float, ...]:
    """Width at half maximum along each axis, through the middle of the samples above it.

    Between the outermost crossings of half the peak, through the sample
    nearest the centroid of those above it: the samples of a flat top (a
    defocus disc) are equal but for their noise, and the brightest of them
    may lie on its rim, where a profile through it is a chord.
    """
    half = psf.max() / 2
    centre = np.rint(ndimage.center_of_mass(psf > half)).astype(int)
    peak = np.unravel_index(np.argmax(psf), psf.shape)
    widths = []
    for axis in range(psf.ndim):
        above = np.array([], dtype=int)
        # Through the brightest sample where that middle lies outside the
        # samples above half (a ring: the width was read as 0).
        for through in (centre, peak):
            index = list(through)
            index[axis] = slice(None)
            profile = psf[tuple(index)]
            above = np.flatnonzero(profile > half)
            if above.size:
                break
        left, right = int(above[0]), int(above[-1])
        # Linear interpolation of the half-maximum crossings.
        lo = (
            left - (profile[left] - half) / (profile[left] - profile[left - 1])
            if left > 0
            else left - 0.5
        )
        hi = (
            right + (profile[right] - half) / (profile[right] - profile[right + 1])
            if right < profile.size - 1
            else right + 0.5
        )
        widths.append(float(hi - lo))
    return tuple(widths)


def _energy_radius(psf: np.ndarray, fraction: float) -> float:
    """Radius round the centre sample of the ball holding `fraction` of the light."""
    centre = np.array([n // 2 for n in psf.shape])
    coords = np.indices(psf.shape).reshape(psf.ndim, -1).T - centre
    radius = np.linalg.norm(coords, axis=1)
    order = np.argsort(radius)
    cumulative = np.cumsum(psf.ravel()[order]) / psf.sum()
    return float(radius[order][np.searchsorted(cumulative, fraction)])


def _clipped_samples(window: np.ndarray, level: float) -> int:
    """Samples at the saturation level; one alone is a sharp peak, not a flat top."""
    count = int(np.count_nonzero(window >= NEAR_SATURATION * level))
    return count if count >= 2 else 0

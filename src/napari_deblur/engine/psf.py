"""Point spread functions: models, measurement and the transfer function.

Convention: the centre of a PSF of size ``k`` along an axis is sample
``k // 2``. That sample is the zero shift of the convolution, so a PSF whose
mass sits there does not move the image, for odd and even sizes alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage, special

from . import backend


def _as_psf(psf, name: str = "psf") -> np.ndarray:
    psf = np.asarray(psf)
    if psf.ndim == 0 or psf.size == 0:
        raise ValueError(f"{name} must be a non-empty array, got shape {psf.shape}")
    if psf.dtype.kind not in "iubf":
        raise TypeError(f"{name} must hold real numbers, got {psf.dtype}")
    psf = psf.astype(backend.float_dtype(psf.dtype), copy=False)
    if not np.all(np.isfinite(psf)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return psf


def normalize_psf(psf) -> np.ndarray:
    """Scale `psf` to unit sum, so that blurring preserves total light.

    Parameters
    ----------
    psf : array_like
        Non-negative PSF of any dimensionality.

    Returns
    -------
    ndarray
        Floating copy with sum 1.

    Raises
    ------
    ValueError
        If `psf` is empty, not finite, or its sum is not positive.
    """
    psf = _as_psf(psf)
    total = float(psf.sum(dtype=np.float64))
    if not total > 0:
        raise ValueError(f"psf must have a positive sum, got {total:g}")
    return psf / psf.dtype.type(total)


def centroid(psf) -> np.ndarray:
    """Centre of mass of a non-negative `psf`, in sample coordinates."""
    psf = _as_psf(psf)
    total = psf.sum(dtype=np.float64)
    if not total > 0:
        raise ValueError("psf must have a positive sum to have a centroid")
    coords = np.indices(psf.shape, sparse=True)
    return np.array([float((c * psf).sum(dtype=np.float64) / total) for c in coords])


def shift_subpixel(image: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """Move `image` by `shift` samples per axis with cubic splines, outside = 0."""
    if not np.any(np.abs(shift) > 1e-6):
        return image.copy()
    moved = ndimage.shift(image, shift, order=3, mode="constant", prefilter=True)
    return moved.astype(image.dtype, copy=False)


def center_psf(psf) -> np.ndarray:
    """Move the centroid of `psf` to its centre sample ``k // 2``, sub-pixel.

    Parameters
    ----------
    psf : array_like
        Non-negative PSF.

    Returns
    -------
    ndarray
        Centred, non-negative PSF with unit sum and the same shape.
    """
    psf = normalize_psf(psf)
    centre = np.array([k // 2 for k in psf.shape], dtype=float)
    moved = np.clip(shift_subpixel(psf, centre - centroid(psf)), 0, None)
    return normalize_psf(moved)


def resize_psf(psf, shape: Sequence[int]) -> np.ndarray:
    """Pad with zeros or crop `psf` to `shape`, keeping its centre sample the centre.

    Parameters
    ----------
    psf : array_like
        PSF; its centre is sample ``k // 2`` on each axis.
    shape : sequence of int
        New size per axis.

    Returns
    -------
    ndarray
        The PSF in an array of `shape` (not renormalised after a crop).
    """
    psf = _as_psf(psf)
    shape = tuple(int(n) for n in shape)
    if len(shape) != psf.ndim or min(shape) < 1:
        raise ValueError(f"shape must give {psf.ndim} positive sizes, got {shape}")
    out = np.zeros(shape, dtype=psf.dtype)
    src, dst = [], []
    for k, n in zip(psf.shape, shape):
        # Align the centres k // 2 and n // 2.
        offset = n // 2 - k // 2
        lo = max(0, -offset)
        hi = min(k, n - offset)
        src.append(slice(lo, hi))
        dst.append(slice(lo + offset, hi + offset))
    out[tuple(dst)] = psf[tuple(src)]
    return out


def psf_to_otf(psf, shape: Sequence[int], *, origin: Sequence[int] | None = None) -> np.ndarray:
    """Transfer function (real FFT) of `psf` on a periodic grid of `shape`.

    The PSF is zero-padded to `shape` and rolled so that its centre sample
    ``k // 2`` lands on the origin: a centred delta has the transfer
    function 1 everywhere, with no phase ramp, for odd and even sizes.

    Parameters
    ----------
    psf : array_like
        PSF whose trailing ``len(shape)`` axes are spatial; leading axes
        (channels) are kept.
    shape : sequence of int
        Grid size per spatial axis, at least the PSF's size.
    origin : sequence of int, optional
        The PSF sample that goes to the grid's origin, per spatial axis,
        instead of the centre (a shift of the output by ``origin - k // 2``).

    Returns
    -------
    ndarray
        Complex array of shape ``leading + shape[:-1] + (shape[-1] // 2 + 1,)``.
    """
    psf = _as_psf(psf)
    ndim = len(shape)
    if psf.ndim < ndim:
        raise ValueError(f"psf has {psf.ndim} axes, fewer than the {ndim} of shape {shape}")
    kernel = psf.shape[psf.ndim - ndim :]
    if any(k > n for k, n in zip(kernel, shape)):
        raise ValueError(f"psf of size {kernel} does not fit a grid of {tuple(shape)}")
    padded = backend.embed(psf, (0,) * ndim, shape)
    axes = tuple(range(psf.ndim - ndim, psf.ndim))
    origin = [k // 2 for k in kernel] if origin is None else origin
    padded = np.roll(padded, [-int(o) for o in origin], axis=axes)
    return backend.rfftn(padded, axes)


def _default_shape(radius: Sequence[float]) -> tuple[int, ...]:
    return tuple(2 * int(np.ceil(r)) + 1 for r in radius)


def _grid(shape: Sequence[int], supersample: int) -> list[np.ndarray]:
    """Sample coordinates relative to the centre, `supersample` points per pixel."""
    axes = []
    for k in shape:
        fine = (np.arange(k * supersample) + 0.5) / supersample - 0.5 - k // 2
        axes.append(fine)
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def _bin(fine: np.ndarray, supersample: int) -> np.ndarray:
    """Average blocks of ``supersample`` samples per axis (pixel integration)."""
    for axis in range(fine.ndim):
        shape = list(fine.shape)
        shape[axis : axis + 1] = [shape[axis] // supersample, supersample]
        fine = fine.reshape(shape).mean(axis=axis + 1)
    return fine


def gaussian_psf(sigma, *, shape: Sequence[int] | None = None, ndim: int = 2) -> np.ndarray:
    """Gaussian PSF integrated over each pixel.

    Parameters
    ----------
    sigma : float or sequence of float
        Standard deviation in pixels, one value or one per axis.
    shape : sequence of int, optional
        Array size; by default odd and wide enough for +-4 sigma.
    ndim : int
        Dimensionality when `sigma` is a single value.

    Returns
    -------
    ndarray
        float64 PSF with unit sum.

    Examples
    --------
    >>> psf = gaussian_psf(1.5)
    >>> psf.shape, round(float(psf.sum()), 6)
    ((15, 15), 1.0)
    """
    sigma = np.broadcast_to(
        np.asarray(sigma, dtype=float), (ndim,) if np.ndim(sigma) == 0 else np.shape(sigma)
    )
    if np.any(sigma <= 0):
        raise ValueError(f"sigma must be positive, got {sigma.tolist()}")
    shape = _default_shape(4 * sigma) if shape is None else tuple(shape)
    # The integral of a Gaussian over a pixel is a difference of error functions.
    profiles = []
    for s, k in zip(sigma, shape):
        edges = np.arange(k + 1) - 0.5 - k // 2
        cdf = special.ndtr(edges / s)
        profiles.append(np.diff(cdf))
    psf = profiles[0]
    for p in profiles[1:]:
        psf = np.multiply.outer(psf, p)
    return normalize_psf(psf)


def defocus_psf(
    radius: float,
    *,
    shape: Sequence[int] | None = None,
    ndim: int = 2,
    edge: float = 1.0,
) -> np.ndarray:
    """Defocus (circle of confusion) PSF: a uniform disc, or ball, with a soft edge.

    Parameters
    ----------
    radius : float
        Radius of the disc in pixels.
    shape : sequence of int, optional
        Array size; by default odd and just large enough.
    ndim : int
        2 for a disc, 3 for a ball.
    edge : float
        Width in pixels of the linear fall-off at the rim (1 is the
        anti-aliased edge of a sharp disc; larger values model aberrations).

    Returns
    -------
    ndarray
        float64 PSF with unit sum.
    """
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if not edge > 0:
        raise ValueError(f"edge must be positive, got {edge}")
    shape = _default_shape([radius + edge / 2] * ndim) if shape is None else tuple(shape)
    dist = np.sqrt(
        sum(
            c**2
            for c in np.meshgrid(
                *[np.arange(k) - k // 2 for k in shape], indexing="ij", sparse=True
            )
        )
    )
    psf = np.clip((radius - dist) / edge + 0.5, 0, 1)
    return normalize_psf(psf)


def motion_psf(length: float, angle: float, *, shape: Sequence[int] | None = None) -> np.ndarray:
    """Linear motion blur: a straight segment of `length` pixels.

    Parameters
    ----------
    length : float
        Length of the path in pixels (0 gives a point).
    angle : float
        Direction in degrees, counter-clockwise from the column axis as
        seen on screen (row 0 at the top).
    shape : sequence of int, optional
        Array size (2D); by default odd and just large enough.

    Returns
    -------
    ndarray
        float64 PSF with unit sum; the segment is centred on the centre sample.
    """
    if length < 0:
        raise ValueError(f"length must be non-negative, got {length}")
    theta = np.deg2rad(angle)
    direction = np.array([-np.sin(theta), np.cos(theta)])
    half = length / 2
    shape = _default_shape(np.abs(direction) * half + 1) if shape is None else tuple(shape)
    # Sample the segment finely and splat each sample bilinearly: the exposure
    # spends equal time at every point of the path.
    count = max(2, int(np.ceil(length * 20)) + 1)
    t = np.linspace(-half, half, count)
    points = np.outer(t, direction) + np.array([k // 2 for k in shape])
    psf = np.zeros(shape)
    base = np.floor(points).astype(int)
    frac = points - base
    for dr in (0, 1):
        for dc in (0, 1):
            w = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
            r, c = base[:, 0] + dr, base[:, 1] + dc
            inside = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
            np.add.at(psf, (r[inside], c[inside]), w[inside])
    return normalize_psf(psf)


def airy_psf(
    wavelength: float,
    na: float,
    pixel_size: float,
    *,
    shape: Sequence[int] | None = None,
    supersample: int = 5,
) -> np.ndarray:
    """In-focus PSF of a circular aperture (Airy pattern), integrated over pixels.

    Parameters
    ----------
    wavelength : float
        Wavelength of the light, in the same unit as `pixel_size`.
    na : float
        Numerical aperture (``sin`` of the half-angle, times the index).
    pixel_size : float
        Pixel pitch in the object (or image) plane, same unit.
    shape : sequence of int, optional
        Array size; by default odd and covering four dark rings.
    supersample : int
        Samples per pixel and axis for the pixel integral.

    Returns
    -------
    ndarray
        float64 PSF with unit sum, ``I(r) = (2 J1(v) / v)^2`` with
        ``v = 2 pi NA r / wavelength``.
    """
    for name, value in (("wavelength", wavelength), ("na", na), ("pixel_size", pixel_size)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    first_zero = 0.61 * wavelength / na / pixel_size
    shape = _default_shape([4 * first_zero] * 2) if shape is None else tuple(shape)
    rows, cols = _grid(shape, supersample)
    v = 2 * np.pi * na * pixel_size / wavelength * np.hypot(rows, cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        amplitude = np.where(v > 0, 2 * special.j1(v) / v, 1.0)
    return normalize_psf(_bin(amplitude**2, supersample))


def widefield_psf(
    shape: Sequence[int],
    *,
    wavelength: float,
    na: float,
    voxel_size: Sequence[float],
    refractive_index: float = 1.518,
    supersample: int = 3,
) -> np.ndarray:
    """3D widefield fluorescence PSF by the scalar Born-Wolf model.

    ``h(r, z) = |int_0^1 J0(k NA r rho) exp(i k z sqrt(n^2 - NA^2 rho^2)) rho d rho|^2``
    with ``k = 2 pi / wavelength``: a perfect objective focused at the centre
    plane, no refractive-index mismatch.

    Parameters
    ----------
    shape : sequence of int
        (planes, rows, columns).
    wavelength : float
        Emission wavelength, in the unit of `voxel_size`.
    na : float
        Numerical aperture, less than `refractive_index`.
    voxel_size : sequence of float
        (plane spacing, row pitch, column pitch).
    refractive_index : float
        Index of the immersion medium and sample.
    supersample : int
        Samples per pixel and lateral axis for the pixel integral.

    Returns
    -------
    ndarray
        float64 PSF with unit sum.

    References
    ----------
    .. [1] M. Born and E. Wolf, *Principles of Optics*, ch. 8.8.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        raise ValueError(f"shape must be (planes, rows, columns), got {shape}")
    if not 0 < na < refractive_index:
        raise ValueError(f"na must be in (0, refractive_index), got {na}")
    dz, dy, dx = (float(v) for v in voxel_size)
    k = 2 * np.pi / wavelength
    rho, weight = np.polynomial.legendre.leggauss(256)
    rho = (rho + 1) / 2
    weight = weight / 2
    rows, cols = _grid(shape[1:], supersample)
    r = np.hypot(rows * dy, cols * dx)
    r_max = float(r.max())
    radii = np.linspace(0, r_max, int(np.ceil(r_max / min(dx, dy) * 4 * supersample)) + 2)
    bessel = special.j0(k * na * np.outer(radii, rho)) * (rho * weight)
    planes = []
    for iz in range(shape[0]):
        z = (iz - shape[0] // 2) * dz
        phase = np.exp(1j * k * z * np.sqrt(refractive_index**2 - (na * rho) ** 2))
        profile = np.abs(bessel @ phase) ** 2
        planes.append(_bin(np.interp(r, radii, profile), supersample))
    return normalize_psf(np.stack(planes))


def psf_from_point_source(
    image,
    *,
    roi: Sequence[tuple[int, int]] | None = None,
    energy: float = 0.995,
    channel_axis: int | None = None,
) -> np.ndarray:
    """A clean, centred, unit-sum PSF from a photo of one point light, in linear light.

    Steps: the background (a plane, for uneven light) and its noise are
    estimated from the outer band of the frame (sigma-clipped least squares
    and MAD) and subtracted; what
    stays within the noise outside the source is tapered to zero smoothly;
    the source is the connected blob round the brightest smoothed sample
    (inside `roi` when given); its centroid is moved to the centre sample of
    the smallest odd-sized box that holds `energy` of its light.

    Parameters
    ----------
    image : array_like
        Photo in linear light (2D, or 3D for a bead stack).
    roi : sequence of (start, stop), optional
        Region, one pair per spatial axis, that contains the source.
    energy : float
        Fraction of the PSF's light the cropped box must keep.
    channel_axis : int, optional
        Axis of colour channels: each channel gets its own background and
        unit sum, all share the source's position and box, so that the
        channels' relative offsets (lateral chromatic aberration) survive.

    Returns
    -------
    ndarray
        PSF with odd sizes and unit sum (per channel, channel axis first).
    """
    image = _as_psf(image, "image")
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    image = image[None] if channel_axis is None else np.moveaxis(image, channel_axis, 0)
    spatial = image.shape[1:]
    if roi is not None:
        if len(roi) != len(spatial):
            raise ValueError(f"roi must give one (start, stop) per spatial axis, got {roi}")
        box = tuple(slice(max(0, int(a)), min(n, int(b))) for (a, b), n in zip(roi, spatial))
        if any(s.stop - s.start < 1 for s in box):
            raise ValueError(f"roi {roi} does not overlap the image of shape {spatial}")
        image = image[(slice(None),) + box]
    fits = [_background(channel) for channel in image]
    signal = image - np.stack([plane for plane, _ in fits])
    total = signal.sum(axis=0)
    noise = float(np.sqrt(sum(n**2 for _, n in fits)))
    if noise > 0:
        signal = signal * _source_weight(total, noise)
    signal = np.clip(signal, 0, None)
    total = signal.sum(axis=0)
    # Light at the level of rounding errors is no light.
    if not total.max() > 1e-6 * float(np.abs(image).max()):
        raise ValueError("the point-source image holds no light above its background")
    centre = centroid(total)
    anchor = np.round(centre).astype(int)
    half = _energy_half_widths(total, anchor, energy)
    window = tuple(slice(a - h - 2, a + h + 3) for a, h in zip(anchor, half))
    pad = [(0, 0)] + [(max(0, -w.start), max(0, w.stop - n)) for w, n in zip(window, spatial)]
    padded = np.pad(signal, pad)
    window = (slice(None),) + tuple(
        slice(w.start + p[0], w.stop + p[0]) for w, p in zip(window, pad[1:])
    )
    inner = tuple(slice(2, -2) for _ in half)
    psfs = []
    for channel in padded[window]:
        moved = np.clip(shift_subpixel(channel, anchor - centre)[inner], 0, None)
        if not moved.sum() > 0:
            raise ValueError(
                "a channel of the point-source image holds no light above its background"
            )
        psfs.append(normalize_psf(moved))
    return psfs[0] if channel_axis is None else np.stack(psfs)


def _background(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Background plane and noise level, fitted to the outer band of the frame.

    A plane (constant plus one slope per axis) absorbs uneven illumination
    and stray light; the fit is least squares, repeated without the samples
    more than 3 robust standard deviations away (the tail of the source).
    """
    band = np.zeros(image.shape, dtype=bool)
    for axis, n in enumerate(image.shape):
        w = max(1, n // 16)
        sel = [slice(None)] * image.ndim
        sel[axis] = np.r_[0:w, n - w : n]
        band[tuple(sel)] = True
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
    return plane.astype(image.dtype), float(spread)


def _source_weight(signal: np.ndarray, noise: float) -> np.ndarray:
    """Weight in [0, 1]: 1 on the source, 0 on background noise, a smooth ramp between."""
    smooth = ndimage.gaussian_filter(signal.astype(np.float64), 1.0)
    # Noise of the smoothed image: sigma times the L2 norm of the Gaussian kernel.
    impulse = np.zeros((9,) * signal.ndim)
    impulse[(4,) * signal.ndim] = 1
    level = noise * float(np.sqrt((ndimage.gaussian_filter(impulse, 1.0) ** 2).sum()))
    weight = np.clip((smooth / level - 2) / 2, 0, 1)
    labels, _ = ndimage.label(weight > 0)
    peak = labels[np.unravel_index(np.argmax(smooth), smooth.shape)]
    weight[labels != peak] = 0
    return ndimage.gaussian_filter(weight, 1.0).astype(signal.dtype)


def _energy_half_widths(signal: np.ndarray, anchor: np.ndarray, energy: float) -> list[int]:
    """Per-axis half-widths round `anchor` whose box keeps at least `energy` of the light."""
    total = signal.sum(dtype=np.float64)
    # A box keeps at least 1 - sum(1 - e_axis) of the light (union bound).
    per_axis = 1 - (1 - energy) / signal.ndim
    half = []
    for axis, a in enumerate(anchor):
        profile = signal.sum(
            axis=tuple(i for i in range(signal.ndim) if i != axis), dtype=np.float64
        )
        n = profile.size
        # An odd box no larger than the frame: a PSF as large as the frame
        # (a lensless camera, a bead stack of the image's size) keeps its size.
        for h in range((n - 1) // 2 + 1):
            lo, hi = max(0, a - h), min(n, a + h + 1)
            if profile[lo:hi].sum() >= per_axis * total:
                break
        half.append(h)
    return half

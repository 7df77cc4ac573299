"""Linear operators of the blur model, each with its exact adjoint.

The contract of every operator is the dot test ``<A x, y> = <x, A^T y>``.
Arrays may carry leading batch axes (colour channels) that the operators
treat independently; the spatial axes are the trailing ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
from scipy import ndimage

from . import backend
from .psf import psf_to_otf

#: Boundary models of :class:`Convolution`.
BOUNDARIES = ("periodic", "reflect", "symmetric", "edge", "zero", "valid")

# Direct summation beats the FFT up to about 5 taps and ties near 9 (2 cores,
# 256^2 to 2048^2 float32 images; benchmarks/bench_convolution.py), so
# kernels of up to 8 taps go direct.
DIRECT_MAX_TAPS = 8


class Convolution:
    """Blur by a PSF under an explicit boundary model: ``y = A x``.

    The model is ``A = Mask . Crop . CircularConvolution . Pad``: the unknown
    is extended by the boundary rule, convolved on a grid large enough that
    nothing wraps round (for ``'zero'``, the grid's own zero fill is the
    extension), and the observed part is kept. For ``'valid'`` the
    unknown *is* the larger scene (the image plus a border of half the PSF)
    and the border pixels are simply not observed. The optional mask leaves
    out samples that are not observations of the blur (clipped highlights,
    bad pixels): the model says nothing there, and solvers fit the rest.

    Parameters
    ----------
    psf : array_like
        PSF with one axis per axis of `shape`. Its first `batch_ndim` axes
        have size 1 (one PSF for all channels) or the size of `shape`'s.
        Its centre is sample ``k // 2``.
    shape : sequence of int
        Shape of the observed image ``y``, batch axes first.
    boundary : {'periodic', 'reflect', 'symmetric', 'edge', 'zero', 'valid'}
        What lies beyond the frame: the image repeated (``'periodic'``, the
        plain FFT model), its mirror image (``'reflect'`` without,
        ``'symmetric'`` with the edge sample repeated), its edge value, zero,
        or an unknown scene (``'valid'``).
    batch_ndim : int
        Number of leading axes that are independent images (channels).
    method : {'auto', 'fft', 'direct'}
        Real FFTs with the PSF's transfer function cached, or direct
        summation (faster for PSFs of a few taps, chosen by ``'auto'``).
    dtype : dtype, optional
        Floating type of the computation; by default the PSF's.
    mask : array_like of bool, optional
        True where a sample of ``y`` is a valid observation, broadcastable
        to `shape`; all are when omitted.

    Attributes
    ----------
    shape_in, shape_out : tuple of int
        Shapes of the unknown ``x`` and of the observation ``y``.
    mask : ndarray or None
        The mask as 0/1 values of the computation's type, of `shape`.
    observed_count : int
        How many samples of ``y`` the model observes.
    """

    def __init__(
        self,
        psf,
        shape: Sequence[int],
        *,
        boundary: str = "periodic",
        batch_ndim: int = 0,
        method: str = "auto",
        dtype=None,
        mask=None,
    ):
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        if method not in ("auto", "fft", "direct"):
            raise ValueError(f"method must be 'auto', 'fft' or 'direct', got {method!r}")
        shape = tuple(int(n) for n in shape)
        # The operator computes in the PSF's array library, on its device.
        xp = backend.namespace(psf)
        psf = np.asarray(psf) if xp is np else psf
        if psf.ndim != len(shape):
            raise ValueError(
                f"psf has {psf.ndim} axes but the image has {len(shape)} ({shape}); "
                "give the PSF one axis per image axis"
            )
        dtype = backend.float_dtype(psf.dtype if dtype is None else dtype, xp)
        psf = backend.asarray(psf, dtype)
        batch, kernel = psf.shape[:batch_ndim], psf.shape[batch_ndim:]
        image = shape[batch_ndim:]
        if any(b not in (1, n) for b, n in zip(batch, shape[:batch_ndim])):
            raise ValueError(f"psf channels {batch} do not match the image's {shape[:batch_ndim]}")
        if boundary != "valid" and any(k > n for k, n in zip(kernel, image)):
            raise ValueError(
                f"psf of size {kernel} is larger than the image {image}; crop the PSF "
                "to the light spot or use a larger image"
            )
        self.psf = psf
        self.boundary = boundary
        self.batch_ndim = batch_ndim
        self.dtype = dtype
        self.shape_out = shape
        self.axes = tuple(range(batch_ndim, len(shape)))
        if xp is np:
            self.mask, self.observed_count = _mask(mask, shape, dtype)
        else:
            host = None if mask is None else backend.to_numpy(mask)
            self.mask, self.observed_count = _mask(host, shape, bool)
            if self.mask is not None:
                self.mask = backend.asarray(self.mask, dtype, like=psf)
        ndim = len(image)
        # Samples of the extended scene needed before and after each observed
        # one: y[j] sums x[j - (k - 1 - c)] .. x[j + c] with c = k // 2.
        reach = [(k - 1 - k // 2, k // 2) for k in kernel]
        if boundary == "valid":
            domain = tuple(n + k - 1 for n, k in zip(image, kernel))
        else:
            domain = image
        self.shape_in = shape[:batch_ndim] + domain
        taps = int(np.prod(kernel))
        # Direct summation is SciPy's: NumPy arrays only.
        self.direct = xp is np and (
            method == "direct" or (method == "auto" and taps <= DIRECT_MAX_TAPS)
        )

        # Non-periodic models extend the unknown just enough for every
        # observed sample (by the rule, or not at all for 'valid').
        self.pad_mode = {"periodic": "wrap", "valid": "zero"}.get(boundary, boundary)
        self.pad_widths = [(0, 0)] * ndim if boundary == "valid" else reach
        if self.direct:
            self._flipped = psf[(Ellipsis,) + (slice(None, None, -1),) * ndim]
            return
        if boundary == "periodic":
            # The plain FFT model: the grid is the image itself.
            self.pad_widths = [(0, 0)] * ndim
            self.fft_shape = image
            self.otf = psf_to_otf(psf, image)
        elif boundary == "zero":
            # The FFT's zero fill is the dark scene: the image at the grid's
            # start, the PSF centred on its origin, and a grid longer than the
            # image by the PSF's farther reach, k // 2, so that what wraps
            # round lands on zeros.
            self.pad_widths = [(0, 0)] * ndim
            self.fft_shape = backend.fast_shape([n + k // 2 for n, k in zip(image, kernel)])
            self.otf = psf_to_otf(psf, self.fft_shape)
        else:
            # The extended unknown (n + k - 1 samples) is zero-filled to a fast
            # size, where nothing wraps round; rolling the PSF by k - 1 rather
            # than k // 2 puts the observed part at the start of the grid.
            self.fft_shape = backend.fast_shape([n + k - 1 for n, k in zip(image, kernel)])
            self.otf = psf_to_otf(psf, self.fft_shape, origin=[k - 1 for k in kernel])
        if xp is np and dtype == np.float32:
            self.otf = self.otf.astype(np.complex64)

    def __repr__(self) -> str:
        return (
            f"Convolution(psf={self.psf.shape}, shape={self.shape_out}, "
            f"boundary={self.boundary!r}, {'direct' if self.direct else 'fft'})"
        )

    def with_fft(self) -> Convolution:
        """The same operator computed with FFTs (itself when it already is).

        Methods that work on the transfer function (Wiener, ADMM) need one
        even where direct summation is the faster way to blur.
        """
        if not self.direct:
            return self
        return Convolution(
            self.psf,
            self.shape_out,
            boundary=self.boundary,
            batch_ndim=self.batch_ndim,
            method="fft",
            dtype=self.dtype,
            mask=self.mask,
        )

    def lipschitz(self) -> float:
        """An upper bound of ``||A||^2``, the Lipschitz constant of ``A^T (A x - y)``.

        ``max |H|^2`` bounds it (a mask only lowers the norm) when the unknown
        is not extended by copying
        (periodic, zero, valid); the padded boundaries copy samples, which can
        raise it, so it is measured by power iteration there (with a margin).
        """
        if self.boundary in ("periodic", "zero", "valid"):
            otf = self.with_fft().otf
            xp = backend.namespace(otf)
            return float(xp.max(xp.abs(otf) ** 2))
        return _power_iteration(self)

    def _circular(self, x: np.ndarray, otf: np.ndarray) -> np.ndarray:
        """Circular convolution on the FFT grid of `x`, zero-filled at the end."""
        spectrum = backend.rfftn(x, self.axes, shape=self.fft_shape)
        spectrum *= otf
        z = backend.irfftn(spectrum, self.fft_shape, self.axes)
        return backend.astype(z, self.dtype)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Blur: ``A x``, from `shape_in` to `shape_out`."""
        x = self._check(x, self.shape_in, "x")
        extended = backend.pad(x, self.pad_widths, self.pad_mode)
        if self.direct:
            y = self._correlate_valid(extended, self._flipped)
        else:
            z = self._circular(extended, self.otf)
            y = backend.crop(z, (0,) * len(self.fft_shape), self.shape_out[self.batch_ndim :])
        return y if self.mask is None else y * self.mask

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """Adjoint: ``A^T y``, from `shape_out` to `shape_in` (correlation)."""
        y = self.restrict(self._check(y, self.shape_out, "y"))
        if self.direct:
            extended = self._correlate_full(y)
        else:
            z = self._circular(y, self._adjoint_otf)
            size = [
                n + b + a for n, (b, a) in zip(self.shape_in[self.batch_ndim :], self.pad_widths)
            ]
            extended = backend.crop(z, (0,) * len(size), size)
        return backend.pad_adjoint(extended, self.pad_widths, self.pad_mode)

    def restrict(self, y: np.ndarray) -> np.ndarray:
        """`y` with the samples outside the mask set to zero: the data the model fits."""
        return y if self.mask is None else y * self.mask

    @cached_property
    def _adjoint_otf(self) -> np.ndarray:
        # Kept: conjugating the transfer function at each call costs as much
        # as a pass over the spectrum.
        return backend.namespace(self.otf).conj(self.otf)

    def _check(self, x, shape, name) -> np.ndarray:
        x = backend.asarray(x, self.dtype, like=self.psf)
        if x.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
        return x

    def _kernels(self, kernel: np.ndarray, channels: int):
        """(channel index, kernel) pairs; one kernel serves all channels when shared."""
        flat = kernel.reshape((-1,) + kernel.shape[self.batch_ndim :])
        for c in range(channels):
            yield c, flat[c if flat.shape[0] > 1 else 0]

    def _correlate_valid(self, padded: np.ndarray, flipped: np.ndarray) -> np.ndarray:
        # y[j] = sum_s flip(h)[s] x[j + s]; ndimage centres a kernel of size k at k // 2.
        image = self.shape_out[self.batch_ndim :]
        lead = padded.shape[: self.batch_ndim]
        flat = padded.reshape((-1,) + padded.shape[self.batch_ndim :])
        out = backend.zeros((flat.shape[0],) + image, self.dtype)
        kernel = flipped.shape[self.batch_ndim :]
        keep = tuple(slice(k // 2, k // 2 + n) for k, n in zip(kernel, image))
        for c, w in self._kernels(flipped, flat.shape[0]):
            out[c] = ndimage.correlate(flat[c], w, mode="constant")[keep]
        return out.reshape(lead + image)

    def _correlate_full(self, y: np.ndarray) -> np.ndarray:
        # x[u] = sum_t h[t] y[u - k + 1 + t]: y placed at (k - 1) // 2 in a zero
        # array of the extended size, then correlated with h itself.
        kernel = self.psf.shape[self.batch_ndim :]
        image = self.shape_out[self.batch_ndim :]
        extended = tuple(n + k - 1 for n, k in zip(image, kernel))
        lead = y.shape[: self.batch_ndim]
        flat = y.reshape((-1,) + image)
        out = backend.zeros((flat.shape[0],) + extended, self.dtype)
        for c, h in self._kernels(self.psf, flat.shape[0]):
            placed = backend.embed(flat[c], [(k - 1) // 2 for k in kernel], extended)
            out[c] = ndimage.correlate(placed, h, mode="constant")
        return out.reshape(lead + extended)


class Gradient:
    """Forward differences along the spatial axes.

    ``(D x)[d, ..., i, ...] = x[..., i + 1, ...] - x[..., i, ...]`` along spatial
    axis ``d``, stacked on a new leading axis; the adjoint is minus the
    divergence. Across the last sample the difference is zero (the Neumann
    boundary) or, when `periodic`, taken to the first sample (the differences
    whose power spectrum is :func:`gradient_spectrum`).

    Parameters
    ----------
    shape : sequence of int
        Shape of ``x``, batch axes first.
    batch_ndim : int
        Number of leading batch axes.
    periodic : bool
        Wrap round instead of stopping at the last sample.
    """

    def __init__(self, shape: Sequence[int], *, batch_ndim: int = 0, periodic: bool = False):
        self.shape_in = tuple(int(n) for n in shape)
        self.batch_ndim = batch_ndim
        self.periodic = periodic
        self.axes = tuple(range(batch_ndim, len(self.shape_in)))
        self.shape_out = (len(self.axes),) + self.shape_in

    def apply(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Differences ``D x`` of shape ``(spatial ndim,) + shape``, into `out` if given."""
        if out is None:
            out = backend.zeros(self.shape_out, x.dtype, like=x)
        for d, axis in enumerate(self.axes):
            n = x.shape[axis]
            head, tail = _along(x.ndim, axis, slice(0, n - 1)), _along(x.ndim, axis, slice(1, n))
            first, last = _along(x.ndim, axis, slice(0, 1)), _along(x.ndim, axis, slice(n - 1, n))
            if backend.is_numpy(x):
                np.subtract(x[tail], x[head], out=out[d][head])
            else:
                out[(d, *head)] = x[tail] - x[head]
            if self.periodic:
                out[(d, *last)] = x[first] - x[last]
            else:
                out[(d, *last)] = 0
        return out

    def adjoint(self, g: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``D^T g``: minus the divergence of the field `g`, into `out` if given.

        Along each axis ``(D^T g)[i] = g[i - 1] - g[i]``, where ``g[-1]`` is
        ``g[n - 1]`` when periodic and zero otherwise (as is ``g[n - 1]``
        itself, which :meth:`apply` never writes).
        """
        if out is None:
            out = backend.zeros(self.shape_in, g.dtype, like=g)
        else:
            out[...] = 0
        for d, axis in enumerate(self.axes):
            n = self.shape_in[axis]
            gd = g[d, ...]
            head, tail = _along(gd.ndim, axis, slice(0, n - 1)), _along(gd.ndim, axis, slice(1, n))
            if self.periodic:
                first = _along(gd.ndim, axis, slice(0, 1))
                last = _along(gd.ndim, axis, slice(n - 1, n))
                out -= gd
                out[first] += gd[last]
            else:
                out[head] -= gd[head]
            out[tail] += gd[head]
        return out


def _power_iteration(operator) -> float:
    """``||A||^2`` by 30 steps of power iteration on ``A^T A``, with a 5% margin."""
    start = np.random.default_rng(0).random(operator.shape_in)
    x = backend.asarray(start, operator.dtype, like=operator.psf)
    value = 1.0
    for _ in range(30):
        x = operator.adjoint(operator.apply(x))
        value = backend.norm(x)
        x = x / value
    return 1.05 * value


def _mask(mask, shape: tuple[int, ...], dtype) -> tuple[np.ndarray | None, int]:
    """A mask of observed samples as 0/1 values of `shape` (None if all are), and their count."""
    if mask is None:
        return None, int(np.prod(shape))
    mask = np.asarray(mask, dtype=bool)
    try:
        mask = np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"mask of shape {mask.shape} does not fit images of {shape}") from None
    if mask.all():
        return None, int(np.prod(shape))
    return mask.astype(dtype), int(np.count_nonzero(mask))


def _along(ndim: int, axis: int, part: slice) -> tuple[slice, ...]:
    """Index taking `part` of `axis` and everything of the other axes."""
    index = [slice(None)] * ndim
    index[axis] = part
    return tuple(index)


def gradient_spectrum(shape: Sequence[int], dtype) -> np.ndarray:
    """``|G(f)|^2``: summed power of the periodic forward differences on an rfft grid."""
    total = None
    for f in backend.rfft_frequencies(shape, dtype):
        term = 2 - 2 * np.cos(2 * np.pi * f)
        total = term if total is None else total + term
    return total.astype(dtype, copy=False)


class VaryingConvolution:
    """Blur that changes across the frame, from PSFs measured at a few places.

    ``A x = Mask . Crop . sum_k H_k Pad (w_k x)``: the unknown is split into
    overlapping windows ``w_k x`` by weights that sum to one everywhere and
    interpolate linearly between the PSFs' positions; each window is blurred
    by its own PSF ``h_k`` under the shared boundary model, and the blurred
    windows are added (the interpolated PSFs of Nagy and O'Leary; Hirsch et
    al.'s efficient filter flow with windows as large as the frame). A point
    at a PSF's position is blurred by that PSF, one between positions by the
    mix of its neighbours'. The adjoint is exact:
    ``A^T y = sum_k w_k Pad^T H_k^T Crop^T Mask y``. One product costs one
    FFT per PSF and one more: the blurred windows are added as spectra.

    Parameters
    ----------
    psfs : array_like
        One PSF per position, stacked on the first axis; each laid out as
        :class:`Convolution`'s `psf`, all of one shape.
    positions : array_like
        Where each PSF was measured, shape (PSFs, spatial axes), in the
        observed image's sample coordinates.
    shape, boundary, batch_ndim, dtype, mask
        As for :class:`Convolution`.

    Attributes
    ----------
    psf : ndarray
        The mean of the PSFs, for the rules that want one (starting points,
        weight choice).
    weights : ndarray
        Interpolation weights over the unknown's spatial axes, one per PSF.

    References
    ----------
    .. [1] J. G. Nagy and D. P. O'Leary, "Restoring images degraded by
       spatially variant blur", SIAM J. Sci. Comput. 19(4), 1063-1082, 1998.
    .. [2] M. Hirsch et al., "Efficient filter flow for space-variant
       multiframe blind deconvolution", CVPR 2010.
    """

    def __init__(
        self,
        psfs,
        positions,
        shape: Sequence[int],
        *,
        boundary: str = "periodic",
        batch_ndim: int = 0,
        dtype=None,
        mask=None,
    ):
        psfs = np.asarray(psfs)
        positions = np.asarray(positions, dtype=float)
        spatial = len(shape) - batch_ndim
        if psfs.ndim != len(shape) + 1 or positions.shape != (len(psfs), spatial):
            raise ValueError(
                f"psfs of shape {psfs.shape} and positions of shape {positions.shape} do not "
                f"give one PSF and one position ({spatial} coordinates) per place"
            )
        self.parts = [
            Convolution(
                p, shape, boundary=boundary, batch_ndim=batch_ndim, method="fft", dtype=dtype
            )
            for p in psfs
        ]
        first = self.parts[0]
        self.boundary = boundary
        self.batch_ndim = batch_ndim
        self.dtype = first.dtype
        self.shape_in, self.shape_out, self.axes = first.shape_in, first.shape_out, first.axes
        self.psfs = np.stack([p.psf for p in self.parts])
        self.psf = self.psfs.mean(axis=0)
        self.mask, self.observed_count = _mask(mask, self.shape_out, self.dtype)
        # The unknown's sample u lies at u - offset in the observed frame.
        kernel = self.psf.shape[batch_ndim:]
        offset = [k - 1 - k // 2 if boundary == "valid" else 0 for k in kernel]
        self.weights = interpolation_weights(
            positions + np.asarray(offset), self.shape_in[batch_ndim:], self.dtype
        )

    def __repr__(self) -> str:
        return (
            f"VaryingConvolution({len(self.parts)} PSFs of {self.psf.shape}, "
            f"shape={self.shape_out}, boundary={self.boundary!r})"
        )

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Blur: ``A x``, from `shape_in` to `shape_out`."""
        x = backend.asarray(x, self.dtype)
        if x.shape != self.shape_in:
            raise ValueError(f"x must have shape {self.shape_in}, got {x.shape}")
        first = self.parts[0]
        total = None
        for part, weight in zip(self.parts, self.weights):
            extended = backend.pad(x * weight, part.pad_widths, part.pad_mode)
            spectrum = backend.rfftn(extended, self.axes, shape=part.fft_shape)
            spectrum *= part.otf
            if total is None:
                total = spectrum
            else:
                total += spectrum
        z = backend.irfftn(total, first.fft_shape, self.axes).astype(self.dtype, copy=False)
        y = backend.crop(z, (0,) * len(first.fft_shape), self.shape_out[self.batch_ndim :])
        return self.restrict(y)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """Adjoint: ``A^T y``, from `shape_out` to `shape_in`."""
        y = backend.asarray(y, self.dtype)
        if y.shape != self.shape_out:
            raise ValueError(f"y must have shape {self.shape_out}, got {y.shape}")
        first = self.parts[0]
        spectrum = backend.rfftn(self.restrict(y), self.axes, shape=first.fft_shape)
        size = [n + b + a for n, (b, a) in zip(self.shape_in[self.batch_ndim :], first.pad_widths)]
        x = backend.zeros(self.shape_in, self.dtype)
        for part, weight in zip(self.parts, self.weights):
            z = backend.irfftn(spectrum * part.otf.conj(), first.fft_shape, self.axes)
            extended = backend.crop(z.astype(self.dtype, copy=False), (0,) * len(size), size)
            x += weight * backend.pad_adjoint(extended, part.pad_widths, part.pad_mode)
        return x

    def restrict(self, y: np.ndarray) -> np.ndarray:
        """`y` with the samples outside the mask set to zero: the data the model fits."""
        return y if self.mask is None else y * self.mask

    def regions(self, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each PSF with the part of the observation it weighs most in.

        Returns ``(window, psf)`` pairs: the bounding box, in `y` (of
        `shape_out`), of the samples where the PSF's weight is the largest.
        """
        spatial = self.shape_out[self.batch_ndim :]
        kernel = self.psf.shape[self.batch_ndim :]
        offset = [k - 1 - k // 2 if self.boundary == "valid" else 0 for k in kernel]
        nearest = np.argmax(backend.crop(self.weights, offset, spatial), axis=0)
        pairs = []
        for index, psf in enumerate(self.psfs):
            where = np.nonzero(nearest == index)
            if where[0].size:
                box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in where)
                pairs.append((y[(Ellipsis, *box)], psf))
        return pairs

    def lipschitz(self) -> float:
        """An upper bound of ``||A||^2``.

        For non-negative PSFs ``A`` is a non-negative matrix, and Schur's
        test bounds its norm by its largest row sum times its largest column
        sum: ``max(A 1) max(A^T 1)``, two products. Otherwise it is measured
        by power iteration (with a margin).
        """
        if np.all(self.psfs >= 0):
            rows = self.apply(backend.ones(self.shape_in, self.dtype))
            columns = self.adjoint(backend.ones(self.shape_out, self.dtype))
            return float(rows.max()) * float(columns.max())
        return _power_iteration(self)


def interpolation_weights(positions, shape: Sequence[int], dtype=np.float64) -> np.ndarray:
    """Weights that interpolate linearly between `positions` over a grid of `shape`.

    Piecewise-linear interpolation on the Delaunay triangulation of the
    positions (barycentric coordinates): each weight is 1 at its position, 0
    at the others', and the weights sum to one everywhere. A sample beyond
    the positions' bounding box takes the weights of the nearest sample of
    the box; one in the box but beyond the positions' hull, those of the
    nearest sample inside the hull (of the nearest position when no sample
    is inside). Positions within a sample of a line (or of a plane in 3D)
    are interpolated along it, and triangles (or tetrahedra) thinner than a
    sample are left out: measured positions of a row of lights are never
    quite collinear, and the sliver between them would interpolate along
    its long side, between lights that are not neighbours.

    Parameters
    ----------
    positions : array_like
        Shape (points, axes), in sample coordinates of the grid.
    shape : sequence of int
        The grid.
    dtype : dtype
        Type of the weights.

    Returns
    -------
    ndarray
        Weights of shape ``(points,) + shape``.
    """
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator
    from scipy.spatial import Delaunay

    positions = np.asarray(positions, dtype=float)
    count = len(positions)
    if count == 1:
        return backend.ones((1, *shape), dtype)
    # The positions' spread along their principal axes, RMS, in samples.
    centre = positions.mean(axis=0)
    _, singular, axes = np.linalg.svd(positions - centre, full_matrices=False)
    rank = int(np.sum(singular / np.sqrt(count) >= 1))
    if rank == 0:
        raise ValueError("the PSFs' positions lie within a sample of each other")
    nodes = positions
    points = np.indices(shape, dtype=np.float64).reshape(len(shape), -1).T
    if rank < positions.shape[1]:
        axes = axes[:rank]
        nodes = (positions - centre) @ axes.T
        points = (points - centre) @ axes.T
    identity = np.eye(count)
    if rank == 1:
        # Beyond the ends of the line, the end's weights.
        order = np.argsort(nodes[:, 0])
        weights = np.stack(
            [np.interp(points[:, 0], nodes[order, 0], identity[order, k]) for k in range(count)]
        )
        return weights.reshape((count, *shape)).astype(dtype)
    triangulation = Delaunay(nodes)
    weights = LinearNDInterpolator(triangulation, identity)(points).T
    # A simplex's thickness is its smallest height: one over the largest
    # gradient of its barycentric coordinates (NaN for a flat one: thin).
    inverse = triangulation.transform[:, :rank]
    gradients = np.concatenate([inverse, -inverse.sum(axis=1, keepdims=True)], axis=1)
    thin = ~(1 / np.linalg.norm(gradients, axis=2).max(axis=1) >= 1)
    simplex = triangulation.find_simplex(points)
    outside = (simplex < 0) | thin[simplex]
    # Each sample takes the weights of a source sample: itself inside the
    # hull, the nearest one inside it beyond, the nearest sample of the
    # positions' bounding box beyond that (for lights on a rough grid, the
    # box is the hull, and its nearest sample does not jump along an edge
    # that is nearly straight).
    if outside.all():
        weights = NearestNDInterpolator(nodes, identity)(points).T
    source = np.arange(outside.size).reshape(shape)
    if outside.any() and not outside.all():
        _, nearest = ndimage.distance_transform_edt(outside.reshape(shape), return_indices=True)
        source = np.ravel_multi_index(tuple(nearest), tuple(shape))
    low = np.clip(np.round(positions.min(axis=0)), 0, np.array(shape) - 1).astype(int)
    high = np.clip(np.round(positions.max(axis=0)), 0, np.array(shape) - 1).astype(int)
    source = source[
        np.ix_(*(np.clip(np.arange(n), lo, hi) for n, lo, hi in zip(shape, low, high)))
    ]
    weights = np.take(weights.astype(dtype, copy=False), source.ravel(), axis=1)
    return weights.reshape((count, *shape))

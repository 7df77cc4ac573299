"""Linear operators of the blur model, each with its exact adjoint.

The contract of every operator is the dot test ``<A x, y> = <x, A^T y>``.
Arrays may carry leading batch axes (colour channels) that the operators
treat independently; the spatial axes are the trailing ones.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    nothing wraps round, and the observed part is kept. For ``'valid'`` the
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
        psf = np.asarray(psf)
        if psf.ndim != len(shape):
            raise ValueError(
                f"psf has {psf.ndim} axes but the image has {len(shape)} ({shape}); "
                "give the PSF one axis per image axis"
            )
        dtype = backend.float_dtype(psf.dtype if dtype is None else dtype)
        psf = backend.asarray(psf, dtype)
        batch, kernel = psf.shape[:batch_ndim], psf.shape[batch_ndim:]
        image = shape[batch_ndim:]
        if any(b not in (1, n) for b, n in zip(batch, shape[:batch_ndim])):
            raise ValueError(f"psf channels {batch} do not match the image's {shape[:batch_ndim]}")
        if any(k > n for k, n in zip(kernel, image)):
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
        self.mask = None
        self.observed_count = int(np.prod(shape))
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            try:
                mask = np.broadcast_to(mask, shape)
            except ValueError:
                raise ValueError(
                    f"mask of shape {mask.shape} does not fit images of {shape}"
                ) from None
            if not mask.all():
                self.mask = mask.astype(dtype)
                self.observed_count = int(np.count_nonzero(mask))
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
        self.direct = method == "direct" or (method == "auto" and taps <= DIRECT_MAX_TAPS)

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
        else:
            # The extended unknown (n + k - 1 samples) is zero-filled to a fast
            # size, where nothing wraps round; rolling the PSF by k - 1 rather
            # than k // 2 puts the observed part at the start of the grid.
            self.fft_shape = backend.fast_shape([n + k - 1 for n, k in zip(image, kernel)])
            self.otf = psf_to_otf(psf, self.fft_shape, origin=[k - 1 for k in kernel])
        if dtype == np.float32:
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
            return float(np.max(np.abs(self.with_fft().otf) ** 2))
        x = backend.asarray(np.random.default_rng(0).random(self.shape_in), self.dtype)
        value = 1.0
        for _ in range(30):
            x = self.adjoint(self.apply(x))
            value = float(np.linalg.norm(x.ravel()))
            x = x / value
        return 1.05 * value

    def _circular(self, x: np.ndarray, otf: np.ndarray) -> np.ndarray:
        """Circular convolution on the FFT grid of `x`, zero-filled at the end."""
        spectrum = backend.rfftn(x, self.axes, shape=self.fft_shape)
        spectrum *= otf
        z = backend.irfftn(spectrum, self.fft_shape, self.axes)
        return z.astype(self.dtype, copy=False)

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
            z = self._circular(y, self.otf.conj())
            size = [
                n + b + a for n, (b, a) in zip(self.shape_in[self.batch_ndim :], self.pad_widths)
            ]
            extended = backend.crop(z, (0,) * len(size), size)
        return backend.pad_adjoint(extended, self.pad_widths, self.pad_mode)

    def restrict(self, y: np.ndarray) -> np.ndarray:
        """`y` with the samples outside the mask set to zero: the data the model fits."""
        return y if self.mask is None else y * self.mask

    def _check(self, x, shape, name) -> np.ndarray:
        x = backend.asarray(x, self.dtype)
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
            out = np.empty(self.shape_out, x.dtype)
        for d, axis in enumerate(self.axes):
            n = x.shape[axis]
            head, tail = _along(x.ndim, axis, slice(0, n - 1)), _along(x.ndim, axis, slice(1, n))
            first, last = _along(x.ndim, axis, slice(0, 1)), _along(x.ndim, axis, slice(n - 1, n))
            np.subtract(x[tail], x[head], out=out[d][head])
            if self.periodic:
                np.subtract(x[first], x[last], out=out[d][last])
            else:
                out[d][last] = 0
        return out

    def adjoint(self, g: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``D^T g``: minus the divergence of the field `g`, into `out` if given.

        Along each axis ``(D^T g)[i] = g[i - 1] - g[i]``, where ``g[-1]`` is
        ``g[n - 1]`` when periodic and zero otherwise (as is ``g[n - 1]``
        itself, which :meth:`apply` never writes).
        """
        if out is None:
            out = np.empty(self.shape_in, g.dtype)
        out[...] = 0
        for d, axis in enumerate(self.axes):
            n = self.shape_in[axis]
            gd = g[d]
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

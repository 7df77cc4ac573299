"""Wiener deconvolution with a gradient prior, under any boundary model."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import backend
from ..noise import gcv_nsr
from ..operators import Convolution, Gradient, gradient_spectrum
from ._base import (
    MaxIterations,
    RelativeChange,
    Solver,
    Step,
    StoppingRule,
    fraction_done,
    per_image,
    starting_point,
)

#: The largest noise-to-signal ratio used, times the arithmetic's precision
#: (8e6 in float32): there the estimate is flat (the slowest gradient of a
#: 256 px frame kept at 2e-4), and past it the conjugate gradients' sums
#: lose the data term to round-off (in float32, nsr 1e9 made a flat -94 of
#: an image whose mean is 104; 1e30 a NaN).
LARGEST_NSR = 1.0


class Wiener(Solver):
    """Wiener filter ``X = H* Y / (|H|^2 + nsr |G|^2)`` on the operator's boundary model.

    ``G`` is the transfer function of the forward differences: the prior is
    a scene with a ``1 / |f|^2`` power spectrum, which natural images follow,
    and ``nsr`` is the noise variance over the scene's mean squared gradient.
    When not given it is chosen per channel by generalised cross-validation
    (:func:`~napari_deblur.engine.noise.gcv_nsr`), which needs no noise
    level.

    For the ``'periodic'`` boundary this is one division of spectra. Every
    other boundary model breaks the circulant structure, so the estimate is
    the minimiser of ``||A x - y||^2 + nsr ||D x||^2`` for the exact operator
    ``A``, found by conjugate gradients preconditioned with the periodic
    filter on the padded grid; every CG iteration is a step. (Padding the
    data and filtering periodically instead leaves a jump where the padded
    grid wraps round, which the inverse filter turns into ringing.)

    Parameters
    ----------
    operator : Convolution
        Blur model.
    nsr : float or array_like, optional
        Noise-to-signal ratio (one per batch image); chosen by GCV when omitted.
        At most :data:`LARGEST_NSR` over the precision of the operator's type.
    stop : StoppingRule, optional
        For the iterative (non-periodic) case: by default the relative change
        of the estimate below 1e-3, or 100 iterations.
    """

    def __init__(
        self,
        operator: Convolution,
        *,
        nsr=None,
        stop: StoppingRule | None = None,
    ):
        if nsr is not None:
            nsr = np.asarray(nsr, dtype=np.float64)
            if np.any(nsr < 0) or not np.all(np.isfinite(nsr)):
                raise ValueError(f"nsr must be finite and non-negative, got {nsr}")
        self.operator = operator
        self.nsr = nsr
        self.stop = stop if stop is not None else RelativeChange(1e-3) | MaxIterations(100)

    def choose_nsr(self, observed: np.ndarray) -> np.ndarray:
        """The `nsr` given, or one per batch image by GCV; shaped to broadcast on spectra."""
        op = self.operator
        if self.nsr is None:
            # GCV on the host: a few FFTs of the data, once.
            host_psf = backend.to_numpy(op.psf)
            nsr = gcv_nsr(backend.to_numpy(observed), host_psf, batch_ndim=op.batch_ndim)
        else:
            nsr = self.nsr
        largest = LARGEST_NSR / float(np.finfo(backend.to_numpy(op.psf).dtype).eps)
        return per_image(np.minimum(nsr, largest), op)

    def iterate(self, observed: np.ndarray) -> Iterator[Step]:  # noqa: D102
        op = self.operator
        y = backend.asarray(observed, op.dtype, like=op.psf)
        xp = backend.namespace(op.psf)
        fft_op = op.with_fft()
        nsr = self.choose_nsr(y)
        spectrum = gradient_spectrum(fft_op.fft_shape, backend.to_numpy(y).dtype)
        denominator = xp.abs(fft_op.otf) ** 2 + nsr * backend.asarray(spectrum, like=op.psf)
        if op.boundary != "periodic" or op.mask is not None:
            yield from self._conjugate_gradients(y, nsr, fft_op, denominator)
            return
        spectrum = backend.rfftn(y, fft_op.axes)
        spectrum *= xp.conj(fft_op.otf) / denominator
        x = backend.astype(backend.irfftn(spectrum, fft_op.fft_shape, fft_op.axes), op.dtype)
        yield Step(1, x, 1.0, {"nsr": float(xp.mean(nsr))})

    def _conjugate_gradients(self, y, nsr, fft_op, denominator) -> Iterator[Step]:
        op = self.operator
        xp = backend.namespace(op.psf)
        grad = Gradient(op.shape_in, batch_ndim=op.batch_ndim)
        axes = fft_op.axes
        domain = op.shape_in[op.batch_ndim :]

        def normal(x):
            return op.adjoint(op.apply(x)) + nsr * grad.adjoint(grad.apply(x))

        def precondition(r):
            spectrum = backend.rfftn(r, axes, shape=fft_op.fft_shape)
            spectrum /= denominator
            z = backend.astype(backend.irfftn(spectrum, fft_op.fft_shape, axes), op.dtype)
            return backend.crop(z, (0,) * len(domain), domain)

        def dot(a, b):
            # One inner product per batch image: the channels are separate systems.
            total = xp.sum(a * b, axis=axes, keepdims=True, dtype=xp.float64)
            return backend.astype(total, op.dtype)

        right = op.adjoint(y)
        x = starting_point(op, y)
        r = right - normal(x)
        z = precondition(r)
        p = backend.copy(z)
        rz = dot(r, z)
        iteration = 0
        while True:
            iteration += 1
            q = normal(p)
            curvature = dot(p, q)
            alpha = rz / xp.where(curvature > 0, curvature, 1.0)
            update = alpha * p
            x = x + update
            change = backend.norm(update) / max(backend.norm(x), 1e-30)
            metrics = {"change": change, "nsr": float(xp.mean(nsr))}
            done = self.stop.done(iteration, metrics)
            yield Step(iteration, x, 1.0 if done else fraction_done(iteration, self.stop), metrics)
            if done:
                return
            r = r - alpha * q
            z = precondition(r)
            rz_new = dot(r, z)
            p = z + (rz_new / xp.where(rz > 0, rz, 1.0)) * p
            rz = rz_new

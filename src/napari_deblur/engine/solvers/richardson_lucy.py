"""Richardson-Lucy deconvolution for photon-counting (Poisson) data, and its refinements."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from .. import backend
from ..operators import Convolution, Gradient
from ..priors import vector_length
from ._base import (
    MaxIterations,
    Solver,
    Step,
    StoppingRule,
    fraction_done,
    mean_squared_misfit,
    per_image,
    starting_point,
)

#: The least share of the best-seen sample's weight in the data (``A^T 1``)
#: at which a sample is estimated. A sample the data barely see (a hole in
#: the mask wider than the PSF, the far border of the unknown surroundings)
#: is updated by the ratio of a few data at its PSF's tail: RL moved the
#: light those data lacked into it, a hundredfold in a 24-row hole's edge,
#: and, on the 3D bars of ``bench_microscopy.py``, into the planes beyond
#: the stack (relative error 0.49 with 1e-6; 0.41, 0.42, 0.42 and 0.43 with
#: 1e-3, 1e-2, 3e-2 and 0.1).
SEEN = 1e-2


class RichardsonLucy(Solver):
    """Richardson-Lucy: the EM algorithm for ``y ~ Poisson(A x)``, ``x >= 0``.

    Each iteration is ``x <- x * A^T(y / A x) / A^T 1``. The normalisation
    ``A^T 1`` makes it correct for every boundary model, including unknown
    surroundings (Bertero and Boccacci 2005), where it is not constant near
    the border. Plain RL converges to the noisy maximum-likelihood solution,
    so it must be stopped early (the discrepancy principle) or regularised:

    - ``tv_weight``: total variation (Dey et al. 2006): the denominator
      becomes ``A^T 1 - tv_weight div(grad x / |grad x|)``, a MAP estimate
      that can be run to convergence;
    - ``damping``: White's damped RL (1994): where the model already fits
      the data within ``damping`` noise standard deviations, the correction
      fades out, which stops noise amplification in flat regions;
    - ``accelerate``: Biggs and Andrews's (1997) vector extrapolation along
      the last step, which typically halves the iterations.

    Two quantities are measured on the whole image at each run: the data's
    `level` (below a small part of it a value counts as zero) and the
    extrapolation length. Both can be given instead, so that the parts of a
    large image, deblurred one by one, take the steps of one run.

    Parameters
    ----------
    operator : Convolution
        Blur model with a non-negative PSF.
    tv_weight : float or array_like
        TV weight (per batch image) in the units of ``y`` times the noise
        variance per unit of light (the Poisson gain).
    damping : float, optional
        Threshold of the damping, in noise standard deviations (about 3);
        needs `variance`.
    variance : float or ndarray, optional
        Noise variance, a number per batch image or per pixel (``y``'s shape).
    accelerate : bool or sequence of float
        Biggs-Andrews acceleration, with the length measured at each step,
        or these lengths, one per iteration (the ``'extrapolation'`` metric
        of an earlier run).
    background : float or array_like
        Light every sample receives besides the blurred scene (a camera's
        offset, out-of-focus haze), per batch image: the model becomes
        ``y ~ Poisson(A x + background)`` and the estimate is the scene
        without it.
    level : float or array_like, optional
        The data's typical value, per batch image; their mean by default.
    stop : StoppingRule, optional
        When to stop; default ``MaxIterations(30)``.

    Notes
    -----
    The step's ``'residual'`` metric is the mean squared misfit
    ``||A x - y||^2 / n`` of the estimate the step started from, its
    ``'extrapolation'`` the acceleration's length (0 without).

    References
    ----------
    .. [1] W. H. Richardson, "Bayesian-based iterative method of image
       restoration", JOSA 62(1), 55-59, 1972.
    .. [2] L. B. Lucy, "An iterative technique for the rectification of
       observed distributions", AJ 79, 745, 1974.
    .. [3] M. Bertero and P. Boccacci, "A simple method for the reduction of
       boundary effects in the Richardson-Lucy approach to image
       deconvolution", A&A 437, 369-374, 2005.
    .. [4] N. Dey et al., "Richardson-Lucy algorithm with total variation
       regularization for 3D confocal microscope deconvolution", Microsc.
       Res. Tech. 69, 260-266, 2006.
    .. [5] R. L. White, "Image restoration using the damped Richardson-Lucy
       method", Proc. SPIE 2198, 1994.
    .. [6] D. S. C. Biggs and M. Andrews, "Acceleration of iterative image
       restoration algorithms", Applied Optics 36(8), 1766-1775, 1997.
    """

    def __init__(
        self,
        operator: Convolution,
        *,
        tv_weight=0.0,
        damping: float | None = None,
        variance=None,
        accelerate: bool | Sequence[float] = False,
        background=0.0,
        level=None,
        stop: StoppingRule | None = None,
    ):
        if bool(backend.namespace(operator.psf).any(operator.psf < 0)):
            raise ValueError("psf must be non-negative for Richardson-Lucy")
        tv_weight = np.asarray(tv_weight, dtype=np.float64)
        if np.any(tv_weight < 0) or not np.all(np.isfinite(tv_weight)):
            raise ValueError(f"tv_weight must be finite and non-negative, got {tv_weight}")
        if damping is not None and (damping <= 0 or variance is None):
            raise ValueError("damping must be positive and needs the noise variance")
        self.operator = operator
        self.tv_weight = tv_weight
        self.damping = damping
        self.variance = variance
        self.accelerate = accelerate
        self.level = level
        self.background = np.asarray(background, dtype=np.float64)
        if np.any(self.background < 0) or not np.all(np.isfinite(self.background)):
            raise ValueError(f"background must be finite and non-negative, got {background}")
        self.stop = stop if stop is not None else MaxIterations(30)

    def initial(self, y: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Starting estimate: the observed image less the background, extended, kept positive.

        `level` is the data's level per batch image, shaped to broadcast.
        """
        xp = backend.namespace(y)
        x = starting_point(self.operator, y) - per_image(self.background, self.operator)
        # A positive floor, per image: RL cannot revive a pixel that is exactly 0.
        floor = xp.maximum(level * 1e-3, xp.finfo(y.dtype).smallest_normal)
        return xp.maximum(x, floor)

    def iterate(self, observed: np.ndarray) -> Iterator[Step]:  # noqa: D102
        op = self.operator
        dtype = op.dtype
        # The computation stays in the PSF's array library, on its device.
        xp = backend.namespace(op.psf)
        observed = backend.asarray(observed, dtype, like=op.psf)
        if not float(xp.max(observed)) > 0:
            raise ValueError(
                "Richardson-Lucy models photon counts, and the image has no value above 0: "
                "add its offset back, or use a least-squares method"
            )
        observed = xp.maximum(observed, 0.0)
        y = op.restrict(observed)
        norm = op.adjoint(backend.ones(op.shape_out, dtype, like=op.psf))
        # Samples the data barely see (SEEN) are not estimated: they keep
        # their start, the observed samples round them filled in, whose light
        # the data beside them need.
        unseen = norm <= float(xp.max(norm)) * SEEN
        seen_by = xp.where(unseen, math.inf, norm)
        unseen = unseen if bool(xp.any(unseen)) else None
        tiny = float(xp.finfo(dtype).smallest_normal)
        level = (
            xp.mean(observed, axis=op.axes, keepdims=True)
            if self.level is None
            else per_image(self.level, op)
        )
        # FFTs blur with an error of about eps times the data's scale: below
        # that, a blurred value is round-off, and dividing by it overflows.
        resolution = max(float(xp.finfo(dtype).eps) * float(xp.max(level)), tiny)
        regularised = bool(np.any(self.tv_weight > 0))
        if regularised:
            grad = Gradient(op.shape_in, batch_ndim=op.batch_ndim)
            tv_weight = per_image(self.tv_weight, op)
            # Kept between iterations: fresh arrays this large cost as much
            # as the arithmetic in them.
            field = backend.zeros(grad.shape_out, dtype, like=op.psf)
            divergence = backend.zeros(grad.shape_in, dtype, like=op.psf)
        if self.damping is not None:
            variance = backend.asarray(np.asarray(self.variance), dtype, like=op.psf)
            if variance.ndim and variance.shape != y.shape:
                variance = per_image(self.variance, op)
            cutoff = self.damping**2 * xp.maximum(variance, tiny)
        # The background, where the model observes: one number per image
        # unless a mask leaves samples out.
        offset = per_image(self.background, op)
        if op.mask is not None:
            offset = op.restrict(offset + xp.zeros_like(y))
        with_offset = bool(np.any(self.background > 0))
        misfit = xp.empty_like(y)
        observed_shape = op.shape_out[op.batch_ndim :]
        frame = [(n - m) // 2 for n, m in zip(op.shape_in[op.batch_ndim :], observed_shape)]
        x = self.initial(observed, level)
        lengths = None if isinstance(self.accelerate, bool) else list(self.accelerate)
        previous = None
        # The corrections made by the last two RL steps (Biggs-Andrews).
        last_step = step_before = None
        iteration = 0
        while True:
            iteration += 1
            point = x
            alpha = 0.0
            if lengths is not None:
                alpha = lengths[iteration - 1] if iteration <= len(lengths) else 0.0
            elif self.accelerate and step_before is not None:
                # Extrapolate along the last move, by how much the last two
                # corrections agree.
                alpha = backend.dot(last_step, step_before) / max(
                    backend.dot(step_before, step_before), tiny
                )
                alpha = min(max(alpha, 0.0), 0.95)
            if alpha > 0:
                point = xp.maximum(x + alpha * (x - previous), tiny)
            blurred = op.apply(point)
            if with_offset:
                blurred += offset
            misfit = backend.subtract(blurred, y, misfit)
            residual = mean_squared_misfit(op, misfit)
            ratio = backend.divide(y, backend.at_least(blurred, resolution), blurred)
            if self.damping is not None:
                # White's damping: u = (misfit / threshold)^2, the correction
                # (ratio - 1) scaled by u^(N-1) (N - (N-1) u) below u = 1 (N = 10).
                u = xp.minimum(misfit * misfit / cutoff, 1.0)
                ratio = 1 + (ratio - 1) * (u**9 * (10 - 9 * u))
            denominator = seen_by
            if regularised:
                unit = grad.apply(point, out=field)
                length = vector_length(unit)
                # Total variation smoothed where steps are small (Huber): a
                # step's direction alone, on noise, flips at every iteration,
                # and the one-step-late update chatters by 2 d tv_weight x.
                # Below 4 d tv_weight x (or a hundredth of the data's level)
                # the penalty is quadratic, and the update settles.
                smooth = point * (tv_weight * (4 * len(grad.axes)))
                smooth += level * 1e-2 + tiny
                unit /= backend.at_least(length, smooth)
                del length, smooth
                # The one-step-late TV gradient, weighed by how much the data
                # see each sample (A^T 1): with its full weight on the
                # unobserved border, which the data barely see, the estimate
                # there swung by a factor of two at each step. It may at most
                # halve the denominator.
                denominator = grad.adjoint(unit, out=divergence)
                denominator *= tv_weight
                denominator += 1
                denominator = backend.at_least(denominator, 0.5)
                denominator *= seen_by
            x_new = op.adjoint(ratio)
            x_new *= point
            x_new /= denominator
            # A^T ratio's round-off, where the data barely see a sample.
            x_new = backend.at_least(x_new, 0.0)
            if unseen is not None:
                x_new = xp.where(unseen, point, x_new)
            del blurred, ratio, denominator
            if self.accelerate is True:
                step_before, last_step = last_step, x_new - point
            previous, x = x, x_new
            # The change where the data are, in the observed frame: the
            # unobserved border's corners, which the data hardly hold, would
            # keep the estimate "changing".
            seen, seen_before = (backend.crop(a, frame, observed_shape) for a in (x, previous))
            metrics = {
                "residual": residual,
                "change": backend.norm(seen - seen_before) / max(backend.norm(seen), tiny),
                "extrapolation": alpha,
            }
            done = self.stop.done(iteration, metrics)
            yield Step(iteration, x, 1.0 if done else fraction_done(iteration, self.stop), metrics)
            if done:
                return

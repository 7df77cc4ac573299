"""Richardson-Lucy deconvolution for photon-counting (Poisson) data."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import backend
from ..operators import Convolution
from ._base import MaxIterations, Solver, Step, StoppingRule, fraction_done


class RichardsonLucy(Solver):
    """Richardson-Lucy: the EM algorithm for ``y ~ Poisson(A x)``, ``x >= 0``.

    Each iteration is ``x <- x * A^T(y / A x) / A^T 1``. The normalisation
    ``A^T 1`` makes it correct for every boundary model, including unknown
    surroundings (Bertero and Boccacci 2005), where it is not constant near
    the border. The iterates converge to the noisy maximum-likelihood
    solution, so the iteration must be stopped early: by default, once the
    data are fitted to the noise level (discrepancy principle) when the
    caller gives one, else after 30 iterations.

    Parameters
    ----------
    operator : Convolution
        Blur model with a non-negative PSF.
    stop : StoppingRule, optional
        When to stop; default ``MaxIterations(30)``.

    Notes
    -----
    The step's ``'residual'`` metric is the mean squared misfit
    ``||A x - y||^2 / n`` of the estimate the step started from.

    References
    ----------
    .. [1] W. H. Richardson, "Bayesian-based iterative method of image
       restoration", JOSA 62(1), 55-59, 1972.
    .. [2] L. B. Lucy, "An iterative technique for the rectification of
       observed distributions", AJ 79, 745, 1974.
    .. [3] M. Bertero and P. Boccacci, "A simple method for the reduction of
       boundary effects in the Richardson-Lucy approach to image
       deconvolution", A&A 437, 369-374, 2005.
    """

    def __init__(self, operator: Convolution, *, stop: StoppingRule | None = None):
        if np.any(operator.psf < 0):
            raise ValueError("psf must be non-negative for Richardson-Lucy")
        self.operator = operator
        self.stop = stop if stop is not None else MaxIterations(30)

    def initial(self, y: np.ndarray) -> np.ndarray:
        """Starting estimate: the observed image, extended by its edge values when larger."""
        op = self.operator
        widths = [(k - 1 - k // 2, k // 2) for k in op.psf.shape[op.batch_ndim :]]
        x = backend.pad(y, widths, "edge") if op.shape_in != op.shape_out else y.copy()
        # A positive floor, per image: RL cannot revive a pixel that is exactly 0.
        floor = np.mean(y, axis=op.axes, keepdims=True) * 1e-3
        return np.maximum(x, np.maximum(floor, np.finfo(y.dtype).tiny).astype(y.dtype))

    def iterate(self, observed: np.ndarray) -> Iterator[Step]:  # noqa: D102
        op = self.operator
        y = np.clip(backend.asarray(observed, op.dtype), 0, None)
        norm = op.adjoint(backend.ones(op.shape_out, op.dtype))
        inverse_norm = 1 / np.maximum(norm, norm.max() * 1e-6)
        tiny = np.finfo(op.dtype).tiny
        x = self.initial(y)
        iteration = 0
        while True:
            iteration += 1
            blurred = op.apply(x)
            misfit = blurred - y
            residual = float(np.vdot(misfit.ravel(), misfit.ravel())) / misfit.size
            np.maximum(blurred, tiny, out=blurred)
            np.divide(y, blurred, out=blurred)
            factor = op.adjoint(blurred)
            factor *= inverse_norm
            factor -= 1
            factor *= x
            change = float(np.linalg.norm(factor.ravel()))
            x = x + factor
            norm_x = float(np.linalg.norm(x.ravel()))
            metrics = {"residual": residual, "change": change / norm_x if norm_x > 0 else 0.0}
            done = self.stop.done(iteration, metrics)
            yield Step(iteration, x, 1.0 if done else fraction_done(iteration, self.stop), metrics)
            if done:
                return

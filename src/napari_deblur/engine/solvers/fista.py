"""FISTA with total variation (Beck and Teboulle), with adaptive restart."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import backend
from ..operators import Convolution
from ..priors import denoise_tv
from ._base import MaxIterations, RelativeChange, Solver, Step, StoppingRule, fraction_done


def starting_point(operator: Convolution, y: np.ndarray) -> np.ndarray:
    """The observed image, extended by its edge values to the unknown's shape."""
    widths = [(k - 1 - k // 2, k // 2) for k in operator.psf.shape[operator.batch_ndim :]]
    if operator.shape_in == operator.shape_out:
        return y.copy()
    return backend.pad(y, widths, "edge")


class FistaTV(Solver):
    """Total-variation deconvolution by FISTA: ``||A x - y||^2 / 2 + weight TV(x)``, ``x >= 0``.

    Each iteration is a gradient step on the data term (one blur and one
    adjoint, for any boundary model) followed by the proximal map of TV,
    computed by a few iterations of the fast dual method (FGP) warm-started
    from the previous iteration's dual field. Momentum follows Beck and
    Teboulle, restarted whenever it points uphill (O'Donoghue and Candes's
    gradient scheme), which removes FISTA's ripples.

    Parameters
    ----------
    operator : Convolution
        Blur model (any boundary).
    weight : float or array_like
        TV weight, per batch image, in the data's units.
    inner : int
        FGP iterations per outer iteration.
    couple_channels : bool
        Colour TV across a batch of channels (with their mean weight).
    stop : StoppingRule, optional
        By default the relative change below 1e-3, or 200 iterations.

    References
    ----------
    .. [1] A. Beck and M. Teboulle, "Fast gradient-based algorithms for
       constrained total variation image denoising and deblurring problems",
       IEEE TIP 18(11), 2419-2434, 2009.
    .. [2] B. O'Donoghue and E. Candes, "Adaptive restart for accelerated
       gradient schemes", Found. Comput. Math. 15, 715-732, 2015.
    """

    def __init__(
        self,
        operator: Convolution,
        *,
        weight,
        inner: int = 2,
        couple_channels: bool = True,
        stop: StoppingRule | None = None,
    ):
        weight = np.asarray(weight, dtype=np.float64)
        if np.any(weight < 0) or not np.all(np.isfinite(weight)):
            raise ValueError(f"weight must be finite and non-negative, got {weight}")
        self.operator = operator
        self.weight = weight
        self.inner = int(inner)
        self.couple_channels = couple_channels
        self.stop = stop if stop is not None else RelativeChange(1e-3) | MaxIterations(200)

    def iterate(self, observed: np.ndarray) -> Iterator[Step]:  # noqa: D102
        op = self.operator
        y = backend.asarray(observed, op.dtype)
        batch = op.shape_in[: op.batch_ndim]
        per_image = batch + (1,) * (len(op.shape_in) - op.batch_ndim)
        step = op.dtype.type(1 / op.lipschitz())
        couple = self.couple_channels and op.batch_ndim > 0
        weight = np.mean(self.weight) if couple else self.weight
        threshold = np.broadcast_to(weight, batch).reshape(per_image) * step
        threshold = threshold.astype(op.dtype)
        x = np.maximum(starting_point(op, y), 0)
        z = x
        t = 1.0
        dual = None
        iteration = 0
        while True:
            iteration += 1
            residual = op.apply(z) - y
            descent = z - step * op.adjoint(residual)
            x_new, dual = denoise_tv(
                descent,
                threshold,
                batch_ndim=op.batch_ndim,
                iterations=self.inner,
                dual=dual,
                nonnegative=True,
                couple_channels=couple,
            )
            move = x_new - x
            t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
            if np.vdot((z - x_new).ravel(), move.ravel()) > 0:
                # The momentum points uphill: restart it.
                t_new = 1.0
                z = x_new
            else:
                z = x_new + ((t - 1) / t_new) * move
            t = t_new
            change = float(
                np.linalg.norm(move.ravel()) / max(np.linalg.norm(x_new.ravel()), 1e-30)
            )
            x = x_new
            metrics = {
                "change": change,
                "residual": float(np.vdot(residual.ravel(), residual.ravel())) / residual.size,
            }
            done = self.stop.done(iteration, metrics)
            yield Step(iteration, x, 1.0 if done else fraction_done(iteration, self.stop), metrics)
            if done:
                return

"""Projected gradient descent (Landweber) with Nesterov momentum and adaptive restart."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import backend
from ..operators import Convolution, Gradient
from ._base import MaxIterations, RelativeChange, Solver, Step, StoppingRule, fraction_done
from .fista import starting_point


class NesterovGradient(Solver):
    """Accelerated projected Landweber: ``||A x - y||^2 / 2 + weight ||D x||^2 / 2``, ``x >= 0``.

    Gradient steps of length ``1 / L`` (``L`` bounds the Hessian
    ``A^T A + weight D^T D``), each followed by the projection on ``x >= 0``,
    with Nesterov's momentum restarted whenever it points uphill (the
    gradient scheme of O'Donoghue and Candes). With ``weight = 0`` this is
    accelerated Landweber, which must be stopped early (discrepancy
    principle); with the Wiener weight it is a non-negative Wiener filter
    under any boundary model, run to convergence.

    Parameters
    ----------
    operator : Convolution
        Blur model (any boundary).
    weight : float or array_like
        Weight of the quadratic gradient prior (per batch image); the
        noise-to-signal ratio of :class:`~napari_deblur.engine.solvers.Wiener`.
    stop : StoppingRule, optional
        By default the relative change below 1e-3, or 300 iterations.

    References
    ----------
    .. [1] Y. Nesterov, "A method for solving the convex programming problem
       with convergence rate O(1/k^2)", Dokl. Akad. Nauk SSSR 269, 1983.
    .. [2] B. O'Donoghue and E. Candes, "Adaptive restart for accelerated
       gradient schemes", Found. Comput. Math. 15, 715-732, 2015.
    """

    def __init__(self, operator: Convolution, *, weight=0.0, stop: StoppingRule | None = None):
        weight = np.asarray(weight, dtype=np.float64)
        if np.any(weight < 0) or not np.all(np.isfinite(weight)):
            raise ValueError(f"weight must be finite and non-negative, got {weight}")
        self.operator = operator
        self.weight = weight
        self.stop = stop if stop is not None else RelativeChange(1e-3) | MaxIterations(300)

    def iterate(self, observed: np.ndarray) -> Iterator[Step]:  # noqa: D102
        op = self.operator
        y = backend.asarray(observed, op.dtype)
        batch = op.shape_in[: op.batch_ndim]
        per_image = batch + (1,) * (len(op.shape_in) - op.batch_ndim)
        weight = np.broadcast_to(self.weight, batch).reshape(per_image).astype(op.dtype)
        grad = Gradient(op.shape_in, batch_ndim=op.batch_ndim)
        # ||D||^2 <= 4 d for forward differences in d dimensions.
        lipschitz = op.lipschitz() + float(np.max(self.weight)) * 4 * len(grad.axes)
        step = op.dtype.type(1 / lipschitz)
        x = np.maximum(starting_point(op, y), 0)
        z = x
        t = 1.0
        iteration = 0
        while True:
            iteration += 1
            residual = op.apply(z) - y
            direction = op.adjoint(residual)
            if np.any(self.weight > 0):
                direction += weight * grad.adjoint(grad.apply(z))
            x_new = np.maximum(z - step * direction, 0)
            move = x_new - x
            t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
            if np.vdot((z - x_new).ravel(), move.ravel()) > 0:
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

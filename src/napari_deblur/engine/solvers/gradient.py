"""Projected gradient descent (Landweber) with Nesterov momentum and adaptive restart."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .. import backend
from ..operators import Convolution, Gradient
from ._base import (
    MaxIterations,
    RelativeChange,
    Solver,
    Step,
    StoppingRule,
    mean_squared_misfit,
    per_image,
    proximal_gradient,
    starting_point,
)


class NesterovGradient(Solver):
    """Accelerated projected Landweber: ``||A x - y||^2 / 2 + weight ||D x||^2 / 2``, ``x >= 0``.

    Gradient steps of length ``1 / L`` (``L`` bounds the Hessian
    ``A^T A + weight D^T D``), each followed by the projection on ``x >= 0``,
    with Nesterov's momentum restarted whenever it points uphill
    (:func:`~napari_deblur.engine.solvers._base.proximal_gradient`). With ``weight = 0`` this is
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
    momentum : sequence of float, optional
        The momentum of each iteration (the ``'momentum'`` metric of an
        earlier run) instead of measuring it.
    stop : StoppingRule, optional
        By default the relative change below 1e-3, or 300 iterations.

    References
    ----------
    .. [1] Y. Nesterov, "A method for solving the convex programming problem
       with convergence rate O(1/k^2)", Dokl. Akad. Nauk SSSR 269, 1983.
    .. [2] B. O'Donoghue and E. Candes, "Adaptive restart for accelerated
       gradient schemes", Found. Comput. Math. 15, 715-732, 2015.
    """

    def __init__(
        self,
        operator: Convolution,
        *,
        weight=0.0,
        momentum: Sequence[float] | None = None,
        stop: StoppingRule | None = None,
    ):
        weight = np.asarray(weight, dtype=np.float64)
        if np.any(weight < 0) or not np.all(np.isfinite(weight)):
            raise ValueError(f"weight must be finite and non-negative, got {weight}")
        self.operator = operator
        self.weight = weight
        self.momentum = momentum
        self.stop = stop if stop is not None else RelativeChange(1e-3) | MaxIterations(300)

    def iterate(self, observed: np.ndarray) -> Iterator[Step]:  # noqa: D102
        op = self.operator
        observed = backend.asarray(observed, op.dtype, like=op.psf)
        y = op.restrict(observed)
        weight = per_image(self.weight, op)
        grad = Gradient(op.shape_in, batch_ndim=op.batch_ndim)
        # ||D||^2 <= 4 d for forward differences in d dimensions.
        lipschitz = op.lipschitz() + float(np.max(self.weight)) * 4 * len(grad.axes)
        step = 1 / lipschitz
        xp = backend.namespace(op.psf)
        regularised = bool(np.any(self.weight > 0))

        def forward(z):
            residual = op.apply(z) - y
            direction = op.adjoint(residual)
            if regularised:
                direction += weight * grad.adjoint(grad.apply(z))
            return z - step * direction, mean_squared_misfit(op, residual)

        def positive(point):
            return xp.maximum(point, 0.0)

        start = xp.maximum(starting_point(op, observed), 0.0)
        yield from proximal_gradient(start, forward, positive, self.stop, self.momentum)

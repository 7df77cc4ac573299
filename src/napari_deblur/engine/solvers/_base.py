"""The iteration protocol shared by all solvers, and stopping rules.

A solver's ``iterate(observed)`` is a generator of :class:`Step`: the API
runs it to the end, the widget's thread worker shows each step and can stop
between two of them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .. import backend
from ..operators import Convolution


@dataclass(frozen=True)
class Step:
    """State of a solver after one iteration.

    Attributes
    ----------
    iteration : int
        Iterations done (1 after the first).
    estimate : ndarray
        Current estimate of the sharp scene (``operator.shape_in``).
    fraction : float
        Fraction of the work done, in [0, 1]; 1 on the last step.
    metrics : mapping of str to float
        Whatever the solver measured, e.g. ``'residual'`` (mean squared
        data misfit) and ``'change'`` (relative change of the estimate).
    """

    iteration: int
    estimate: np.ndarray
    fraction: float
    metrics: Mapping[str, float] = field(default_factory=dict)


class StoppingRule(ABC):
    """When to stop iterating; rules combine with ``|`` (either) and ``&`` (both)."""

    #: The most iterations this rule allows, if it bounds them.
    max_iter: int | None = None

    @abstractmethod
    def done(self, iteration: int, metrics: Mapping[str, float]) -> bool:
        """Whether to stop after `iteration` with these `metrics`."""

    def __or__(self, other: StoppingRule) -> StoppingRule:
        return AnyOf(self, other)

    def __and__(self, other: StoppingRule) -> StoppingRule:
        return AllOf(self, other)


class MaxIterations(StoppingRule):
    """Stop after `count` iterations."""

    def __init__(self, count: int):
        if int(count) < 1:
            raise ValueError(f"max_iter must be at least 1, got {count}")
        self.max_iter = int(count)

    def done(self, iteration, metrics):  # noqa: D102
        return iteration >= self.max_iter

    def __repr__(self) -> str:
        return f"MaxIterations({self.max_iter})"


class RelativeChange(StoppingRule):
    """Stop when ``||x_k - x_{k-1}|| / ||x_k||`` falls below `tol`."""

    def __init__(self, tol: float):
        if not tol > 0:
            raise ValueError(f"tol must be positive, got {tol}")
        self.tol = float(tol)

    def done(self, iteration, metrics):  # noqa: D102
        return metrics.get("change", np.inf) < self.tol

    def __repr__(self) -> str:
        return f"RelativeChange({self.tol:g})"


class Stagnation(StoppingRule):
    """Stop when the relative change has stopped falling (by `factor` over `checks` reports).

    A method that cycles instead of converging keeps changing by about the
    same amount: ADMM with a non-convex prior, whose split flips samples
    between the two roots of its threshold, changes by about 0.5% an
    iteration for ever, while its estimate drifts away from the best it
    passed. The rule reads the ``'change'`` metric each time a step reports
    it, and starts again with a run whose iterations start again.
    """

    def __init__(self, checks: int = 3, factor: float = 0.9):
        self.checks, self.factor = int(checks), float(factor)
        self._changes: list[tuple[int, float]] = []

    def done(self, iteration, metrics):  # noqa: D102
        if "change" not in metrics:
            return False
        if self._changes and iteration <= self._changes[-1][0]:
            self._changes = []
        self._changes.append((iteration, float(metrics["change"])))
        if len(self._changes) <= self.checks:
            return False
        return self._changes[-1][1] > self.factor * self._changes[-1 - self.checks][1]

    def __repr__(self) -> str:
        return f"Stagnation({self.checks}, {self.factor:g})"


class Discrepancy(StoppingRule):
    """Morozov's discrepancy principle: stop once the data are fitted to the noise.

    Stops when the mean squared residual ``||A x - y||^2 / n`` reaches
    ``tau`` times the noise variance: fitting further only fits the noise.

    Parameters
    ----------
    variance : float or array_like
        Noise variance averaged over the pixels (per batch image; the mean
        over the batch is used).
    tau : float
        Safety factor, about 1.
    """

    def __init__(self, variance, tau: float = 1.0):
        self.level = float(tau * np.mean(variance))

    def done(self, iteration, metrics):  # noqa: D102
        return metrics.get("residual", np.inf) <= self.level

    def __repr__(self) -> str:
        return f"Discrepancy(level={self.level:g})"


class AnyOf(StoppingRule):
    """Stop when any of the rules says so."""

    def __init__(self, *rules: StoppingRule):
        self.rules = rules
        bounds = [r.max_iter for r in rules if r.max_iter is not None]
        self.max_iter = min(bounds) if bounds else None

    def done(self, iteration, metrics):  # noqa: D102
        return any(r.done(iteration, metrics) for r in self.rules)

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.rules))


class AllOf(StoppingRule):
    """Stop when all of the rules say so."""

    def __init__(self, *rules: StoppingRule):
        self.rules = rules
        bounds = [r.max_iter for r in rules if r.max_iter is not None]
        self.max_iter = max(bounds) if len(bounds) == len(rules) else None

    def done(self, iteration, metrics):  # noqa: D102
        return all(r.done(iteration, metrics) for r in self.rules)

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.rules))


class Solver(ABC):
    """A deconvolution method: ``iterate(observed)`` yields :class:`Step` objects."""

    @abstractmethod
    def iterate(self, observed: np.ndarray) -> Iterator[Step]:
        """Yield the estimate after each iteration; the last has ``fraction == 1``."""

    def run(self, observed: np.ndarray) -> np.ndarray:
        """Iterate to the end and return the final estimate."""
        (last,) = deque(self.iterate(observed), maxlen=1)
        return last.estimate


def fraction_done(iteration: int, stop: StoppingRule) -> float:
    """Progress after `iteration` as a fraction of the rule's iteration bound."""
    if stop.max_iter is None:
        return 0.0
    return min(1.0, iteration / stop.max_iter)


def per_image(value, operator: Convolution) -> np.ndarray:
    """`value` (one number, or one per batch image) shaped to broadcast on the unknown."""
    batch = operator.shape_in[: operator.batch_ndim]
    spatial = (1,) * (len(operator.shape_in) - operator.batch_ndim)
    value = np.broadcast_to(np.asarray(value, dtype=np.float64), batch).reshape(batch + spatial)
    return backend.asarray(value, operator.dtype, like=operator.psf)


def checked_data_weights(data_weights, operator: Convolution) -> np.ndarray | None:
    """`data_weights` (each sample's weight in a least-squares data term) checked and broadcast.

    Raises
    ------
    ValueError
        If any weight is not finite and positive.
    """
    if data_weights is None:
        return None
    data_weights = np.asarray(data_weights)
    if np.any(data_weights <= 0) or not np.all(np.isfinite(data_weights)):
        raise ValueError("data_weights must be finite and positive")
    return np.broadcast_to(data_weights, operator.shape_out)


def mean_squared_misfit(operator: Convolution, residual: np.ndarray) -> float:
    """``||A x - y||^2`` per observed sample, from the residual ``A x - y``."""
    return backend.dot(residual, residual) / operator.observed_count


def fill_unobserved(
    operator: Convolution, y: np.ndarray, *, around: np.ndarray | None = None
) -> np.ndarray:
    """`y` with the samples outside the operator's mask filled from the observed ones round them.

    A stuck pixel or a clipped highlight is no guide to the scene: the
    starting point starts from its neighbours. Where the data-driven weights
    are chosen, the samples within the PSF's reach of clipped lights (spots
    of `around` up to four PSF areas) are filled too, so that the light a
    lamp spreads round it does not pass for the scene's detail (unless that
    reach covers half the image).
    """
    if operator.mask is None:
        return y
    # SciPy fills (a distance transform, a smoothing): on the host.
    original, y = y, backend.to_numpy(y)
    batch = operator.shape_out[: operator.batch_ndim]
    spatial = operator.shape_out[operator.batch_ndim :]
    filled = y.reshape((-1,) + spatial).copy()
    unobserved = backend.to_numpy(operator.mask).reshape(filled.shape) == 0
    if around is not None:
        reach = operator.psf.shape[operator.batch_ndim :]
        for hole, clipped in zip(unobserved, np.reshape(around, unobserved.shape)):
            # Lights are clipped spots about a PSF across; a clipped sky or
            # white wall is scene, its edges real detail.
            labels, _ = ndimage.label(clipped)
            sizes = np.bincount(labels.ravel())
            is_light = sizes <= 4 * np.prod(reach)
            is_light[0] = False
            lights = is_light[labels]
            # A box as large as the PSF round each light (a separable maximum).
            glare = ndimage.maximum_filter(lights, size=reach)
            # Scattered clipped samples (noise at the top of the range) would
            # spread over everything: then only they are filled.
            if np.mean(glare) < 0.5:
                hole |= glare
    smoothing = max(operator.psf.shape[operator.batch_ndim :]) / 4
    for image, hole in zip(filled, unobserved):
        if hole.any() and not hole.all():
            # The smoothing reads four of its widths round a sample (SciPy's
            # truncation); the nearest observed sample lies next to the hole.
            for box, part in _hole_boxes(hole, int(np.ceil(4 * smoothing)) + 2):
                _fill(image[box], hole[box], part, smoothing)
    return backend.asarray(filled.reshape(batch + spatial), like=original)


def _hole_boxes(hole: np.ndarray, margin: int):
    """(box, the hole's samples in it) for each group of holes within `margin` of each other.

    A fill reads at most `margin` samples round a hole, so the boxes round
    separate groups (a few lamps, a clipped sky) are filled one by one,
    which costs their area, not the image's; many scattered groups (hot
    pixels) make one box, the whole image.
    """
    labels, count = ndimage.label(ndimage.maximum_filter(hole, size=2 * margin + 1))
    boxes = ndimage.find_objects(labels)
    if count > 64 or sum(np.prod([s.stop - s.start for s in b]) for b in boxes) > hole.size / 2:
        yield (slice(None),) * hole.ndim, hole
        return
    for number, box in enumerate(boxes, start=1):
        yield box, hole[box] & (labels[box] == number)


def _fill(image: np.ndarray, hole: np.ndarray, part: np.ndarray, smoothing: float) -> None:
    """Fill the samples `part` of `hole` in place: the nearest observed value, smoothed.

    The smoothing, over half a PSF, keeps the seams of the nearest-neighbour
    cells from passing for sharp detail.
    """
    nearest = ndimage.distance_transform_edt(hole, return_distances=False, return_indices=True)
    image[part] = image[tuple(index[part] for index in nearest)]
    image[part] = ndimage.gaussian_filter(image, smoothing)[part]


def starting_point(operator: Convolution, y: np.ndarray) -> np.ndarray:
    """The observed image, unobserved samples filled, extended by its edges to the unknown."""
    y = fill_unobserved(operator, y)
    if operator.shape_in == operator.shape_out:
        return backend.copy(y)
    widths = [(k - 1 - k // 2, k // 2) for k in operator.psf.shape[operator.batch_ndim :]]
    return backend.pad(y, widths, "edge")


def proximal_gradient(
    start: np.ndarray,
    forward: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    proximal: Callable[[np.ndarray], np.ndarray],
    stop: StoppingRule,
    momentum: Sequence[float] | None = None,
) -> Iterator[Step]:
    """Accelerated proximal gradient: FISTA's momentum with adaptive restart.

    Each iteration takes the gradient step ``forward(z)`` (which returns the
    stepped point and the mean squared data misfit, the ``'residual'`` metric) from
    the extrapolated point ``z``, then ``proximal`` of it. The momentum
    follows Beck and Teboulle and is restarted whenever it points uphill
    (O'Donoghue and Candes's gradient scheme), which removes the ripples of
    plain acceleration. The momentum each step took is its ``'momentum'``
    metric; an earlier run's, given as `momentum` (one per iteration), are
    taken instead of measuring them, so that the parts of a large image,
    deblurred one by one, take the steps of one run.

    References
    ----------
    .. [1] A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding
       algorithm for linear inverse problems", SIAM J. Imaging Sci. 2(1),
       183-202, 2009.
    .. [2] B. O'Donoghue and E. Candes, "Adaptive restart for accelerated
       gradient schemes", Found. Comput. Math. 15, 715-732, 2015.
    """
    x = z = start
    t = 1.0
    iteration = 0
    while True:
        iteration += 1
        stepped, misfit = forward(z)
        x_new = proximal(stepped)
        move = x_new - x
        if momentum is not None:
            beta = momentum[iteration - 1] if iteration <= len(momentum) else 0.0
        elif backend.dot(z - x_new, move) > 0:
            beta, t = 0.0, 1.0
        else:
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            beta, t = (t - 1) / t_new, t_new
        z = x_new + beta * move if beta else x_new
        change = backend.norm(move) / max(backend.norm(x_new), 1e-30)
        x = x_new
        metrics = {"change": change, "residual": misfit, "momentum": beta}
        done = stop.done(iteration, metrics)
        yield Step(iteration, x, 1.0 if done else fraction_done(iteration, stop), metrics)
        if done:
            return

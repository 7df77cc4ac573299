"""ADMM with a gradient prior (TV or hyper-Laplacian) and closed-form FFT steps."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from .. import backend
from ..operators import Convolution, Gradient, gradient_spectrum
from ..priors import shrink_hyper_laplacian, shrink_isotropic
from ._base import (
    MaxIterations,
    RelativeChange,
    Solver,
    Step,
    StoppingRule,
    checked_data_weights,
    fraction_done,
    per_image,
    starting_point,
)

#: Iterations between two convergence tests (each costs about a quarter of an
#: iteration).
CHECK_EVERY = 5

#: Penalty of the prior's and positivity's splits, in units of the prior's
#: curvature (about 1 / typical gradient), per prior, for data of mean level
#: 1. Data ``s`` times larger make the objective ``s^p`` times larger (``p``:
#: the prior's degree, 1 for TV, alpha for the hyper-Laplacian) and the
#: penalty terms ``s^2`` times: the penalty is divided by the data's level to
#: the power ``2 - p``, so that data in any units take the same steps. The
#: values are those that converged fastest on the benchmark set's
#: linear-light photos (20 and 100), restated at the level of its camera
#: photo, 0.31.
RHO_PRIOR = {"tv": 6.2, "hyper-laplacian": 21.0}

#: The largest ratio of the data split's penalty to the prior's. The data's
#: penalty is the data's curvature, 1 / weight, which grows without bound as
#: the noise falls, while the samples beyond an unobserved border move only
#: at the prior's pace: on noise-free 16-bit photos (ratios of 1e4 to 2e5)
#: the relative change stopped ADMM with the frame's edge samples far from
#: their minimum (up to 0.9 of the range off). Of 300, 1e3, 3e3 and 1e4 on
#: those photos, 1e3 and 3e3 did best (300 slows the interior). On the
#: camera-made benchmark set (3000 and 300 photons) the ratio stays under
#: 200, where nothing changes.
MAX_PENALTY_RATIO = 1e3


def _norm(*arrays: np.ndarray) -> float:
    """Euclidean norm of several arrays taken as one vector."""
    return math.sqrt(sum(backend.dot(a, a) for a in arrays))


class ADMM(Solver):
    """Deconvolution with a gradient prior by the alternating direction method of multipliers.

    Solves ``||M (h * x) - y||_W^2 / 2 + weight R(D x)`` subject to ``x >= 0``,
    where ``h * x`` is a circular convolution on the operator's FFT grid and
    ``M`` keeps the observed samples: for the ``'valid'`` boundary (unknown
    surroundings) ``x`` is the whole grid and ``M`` the frame (the masked data
    term of Almeida and Figueiredo), for ``'periodic'`` ``M`` keeps everything;
    ``W`` weighs each sample by the inverse of its noise variance (camera
    noise grows with the light), uniform by default.
    The splitting ``v = h * x``, ``z = D x``, ``w = x`` makes every step
    closed-form:

    - ``x``: a division of spectra by ``rho_v |H|^2 + rho_z (|G|^2 + 1)`` (the
      splits ``z`` and ``w`` share one penalty),
    - ``v``: on observed samples a weighted mean of the data and the blurred
      estimate, elsewhere the blurred estimate,
    - ``z``: the prior's proximal map (vector soft threshold for TV, the
      hyper-Laplacian lookup table otherwise),
    - ``w``: a projection on ``x >= 0``.

    Parameters
    ----------
    operator : Convolution
        Blur model with boundary ``'valid'`` or ``'periodic'``.
    weight : float or array_like
        The prior's weight (per batch image), in the data's units.
    prior : {'tv', 'hyper-laplacian'}
        Isotropic total variation or ``sum |g|^alpha``.
    alpha : float
        Exponent of the hyper-Laplacian prior.
    couple_channels : bool
        For TV on a batch of colour channels: take the gradient's length
        across channels too (colour, or vectorial, TV), which keeps edges in
        register across colours.
    clipped : ndarray of bool, optional
        Samples of the observation where the sensor clipped (left out of the
        operator's mask): there the blurred scene is at least what was
        recorded, a bound the ``v`` step keeps (Whyte et al.). Without it a
        clipped lamp comes back dim and wide, ringed by a dark halo.
    data_weights : array_like, optional
        ``W``: each observed sample's weight relative to the typical one
        (the typical noise variance over the sample's,
        :func:`~napari_deblur.engine.noise.data_weights`), broadcastable to
        the observation. Without them the bright glare round a lamp, whose
        photon noise is many times the dark scene's, pulls the fit as hard
        as a dark sample and leaves a dark halo round it.
    level : float or array_like, optional
        The data's typical value (their mean per batch image; by default the
        mean magnitude of the observed samples), which sets the penalties'
        scale (:data:`RHO_PRIOR`): given, so that the parts of a large image,
        deblurred one by one, take the steps of one run.
    penalties : sequence of float, optional
        The prior's penalty at each iteration, relative to
        :data:`RHO_PRIOR`'s (each step's ``'penalty'`` metric), to repeat
        instead of balancing it: balanced on a part of an image, it would
        follow that part's residuals, not the whole's.
    stop : StoppingRule, optional
        By default the primal and dual residuals (the step's ``'change'``)
        below 1e-3 of the iterates, or 150 iterations.

    Notes
    -----
    The data's penalty is fixed by the weight, up to
    :data:`MAX_PENALTY_RATIO` times the prior's; the prior's is
    :data:`RHO_PRIOR`, and for TV round clipped samples it is balanced every
    :data:`CHECK_EVERY` iterations against the residuals (Boyd et al. 3.4.1).

    References
    ----------
    .. [1] S. Boyd et al., "Distributed optimization and statistical learning
       via the alternating direction method of multipliers", 2011.
    .. [2] M. S. C. Almeida and M. A. T. Figueiredo, "Deconvolving images with
       unknown boundaries using the alternating direction method of
       multipliers", IEEE TIP 22(8), 3074-3086, 2013.
    .. [3] D. Krishnan and R. Fergus, "Fast image deconvolution using
       hyper-Laplacian priors", NIPS 2009.
    .. [4] O. Whyte, J. Sivic and A. Zisserman, "Deblurring shaken and
       partially saturated images", IJCV 110(2), 185-201, 2014.
    """

    def __init__(
        self,
        operator: Convolution,
        *,
        weight,
        prior: str = "tv",
        alpha: float = 2 / 3,
        couple_channels: bool = True,
        clipped=None,
        data_weights=None,
        level=None,
        penalties: Sequence[float] | None = None,
        stop: StoppingRule | None = None,
    ):
        if operator.boundary not in ("valid", "periodic"):
            raise ValueError(
                f"ADMM needs the 'valid' or 'periodic' boundary, got {operator.boundary!r}; "
                "use FISTA-TV or a gradient method for padded boundaries"
            )
        if prior not in ("tv", "hyper-laplacian"):
            raise ValueError(f"prior must be 'tv' or 'hyper-laplacian', got {prior!r}")
        weight = np.asarray(weight, dtype=np.float64)
        if np.any(weight <= 0) or not np.all(np.isfinite(weight)):
            raise ValueError(f"weight must be finite and positive, got {weight}")
        self.operator = operator
        self.weight = weight
        self.prior = prior
        self.alpha = alpha
        self.couple_channels = couple_channels
        self.clipped = None if clipped is None else np.broadcast_to(clipped, operator.shape_out)
        self.data_weights = checked_data_weights(data_weights, operator)
        self.level = level
        self.penalties = None if penalties is None else list(penalties)
        self.stop = stop if stop is not None else RelativeChange(1e-3) | MaxIterations(150)

    def iterate(self, observed: np.ndarray) -> Iterator[Step]:  # noqa: D102
        op = self.operator
        fft_op = op.with_fft()
        dtype = op.dtype
        axes = op.axes
        grid = fft_op.fft_shape
        origin = (0,) * len(grid)
        xp = backend.namespace(op.psf)
        observed = backend.asarray(observed, dtype, like=op.psf)
        otf = fft_op.otf
        # The objective divided by the weight, data / weight + R: the data's
        # curvature is 1 / weight, the prior's about 1 / (typical gradient),
        # and the penalties follow them.
        data_curvature = 1 / per_image(self.weight, op)
        # The data's level: one for all images, whose priors may be coupled.
        level = (
            float(xp.mean(xp.abs(op.restrict(observed))))
            if self.level is None
            else float(np.mean(self.level))
        )
        degree = 1.0 if self.prior == "tv" else self.alpha
        rho_z = RHO_PRIOR[self.prior] / (level if level > 0 else 1.0) ** (2 - degree)
        # One scale for every image's data penalty: their shares below stay
        # one array for all channels.
        penalty_scale = min(1.0, MAX_PENALTY_RATIO * rho_z / float(xp.max(data_curvature)))
        rho_v = data_curvature * penalty_scale
        otf_power = rho_v * xp.abs(otf) ** 2
        differences_power = backend.asarray(gradient_spectrum(grid, np.float64), dtype, like=otf)

        def solve_spectrum(rho):
            # 1 / (rho_v |H|^2 + rho |G|^2 + rho): the x step's division.
            return backend.astype(1 / (otf_power + rho * (differences_power + 1)), dtype)

        inverse_denominator = solve_spectrum(rho_z)
        rho_start = rho_z

        def rebalanced(rho, *duals):
            # A new penalty for the prior's splits, its threshold and x step,
            # and the scaled duals (the unscaled ones over the penalty).
            return (rho, 1 / rho, solve_spectrum(rho), *(u * (rho_z / rho) for u in duals))

        # The v step's weights: on observed samples (mask 1) the data and the
        # estimate in the ratio of their curvatures, W / weight and rho_v
        # (equal for a sample of typical noise unless the penalty is scaled
        # down), elsewhere the estimate. Only these two
        # arrays of the data stay in memory; without a mask or weights one
        # copy of the shares serves every channel.
        mask = (
            backend.ones((1,) * op.batch_ndim + observed.shape[op.batch_ndim :], dtype, like=otf)
            if op.mask is None
            else op.mask
        )
        if self.data_weights is not None:
            mask = mask * backend.asarray(self.data_weights, dtype, like=otf)
        curvature = backend.embed(mask, origin, grid)
        curvature /= penalty_scale
        estimate_share = 1 / (curvature + 1)
        data_share = backend.embed(op.restrict(observed), origin, grid)
        data_share *= curvature * estimate_share
        del curvature
        conj_otf = backend.astype(xp.conj(otf) * rho_v, otf.dtype)
        lower = None
        if self.clipped is not None and self.clipped.any():
            # The bound: the recorded value where clipped, none elsewhere.
            clipped = backend.asarray(self.clipped, like=otf)
            lower = backend.zeros(observed.shape[: op.batch_ndim] + tuple(grid), dtype, like=otf)
            lower -= math.inf
            frame = (slice(None),) * op.batch_ndim
            frame += tuple(slice(0, n) for n in observed.shape[op.batch_ndim :])
            lower[frame] = xp.where(clipped, observed, -math.inf)
        threshold = 1 / rho_z
        # Colour TV: one vector per pixel across directions and channels, so
        # that edges are shared and no coloured fringe is cheaper than a grey one.
        channels = tuple(range(op.batch_ndim)) if self.couple_channels else ()

        # Start from the observed image extended by its edges, to the whole grid.
        x = starting_point(op, observed)
        x = backend.pad(x, [(0, g - s) for g, s in zip(grid, x.shape[op.batch_ndim :])], "edge")
        del observed, mask
        v = backend.astype(backend.irfftn(backend.rfftn(x, axes) * otf, grid, axes), dtype)
        differences = Gradient(x.shape, batch_ndim=op.batch_ndim, periodic=True)
        z = differences.apply(x)
        w = xp.maximum(x, 0.0)
        u_v = xp.zeros_like(v)
        u_z = xp.zeros_like(z)
        u_w = xp.zeros_like(w)
        # Buffers for the temporaries of each iteration (the split variables
        # themselves are new arrays: the estimate handed out is a view of w).
        work = xp.empty_like(z)
        scratch = xp.empty_like(w)

        iteration = 0
        while True:
            iteration += 1
            if self.penalties is not None and iteration <= len(self.penalties):
                wanted = rho_start * self.penalties[iteration - 1]
                if wanted != rho_z:
                    rho_z, threshold, inverse_denominator, u_z, u_w = rebalanced(wanted, u_z, u_w)
            metrics = {"penalty": rho_z / rho_start}
            # x: (rho_v H^T H + rho_z (D^T D + 1)) x = rho_v H^T a + rho_z (D^T b + c);
            # the last two terms are summed in space (D^T is cheap there), so
            # that the step takes two transforms forward and two back.
            local = differences.adjoint(backend.subtract(z, u_z, work))
            local += backend.subtract(w, u_w, scratch)
            local *= rho_z
            spectrum = backend.rfftn(backend.subtract(v, u_v, scratch), axes)
            spectrum *= conj_otf
            spectrum += backend.rfftn(local, axes)
            del local
            spectrum *= inverse_denominator
            x = backend.astype(backend.irfftn(spectrum, grid, axes), dtype)
            spectrum *= otf
            blurred = backend.astype(backend.irfftn(spectrum, grid, axes), dtype)
            # Freed now, not when the next iteration replaces it: large images
            # are limited by the peak of memory.
            del spectrum

            check = iteration % CHECK_EVERY == 0
            if check:
                before = (v, z, w, backend.copy(u_v), backend.copy(u_z), backend.copy(u_w))
            # Each split in scaled form: shifted = K x + u, the new split
            # variable is the prox of shifted, and u becomes shifted minus it.
            # v: on observed samples the data and the blurred estimate, weighed
            # by their curvatures; elsewhere the estimate.
            shifted = blurred
            shifted += u_v
            v = shifted * estimate_share
            v += data_share
            if lower is not None:
                v = backend.at_least(v, lower)
            backend.subtract(shifted, v, u_v)
            shifted = differences.apply(x, out=work)
            shifted += u_z
            if self.prior == "tv":
                z = shrink_isotropic(shifted, threshold, channel_axes=channels)
            else:
                z = shrink_hyper_laplacian(shifted, threshold, self.alpha)
            backend.subtract(shifted, z, u_z)
            shifted = x
            shifted += u_w
            w = xp.maximum(shifted, 0.0)
            backend.subtract(shifted, w, u_w)

            if check:
                # Boyd et al.'s criterion: the primal residuals (the change of
                # u) and the dual ones (the change of the splits) small
                # relative to the splits.
                v_old, z_old, w_old, u_v_old, u_z_old, u_w_old = before
                primal = _norm(u_v - u_v_old, u_z - u_z_old, u_w - u_w_old)
                dual = _norm(v - v_old, z - z_old, w - w_old)
                metrics["change"] = max(primal, dual) / max(_norm(v, z, w), 1e-30)
                # Residual balancing (Boyd et al. 3.4.1) of TV's penalty
                # round clipped lamps, whose contrast puts the right penalty
                # far from the typical one: a primal residual ten times the
                # dual one doubles it, the reverse halves it. (Elsewhere the
                # typical penalty converges sooner; the hyper-Laplacian
                # prior is not convex, and moving its penalty would move
                # the minimum it finds.)
                r_prior = _norm(u_z - u_z_old, u_w - u_w_old)
                s_prior = rho_z * _norm(z - z_old, w - w_old)
                factor = 2 if r_prior > 10 * s_prior else 0.5 if s_prior > 10 * r_prior else 1
                balanced = self.prior == "tv" and lower is not None and self.penalties is None
                if factor != 1 and balanced:
                    rho_z, threshold, inverse_denominator, u_z, u_w = rebalanced(
                        rho_z * factor, u_z, u_w
                    )
            done = self.stop.done(iteration, metrics)
            estimate = backend.crop(w, origin, op.shape_in[op.batch_ndim :])
            yield Step(
                iteration, estimate, 1.0 if done else fraction_done(iteration, self.stop), metrics
            )
            if done:
                return

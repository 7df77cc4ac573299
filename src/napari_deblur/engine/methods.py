"""The deconvolution methods by name, each with its weight and stopping rule chosen from the data.

Nothing here needs tuning by the user: the noise level comes from the image
(:func:`~napari_deblur.engine.noise.estimate_noise_level`), the quadratic
weight from generalised cross-validation
(:func:`~napari_deblur.engine.noise.gcv_nsr`), the total-variation weight
from both (:func:`~napari_deblur.engine.noise.tv_weight`); regularised
methods run until they stop changing (the hyper-Laplacian ADMM, which
cycles, until its change stops falling), unregularised ones stop by the
discrepancy principle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .noise import gcv_nsr, tv_weight
from .operators import Convolution, VaryingConvolution
from .solvers import (
    ADMM,
    Discrepancy,
    FistaTV,
    MaxIterations,
    NesterovGradient,
    RelativeChange,
    RichardsonLucy,
    Solver,
    Stagnation,
    StoppingRule,
    Wiener,
)

#: Methods by name; ``'auto'`` picks one for the data (:func:`choose_method`).
METHODS = (
    "auto",
    "wiener",
    "landweber",
    "richardson_lucy",
    "rl_tv",
    "fista_tv",
    "admm_tv",
    "admm_hyper_laplacian",
)

#: Exponent of the hyper-Laplacian prior (Krishnan and Fergus's choice).
HYPER_LAPLACIAN_ALPHA = 2 / 3

#: What each method's `weight` means, for reports and the GUI.
WEIGHT_MEANING = {
    "wiener": "noise-to-signal ratio",
    "landweber": "noise-to-signal ratio",
    "richardson_lucy": None,
    "rl_tv": "TV weight (Poisson)",
    "fista_tv": "TV weight",
    "admm_tv": "TV weight",
    "admm_hyper_laplacian": "prior weight",
}


#: Methods that divide spectra, so need one PSF for the whole frame.
ONE_PSF_METHODS = ("wiener", "admm_tv", "admm_hyper_laplacian")

#: Methods whose least-squares data term weighs each sample by its noise
#: (``build_solver``'s `data_weights`).
WEIGHTED_DATA_METHODS = ("fista_tv", "admm_tv", "admm_hyper_laplacian")

#: The step metrics that a run adapts to its data and another run repeats
#: (``build_solver``'s `schedule`): Richardson-Lucy's extrapolation, the
#: gradient methods' momentum, ADMM's penalty.
SCHEDULED = ("extrapolation", "momentum", "penalty")


def choose_method(
    *, encoding: str, boundary: str, photon_share: float, varying: bool = False
) -> str:
    """The method for these data: RL-TV for photon counts, least-squares TV for photos.

    Linear data whose noise is mostly photon noise (`photon_share`, from
    :class:`~napari_deblur.engine.noise.NoiseLevel`; a fluorescence camera,
    a telescope) follow Poisson statistics, which RL-TV models; camera
    photos (sRGB) and data with mostly additive noise get total variation
    with a least-squares data term: by ADMM, which converges in the fewest
    iterations, where the boundary and one PSF for the whole frame allow
    it, else by FISTA (for blur that varies across the frame, `varying`).
    """
    if encoding == "linear" and photon_share > 0.5:
        return "rl_tv"
    return "admm_tv" if boundary in ("valid", "periodic") and not varying else "fista_tv"


def build_solver(
    method: str,
    operator: Convolution,
    observed: np.ndarray,
    *,
    variance: np.ndarray,
    weight: float | None = None,
    max_iter: int | None = None,
    clipped: np.ndarray | None = None,
    background=0.0,
    iterations: int | None = None,
    schedule: Sequence[float] | None = None,
    level=None,
    data_weights: np.ndarray | None = None,
    band: float = 0.5,
) -> tuple[Solver, np.ndarray | None]:
    """The solver for `method` with its weight chosen from the data (unless given).

    Parameters
    ----------
    method : str
        One of :data:`METHODS` but ``'auto'``.
    operator : Convolution
        Blur model.
    observed : ndarray
        The data the weights are chosen on, batch axes first, with samples
        outside the operator's mask filled in
        (:func:`~napari_deblur.engine.solvers.fill_unobserved`).
    variance : ndarray
        Noise variance per batch image.
    weight : float, optional
        Regularisation weight (see :data:`WEIGHT_MEANING`); chosen when omitted.
    max_iter : int, optional
        Upper bound on iterations.
    clipped : ndarray of bool, optional
        Samples where the sensor clipped (also left out of the operator's
        mask): the ADMM methods keep the blurred scene at least as bright
        as recorded there; the others only leave them out.
    background : float or ndarray
        Light besides the blurred scene, per batch image, for the
        Richardson-Lucy methods (Poisson data): fitted, not deblurred.
    iterations, schedule, level : optional
        To repeat an earlier run's steps on other data (the parts of a large
        image): exactly `iterations` iterations, with the `schedule` of
        that run's steps (their :data:`SCHEDULED` metric) and its data
        `level` (which the ADMM methods scale their penalties by).
    data_weights : ndarray, optional
        Each sample's weight in the least-squares data term of the
        :data:`WEIGHTED_DATA_METHODS`, relative to the typical sample's
        (:func:`~napari_deblur.engine.noise.data_weights`); the other
        methods' data terms stay as they are (Richardson-Lucy's Poisson
        likelihood weighs the samples by itself).
    band : float
        The highest frequency, in cycles per sample, from which GCV chooses
        the weight (:func:`~napari_deblur.engine.noise.gcv_nsr`).

    Returns
    -------
    solver, weight
        The solver and the weight it uses, per batch image (None if none).
    """
    if method not in METHODS or method == "auto":
        raise ValueError(f"method must be one of {METHODS[1:]}, got {method!r}")
    batch_ndim = operator.batch_ndim

    def nsr() -> np.ndarray:
        if isinstance(operator, VaryingConvolution):
            # Each PSF judged where it holds, with the part of the image it
            # blurs; one weight for the frame must keep the noise down in the
            # region that needs the most (where the interpolated blur fits the
            # data worst, too), or that region's noise shows.
            return np.max(
                [
                    gcv_nsr(window, psf, batch_ndim=batch_ndim, band=band)
                    for window, psf in operator.regions(observed)
                ],
                axis=0,
            )
        return gcv_nsr(observed, operator.psf, batch_ndim=batch_ndim, band=band)

    varying = isinstance(operator, VaryingConvolution)

    def converged(default: int) -> StoppingRule:
        if iterations is not None:
            return MaxIterations(iterations)
        rule = RelativeChange(1e-3) | MaxIterations(max_iter or default)
        # An interpolated blur is not the true one: its error adds to the
        # noise, and fitting the data closer than the noise fits that error.
        return Discrepancy(variance) | rule if varying else rule

    def per_image(chosen) -> np.ndarray:
        batch = operator.shape_out[:batch_ndim]
        return np.broadcast_to(np.asarray(chosen, float), batch).copy()

    accelerate = True if schedule is None else schedule
    if method == "richardson_lucy":
        stop = converged(100) if iterations else Discrepancy(variance) | converged(100)
        solver = RichardsonLucy(
            operator, stop=stop, accelerate=accelerate, background=background, level=level
        )
        return solver, None
    if method == "wiener":
        chosen = per_image(nsr() if weight is None else weight)
        return Wiener(operator, nsr=chosen, stop=converged(100)), chosen
    if method == "landweber":
        chosen = per_image(nsr() if weight is None else weight)
        solver = NesterovGradient(operator, weight=chosen, momentum=schedule, stop=converged(300))
        return solver, chosen
    chosen = per_image(tv_weight(variance, nsr()) if weight is None else weight)
    channels = int(np.prod(operator.shape_out[:batch_ndim]))
    if weight is None and method in ("fista_tv", "admm_tv") and channels > 1:
        # Colour TV takes the gradient's length across channels: on noise,
        # uncorrelated between them, that is sqrt(C) times less than the sum
        # of the channels' own TV, so the weight is sqrt(C) times larger to
        # suppress the noise as much. One prior for all channels takes one
        # weight: their median, which one channel's odd GCV cannot drag.
        chosen = np.full_like(chosen, np.median(chosen) * np.sqrt(channels))
    if method == "rl_tv":
        if weight is None:
            # RL-TV's weight is relative to the Poisson likelihood, whose
            # curvature is 1 / (gain * light) where least squares' is 1 / variance:
            # with the Poisson-equivalent gain variance / light, weight / light.
            # The light is what Richardson-Lucy fits: the data above zero.
            axes = tuple(range(batch_ndim, observed.ndim))
            light = np.mean(np.clip(observed, 0, None), axis=axes)
            chosen = chosen / np.maximum(light, 1e-30)
        stop = converged(200)
        solver = RichardsonLucy(
            operator,
            tv_weight=chosen,
            accelerate=accelerate,
            background=background,
            level=level,
            stop=stop,
        )
        return solver, chosen
    if method == "fista_tv":
        solver = FistaTV(
            operator,
            weight=chosen,
            momentum=schedule,
            data_weights=data_weights,
            stop=converged(200),
        )
        return solver, chosen
    if method == "admm_tv":
        # Clipped lamps, ten to a hundred times brighter than the rest, make
        # the problem stiff: ADMM takes a few hundred iterations to settle
        # round them, and stopped early leaves a dark halo.
        stiff = clipped is not None and bool(np.any(clipped))
        stop = converged(600 if stiff else 150)
        solver = ADMM(
            operator,
            weight=chosen,
            clipped=clipped,
            data_weights=data_weights,
            level=level,
            penalties=schedule,
            stop=stop,
        )
        return solver, chosen
    if weight is None:
        # The same penalty as TV's at the typical (RMS) gradient implied by
        # GCV, sqrt(variance / nsr): weight g = w g^alpha.
        rms = np.sqrt(np.asarray(variance) / np.maximum(nsr(), 1e-30))
        chosen = chosen * rms ** (1 - HYPER_LAPLACIAN_ALPHA)
    solver = ADMM(
        operator,
        weight=chosen,
        prior="hyper-laplacian",
        alpha=HYPER_LAPLACIAN_ALPHA,
        clipped=clipped,
        data_weights=data_weights,
        level=level,
        penalties=schedule,
        # Its non-convex split cycles: it stops where it stops improving.
        stop=converged(300) if iterations is not None else converged(300) | Stagnation(),
    )
    return solver, chosen

import numpy as np
import pytest
from skimage import data

from napari_deblur.engine.methods import METHODS, build_solver
from napari_deblur.engine.noise import mean_noise_variance
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf
from napari_deblur.engine.solvers import (
    AllOf,
    Discrepancy,
    MaxIterations,
    RelativeChange,
    RichardsonLucy,
    Stagnation,
    Wiener,
    fill_unobserved,
)


def scene_2d():
    return data.camera()[96:352, 96:352] / 255.0


def scene_3d(rng):
    volume = np.zeros((32, 48, 48))
    for _ in range(30):
        z, y, x = rng.integers(4, 28), rng.integers(6, 42), rng.integers(6, 42)
        volume[z - 1 : z + 2, y - 2 : y + 2, x - 2 : x + 2] = rng.uniform(0.5, 1)
    return volume


def blurred(scene, psf, noise, rng, boundary="valid"):
    """Blur a scene larger than the frame (valid) and add noise: the truth is the frame."""
    k = psf.shape
    frame = tuple(n - m + 1 for n, m in zip(scene.shape, k))
    op = Convolution(psf, frame, boundary="valid")
    truth = scene[tuple(slice(m - 1 - m // 2, m - 1 - m // 2 + n) for m, n in zip(k, frame))]
    return op.apply(scene) + rng.normal(0, noise, frame), truth


def error(estimate, truth):
    return np.sqrt(np.mean((estimate - truth) ** 2))


def frame_of(estimate, op):
    k = op.psf.shape[op.batch_ndim :]
    if op.boundary != "valid":
        return estimate
    return estimate[
        tuple(slice(m - 1 - m // 2, m - 1 - m // 2 + n) for m, n in zip(k, op.shape_out))
    ]


@pytest.mark.parametrize("boundary", ["periodic", "symmetric", "edge", "zero", "valid"])
def test_wiener_recovers_2d_under_its_boundary_model(boundary, rng):
    if boundary == "valid":
        y, truth = blurred(scene_2d(), defocus_psf(4.0), 0.005, rng)
        op = Convolution(defocus_psf(4.0), y.shape, boundary=boundary)
    else:
        truth = scene_2d()
        op = Convolution(defocus_psf(4.0), truth.shape, boundary=boundary)
        y = op.apply(truth) + rng.normal(0, 0.005, truth.shape)
    x = frame_of(Wiener(op).run(y), op)
    assert error(x, truth) < 0.7 * error(y, truth)


def test_wiener_deblurs_noise_free_data(rng):
    # GCV on noise-free data runs to the bottom of its range; the estimate
    # there was garbage (RMS error 4.6 against the blurred image's 0.04).
    y, truth = blurred(scene_2d(), gaussian_psf(1.5), 0.0, rng)
    op = Convolution(gaussian_psf(1.5).astype(np.float32), y.shape, boundary="valid")
    x = frame_of(Wiener(op).run(y.astype(np.float32)), op)
    assert error(x, truth) < 0.6 * error(y, truth)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wiener_with_a_huge_weight_gives_the_flat_mean(dtype, rng):
    # In float32, nsr 1e9 gave a flat -94 for an image of mean 0.3, and
    # 1e30 a NaN: the conjugate gradients' sums lost the data term.
    y, _ = blurred(scene_2d(), gaussian_psf(1.5), 0.01, rng)
    y = y.astype(dtype)
    op = Convolution(gaussian_psf(1.5).astype(dtype), y.shape, boundary="valid")
    for nsr in (1e9, 1e30):
        x = frame_of(Wiener(op, nsr=nsr).run(y), op)
        assert np.all(np.isfinite(x))
        np.testing.assert_allclose(x, y.mean(), atol=0.02 * y.mean())


def test_wiener_valid_beats_periodic(rng):
    y, truth = blurred(scene_2d(), defocus_psf(4.0), 0.005, rng)
    results = {}
    for boundary in ("valid", "periodic"):
        op = Convolution(defocus_psf(4.0), y.shape, boundary=boundary)
        results[boundary] = error(frame_of(Wiener(op).run(y), op), truth)
    assert results["valid"] < 0.8 * results["periodic"]


def test_richardson_lucy_recovers_2d(rng):
    y, truth = blurred(scene_2d(), defocus_psf(4.0), 0.005, rng)
    op = Convolution(defocus_psf(4.0), y.shape, boundary="valid")
    x = RichardsonLucy(op, stop=MaxIterations(40)).run(y)
    assert x.min() >= 0
    assert error(frame_of(x, op), truth) < 0.8 * error(y, truth)


@pytest.mark.parametrize("solver", ["wiener", "richardson_lucy"])
def test_recovers_3d(solver, rng):
    psf = gaussian_psf((1.5, 1.0, 1.0), ndim=3)
    y, truth = blurred(scene_3d(rng), psf, 0.002, rng)
    op = Convolution(psf, y.shape, boundary="valid")
    method = Wiener(op) if solver == "wiener" else RichardsonLucy(op, stop=MaxIterations(30))
    assert error(frame_of(method.run(y), op), truth) < 0.85 * error(y, truth)


def test_channels_are_independent(rng):
    y, _ = blurred(scene_2d(), gaussian_psf(2.0), 0.005, rng)
    psf = gaussian_psf(2.0)[None]
    stacked = np.stack([y, 0.5 * y])
    op = Convolution(psf, stacked.shape, boundary="valid", batch_ndim=1)
    both = RichardsonLucy(op, stop=MaxIterations(5)).run(stacked)
    alone = RichardsonLucy(
        Convolution(psf[0], y.shape, boundary="valid"), stop=MaxIterations(5)
    ).run(y)
    np.testing.assert_allclose(both[0], alone, rtol=1e-6, atol=1e-9)
    # RL is scale-equivariant.
    np.testing.assert_allclose(both[1], 0.5 * alone, rtol=1e-5, atol=1e-9)


def test_steps_are_yielded_and_last_is_complete(rng):
    y, _ = blurred(scene_2d(), gaussian_psf(2.0), 0.005, rng)
    op = Convolution(gaussian_psf(2.0), y.shape, boundary="valid")
    steps = list(RichardsonLucy(op, stop=MaxIterations(7)).iterate(y))
    assert [s.iteration for s in steps] == list(range(1, 8))
    assert steps[-1].fraction == 1
    assert all(0 <= s.fraction < 1 for s in steps[:-1])
    assert {"residual", "change"} <= set(steps[-1].metrics)


def test_discrepancy_stops_richardson_lucy_near_the_noise(rng):
    sigma = 0.01
    y, _ = blurred(scene_2d(), defocus_psf(3.0), sigma, rng)
    op = Convolution(defocus_psf(3.0), y.shape, boundary="valid")
    steps = list(RichardsonLucy(op, stop=Discrepancy(sigma**2) | MaxIterations(500)).iterate(y))
    assert 2 < len(steps) < 500
    assert steps[-1].metrics["residual"] <= sigma**2


@pytest.mark.parametrize("method", METHODS[1:])
def test_iterates_stay_float32_and_as_yielded(method, rng):
    # A float64 scalar slipped into an update silently doubles every later
    # iteration's cost (the momentum's step size once did that); and the
    # solvers work in buffers, which must never be an estimate already handed out.
    y, _ = blurred(scene_2d(), gaussian_psf(2.0), 0.005, rng)
    y = np.clip(y, 0, None).astype(np.float32)
    op = Convolution(gaussian_psf(2.0).astype(np.float32), y.shape, boundary="valid")
    solver, _ = build_solver(method, op, y, variance=mean_noise_variance(y), max_iter=6)
    held, copies = [], []
    for step in solver.iterate(y):
        held.append(step.estimate)
        copies.append(step.estimate.copy())
    assert {estimate.dtype for estimate in held} == {np.dtype(np.float32)}
    for estimate, copy in zip(held, copies, strict=True):
        np.testing.assert_array_equal(estimate, copy)


def test_stopping_rules_compose():
    either = MaxIterations(10) | RelativeChange(1e-3)
    assert either.max_iter == 10
    assert either.done(3, {"change": 1e-4})
    assert not either.done(3, {"change": 1e-2})
    assert either.done(10, {"change": 1e-2})
    both = AllOf(MaxIterations(10), RelativeChange(1e-3))
    assert not both.done(10, {"change": 1e-2})
    assert both.done(10, {"change": 1e-4})
    assert (MaxIterations(3) & MaxIterations(5)).max_iter == 5


def test_stagnation_stops_a_change_that_no_longer_falls():
    rule = Stagnation(checks=2, factor=0.9)
    falling = [(5, 0.1), (10, 0.05), (15, 0.02), (20, 0.01)]
    assert not any(rule.done(i, {"change": c}) for i, c in falling)
    # A run that starts again starts the rule again.
    assert not rule.done(5, {"change": 0.01})
    assert not rule.done(7, {})
    assert not rule.done(10, {"change": 0.0099})
    assert rule.done(15, {"change": 0.0098})


def test_hyper_laplacian_admm_stops_where_it_stops_improving(rng):
    # Its non-convex split cycles: the change stayed at about 0.5% an
    # iteration and it ran its 300 iterations, drifting from the best
    # estimate it passed (camera: 28.2 dB at 40 iterations, 27.6 at 300).
    y, truth = blurred(scene_2d(), defocus_psf(4.0), 0.01, rng)
    op = Convolution(defocus_psf(4.0), y.shape, boundary="valid")
    solver, _ = build_solver("admm_hyper_laplacian", op, y, variance=mean_noise_variance(y))
    steps = list(solver.iterate(y))
    assert len(steps) < 100
    assert error(frame_of(steps[-1].estimate, op), truth) < 0.8 * error(y, truth)


def test_invalid_settings():
    with pytest.raises(ValueError, match="max_iter"):
        MaxIterations(0)
    with pytest.raises(ValueError, match="tol"):
        RelativeChange(0)
    with pytest.raises(ValueError, match="nsr"):
        Wiener(Convolution(np.ones((3, 3)), (8, 8)), nsr=-1).run(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="non-negative"):
        RichardsonLucy(Convolution(-np.ones((3, 3)), (8, 8)))


@pytest.mark.parametrize("method", ["fista_tv", "admm_tv", "landweber", "rl_tv"])
def test_regularised_methods_beat_the_blurred_image(method, rng):
    if method == "rl_tv":
        # Its model: photon counts (5000 at full light, noise about 0.01 at half).
        y, truth = blurred(scene_2d(), defocus_psf(4.0), 0.0, rng)
        y = rng.poisson(y * 5000) / 5000
    else:
        y, truth = blurred(scene_2d(), defocus_psf(4.0), 0.01, rng)
        y = np.clip(y, 0, None)
    op = Convolution(defocus_psf(4.0), y.shape, boundary="valid")
    solver, weight = build_solver(method, op, y, variance=mean_noise_variance(y))
    steps = list(solver.iterate(y))
    assert weight > 0 and steps[-1].fraction == 1
    # Stopped by its relative change (30-61 iterations here), not by the cap.
    assert len(steps) < solver.stop.max_iter and steps[-1].metrics["change"] < 1e-3
    assert error(frame_of(steps[-1].estimate, op), truth) < 0.75 * error(y, truth)


def test_tv_beats_wiener_on_a_piecewise_constant_scene(rng):
    scene = np.zeros((96, 96))
    scene[20:70, 30:60] = 1
    scene[40:90, 10:25] = 0.5
    y, truth = blurred(scene, defocus_psf(4.0), 0.02, rng)
    op = Convolution(defocus_psf(4.0), y.shape, boundary="valid")
    results = {}
    for method in ("wiener", "fista_tv", "admm_tv"):
        solver, _ = build_solver(method, op, y, variance=np.array(0.02**2))
        results[method] = error(frame_of(solver.run(y), op), truth)
    assert results["fista_tv"] < 0.8 * results["wiener"]
    assert results["admm_tv"] < 0.8 * results["wiener"]


def test_admm_and_fista_reach_the_same_quality(rng):
    from napari_deblur.engine.solvers import ADMM, FistaTV

    y, truth = blurred(scene_2d(), gaussian_psf(2.0), 0.01, rng)
    op = Convolution(gaussian_psf(2.0), y.shape, boundary="valid")
    a = error(frame_of(ADMM(op, weight=5e-3).run(y), op), truth)
    f = error(frame_of(FistaTV(op, weight=5e-3).run(y), op), truth)
    assert a == pytest.approx(f, rel=0.1)


def test_admm_settles_the_border_of_noise_free_data(rng):
    # 16-bit rounding only: the weight falls with the noise, and the data's
    # penalty (1 / weight) was 1e5 times the prior's, so the samples beyond
    # the frame barely moved: the frame's outer band came out worse than
    # blurred (error 0.044 against 0.040), now 0.023.
    y, truth = blurred(scene_2d(), gaussian_psf(1.5), 0.0, rng)
    y = np.round(y * 65535) / 65535
    op = Convolution(gaussian_psf(1.5), y.shape, boundary="valid")
    solver, _ = build_solver("admm_tv", op, y, variance=mean_noise_variance(y))
    x = frame_of(solver.run(y), op)
    band = np.ones(y.shape, bool)
    band[4:-4, 4:-4] = False
    assert error(x[band], truth[band]) < 0.75 * error(y[band], truth[band])
    assert error(x[~band], truth[~band]) < 0.5 * error(y[~band], truth[~band])


def test_admm_needs_a_circulant_boundary():
    from napari_deblur.engine.solvers import ADMM

    with pytest.raises(ValueError, match="boundary"):
        ADMM(Convolution(np.ones((3, 3)), (8, 8), boundary="symmetric"), weight=1.0)


def test_hyper_laplacian_admm_runs_and_sharpens(rng):
    from napari_deblur.engine.solvers import ADMM

    y, truth = blurred(scene_2d(), gaussian_psf(2.0), 0.005, rng)
    op = Convolution(gaussian_psf(2.0), y.shape, boundary="valid")
    x = ADMM(op, weight=2e-3, prior="hyper-laplacian", stop=MaxIterations(60)).run(y)
    assert error(frame_of(x, op), truth) < 0.85 * error(y, truth)


@pytest.mark.parametrize("prior", ["tv", "hyper-laplacian"])
def test_admm_takes_the_same_steps_in_any_units(prior, rng):
    # A camera's counts (thousands) or physical units (1e-4) of the same
    # scene, with the weight in the same units (to the prior's degree), give
    # the same result: before the penalty followed the data's scale, the
    # 20 steps ended 27-75% of the peak away.
    from napari_deblur.engine.solvers import ADMM

    y, _ = blurred(scene_2d(), gaussian_psf(2.0), 0.01, rng)
    op = Convolution(gaussian_psf(2.0), y.shape, boundary="valid")
    degree = 1.0 if prior == "tv" else 2 / 3

    def run(scale):
        weight = 5e-3 * scale ** (2 - degree)
        solver = ADMM(op, weight=weight, prior=prior, alpha=2 / 3, stop=MaxIterations(20))
        return solver.run(y * scale) / scale

    reference = run(1.0)
    for scale in (1e-4, 1e3):
        np.testing.assert_allclose(run(scale), reference, atol=1e-6 * reference.max())


@pytest.mark.parametrize("boundary", ["valid", "periodic", "symmetric", "edge"])
def test_lipschitz_bounds_the_operator_norm(boundary, rng):
    op = Convolution(gaussian_psf(1.5), (40, 36), boundary=boundary)
    x = rng.standard_normal(op.shape_in)
    for _ in range(50):
        x = op.adjoint(op.apply(x))
        x /= np.linalg.norm(x)
    norm_squared = np.linalg.norm(op.adjoint(op.apply(x)))
    # A bound, and a tight one: each unneeded factor slows FISTA and Landweber
    # by as much (1.00-1.06 here; the padded boundaries' power iteration
    # takes a margin).
    assert norm_squared <= op.lipschitz() * (1 + 1e-6)
    assert op.lipschitz() <= 1.1 * norm_squared


def test_richardson_lucy_refinements(rng):
    counts = 200 * scene_2d() + 5
    y, truth = blurred(counts, defocus_psf(3.0), 0, rng)
    y = rng.poisson(np.clip(y, 0, None)).astype(float)
    op = Convolution(defocus_psf(3.0), y.shape, boundary="valid")
    plain = list(RichardsonLucy(op, stop=MaxIterations(40)).iterate(y))
    fast = list(RichardsonLucy(op, accelerate=True, stop=MaxIterations(40)).iterate(y))
    # Acceleration reaches plain RL's 40-iteration fit in fewer iterations.
    target = plain[-1].metrics["residual"]
    assert min(s.iteration for s in fast if s.metrics["residual"] <= target) < 30
    damped = RichardsonLucy(op, damping=3.0, variance=y, stop=MaxIterations(100)).run(y)
    undamped = RichardsonLucy(op, stop=MaxIterations(100)).run(y)
    assert error(frame_of(damped, op), truth) < error(frame_of(undamped, op), truth)
    regularised = RichardsonLucy(op, tv_weight=0.01, stop=MaxIterations(100)).run(y)
    assert error(frame_of(regularised, op), truth) < error(frame_of(undamped, op), truth)


@pytest.mark.parametrize("method", METHODS[1:])
def test_masked_bad_pixels_do_not_spoil_the_result(method, rng):
    # 1% of the pixels are stuck (hot or dead): left out by the mask, the
    # result is as good as from a clean image; fitted, they leave blotches.
    y, truth = blurred(scene_2d(), gaussian_psf(2.0), 0.01, rng)
    y = np.clip(y, 0, None)
    bad = rng.random(y.shape) < 0.01
    stuck = np.where(bad, np.where(rng.random(y.shape) < 0.5, 4.0, 0.0), y)
    variance = mean_noise_variance(y)

    def result(data, mask=None):
        op = Convolution(gaussian_psf(2.0), y.shape, boundary="valid", mask=mask)
        filled = fill_unobserved(op, data)
        solver, _ = build_solver(method, op, filled, variance=variance, max_iter=60)
        return error(frame_of(solver.run(data), op), truth)

    clean, masked, fitted = result(y), result(stuck, ~bad), result(stuck)
    assert masked < 1.1 * clean
    assert masked < 0.6 * fitted


def test_holes_are_filled_box_by_box_as_in_the_whole_image(rng):
    from napari_deblur.engine.solvers._base import _fill

    y = rng.random((200, 180))
    hole = np.zeros(y.shape, bool)
    for top, left in [(0, 50), (40, 40), (120, 150), (180, 10), (90, 95)]:
        hole[top : top + 9, left : left + 7] = True
    op = Convolution(defocus_psf(5.0), y.shape, boundary="valid", mask=~hole)
    whole = y.copy()
    smoothing = max(op.psf.shape) / 4
    _fill(whole, hole, hole, smoothing)
    filled = fill_unobserved(op, y)
    np.testing.assert_allclose(filled, whole, atol=1e-12)
    np.testing.assert_array_equal(filled[~hole], y[~hole])


def test_fista_converges_with_its_inexact_tv_map(rng):
    from napari_deblur.engine.solvers import FistaTV

    # A strong weight on a small image: with a fixed two FGP iterations per
    # step, the estimate still moved by 2% an iteration after 300.
    y, _ = blurred(scene_2d()[::2, ::2], defocus_psf(4.0), 0.01, rng)
    op = Convolution(defocus_psf(4.0), y.shape, boundary="valid")
    steps = list(FistaTV(op, weight=0.01, stop=MaxIterations(300)).iterate(y))
    assert steps[-1].metrics["change"] < 1e-3


@pytest.mark.parametrize("method", ["ADMM", "FistaTV"])
def test_data_weights_set_how_hard_each_sample_pulls(rng, method):
    from napari_deblur.engine import solvers

    y, truth = blurred(scene_2d(), gaussian_psf(1.5), 0.01, rng)
    op = Convolution(gaussian_psf(1.5), y.shape, boundary="valid")
    stop = MaxIterations(60)
    solver = getattr(solvers, method)

    def run(data, weights):
        return frame_of(solver(op, weight=0.005, data_weights=weights, stop=stop).run(data), op)

    # Weights of one are the unweighted data term.
    np.testing.assert_allclose(run(y, np.ones(y.shape)), run(y, None), atol=1e-10)
    # A patch of samples far off (a flare) pulls the fit much less when its
    # weight says how noisy it is.
    flared = y.copy()
    flared[20:28, 20:28] += 2.0
    weights = np.ones(y.shape)
    weights[20:28, 20:28] = 1e-3
    patch = (slice(16, 32), slice(16, 32))
    assert error(run(flared, weights)[patch], truth[patch]) < 0.5 * error(
        run(flared, None)[patch], truth[patch]
    )
    with pytest.raises(ValueError, match="data_weights"):
        run(y, np.zeros(y.shape))

import numpy as np
import pytest
from skimage import data

from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf
from napari_deblur.engine.solvers import (
    AllOf,
    Discrepancy,
    MaxIterations,
    RelativeChange,
    RichardsonLucy,
    Wiener,
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


def test_float32_solvers_stay_float32(rng):
    y, _ = blurred(scene_2d(), gaussian_psf(2.0), 0.005, rng)
    y = y.astype(np.float32)
    op = Convolution(gaussian_psf(2.0).astype(np.float32), y.shape, boundary="valid")
    assert RichardsonLucy(op, stop=MaxIterations(2)).run(y).dtype == np.float32
    assert Wiener(op).run(y).dtype == np.float32


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


def test_invalid_settings():
    with pytest.raises(ValueError, match="max_iter"):
        MaxIterations(0)
    with pytest.raises(ValueError, match="tol"):
        RelativeChange(0)
    with pytest.raises(ValueError, match="nsr"):
        Wiener(Convolution(np.ones((3, 3)), (8, 8)), nsr=-1).run(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="non-negative"):
        RichardsonLucy(Convolution(-np.ones((3, 3)), (8, 8)))

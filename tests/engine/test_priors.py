import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from napari_deblur.engine.priors import (
    TVDenoiser,
    shrink_hyper_laplacian,
    shrink_isotropic,
    total_variation,
)


def test_shrink_isotropic_is_the_vector_soft_threshold():
    g = np.array([[3.0, 0.1], [4.0, 0.0]])  # two vectors: (3, 4) and (0.1, 0)
    out = shrink_isotropic(g, 1.0)
    np.testing.assert_allclose(out[:, 0], [3 * 4 / 5, 4 * 4 / 5])
    np.testing.assert_allclose(out[:, 1], 0)


def test_colour_shrink_takes_one_length_across_channels():
    # One pixel, two channels: gradients (3, 0) and (0, 4), together of length 5.
    g = np.array([[[3.0], [0.0]], [[0.0], [4.0]]])
    coupled = shrink_isotropic(g, 1.0, channel_axes=(0,))
    np.testing.assert_allclose(coupled, g * 4 / 5)
    separate = shrink_isotropic(g, 1.0)
    np.testing.assert_allclose(separate[:, 0, 0], [2, 0])
    np.testing.assert_allclose(separate[:, 1, 0], [0, 3])


@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 0.8])
@pytest.mark.parametrize("weight", [0.01, 0.3, 2.0])
def test_hyper_laplacian_prox_matches_brute_force(alpha, weight):
    values = np.linspace(-3, 3, 41)
    shrunk = shrink_hyper_laplacian(values, weight, alpha)
    for v, w in zip(values, shrunk):

        def cost(t, v=v):
            return weight * abs(t) ** alpha + (t - v) ** 2 / 2

        lo, hi = sorted((0.0, v))
        best = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-9})
        candidates = [0.0, best.x]
        target = min(cost(t) for t in candidates)
        assert cost(w) <= target + 1e-5


@pytest.mark.parametrize("weight", [0.0, 1e-45, 1e-30])
def test_hyper_laplacian_prox_of_a_vanishing_weight_is_the_identity(weight):
    # The table's step fell below float32's normal numbers: its inverse was
    # infinite and a zero's index NaN.
    values = np.array([0.0, -1e-3, 1.0, 100.0], np.float32)
    np.testing.assert_allclose(shrink_hyper_laplacian(values, weight, 2 / 3), values, rtol=1e-3)


def test_denoise_tv_lowers_the_objective_and_keeps_the_mean(rng):
    image = np.zeros((40, 40))
    image[10:30, 10:30] = 1
    noisy = image + rng.normal(0, 0.2, image.shape)
    weight = 0.15

    def objective(x):
        return 0.5 * np.sum((x - noisy) ** 2) + weight * total_variation(x)

    denoised = TVDenoiser(noisy.shape, noisy.dtype)(noisy, weight, iterations=100)
    assert objective(denoised) < objective(noisy)
    assert abs(denoised.mean() - noisy.mean()) < 1e-6
    assert np.abs(denoised - image).mean() < 0.5 * np.abs(noisy - image).mean()


def test_tv_denoiser_warm_starts_and_batches(rng):
    stack = rng.normal(0, 1, (2, 16, 16))
    weights = np.array([0.1, 1.0])[:, None, None]
    denoiser = TVDenoiser(stack.shape, stack.dtype, batch_ndim=1)
    once = denoiser(stack, weights, iterations=50)
    cold = TVDenoiser(stack.shape, stack.dtype, batch_ndim=1)(stack, weights, iterations=5)
    again = denoiser(stack, weights, iterations=5)
    # Five more iterations from the last dual field stay where fifty went;
    # five from scratch do not get there.
    np.testing.assert_allclose(again, once, atol=0.05)
    assert np.abs(cold - once).max() > 0.05
    assert total_variation(once[1]) < total_variation(once[0])
    positive = TVDenoiser(stack.shape, stack.dtype, batch_ndim=1, nonnegative=True)(
        stack, 0.1, iterations=10
    )
    assert positive.min() >= 0

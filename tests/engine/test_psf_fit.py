import numpy as np
import pytest
from skimage import data

from napari_deblur import deblur
from napari_deblur.engine.color import srgb_to_linear
from napari_deblur.engine.noise import estimate_noise_level
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, motion_psf, resize_psf
from napari_deblur.engine.psf_fit import (
    KernelFit,
    fit_magnification,
    project_simplex,
    refine_psf,
)
from tests.conftest import psnr
from tests.engine.test_blind import camera_made


def test_simplex_projection(rng):
    values = rng.standard_normal((5, 7))
    projected = project_simplex(values)
    assert projected.min() >= 0 and projected.sum() == pytest.approx(1)
    # A point of the set is its own projection; the projection is the nearest point.
    np.testing.assert_allclose(project_simplex(projected), projected, atol=1e-12)
    # Nearest (the optimality conditions): the projection is max(values - theta, 0)
    # for one theta, so values - projection is theta on its support and values
    # are at most theta off it. Clipping and rescaling passed the comparison
    # with another point of the set that stood here.
    support = projected > 0
    theta = (values - projected)[support]
    np.testing.assert_allclose(theta, theta[0], atol=1e-12)
    assert np.all(values[~support] <= theta[0] + 1e-12)


def test_kernel_fit_dot_test_and_recovery(rng):
    scene = data.camera()[:200, :200] / 255.0
    psf = resize_psf(motion_psf(9, 30), (11, 11))
    observed = Convolution(psf, (190, 190), boundary="valid").apply(scene)
    fit = KernelFit(scene, observed + rng.normal(0, 0.002, observed.shape), (11, 11))
    h = rng.standard_normal((11, 11))
    residuals = [rng.standard_normal(d.shape) for d in fit.data_gradients]
    lhs = sum(np.vdot(b, r) for b, r in zip(fit._blur(h), residuals))
    assert abs(lhs - np.vdot(h, fit._adjoint(residuals))) < 1e-10 * abs(lhs)
    found = fit.solve(np.full((11, 11), 1 / 121), iterations=300)
    assert np.linalg.norm(found - psf) < 0.05 * np.linalg.norm(psf)


def blurred_camera(truth, rng):
    """The camera-made photo blurred by `truth`, the sharp frame it shows, the photo in
    linear light and its noise variance."""
    blurred = camera_made(truth, rng)
    k = truth.shape
    sharp = data.camera()[100:356, 150:406][
        k[0] // 2 : k[0] // 2 + blurred.shape[0], k[1] // 2 : k[1] // 2 + blurred.shape[1]
    ]
    linear = srgb_to_linear(blurred / 255.0)
    variance = float(estimate_noise_level(linear[None], batch_ndim=1).variance[0])
    return blurred, sharp, linear, variance


@pytest.mark.parametrize(
    ("truth", "too_large"),
    [(defocus_psf(5.0), defocus_psf(6.0)), (motion_psf(15, 40), motion_psf(18, 40))],
    ids=["defocus", "motion"],
)
def test_refinement_recovers_half_of_what_a_psf_20_percent_too_large_loses(truth, too_large, rng):
    blurred, sharp, linear, variance = blurred_camera(truth, rng)
    refined, change, magnification = refine_psf(linear, too_large, variance=variance)
    assert change > 0.05 and refined.sum() == pytest.approx(1) and refined.min() >= 0
    assert magnification == pytest.approx(1 / 1.2, rel=0.05)
    right, wrong = (
        psnr(sharp, deblur(blurred, truth), 255),
        psnr(sharp, deblur(blurred, too_large), 255),
    )
    better = psnr(sharp, deblur(blurred, refined, encoding="srgb"), 255)
    assert better - wrong >= 0.5 * (right - wrong)


@pytest.mark.parametrize("scale", [1 / 1.2, 1.0, 1.15])
def test_magnification_of_a_disc_measured_at_another_distance(scale, rng):
    blurred = camera_made(defocus_psf(5.0), rng)
    measured = defocus_psf(5.0 / scale)
    magnified, found = fit_magnification(srgb_to_linear(blurred / 255.0), measured)
    assert found == pytest.approx(scale, rel=0.03)
    assert magnified.sum() == pytest.approx(1) and all(k % 2 for k in magnified.shape)
    with pytest.raises(ValueError, match="largest"):
        fit_magnification(blurred, measured, largest=0.5)


def test_refining_the_right_psf_keeps_it_nearly_right(rng):
    truth = motion_psf(15, 40)
    blurred, sharp, linear, variance = blurred_camera(truth, rng)
    refined, _, magnification = refine_psf(linear, truth, variance=variance)
    assert magnification == pytest.approx(1, abs=0.03)
    right = psnr(sharp, deblur(blurred, truth), 255)
    assert psnr(sharp, deblur(blurred, refined, encoding="srgb"), 255) > right - 1.0


def test_a_magnification_at_the_end_of_the_search_is_warned(rng):
    # A PSF half again too large needs 0.67x, beyond the smallest searched:
    # the fit stops at 0.70x, which was reported as if found.
    blurred, _, linear, variance = blurred_camera(defocus_psf(3.0), rng)
    with pytest.warns(UserWarning, match="end of those searched"):
        refine_psf(linear, defocus_psf(4.5), variance=variance)

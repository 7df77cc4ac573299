import numpy as np
import pytest
from skimage import data

from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.outliers import hot_pixels, peak_excess
from napari_deblur.engine.psf import defocus_psf, gaussian_psf, motion_psf


def blurred(psf, rng, noise=0.005, shape=(96, 96)):
    k = psf.shape
    scene = data.camera()[100 : 100 + shape[0] + k[0] - 1, 100 : 100 + shape[1] + k[1] - 1]
    image = Convolution(psf, shape, boundary="valid").apply(scene / 255.0)
    return image + rng.normal(0, noise, shape)


@pytest.mark.parametrize(
    "psf", [gaussian_psf(1.5), defocus_psf(4.0), motion_psf(9.0, 30.0), gaussian_psf(2.0, ndim=3)]
)
def test_no_blurred_scene_exceeds_the_bound(psf, rng):
    # The bound is exact: a non-negative scene of sparse points (the
    # sharpest there is) blurred without noise never exceeds it.
    rho = peak_excess(psf)
    assert 0 < rho < 1
    shape = (40,) * psf.ndim
    scene = rng.random(shape) * (rng.random(shape) < 0.05)
    image = Convolution(psf, shape, boundary="periodic").apply(scene)
    hot = hot_pixels(image[None], psf[None], 0, 1e-24, significance=1.0)
    assert not hot.any()
    # Nor with a background under it, nor for a PSF made a little sharper.
    assert not hot_pixels(image[None] + 0.3, psf[None], 0, 1e-24, significance=1.0).any()


def test_no_blur_finds_nothing(rng):
    delta = np.zeros((3, 3))
    delta[1, 1] = 1
    assert peak_excess(delta) == 1
    stars = (rng.random((1, 48, 48)) < 0.01) * 5.0
    assert not hot_pixels(stars, delta[None], 0, 1e-6).any()


@pytest.mark.parametrize("psf", [gaussian_psf(1.5), defocus_psf(4.0)])
def test_hot_pixels_are_found_and_nothing_else(psf, rng):
    image = blurred(psf, rng)
    assert not hot_pixels(image[None], psf[None], 0, 0.005**2).any()
    spots = tuple(rng.integers(2, 94, (2, 30)))
    hot = image.copy()
    hot[spots] += 3.0
    found = hot_pixels(hot[None], psf[None], 0, 0.005**2)[0]
    expected = np.zeros(image.shape, bool)
    expected[spots] = True
    np.testing.assert_array_equal(found, expected)


def test_neighbours_of_invalid_samples_are_not_tested(rng):
    psf = gaussian_psf(1.5)
    image = blurred(psf, rng)
    # A stuck dark sample lowers its neighbours' neighbourhood mean.
    image[50, 50] = 0.0
    image[50, 51] += 3.0
    invalid = np.zeros((1, *image.shape), bool)
    assert hot_pixels(image[None], psf[None], 0, 0.005**2)[0, 50, 51]
    invalid[0, 50, 50] = True
    assert not hot_pixels(image[None], psf[None], 0, 0.005**2, invalid=invalid).any()


def test_sharp_stars_are_no_hot_pixels_under_a_psf_up_to_twice_as_wide(rng):
    # Undersampled stars (sigma 0.7) under a PSF of sigma 1.5 lost their
    # peaks: 49 of 60 taken for hot, their flux 20% low after deblurring.
    sky = np.zeros((96, 96))
    sky[tuple(rng.integers(4, 92, (2, 30)))] = rng.uniform(50, 5000, 30)
    light = Convolution(gaussian_psf(0.7), sky.shape, boundary="periodic").apply(sky)
    counts = rng.poisson(light + 5).astype(np.float64)
    assert not hot_pixels(counts[None], gaussian_psf(1.5)[None], 1.0, 0.0).any()
    # A cosmic ray on the same sky is one.
    counts[48, 48] += 3000
    assert hot_pixels(counts[None], gaussian_psf(1.5)[None], 1.0, 0.0)[0, 48, 48]

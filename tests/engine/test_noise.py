import numpy as np
import pytest
from scipy import ndimage

from napari_deblur.engine.noise import (
    detail_is_noise,
    estimate_background,
    estimate_noise,
    estimate_noise_curve,
    estimate_noise_level,
    gcv_weight,
    rfft_weights,
)
from napari_deblur.engine.operators import Convolution, gradient_spectrum
from napari_deblur.engine.psf import defocus_psf, psf_to_otf
from napari_deblur.engine.solvers import Wiener


def smooth_scene(rng, shape=(256, 256)):
    from skimage import data

    return data.camera()[: shape[0], : shape[1]] / 255.0


@pytest.mark.parametrize("sigma", [0.005, 0.02, 0.05])
def test_noise_of_blurred_image(sigma, rng):
    blurred = Convolution(defocus_psf(4.0), (256, 256), boundary="symmetric").apply(
        smooth_scene(rng)
    )
    noisy = blurred + rng.normal(0, sigma, blurred.shape)
    assert estimate_noise(noisy) == pytest.approx(sigma, rel=0.1)


def test_noise_per_channel(rng):
    image = rng.normal(0, 1, (3, 64, 64)) * np.array([0.1, 0.2, 0.4])[:, None, None]
    np.testing.assert_allclose(estimate_noise(image, batch_ndim=1), [0.1, 0.2, 0.4], rtol=0.1)


def test_detail_is_noise_tells_noise_from_a_clean_scene(rng):
    blurred = Convolution(defocus_psf(3.0), (128, 128), boundary="symmetric").apply(
        smooth_scene(rng, (128, 128))
    )
    assert not detail_is_noise(np.round(blurred * 65535))
    assert detail_is_noise(rng.poisson(blurred * 20 + 5))
    assert detail_is_noise(rng.poisson(blurred * 10000 + 5))
    assert detail_is_noise(blurred + rng.normal(0, 0.01, blurred.shape))
    # A batch of planes: each is measured on its last two axes.
    assert detail_is_noise(rng.normal(0, 1, (3, 16, 16)))


def test_poisson_gaussian_curve(rng):
    # Counts with a gain: var = gain * mean + read^2.
    light = np.repeat(np.linspace(0, 1, 256)[None], 256, axis=0)
    gain, read = 0.01, 0.02
    noisy = rng.poisson(light / gain) * gain + rng.normal(0, read, light.shape)
    fitted_gain, floor = estimate_noise_curve(noisy)
    assert fitted_gain == pytest.approx(gain, rel=0.15)
    assert floor == pytest.approx(read**2, rel=0.3)


def test_noise_clipped_at_zero_is_no_photon_noise(rng):
    # Data held at zero (a dark-subtracted sky): the clipped levels' noise
    # is narrower, which read as noise growing with the light (the floor
    # 36% low, a gain of 2.7e-4 that is not there).
    light = np.repeat(np.linspace(-0.02, 0.2, 256)[None], 256, axis=0)
    noisy = np.maximum(light + rng.normal(0, 0.01, light.shape), 0)
    gain, floor = estimate_noise_curve(noisy)
    assert floor == pytest.approx(0.01**2, rel=0.15)
    assert gain * 0.2 < 0.2 * floor


@pytest.mark.parametrize("offset", [100.0, 1000.0])
def test_a_cameras_offset_is_a_pedestal_not_photons(offset, rng):
    # Held at a floor of 0, the fit read counts on an offset of 100 with a
    # tenth of their gain (1 / offset).
    light = np.repeat(np.linspace(0, 300, 256)[None], 256, axis=0)
    noisy = rng.poisson(light) + offset + rng.normal(0, 2.0, light.shape)
    level = estimate_noise_level(noisy)
    assert level.gain == pytest.approx(1.0, rel=0.15)
    # The shifted Poisson model: the offset less the read noise's variance.
    assert level.pedestal == pytest.approx(offset - 4.0, abs=0.05 * offset)
    assert level.variance == pytest.approx(np.mean(light) + 4.0, rel=0.15)
    assert estimate_noise_level(rng.poisson(light) + 0.0).pedestal == 0


def test_gcv_is_near_the_best_weight(rng):
    scene = smooth_scene(rng)
    psf = defocus_psf(5.0)
    op = Convolution(psf, scene.shape, boundary="periodic")
    noisy = op.apply(scene) + rng.normal(0, 0.01, scene.shape)
    spectrum = np.abs(np.fft.rfft2(noisy)) ** 2
    otf = np.abs(psf_to_otf(psf, scene.shape)) ** 2
    chosen = gcv_weight(
        spectrum, otf, gradient_spectrum(scene.shape, float), rfft_weights(scene.shape)
    )

    def error(nsr):
        return np.mean((Wiener(op, nsr=nsr).run(noisy) - scene) ** 2)

    best = min(error(n) for n in np.geomspace(1e-5, 1, 21))
    assert error(chosen) <= best * 1.05


def test_data_weights_trust_bright_samples_less_and_none_more(rng):
    from napari_deblur.engine.noise import data_weights

    light = np.full((1, 64, 64), 0.05)
    light[0, 24:40, 24:40] = 0.9
    noisy = rng.poisson(light * 3000) / 3000
    gain, floor = 1 / 3000, 1e-6
    variance = gain * light.mean() + floor
    weights = data_weights(noisy, variance, gain, floor, batch_ndim=1)
    assert weights.shape == noisy.shape and weights.max() <= 1
    np.testing.assert_allclose(weights[0, :10, :10], 1)
    # The bright square's variance is 0.9 / the typical ~0.12 (in gain units).
    assert weights[0, 30:34, 30:34].mean() == pytest.approx(variance / (gain * 0.9 + floor), 0.05)


def test_background_is_the_dark_level_corrected_for_noise_only(rng):
    # A dark flat third at 100 under Poisson noise, bright structure beside.
    scene = np.full((3, 96, 96), 100.0)
    scene[:, :, 32:] += 400 * (1 + np.sin(np.arange(64) / 3.0))
    counts = rng.poisson(scene).astype(float)
    assert np.all(np.abs(estimate_background(counts, batch_ndim=1) - 100) < 2)
    # The darkest part a smooth ramp without noise: nothing to correct (the
    # ramp's spread was taken for noise and lifted the level by 4).
    ramp = np.linspace(100, 200, 96)[None] + np.zeros((96, 1))
    smoothed = ndimage.gaussian_filter(ramp.astype(np.float32), 2.0)
    assert estimate_background(ramp) == pytest.approx(np.percentile(smoothed, 1), abs=0.01)


def test_noise_measured_on_blocks_keeps_the_photon_gain(rng):
    # Photon noise on a ramp of light: measured on 2 x 2 blocks (for a
    # compressed image) the gain per unit of light is the image's, not the
    # blocks' (it was half: the blocks' light is scaled up with the noise).
    photons = 300
    ramp = np.tile(np.linspace(0.05, 1, 256), (256, 1))
    noisy = rng.poisson(ramp * photons)[None] / photons
    for scale in (1, 2):
        level = estimate_noise_level(noisy, batch_ndim=1, scale=scale)
        assert level.gain[0] == pytest.approx(1 / photons, rel=0.15)
    # An axis too short for blocks is left as it is (it was emptied).
    row = noisy[:, :1, :]
    assert estimate_noise_level(row, batch_ndim=1, scale=2).variance[0] > 0

import warnings
from collections import deque

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from napari_deblur import deblur, deblur_steps, psf_from_point_source
from napari_deblur._sample_data import make_defocused_photo
from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.methods import METHODS
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf
from tests.conftest import cubes, psnr, rms_radius

PSF = gaussian_psf(1.5)


def blurred_gray(dtype, rng, shape=(64, 64)):
    scene = data.camera()[200 : 200 + shape[0] + 12, 200 : 200 + shape[1] + 12] / 255.0
    image = Convolution(gaussian_psf(1.5, shape=(13, 13)), shape, boundary="valid").apply(scene)
    image = image + rng.normal(0, 0.005, shape)
    if np.issubdtype(dtype, np.integer):
        return np.clip(image * np.iinfo(dtype).max, 0, np.iinfo(dtype).max).astype(dtype)
    return image.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32, np.float64])
@pytest.mark.parametrize("method", ["wiener", "richardson_lucy"])
def test_output_dtype_and_shape_2d(dtype, method, rng):
    image = blurred_gray(dtype, rng)
    out = deblur(image, PSF, method=method)
    assert out.shape == image.shape
    expected = np.float64 if dtype == np.float64 else np.float32
    assert out.dtype == expected
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("method", ["wiener", "richardson_lucy"])
def test_output_3d_and_colour(method, rng):
    stack = rng.random((12, 20, 22)).astype(np.float32)
    assert deblur(stack, gaussian_psf(1.0, ndim=3), method=method).shape == stack.shape
    rgb = (rng.random((30, 32, 3)) * 255).astype(np.uint8)
    assert deblur(rgb, PSF, method=method, channel_axis=-1).shape == rgb.shape
    planar = rng.random((3, 30, 32)).astype(np.float32)
    per_channel = np.stack([PSF, PSF, PSF])
    assert deblur(planar, per_channel, method=method, channel_axis=0).shape == planar.shape


def test_uint8_scale_is_kept_and_values_not_clipped(rng):
    image = blurred_gray(np.uint8, rng)
    # Same scale as the input (0..255), not rescaled to 0..1; light is preserved.
    linear = deblur(image, PSF, method="wiener", encoding="linear")
    assert image.mean() > 20
    assert abs(linear.mean() - image.mean()) < 0.05 * image.mean()
    encoded = deblur(image, PSF, method="wiener", encoding="srgb")
    assert encoded.max() > 100 and (encoded < 0).any()


def test_sample_photo_gets_sharper():
    blurred, light, sharp = make_defocused_photo()
    out = deblur(blurred, light, channel_axis=-1)
    assert psnr(sharp, out, 255) > psnr(sharp, blurred, 255) + 3


def test_deblurring_happens_in_linear_light(rng):
    """An sRGB photo deblurred as if linear is worse than deblurred in linear light."""
    blurred, light, sharp = make_defocused_photo()
    right = deblur(blurred, light, channel_axis=-1, encoding="srgb", method="wiener")
    wrong = deblur(blurred, light, channel_axis=-1, encoding="linear", method="wiener")
    assert psnr(sharp, right, 255) > psnr(sharp, wrong, 255) + 0.5


def test_a_float_psf_stays_linear_with_srgb_images(rng):
    # encoding="srgb" (a 16-bit photo) decoded the float PSF too, as if a
    # photo: a peaked kernel lost its wings, and the result was worse than
    # the blurred photo.
    scene = srgb_to_linear(data.camera()[:128, :128] / 255.0)
    kernel = np.zeros((5, 5))
    kernel[2, 2], kernel[2, ::4], kernel[::4, 2] = 0.4, 0.15, 0.15
    blurred = Convolution(kernel, scene.shape, boundary="reflect").apply(scene)
    noisy = rng.poisson(np.clip(blurred, 0, None) * 3000) / 3000
    photo = np.round(linear_to_srgb(np.clip(noisy, 0, 1)) * 65535).astype(np.uint16)
    sharp = linear_to_srgb(scene) * 65535
    out = deblur(photo, kernel, encoding="srgb")
    assert psnr(sharp, out, 65535) > psnr(sharp, photo, 65535) + 2


def test_steps_stream_and_match_deblur(rng):
    image = blurred_gray(np.float32, rng)
    steps = list(deblur_steps(image, PSF, method="richardson_lucy", max_iter=5))
    assert [s.iteration for s in steps] == [1, 2, 3, 4, 5]
    assert steps[-1].fraction == 1
    assert steps[-1].settings["method"] == "richardson_lucy"
    assert steps[-1].settings["boundary"] == "valid"
    np.testing.assert_array_equal(
        steps[-1].image, deblur(image, PSF, method="richardson_lucy", max_iter=5)
    )


def test_auto_picks_the_method_for_the_data(rng):
    photo = blurred_gray(np.uint8, rng)
    assert next(deblur_steps(photo, PSF)).settings["method"] == "admm_tv"
    assert next(deblur_steps(photo, PSF, boundary="symmetric")).settings["method"] == "fista_tv"
    counts = rng.poisson(blurred_gray(np.float64, rng).clip(0) * 200).astype(np.uint16)
    assert next(deblur_steps(counts, PSF)).settings["method"] == "rl_tv"
    # A noise-free 16-bit photo: its detail, which grows with the light, was
    # read as photon noise and got RL-TV (coffee, defocus 5: 28.3 dB where
    # ADMM-TV gives 36.5).
    scene = srgb_to_linear(data.coffee() / 255.0).mean(axis=-1)[100:260, 150:310]
    frame = tuple(n - 12 for n in scene.shape)
    clean = Convolution(gaussian_psf(1.5), frame, boundary="valid").apply(scene)
    clean = np.round(clean * 65535).astype(np.uint16)
    assert next(deblur_steps(clean, gaussian_psf(1.5))).settings["method"] == "admm_tv"


def test_raw_point_light_photo_as_psf(rng):
    blurred, light, sharp = make_defocused_photo()
    clean = psf_from_point_source(light, channel_axis=-1).psf
    assert clean.shape[0] == 3 and clean.shape[1] % 2 == 1
    np.testing.assert_allclose(clean.sum(axis=(1, 2)), 1, rtol=1e-5)
    truth = defocus_psf(5.0)
    k = min(truth.shape[0], clean.shape[1])
    error = np.linalg.norm(clean[0, :k, :k] - truth[:k, :k]) / np.linalg.norm(truth)
    assert error < 0.25


def test_srgb_round_trip():
    values = np.linspace(-0.2, 1.2, 101)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-12)
    assert srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.214, abs=1e-3)
    # Integers are no values on 0..1: 128 came back as a wrapped 97.
    with pytest.raises(TypeError, match="divide by 255"):
        srgb_to_linear(np.array([128], np.uint8))
    with pytest.raises(TypeError, match="linear"):
        linear_to_srgb(np.array([1]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"psf": np.pad(np.full((78, 78), 0.5), 1), "boundary": "periodic"},
            ValueError,
            "larger than the image",
        ),
        ({"psf": gaussian_psf(30.0), "boundary": "reflect"}, ValueError, "larger than the image"),
        ({"psf": np.zeros((5, 5))}, ValueError, "no light"),
        ({"psf": -np.ones((5, 5))}, ValueError, "no light"),
        ({"psf": np.full((5, 5), np.nan)}, ValueError, "psf contains NaN"),
        ({"psf": np.ones((3, 5, 5))}, ValueError, "axes"),
        ({"psf": np.ones((5, 5), complex)}, TypeError, "psf"),
        ({"method": "magic"}, ValueError, "method"),
        ({"boundary": "mirror"}, ValueError, "boundary"),
        ({"encoding": "gamma"}, ValueError, "encoding"),
        ({"channel_axis": 3}, ValueError, "channel_axis"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"noise": -1.0}, ValueError, "noise"),
        ({"bad_pixels": np.ones((5, 5), bool)}, ValueError, "bad_pixels"),
        ({"bad_pixels": np.ones((64, 64), float)}, TypeError, "bad_pixels"),
        ({"bad_pixels": np.ones((64, 64), bool)}, ValueError, "every pixel"),
        ({"saturation": -1.0}, ValueError, "saturation"),
        ({"saturation": "high"}, ValueError, "saturation"),
        ({"max_iter": "a"}, ValueError, "max_iter"),
        ({"max_iter": 2.5}, ValueError, "max_iter"),
        ({"noise": np.inf}, ValueError, "noise"),
        ({"noise": np.array([0.1, 0.2])}, ValueError, "noise"),
        ({"weight": "a"}, ValueError, "weight"),
        ({"weight": 0.0}, ValueError, "weight 0"),
        ({"chunks": (24, 24, 24)}, ValueError, "one per spatial axis"),
        ({"plan": {"method": "wiener"}}, TypeError, "plan"),
        ({"weight": 0.1, "method": "richardson_lucy"}, ValueError, "no weight"),
        ({"channel_axis": 1.0}, TypeError, "channel_axis"),
        ({"image": -1 - np.ones((64, 64)), "method": "richardson_lucy"}, ValueError, "above 0"),
        # Was refused naming the PSF's shape as the image's.
        ({"image": np.ones(64), "psf": np.ones(5) / 5}, ValueError, "image has 1 spatial"),
        # Was an OverflowError from the PSF's resampling.
        ({"spacing": 1.0, "psf_spacing": np.inf}, ValueError, "psf_spacing must be positive"),
        ({"time_axis": 0.0}, TypeError, "time_axis"),
        ({"time_axis": True}, TypeError, "time_axis"),
    ],
)
def test_bad_arguments(kwargs, error, message, rng):
    arguments = {"image": rng.random((64, 64)), "psf": PSF, **kwargs}
    with pytest.raises(error, match=message):
        deblur(**arguments)


def test_bad_images(rng):
    image = rng.random((32, 32))
    image[1, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        deblur(image, PSF)
    with pytest.raises(TypeError, match="image"):
        deblur(np.array([["a"]]), PSF)
    with pytest.raises(ValueError, match="image"):
        deblur(np.zeros((0, 5)), PSF)
    # Their squares overflow float32: Wiener's result was all NaN.
    with pytest.raises(ValueError, match="overflow float32"):
        deblur(np.float32(1e30) * rng.random((32, 32), dtype=np.float32), PSF, method="wiener")


def night_scene(rng, size=96, psf=None):
    """A dim sRGB 8-bit scene with three lamps far brighter than the sensor's range.

    Returns the photo, the PSF, the true scene (linear, unclipped) on the
    frame, and a mask of the frame near the lamps.
    """
    psf = defocus_psf(4.0) if psf is None else psf
    k = psf.shape[0]
    scene = data.camera()[100 : 100 + size + k - 1, 100 : 100 + size + k - 1] / 255.0
    scene = srgb_to_linear(scene) * 0.2
    yy, xx = np.mgrid[: scene.shape[0], : scene.shape[1]]
    near = np.zeros(scene.shape, bool)
    for y, x in ((30, 30), (60, 75), (80, 25)):
        lamp = (yy - y) ** 2 + (xx - x) ** 2
        scene[lamp <= 4] = 30.0
        near |= (lamp > 9) & (lamp <= (k + 3) ** 2)
    blurred = Convolution(psf, (size, size), boundary="valid").apply(scene)
    noisy = np.clip(blurred + rng.normal(0, 0.003, blurred.shape), 0, 1)
    photo = np.round(linear_to_srgb(noisy) * 255).astype(np.uint8)
    c = k - 1 - k // 2
    frame = (slice(c, c + size),) * 2
    return photo, psf, scene[frame], near[frame]


def test_clipped_lamps_are_left_out_and_leave_no_halo(rng):
    photo, psf, truth, near = night_scene(rng)
    assert np.count_nonzero(photo == 255) > 50
    steps = list(deblur_steps(photo, psf))
    assert steps[-1].settings["left_out"] >= np.count_nonzero(photo == 255)
    masked = srgb_to_linear(steps[-1].image / 255.0)
    fitted = srgb_to_linear(deblur(photo, psf, saturation=None) / 255.0)
    blurred = srgb_to_linear(photo / 255.0)

    def ring_error(estimate):
        return np.abs(estimate - truth)[near].mean()

    # Fitting the clipped samples darkens the scene round each lamp (a halo);
    # leaving them out does not, and gets closer to the truth than the photo.
    assert ring_error(masked) < 0.5 * ring_error(fitted)
    assert ring_error(masked) < ring_error(blurred)


def test_bad_pixels_are_left_out(rng):
    image = blurred_gray(np.float32, rng)
    truth_like = deblur(image, PSF)
    stuck = image.copy()
    bad = rng.random(image.shape) < 0.02
    # Dead: hot pixels are found without a mask.
    stuck[bad] = 0.0
    fitted = deblur(stuck, PSF, saturation=None)
    masked = deblur(stuck, PSF, bad_pixels=bad, saturation=None)
    assert np.abs(masked - truth_like).mean() < 0.3 * np.abs(fitted - truth_like).mean()
    # A per-channel mask for a colour image.
    rgb = np.stack([image, image, stuck], axis=-1)
    per_channel = np.zeros(rgb.shape, bool)
    per_channel[..., 2] = bad
    out = deblur(rgb, PSF, channel_axis=-1, bad_pixels=per_channel, saturation=None)
    assert np.abs(out[..., 2] - truth_like).mean() < 0.3 * np.abs(fitted - truth_like).mean()


@pytest.mark.parametrize("method", ["richardson_lucy", "rl_tv"])
def test_a_hole_wider_than_the_psf_is_filled_by_richardson_lucy(method, rng):
    # The samples the data do not see were held at 0, and the light the data
    # beside them lacked went into the few the data barely see: 119 times
    # the scene's brightest, in a square of 1.
    scene = np.full((48, 48), 0.1)
    scene[12:36, 12:36] = 1
    image = Convolution(PSF, scene.shape, boundary="reflect").apply(scene)
    image += rng.normal(0, 0.01, image.shape)
    hole = np.zeros(image.shape, bool)
    hole[:24] = True
    out = deblur(image, PSF, bad_pixels=hole, method=method)
    assert out.max() < 3
    assert out[:18, 14:34].min() > 0.5


def test_hot_pixels_are_found_and_left_out(rng):
    # Cosmic rays or a sensor's hot pixels: single samples no blur makes.
    image = blurred_gray(np.float32, rng)
    clean = deblur(image, PSF)
    spots = tuple(rng.choice(np.arange(4, 60), (2, 12), replace=False))
    hot = image.copy()
    hot[spots] += 2.0
    (last,) = list(deblur_steps(hot, PSF))[-1:]
    assert last.settings["hot_pixels"] == 12
    assert last.settings["left_out"] == 12
    # Each is filled in from its neighbours, not deblurred into a bright spot.
    assert np.abs(last.image - clean)[spots].max() < 0.1
    assert np.abs(last.image - clean).mean() < 0.003


def test_data_scaled_to_their_maximum_are_not_clipped(rng):
    # Two stars scaled so that the brightest sample is 1.0: every sample
    # from 0.99 up was left out as clipped, and the stars came back at half
    # the peak of the same data scaled by 0.98.
    scene = np.zeros((48, 48))
    scene[20, 20], scene[30, 28] = 1.0, 0.7
    psf = gaussian_psf(1.5)
    blurred = Convolution(psf, scene.shape, boundary="periodic").apply(scene)
    image = blurred + rng.normal(0, 1e-3, blurred.shape)
    image /= image.max()
    steps = list(deblur_steps(image, psf, boundary="periodic"))
    assert steps[-1].settings["left_out"] == 0
    scaled = deblur(0.98 * image, psf, boundary="periodic") / 0.98
    np.testing.assert_allclose(steps[-1].image, scaled, atol=1e-3 * scaled.max())


def test_signed_data_are_warned_and_rl_tv_keeps_their_light(rng):
    signed = data.camera()[::4, ::4] / 255.0 - 0.5
    delta = np.pad([[1.0]], 1)
    with pytest.warns(UserWarning, match="below zero"):
        out = deblur(signed, delta, method="rl_tv")
    # RL-TV's weight was divided by the data's mean (here below zero, so by
    # 1e-30): it flattened the light to a tenth.
    np.testing.assert_allclose(out, np.clip(signed, 0, None), atol=0.01)
    # The noise of a dark background is no sign of signed data.
    dark = np.zeros((64, 64))
    dark[30:34, 30:34] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        deblur(dark + rng.normal(0, 0.05, dark.shape), gaussian_psf(1.5))


def test_inputs_are_not_modified(rng):
    image = blurred_gray(np.float32, rng)
    psf = PSF.copy()
    before = image.copy(), psf.copy()
    deblur(image, psf)
    np.testing.assert_array_equal(image, before[0])
    np.testing.assert_array_equal(psf, before[1])


def test_real_bars_get_closer_to_truth(shared_data):
    tifffile = pytest.importorskip("tifffile")
    folder = shared_data / "microscopy-bars"
    observed = tifffile.imread(folder / "data.tif")
    truth = tifffile.imread(folder / "actual.tif")
    kernel = tifffile.imread(folder / "kernel.tif")
    out = deblur(observed, kernel)
    scale = np.vdot(out.ravel(), truth.ravel()) / np.vdot(out.ravel(), out.ravel())
    scale_in = np.vdot(observed.ravel(), truth.ravel()) / np.vdot(
        observed.ravel(), observed.ravel()
    )
    error_out = np.linalg.norm(scale * out - truth)
    error_in = np.linalg.norm(scale_in * observed - truth)
    assert error_out < 0.9 * error_in


@pytest.mark.parametrize("scale", [255, 1.0])
def test_noise_free_images_still_get_a_positive_weight(scale):
    # A clean synthetic image has no measurable noise; its rounding (or a
    # millionth of its range) keeps the weights positive.
    blocks = np.kron(data.camera()[::32, ::32], np.ones((8, 8)))
    image = blocks.astype(np.uint8) if scale == 255 else blocks / 255.0
    (last,) = list(deblur_steps(image, defocus_psf(3.0), max_iter=2))[-1:]
    assert last.settings["weight"] > 0 and last.settings["noise"] > 0
    assert np.all(np.isfinite(last.image))


@pytest.mark.parametrize("method", METHODS[1:])
def test_a_noise_level_below_the_rounding_is_held_to_it(method):
    # A noise of 1e-30 made ADMM's data weights infinite: the hyper-Laplacian
    # prior's estimate was NaN (an IndexError in its lookup).
    image = data.camera()[200:264, 200:264]
    held = deblur(image, PSF, method=method, noise=1e-30, max_iter=5)
    assert np.all(np.isfinite(held))
    np.testing.assert_allclose(held, deblur(image, PSF, method=method, noise=1e-8, max_iter=5))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("shape", "compressed"), [((1, 1), False), ((3, 3), True), ((1, 1, 1), False)]
)
def test_images_of_a_few_samples_are_deblurred(method, shape, compressed, rng):
    # GCV had no frequency to weigh and divided by zero.
    image = 0.5 + 0.01 * rng.random(shape)
    out = deblur(image, np.ones((1,) * len(shape)), method=method, compressed=compressed)
    assert out.shape == shape and np.all(np.isfinite(out))


def test_results_do_not_depend_on_the_data_units(rng):
    # Fluxes in physical units (1e-14 erg / s / cm^2 / A, say) are
    # deblurred as the same image in units of 1; the noise-free floor was an
    # absolute 1e-12 that smoothed them flat.
    image = blurred_gray(np.float64, rng)
    reference = deblur(image, PSF)
    for scale in (1e-14, 1e-20, 1e10):
        np.testing.assert_allclose(deblur(image * scale, PSF) / scale, reference, atol=1e-9)


def test_one_hot_pixel_does_not_set_the_noise_floor(rng):
    # The floor of a float image's noise was a millionth of its maximum: one
    # hot pixel of 1e6 set the noise at 1 on data of 0..1.
    image = blurred_gray(np.float64, rng)
    hot = image.copy()
    hot[32, 32] = 1e6
    (clean,) = list(deblur_steps(image, PSF, max_iter=1))[-1:]
    (spiked,) = list(deblur_steps(hot, PSF, max_iter=1))[-1:]
    assert spiked.settings["noise"] == pytest.approx(clean.settings["noise"], rel=0.1)


def test_psf_taken_with_other_voxels_is_resampled(rng):
    # The bead stack has 0.1 um steps in z, the image 0.3 um: the same blur
    # (sigma 0.6 um in z, 0.12 um in y and x) spans three times the samples.
    scene = cubes(rng, (24, 40, 40), 25, 50, (4, 4, 4))
    image_psf = gaussian_psf((2.0, 1.2, 1.2), ndim=3)
    bead_psf = gaussian_psf((6.0, 1.2, 1.2), ndim=3, shape=(23, 9, 9))
    blurred = Convolution(image_psf, scene.shape, boundary="zero").apply(scene)
    blurred = rng.poisson(np.clip(blurred, 0, None) + 1.0).astype(np.float32)
    truth = scene + 1

    def error(result):
        return np.linalg.norm(result - truth) / np.linalg.norm(truth)

    resampled = deblur(blurred, bead_psf, spacing=(0.3, 0.1, 0.1), psf_spacing=0.1)
    as_is = deblur(blurred, bead_psf)
    assert error(resampled) < 0.8 * error(as_is)
    with pytest.raises(ValueError, match="psf_spacing"):
        deblur(blurred, bead_psf, spacing=0.1)
    with pytest.raises(ValueError, match="spacing"):
        deblur(blurred, bead_psf, spacing=(1, 1), psf_spacing=1)
    # A bead's spacing in nm against the image's in um asked for terabytes.
    with pytest.raises(ValueError, match="larger than the image .* same unit"):
        deblur(blurred, bead_psf, spacing=(0.3, 0.1, 0.1), psf_spacing=100)


def test_a_psf_deeper_than_the_stack_is_cut_with_a_warning(rng):
    # A bead stack spanning more planes than the sample's was refused. The
    # unknown-boundary model holds a PSF up to 2 n - 1 planes long; beyond,
    # its far haze is cut off with a warning.
    scene = cubes(rng, (32, 40, 40), 20, 100.0, (4, 4, 4))
    deep = gaussian_psf((4.0, 1.5, 1.5), ndim=3, shape=(41, 11, 11))
    blurred = ndimage.convolve(scene, deep, mode="constant")
    stack = rng.poisson(np.clip(blurred, 0, None) + 1.0).astype(np.float32)
    truth = scene + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = deblur(stack, deep)
    assert np.linalg.norm(result - truth) < 0.8 * np.linalg.norm(stack - truth)
    # A thin stack: 8 planes, the PSF cut to 15, 6% of its light left out (it
    # was refused: 38% beyond 7 planes).
    with pytest.warns(UserWarning, match=r"cut to 15 x 11 x 11, 6\.\d\d% of its light"):
        thin = deblur(stack[12:20], deep)
    assert np.linalg.norm(thin - truth[12:20]) < 0.8 * np.linalg.norm(stack[12:20] - truth[12:20])
    # A model that does not extend the image holds no more than its size.
    with pytest.raises(ValueError, match="larger than the image .* of its light beyond"):
        deblur(stack[12:20], deep, boundary="reflect")
    # Taken with half the stack's z step, the PSF is 21 planes at the stack's,
    # cut too (it was refused: "are both in the same unit?").
    with pytest.warns(UserWarning, match="cut to 15 x 11 x 11"):
        deblur(stack[12:20], deep, spacing=(0.2, 0.1, 0.1), psf_spacing=(0.1, 0.1, 0.1))


def test_camera_offset_of_photon_counts_is_fitted(rng):
    # A fluorescence stack on a camera offset of 100 counts: the offset is
    # found and fitted as light under the blur (not deblurred), and given
    # back: the result keeps the input's level and total light.
    scene = cubes(rng, (20, 48, 48), 15, 200, (4, 6, 6))
    psf = gaussian_psf((1.5, 1.2, 1.2), ndim=3)
    blurred = Convolution(psf, scene.shape, boundary="zero").apply(scene)
    stack = rng.poisson(np.clip(blurred, 0, None) + 100).astype(np.float32)
    (last,) = deque(deblur_steps(stack, psf), maxlen=1)
    assert last.settings["method"] == "rl_tv"
    background = last.settings["background"]
    assert abs(background - 100) < 5
    result = last.image
    assert result.min() >= background
    assert abs(result.sum() / stack.sum() - 1) < 0.01
    # Sharper: the peaks stand higher above the offset than in the data.
    assert (result.max() - background) > 1.5 * (stack.max() - 100)


def test_a_cameras_offset_is_no_light_to_richardson_lucy(rng):
    # Counts on a noise-free offset of 1000: read as photons (a Poisson
    # background of 1000), the data seemed 30 times noisier than they are,
    # and RL-TV smoothed the scene away.
    scene = cubes(rng, (20, 48, 48), 15, 300, (4, 6, 6))
    psf = gaussian_psf((1.5, 1.2, 1.2), ndim=3)
    blurred = Convolution(psf, scene.shape, boundary="zero").apply(scene)
    counts = rng.poisson(np.clip(blurred, 0, None) + 2) + rng.normal(0, 2.0, scene.shape)
    plain = deblur(counts.astype(np.float32), psf)
    (last,) = deque(deblur_steps((counts + 1000).astype(np.float32), psf), maxlen=1)
    assert last.settings["method"] == "rl_tv"
    error = np.linalg.norm(last.image - 1000 - scene - 2)
    assert error < 1.05 * np.linalg.norm(plain - scene - 2)
    assert error < 0.6 * np.linalg.norm(counts - scene - 2)


def test_time_series_is_deblurred_frame_by_frame(rng):
    psf = gaussian_psf((1.5, 1.2, 1.2), ndim=3)
    frames = []
    for _ in range(3):
        scene = np.zeros((16, 24, 24))
        z, y, x = rng.integers(5, 11), rng.integers(6, 18), rng.integers(6, 18)
        scene[z - 1 : z + 2, y - 2 : y + 2, x - 2 : x + 2] = 50
        blurred = Convolution(psf, scene.shape, boundary="zero").apply(scene)
        frames.append(rng.poisson(np.clip(blurred, 0, None) + 2).astype(np.float32))
    # Time on the second axis (ZTYX), to check that the axis is kept.
    series = np.stack(frames, axis=1)
    steps = list(deblur_steps(series, psf, time_axis=1, max_iter=5))
    fractions = [step.fraction for step in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1
    assert {step.settings["frame"] for step in steps} == {0, 1, 2}
    result = steps[-1].image
    assert result.shape == series.shape
    method = steps[0].settings["method"]
    for t, frame in enumerate(frames):
        alone = deblur(frame, psf, max_iter=5, method=method)
        np.testing.assert_allclose(result[:, t], alone, rtol=1e-5)
    # Mid-way, the frames not reached yet are shown as they came.
    middle = next(step for step in steps if step.settings["frame"] == 1)
    np.testing.assert_array_equal(middle.image[:, 2], frames[2])
    with pytest.raises(ValueError, match="differ"):
        deblur(series, psf, time_axis=1, channel_axis=1)
    with pytest.raises(ValueError, match="time_axis"):
        deblur(series, psf, time_axis=4)
    # A broken frame is said at the call, not when its turn comes.
    broken = series.astype(np.float64)
    broken[:, 2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"frames \[2\] of the image contain NaN"):
        deblur_steps(broken, psf, time_axis=1)
    # A mask of the series' shape holds each frame's own bad pixels (it
    # was refused as not of the spatial shape).
    bad = np.zeros(series.shape, bool)
    bad[:, 2, 8:12, 8:12] = True
    masked = deblur(series, psf, time_axis=1, max_iter=5, bad_pixels=bad)
    np.testing.assert_array_equal(masked[:, :2], result[:, :2])
    expected = deblur(frames[2], psf, max_iter=5, method=method, bad_pixels=bad[:, 2])
    np.testing.assert_allclose(masked[:, 2], expected, rtol=1e-5)


def test_channels_of_a_stack_each_get_their_own_psf(rng):
    # CZYX: two fluorophores, the red one blurred more along z.
    psfs = np.stack(
        [
            gaussian_psf((1.5, 1.0, 1.0), ndim=3),
            gaussian_psf((3.0, 1.0, 1.0), ndim=3, shape=(13, 13, 13))[:, 2:-2, 2:-2],
        ]
    )
    scene = np.zeros((2, 20, 32, 32))
    scene[:, 8:12, 10:20, 12:18] = 80
    blurred = np.stack(
        [Convolution(p, s.shape, boundary="zero").apply(s) for p, s in zip(psfs, scene)]
    )
    stack = rng.poisson(np.clip(blurred, 0, None) + 2).astype(np.float32)
    own = deblur(stack, psfs, channel_axis=0)
    swapped = deblur(stack, psfs[::-1], channel_axis=0)
    truth = scene + 2
    for c in range(2):
        assert np.abs(own[c] - truth[c]).mean() < np.abs(swapped[c] - truth[c]).mean()


def test_varying_blur_beats_every_single_psf(varying_scene):
    blurred, photo, sharp = varying_scene
    steps = list(deblur_steps(blurred, photo, varying=True))
    result, settings = steps[-1].image, steps[-1].settings
    assert settings["psfs"] == 9 and settings["method"] == "fista_tv"
    measured = psf_from_point_source(photo, sources="auto")
    singles = [psnr(sharp, deblur(blurred, psf), 1) for psf in (*measured.each, measured.psf)]
    assert psnr(sharp, result, 1) > max(singles) + 1.5
    assert psnr(sharp, result, 1) > psnr(sharp, blurred, 1) + 1.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "admm_tv"}, "one PSF for the whole frame"),
        ({"method": "wiener"}, "one PSF for the whole frame"),
        ({"photo": "cropped"}, "framed like the image"),
        ({"photo": "one light"}, "several point lights"),
    ],
)
def test_varying_blur_bad_input(varying_scene, change, message):
    blurred, photo, _ = varying_scene
    if change.get("photo") == "cropped":
        photo = photo[:-8]
    elif change.get("photo") == "one light":
        photo = photo.copy()
        photo[40:] = photo[:, 40:] = 0
    method = change.get("method", "auto")
    with pytest.raises(ValueError, match=message):
        deblur(blurred, photo, varying=True, method=method)


def test_psf_auto_estimates_the_blur_and_deblurs(rng):
    from tests.engine.test_blind import camera_made

    sharp = data.camera()[100:356, 150:406]
    blurred = camera_made(defocus_psf(5.0), rng)
    steps = list(deblur_steps(blurred, "auto"))
    assert steps[-1].settings["psf_estimate"].startswith("estimated blur: defocus")
    truth = sharp[6:-6, 6:-6]
    assert psnr(truth, steps[-1].image, 255) > psnr(truth, blurred, 255) + 1.5
    with pytest.raises(ValueError, match="'auto'"):
        deblur(blurred, "guess")


def test_steps_hand_out_the_psf_they_deblur_with(rng):
    image = rng.uniform(0, 1, (48, 48, 3))
    grey = next(deblur_steps(image[..., 0], gaussian_psf(2.0))).psf
    np.testing.assert_allclose(grey, gaussian_psf(2.0), atol=0.01 * gaussian_psf(2.0).max())
    # A PSF per colour comes out channels first.
    psfs = np.stack([gaussian_psf(s, shape=(13, 13)) for s in (1.0, 1.5, 2.0)], axis=-1)
    each = next(deblur_steps(image, psfs, channel_axis=-1)).psf
    assert each.shape == (3, 13, 13)
    assert rms_radius(each[0]) < rms_radius(each[1]) < rms_radius(each[2])


def test_refine_psf_option(rng):
    from tests.engine.test_blind import camera_made

    blurred = camera_made(defocus_psf(5.0), rng)
    truth = data.camera()[100:356, 150:406][6:-6, 6:-6]
    steps = list(deblur_steps(blurred, defocus_psf(6.0), refine_psf=True))
    assert steps[-1].settings["psf_refined"] > 0.05
    assert steps[-1].settings["psf_magnified"] == pytest.approx(5 / 6, rel=0.05)
    # The refined PSF is handed out, shrunk towards the true disc.
    refined = steps[-1].psf
    assert refined.sum() == pytest.approx(1, rel=1e-4)
    assert rms_radius(refined) < 0.9 * rms_radius(defocus_psf(6.0))
    as_given = deblur(blurred, defocus_psf(6.0))
    assert psnr(truth, steps[-1].image, 255) > psnr(truth, as_given, 255) + 3
    # The weight said is the one chosen for the refined PSF (it was the
    # given PSF's), and the plan repeats the run.
    settings, plan = steps[-1].settings, steps[-1].plan
    assert settings["weight"] == pytest.approx(np.mean(plan.weight))
    unrefined = next(deblur_steps(blurred, defocus_psf(6.0)))
    assert settings["weight"] != unrefined.settings["weight"]
    with pytest.raises(ValueError, match="refine_psf"):
        deblur(np.zeros((8, 32, 32)), gaussian_psf(1.0, ndim=3), refine_psf=True)


def test_a_time_series_takes_the_method_its_first_frame_chose(rng):
    # Each frame chose its own: a signed first frame (least squares) and
    # photon counts after it (RL-TV) gave a series named after one method
    # and deblurred by two.
    psf = gaussian_psf(1.5)
    counts = rng.poisson(40, size=(3, 48, 48)).astype(np.float32)
    counts[0] -= 60
    with pytest.warns(UserWarning, match="below zero"):
        steps = list(deblur_steps(counts, psf, time_axis=0, max_iter=3))
    assert {step.settings["method"] for step in steps} == {steps[0].settings["method"]}


def test_a_compressed_point_light_photo_is_measured_as_compressed():
    import io

    from PIL import Image

    from napari_deblur._api import decisions
    from napari_deblur._sample_data import make_defocused_photo

    blurred, light, _ = make_defocused_photo()
    stored = io.BytesIO()
    Image.fromarray(light).save(stored, "JPEG", quality=75)
    photo = np.asarray(Image.open(stored))
    shapes = [
        decisions(blurred, photo, channel_axis=-1, psf_compressed=said).psf_shape
        for said in (False, True)
    ]
    # Its compression's ringing passed for light: a box of 65 x 71.
    assert max(shapes[0]) > 50 and max(shapes[1]) <= 25

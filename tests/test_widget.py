import re
import threading

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_deblur import _widget, deblur, deblur_steps
from napari_deblur._sample_data import make_defocused_photo
from napari_deblur._widget import DeblurWidget, PointSourceWidget, PSFModelWidget
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf
from tests.conftest import cubes, psnr, rms_radius


@pytest.fixture
def errors(monkeypatch):
    """Messages the widgets show as napari error notifications."""
    shown = []
    monkeypatch.setattr(_widget, "show_error", shown.append)
    return shown


@pytest.fixture
def notices(monkeypatch):
    """Messages the widgets show as napari warnings."""
    shown = []
    monkeypatch.setattr(_widget, "show_warning", shown.append)
    return shown


def dock(viewer, kind=DeblurWidget):
    widget = kind(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    return widget


def dock_on(viewer, image, psf):
    """The Deblur widget docked and set on an image layer and a PSF layer."""
    widget = dock(viewer)
    widget.image.value = image
    widget.psf.value = psf
    return widget


def on_photo_sample(make_napari_viewer):
    """A viewer with the photo sample, and the Deblur widget set on its layers."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deblur", "defocused_photo")
    widget = dock_on(viewer, viewer.layers["defocused photo"], viewer.layers["point light"])
    return viewer, widget


def on_varying_scene(make_napari_viewer, varying_scene):
    """A viewer with the tilted scene and its lights, the widget set on them, varying blur on."""
    blurred, photo, _ = varying_scene
    viewer = make_napari_viewer()
    viewer.add_image(blurred, name="tilted")
    viewer.add_image(photo, name="lights")
    widget = dock_on(viewer, viewer.layers["tilted"], viewer.layers["lights"])
    widget.varying.value = True
    return viewer, widget


def run_to_end(widget, qtbot):
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=120_000)


def measure(widget, qtbot):
    """Click Measure PSF and wait for its thread."""
    widget.measure_button.native.click()
    qtbot.waitUntil(lambda: widget.measure_button.enabled, timeout=60_000)


def test_sample_deblurs_to_a_sharper_layer(make_napari_viewer, qtbot, tmp_path, errors):
    viewer, widget = on_photo_sample(make_napari_viewer)
    widget.keep_iterations.value = True
    run_to_end(widget, qtbot)
    assert errors == []

    result = viewer.layers["defocused photo deblurred (admm_tv)"]
    blurred, _, sharp = make_defocused_photo()
    assert result.data.shape == blurred.shape and result.data.dtype == np.uint8
    assert result.rgb
    gain = psnr(sharp, result.data, 255) - psnr(sharp, blurred, 255)
    assert gain > 2.0
    iterations = viewer.layers[f"{result.name} iterations"]
    assert iterations.data.shape[1:] == blurred.shape and iterations.data.shape[0] > 1
    np.testing.assert_array_equal(iterations.data[-1], result.data)
    assert widget.progress.value == 100
    assert "admm_tv" in widget.report.value and "(auto)" in widget.report.value

    widget.side_by_side.value = True
    assert viewer.canvas.grid.enabled
    screenshot = viewer.screenshot(canvas_only=True)
    iio.imwrite(tmp_path / "screenshot.png", screenshot)
    assert screenshot.ndim == 3 and screenshot.std() > 0


def test_3d_layer_keeps_scale_and_gets_sharper(make_napari_viewer, qtbot, errors, rng):
    viewer = make_napari_viewer()
    scene = cubes(rng, (24, 48, 48), 20, 100, (4, 6, 6))
    psf = gaussian_psf((2.0, 1.2, 1.2), ndim=3)
    blurred = rng.poisson(Convolution(psf, scene.shape, boundary="zero").apply(scene).clip(0) + 1)
    image = viewer.add_image(
        blurred.astype(np.float32), name="stack", scale=(0.3, 0.1, 0.1), translate=(5, 1, 2)
    )
    viewer.add_image(psf.astype(np.float32), name="psf")
    widget = dock_on(viewer, image, viewer.layers["psf"])
    run_to_end(widget, qtbot)
    assert errors == []
    (result,) = [layer for layer in viewer.layers if layer.name.startswith("stack deblurred")]
    np.testing.assert_allclose(result.scale, image.scale)
    np.testing.assert_allclose(result.translate, image.translate)
    truth = scene + 1
    assert psnr(truth, result.data, 100) > psnr(truth, image.data, 100) + 2


def test_psf_layer_with_its_own_voxels_is_resampled(make_napari_viewer, qtbot, errors, rng):
    viewer = make_napari_viewer()
    scene = cubes(rng, (24, 40, 40), 20, 100, (4, 4, 4))
    blurred = Convolution(gaussian_psf((2.0, 1.2, 1.2), ndim=3), scene.shape, boundary="zero")
    stack = rng.poisson(blurred.apply(scene).clip(0) + 1).astype(np.float32)
    image = viewer.add_image(stack, name="stack", scale=(0.3, 0.1, 0.1))
    # The bead stack: 0.1 um steps in z, so the same blur spans 3x the planes.
    bead = gaussian_psf((6.0, 1.2, 1.2), ndim=3, shape=(23, 9, 9)).astype(np.float32)
    viewer.add_image(bead, name="bead", scale=(0.1, 0.1, 0.1))
    widget = dock_on(viewer, image, viewer.layers["bead"])
    run_to_end(widget, qtbot)
    assert errors == []
    (result,) = [layer for layer in viewer.layers if layer.name.startswith("stack deblurred")]
    np.testing.assert_allclose(result.scale, image.scale)
    assert result.metadata["deblur"]["psf_shape"][0] < 23
    truth = scene + 1
    assert psnr(truth, result.data, 100) > psnr(truth, image.data, 100) + 2


def test_a_hyperstack_file_opens_as_scaled_channels_that_deblur(
    make_napari_viewer, qtbot, errors, rng, tmp_path
):
    # napari's own reader gave this ZCYX file as one 4D layer without a scale,
    # whose Z the widget took for time.
    psf = gaussian_psf((2.0, 1.2, 1.2), ndim=3)
    op = Convolution(psf, (20, 40, 40), boundary="zero")
    scenes = [cubes(rng, (20, 40, 40), 15, 100, (4, 4, 4)) for _ in range(2)]
    stack = np.stack([rng.poisson(op.apply(s).clip(0) + 1) for s in scenes], axis=1)
    voxel = {"resolution": (10.0, 10.0), "metadata": {"spacing": 0.3, "unit": "um"}}
    tifffile.imwrite(tmp_path / "cell.tif", stack.astype(np.uint16), imagej=True, **voxel)
    voxel["metadata"]["axes"] = "ZYX"
    bead = (psf / psf.max() * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "bead.tif", bead, imagej=True, **voxel)

    viewer = make_napari_viewer()
    channels = viewer.open(tmp_path / "cell.tif", plugin="napari-deblur")
    (bead_layer,) = viewer.open(tmp_path / "bead.tif", plugin="napari-deblur")
    assert [layer.name for layer in channels] == ["cell C0", "cell C1"]
    for layer in (*channels, bead_layer):
        assert layer.ndim == 3 and layer.axis_labels == ("z", "y", "x")
        np.testing.assert_allclose(layer.scale, (0.3, 0.1, 0.1))
        assert [str(unit) for unit in layer.units] == ["micrometer"] * 3
    widget = dock_on(viewer, channels[1], bead_layer)
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["cell C1 deblurred (rl_tv)"]
    np.testing.assert_allclose(result.scale, (0.3, 0.1, 0.1))
    truth = scenes[1] + 1
    assert psnr(truth, result.data, 100) > psnr(truth, stack[:, 1], 100) + 2


def test_psf_scales_are_compared_in_their_units(
    make_napari_viewer, qtbot, errors, monkeypatch, rng
):
    # A bead in nm on a stack in um was resampled as if 1000x coarser (5.8
    # TiB asked for); a PSF in um on a photo in pixels shrank to 3 x 3.
    informed = []
    monkeypatch.setattr(_widget, "show_info", informed.append)
    viewer = make_napari_viewer()
    stack = viewer.add_image(
        rng.uniform(1, 2, (24, 40, 40)).astype(np.float32), scale=(0.3, 0.1, 0.1), units="um"
    )
    bead = gaussian_psf((6.0, 1.2, 1.2), ndim=3, shape=(23, 9, 9)).astype(np.float32)
    nm = viewer.add_image(bead, name="bead", scale=(100, 100, 100), units="nm")
    widget = dock_on(viewer, stack, nm)
    widget.max_iter.value = 2
    run_to_end(widget, qtbot)
    assert errors == []
    assert viewer.layers[-1].metadata["deblur"]["psf_shape"][0] < 23
    photo = viewer.add_image(rng.uniform(1, 2, (64, 64)).astype(np.float32), name="photo")
    light = viewer.add_image(
        gaussian_psf(3.0, shape=(21, 21)).astype(np.float32), scale=(0.1, 0.1), units="um"
    )
    widget = dock_on(viewer, photo, light)
    widget.max_iter.value = 2
    run_to_end(widget, qtbot)
    assert errors == [] and any("cannot be compared" in text for text in informed)
    assert viewer.layers[-1].metadata["deblur"]["psf_shape"] == (21, 21)
    # A stack given a scale alone (napari's "pixel") beside a PSF in um (the
    # PSF model's layer) was deblurred with the PSF sample for sample: 1.5x
    # too wide across, 3x along the axis.
    unitless = viewer.add_image(stack.data, name="unitless", scale=(0.3, 0.1, 0.1))
    model = viewer.add_image(bead, name="model", scale=(0.1, 0.1, 0.1), units="um")
    widget = dock_on(viewer, unitless, model)
    widget.max_iter.value = 2
    run_to_end(widget, qtbot)
    assert errors == [] and any("taken in the PSF's micrometer" in text for text in informed)
    assert viewer.layers[-1].metadata["deblur"]["psf_shape"][0] < 23


def test_psf_cropped_by_a_rectangle(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    blurred, light, sharp = make_defocused_photo()
    viewer.add_image(blurred, name="photo", rgb=True)
    # The point light in a larger photo that also holds a bright lamp.
    frame = np.pad(light, [(20, 108), (100, 28), (0, 0)], mode="reflect")
    frame[150:190, 10:50] = 255
    viewer.add_image(frame, name="frame", rgb=True)
    shapes = viewer.add_shapes([[15, 95], [97, 177]], shape_type="rectangle", name="box")
    widget = dock_on(viewer, viewer.layers["photo"], viewer.layers["frame"])
    widget.psf_region.value = shapes
    widget.max_iter.value = 10
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["photo deblurred (admm_tv)"]
    assert psnr(sharp, result.data, 255) > psnr(sharp, blurred, 255) + 1
    # A rectangle off the layer was reported with a meaningless region.
    shapes.data = [np.array([[400, 400], [420, 420]])]
    widget.run()
    assert len(errors) == 1 and "lies outside the PSF layer 'frame'" in errors[0]
    # A line was taken for a box across every row.
    shapes.data = [np.array([[50, 95], [50, 177]])]
    widget.run()
    assert len(errors) == 2 and "has no area" in errors[1]
    # A diagonal line's box, holding the light by chance, was taken.
    line = viewer.add_shapes([[[20, 100], [90, 170]]], shape_type="line", name="line")
    widget.psf_region.value = line
    widget.run()
    assert len(errors) == 3 and "is a line: draw a rectangle" in errors[2]


def test_a_psf_photo_with_alpha_is_read_as_colour(make_napari_viewer, qtbot, errors):
    # An RGBA photo of the light (a PNG with an opaque alpha) was refused:
    # "psf contains NaN or infinite values".
    viewer = make_napari_viewer()
    blurred, light, sharp = make_defocused_photo()
    viewer.add_image(blurred, name="photo", rgb=True)
    opaque = np.concatenate([light, np.full(light.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    viewer.add_image(opaque, name="light", rgb=True)
    widget = dock_on(viewer, viewer.layers["photo"], viewer.layers["light"])
    widget.max_iter.value = 10
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["photo deblurred (admm_tv)"]
    assert psnr(sharp, result.data, 255) > psnr(sharp, blurred, 255) + 1


def test_the_weight_said_is_the_runs_own(make_napari_viewer, qtbot, errors):
    # The box edited during a run raised in Qt's loop at every step.
    viewer, widget = on_photo_sample(make_napari_viewer)
    widget.max_iter.value = 5
    widget.run_button.native.click()
    widget.weight.value = "x"
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=120_000)
    assert errors == [] and "(auto)" in widget.report.value


def test_cancel_stops_within_an_iteration(make_napari_viewer, qtbot, errors, monkeypatch):
    viewer, widget = on_photo_sample(make_napari_viewer)
    computed = []

    def recording(steps):
        for item in original(steps):
            computed.append(item[0].iteration)
            yield item

    original = _widget._images
    monkeypatch.setattr(_widget, "_images", recording)
    at_cancel = []

    def cancel_on_first(item):
        if not at_cancel:
            at_cancel.append(len(computed))
            widget.cancel()

    widget.run_button.native.click()
    widget.worker.yielded.connect(cancel_on_first)
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=120_000)
    assert errors == []
    # At most the iteration under way when Cancel was pressed completes.
    assert len(computed) <= at_cancel[0] + 1
    assert computed[-1] < 100
    cancelled = [layer for layer in viewer.layers if layer.name.endswith("cancelled")]
    assert len(cancelled) == 1


@pytest.mark.parametrize(
    ("psf", "message"),
    [
        (np.zeros((9, 9), np.float32), "no light"),
        (np.full((9, 9), np.nan, np.float32), "NaN"),
        (gaussian_psf(1.5, ndim=3).astype(np.float32), "axes"),
    ],
)
def test_bad_psf_is_a_notification(make_napari_viewer, errors, psf, message):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="img")
    viewer.add_image(psf, name="psf")
    widget = dock_on(viewer, viewer.layers["img"], viewer.layers["psf"])
    widget.run_button.native.click()
    assert len(errors) == 1 and message in errors[0]
    assert widget.run_button.enabled
    assert len(viewer.layers) == 2


def test_image_with_nan_is_a_notification(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    image = np.ones((32, 32), np.float32)
    image[3, 4] = np.nan
    viewer.add_image(image, name="img")
    viewer.add_image(gaussian_psf(1.0).astype(np.float32), name="psf")
    widget = dock_on(viewer, viewer.layers["img"], viewer.layers["psf"])
    widget.run_button.native.click()
    assert len(errors) == 1 and "NaN" in errors[0]


def test_psf_from_two_rectangles(make_napari_viewer, qtbot, errors, notices):
    viewer = make_napari_viewer()
    _, light, _ = make_defocused_photo()
    # Two photos of the light side by side, as two LEDs in one frame.
    frame = np.concatenate([light, light[:, ::-1]], axis=1)
    viewer.add_image(frame, name="leds", rgb=True, scale=(2.0, 2.0))
    # Both layers scaled alike: the rectangles' data coordinates are the photo's.
    shapes = viewer.add_shapes(
        [[[5, 15], [65, 65]], [[5, 80], [65, 130]]],
        shape_type="rectangle",
        name="boxes",
        scale=(2.0, 2.0),
    )
    widget = dock(viewer, PointSourceWidget)
    widget.photo.value = viewer.layers["leds"]
    assert widget.sources.enabled
    widget.sources.value = 3
    widget.regions.value = shapes
    # Each rectangle holds one light: the count of lights is not asked.
    assert not widget.sources.enabled
    measure(widget, qtbot)
    assert errors == [] and notices == []
    layer = viewer.layers["leds PSF"]
    assert layer.rgb and layer.data.shape[0] % 2 == 1
    np.testing.assert_allclose(layer.scale, (2.0, 2.0))
    # Each colour's PSF is the sample's disc (an error of 0.05-0.06 each).
    truth = defocus_psf(5.0)
    assert layer.data.shape == (*truth.shape, 3)
    for colour in np.moveaxis(layer.data, -1, 0):
        assert np.linalg.norm(colour / colour.sum() - truth) < 0.1 * np.linalg.norm(truth)
    assert "2 source(s)" in widget.report.value
    assert "FWHM" in layer.metadata["psf_report"]


def test_bead_stack_fwhm_in_micrometres(make_napari_viewer, qtbot, errors, rng):
    viewer = make_napari_viewer()
    # A bead of sigma (3, 2, 2) voxels on 0.2 x 0.1 x 0.1 um voxels, with noise.
    bead = gaussian_psf((3.0, 2.0, 2.0), ndim=3, shape=(41, 41, 41)) * 2e5
    stack = rng.poisson(bead + 20).astype(np.float32)
    viewer.add_image(stack, name="bead", scale=(0.2, 0.1, 0.1), units="um")
    widget = dock(viewer, PointSourceWidget)
    widget.photo.value = viewer.layers["bead"]
    measure(widget, qtbot)
    assert errors == []
    found = re.search(r"px = ([\d. x]+) (\w+)", widget.report.value)
    fwhm = [float(v) for v in found.group(1).split(" x ")]
    assert found.group(2) == "micrometer"
    # FWHM = 2.355 sigma: 1.41 um in z, 0.47 um in y and x.
    np.testing.assert_allclose(fwhm, [1.41, 0.47, 0.47], rtol=0.1)


def test_point_lights_are_measured_off_the_gui_thread(make_napari_viewer, qtbot, monkeypatch, rng):
    # A bead stack of 64 x 512 x 512 took 5-8 s, the viewer frozen meanwhile.
    threads = []
    measure_lights = _widget.psf_from_point_source

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return measure_lights(*args, **kwargs)

    monkeypatch.setattr(_widget, "psf_from_point_source", recorded)
    viewer = make_napari_viewer()
    bead = gaussian_psf((3.0, 2.0, 2.0), ndim=3, shape=(25, 25, 25)) * 2e5
    viewer.add_image(rng.poisson(bead + 20).astype(np.float32), name="bead")
    widget = dock(viewer, PointSourceWidget)
    widget.photo.value = viewer.layers["bead"]
    widget.measure_button.native.click()
    assert not widget.measure_button.enabled and "bead PSF" not in viewer.layers
    # A second call meanwhile (from code: the button is off) starts no second thread.
    widget.measure()
    qtbot.waitUntil(lambda: widget.measure_button.enabled, timeout=60_000)
    assert len(threads) == 1 and threading.main_thread() not in threads
    assert "bead PSF" in viewer.layers and "FWHM" in widget.report.value


def test_bead_size_entered_in_micrometres(make_napari_viewer, qtbot, errors, rng):
    viewer = make_napari_viewer()
    # A 1 um bead (radii 2.5 x 5 x 5 voxels) seen through a PSF of sigma (3, 1.5, 1.5) voxels.
    ball = defocus_psf((2.5, 5.0, 5.0), edge=0.05)
    light = np.zeros((64, 48, 48))
    light[32, 24, 24] = 1
    light = ndimage.convolve(light, ball, mode="constant")
    light = ndimage.convolve(light, gaussian_psf((3.0, 1.5, 1.5), ndim=3), mode="constant")
    stack = rng.poisson(light / light.max() * 3000 + 100).astype(np.float32)
    viewer.add_image(stack, name="bead", scale=(0.2, 0.1, 0.1), units="um")
    widget = dock(viewer, PointSourceWidget)
    widget.photo.value = viewer.layers["bead"]
    widget.bead_diameter.value = 1.0
    measure(widget, qtbot)
    assert errors == []
    found = re.search(r"px = ([\d. x]+) (\w+)", widget.report.value)
    fwhm = [float(v) for v in found.group(1).split(" x ")]
    # FWHM = 2.355 sigma: 1.41 um in z, 0.35 um in y and x (the bead alone is 1 um wide).
    np.testing.assert_allclose(fwhm, [1.41, 0.35, 0.35], rtol=0.1)
    assert "size of the bead" in widget.report.value


def test_clipped_point_light_warns(make_napari_viewer, qtbot, errors, notices):
    viewer = make_napari_viewer()
    _, light, _ = make_defocused_photo()
    clipped = np.clip(light.astype(np.int32) * 3, 0, 255).astype(np.uint8)
    viewer.add_image(clipped, name="led", rgb=True)
    widget = dock(viewer, PointSourceWidget)
    widget.photo.value = viewer.layers["led"]
    measure(widget, qtbot)
    assert errors == []
    assert len(notices) == 1 and "clipped" in notices[0]
    assert "led PSF" in viewer.layers


def test_fewer_lights_than_asked_are_said(make_napari_viewer, qtbot, errors, notices):
    # Five sources asked of a photo of one: one was used, and nothing said so.
    viewer = make_napari_viewer()
    _, light, _ = make_defocused_photo()
    viewer.add_image(np.pad(light, [(40, 40), (40, 40), (0, 0)], mode="edge"), rgb=True)
    widget = dock(viewer, PointSourceWidget)
    widget.photo.value = viewer.layers[0]
    widget.sources.value = 5
    measure(widget, qtbot)
    assert errors == []
    assert len(notices) == 1 and "1 of the 5 sources asked for" in notices[0]


def test_psf_widget_without_light_is_a_notification(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 40), np.float32), name="dark")
    widget = dock(viewer, PointSourceWidget)
    widget.photo.value = viewer.layers["dark"]
    measure(widget, qtbot)
    assert len(errors) == 1 and "no light" in errors[0]
    assert len(viewer.layers) == 1


def test_labels_layer_marks_bad_pixels(make_napari_viewer, qtbot, errors):
    from tests.test_api import night_scene

    viewer = make_napari_viewer()
    photo, psf, _, _ = night_scene(np.random.default_rng(2))
    stuck = photo.copy()
    bad = np.zeros(photo.shape, np.uint8)
    bad[::9, ::7] = 1
    # Dead: hot pixels are found without a mask.
    stuck[bad == 1] = 0
    viewer.add_image(stuck, name="night")
    viewer.add_image(psf, name="psf")
    viewer.add_labels(bad, name="dead pixels")
    widget = dock_on(viewer, viewer.layers["night"], viewer.layers["psf"])
    widget.bad_pixels.value = viewer.layers["dead pixels"]
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["night deblurred (admm_tv)"]
    # The painted pixels are the ones left out, where they are: the result
    # is the engine's with that mask, not with it one pixel aside.
    iterations = widget.max_iter.value
    masked = deblur(stuck, psf, bad_pixels=bad, max_iter=iterations)
    aside = deblur(stuck, psf, bad_pixels=np.roll(bad, 1, axis=1), max_iter=iterations)
    np.testing.assert_allclose(result.data, masked, atol=1e-3)
    assert np.abs(result.data - aside).mean() > 1
    assert result.metadata["deblur"]["left_out"] == np.count_nonzero((bad == 1) | (photo >= 253))
    assert "clipped, hot or bad samples left out" in widget.report.value
    # Painted at another scale, the same labels mark other pixels of the
    # image: refused (only a different shape was).
    viewer.layers["dead pixels"].scale = (2.0, 2.0)
    run_to_end(widget, qtbot)
    assert len(errors) == 1 and "another scale or position" in errors[0]


def make_model(widget, qtbot) -> None:
    """Click the PSF model's button and wait for its thread."""
    widget.make_button.native.click()
    assert not widget.make_button.enabled
    qtbot.waitUntil(lambda: widget.make_button.enabled, timeout=60_000)


def test_psf_model_in_too_small_a_box_is_said(make_napari_viewer, qtbot, notices):
    # NA 0.05 on 41 pixels of 0.065 um: a flat box, made without a word.
    viewer = make_napari_viewer()
    widget = dock(viewer, PSFModelWidget)
    make_model(widget, qtbot)
    assert notices == []
    widget.na.value = 0.05
    make_model(widget, qtbot)
    assert len(notices) == 1 and "across and along the axis" in notices[0]


def test_psf_model_widget_makes_a_scaled_layer_that_deblurs(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    widget = dock(viewer, PSFModelWidget)
    widget.na.value, widget.immersion.value, widget.sample.value = 1.0, 1.33, 1.33
    widget.dz.value, widget.dxy.value = 0.3, 0.1
    widget.planes.value, widget.side.value = 15, 15
    make_model(widget, qtbot)
    assert errors == []
    (layer,) = viewer.layers
    assert layer.data.shape == (15, 15, 15) and abs(layer.data.sum() - 1) < 1e-4
    np.testing.assert_allclose(layer.scale, (0.3, 0.1, 0.1))
    # Confocal is narrower than widefield.
    widget.kind.value = "confocal"
    make_model(widget, qtbot)
    confocal = viewer.layers[-1].data
    assert confocal[7, 7, 7] > layer.data[7, 7, 7]
    # A water sample 5 um under oil: the focus moves, the axial profile is lopsided.
    widget.kind.value = "widefield"
    widget.immersion.value, widget.sample.value, widget.depth.value = 1.518, 1.33, 5.0
    make_model(widget, qtbot)
    axial = viewer.layers[-1].data[:, 7, 7]
    assert np.argmax(axial) != 7 and np.abs(axial - axial[::-1]).max() > 0.5 * axial.max()
    # An objective with the NA above the immersion's index is refused, not crashed.
    widget.kind.value, widget.na.value, widget.immersion.value = "widefield", 1.4, 1.33
    make_model(widget, qtbot)
    assert len(errors) == 1 and "na" in errors[0]

    # The model PSF deblurs a stack it blurred, scales and all.
    scene = np.zeros((15, 40, 40))
    scene[5:10, 15:25, 18:22] = 100
    blurred = Convolution(layer.data, scene.shape, boundary="zero").apply(scene) + 5
    stack = viewer.add_image(blurred.astype(np.float32), name="stack", scale=(0.3, 0.1, 0.1))
    deblur_widget = dock(viewer)
    deblur_widget.image.value = stack
    deblur_widget.psf.value = layer
    run_to_end(deblur_widget, qtbot)
    (result,) = [lay.data for lay in viewer.layers if lay.name.startswith("stack deblurred")]
    assert np.abs(result - scene - 5).mean() < 0.7 * np.abs(blurred - scene - 5).mean()


def test_time_series_layer_is_deblurred_frame_by_frame(
    make_napari_viewer, qtbot, errors, monkeypatch, rng
):
    viewer = make_napari_viewer()
    psf = gaussian_psf((1.5, 1.2, 1.2), ndim=3)
    scene = np.zeros((3, 16, 32, 32))
    for t in range(3):
        scene[t, 6:10, 8 + 4 * t : 14 + 4 * t, 10:16] = 60
    blurred = np.stack([Convolution(psf, s.shape, boundary="zero").apply(s) for s in scene])
    series = rng.poisson(np.clip(blurred, 0, None) + 2).astype(np.float32)
    layer = viewer.add_image(series, name="movie", scale=(10, 0.3, 0.1, 0.1))
    viewer.add_image(psf.astype(np.float32), name="psf")
    widget = dock(viewer)
    widget.image.value, widget.psf.value = layer, viewer.layers["psf"]
    # Its steps are not kept: each would be a copy of the series (its frames
    # mixed along the iterations), frames x iterations in all.
    informed = []
    monkeypatch.setattr(_widget, "show_info", informed.append)
    widget.keep_iterations.value = True
    # Nor shown each: the display fell behind (a copy of the series a step);
    # the first and the last are always shown.
    monkeypatch.setattr(_widget, "SERIES_INTERVAL", 1e9)
    shown = []
    widget._on_step = lambda item, show=widget._on_step: shown.append(show(item))
    run_to_end(widget, qtbot)
    assert len(shown) == 2
    assert errors == [] and any("not for a time series" in text for text in informed)
    (result,) = [lay for lay in viewer.layers if lay.name.startswith("movie deblurred")]
    assert result.data.shape == series.shape
    np.testing.assert_allclose(result.scale, layer.scale)
    assert "frame 3 of 3" in widget.report.value and widget.progress.value == 100
    truth = scene + 2
    for t in range(3):
        assert np.abs(result.data[t] - truth[t]).mean() < np.abs(series[t] - truth[t]).mean()


def test_closing_the_viewer_stops_a_run(make_napari_viewer, qtbot, rng):
    # The thread went on for a minute, each step raising on deleted widgets.
    viewer = make_napari_viewer()
    series = ndimage.gaussian_filter(rng.random((30, 128, 128)), (0, 2, 2)).astype(np.float32)
    viewer.add_image(series, name="series")
    viewer.add_image(gaussian_psf(2.0).astype(np.float32), name="psf")
    widget = dock_on(viewer, viewer.layers["series"], viewer.layers["psf"])
    widget.run_button.native.click()
    worker = widget.worker
    qtbot.waitUntil(lambda: widget._result is not None, timeout=60_000)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)


def test_a_refused_run_clears_the_last_report(make_napari_viewer, qtbot, errors):
    viewer, widget = on_photo_sample(make_napari_viewer)
    widget.max_iter.value = 3
    run_to_end(widget, qtbot)
    assert widget.progress.value == 100
    widget.weight.value = "-1"
    widget.run()
    assert len(errors) == 1
    assert widget.report.value.startswith("not run: weight") and widget.progress.value == 0


def test_the_sample_opens_with_its_image_and_light_chosen(make_napari_viewer):
    # Both lists started on the sample's hidden truth: a run was refused,
    # or deblurred the truth once the PSF alone was changed.
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deblur", "defocused_photo")
    widget = dock(viewer)
    assert widget.image.value is viewer.layers["defocused photo"]
    assert widget.psf.value is viewer.layers["point light"]
    assert dock(viewer, PointSourceWidget).photo.value is viewer.layers["point light"]
    # Two layers chosen stay chosen.
    widget.image.value, widget.psf.value = viewer.layers["point light"], widget.image.value
    viewer.add_image(np.zeros((4, 4)), name="other")
    widget.reset_choices()
    assert widget.image.value is viewer.layers["point light"]


def test_a_nan_in_the_psf_layer_is_said_of_it(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((64, 64)), name="image")
    psf = gaussian_psf(1.5)
    psf[0, 0] = np.nan
    viewer.add_image(psf, name="bad psf")
    widget = dock_on(viewer, viewer.layers["image"], viewer.layers["bad psf"])
    widget.run()
    assert len(errors) == 1 and "PSF layer 'bad psf'" in errors[0]
    assert "point-light photo" in errors[0]


def test_varying_blur_with_an_rgba_photo_of_the_lights(
    make_napari_viewer, qtbot, errors, varying_scene
):
    # Its alpha was taken for a fourth colour: NaN, "psf contains NaN".
    blurred, photo, sharp = varying_scene
    viewer = make_napari_viewer()
    rgb = np.repeat(blurred[..., None], 3, axis=-1)
    viewer.add_image(rgb, name="tilted", rgb=True)
    lights = np.concatenate(
        [np.repeat(photo[..., None], 3, axis=-1), np.ones_like(rgb[..., :1])], -1
    )
    viewer.add_image(lights, name="lights", rgb=True)
    widget = dock_on(viewer, viewer.layers["tilted"], viewer.layers["lights"])
    widget.varying.value = True
    widget.max_iter.value = 20
    run_to_end(widget, qtbot)
    assert errors == []
    (result,) = [layer for layer in viewer.layers if layer.name.startswith("tilted deblurred")]
    assert result.metadata["deblur"]["psfs"] == 9
    assert psnr(sharp, result.data[..., 0], 1) > psnr(sharp, blurred, 1) + 1


def test_varying_blur_checkbox_shows_the_psfs(make_napari_viewer, qtbot, errors, varying_scene):
    blurred, _, sharp = varying_scene
    viewer, widget = on_varying_scene(make_napari_viewer, varying_scene)
    run_to_end(widget, qtbot)
    assert errors == []
    placed = viewer.layers["lights PSFs"].data
    peaks = ndimage.label(placed > 0.5)[1]
    assert peaks == 9
    (result,) = [layer for layer in viewer.layers if layer.name.startswith("tilted deblurred")]
    assert result.metadata["deblur"]["psfs"] == 9
    assert psnr(sharp, result.data, 1) > psnr(sharp, blurred, 1) + 1.5


def test_estimate_psf_button_adds_the_psf_layer(make_napari_viewer, qtbot, errors, rng):
    from tests.engine.test_blind import camera_made

    viewer = make_napari_viewer()
    viewer.add_image(camera_made(defocus_psf(5.0), rng), name="soft")
    widget = dock(viewer)
    widget.image.value = viewer.layers["soft"]
    widget.estimate_button.native.click()
    qtbot.waitUntil(lambda: "soft estimated PSF" in viewer.layers, timeout=60_000)
    assert errors == []
    assert widget.psf.value is viewer.layers["soft estimated PSF"]
    assert "defocus, radius" in widget.report.value
    estimated = viewer.layers["soft estimated PSF"].data
    assert rms_radius(estimated) == pytest.approx(rms_radius(defocus_psf(5.0)), rel=0.1)
    qtbot.waitUntil(lambda: widget.estimate_button.enabled, timeout=10_000)


def test_estimate_psf_reads_a_jpeg_layer_on_the_detail_it_kept(
    make_napari_viewer, qtbot, tmp_path, errors, rng
):
    from PIL import Image

    from tests.engine.test_blind import camera_made

    Image.fromarray(camera_made(gaussian_psf(2.0), rng)).save(tmp_path / "soft.jpg", quality=90)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(tmp_path / "soft.jpg")
    widget = dock(viewer)
    widget.image.value = layer
    widget.estimate_button.native.click()
    qtbot.waitUntil(lambda: "soft estimated PSF" in viewer.layers, timeout=60_000)
    assert errors == []
    # Read on the whole band: a disc of 0.8 px.
    assert "gaussian, sigma" in widget.report.value
    estimated = viewer.layers["soft estimated PSF"].data
    assert rms_radius(estimated) == pytest.approx(rms_radius(gaussian_psf(2.0)), rel=0.1)
    qtbot.waitUntil(lambda: widget.estimate_button.enabled, timeout=10_000)


def test_refine_psf_checkbox(make_napari_viewer, qtbot, errors, rng):
    from tests.engine.test_blind import camera_made

    viewer = make_napari_viewer()
    viewer.add_image(camera_made(defocus_psf(5.0), rng), name="soft")
    viewer.add_image(defocus_psf(6.0).astype(np.float32), name="psf")
    widget = dock_on(viewer, viewer.layers["soft"], viewer.layers["psf"])
    widget.refine_psf.value = True
    run_to_end(widget, qtbot)
    assert errors == []
    assert "PSF refined on the image (magnified 0.8" in widget.report.value
    (result,) = [layer for layer in viewer.layers if layer.name.startswith("soft deblurred")]
    assert result.metadata["deblur"]["psf_refined"] > 0.05
    # The refined PSF is shown: shrunk towards the true disc of radius 5.
    refined = viewer.layers["soft refined PSF"].data
    assert refined.sum() == pytest.approx(1, rel=1e-4)
    assert rms_radius(refined) < 0.9 * rms_radius(defocus_psf(6.0))


def test_a_layer_too_large_for_memory_is_deblurred_in_chunks(
    make_napari_viewer, qtbot, errors, monkeypatch, rng
):
    import dask.array as da

    from napari_deblur.engine import memory

    viewer = make_napari_viewer()
    scene = cubes(rng, (3, 512, 512), 400, 300, (1, 4, 4))[1] + 10
    psf = gaussian_psf(1.2)
    blurred = rng.poisson(Convolution(psf, scene.shape, boundary="reflect").apply(scene))
    image = viewer.add_image(blurred.astype(np.float32), name="frame")
    viewer.add_image(psf.astype(np.float32), name="psf")
    # RL-TV on the whole frame needs about 23 MB.
    monkeypatch.setattr(memory, "available_bytes", lambda: 12 * 10**6)
    widget = dock_on(viewer, image, viewer.layers["psf"])
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["frame deblurred (chunked)"]
    assert isinstance(result.data, da.Array) and result.data.shape == blurred.shape
    assert len(result.data.chunks[-1]) > 1
    assert psnr(scene, result.data.compute(), 300) > psnr(scene, blurred, 300) + 2


def test_a_run_that_does_not_fit_even_in_chunks_is_a_notification(
    make_napari_viewer, qtbot, errors, monkeypatch
):
    from napari_deblur.engine import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 10**4)
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((200, 200)).astype(np.float32), name="img")
    viewer.add_image(gaussian_psf(2.0).astype(np.float32), name="psf")
    widget = dock_on(viewer, viewer.layers["img"], viewer.layers["psf"])
    run_to_end(widget, qtbot)
    assert len(errors) == 1 and "Deblur failed" in errors[0]
    assert len(viewer.layers) == 2


def test_a_dask_layer_gets_a_lazy_deblurred_layer(make_napari_viewer, qtbot, errors, rng):
    import dask.array as da

    viewer = make_napari_viewer()
    scene = cubes(rng, (16, 96, 96), 60, 300, (2, 4, 4)) + 10
    psf = gaussian_psf((1.0, 1.2, 1.2))
    blurred = rng.poisson(Convolution(psf, scene.shape, boundary="reflect").apply(scene))
    stack = da.from_array(blurred.astype(np.float32), chunks=(16, 48, 48))
    image = viewer.add_image(stack, name="stack", scale=(0.3, 0.1, 0.1))
    viewer.add_image(psf.astype(np.float32), name="psf")
    widget = dock_on(viewer, image, viewer.layers["psf"])
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["stack deblurred (chunked)"]
    assert isinstance(result.data, da.Array) and result.data.shape == blurred.shape
    np.testing.assert_allclose(result.scale, image.scale)
    assert "chunks" in widget.report.value
    assert psnr(scene, result.data.compute(), 300) > psnr(scene, blurred, 300) + 2


def test_cancel_stops_the_lazy_plan(make_napari_viewer, qtbot, errors, rng):
    import dask.array as da

    viewer = make_napari_viewer()
    blurred = rng.poisson(100 + 50 * rng.random((64, 96))).astype(np.float32)
    image = viewer.add_image(da.from_array(blurred, chunks=48), name="frame")
    viewer.add_image(gaussian_psf(1.2).astype(np.float32), name="psf")
    widget = dock_on(viewer, image, viewer.layers["psf"])
    widget.run_button.native.click()
    widget.worker.yielded.connect(lambda fraction: widget.cancel())
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=120_000)
    assert errors == []
    assert [layer.name for layer in viewer.layers] == ["frame", "psf"]
    assert "cancelled" in widget.report.value


def test_result_lies_where_the_input_lies(make_napari_viewer, qtbot, errors):
    # The result kept only the scale, translation and units: a rotated or
    # sheared photo's result lay elsewhere, and the axis names were lost.
    viewer = make_napari_viewer()
    blurred, light, _ = make_defocused_photo()
    grey = blurred.mean(axis=-1).astype(np.float32)[:96, :96]
    placement = {
        "scale": (0.5, 0.5),
        "translate": (3.0, 4.0),
        "rotate": 30,
        "shear": [0.2],
        "units": ("um", "um"),
        "axis_labels": ("y_cam", "x_cam"),
    }
    image = viewer.add_image(grey, name="tilted", **placement)
    viewer.add_image(light.mean(axis=-1).astype(np.float32), name="light")
    widget = dock_on(viewer, image, viewer.layers["light"])
    widget.max_iter.value = 3
    widget.keep_iterations.value = True
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["tilted deblurred (admm_tv)"]
    iterations = viewer.layers[f"{result.name} iterations"]
    corner = np.array([63.0, 63.0])
    np.testing.assert_allclose(result.data_to_world(corner), image.data_to_world(corner))
    np.testing.assert_allclose(
        iterations.data_to_world([0.0, *corner])[1:], image.data_to_world(corner)
    )
    assert result.axis_labels == image.axis_labels and result.units == image.units


def test_rgba_keeps_its_alpha_and_the_users_grid(make_napari_viewer, qtbot, errors):
    # The alpha was deblurred as a fourth colour (and its clipped 255s left
    # out of the fit); every run turned the viewer's grid off.
    viewer = make_napari_viewer()
    blurred, light, _ = make_defocused_photo()
    alpha = np.linspace(0, 255, blurred[..., 0].size).reshape(blurred.shape[:2]).astype(np.uint8)
    image = viewer.add_image(np.dstack([blurred, alpha]), name="rgba", rgb=True)
    viewer.add_image(light, name="light", rgb=True)
    viewer.canvas.grid.enabled = True
    widget = dock_on(viewer, image, viewer.layers["light"])
    widget.max_iter.value = 3
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["rgba deblurred (admm_tv)"]
    assert result.data.shape == image.data.shape and result.data.dtype == np.uint8
    np.testing.assert_array_equal(result.data[..., 3], alpha)
    *_, last = deblur_steps(blurred, light, channel_axis=-1, max_iter=1)
    assert result.metadata["deblur"]["left_out"] == last.settings["left_out"]
    assert viewer.canvas.grid.enabled


def test_a_dask_rgb_layer_keeps_its_type(make_napari_viewer, qtbot, errors):
    import dask.array as da

    viewer = make_napari_viewer()
    blurred, light, _ = make_defocused_photo()
    image = viewer.add_image(da.from_array(blurred, chunks=(64, 64, 3)), name="lazy", rgb=True)
    viewer.add_image(light, name="light", rgb=True)
    widget = dock_on(viewer, image, viewer.layers["light"])
    run_to_end(widget, qtbot)
    assert errors == []
    result = viewer.layers["lazy deblurred (chunked)"]
    assert result.data.dtype == np.uint8 and result.data.shape == blurred.shape


def test_a_varying_run_that_fails_adds_no_layer(make_napari_viewer, errors, varying_scene):
    viewer, widget = on_varying_scene(make_napari_viewer, varying_scene)
    widget.method.value = "wiener"
    widget.run()
    assert len(errors) == 1 and "wiener" in errors[0]
    assert [layer.name for layer in viewer.layers] == ["tilted", "lights"]


def test_a_colour_time_series_is_deblurred_frame_by_frame(make_napari_viewer, qtbot, errors):
    # It was refused: "psf has 2 axes but the image has 3 spatial axes".
    viewer = make_napari_viewer()
    blurred, light, sharp = make_defocused_photo()
    movie = np.stack([blurred, blurred[::-1]])
    layer = viewer.add_image(movie, name="movie", rgb=True)
    viewer.add_image(light, name="light", rgb=True)
    widget = dock_on(viewer, layer, viewer.layers["light"])
    widget.max_iter.value = 5
    run_to_end(widget, qtbot)
    assert errors == []
    (result,) = [lay for lay in viewer.layers if lay.name.startswith("movie deblurred")]
    assert result.rgb and result.data.shape == movie.shape and result.data.dtype == np.uint8
    assert "frame 2 of 2" in widget.report.value
    assert psnr(sharp[::-1], result.data[1], 255) > psnr(sharp, blurred, 255) + 1


def test_a_second_run_while_one_runs_is_refused(make_napari_viewer, qtbot, monkeypatch):
    # Two calls before the thread had started launched two workers into one layer.
    shown = []
    monkeypatch.setattr(_widget, "show_info", shown.append)
    viewer, widget = on_photo_sample(make_napari_viewer)
    widget.max_iter.value = 3
    widget.run()
    first = widget.worker
    widget.run()
    assert widget.worker is first and any("already running" in m for m in shown)
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=120_000)


def test_a_compressed_jpeg_layer_is_deblurred_from_the_detail_it_kept(
    make_napari_viewer, qtbot, tmp_path, errors
):
    from PIL import Image

    blurred, light, sharp = make_defocused_photo()
    Image.fromarray(blurred).save(tmp_path / "q90.jpg", quality=90)
    Image.fromarray(blurred).save(tmp_path / "q98.jpg", quality=98)
    viewer = make_napari_viewer()
    viewer.add_image(light, name="light", rgb=True)
    reports = {}
    for name in ("q98", "q90"):
        (layer,) = viewer.open(tmp_path / f"{name}.jpg")
        widget = dock_on(viewer, layer, viewer.layers["light"])
        run_to_end(widget, qtbot)
        reports[name] = widget.report.value
    assert errors == []
    assert "JPEG kept" in reports["q90"] and "JPEG kept" not in reports["q98"]
    (result,) = [lay.data for lay in viewer.layers if lay.name.startswith("q90 deblurred")]
    assert psnr(sharp, result, 255) > psnr(sharp, blurred, 255) + 2


def test_a_layer_saved_as_tiff_keeps_its_voxel_size(make_napari_viewer, tmp_path, rng):
    # napari's own writer kept the pixels alone: a deblurred stack came back
    # without its voxel size.
    viewer = make_napari_viewer()
    stack = rng.random((6, 8, 10)).astype(np.float32)
    viewer.add_image(stack, name="stack", scale=(0.3, 0.1, 0.1), units="um")
    series = rng.random((3, 4, 8, 10)).astype(np.float32)
    viewer.add_image(series, name="series", scale=(1, 0.5, 0.2, 0.2), units="nm")
    viewer.layers["series"].axis_labels = ("t", "z", "y", "x")
    # Reopened in micrometres (the series' nanometres too).
    for name, scale in (("stack", (0.3, 0.1, 0.1)), ("series", (1, 5e-4, 2e-4, 2e-4))):
        path = str(tmp_path / f"{name}.tif")
        viewer.layers[name].save(path, plugin="napari-deblur")
        (reopened,) = viewer.open(path, plugin="napari-deblur")
        np.testing.assert_array_equal(reopened.data, viewer.layers[name].data)
        np.testing.assert_allclose(reopened.scale, scale, rtol=1e-6)
    assert viewer.layers["series [1]"].axis_labels[0] == "t"
    # Channels labelled c: a hyperstack, each channel's voxels as they were
    # (the first three sizes were given to z, y and x, the first axis to time).
    viewer.add_image(
        series[:2], name="cells", scale=(1, 0.5, 0.1, 0.2), units="um", axis_labels="czyx"
    )
    viewer.layers["cells"].save(str(tmp_path / "cells.tif"), plugin="napari-deblur")
    channels = viewer.open(tmp_path / "cells.tif", plugin="napari-deblur")
    assert [layer.ndim for layer in channels] == [3, 3]
    np.testing.assert_allclose(channels[1].scale, (0.5, 0.1, 0.2), rtol=1e-6)
    # Four axes without labels: their sizes cannot be told apart.
    viewer.add_image(series, name="unlabelled", scale=(1, 0.5, 0.2, 0.2), units="um")
    with pytest.warns(UserWarning, match="not labelled t, c, z, y, x"):
        viewer.layers["unlabelled"].save(str(tmp_path / "u.tif"), plugin="napari-deblur")

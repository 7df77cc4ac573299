import warnings

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_deblur.engine.color import linear_to_srgb
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.point_source import PSFQualityWarning, psf_from_point_source
from napari_deblur.engine.psf import (
    centroid,
    defocus_psf,
    gaussian_psf,
    motion_psf,
    resize_psf,
    widefield_psf,
)


def relative_error(measured, truth):
    common = tuple(max(a, b) for a, b in zip(measured.shape, truth.shape))
    a, b = resize_psf(measured, common), resize_psf(truth, common)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def camera_photo(
    model, rng, *, size=80, positions=((35.3, 41.7),), peak_snr=100.0, background=0.03
):
    """Point lights photographed: each rendered at its sub-pixel position, plus
    an uneven background and noise of standard deviation peak / peak_snr."""
    frame = np.zeros((size, size))
    for position in positions:
        anchor = np.round(position).astype(int)
        spot = model(tuple(np.array(position) - anchor))
        k = np.array(spot.shape)
        start = anchor - k // 2
        frame[start[0] : start[0] + k[0], start[1] : start[1] + k[1]] += spot
    frame /= frame.max()
    rows, cols = np.mgrid[:size, :size] / size
    light = frame + background * (1 + rows + 0.5 * cols)
    return light + rng.normal(0, 1 / peak_snr, light.shape)


def lens(psf):
    """What a lens adds to any blur: a little diffraction and aberration."""
    return ndimage.gaussian_filter(psf, 0.7)


# A PSF as a camera records it is never sharper than its lens allows; a
# razor-sharp model cannot be moved by a fraction of a pixel without error.
MODELS = {
    "defocus": (lambda offset: lens(defocus_psf(6.0, offset=offset, shape=(17, 17))), 0.05),
    "gaussian": (lambda offset: gaussian_psf(2.5, offset=offset, shape=(21, 21)), 0.05),
    "motion": (lambda offset: lens(motion_psf(15, 30, offset=offset, shape=(15, 21))), 0.05),
}


@pytest.mark.parametrize("level", [-0.5, 0.0, 0.5])
def test_noise_clipped_at_zero_is_background(level, rng):
    # A dark-subtracted photo, or a float one held to 0..1, loses its noise's
    # negative half: read at half its size and left in, its positive half
    # grew the PSF's box (41 x 55 for 15 x 15, nine lights found as two).
    model, tolerance = MODELS["gaussian"]
    positions = [(20.3, 20.6), (20.8, 59.1), (59.4, 20.2), (59.7, 60.3)]
    photo = camera_photo(model, rng, positions=positions, background=0.0) + level / 100
    unclipped = psf_from_point_source(photo, sources="auto")
    clipped = psf_from_point_source(np.clip(photo, 0, None), sources="auto")
    assert clipped.sources == unclipped.sources == 4
    assert clipped.psf.shape[0] <= unclipped.psf.shape[0] + 2
    assert relative_error(clipped.psf, gaussian_psf(2.5)) < 2 * tolerance


@pytest.mark.parametrize("name", MODELS)
def test_photo_gives_the_psf(name, rng):
    model, tolerance = MODELS[name]
    photo = camera_photo(model, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PSFQualityWarning)
        measured = psf_from_point_source(photo)
    psf = measured.psf
    assert psf.shape[0] % 2 == 1 and psf.shape[1] % 2 == 1
    assert psf.sum() == pytest.approx(1) and psf.min() >= 0
    np.testing.assert_allclose(centroid(psf), [n // 2 for n in psf.shape], atol=0.05)
    assert relative_error(psf, model(None)) < tolerance
    truth_centre = (
        np.array([35.3, 41.7]) + centroid(model(None)) - [n // 2 for n in model(None).shape]
    )
    np.testing.assert_allclose(measured.centres[0], truth_centre, atol=0.1)
    assert measured.sources == 1 and measured.clipped == 0
    # The photo's peak is 1 and its noise 1 / 100.
    assert measured.snr == pytest.approx(100, rel=0.3)


def test_averaging_sources_lowers_the_error(rng):
    model = MODELS["defocus"][0]
    positions = ((20.3, 20.6), (20.8, 60.1), (60.4, 19.9), (59.7, 60.4))
    one = psf_from_point_source(camera_photo(model, rng, positions=positions[:1], peak_snr=30))
    four = psf_from_point_source(
        camera_photo(model, rng, positions=positions, peak_snr=30), sources="auto"
    )
    assert four.sources == 4
    assert relative_error(four.psf, model(None)) < 0.75 * relative_error(one.psf, model(None))
    found = sorted(map(tuple, np.round(four.centres - 0.0, 0)))
    assert found == sorted(map(tuple, np.round(np.array(positions), 0)))


def test_rois_pick_the_sources(rng):
    model = MODELS["gaussian"][0]
    photo = camera_photo(model, rng, positions=((25.2, 25.4), (55.6, 54.9)))
    photo[70:78, 5:13] += 5  # a bright lamp outside the regions
    measured = psf_from_point_source(photo, rois=[((10, 40), (10, 40)), ((40, 70), (40, 70))])
    assert measured.sources == 2
    assert relative_error(measured.psf, model(None)) < 0.05


def test_clean_psf_changes_little():
    for psf in (defocus_psf(5.0, shape=(15, 15)), gaussian_psf(1.5), motion_psf(9, 45)):
        cleaned = psf_from_point_source(psf).psf
        assert relative_error(cleaned, psf) < 0.02
        # The result is not a view of the caller's array.
        assert not np.shares_memory(cleaned, psf)


@pytest.mark.parametrize("shape", [(2, 2), (4, 4), (1, 6), (4, 5)])
def test_even_model_kernels_are_the_same_filter(shape):
    # A normalised box of even width was taken for a photo, re-centred and
    # cut to an odd box no larger than its frame: 2 x 2 became [[1]].
    kernel = np.ones(shape) / np.prod(shape)
    psf = psf_from_point_source(kernel).psf
    assert all(n % 2 == 1 for n in psf.shape)
    image = np.random.default_rng(0).random((16, 16))
    given = Convolution(kernel, image.shape, boundary="periodic").apply(image)
    cleaned = Convolution(psf, image.shape, boundary="periodic").apply(image)
    np.testing.assert_allclose(cleaned, given, atol=1e-12)


def test_clean_3d_psf_changes_little():
    psf = widefield_psf(
        (21, 25, 25), wavelength=0.5, na=1.0, voxel_size=(0.2, 0.08, 0.08), refractive_index=1.33
    )
    assert relative_error(psf_from_point_source(psf).psf, psf) < 0.05


@pytest.mark.parametrize("shape", [(5, 5), (1, 7), (1, 5, 5)])
def test_model_kernels_that_fill_their_box_are_kept(shape):
    # A box blur or a one-row motion, unnormalised: noise-free floats whose
    # border is as bright as their centre are light to the edge, not a
    # background (they were refused: "no light above its background"), and
    # no sensor clipped them.
    with warnings.catch_warnings():
        warnings.simplefilter("error", PSFQualityWarning)
        measured = psf_from_point_source(np.full(shape, 3.0))
    np.testing.assert_allclose(measured.psf, np.full(shape, 1 / np.prod(shape)))
    assert measured.clipped == 0
    # A flat region of a larger array is no kernel: it holds no light.
    with pytest.raises(ValueError, match="no light"):
        psf_from_point_source(np.full((40, 40), 3.0), rois=[((5, 20), (5, 20))])
    # A box two samples thick inside the image was said not to overlap it.
    with pytest.raises(ValueError, match="under 3 samples .* too thin"):
        psf_from_point_source(np.full((40, 40), 3.0), rois=[((5, 7), (5, 20))])
    # A count of lights with regions that each hold one was dropped silently.
    with pytest.raises(ValueError, match="sources=3 .* rois .* one or the other"):
        psf_from_point_source(np.full((40, 40), 3.0), rois=[((5, 20), (5, 20))], sources=3)


def test_one_plane_of_a_3d_psf_is_a_psf():
    plane = gaussian_psf([1.0, 1.5, 1.5])[4:5]
    # It was refused: the noise of an axis of one sample was NaN.
    measured = psf_from_point_source(plane)
    margin = [(0, 0)] + [
        ((n - m) // 2,) * 2 for n, m in zip(plane.shape[1:], measured.psf.shape[1:])
    ]
    assert relative_error(np.pad(measured.psf, margin), plane / plane.sum()) < 0.02


def test_bead_stack(rng):
    psf = gaussian_psf((2.5, 1.2, 1.2), ndim=3)
    stack = np.zeros((40, 48, 48))
    stack[10:31, 18:29, 20:31] = gaussian_psf((2.5, 1.2, 1.2), ndim=3, offset=(0.3, -0.2, 0.4))
    stack = stack / stack.max() * 1000 + 20
    stack = rng.poisson(stack).astype(np.uint16)
    measured = psf_from_point_source(stack)
    assert measured.psf.ndim == 3
    assert measured.fwhm[0] == pytest.approx(2.355 * 2.5, rel=0.1)
    assert measured.fwhm[1] == pytest.approx(2.355 * 1.2, rel=0.15)
    assert relative_error(measured.psf, psf) < 0.1


def bead_stack(psf, rng, diameter, spacing, positions):
    """Beads of `diameter` (in the unit of `spacing`) imaged through `psf` on a camera offset."""
    ball = defocus_psf(diameter / 2 / np.broadcast_to(spacing, (3,)), edge=0.05)
    scene = np.zeros((64, 80, 80))
    for position in positions:
        scene[position] = 1
    light = ndimage.convolve(ndimage.convolve(scene, ball, mode="constant"), psf, mode="constant")
    return rng.poisson(light / light.max() * 3000 + 100).astype(np.uint16)


def test_bead_size_is_taken_out(rng):
    # Three 1 um beads on 0.2 x 0.1 x 0.1 um voxels, a PSF of FWHM 1.4 x 0.35 x 0.35 um:
    # the beads look twice as wide as the PSF laterally.
    spacing = (0.2, 0.1, 0.1)
    psf = gaussian_psf((3.0, 1.5, 1.5), ndim=3, shape=(25, 13, 13))
    stack = bead_stack(psf, rng, 1.0, spacing, [(30, 20, 25), (34, 55, 30), (32, 35, 60)])
    as_seen = psf_from_point_source(stack, sources="auto")
    measured = psf_from_point_source(stack, sources="auto", bead_diameter=1.0, spacing=spacing)
    assert measured.sources == 3
    assert relative_error(as_seen.psf, psf) > 0.5
    assert relative_error(measured.psf, psf) < 0.1
    np.testing.assert_allclose(measured.fwhm, 2.355 * np.array([3.0, 1.5, 1.5]), rtol=0.1)
    assert "size of the bead (1 um) removed" in measured.report(spacing, "um")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bead_diameter": -1.0}, "bead_diameter"),
        ({"bead_diameter": 1.0, "spacing": (0.1, 0.1)}, "spacing"),
        ({"bead_diameter": 50.0}, "larger than the measured spot"),
        # A unit mistaken (nm for um): said before a ball of 10^27 voxels is made.
        ({"bead_diameter": 1000.0, "spacing": 0.1}, "larger than the photo"),
    ],
)
def test_bad_bead_arguments(kwargs, message, rng):
    stack = bead_stack(gaussian_psf((3.0, 1.5, 1.5), ndim=3), rng, 0.5, 0.1, [(32, 40, 40)])
    with pytest.raises(ValueError, match=message):
        psf_from_point_source(stack, **kwargs)


def test_real_bead_stack(shared_data):
    stack = tifffile.imread(shared_data / "microscopy-bead" / "data.tif")
    measured = psf_from_point_source(stack)
    # The stack is smooth (averaged down) but sits on a camera offset of about 200 counts.
    assert 200 < measured.background < stack.min() + 20
    assert measured.psf.min() >= 0 and measured.psf.sum() == pytest.approx(1, rel=1e-5)
    # The bead's focus, not the middle of the stack: the planes where the light
    # through its brightest column exceeds half its peak.
    column = stack[:, 31, 31] - measured.background
    focus = np.flatnonzero(column > column.max() / 2)
    assert focus.min() <= measured.centres[0][0] <= focus.max()


def test_srgb_photo_is_linearised(rng):
    model = MODELS["gaussian"][0]
    linear = np.clip(camera_photo(model, rng, peak_snr=200) * 0.8, 0, 1)
    encoded = np.round(linear_to_srgb(linear) * 255).astype(np.uint8)
    right = psf_from_point_source(encoded)
    wrong = psf_from_point_source(encoded, encoding="linear")
    assert right.encoding == "srgb"
    assert relative_error(right.psf, model(None)) < 0.06
    assert relative_error(wrong.psf, model(None)) > 2 * relative_error(right.psf, model(None))


def test_clipping_is_detected_and_warned(rng):
    model = MODELS["gaussian"][0]
    linear = np.clip(camera_photo(model, rng, peak_snr=200) * 3, 0, 1)
    photo = np.round(linear * 65535).astype(np.uint16)
    with pytest.warns(PSFQualityWarning, match="clipped"):
        measured = psf_from_point_source(photo)
    assert measured.clipped > 10
    assert "clipped" in measured.report()


def test_weak_source_is_warned(rng):
    with pytest.warns(PSFQualityWarning, match="weak"):
        measured = psf_from_point_source(camera_photo(MODELS["gaussian"][0], rng, peak_snr=8))
    assert measured.snr < 20


def test_colour_channels_keep_their_offsets(rng):
    model = MODELS["gaussian"][0]
    channels = [
        camera_photo(model, rng, positions=((35.0, 41.0 + dx),), peak_snr=300)
        for dx in (-0.5, 0, 0.5)
    ]
    measured = psf_from_point_source(np.stack(channels, axis=-1), channel_axis=-1)
    assert measured.psf.shape[0] == 3
    shifts = [centroid(p)[1] for p in measured.psf]
    np.testing.assert_allclose(np.diff(shifts), [0.5, 0.5], atol=0.05)


@pytest.mark.parametrize("name", ["gaussian", "defocus"])
def test_a_grey_photo_stored_as_rgb_gives_the_grey_psf(name, rng):
    # Identical channels share their noise: counted as independent, the sum's
    # noise was read sqrt(3) too low and the PSF took in more of it (17 x 17
    # for the grey photo's 13 x 13).
    photo = camera_photo(MODELS[name][0], rng)
    grey = psf_from_point_source(photo)
    rgb = psf_from_point_source(np.stack([photo] * 3, axis=-1), channel_axis=-1)
    assert rgb.psf.shape[1:] == grey.psf.shape
    np.testing.assert_allclose(rgb.psf[1], grey.psf, atol=1e-6)


def test_a_disc_is_as_wide_as_its_diameter_whatever_sample_is_brightest(rng):
    # The profile went through the brightest sample: on a flat top, any one,
    # a rim's at worst, where it is a chord ("FWHM 11.00 x 1.00" for a disc).
    photo = np.zeros((64, 64))
    disc = defocus_psf(5.5, edge=0.05)
    photo[25:38, 25:38] = disc / disc.max()
    photo += rng.normal(0, 0.005, photo.shape)
    photo[36, 31] = 1.1
    measured = psf_from_point_source(photo)
    np.testing.assert_allclose(measured.fwhm, [11, 11], atol=1)


def test_symmetric_averages_rotations(rng):
    model = MODELS["defocus"][0]
    photo = camera_photo(model, rng, peak_snr=25)
    plain = psf_from_point_source(photo, sources=1)
    symmetric = psf_from_point_source(photo, symmetric=True)
    assert relative_error(symmetric.psf, model(None)) < relative_error(plain.psf, model(None))


def test_report_lines(rng):
    measured = psf_from_point_source(camera_photo(MODELS["gaussian"][0], rng))
    report = measured.report()
    assert "FWHM" in report and "SNR" in report and "1 source" in report


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": np.zeros((30, 30))}, "no light"),
        ({"image": np.full((30, 30), np.nan)}, "NaN"),
        ({"energy": 0}, "energy"),
        ({"sources": 0}, "sources"),
        ({"rois": [((100, 120), (0, 10))]}, "roi"),
        ({"rois": [((0, 10),)]}, "roi"),
        ({"channel_axis": 5}, "channel_axis"),
        ({"energy": "a"}, "energy"),
        ({"bead_diameter": "a"}, "bead_diameter"),
    ],
)
def test_bad_arguments(kwargs, message, rng):
    arguments = {"image": camera_photo(MODELS["gaussian"][0], rng), **kwargs}
    with pytest.raises(ValueError, match=message):
        psf_from_point_source(**arguments)


def test_each_source_keeps_its_own_psf(rng):
    # Two lights with different blur: each keeps its own, the average mixes them.
    small, large = gaussian_psf(1.5, shape=(21, 21)), gaussian_psf(3.0, shape=(21, 21))
    frame = np.zeros((100, 100))
    frame[10:31, 10:31] = small
    frame[60:81, 65:86] = large
    photo = frame / frame.max() + 0.02 + rng.normal(0, 1e-3, frame.shape)
    measured = psf_from_point_source(photo, sources="auto")
    assert measured.sources == 2
    by_size = sorted(measured.each, key=lambda p: p.max(), reverse=True)
    assert relative_error(by_size[0], small) < 0.05
    assert relative_error(by_size[1], large) < 0.1
    np.testing.assert_allclose(measured.each.sum(axis=(1, 2)), 1, rtol=1e-6)
    placed = measured.placed(photo.shape)
    for centre in np.round(measured.centres).astype(int):
        assert placed[tuple(centre)] == pytest.approx(1, abs=0.05)


def test_beads_reaching_the_first_and_last_planes_are_all_averaged(rng):
    # Widefield beads fill every plane of a stack cropped round their focus:
    # their windows reach its first and last planes, and every bead was
    # refused as cut off by the frame, leaving the brightest alone.
    psf = widefield_psf(
        (25, 31, 31), wavelength=0.52, na=1.3, voxel_size=(0.2, 0.065, 0.065),
        refractive_index=1.518,
    )  # fmt: skip
    stack = np.zeros((24, 128, 128))
    for y in (32, 96):
        for x in (32, 96):
            stack[:, y - 15 : y + 16, x - 15 : x + 16] += 2e5 * psf[:24]
    stack = rng.poisson(stack + 100).astype(np.uint16)
    assert psf_from_point_source(stack, sources="auto").sources == 4
    with pytest.warns(PSFQualityWarning, match="4 of the 5 sources"):
        assert psf_from_point_source(stack, sources=5).sources == 4


def test_lights_near_the_edge_are_averaged_and_those_left_out_said(rng):
    # Nine lights, their centres 12 px from the frame's edge, their discs
    # of radius 5 wholly inside: each was refused because the window round
    # it (half its size again) reached the edge, and one light was used.
    disc = defocus_psf(5.0)
    photo = np.full((160, 160), 0.02)
    for y in (12, 80, 147):
        for x in (12, 80, 147):
            photo[y - 6 : y + 7, x - 6 : x + 7] += disc / disc.max() * 0.8
    photo = rng.poisson(photo * 20000) / 20000
    with warnings.catch_warnings():
        warnings.simplefilter("error", PSFQualityWarning)
        assert psf_from_point_source(photo, sources="auto").sources == 9
    # A light cut by the edge is left out, and said to be.
    photo[40:53, 0:7] += (disc / disc.max() * 0.8)[:, 6:]
    with pytest.warns(PSFQualityWarning, match="1 bright sources were left out"):
        assert psf_from_point_source(photo, sources="auto").sources == 9


def test_fwhm_of_a_psf_whose_middle_is_dark(rng):
    # Two rests of a diagonal shake: the profiles through the middle of the
    # bright samples cross neither, and the width was read as 0.
    psf = np.zeros((21, 21))
    psf[np.arange(5, 16), np.arange(5, 16)] = 0.2
    psf[5, 5] = psf[15, 15] = 1
    photo = np.zeros((80, 80))
    photo[30:51, 30:51] = ndimage.gaussian_filter(psf, 1.0)
    photo = photo / photo.max() + rng.normal(0, 0.01, photo.shape)
    measured = psf_from_point_source(photo)
    assert all(width > 2 for width in measured.fwhm)


@pytest.mark.parametrize("sources", [1, "auto"])
def test_two_lights_blended_into_one_are_left_out(sources, rng):
    # Brighter than one light, the pair was taken for the brightest source:
    # the PSF was both lights, one after the other.
    model, _ = MODELS["gaussian"]
    positions = [(25.2, 25.7), (25.4, 95.1), (95.6, 40.3), (95.3, 50.6)]
    photo = camera_photo(model, rng, size=120, positions=positions, background=0.0)
    with pytest.warns(PSFQualityWarning, match="blended"):
        measured = psf_from_point_source(photo, sources=sources)
    assert measured.sources == (1 if sources == 1 else 2)
    assert max(measured.fwhm) < 1.2 * min(measured.fwhm)
    assert relative_error(measured.psf, model(None)) < 0.1


def test_one_light_of_two_peaks_is_its_own_psf(rng):
    # Every light alike (a shake with two rests): their shape, not a blend.
    psf = np.zeros((21, 21))
    psf[np.arange(5, 16), np.arange(5, 16)] = 0.2
    psf[5, 5] = psf[15, 15] = 1
    psf = ndimage.gaussian_filter(psf, 1.0)
    photo = np.zeros((120, 120))
    for r, c in ((20, 20), (20, 80), (80, 20), (80, 80)):
        photo[r : r + 21, c : c + 21] = psf
    photo = photo / photo.max() + rng.normal(0, 0.01, photo.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PSFQualityWarning)
        measured = psf_from_point_source(photo, sources="auto")
    assert measured.sources == 4


@pytest.mark.parametrize("ndim", [2, 3])
def test_a_hot_pixel_beside_the_light_is_left_out(ndim, rng):
    # Brighter than the light, the lone sample was the PSF: centred on it,
    # one sample wide.
    if ndim == 2:
        truth = gaussian_psf(2.0, shape=(17, 17))
    else:
        truth = gaussian_psf((2.0, 1.5, 1.5), shape=(13, 13, 13), ndim=3)
    photo = np.zeros((40,) * ndim)
    photo[tuple(slice(20 - k // 2, 20 - k // 2 + k) for k in truth.shape)] = truth / truth.max()
    photo += 0.1 + rng.normal(0, 0.01, photo.shape)
    photo[(20,) * (ndim - 1) + (26,)] = 30
    with pytest.warns(PSFQualityWarning, match="lone bright"):
        measured = psf_from_point_source(photo)
    np.testing.assert_allclose(measured.centres[0], [20] * ndim, atol=0.1)
    assert relative_error(measured.psf, truth) < 0.1


def test_a_light_smaller_than_its_samples_is_kept(rng):
    # Stars of a pixel: their lone samples are all the light there is.
    photo = rng.normal(0, 0.01, (64, 64))
    for r, c in ((16, 16), (16, 48), (48, 30)):
        photo[r, c] += 1
    measured = psf_from_point_source(photo, sources="auto")
    assert measured.sources == 3 and measured.psf.max() > 0.8


def test_single_levels_of_noise_in_a_dark_8_bit_photo_are_no_hot_pixels():
    # Its noise reads as its rounding: 120 samples of one or two levels stood
    # 8 noise levels out, and were said to be hot pixels.
    from napari_deblur._sample_data import make_defocused_photo

    _, light, _ = make_defocused_photo()
    light = np.pad(light, [(40, 40), (40, 40), (0, 0)], mode="edge")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PSFQualityWarning)
        psf_from_point_source(light, channel_axis=-1)
    assert not any("lone bright" in str(w.message) for w in caught)

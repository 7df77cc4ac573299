import numpy as np
import pytest

from napari_deblur.engine.saturation import clipped_mask, clipped_regions, saturation_level


def test_saturation_level_by_type_and_choice():
    assert saturation_level(np.zeros(3, np.uint8)) == 255
    assert saturation_level(np.zeros(3, np.uint16)) == 65535
    assert saturation_level(np.array([0.2, 1.0, 1.0])) == 1.0
    # Data scaled to their maximum reach 1 once: no plateau, nothing clipped.
    assert saturation_level(np.array([0.2, 0.995, 1.0])) is None
    assert saturation_level(np.array([0.2, 0.995])) is None
    assert saturation_level(np.array([0.2, 3.0])) is None
    assert saturation_level(np.zeros(3, np.uint8), 4000) == 4000
    assert saturation_level(np.zeros(3, np.uint8), None) is None
    with pytest.raises(ValueError, match="saturation"):
        saturation_level(np.zeros(3), -1)


def test_a_narrower_sensor_in_a_wider_type_clips_at_its_own_top():
    # A 12-bit camera's 4095 in a 16-bit file was taken for light: a bead
    # stack clipped there gave a PSF 40% too wide, and no warning.
    stack = np.array([100, 2000, 4095, 4095, 4095], np.uint16)
    assert saturation_level(stack) == 4095
    np.testing.assert_array_equal(clipped_mask(stack), [False, False, True, True, True])
    # A light that merely peaks there, once or twice, is not clipped.
    assert saturation_level(np.array([100, 4095, 4095], np.uint16)) == 65535
    assert saturation_level(np.array([100, 4000, 16383, 16383, 16383], np.int32)) == 16383


def test_clipped_mask_takes_samples_near_the_top():
    image = np.array([[10, 252, 253, 255]], np.uint8)
    np.testing.assert_array_equal(clipped_mask(image), [[False, False, True, True]])
    assert clipped_mask(np.full((2, 2), 100, np.uint8)) is None


def test_clipped_regions_keep_lights_and_drop_noise_specks(rng):
    clipped = np.zeros((1, 64, 64), bool)
    clipped[0, 20:28, 20:28] = True  # a lamp's blurred spot: 64 samples
    specks = rng.random((64, 64)) < 0.01
    specks[16:32, 16:32] = False
    clipped[0] |= specks  # single samples that noise pushed over the level
    regions = clipped_regions(clipped, (11, 11))
    np.testing.assert_array_equal(regions[0, 16:32, 16:32], clipped[0, 16:32, 16:32])
    assert not regions[0][specks].any()
    assert clipped_regions(specks[None], (11, 11)) is None

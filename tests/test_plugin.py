import numpy as np
import pytest
import tifffile
from npe2 import PluginManager
from npe2.manifest.utils import import_python_name

from napari_deblur import deblur, psf_from_point_source
from napari_deblur._sample_data import (
    VOXEL_SIZE,
    defocused_photo,
    make_widefield_stack,
    widefield_stack,
)
from napari_deblur._tiff_layers import get_reader, read_tiff, write_tiff
from napari_deblur.engine.point_source import PSFQualityWarning


def test_manifest_is_valid_and_lists_contributions():
    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("napari-deblur")
    assert [w.display_name for w in manifest.contributions.widgets] == [
        "Deblur",
        "PSF from point source",
        "PSF model",
    ]
    assert [r.filename_patterns for r in manifest.contributions.readers] == [["*.tif", "*.tiff"]]
    assert [w.filename_extensions for w in manifest.contributions.writers] == [[".tif", ".tiff"]]
    assert {s.key for s in manifest.contributions.sample_data} == {
        "defocused_photo",
        "widefield_stack",
    }
    for command in manifest.contributions.commands:
        assert callable(import_python_name(command.python_name))


def test_npe2_validate_passes():
    from npe2.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["validate", "napari-deblur"])
    assert result.exit_code == 0, result.output


def test_photo_sample_layers():
    layers = defocused_photo()
    names = [meta["name"] for _, meta, _ in layers]
    assert names == ["sharp photo (truth)", "point light", "defocused photo"]
    blurred, light = layers[2][0], layers[1][0]
    assert blurred.dtype == np.uint8 and blurred.shape[-1] == 3
    assert light.shape[:2] == (72, 72)


def test_widefield_sample_is_blurred_noisy_and_scaled():
    layers = widefield_stack()
    for _, meta, kind in layers:
        assert kind == "image" and tuple(meta["scale"]) == VOXEL_SIZE
    blurred, bead, sharp = make_widefield_stack()
    assert blurred.shape == sharp.shape == (32, 128, 128)
    assert blurred.dtype == bead.dtype == np.uint16
    assert np.unravel_index(bead.argmax(), bead.shape) == pytest.approx((21, 30, 33), abs=1)
    # Blur spreads the light of the sharp puncta.
    assert blurred.max() < 0.2 * sharp.max()
    assert blurred.min() >= 0 and np.median(blurred) >= 5
    # The bead deblurs the stack (a brighter bead measured a PSF deeper than
    # the stack, which was refused).
    with pytest.warns(PSFQualityWarning):
        assert psf_from_point_source(bead).psf.shape[0] < blurred.shape[0]
    result = deblur(blurred, bead, max_iter=5)
    assert np.abs(result - sharp).mean() < np.abs(blurred - sharp).mean()


def test_reader_names_a_hyperstacks_axes_and_splits_its_channels(tmp_path):
    stack = np.arange(3 * 4 * 2 * 8 * 10, dtype=np.uint16).reshape(3, 4, 2, 8, 10)
    path = tmp_path / "series.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(5.0, 4.0),
        metadata={"axes": "TZCYX", "spacing": 0.5, "unit": "um"},
    )
    assert get_reader(str(path)) is read_tiff
    ((data, meta, kind),) = read_tiff(path)
    assert kind == "image" and meta["channel_axis"] == 2
    assert meta["name"] == ["series C0", "series C1"]
    assert meta["axis_labels"] == ("t", "z", "y", "x")
    assert meta["scale"] == pytest.approx((1.0, 0.5, 0.25, 0.2))
    assert meta["units"] == ("pixel", "µm", "µm", "µm")
    np.testing.assert_array_equal(data, stack)


def test_reader_takes_imagej_stacks_without_spacing_as_steps_of_one_unit(tmp_path):
    # ImageJ writes no "spacing=" for a z step of 1: the stack had no scale.
    tifffile.imwrite(
        tmp_path / "z1.tif",
        np.zeros((5, 16, 20), np.uint16),
        imagej=True,
        resolution=(10.0, 10.0),
        metadata={"axes": "ZYX", "unit": "um"},
    )
    ((_, meta, _),) = read_tiff(tmp_path / "z1.tif")
    assert meta["scale"] == pytest.approx((1.0, 0.1, 0.1))


def test_reader_gives_colour_with_its_alpha_and_plain_stacks_unscaled(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 255, (6, 7, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    ((data, meta, _),) = read_tiff(tmp_path / "rgba.tif")
    assert meta["rgb"] and "scale" not in meta
    np.testing.assert_array_equal(data, rgba)
    # Written back as colour and alpha.
    write_tiff(str(tmp_path / "again.tif"), data, meta)
    np.testing.assert_array_equal(read_tiff(tmp_path / "again.tif")[0][0], rgba)
    tifffile.imwrite(tmp_path / "plain.tif", rgba[..., 0][None].repeat(5, 0))
    ((data, meta, _),) = read_tiff(tmp_path / "plain.tif")
    assert data.shape == (5, 6, 7) and meta["axis_labels"] == ("z", "y", "x")
    assert "scale" not in meta
    assert get_reader(str(tmp_path / "photo.png")) is None
    assert get_reader([str(tmp_path / "plain.tif")] * 2) is None

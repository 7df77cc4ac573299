import re
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage
from skimage.data import camera

from napari_deblur import deblur
from napari_deblur._cli import main
from napari_deblur._io import read_image
from napari_deblur._sample_data import make_defocused_photo
from napari_deblur.engine.color import linear_to_srgb
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf, motion_psf, resize_psf
from tests.conftest import psnr


@pytest.fixture
def photo_files(tmp_path):
    blurred, light, sharp = make_defocused_photo()
    iio.imwrite(tmp_path / "blurred.png", blurred)
    iio.imwrite(tmp_path / "light.jpg", light, quality=98)
    return tmp_path, blurred, sharp


def test_run_rgb_png_with_raw_light_photo(photo_files):
    folder, blurred, sharp = photo_files
    out = folder / "sharp.png"
    assert (
        main(
            [
                "run",
                str(folder / "blurred.png"),
                "--psf",
                str(folder / "light.jpg"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    result = iio.imread(out)
    assert result.shape == blurred.shape and result.dtype == np.uint8
    assert psnr(sharp, result, 255) > psnr(sharp, blurred, 255) + 2
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("compression", ["lzw", "jpeg", "zstd"])
def test_compressed_tiffs_are_read(tmp_path, compression, rng):
    # What photo editors and microscopes write: LZW was "cannot be read".
    blurred = Convolution(gaussian_psf(1.2), (48, 40), boundary="symmetric").apply(
        rng.random((48, 40))
    )
    tifffile.imwrite(
        tmp_path / "in.tif", (blurred * 230).astype(np.uint8), compression=compression
    )
    tifffile.imwrite(tmp_path / "psf.tif", gaussian_psf(1.2).astype(np.float32))
    args = ["run", str(tmp_path / "in.tif"), "--psf", str(tmp_path / "psf.tif")]
    assert main([*args, "-o", str(tmp_path / "out.tif"), "--max-iter", "2", "-q"]) == 0
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == (48, 40) and out.dtype == np.uint8


@pytest.mark.parametrize(
    ("suffix", "dtype", "shape"),
    [
        (".png", np.uint8, (48, 40)),
        (".png", np.uint16, (48, 40)),
        (".tif", np.uint16, (48, 40)),
        (".tif", np.float32, (48, 40)),
        (".tif", np.uint16, (12, 32, 30)),
        (".tif", np.uint8, (40, 36, 3)),
        (".tif", np.uint16, (40, 36, 3)),
    ],
)
def test_run_keeps_shape_and_dtype(tmp_path, suffix, dtype, shape, rng):
    psf = gaussian_psf(1.2, ndim=len(shape) if shape[-1] != 3 else 2)
    scene = rng.random(shape)
    spatial = shape if shape[-1] != 3 else shape[:2]
    if shape[-1] == 3:
        blurred = np.stack(
            [
                Convolution(psf, spatial, boundary="symmetric").apply(scene[..., c])
                for c in range(3)
            ],
            -1,
        )
    else:
        blurred = Convolution(psf, spatial, boundary="symmetric").apply(scene)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1
    image = (blurred * top * 0.9).astype(dtype)
    path = tmp_path / f"in{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, image, photometric="rgb" if shape[-1] == 3 else "minisblack")
    else:
        iio.imwrite(path, image)
    tifffile.imwrite(tmp_path / "psf.tif", psf.astype(np.float32))
    out = tmp_path / f"out{suffix}"
    assert (
        main(
            [
                "run",
                str(path),
                "--psf",
                str(tmp_path / "psf.tif"),
                "-o",
                str(out),
                "--max-iter",
                "5",
            ]
        )
        == 0
    )
    result = tifffile.imread(out) if suffix == ".tif" else iio.imread(out)
    assert result.shape == image.shape and result.dtype == image.dtype


def test_a_broken_file_is_named_and_the_batch_goes_on(photo_files, capsys, caplog):
    # A TIFF header with nothing after it raised an IndexError from
    # tifffile: a traceback, and the batch stopped before the next input.
    folder, _, _ = photo_files
    (folder / "broken.tif").write_bytes(b"II*\0" + bytes(100))
    (folder / "after.png").write_bytes((folder / "blurred.png").read_bytes())
    inputs = [str(folder / name) for name in ("broken.tif", "after.png")]
    args = ["run", *inputs, "--psf", str(folder / "light.jpg"), "-o", str(folder / "out")]
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert main([*args, "--max-iter", "2"]) == 1
    assert "broken.tif: cannot be read as TIF" in caplog.text
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 of 2 inputs failed" in err[0]
    assert (folder / "out" / "after.png").is_file()


def test_awkward_inputs_run_or_are_told_how(photo_files, tmp_path, capsys, rng):
    # A 128 px image was too small for the general PSF's box rounded up to
    # 33 samples; a flat one divided by zero in the refinement (a traceback).
    folder, blurred, _ = photo_files
    iio.imwrite(tmp_path / "small.png", blurred[:128, :128])
    out = str(tmp_path / "out.png")
    args = ["run", str(tmp_path / "small.png"), "--psf", "general", "-o", out, "--max-iter", "2"]
    assert main(args) == 0
    iio.imwrite(tmp_path / "flat.png", np.full((64, 64), 100, np.uint8))
    args = ["run", str(tmp_path / "flat.png"), "--psf", str(folder / "light.jpg")]
    assert main([*args, "-o", str(tmp_path / "f.png"), "--refine-psf"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "flat" in err[0]
    # A series of frames with a 2D PSF says how to deblur it, in options.
    tifffile.imwrite(tmp_path / "series.tif", rng.integers(0, 99, (5, 32, 32), np.uint16))
    tifffile.imwrite(tmp_path / "psf.tif", gaussian_psf(1.0).astype(np.float32))
    args = ["run", str(tmp_path / "series.tif"), "--psf", str(tmp_path / "psf.tif")]
    assert main([*args, "-o", str(tmp_path / "s.tif")]) == 1
    assert "--time-axis for a series" in capsys.readouterr().err


def test_chunked_runs_log_the_psfs_doubts(photo_files, caplog, rng):
    # They came out as raw Python warnings, with a line of our source.
    folder, _, _ = photo_files
    light = iio.imread(folder / "light.jpg").astype(float) / 20
    faint = np.clip(light + rng.normal(0, 3, light.shape) + 10, 0, 255).astype(np.uint8)
    iio.imwrite(folder / "faint.png", faint)
    args = ["run", str(folder / "blurred.png"), "--psf", str(folder / "faint.png")]
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert (
            main([*args, "-o", str(folder / "out.png"), "--chunks", "64", "--max-iter", "2"]) == 0
        )
    assert "blurred.png: the point light is weak" in caplog.text
    # What was decided is said, as for a run in one piece (it was not).
    assert re.search(r"chunks of 64x64 \(margins \d+x\d+\): \w+, \d+ iterations", caplog.text)


def test_refuses_to_overwrite(photo_files, capsys):
    folder, _, _ = photo_files
    out = folder / "exists.png"
    out.write_bytes(b"keep me")
    args = ["run", str(folder / "blurred.png"), "--psf", str(folder / "light.jpg"), "-o", str(out)]
    assert main(args) == 1
    assert out.read_bytes() == b"keep me"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert main([*args, "--overwrite", "--max-iter", "2"]) == 0
    assert iio.imread(out).shape == iio.imread(folder / "blurred.png").shape


def test_never_overwrites_an_input(photo_files, capsys):
    folder, _, _ = photo_files
    before = (folder / "blurred.png").read_bytes()
    args = ["run", str(folder / "blurred.png"), "--psf", str(folder / "light.jpg")]
    assert main([*args, "-o", str(folder / "blurred.png"), "--overwrite"]) == 1
    assert (folder / "blurred.png").read_bytes() == before
    assert "input" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.png", "--psf", "light.jpg", "-o", "o.png"], "no such file"),
        (["run", "blurred.png", "--psf", "light.jpg", "-o", "o.bmp"], "unsupported"),
        (
            ["run", "blurred.png", "--psf", "light.jpg", "-o", "o.png", "--max-iter", "0"],
            "--max-iter must be",
        ),
        (
            ["run", "blurred.png", "--psf", "light.jpg", "-o", "o.png", "--mask", "light.jpg"],
            "--mask light.jpg",
        ),
        (
            ["run", "blurred.png", "--psf", "light.jpg", "-o", "o.png", "--channel-axis", "0"],
            "--channel-axis",
        ),
        (["run", "blurred.png", "--psf", "light.jpg", "-o", "no/o.png"], "no such folder"),
        (["run", "blurred.png", "--psf", "light.jpg", "-o", "."], "is an input"),
        # A folder, a pattern the shell matched to nothing, a missing PSF:
        # said of the output, or once per input, and an output folder left.
        (["run", ".", "--psf", "light.jpg", "-o", "o.png"], ". is a folder; name the images"),
        (["run", "blurred.png", "no*.png", "--psf", "light.jpg", "-o", "out"], "no*.png: no such"),
        (["run", "blurred.png", "--psf", "none.jpg", "-o", "o.png"], "--psf none.jpg: no such"),
        (
            [
                *("run", "blurred.png", "--psf", "light.jpg", "-o", "o.png"),
                *("--spacing", "1,1,1", "--psf-spacing", "1,1"),
            ],
            "--spacing gives 3 sizes, the image has 2 spatial axes",
        ),
        (["psf", "light.jpg", "-o", "p.tif", "--energy", "2"], "--energy must be in (0, 1]"),
        # Was "unsupported file type '.zarr'; use PNG, JPEG, TIFF or a .zarr store".
        (["psf", "light.jpg", "-o", "p.zarr"], "p.zarr: a PSF is written as TIFF"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(photo_files, monkeypatch, capsys, args, message):
    folder, _, _ = photo_files
    monkeypatch.chdir(folder)
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("napari-deblur: error:")
    assert not (folder / "out").exists()


def test_an_input_of_another_type_is_said_before_an_output_folder_is_made(
    photo_files, monkeypatch, capsys
):
    # The error named the output's copy of its name, and the folder was left.
    folder, _, _ = photo_files
    monkeypatch.chdir(folder)
    (folder / "scan.bmp").write_bytes(b"BM")
    assert main(["run", "blurred.png", "scan.bmp", "--psf", "light.jpg", "-o", "out"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "scan.bmp: unsupported file type '.bmp'; use PNG, JPEG, TIFF or a .zarr store"
    )
    assert not (folder / "out").exists()


def test_output_problems_are_found_before_the_work(photo_files, monkeypatch, capsys):
    # A missing folder or an existing file was found after the whole deblur
    # (and named by its temporary name).
    folder, _, _ = photo_files
    monkeypatch.chdir(folder)
    (folder / "taken.png").write_bytes(b"keep me")

    def no_work(*args, **kwargs):
        raise AssertionError("deblurred before the output was checked")

    monkeypatch.setattr("napari_deblur._api.deblur_steps", no_work)
    monkeypatch.setattr("napari_deblur._api.deblur", no_work)
    for output in ("missing/o.png", "taken.png"):
        assert main(["run", "blurred.png", "--psf", "light.jpg", "-o", output]) == 1
    # Formats that cannot hold the result were found by the writer, after
    # the work (JPEG's alpha in Pillow's words).
    rgba = np.dstack(
        [iio.imread("blurred.png"), np.full(iio.imread("blurred.png").shape[:2], 200)]
    )
    iio.imwrite("rgba.png", rgba.astype(np.uint8))
    iio.imwrite("grey16.png", (iio.imread("blurred.png")[..., 0].astype(np.uint16) * 257))
    for image, output in (("rgba.png", "o.jpg"), ("grey16.png", "o.jpg")):
        assert main(["run", image, "--psf", "light.jpg", "-o", output]) == 1
    assert main(["psf", "light.jpg", "-o", "psf.png"]) == 1
    # A stack was written as JPEG's Pillow error after the work, or as an
    # animated PNG that nothing here reads back.
    tifffile.imwrite("stack.tif", np.zeros((5, 16, 16), np.uint8), photometric="minisblack")
    tifffile.imwrite("bead.tif", np.ones((1, 1, 1), np.float32))
    for output in ("o.jpg", "o.png"):
        assert main(["run", "stack.tif", "--psf", "bead.tif", "-o", output]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert "missing: no such folder" in errors[0] and "exists" in errors[1]
    assert "no alpha" in errors[2] and "cannot hold uint16" in errors[3]
    assert "cannot hold float32" in errors[4]
    assert all("a stack of 5 planes is written as TIFF or Zarr" in e for e in errors[5:7])


def test_one_input_goes_into_a_folder_output(photo_files):
    folder, blurred, _ = photo_files
    args = ["run", str(folder / "blurred.png"), "--psf", str(folder / "light.jpg"), "-q"]
    assert main([*args, "-o", f"{folder / 'sharp'}/", "--max-iter", "2"]) == 0
    assert iio.imread(folder / "sharp" / "blurred.png").shape == blurred.shape
    assert main([*args, "-o", str(folder / "sharp"), "--max-iter", "2", "--overwrite"]) == 0


def test_psf_never_overwrites_its_photo(photo_files, capsys):
    folder, _, _ = photo_files
    photo = folder / "light.tif"
    tifffile.imwrite(photo, iio.imread(folder / "light.jpg"))
    before = photo.read_bytes()
    assert main(["psf", str(photo), "-o", str(photo), "--overwrite"]) == 1
    assert photo.read_bytes() == before
    assert "is the input" in capsys.readouterr().err


def test_grey_and_alpha_png_keeps_its_alpha(photo_files):
    from PIL import Image

    folder, blurred, _ = photo_files
    grey = blurred.mean(axis=-1).astype(np.uint8)
    alpha = np.linspace(0, 255, grey.size).reshape(grey.shape).astype(np.uint8)
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(folder / "la.png")
    args = ["run", str(folder / "la.png"), "--psf", str(folder / "light.jpg"), "-q"]
    assert main([*args, "-o", str(folder / "out.png"), "--max-iter", "2"]) == 0
    with Image.open(folder / "out.png") as written:
        assert written.mode == "LA"
        assert np.array_equal(np.asarray(written)[..., 1], alpha)


def test_pixels_that_are_not_light_levels_are_refused(tmp_path):
    # CMYK JPEGs were read as RGB with K for alpha, a min-is-white TIFF was
    # deblurred inverted and written back min-is-black.
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    tifffile.imwrite(tmp_path / "white.tif", rgb[..., 0], photometric="miniswhite")
    for name in ("cmyk.jpg", "white.tif"):
        with pytest.raises(ValueError, match="grey or RGB|grey \\(min-is-black\\)"):
            read_image(tmp_path / name)
    tifffile.imwrite(
        tmp_path / "planar.tif",
        np.moveaxis(rgb, -1, 0),
        photometric="rgb",
        planarconfig="separate",
    )
    planar = read_image(tmp_path / "planar.tif")
    assert planar.channel_axis == -1 and np.array_equal(planar.data, rgb)


def test_negative_values_are_warned(tmp_path, caplog, rng):
    # Signed data: a scene with its mean taken off.
    image = (camera()[::8, ::8] / 255.0 - 0.5).astype(np.float32)
    tifffile.imwrite(tmp_path / "signed.tif", image)
    tifffile.imwrite(tmp_path / "psf.tif", gaussian_psf(1.5).astype(np.float32))
    args = ["run", str(tmp_path / "signed.tif"), "--psf", str(tmp_path / "psf.tif")]
    assert main([*args, "-o", str(tmp_path / "out.tif"), "--max-iter", "2"]) == 0
    assert "below zero" in caplog.text and "signed.tif" in caplog.text


def test_no_display_says_how_to_run_headless(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert main([]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "demo" in err[0]


def test_demo_writes_result_and_side_by_side(tmp_path):
    assert main(["demo", str(tmp_path), "-q"]) == 0
    side = iio.imread(tmp_path / "side-by-side.png")
    result = iio.imread(tmp_path / "deblurred.png")
    blurred, _, sharp = make_defocused_photo()
    assert side.shape[1] > 3 * blurred.shape[1]
    assert psnr(sharp, result, 255) > psnr(sharp, blurred, 255) + 2


def test_module_entry_point_runs(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_deblur",
            "run",
            "nothing.png",
            "--psf",
            "x.png",
            "-o",
            "y.png",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    assert "no such file" in done.stderr


def test_psf_command_writes_a_clean_psf_and_reports(photo_files, capsys):
    folder, _, _ = photo_files
    out = folder / "psf.tif"
    assert main(["psf", str(folder / "light.jpg"), "-o", str(out), "--roi", "5:65,10:70"]) == 0
    psf = tifffile.imread(out)
    assert psf.dtype == np.float32 and psf.shape[-1] == 3 and psf.shape[0] % 2 == 1
    np.testing.assert_allclose(psf.sum(axis=(0, 1)), 1, rtol=1e-4)
    report = capsys.readouterr().out
    assert "FWHM" in report and "1 source(s)" in report and "srgb" in report
    # Its size as written, colours apart (it said "PSF 3 x 41 x 41").
    side = psf.shape[0]
    assert f"PSF {side} x {side} (3 colours)" in report
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("napari-deblur ")


def test_psf_command_takes_out_the_bead_size(tmp_path, capsys, rng):
    # A 1 um bead on 0.2 x 0.1 x 0.1 um voxels through a PSF of sigma (3, 1.5, 1.5) voxels.
    light = np.zeros((64, 48, 48))
    light[32, 24, 24] = 1
    light = ndimage.convolve(light, defocus_psf((2.5, 5.0, 5.0), edge=0.05), mode="constant")
    light = ndimage.convolve(light, gaussian_psf((3.0, 1.5, 1.5), ndim=3), mode="constant")
    tifffile.imwrite(
        tmp_path / "bead.tif", rng.poisson(light / light.max() * 3000 + 100).astype(np.uint16)
    )
    out = tmp_path / "psf.tif"
    args = ["psf", str(tmp_path / "bead.tif"), "-o", str(out), "--spacing", "0.2,0.1,0.1"]
    assert main([*args, "--bead-diameter", "1"]) == 0
    report = capsys.readouterr().out
    assert "size of the bead (1) removed" in report
    fwhm = [float(v) for v in re.search(r"px = ([\d. x]+)", report).group(1).split(" x ")]
    np.testing.assert_allclose(fwhm, [1.41, 0.35, 0.35], rtol=0.1)
    assert tifffile.imread(out).sum() == pytest.approx(1, rel=1e-4)
    # The PSF file keeps its sample size (it kept none, and a run took the
    # PSF for one sampled like its image), and a photo's own is used.
    from dataclasses import replace

    from napari_deblur._io import write_image

    assert read_image(out).spacing == pytest.approx((0.2, 0.1, 0.1))
    bead = replace(read_image(tmp_path / "bead.tif"), spacing=(0.2, 0.1, 0.1))
    write_image(tmp_path / "recorded.tif", bead)
    again = tmp_path / "again.tif"
    capsys.readouterr()
    assert main(["psf", str(tmp_path / "recorded.tif"), "-o", str(again)]) == 0
    assert read_image(again).spacing == pytest.approx((0.2, 0.1, 0.1))
    # The file's own sample size is in micrometres, and the FWHM says so.
    assert re.search(r"px = [\d. x]+ um,", capsys.readouterr().out)
    # A diameter with no sample size to read it by is refused: taken in
    # samples, next to nothing was removed, and the report said it was.
    bare = ["psf", str(tmp_path / "bead.tif"), "-o", str(tmp_path / "bare.tif")]
    assert main([*bare, "--bead-diameter", "1"]) == 1
    assert "needs the size of a sample" in capsys.readouterr().err


def test_psf_command_counts_a_12_bit_cameras_clipped_samples(tmp_path, capsys, rng):
    light = np.zeros((48, 48))
    light[24, 24] = 1
    light = ndimage.gaussian_filter(light, 2.0)
    photo = np.minimum(rng.poisson(light / light.max() * 8000 + 100), 4095).astype(np.uint16)
    tifffile.imwrite(tmp_path / "light.tif", photo)
    args = ["psf", str(tmp_path / "light.tif"), "-o", str(tmp_path / "psf.tif")]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert f"clipped samples {np.count_nonzero(photo == 4095)}" in said
    assert main([*args, "--overwrite", "--saturation", "none"]) == 0
    assert "clipped samples 0" in capsys.readouterr().out


def test_psf_command_bad_roi_is_one_line(photo_files, capsys):
    folder, _, _ = photo_files
    with pytest.raises(SystemExit) as stopped:
        main(["psf", str(folder / "light.jpg"), "-o", str(folder / "p.tif"), "--roi", "a:b"])
    # One line, without argparse's usage block.
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(err) == 1 and "START:STOP" in err[0]
    # Negative bounds were clamped to 0 where "numpy style" read them from the end.
    with pytest.raises(SystemExit):
        main(["psf", str(folder / "light.jpg"), "-o", str(folder / "p.tif"), "--roi=-20:-1,0:9"])
    assert "none from the end" in capsys.readouterr().err
    # --sources was dropped silently with --roi.
    out = folder / "p.tif"
    assert (
        main(
            [
                "psf",
                str(folder / "light.jpg"),
                "-o",
                str(out),
                "--roi",
                "5:65,10:70",
                "--sources",
                "3",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sources=3" in err[0] and "--roi" in err[0]
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["demo", str(folder / "demo"), "-q", "-v"])
    assert "contradict" in capsys.readouterr().err


def test_clipped_light_is_warned_by_run(tmp_path, caplog):
    blurred, light, _ = make_defocused_photo()
    iio.imwrite(tmp_path / "blurred.png", blurred)
    iio.imwrite(tmp_path / "light.png", np.clip(light.astype(int) * 3, 0, 255).astype(np.uint8))
    args = ["run", str(tmp_path / "blurred.png"), "--psf", str(tmp_path / "light.png")]
    assert main([*args, "-o", str(tmp_path / "out.png"), "--max-iter", "2"]) == 0
    assert "clipped" in caplog.text


def test_mask_file_and_clipped_pixels_are_left_out(tmp_path, caplog):
    from tests.test_api import night_scene

    photo, psf, truth, near = night_scene(np.random.default_rng(3))
    stuck = photo.copy()
    bad = np.zeros(photo.shape, bool)
    bad[::9, ::7] = True
    stuck[bad] = 160
    iio.imwrite(tmp_path / "night.png", stuck)
    iio.imwrite(tmp_path / "mask.png", bad.astype(np.uint8) * 255)
    tifffile.imwrite(tmp_path / "psf.tif", psf.astype(np.float32))
    args = ["run", str(tmp_path / "night.png"), "--psf", str(tmp_path / "psf.tif")]
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert (
            main([*args, "-o", str(tmp_path / "masked.png"), "--mask", str(tmp_path / "mask.png")])
            == 0
        )
    left_out = np.count_nonzero(bad | (photo >= 253))
    assert f"{left_out} clipped, hot or bad samples left out" in caplog.text
    # The natural file for a mask: 1 bit a pixel (refused as "not light levels").
    Image.fromarray(bad).save(tmp_path / "mask1.png")
    assert Image.open(tmp_path / "mask1.png").mode == "1"
    caplog.clear()
    with caplog.at_level("INFO", logger="napari_deblur"):
        masked_1 = [
            *args,
            "-o",
            str(tmp_path / "masked1.png"),
            "--mask",
            str(tmp_path / "mask1.png"),
        ]
        assert main(masked_1) == 0
    assert f"{left_out} clipped, hot or bad samples left out" in caplog.text
    assert main([*args, "-o", str(tmp_path / "fitted.png"), "--saturation", "none"]) == 0
    masked = iio.imread(tmp_path / "masked.png").astype(float)
    fitted = iio.imread(tmp_path / "fitted.png").astype(float)
    sharp = 255 * linear_to_srgb(np.clip(truth, 0, 1))
    masked_error, fitted_error = np.abs(masked - sharp), np.abs(fitted - sharp)
    # Fitted, each stuck pixel spreads a PSF-sized blotch round it, and the
    # clipped lamps leave halos.
    away = ~near & (photo < 253)
    assert masked_error[away].mean() < 0.8 * fitted_error[away].mean()
    assert masked_error[near].mean() < 0.5 * fitted_error[near].mean()


def test_one_mask_for_every_frame_of_a_series(tmp_path, caplog, rng):
    frames = rng.poisson(50, (5, 40, 48)).astype(np.float32)
    bad = np.zeros((40, 48), bool)
    bad[::5, ::6] = True
    frames[:, bad] = 5000
    tifffile.imwrite(tmp_path / "series.tif", frames)
    tifffile.imwrite(tmp_path / "mask.tif", bad.astype(np.uint8))
    tifffile.imwrite(tmp_path / "psf.tif", gaussian_psf(1.0).astype(np.float32))
    args = ["run", str(tmp_path / "series.tif"), "--psf", str(tmp_path / "psf.tif")]
    # A mask of a frame was refused: only one of the whole series was taken.
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert main([*args, "-o", str(tmp_path / "out.tif"), "--time-axis", "0",
                     "--mask", str(tmp_path / "mask.tif")]) == 0  # fmt: skip
    out = tifffile.imread(tmp_path / "out.tif")
    # The stuck samples are left out: no frame keeps their light.
    assert out.shape == frames.shape and out.max() < 500


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_run_keeps_exif_and_colour_profile(photo_files, suffix):
    from PIL import Image, ImageCms

    folder, blurred, _ = photo_files
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Maker", "Camera 1"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    if suffix == ".tif":
        tifffile.imwrite(folder / "in.tif", blurred, photometric="rgb", iccprofile=icc)
    else:
        Image.fromarray(blurred).save(folder / f"in{suffix}", exif=exif.tobytes(), icc_profile=icc)
    out = folder / f"out{suffix}"
    args = ["run", str(folder / f"in{suffix}"), "--psf", str(folder / "light.jpg")]
    assert main([*args, "-o", str(out), "--max-iter", "3"]) == 0
    if suffix == ".tif":
        with tifffile.TiffFile(out) as tif:
            assert tif.pages[0].iccprofile == icc
            assert tif.asarray().dtype == np.uint8
        return
    with Image.open(out) as written:
        assert written.info["icc_profile"] == icc
        assert dict(written.getexif()) == {0x010F: "Maker", 0x0110: "Camera 1"}
        if suffix == ".jpg":
            from PIL import JpegImagePlugin

            # Colour at full resolution (4:4:4): 4:2:0 halved what was sharpened.
            assert JpegImagePlugin.get_sampling(written) == 0


def test_orientation_is_kept_in_every_format(tmp_path):
    # A phone's portrait photo is stored on its side with an orientation
    # tag: TIFF results lost it (shown turned), and a PNG whose EXIF
    # follows its pixels (valid PNG) was read without it.
    import struct
    import zlib

    from PIL import Image

    from napari_deblur._io import write_image

    pixels = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    Image.fromarray(pixels).save(tmp_path / "plain.png")
    png = (tmp_path / "plain.png").read_bytes()
    record = exif.tobytes()[6:]  # without JPEG's "Exif\0\0"
    chunk = struct.pack(">I", len(record)) + b"eXIf" + record
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + record))
    end = png.rindex(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(png[:end] + chunk + png[end:])
    for name in ("phone.jpg", "late.png"):
        image = read_image(tmp_path / name)
        assert image.orientation == 6
        for suffix in (".tif", ".png", ".jpg"):
            out = tmp_path / f"{name}{suffix}"
            write_image(out, image)
            assert read_image(out).orientation == 6


def test_print_resolution_is_kept_in_every_format(photo_files, tmp_path):
    # A camera's 300 dpi came out as no resolution (72 dpi in most programs).
    from PIL import Image

    from napari_deblur._io import write_image

    folder, blurred, _ = photo_files
    Image.fromarray(blurred).save(folder / "print.jpg", dpi=(300, 300))
    out = folder / "sharp.jpg"
    args = ["run", str(folder / "print.jpg"), "--psf", str(folder / "light.jpg")]
    assert main([*args, "-o", str(out), "--max-iter", "2"]) == 0
    assert read_image(out).dpi == (300, 300)
    pixels = np.zeros((8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "cm.tif", pixels, resolution=(40, 20), resolutionunit="CENTIMETER")
    tiff = read_image(tmp_path / "cm.tif")
    assert tiff.dpi == pytest.approx((101.6, 50.8))
    for suffix, within in ((".tif", 1e-6), (".png", 0.01), (".jpg", 0.5)):
        write_image(tmp_path / f"again{suffix}", tiff)
        assert read_image(tmp_path / f"again{suffix}").dpi == pytest.approx(tiff.dpi, abs=within)
    tifffile.imwrite(tmp_path / "plain.tif", pixels)
    assert read_image(tmp_path / "plain.tif").dpi is None


def test_16_bit_photos_with_a_gamma_profile_are_decoded(photo_files, caplog):
    # A 16-bit export from a raw developer is gamma-encoded, its colour
    # profile says so: it was deblurred as linear light (barely sharper).
    from PIL import ImageCms

    folder, blurred, sharp = photo_files
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    wide = blurred.astype(np.uint16) * 257
    tifffile.imwrite(folder / "in16.tif", wide, photometric="rgb", iccprofile=icc)
    light = iio.imread(folder / "light.jpg").astype(np.uint16) * 257
    tifffile.imwrite(folder / "light16.tif", light, photometric="rgb", iccprofile=icc)
    args = ["run", str(folder / "in16.tif"), "--psf", str(folder / "light16.tif")]
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert main([*args, "-o", str(folder / "out16.tif")]) == 0
    assert "gamma-encoded" in caplog.text
    out = tifffile.imread(folder / "out16.tif")
    assert out.dtype == np.uint16
    truth = sharp.astype(float) * 257
    assert psnr(truth, out, 65535) > psnr(truth, wide, 65535) + 3


def test_gamma_encoded_reads_the_profile_curve():
    import struct

    from PIL import ImageCms

    from napari_deblur._io import gamma_encoded

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    assert gamma_encoded(bytes(icc))
    # The same primaries on a linear curve: each parametric tone curve made
    # Y = X^1 (ICC: the tag table after the 128-byte header).
    (count,) = struct.unpack(">I", icc[128:132])
    for entry in range(count):
        name, offset, _ = struct.unpack(">4sII", icc[132 + 12 * entry : 144 + 12 * entry])
        if name in (b"rTRC", b"gTRC", b"bTRC"):
            assert icc[offset : offset + 4] == b"para"
            icc[offset + 8 : offset + 10] = b"\0\0"
            icc[offset + 12 : offset + 16] = struct.pack(">i", 1 << 16)
    assert gamma_encoded(bytes(icc)) is False
    assert gamma_encoded(b"not a profile") is None


def test_sample_sizes_in_tiff_metadata_resample_the_psf(tmp_path, capsys, rng):
    # A bead stack taken with half the steps of the image: the sizes in the
    # files (ImageJ's, OME's) were dropped, and the command line took none.
    from napari_deblur import deblur
    from tests.conftest import cubes

    scene = cubes(rng, (16, 48, 48), 12, 300.0, (2, 4, 4)) + 10
    psf_fine = gaussian_psf((2.0, 3.0, 3.0), ndim=3)
    psf = gaussian_psf((1.0, 1.5, 1.5), ndim=3)
    stack = rng.poisson(Convolution(psf, scene.shape, boundary="reflect").apply(scene))
    stack = stack.astype(np.float32)
    tifffile.imwrite(
        tmp_path / "stack.tif", stack, imagej=True, resolution=(10, 10),
        metadata={"axes": "ZYX", "spacing": 0.2, "unit": "micron"},
    )  # fmt: skip
    tifffile.imwrite(
        tmp_path / "bead.ome.tif", psf_fine.astype(np.float32), ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeZ": 0.1, "PhysicalSizeY": 0.05,
                  "PhysicalSizeX": 0.05},
    )  # fmt: skip
    args = ["run", str(tmp_path / "stack.tif"), "--psf", str(tmp_path / "bead.ome.tif")]
    assert main([*args, "-o", str(tmp_path / "out.tif"), "--max-iter", "5"]) == 0
    expected = deblur(
        stack, psf_fine.astype(np.float32), spacing=(0.2, 0.1, 0.1),
        psf_spacing=(0.1, 0.05, 0.05), max_iter=5,
    )  # fmt: skip
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out.tif"), expected, rtol=1e-5)
    assert read_image(tmp_path / "out.tif").spacing == pytest.approx((0.2, 0.1, 0.1))
    # One size alone cannot resample.
    tifffile.imwrite(tmp_path / "plain.tif", psf_fine.astype(np.float32))
    plain = ["run", str(tmp_path / "stack.tif"), "--psf", str(tmp_path / "plain.tif")]
    assert main([*plain, "-o", str(tmp_path / "o2.tif"), "--psf-spacing", "0.1,0.05,0.05"]) == 0
    capsys.readouterr()
    assert main([*plain, "--spacing", "0.2,0.1,0.1", "-o", str(tmp_path / "o3.tif")]) == 1
    # Said in the options' own names (was "----spacing needs --psf---spacing").
    said = capsys.readouterr().err
    assert "--psf-spacing" in said and "---" not in said
    # A size given is written with the result (it was not).
    tifffile.imwrite(tmp_path / "bare.tif", stack)
    bare = ["run", str(tmp_path / "bare.tif"), "--psf", str(tmp_path / "bead.ome.tif")]
    assert main([*bare, "--spacing", "0.2,0.1,0.1", "-o", str(tmp_path / "o4.tif")]) == 0
    assert read_image(tmp_path / "o4.tif").spacing == pytest.approx((0.2, 0.1, 0.1))


def test_palette_transparency_and_premultiplied_alpha_are_kept(tmp_path):
    # A palette PNG's transparent entry was dropped (an opaque result); a
    # TIFF's premultiplied alpha was written back labelled straight.
    from PIL import Image

    from napari_deblur._io import write_image

    indices = np.zeros((8, 8), np.uint8)
    indices[2:4], indices[5:] = 1, 2
    palette = Image.fromarray(indices, "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    palette.save(tmp_path / "palette.png", transparency=0)
    image = read_image(tmp_path / "palette.png")
    assert image.channel_axis == -1 and np.array_equal(image.alpha == 0, indices == 0)
    rgba = np.random.default_rng(0).integers(0, 255, (8, 8, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "assoc.tif", rgba, photometric="rgb", extrasamples=["assocalpha"])
    image = read_image(tmp_path / "assoc.tif")
    assert image.premultiplied
    write_image(tmp_path / "out.tif", image)
    assert read_image(tmp_path / "out.tif").premultiplied
    with pytest.raises(ValueError, match="premultiplied"):
        write_image(tmp_path / "out.png", image)


def test_16_bit_colour_png_is_refused_with_the_way_out(tmp_path):
    from napari_deblur._io import ImageFile, write_image

    image = ImageFile(np.zeros((4, 5, 3), np.uint16), -1)
    with pytest.raises(ValueError, match="TIFF"):
        write_image(tmp_path / "out.png", image)
    assert list(tmp_path.iterdir()) == []
    # A long name is written (its temporary name passed 255 bytes).
    long = tmp_path / ("n" * 240 + ".tif")
    write_image(long, image)
    assert list(tmp_path.iterdir()) == [long]


def test_run_varying_blur(tmp_path, caplog, varying_scene):
    blurred, photo, sharp = varying_scene
    tifffile.imwrite(tmp_path / "blurred.tif", blurred)
    tifffile.imwrite(tmp_path / "lights.tif", photo)
    out = tmp_path / "out.tif"
    args = ["run", str(tmp_path / "blurred.tif"), "--psf", str(tmp_path / "lights.tif")]
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert main([*args, "-o", str(out), "--varying"]) == 0
    assert "with 9 PSFs across the frame" in caplog.text
    assert psnr(sharp, tifffile.imread(out), 1) > psnr(sharp, blurred, 1) + 1.5


def test_run_estimates_the_psf(tmp_path, caplog, rng):
    from tests.engine.test_blind import camera_made

    iio.imwrite(tmp_path / "blurred.png", camera_made(motion_psf(15, 40), rng))
    args = ["run", str(tmp_path / "blurred.png"), "--psf", "auto", "-o", str(tmp_path / "o.png")]
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert main(args) == 0
    assert "estimated blur: motion" in caplog.text
    assert iio.imread(tmp_path / "o.png").shape == (244, 242)


def test_run_refines_the_psf(tmp_path, caplog, rng):
    from tests.engine.test_blind import camera_made

    iio.imwrite(tmp_path / "blurred.png", camera_made(defocus_psf(5.0), rng))
    tifffile.imwrite(tmp_path / "psf.tif", defocus_psf(6.0).astype(np.float32))
    args = ["run", str(tmp_path / "blurred.png"), "--psf", str(tmp_path / "psf.tif")]
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert main([*args, "-o", str(tmp_path / "o.png"), "--refine-psf"]) == 0
    assert "PSF refined on the image" in caplog.text


def test_a_compressed_jpeg_is_deblurred_like_its_png(photo_files, caplog):
    from PIL import Image

    folder, blurred, sharp = photo_files
    Image.fromarray(blurred).save(folder / "q90.jpg", quality=90)
    Image.fromarray(blurred).save(folder / "q98.jpg", quality=98)
    assert read_image(folder / "q90.jpg").jpeg_step == pytest.approx(13.4, abs=0.1)
    psf = str(folder / "light.jpg")

    def run(name, *options):
        out = folder / f"{name}-out.png"
        args = ["run", str(folder / name), "--psf", psf, "-o", str(out), *options]
        assert main(args) == 0
        return psnr(sharp, iio.imread(out), 255)

    with caplog.at_level("INFO", logger="napari_deblur"):
        png = run("blurred.png")
        run("q98.jpg")
        assert "is compressed" not in caplog.text
        q90 = run("q90.jpg")
        assert "q90.jpg is compressed (JPEG steps of 13 grey levels)" in caplog.text
        # Its weight read on its finest detail, which the compression had
        # cleaned, was about 60 times too small: the result far worse than
        # the blurred photo.
        assert q90 > psnr(sharp, blurred, 255) + 2 and q90 > png - 1.5
        run("blurred.png", "--weight", "0.01", "--overwrite")
    assert "weight 0.01," in caplog.text


def test_a_compressed_jpeg_s_blur_is_estimated_on_the_detail_it_kept(tmp_path, caplog):
    from PIL import Image

    from tests.engine.test_blind import camera_made

    blurred = camera_made(gaussian_psf(2.0), np.random.default_rng(0))
    Image.fromarray(blurred).save(tmp_path / "q90.jpg", quality=90)
    args = ["run", str(tmp_path / "q90.jpg"), "--psf", "auto", "-o", str(tmp_path / "o.jpg")]
    with caplog.at_level("INFO", logger="napari_deblur"):
        assert main(args) == 0
    # Read on the whole band: a disc of 0.8 px.
    found = re.search(r"estimated blur: gaussian, sigma ([\d.]+) px", caplog.text)
    assert found is not None and float(found[1]) == pytest.approx(2.0, rel=0.1)


def test_a_compressed_point_light_photo_keeps_its_size(photo_files):
    from PIL import Image

    folder, blurred, sharp = photo_files
    _, light, _ = make_defocused_photo()
    Image.fromarray(light).save(folder / "q75.jpg", quality=75)
    assert main(["psf", str(folder / "q75.jpg"), "-o", str(folder / "psf.tif")]) == 0
    psf = tifffile.imread(folder / "psf.tif").sum(axis=-1)
    # Its noise read on its finest detail, which the compression had
    # cleaned, let the JPEG's ringing pass for light: a box of 65 x 71
    # samples and an error of 0.15 against the disc (0.08 now).
    truth = defocus_psf(5.0)
    side = max(*psf.shape, truth.shape[0])
    error = np.linalg.norm(
        resize_psf(psf / psf.sum(), (side, side)) - resize_psf(truth, (side, side))
    )
    assert max(psf.shape) <= 25 and error < 0.1 * np.linalg.norm(truth)
    # The same rule when the photo is given to deblur with: as good as the
    # PNG (it was 0.7-1.1 dB worse).
    iio.imwrite(folder / "light.png", light)
    results = []
    for name in ("q75.jpg", "light.png"):
        out = folder / f"{name}.png"
        args = ["run", str(folder / "blurred.png"), "--psf", str(folder / name), "-o", str(out)]
        assert main(args) == 0
        results.append(psnr(sharp, iio.imread(out), 255))
    assert results[0] > results[1] - 0.3


@pytest.mark.parametrize(
    ("name", "axes", "options"),
    [
        ("cells.tif", "ZCYX", {"channel_axis": 1}),
        ("movie.tif", "TZYX", {"time_axis": 0}),
        ("cells.ome.tif", "CZYX", {"channel_axis": 0}),
    ],
)
def test_hyperstacks_are_deblurred_by_their_own_axes(tmp_path, name, axes, options, rng):
    # Their channels were read as a fourth spatial axis, and --channel-axis,
    # which the message asked for, was refused for an image file.
    psf = gaussian_psf((1.5, 1.2, 1.2), ndim=3).astype(np.float32)
    shape = {"Z": 16, "C": 2, "T": 2, "Y": 24, "X": 24}
    scene = np.zeros([shape[a] for a in axes])
    scene[(slice(None),) * (len(axes) - 3) + (slice(4, 8), slice(8, 14), slice(9, 15))] = 200
    stack = rng.poisson(ndimage.gaussian_filter(scene, 1.0) + 10).astype(np.uint16)
    spacing = {"PhysicalSizeZ": 0.3, "PhysicalSizeY": 0.1, "PhysicalSizeX": 0.1}
    if name.endswith(".ome.tif"):
        tifffile.imwrite(tmp_path / name, stack, ome=True, metadata={"axes": axes, **spacing})
    else:
        metadata = {"axes": axes, "spacing": 0.3, "unit": "um"}
        tifffile.imwrite(
            tmp_path / name, stack, imagej=True, resolution=(10, 10), metadata=metadata
        )
    tifffile.imwrite(tmp_path / "psf.tif", psf)
    out = tmp_path / f"sharp-{name}"
    args = ["run", str(tmp_path / name), "--psf", str(tmp_path / "psf.tif"), "-o", str(out)]
    assert main([*args, "--max-iter", "5"]) == 0
    expected = deblur(stack, psf, max_iter=5, **options)
    result = tifffile.imread(out)
    assert result.dtype == np.uint16 and result.shape == stack.shape
    np.testing.assert_allclose(result, np.round(expected), atol=1)
    with tifffile.TiffFile(out) as written:
        assert written.series[0].axes == axes
    assert read_image(out).spacing == pytest.approx((0.3, 0.1, 0.1))


def test_a_bead_hyperstack_gives_one_psf_per_channel(tmp_path, capsys, rng):
    # Two colours of one bead, each its own width: one PSF each, on the C axis.
    widths = [(1.5, 1.0, 1.0), (2.0, 1.5, 1.5)]
    light = np.zeros((24, 2, 32, 32))
    for c, sigma in enumerate(widths):
        light[:, c] = gaussian_psf(sigma, shape=(24, 32, 32), ndim=3)
    bead = rng.poisson(light / light.max() * 3000 + 50).astype(np.uint16)
    metadata = {"axes": "ZCYX", "spacing": 0.3, "unit": "um"}
    tifffile.imwrite(
        tmp_path / "bead.tif", bead, imagej=True, resolution=(10, 10), metadata=metadata
    )
    assert main(["psf", str(tmp_path / "bead.tif"), "-o", str(tmp_path / "psf.tif")]) == 0
    psf = read_image(tmp_path / "psf.tif")
    assert psf.axes == "ZCYX" and psf.channel_axis == 1
    for c, sigma in enumerate(widths):
        truth = gaussian_psf(sigma, shape=psf.data[:, c].shape, ndim=3)
        assert np.abs(psf.data[:, c] - truth).sum() < 0.1
    # A scene of two such beads in each colour, deblurred colour by colour.
    scene = np.pad(light, ((0, 0), (0, 0), (8, 8), (8, 8))) + np.roll(
        np.pad(light, ((0, 0), (0, 0), (8, 8), (8, 8))), 12, axis=-1
    )
    stack = rng.poisson(scene / scene.max() * 2000 + 5).astype(np.uint16)
    tifffile.imwrite(
        tmp_path / "cells.tif", stack, imagej=True, resolution=(10, 10), metadata=metadata
    )
    args = ["run", str(tmp_path / "cells.tif"), "--psf", str(tmp_path / "psf.tif")]
    assert main([*args, "-o", str(tmp_path / "sharp.tif"), "--max-iter", "3"]) == 0
    expected = deblur(stack, psf.data, channel_axis=1, max_iter=3)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "sharp.tif"), np.round(expected), atol=1)
    # A colour photo's channels are not a hyperstack's: it was read as a 3D
    # PSF of three planes across.
    led = np.zeros((32, 32, 3), np.uint8)
    led[14:18, 14:18] = 250
    iio.imwrite(tmp_path / "led.png", led)
    args = ["run", str(tmp_path / "cells.tif"), "--psf", str(tmp_path / "led.png")]
    assert main([*args, "-o", str(tmp_path / "led-sharp.tif")]) == 1
    assert "holds colours" in capsys.readouterr().err

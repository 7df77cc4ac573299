"""The run command on Zarr stores, in chunks, and on Dask clusters."""

import logging
import warnings

import numpy as np
import pytest
import tifffile
import zarr

from napari_deblur._cli import main
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import gaussian_psf
from tests.conftest import cubes


@pytest.fixture
def stack_files(tmp_path, rng):
    """A fluorescence stack (beads on a dim background) as a chunked Zarr store, and its PSF."""
    truth = cubes(rng, (16, 128, 120), 80, 400.0, (2, 4, 4)) + 20
    psf = gaussian_psf((1.0, 1.5, 1.5))
    blurred = Convolution(psf, truth.shape, boundary="reflect").apply(truth)
    stack = rng.poisson(blurred).astype(np.float32)
    store = zarr.create_array(
        tmp_path / "stack.zarr", shape=stack.shape, chunks=(16, 64, 60), dtype="float32"
    )
    store[:] = stack
    tifffile.imwrite(tmp_path / "psf.tif", psf.astype(np.float32))
    return tmp_path, stack, truth


def error(a, truth):
    return np.sqrt(np.mean((np.asarray(a, float) - truth) ** 2))


def test_a_zarr_store_is_deblurred_into_a_zarr_store_chunk_by_chunk(stack_files):
    folder, stack, truth = stack_files
    args = ["run", str(folder / "stack.zarr"), "--psf", str(folder / "psf.tif"), "-q"]
    assert main([*args, "-o", str(folder / "sharp.zarr")]) == 0
    # A store's name completed by the shell with a slash names the store (a
    # store was written inside it).
    assert main([*args, "-o", str(folder / "sharp.zarr") + "/", "--overwrite"]) == 0
    assert not (folder / "sharp.zarr" / "stack.zarr").exists()
    result = zarr.open_array(folder / "sharp.zarr", mode="r")
    assert result.shape == stack.shape and result.dtype == np.float32
    assert result.chunks == (16, 64, 60)
    assert error(result[:], truth) < 0.8 * error(stack, truth)
    assert np.array_equal(zarr.open_array(folder / "stack.zarr", mode="r")[:], stack)
    assert sorted(p.name for p in folder.iterdir()) == ["psf.tif", "sharp.zarr", "stack.zarr"]


def test_a_zarr_store_keeps_its_integer_type_and_reports_clipping(tmp_path, rng, caplog):
    # The result was written as float32 whatever the input (values past
    # 65535 in a uint16 stack's result, and no word of it).
    truth = cubes(rng, (16, 64, 64), 20, 60000.0, (2, 4, 4)) + 500
    psf = gaussian_psf((1.0, 1.5, 1.5))
    blurred = Convolution(psf, truth.shape, boundary="reflect").apply(truth)
    stack = np.clip(rng.poisson(blurred), 0, 65535).astype(np.uint16)
    store = zarr.create_array(
        tmp_path / "stack.zarr", shape=stack.shape, chunks=(16, 32, 32), dtype="uint16"
    )
    store[:] = stack
    tifffile.imwrite(tmp_path / "psf.tif", psf.astype(np.float32))
    args = ["run", str(tmp_path / "stack.zarr"), "--psf", str(tmp_path / "psf.tif")]
    assert main([*args, "-o", str(tmp_path / "sharp.zarr"), "--max-iter", "10"]) == 0
    result = zarr.open_array(tmp_path / "sharp.zarr", mode="r")
    assert result.dtype == np.uint16
    assert "clipped to the range of uint16" in caplog.text


def test_an_existing_store_is_kept_and_mismatched_outputs_refused(stack_files, capsys):
    folder, stack, _ = stack_files
    args = ["run", str(folder / "stack.zarr"), "--psf", str(folder / "psf.tif"), "-q"]
    assert main([*args, "-o", str(folder / "stack.zarr")]) == 1
    assert main([*args, "-o", str(folder / "sharp.tif")]) == 1
    assert (
        main(
            [
                *args,
                "-o",
                str(folder / "sharp.zarr"),
                "--workers",
                "2",
                "--scheduler",
                "tcp://127.0.0.1:1",
            ]
        )
        == 1
    )
    # The input store's name with a slash: the result went into the store.
    assert main([*args, "-o", str(folder / "stack.zarr") + "/"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("napari-deblur: error:") for line in lines)
    assert "is an input" in lines[0] and "Zarr store" in lines[1] and "not both" in lines[2]
    assert "is an input" in lines[3]
    assert np.array_equal(zarr.open_array(folder / "stack.zarr", mode="r")[:], stack)
    assert sorted(p.name for p in (folder / "stack.zarr").iterdir()) == ["c", "zarr.json"]


def test_a_local_cluster_writes_what_the_threads_write(stack_files):
    folder, _, _ = stack_files
    args = ["run", str(folder / "stack.zarr"), "--psf", str(folder / "psf.tif"), "-q"]
    assert main([*args, "-o", str(folder / "threads.zarr")]) == 0
    assert main([*args, "-o", str(folder / "cluster.zarr"), "--workers", "2"]) == 0
    threads = zarr.open_array(folder / "threads.zarr", mode="r")[:]
    cluster = zarr.open_array(folder / "cluster.zarr", mode="r")[:]
    assert np.array_equal(threads, cluster)


def test_many_files_go_to_a_cluster_given_by_its_address(tmp_path, rng):
    from distributed import LocalCluster

    psf = gaussian_psf(1.5)
    truths, names = [], []
    for i in range(3):
        truth = cubes(rng, (1, 64, 64), 12, 300.0, (0, 4, 4))[0] + 10
        blurred = Convolution(psf, truth.shape, boundary="reflect").apply(truth)
        tifffile.imwrite(tmp_path / f"frame{i}.tif", rng.poisson(blurred).astype(np.uint16))
        truths.append(truth)
        names.append(str(tmp_path / f"frame{i}.tif"))
    tifffile.imwrite(tmp_path / "psf.tif", psf.astype(np.float32))
    args = ["run", *names, "--psf", str(tmp_path / "psf.tif"), "-q"]
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        assert (
            main([*args, "-o", str(tmp_path / "out"), "--scheduler", cluster.scheduler_address])
            == 0
        )
    assert main([*args, "-o", str(tmp_path / "here")]) == 0
    for i, truth in enumerate(truths):
        there = tifffile.imread(tmp_path / "out" / f"frame{i}.tif")
        here = tifffile.imread(tmp_path / "here" / f"frame{i}.tif")
        assert there.dtype == np.uint16 and np.array_equal(there, here)
        assert error(there, truth) < 0.8 * error(tifffile.imread(names[i]), truth)


@pytest.mark.parametrize("cluster", [[], ["--workers", "1"]])
def test_a_file_that_fails_does_not_stop_the_others(tmp_path, rng, capfd, caplog, cluster):
    caplog.set_level(logging.INFO)
    psf = gaussian_psf(1.5)
    good = rng.poisson(100 + 50 * rng.random((48, 48))).astype(np.uint16)
    tifffile.imwrite(tmp_path / "good.tif", good)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 cut short")
    tifffile.imwrite(tmp_path / "psf.tif", psf.astype(np.float32))
    args = ["run", str(tmp_path / "broken.tif"), str(tmp_path / "good.tif"), *cluster]
    assert (
        main([*args, "--psf", str(tmp_path / "psf.tif"), "-o", str(tmp_path / "out"), "-q"]) == 1
    )
    assert (tmp_path / "out" / "good.tif").exists()
    assert not (tmp_path / "out" / "broken.tif").exists()
    # The run's one line (the file's own goes to the log); the workers'
    # tracebacks (22 lines) stay quiet.
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Compute Failed" not in err
    assert err.strip().splitlines()[-1].startswith("napari-deblur: error: 1 of 2")
    # The file that worked reports here, from a worker too.
    assert "wrote" in caplog.text and "good.tif" in caplog.text


def test_a_tiff_is_deblurred_in_chunks_when_asked(stack_files):
    folder, stack, truth = stack_files
    tifffile.imwrite(folder / "stack.tif", stack)
    args = ["run", str(folder / "stack.tif"), "--psf", str(folder / "psf.tif"), "-q"]
    assert main([*args, "-o", str(folder / "whole.tif")]) == 0
    assert main([*args, "-o", str(folder / "chunked.tif"), "--chunks", "16,64,60"]) == 0
    whole = tifffile.imread(folder / "whole.tif")
    chunked = tifffile.imread(folder / "chunked.tif")
    assert chunked.shape == stack.shape and chunked.dtype == np.float32
    assert error(chunked, truth) < 1.1 * error(whole, truth) < 0.9 * error(stack, truth)


def test_a_failed_write_leaves_no_store_behind(tmp_path):
    import dask.array as da

    from napari_deblur._io import write_zarr

    data = da.ones((8, 8), chunks=4)

    def fails(graph):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_zarr(tmp_path / "out.zarr", data, compute=fails)
    assert list(tmp_path.iterdir()) == []
    write_zarr(tmp_path / "out.zarr", data)
    assert np.array_equal(zarr.open_array(tmp_path / "out.zarr", mode="r")[:], np.ones((8, 8)))
    with pytest.raises(FileExistsError):
        write_zarr(tmp_path / "out.zarr", data * 2)
    write_zarr(tmp_path / "out.zarr", data * 2, overwrite=True)
    assert zarr.open_array(tmp_path / "out.zarr", mode="r")[0, 0] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]
    # Irregular chunks (a short chunk merged into the last) are written
    # without Dask's warning of three lines.
    uneven = da.from_array(np.arange(200.0), chunks=((90, 110),))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_zarr(tmp_path / "uneven.zarr", uneven)
    assert np.array_equal(zarr.open_array(tmp_path / "uneven.zarr")[:], np.arange(200.0))


def test_a_run_stopped_on_a_cluster_leaves_nothing_behind(tmp_path, rng):
    # Cancelled tasks run on: the workers wrote into the half-written store
    # after it was removed, leaving a hidden store of chunks behind. A
    # termination request (a batch system's time limit) killed the run with
    # no clean-up at all.
    import signal
    import subprocess
    import sys
    import time

    frames = rng.poisson(100, (24, 192, 192)).astype(np.float32)
    store = zarr.create_array(
        tmp_path / "series.zarr", shape=frames.shape, chunks=(1, 192, 192), dtype="float32"
    )
    store[:] = frames
    tifffile.imwrite(tmp_path / "psf.tif", gaussian_psf(1.5).astype(np.float32))
    command = [sys.executable, "-m", "napari_deblur", "-q", "run", str(tmp_path / "series.zarr")]
    command += ["--psf", str(tmp_path / "psf.tif"), "-o", str(tmp_path / "out.zarr")]
    command += ["--time-axis", "0", "--max-iter", "40", "--workers", "2"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # Stopped once the workers write: a chunk in the hidden store.
    while not list(tmp_path.glob(".out.zarr.*/c")) and time.monotonic() < deadline:
        assert run.poll() is None, run.stderr.read()
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130
    assert err.strip().splitlines() == [
        "napari-deblur: interrupted; the output being written was not written"
    ]
    time.sleep(2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["psf.tif", "series.zarr"]


def test_an_ome_zarr_image_keeps_its_channels_and_voxel_size(tmp_path, rng):
    # Its C axis was read as a fourth spatial axis (the PSF refused for its
    # three), and its voxel size was neither read nor written.
    psf = gaussian_psf((1.0, 1.5, 1.5))
    op = Convolution(psf, (16, 48, 48), boundary="reflect")
    truths = [cubes(rng, (16, 48, 48), 25, 400.0, (2, 4, 4)) + 20 for _ in range(2)]
    stack = np.stack([rng.poisson(op.apply(t)) for t in truths]).astype(np.uint16)
    group = zarr.open_group(tmp_path / "cell.zarr", mode="w", zarr_format=2)
    group.create_array("0", shape=stack.shape, chunks=(1, 16, 48, 48), dtype="uint16")[:] = stack
    um = {"type": "space", "unit": "micrometer"}
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "c", "type": "channel"}] + [{"name": a, **um} for a in "zyx"],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [1, 0.3, 0.1, 0.1]}],
                }
            ],
        }
    ]
    # The bead stack taken with z steps of 0.15 um: twice the planes.
    bead = gaussian_psf((2.0, 1.5, 1.5)).astype(np.float32)
    voxel = {
        "resolution": (10.0, 10.0),
        "metadata": {"spacing": 0.15, "unit": "um", "axes": "ZYX"},
    }
    tifffile.imwrite(tmp_path / "bead.tif", bead, imagej=True, **voxel)
    args = ["run", str(tmp_path / "cell.zarr"), "--psf", str(tmp_path / "bead.tif"), "-q"]
    assert main([*args, "-o", str(tmp_path / "sharp.zarr")]) == 0
    out = zarr.open_group(tmp_path / "sharp.zarr", mode="r")
    assert out.metadata.zarr_format == 2
    (multiscale,) = out.attrs["multiscales"]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "z", "y", "x"]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([1, 0.3, 0.1, 0.1])
    result = out["0"][:]
    assert result.shape == stack.shape and result.dtype == np.uint16
    for channel, truth in enumerate(truths):
        assert error(result[channel], truth) < 0.8 * error(stack[channel], truth)
    # The sizes read are the ones a user would give.
    given = ["--spacing", "0.3,0.1,0.1", "--psf-spacing", "0.15,0.1,0.1"]
    assert main([*args, *given, "-o", str(tmp_path / "given.zarr")]) == 0
    assert np.array_equal(zarr.open_group(tmp_path / "given.zarr", mode="r")["0"][:], result)


def test_an_ome_zarr_05_image_is_read_with_its_axes(tmp_path):
    from napari_deblur._io import read_zarr

    group = zarr.open_group(tmp_path / "series.zarr", mode="w", zarr_format=3)
    group.create_array("0", shape=(3, 4, 8, 8), dtype="float32")
    axes = [{"name": "t", "type": "time", "unit": "second"}] + [
        {"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"
    ]
    scale = [{"type": "scale", "scale": [2.0, 500.0, 100.0, 100.0]}]
    multiscale = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    image = read_zarr(tmp_path / "series.zarr")
    assert image.axes == "TZYX" and image.time_axis == 0 and image.channel_axis is None
    assert image.spacing == pytest.approx((0.5, 0.1, 0.1))


def test_an_ome_zarr_result_keeps_the_inputs_axes_and_scale(tmp_path):
    # Axes without units, and a time step, were written back as scale 1; a
    # store without a scale was read as 1 um samples.
    from napari_deblur._io import read_zarr, write_zarr

    group = zarr.open_group(tmp_path / "in.zarr", mode="w", zarr_format=2)
    group.create_array("0", shape=(2, 4, 8, 8), dtype="float32")
    axes = [{"name": "t", "type": "time", "unit": "second"}] + [
        {"name": a, "type": "space"} for a in "zyx"
    ]
    scale = [{"type": "scale", "scale": [5.0, 0.25, 0.1, 0.1]}]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": scale}],
        }
    ]
    image = read_zarr(tmp_path / "in.zarr")
    assert image.axes == "TZYX" and image.spacing is None
    write_zarr(tmp_path / "out.zarr", image.data, ome=image.ome)
    (written,) = zarr.open_group(tmp_path / "out.zarr", mode="r").attrs["multiscales"]
    assert written["axes"] == axes
    assert written["datasets"][0]["coordinateTransformations"] == scale
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{**a, "unit": "micrometer"} if a["type"] == "space" else a for a in axes],
            "datasets": [{"path": "0"}],
        }
    ]
    assert read_zarr(tmp_path / "in.zarr").spacing is None

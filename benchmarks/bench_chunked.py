"""Deblurring in chunks: agreement with the whole image, clusters, and a 4 GB Zarr stack.

Sections (``--sections 123``):

1. Chunks against the whole image in memory, for each method that can be
   chunked: with the whole image's plan (the difference is the chunking's
   own), and each deciding for itself (the plan made on the centre chunk).
2. A Zarr time series through ``napari-deblur run --workers N``: a local
   Dask cluster of 1 and 2 worker processes, median of several runs.
3. A 4 GB float32 Zarr stack through ``napari-deblur run``: wall time and
   the process's peak resident memory.
4. The margin: chunks against the whole image (same plan, float64) as the
   margin's PSF spreads per root iteration (``_chunked.REACH``) grow, for a
   Gaussian and for a disc (whose light fills its box).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile
import zarr
from scipy import ndimage
from skimage import data

from napari_deblur import _chunked, deblur
from napari_deblur._api import deblur_steps
from napari_deblur._chunked import REACH, overlap
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf

SIGMA = 1.5


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def chunks_against_whole(chunk: int) -> None:
    """Section 1: the camera photo as photon counts, every chunkable method."""
    print("### 1. Chunks against the whole image (camera 512 x 512, Gaussian PSF sigma 1.5)\n")
    rng = np.random.default_rng(0)
    scene = data.camera().astype(np.float64) / 255 * 300 + 20
    psf = gaussian_psf(SIGMA)
    k = psf.shape[0]
    blurred = rng.poisson(Convolution(psf, scene.shape, boundary="reflect").apply(scene))
    inner = (slice(k, -k), slice(k, -k))

    def psnr(a):
        return 10 * np.log10(320**2 / np.mean((a[inner] - scene[inner]) ** 2))

    print(
        f"chunks of {chunk} x {chunk}; differences in the interior (a PSF width in from the "
        "edges), as a fraction of the whole result's range. Own plan: decided on the "
        f"{chunk} x {chunk} block at the centre (1/16 of the image, as a 2048 x 2048 "
        "centre is of a 8192 x 8192 image)\n"
    )
    # The centre block is SAMPLE voxels: here a chunk's.
    _chunked.SAMPLE = chunk * chunk
    print(
        "| method | type | iterations | margin | same plan: difference | "
        "own plan: difference | PSNR whole | PSNR chunked |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for method in REACH:
        for dtype in (np.float64, np.float32):
            image = blurred.astype(dtype)
            *_, last = deblur_steps(image, psf, method=method)
            whole, plan = last.image, last.plan
            lazy = da.from_array(image, chunks=chunk)
            same = deblur(lazy, psf, plan=plan).compute()
            own = deblur(lazy, psf, method=method).compute()
            margin = overlap(method, plan.psf_shape, plan.psf_spread, plan.iterations)[0]
            scale = np.abs(whole).max()
            print(
                f"| {method} | {np.dtype(dtype).name} | {plan.iterations} | {margin} "
                f"| {np.abs(same - whole)[inner].max() / scale:.1e} "
                f"| {np.abs(own - whole)[inner].max() / scale:.1e} "
                f"| {psnr(whole):.2f} | {psnr(own):.2f} |"
            )
    print()


def fluorescence_series(path: Path, frames: int, size: int, chunk: int) -> None:
    """A Zarr time series of blurred beads in photon counts, written frame by frame.

    One scene of beads on a smooth background drifts a sample a frame, with
    fresh photon noise each time; uncompressed, so that writing it is quick.
    """
    store = zarr.create_array(
        path,
        shape=(frames, size, size),
        chunks=(1, chunk, chunk),
        dtype="float32",
        compressors=None,
    )
    psf = gaussian_psf(SIGMA)
    rng = np.random.default_rng(1)
    scene = np.full((size, size), 20.0)
    spots = rng.integers(0, size, (size * size // 400, 2))
    scene[spots[:, 0], spots[:, 1]] = 2000.0
    scene = ndimage.uniform_filter(scene, 3) + 30 * ndimage.gaussian_filter(
        rng.random((size, size)), 8
    )
    blurred = ndimage.convolve(scene, psf, mode="wrap")
    for t in range(frames):
        store[t] = rng.poisson(np.roll(blurred, t, axis=1)).astype(np.float32)
    tifffile.imwrite(path.parent / "psf.tif", psf.astype(np.float32))


def run_cli(*args: str) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of ``napari-deblur run ARGS``."""
    command = [sys.executable, "-m", "napari_deblur", "run", *args, "-q", "--overwrite"]
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({status})")
    return elapsed, usage.ru_maxrss * 1024 / 1e9


def cluster_throughput(scratch: Path, frames: int, size: int, repeats: int) -> None:
    """Section 2: a local cluster of 1 and 2 workers on the same Zarr series."""
    print(f"### 2. Local Dask cluster, {frames} frames of {size} x {size} (one chunk a frame)\n")
    series = scratch / "series.zarr"
    fluorescence_series(series, frames, size, size)
    psf = str(scratch / "psf.tif")
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for workers in (1, 2):
            out = str(scratch / f"series-{workers}.zarr")
            args = (str(series), "--psf", psf, "-o", out, "--time-axis", "0")
            elapsed, _ = run_cli(*args, "--workers", str(workers))
            times[workers].append(elapsed)
    one, two = (statistics.median(times[w]) for w in (1, 2))
    same = np.array_equal(
        zarr.open_array(scratch / "series-1.zarr")[:],
        zarr.open_array(scratch / "series-2.zarr")[:],
    )
    print("| workers | median wall time (s) | runs (s) | frames per second |")
    print("|---:|---:|---|---:|")
    for workers, median in ((1, one), (2, two)):
        runs = ", ".join(f"{t:.1f}" for t in times[workers])
        print(f"| {workers} | {median:.1f} | {runs} | {frames / median:.2f} |")
    print(f"\n2 workers / 1: {one / two:.2f}x the throughput; results identical: {same}\n")


def big_stack(scratch: Path, frames: int, size: int, chunk: int, max_iter: int) -> None:
    """Section 3: a float32 Zarr stack of `frames` x `size` x `size` (4 GB by default)."""
    gigabytes = frames * size * size * 4 / 1e9
    print(f"### 3. A {gigabytes:.1f} GB float32 Zarr stack ({frames} x {size} x {size})\n")
    stack = scratch / "big.zarr"
    start = time.perf_counter()
    fluorescence_series(stack, frames, size, chunk)
    print(f"written in {time.perf_counter() - start:.0f} s, chunks 1 x {chunk} x {chunk}\n")
    args = (str(stack), "--psf", str(scratch / "psf.tif"), "-o", str(scratch / "big-out.zarr"))
    elapsed, peak = run_cli(*args, "--time-axis", "0", "--max-iter", str(max_iter))
    result = zarr.open_array(scratch / "big-out.zarr")
    print("| stack (GB) | wall time (s) | peak resident memory (GB) | result |")
    print("|---:|---:|---:|---|")
    print(
        f"| {gigabytes:.2f} | {elapsed:.0f} | {peak:.2f} | "
        f"{'x'.join(map(str, result.shape))} {result.dtype} |"
    )
    print()


def margins(chunk: int) -> None:
    """Section 4: the chunking's own difference against the margin's factor."""
    print("### 4. Margin factor (camera 512 x 512, float64, Gaussian sigma 1.0 and disc r=4)\n")
    rng = np.random.default_rng(0)
    scene = data.camera().astype(np.float64) / 255 * 300 + 20
    factors = (3.0, 6.0, 9.0, 12.0)
    print("| method | PSF | iterations | " + " | ".join(f"factor {f:g}" for f in factors) + " |")
    print("|---|---|---:|" + "---:|" * len(factors))
    for name, psf in (("gaussian 1.0", gaussian_psf(1.0)), ("disc 4", defocus_psf(4.0))):
        k = psf.shape[0]
        image = rng.poisson(Convolution(psf, scene.shape, boundary="reflect").apply(scene))
        image = image.astype(np.float64)
        for method in ("fista_tv", "landweber", "rl_tv", "admm_tv"):
            *_, last = deblur_steps(image, psf, method=method)
            whole, plan = last.image, last.plan
            cells = []
            for factor in factors:
                chosen = REACH[method]
                REACH[method] = factor
                try:
                    margin = overlap(method, plan.psf_shape, plan.psf_spread, plan.iterations)[0]
                    chunked = deblur(da.from_array(image, chunks=chunk), psf, plan=plan).compute()
                finally:
                    REACH[method] = chosen
                difference = np.abs(chunked - whole)[k:-k, k:-k].max() / np.abs(whole).max()
                cells.append(f"{difference:.1e} ({margin})")
            print(f"| {method} | {name} | {plan.iterations} | " + " | ".join(cells) + " |")
    print("\n(margin in samples in brackets; the factor, in standard deviations of the PSF's ")
    print("light per root iteration, each method uses: ", end="")
    print(", ".join(f"{m} {f:g}" for m, f in REACH.items()) + ")\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="1234")
    parser.add_argument("--scratch", default="/tmp/napari-deblur-bench-chunked")
    parser.add_argument("--chunk", type=int, default=128, help="section 1's chunk size")
    parser.add_argument("--frames", type=int, default=16, help="section 2's time points")
    parser.add_argument("--size", type=int, default=1024, help="section 2's frame size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big-frames", type=int, default=1024)
    parser.add_argument("--big-size", type=int, default=1024)
    parser.add_argument("--big-chunk", type=int, default=512)
    parser.add_argument("--max-iter", type=int, default=10, help="section 3's iteration cap")
    args = parser.parse_args()
    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    print(f"machine: {machine()}\n")
    try:
        if "1" in args.sections:
            chunks_against_whole(args.chunk)
        if "2" in args.sections:
            cluster_throughput(scratch, args.frames, args.size, args.repeats)
        if "3" in args.sections:
            big_stack(scratch, args.big_frames, args.big_size, args.big_chunk, args.max_iter)
        if "4" in args.sections:
            margins(args.chunk)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

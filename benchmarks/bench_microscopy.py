"""Microscopy: real stacks against scikit-image, a bead's extent, and 3D speed and memory.

Run: python benchmarks/bench_microscopy.py [--size 256] [--iterations 50] [--sections 123456]

1. ``../shared/data/microscopy-bars`` (synthetic hollow bars, ground truth):
   the default ``deblur`` against ``skimage.restoration.richardson_lucy``
   tuned by oracle on its iteration count. The error is the relative L2
   error after the best scale (the data's units are arbitrary).
2. ``../shared/data/microscopy-bead`` (a real widefield bead stack and its
   PSF, no ground truth): the bead's FWHM along z, y and x before and after;
   the PSF distilled from the bead stack itself (background, focus, FWHM).
3. Bead-size correction: three beads of a known diameter imaged through a
   known PSF (0.2 x 0.1 x 0.1 um voxels, Poisson noise on a camera offset);
   the distilled PSF's error against the true one with and without
   ``bead_diameter``.
4. A ``size``^3 float32 stack, ``iterations`` Richardson-Lucy iterations:
   time and peak memory of napari-deblur's and of scikit-image's, each in a
   fresh process, in the same run.
5. A camera's offset: the bars of section 1 (their ground truth) blurred by
   a widefield PSF (NA 1.2, water, 0.2 x 0.1 x 0.1 um voxels), photon
   counts plus read noise of 2 counts on offsets of 0, 100 and 1000; the
   default's relative error with the offset taken off its result.
6. Thin stacks under a deeper PSF: 300 cubes in a widefield scene (NA 1.3,
   520 nm, 0.2 x 0.1 x 0.1 um voxels, a 41-plane PSF), stacks of 8 to 30
   of its planes, Poisson noise; the default (which cuts the PSF to
   ``2 n - 1`` planes) against the PSF cut by hand to the stack's planes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import tifffile
from _common import machine
from scipy import ndimage
from skimage.restoration import richardson_lucy

from napari_deblur import deblur, deblur_steps, psf_from_point_source
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf, resize_psf, widefield_psf

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

CHILD = """
import json, resource, sys, time
import numpy as np
size, iterations, which = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
z, y, x = np.mgrid[:15, :15, :15] - 7
psf = np.exp(-(z**2 / 18 + (y**2 + x**2) / 4)).astype(np.float32)
psf /= psf.sum()
stack = rng.poisson(20, (size,) * 3).astype(np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if which == "skimage":
    from skimage.restoration import richardson_lucy
    richardson_lucy(stack, psf, num_iter=iterations, clip=False)
else:
    from napari_deblur.engine.operators import Convolution
    from napari_deblur.engine.solvers import MaxIterations, RichardsonLucy
    op = Convolution(psf, stack.shape, boundary="zero")
    RichardsonLucy(op, stop=MaxIterations(iterations)).run(stack)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps([before * 1024, peak * 1024, elapsed]))
"""


def relative_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Relative L2 error of `estimate` scaled by least squares onto `truth`."""
    scale = np.vdot(estimate.ravel(), truth.ravel()) / np.vdot(estimate.ravel(), estimate.ravel())
    return float(np.linalg.norm(scale * estimate - truth) / np.linalg.norm(truth))


def bars() -> None:
    folder = DATA / "microscopy-bars"
    observed = tifffile.imread(folder / "data.tif").astype(np.float32)
    truth = tifffile.imread(folder / "actual.tif").astype(np.float32)
    kernel = tifffile.imread(folder / "kernel.tif").astype(np.float32)
    print("### 1. Hollow bars (32 x 64 x 64, ground truth)\n")
    print("| method | iterations | relative L2 error |")
    print("|---|---:|---:|")
    print(f"| blurred stack | | {relative_error(observed, truth):.4f} |")
    best = (np.inf, 0)
    for count in (1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200):
        out = richardson_lucy(observed, kernel / kernel.sum(), num_iter=count, clip=False)
        best = min(best, (relative_error(out, truth), count))
    print(f"| skimage RL, oracle iteration count | {best[1]} | {best[0]:.4f} |")
    ours = deblur(observed, kernel)
    print(f"| napari-deblur default | (auto) | {relative_error(ours, truth):.4f} |\n")


def camera_offset() -> None:
    truth = tifffile.imread(DATA / "microscopy-bars" / "actual.tif")[:, :64, :64]
    psf = widefield_psf(
        (21, 31, 31), wavelength=0.52, na=1.2, voxel_size=(0.2, 0.1, 0.1), refractive_index=1.33
    )
    print("### 5. A camera's offset (bars, widefield PSF, read noise 2 counts)\n")
    print("| photons at the brightest | offset | gain found | offset found | relative L2 error |")
    print("|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for photons in (300, 3000):
        scene = truth / truth.max() * photons
        blurred = Convolution(psf, scene.shape, boundary="zero").apply(scene)
        counts = rng.poisson(np.clip(blurred, 0, None)) + rng.normal(0, 2.0, scene.shape)
        for offset in (0, 100, 1000):
            *_, last = deblur_steps((counts + offset).astype(np.float32), psf)
            gain, floor = last.plan.gain[0], last.plan.floor[0]
            found = max(0.0, -floor / gain)
            error = relative_error(last.image - offset, scene)
            print(f"| {photons} | {offset} | {gain:.3f} | {found:.1f} | {error:.4f} |")
    print()


def fwhm_along(volume: np.ndarray, axis: int) -> float:
    """FWHM in samples of the profile through the brightest voxel along `axis`."""
    peak = np.unravel_index(np.argmax(volume), volume.shape)
    index = list(peak)
    index[axis] = slice(None)
    profile = volume[tuple(index)].astype(np.float64)
    profile -= np.median(volume)
    half = profile.max() / 2
    above = np.flatnonzero(profile >= half)
    lo, hi = above[0], above[-1]
    # Linear interpolation of both crossings.
    left = lo - (profile[lo] - half) / (profile[lo] - profile[lo - 1]) if lo > 0 else lo
    right = (
        hi + (profile[hi] - half) / (profile[hi] - profile[hi + 1])
        if hi < len(profile) - 1
        else hi
    )
    return float(right - left)


def bead() -> None:
    folder = DATA / "microscopy-bead"
    observed = tifffile.imread(folder / "data.tif").astype(np.float32)
    kernel = tifffile.imread(folder / "kernel.tif").astype(np.float32)
    ours = deblur(observed, kernel)
    print("### 2. A real bead (64 x 64 x 64 widefield stack and its PSF)\n")
    print("| axis | FWHM before (voxels) | after | shrink |")
    print("|---|---:|---:|---:|")
    for axis, name in enumerate("zyx"):
        before, after = fwhm_along(observed, axis), fwhm_along(ours, axis)
        print(f"| {name} | {before:.2f} | {after:.2f} | {1 - after / before:.0%} |")
    start = time.perf_counter()
    distilled = psf_from_point_source(observed)
    elapsed = time.perf_counter() - start
    print("\nThe PSF distilled from the bead stack (`psf_from_point_source`):\n")
    print("| background | stack minimum | focus (z, y, x) | FWHM z x y x x (voxels) | time (s) |")
    print("|---:|---:|---|---|---:|")
    centre = ", ".join(f"{c:.1f}" for c in distilled.centres[0])
    fwhm = " x ".join(f"{w:.2f}" for w in distilled.fwhm)
    print(
        f"| {distilled.background:.1f} | {observed.min():.1f} | {centre} | {fwhm} "
        f"| {elapsed:.2f} |\n"
    )


def psf_error(measured: np.ndarray, truth: np.ndarray) -> float:
    common = tuple(max(a, b) for a, b in zip(measured.shape, truth.shape))
    a, b = resize_psf(measured, common), resize_psf(truth, common)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def bead_size() -> None:
    spacing = np.array([0.2, 0.1, 0.1])
    sigma = np.array([3.0, 1.5, 1.5])
    psf = gaussian_psf(sigma, ndim=3, shape=(25, 13, 13))
    rng = np.random.default_rng(0)
    print("### 3. Bead-size correction (3 beads, true PSF FWHM 1.41 x 0.35 x 0.35 um)\n")
    print("| bead diameter (um) | error as seen | error, size removed | FWHM (um) | time (s) |")
    print("|---:|---:|---:|---|---:|")
    for diameter in (0.2, 0.5, 1.0, 1.5):
        scene = np.zeros((72, 96, 96))
        for position in [(34, 25, 30), (38, 64, 40), (36, 40, 72)]:
            scene[position] = 1
        ball = defocus_psf(diameter / 2 / spacing, edge=0.05)
        light = ndimage.convolve(ndimage.convolve(scene, ball, mode="constant"), psf)
        stack = rng.poisson(light / light.max() * 3000 + 100).astype(np.uint16)
        seen = psf_from_point_source(stack, sources="auto")
        start = time.perf_counter()
        corrected = psf_from_point_source(
            stack, sources="auto", bead_diameter=diameter, spacing=spacing
        )
        elapsed = time.perf_counter() - start
        fwhm = " x ".join(f"{w * d:.2f}" for w, d in zip(corrected.fwhm, spacing))
        print(
            f"| {diameter} | {psf_error(seen.psf, psf):.3f} "
            f"| {psf_error(corrected.psf, psf):.3f} | {fwhm} | {elapsed:.2f} |"
        )
    print()


def speed(size: int, iterations: int) -> None:
    print(f"### 4. {size}^3 float32 stack, {iterations} Richardson-Lucy iterations\n")
    print("| implementation | time (s) | peak - baseline memory (MB) | / float32 stack |")
    print("|---|---:|---:|---:|")
    times = {}
    for which in ("skimage", "napari-deblur"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps([size, iterations, which])],
            capture_output=True,
            text=True,
            check=True,
        )
        before, peak, elapsed = json.loads(out.stdout.strip().splitlines()[-1])
        times[which] = elapsed
        stack = size**3 * 4
        print(
            f"| {which} | {elapsed:.1f} | {(peak - before) / 1e6:.0f} "
            f"| {(peak - before) / stack:.1f} |"
        )
    print(f"\nnapari-deblur is {times['skimage'] / times['napari-deblur']:.2f}x faster\n")


def thin_stacks() -> None:
    rng = np.random.default_rng(0)
    psf = widefield_psf((41, 31, 31), wavelength=0.52, na=1.3, voxel_size=(0.2, 0.1, 0.1))
    psf = (psf / psf.sum()).astype(np.float32)
    scene = np.zeros((80, 96, 96))
    for _ in range(300):
        z, y, x = rng.integers(3, 77), rng.integers(4, 92), rng.integers(4, 92)
        scene[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] = 100
    light = Convolution(psf, scene.shape, boundary="zero").apply(scene)
    print("### 6. Thin stacks under a 41-plane widefield PSF (relative L2 error)\n")
    print("| planes | blurred | default (PSF cut to) | PSF cut to the stack's planes |")
    print("|---:|---:|---:|---:|")
    for n in (8, 12, 20, 30):
        planes = slice(40 - n // 2, 40 - n // 2 + n)
        stack = rng.poisson(light[planes].clip(0) + 2).astype(np.float32)
        truth = scene[planes] + 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            default = deblur(stack, psf)
        m = n - 1 + n % 2
        by_hand = deblur(stack, psf[20 - m // 2 : 21 + m // 2])
        print(
            f"| {n} | {relative_error(stack, truth):.3f} "
            f"| {relative_error(default, truth):.3f} ({min(41, 2 * n - 1)}) "
            f"| {relative_error(by_hand, truth):.3f} ({m}) |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--sections", default="123456", help="which sections to run, e.g. 4")
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    if DATA.is_dir():
        if "1" in args.sections:
            bars()
        if "2" in args.sections:
            bead()
        if "5" in args.sections:
            camera_offset()
    elif set("125") & set(args.sections):
        print(f"real data not found at {DATA}: sections 1, 2 and 5 skipped\n")
    if "3" in args.sections:
        bead_size()
    if "4" in args.sections:
        speed(args.size, args.iterations)
    if "6" in args.sections:
        thin_stacks()


if __name__ == "__main__":
    main()

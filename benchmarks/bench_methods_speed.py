"""Speed of every method: per iteration, the default on a 2048x2048 photo, time to quality.

Run: python benchmarks/bench_methods_speed.py [--size 2048] [--repeats 3]

1. The cost of one iteration of each method, relative to two real FFT pairs
   on the padded grid of the unknown-boundary model, on a float32 image
   (medians; the pairs are timed between the iterations).
2. The wall time of the default (``deblur`` with nothing set) on an sRGB
   8-bit photo of that size with a point-light photo as the PSF.
3. The time until the default's estimate is as good (PSNR) as the best
   scikit-image Richardson-Lucy, and the time scikit-image takes to run
   that best iteration count, on the same camera-made photo.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import fft_pair, machine, psnr
from skimage import data, transform
from skimage.restoration import richardson_lucy

from napari_deblur import deblur, deblur_steps
from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.methods import METHODS, build_solver
from napari_deblur.engine.noise import mean_noise_variance
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.point_source import PSFQualityWarning
from napari_deblur.engine.psf import defocus_psf


def camera_photo(
    size: int, psf: np.ndarray, rng, photons: float = 3000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blurred sRGB uint8, point-light photo, sharp sRGB) of a `size` frame."""
    k = psf.shape[0]
    scene = transform.resize(data.camera() / 255.0, (size + k - 1,) * 2, order=3)
    scene = srgb_to_linear(np.clip(scene, 0, 1))
    blurred = Convolution(psf, (size, size), boundary="valid").apply(scene)
    noisy = rng.poisson(np.clip(blurred, 0, None) * photons) / photons + rng.normal(
        0, 0.002, blurred.shape
    )
    photo = np.round(linear_to_srgb(np.clip(noisy, 0, 1)) * 255).astype(np.uint8)
    c = k - 1 - k // 2
    sharp = np.round(linear_to_srgb(scene[c : c + size, c : c + size]) * 255)
    light = np.zeros((4 * k, 4 * k))
    light[k : 2 * k, 2 * k : 3 * k] = psf / psf.max() * 0.8
    light = rng.poisson((light + 0.02) * 20000) / 20000
    light = np.round(linear_to_srgb(np.clip(light, 0, 1)) * 255).astype(np.uint8)
    return photo, light, sharp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--iterations", type=int, default=12, help="per method, per-iteration part"
    )
    args = parser.parse_args()
    n = args.size
    rng = np.random.default_rng(5)
    psf = defocus_psf(6.5).astype(np.float32)
    print(f"machine: {machine()}; {n}x{n}, PSF {psf.shape}\n")

    photo, light, sharp = camera_photo(n, psf, rng)
    linear = srgb_to_linear(photo / 255.0).astype(np.float32)[None]
    op = Convolution(psf[None], linear.shape, boundary="valid", batch_ndim=1)
    variance = mean_noise_variance(linear, batch_ndim=1)
    print(f"padded grid {op.fft_shape}; each iteration is followed by two real FFT pairs")
    print("of that grid, timed alone, so that both see the same load of this shared machine\n")
    print("| method | iterations timed | one iteration (s) | two FFT pairs (s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for method in METHODS[1:]:
        solver, _ = build_solver(method, op, linear, variance=variance, max_iter=args.iterations)
        steps = solver.iterate(linear)
        # The first step includes setting up (transfer functions, weights).
        next(steps)
        iteration_times, pair_times = [], []
        while True:
            start = time.perf_counter()
            if next(steps, None) is None:
                break
            iteration_times.append(time.perf_counter() - start)
            pair_times.append(2 * fft_pair(op.fft_shape, 1))
        if not iteration_times:
            print(f"| {method} | closed form | | | |")
            continue
        iteration, pairs = float(np.median(iteration_times)), float(np.median(pair_times))
        print(
            f"| {method} | {len(iteration_times)} | {iteration:.3f} | {pairs:.3f} "
            f"| {iteration / pairs:.2f} |"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PSFQualityWarning)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = deblur(photo, light)
            times.append(time.perf_counter() - start)
        default_time = float(np.median(times))
        print(
            f"\ndefault deblur of the {n}x{n} sRGB photo: {default_time:.2f} s "
            f"(median of {args.repeats}), "
            f"PSNR {psnr(sharp, photo):.2f} -> {psnr(sharp, result):.2f} dB"
        )

    for photons in (3000, 100000):
        photo, light, sharp = camera_photo(n, psf, rng, photons)
        time_to_quality(photo, light, sharp, psf, photons)


def time_to_quality(photo, light, sharp, psf, photons) -> None:
    """Time for the default to reach the best skimage RL, against skimage's own time."""
    linear_photo = srgb_to_linear(photo / 255.0).astype(np.float32)
    best = (-np.inf, 0)
    for count in (1, 2, 3, 5, 8, 12, 20, 30, 50, 80):
        out = richardson_lucy(linear_photo, psf, num_iter=count, clip=False)
        best = max(best, (psnr(sharp, linear_to_srgb(out) * 255), count))
    start = time.perf_counter()
    richardson_lucy(linear_photo, psf, num_iter=best[1], clip=False)
    skimage_time = time.perf_counter() - start
    reached = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PSFQualityWarning)
        # The solver's time only: measuring each step's PSNR is not counted.
        elapsed = 0.0
        clock = time.perf_counter()
        for step in deblur_steps(photo, light):
            elapsed += time.perf_counter() - clock
            if psnr(sharp, step.image) >= best[0]:
                reached = (elapsed, step.iteration)
                break
            clock = time.perf_counter()
    print(
        f"\n{photons} photons: oracle-tuned skimage RL {best[0]:.2f} dB at {best[1]} "
        f"iterations, {skimage_time:.2f} s"
    )
    if reached is None:
        print("the default never reached it")
    else:
        print(
            f"default reaches it after {reached[1]} iterations in {reached[0]:.2f} s: "
            f"{reached[0] / skimage_time:.2f} of skimage's time"
        )


if __name__ == "__main__":
    main()

"""Beside another busy process: a blur estimate and a deblur, alone and two at once.

Run: python benchmarks/bench_contention.py [--repeats 3] [--timeout 300]

Each job runs in a Python process of its own (``bench_contention.py --job
NAME`` prints the job's wall time, imports and data left out); "two at once"
starts two such processes together, as a second run, a Dask worker process
or any other busy program on the machine would. Jobs:

- ``estimate``: ``estimate_blur`` of the camera photo's 256 px centre,
  blurred by a Gaussian of sigma 2.5 in linear light, 3000 photons, sRGB
  8-bit (the GCV search calls its criterion thousands of times);
- ``deblur``: ``deblur`` of the demo photo with its point-light photo.

Prints the median wall time of each job alone and with a twin; a job that
outlives `timeout` counts as `timeout`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings

import numpy as np
from _common import machine

JOBS = ("estimate", "deblur")


def job(name: str) -> float:
    """Run the job `name` once in this process; its wall time in seconds."""
    from skimage import data

    from napari_deblur import deblur
    from napari_deblur._sample_data import make_defocused_photo
    from napari_deblur.engine.blind import estimate_blur
    from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
    from napari_deblur.engine.operators import Convolution
    from napari_deblur.engine.psf import gaussian_psf

    warnings.simplefilter("ignore")
    if name == "estimate":
        rng = np.random.default_rng(0)
        scene = srgb_to_linear(data.camera()[100:356, 150:406] / 255.0)
        psf = gaussian_psf(2.5)
        frame = tuple(n - k + 1 for n, k in zip(scene.shape, psf.shape))
        blurred = Convolution(psf, frame, boundary="valid").apply(scene)
        noisy = rng.poisson(np.clip(blurred, 0, None) * 3000) / 3000
        photo = np.round(linear_to_srgb(np.clip(noisy, 0, 1)) * 255).astype(np.uint8)
        start = time.perf_counter()
        estimate_blur(photo)
    else:
        blurred, light, _ = make_defocused_photo()
        start = time.perf_counter()
        deblur(blurred, light, channel_axis=-1)
    return time.perf_counter() - start


def run_together(name: str, count: int, timeout: float) -> list[float]:
    """Wall times of `count` processes running job `name` at once."""
    command = [sys.executable, __file__, "--job", name]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)
    ]
    times = []
    for process in processes:
        try:
            out, _ = process.communicate(timeout=timeout)
            times.append(float(out.split()[-1]))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            times.append(timeout)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--job", choices=JOBS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(f"{job(args.job):.3f}")
        return
    print(f"machine: {machine()}\n")
    print("| job | alone (s) | two at once (s) | two at once / alone |")
    print("|---|---:|---:|---:|")
    for name in JOBS:
        alone, together = [], []
        for _ in range(args.repeats):
            alone += run_together(name, 1, args.timeout)
            together += run_together(name, 2, args.timeout)
        ratio = np.median(together) / np.median(alone)
        print(
            f"| {name} | {np.median(alone):.2f} | {np.median(together):.2f} | {ratio:.1f} |",
            flush=True,
        )
    print(f"\nmedians of {args.repeats} runs alone and {2 * args.repeats} processes two at once")


if __name__ == "__main__":
    main()

"""Speed of Wiener and Richardson-Lucy against scikit-image, and against the FFT itself.

Run: python benchmarks/bench_speed.py [--size 2048] [--psf 15] [--repeats 5]

Prints a Markdown table of median wall times over the repeats, all measured
in the same run on the same float32 input, and the cost of one
Richardson-Lucy iteration relative to two real FFT pairs on the grid the
solver uses.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy
import scipy.fft
import skimage
from _common import fft_pair, machine, median_time
from skimage import data, transform
from skimage.restoration import richardson_lucy, wiener

from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf
from napari_deblur.engine.solvers import MaxIterations, RichardsonLucy, Wiener


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--psf", type=int, default=15, help="PSF size (odd)")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    n, k, iterations, repeats = args.size, args.psf, args.iterations, args.repeats
    psf = defocus_psf((k - 2) / 2).astype(np.float32)
    assert psf.shape == (k, k), psf.shape
    scene = transform.resize(data.camera() / 255.0, (n, n), order=1).astype(np.float32)
    rng = np.random.default_rng(1)
    image = Convolution(psf, (n, n), boundary="symmetric").apply(scene)
    image = np.clip(image + rng.normal(0, 0.01, image.shape).astype(np.float32), 0, None)

    valid = Convolution(psf, image.shape, boundary="valid")
    zero = Convolution(psf, image.shape, boundary="zero")
    periodic = Convolution(psf, image.shape, boundary="periodic")
    steps = {}

    def ours_wiener_default():
        steps["wiener"] = sum(1 for _ in Wiener(valid).iterate(image))

    rows = {
        "real FFT pair, image size": lambda: fft_pair(image.shape, repeats),
        "real FFT pair, padded grid": lambda: fft_pair(valid.fft_shape, repeats),
        "skimage wiener (periodic, balance given)": lambda: median_time(
            lambda: wiener(image, psf, balance=0.01), repeats
        ),
        "ours Wiener (periodic, nsr given)": lambda: median_time(
            lambda: Wiener(periodic, nsr=0.01).run(image), repeats
        ),
        "ours Wiener (periodic, nsr by GCV)": lambda: median_time(
            lambda: Wiener(periodic).run(image), repeats
        ),
        "ours Wiener (valid boundary, PCG, default)": lambda: median_time(
            ours_wiener_default, repeats
        ),
        f"skimage richardson_lucy, {iterations} it (zero boundary)": lambda: median_time(
            lambda: richardson_lucy(image, psf, num_iter=iterations, clip=False), repeats
        ),
        f"ours Richardson-Lucy, {iterations} it (zero boundary)": lambda: median_time(
            lambda: RichardsonLucy(zero, stop=MaxIterations(iterations)).run(image), repeats
        ),
        f"ours Richardson-Lucy, {iterations} it (valid boundary)": lambda: median_time(
            lambda: RichardsonLucy(valid, stop=MaxIterations(iterations)).run(image), repeats
        ),
    }
    times = {name: measure() for name, measure in rows.items()}

    print(
        f"machine: {machine()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}, scikit-image {skimage.__version__}"
    )
    print(
        f"image {n}x{n} float32, PSF {k}x{k}, padded grid {valid.fft_shape}, "
        f"median of {repeats} runs\n"
    )
    print("| what | time (s) |")
    print("|---|---:|")
    for name, seconds in times.items():
        note = f" ({steps['wiener']} CG steps)" if "PCG" in name else ""
        print(f"| {name}{note} | {seconds:.3f} |")

    rl_name = f"ours Richardson-Lucy, {iterations} it (valid boundary)"
    per_iteration = times[rl_name] / iterations
    pair = times["real FFT pair, padded grid"]
    sk_rl = times[f"skimage richardson_lucy, {iterations} it (zero boundary)"]
    ours_rl = times[f"ours Richardson-Lucy, {iterations} it (zero boundary)"]
    print()
    print(f"one RL iteration / two FFT pairs of the padded grid: {per_iteration / (2 * pair):.2f}")
    print(f"skimage RL / ours RL (same zero boundary): {sk_rl / ours_rl:.2f}x")
    sk_wiener = times["skimage wiener (periodic, balance given)"]
    ours_wiener = times["ours Wiener (periodic, nsr given)"]
    print(f"skimage wiener / ours Wiener (periodic, given weight): {sk_wiener / ours_wiener:.2f}x")


if __name__ == "__main__":
    main()

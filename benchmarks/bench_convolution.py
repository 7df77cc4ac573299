"""Direct summation against FFTs for small PSFs: where the crossover lies.

Run: python benchmarks/bench_convolution.py [--repeats 7]

Prints the median time of one blur (``Convolution.apply``, valid boundary,
float32) for each image size and PSF size, by direct summation and by
FFT, in the same run; ``DIRECT_MAX_TAPS`` in ``engine/operators.py`` is
set from this table.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import machine, median_time

from napari_deblur.engine.operators import DIRECT_MAX_TAPS, Convolution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    kernels = [(1, 3), (2, 2), (1, 5), (3, 3), (1, 9), (4, 4), (5, 5)]
    print(f"machine: {machine()}; DIRECT_MAX_TAPS = {DIRECT_MAX_TAPS}")
    print(f"median of {args.repeats} runs, time direct / time FFT (below 1: direct is faster)\n")
    print("| image | " + " | ".join(f"{a}x{b}" for a, b in kernels) + " |")
    print("|---|" + "---:|" * len(kernels))
    for n in (256, 512, 1024, 2048):
        ratios = []
        for kernel in kernels:
            psf = rng.random(kernel).astype(np.float32)
            direct = Convolution(psf, (n, n), boundary="valid", method="direct")
            fft = Convolution(psf, (n, n), boundary="valid", method="fft")
            x = rng.random(fft.shape_in, dtype=np.float32)
            ratios.append(
                median_time(lambda op=direct, x=x: op.apply(x), args.repeats)
                / median_time(lambda op=fft, x=x: op.apply(x), args.repeats)
            )
        print(f"| {n}x{n} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")


if __name__ == "__main__":
    main()

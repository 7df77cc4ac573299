"""Peak memory of deblurring a large photo, against the photo's own size.

Run: python benchmarks/bench_memory.py [--megapixels 24] [--iterations 5]
     [--methods auto,richardson_lucy,wiener] [--channels 1,3]

Each measurement runs in a fresh process (its peak resident set is the
operating system's count, NumPy and FFT workspaces included); the peak is
reached within the first iterations, so a few suffice. The baseline is the
same process after reading the photo and making the PSF, before deblurring.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import machine

CHILD = """
import json, resource, sys, time, warnings
import numpy as np
from napari_deblur import deblur
from napari_deblur.engine.point_source import PSFQualityWarning
from napari_deblur.engine.psf import defocus_psf

height, width, channels, iterations, method = json.loads(sys.argv[1])
from skimage import data
# A photo of the size asked for, from scikit-image's astronaut enlarged and tiled.
big = np.repeat(np.repeat(data.astronaut(), 8, axis=0), 8, axis=1)
photo = np.tile(big, (2, 2, 1))[:height, :width]
photo = photo.mean(axis=-1).astype(np.uint8) if channels == 1 else photo
psf = defocus_psf(6.0).astype(np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PSFQualityWarning)
    deblur(photo, psf, channel_axis=None if channels == 1 else -1, max_iter=iterations,
           method=method)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps([before * 1024, peak * 1024, elapsed]))
"""


def measure(height, width, channels, iterations, method) -> tuple[float, float, float]:
    """(baseline bytes, peak bytes, seconds) of one deblur in a fresh process."""
    arguments = json.dumps([height, width, channels, iterations, method])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, arguments], capture_output=True, text=True, check=True
    )
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=24)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--methods", default="auto,richardson_lucy,wiener")
    parser.add_argument("--channels", default="1,3", help="1 for grey, 3 for colour")
    args = parser.parse_args()
    width = int(round((args.megapixels * 1e6 * 3 / 2) ** 0.5))
    height = int(round(width * 2 / 3))
    print(f"machine: {machine()}; {height} x {width} photos, {args.iterations} iterations\n")
    print(
        "| photo | method | float32 linear copy (MB) | baseline (MB) | peak (MB) "
        "| peak - baseline (MB) | / float32 copy | time (s) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for channels in (int(c) for c in args.channels.split(",")):
        for method in args.methods.split(","):
            before, peak, elapsed = measure(height, width, channels, args.iterations, method)
            copy = height * width * channels * 4
            kind = "grey" if channels == 1 else "colour"
            print(
                f"| {kind} | {method} | {copy / 1e6:.0f} | {before / 1e6:.0f} | {peak / 1e6:.0f} "
                f"| {(peak - before) / 1e6:.0f} | {(peak - before) / copy:.1f} | {elapsed:.1f} |"
            )


if __name__ == "__main__":
    main()

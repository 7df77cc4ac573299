"""Peak memory of deblurring a large photo, against the photo's own size.

Run: python benchmarks/bench_memory.py [--megapixels 24] [--iterations 5]
     [--methods auto,richardson_lucy,wiener] [--channels 1,3]

Each measurement runs in a fresh process (its peak resident set is the
operating system's count, NumPy and FFT workspaces included); the peak is
reached within the first iterations, so a few suffice. The baseline is
what the process holds once it has read the photo, where Linux's count of
its peak is set back (``/proc/self/clear_refs``): a process inherits its
parent's peak, and imports have their own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from _common import machine

CHILD = """
import json, sys, time, warnings
import numpy as np
from napari_deblur import deblur
from napari_deblur.engine.point_source import PSFQualityWarning
from napari_deblur.engine.psf import defocus_psf

path, iterations, method = json.loads(sys.argv[1])
photo = np.load(path)
channels = 1 if photo.ndim == 2 else 3
psf = defocus_psf(6.0).astype(np.float32)

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))

# The peak resident set starts again from the present one (a process
# inherits its parent's peak, and imports have their own).
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")
before = status("VmRSS:")
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PSFQualityWarning)
    deblur(photo, psf, channel_axis=None if channels == 1 else -1, max_iter=iterations,
           method=method)
elapsed = time.perf_counter() - start
peak = status("VmHWM:")
print(json.dumps([before, peak, elapsed]))
"""


def photo(height: int, width: int, channels: int) -> np.ndarray:
    """A photo of the size asked for: scikit-image's astronaut enlarged and tiled."""
    from skimage import data

    big = np.repeat(np.repeat(data.astronaut(), 8, axis=0), 8, axis=1)
    tiled = np.tile(big, (2, 2, 1))[:height, :width]
    return tiled.mean(axis=-1).astype(np.uint8) if channels == 1 else tiled


def measure(path: str, iterations: int, method: str) -> tuple[float, float, float]:
    """(baseline bytes, peak bytes, seconds) of one deblur of the photo at `path`, alone."""
    arguments = json.dumps([path, iterations, method])
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
    with tempfile.TemporaryDirectory() as folder:
        for channels in (int(c) for c in args.channels.split(",")):
            path = os.path.join(folder, f"photo{channels}.npy")
            np.save(path, photo(height, width, channels))
            for method in args.methods.split(","):
                before, peak, elapsed = measure(path, args.iterations, method)
                copy = height * width * channels * 4
                kind = "grey" if channels == 1 else "colour"
                print(
                    f"| {kind} | {method} | {copy / 1e6:.0f} | {before / 1e6:.0f} "
                    f"| {peak / 1e6:.0f} | {(peak - before) / 1e6:.0f} "
                    f"| {(peak - before) / copy:.1f} | {elapsed:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

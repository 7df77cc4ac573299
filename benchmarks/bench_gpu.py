"""GPU against CPU: the same Richardson-Lucy code on a 128 x 512 x 512 stack.

The engine's RL-TV and Landweber solvers are written for any array of the
array API standard: this script runs them on NumPy (scipy.fft, every core)
and on a PyTorch or CuPy array on the GPU, with the same PSF, data and
iteration count, and prints the median of several runs and the speed-up.
Without a GPU it says so, and measures PyTorch on the CPU instead, so that
the script itself is checked.

    python benchmarks/bench_gpu.py [--shape 128,512,512] [--iterations 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from napari_deblur.engine import backend
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import gaussian_psf
from napari_deblur.engine.solvers import MaxIterations, NesterovGradient, RichardsonLucy


def stack(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Beads on a dim background, blurred by a widefield-like PSF, in photon counts."""
    rng = np.random.default_rng(0)
    scene = np.full(shape, 20.0, np.float32)
    beads = tuple(rng.integers(0, n, 4000) for n in shape)
    scene[beads] = 2000.0
    psf = gaussian_psf((2.5, 1.5, 1.5)).astype(np.float32)
    blurred = Convolution(psf, shape, boundary="periodic").apply(scene)
    return rng.poisson(np.maximum(blurred, 0)).astype(np.float32), psf


def devices():
    """(name, to-array, synchronise) for each place to run: NumPy, then the GPUs found."""
    places = [("numpy (CPU, scipy.fft)", lambda a: a, lambda: None)]
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        name = f"torch on {torch.cuda.get_device_name(0)}"
        places.append((name, lambda a: torch.asarray(a, device="cuda"), torch.cuda.synchronize))
    try:
        import cupy
    except ImportError:
        cupy = None
    if cupy is not None and cupy.cuda.runtime.getDeviceCount() > 0:
        sync = cupy.cuda.Device().synchronize
        places.append(("cupy on the GPU", cupy.asarray, sync))
    if len(places) == 1 and torch is not None:
        places.append(("torch (CPU: no GPU found)", torch.asarray, lambda: None))
    return places


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="128,512,512")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split(","))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}\n"
    )
    y, psf = stack(shape)
    solvers = {
        "rl_tv": lambda op: RichardsonLucy(
            op, tv_weight=0.002, accelerate=True, stop=MaxIterations(args.iterations)
        ),
        "landweber": lambda op: NesterovGradient(
            op, weight=0.01, stop=MaxIterations(args.iterations)
        ),
    }
    shape_text = " x ".join(map(str, shape))
    print(f"{shape_text} float32, {args.iterations} iterations, 'valid' boundary\n")
    print("| method | where | median (s) | runs (s) | speed-up | max difference |")
    print("|---|---|---:|---|---:|---:|")
    for method, make in solvers.items():
        baseline = reference = None
        for name, to_array, synchronise in devices():
            op = Convolution(to_array(psf), shape, boundary="valid")
            data = to_array(y)
            times = []
            for _ in range(args.repeats):
                synchronise()
                start = time.perf_counter()
                result = make(op).run(data)
                synchronise()
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            result = backend.to_numpy(result)
            if reference is None:
                baseline, reference = median, result
            k = psf.shape
            frame = tuple(slice(n // 2, -(n // 2)) for n in k)
            difference = np.abs(result - reference)[frame].max() / reference[frame].max()
            runs = ", ".join(f"{t:.2f}" for t in times)
            print(
                f"| {method} | {name} | {median:.2f} | {runs} | {baseline / median:.2f}x "
                f"| {difference:.1e} |"
            )
    print()


if __name__ == "__main__":
    main()

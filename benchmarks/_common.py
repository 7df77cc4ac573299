"""What the benchmark scripts share: timing, the FFT reference, PSNR, the machine."""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import scipy.fft


def median_time(function, repeats: int) -> float:
    """Median wall time of `repeats` calls of `function`, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def fft_pair(shape, repeats: int) -> float:
    """Median time of one real FFT pair (forward and back) of float32 data of `shape`."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    return median_time(
        lambda: scipy.fft.irfftn(scipy.fft.rfftn(x, workers=-1), s=shape, workers=-1), repeats
    )


def psnr(truth: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR in dB of `estimate`, clipped to 0..255, against `truth` on the 8-bit scale."""
    mse = np.mean((np.asarray(truth, float) - np.clip(estimate, 0, 255)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def machine() -> str:
    """The machine, in a few words, for the head of a table."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"

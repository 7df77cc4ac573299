"""How much memory a deblur needs, and whether the machine has it.

A run that does not fit should be refused with a message before it starts,
not killed by the operating system halfway.
"""

from __future__ import annotations

import numpy as np

from .operators import Convolution, VaryingConvolution

#: Peak working memory of each method, in copies of the unknown (the image
#: grown by the PSF) in the computation's type: the most that
#: ``benchmarks/bench_memory.py`` measured on grey and colour photos of 8 and
#: 24 megapixels (FFT workspaces included; grey 8 MP needs the most),
#: rounded up by about a tenth.
COPIES = {
    "wiener": 23,
    "landweber": 20,
    "richardson_lucy": 27,
    "rl_tv": 30,
    "fista_tv": 28,
    "admm_tv": 35,
    "admm_hyper_laplacian": 37,
}


def peak_bytes(method: str, operator: Convolution | VaryingConvolution) -> int:
    """Memory `method` needs at its peak with `operator`, in bytes.

    Varying blur keeps, for each of its PSFs, a transfer function and a
    window: two more copies each.
    """
    copies = COPIES[method]
    if isinstance(operator, VaryingConvolution):
        copies += 2 * len(operator.parts)
    return int(copies * np.prod(operator.shape_in) * np.dtype(operator.dtype).itemsize)


def available_bytes() -> int | None:
    """Memory the system can give without swapping (Linux's MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(method: str, operator: Convolution | VaryingConvolution) -> None:
    """Refuse a run that would need more memory than is available.

    Raises
    ------
    MemoryError
        With how much is needed and available, and what to do instead.
    """
    need, have = peak_bytes(method, operator), available_bytes()
    if have is not None and need > have:
        raise MemoryError(
            f"deblurring this image with {method} needs about {_gigabytes(need)} GB and "
            f"{_gigabytes(have)} GB are available: crop the image, deblur its channels or "
            "frames one at a time, or deblur it in chunks (chunks='auto'; on the command "
            "line, --chunks auto)"
        )


def _gigabytes(size: int) -> str:
    """A size in GB to two significant digits, or whole ones above 10 GB."""
    gb = size / 1e9
    return f"{gb:.2g}" if gb < 10 else f"{gb:.0f}"

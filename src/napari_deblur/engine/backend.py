"""The engine's one door to array creation, FFTs and padding.

Every solver and operator creates arrays, transforms them and pads them
through the functions here, so that running the engine on another array
library means changing this module only.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.fft

#: Boundary extensions understood by :func:`pad` (NumPy's names).
PAD_MODES = ("reflect", "symmetric", "edge", "wrap", "zero")

Array = np.ndarray


def float_dtype(dtype: np.dtype | type) -> np.dtype:
    """Floating type the engine computes in for data of type `dtype`.

    float32 stays float32 and float16 becomes float32; 8- and 16-bit integers
    (camera data) become float32, which holds them exactly; wider integers,
    booleans and float64 become float64.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float32 or dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        return np.dtype(np.float32)
    if dtype.kind in "iubf":
        return np.dtype(np.float64)
    raise TypeError(f"expected real numbers, got an array of {dtype}")


def asarray(x, dtype=None) -> Array:
    """Convert `x` to an engine array (no copy when already one)."""
    return np.asarray(x, dtype=dtype)


def zeros(shape: Sequence[int], dtype) -> Array:
    """Array of zeros."""
    return np.zeros(tuple(shape), dtype=dtype)


def ones(shape: Sequence[int], dtype) -> Array:
    """Array of ones."""
    return np.ones(tuple(shape), dtype=dtype)


def fast_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Smallest sizes at least `shape` whose FFTs are fast (prime factors up to 11).

    pocketfft, behind ``scipy.fft``, is as fast on 11-smooth sizes as on
    5-smooth ones, which are often larger (2062 -> 2079, not 2160).
    """
    return tuple(scipy.fft.next_fast_len(int(n), real=False) for n in shape)


def rfftn(x: Array, axes: Sequence[int], shape: Sequence[int] | None = None) -> Array:
    """Real FFT over `axes`, on all cores; `shape` zero-fills each axis at its end."""
    s = None if shape is None else tuple(shape)
    return scipy.fft.rfftn(x, s=s, axes=tuple(axes), workers=-1)


def irfftn(X: Array, shape: Sequence[int], axes: Sequence[int]) -> Array:
    """Inverse of :func:`rfftn`; `shape` is the real size along `axes`."""
    return scipy.fft.irfftn(X, s=tuple(shape), axes=tuple(axes), workers=-1)


def rfft_frequencies(shape: Sequence[int], dtype) -> list[Array]:
    """Frequencies (cycles per sample) of an :func:`rfftn` grid of real `shape`.

    One array per axis, shaped to broadcast against the transform.
    """
    ndim = len(shape)
    freqs = []
    for axis, n in enumerate(shape):
        f = scipy.fft.rfftfreq(n) if axis == ndim - 1 else scipy.fft.fftfreq(n)
        view = [1] * ndim
        view[axis] = f.size
        freqs.append(f.astype(dtype).reshape(view))
    return freqs


def crop(x: Array, start: Sequence[int], shape: Sequence[int]) -> Array:
    """View of the block of `shape` at `start` in the trailing axes of `x`."""
    lead = (slice(None),) * (x.ndim - len(shape))
    return x[lead + tuple(slice(s, s + n) for s, n in zip(start, shape))]


def embed(x: Array, start: Sequence[int], shape: Sequence[int]) -> Array:
    """Zero array with trailing `shape` holding `x` at `start`: adjoint of :func:`crop`."""
    ndim = len(shape)
    out = zeros(x.shape[: x.ndim - ndim] + tuple(shape), x.dtype)
    crop(out, start, x.shape[x.ndim - ndim :])[...] = x
    return out


# Padding is written as a gather along each axis, run by run, so that its
# adjoint (a scatter-add of the same runs) is exact for every mode.


@lru_cache(maxsize=256)
def _runs(n: int, before: int, after: int, mode: str) -> tuple[tuple[int, int, int, int], ...]:
    """Split the padded axis into runs ``(out_start, length, src_start, step)``.

    ``step`` is +1 or -1 for a copied (possibly reversed) run of the source,
    0 for a run repeating one source sample, and the run is zero when
    ``src_start`` is -1.
    """
    if mode == "zero":
        index = np.pad(np.arange(n), (before, after), mode="constant", constant_values=-1)
    else:
        index = np.pad(np.arange(n), (before, after), mode=mode)
    runs = []
    i = 0
    while i < index.size:
        if index[i] < 0:
            j = i
            while j + 1 < index.size and index[j + 1] < 0:
                j += 1
            runs.append((i, j - i + 1, -1, 0))
            i = j + 1
            continue
        step = 0
        if i + 1 < index.size and index[i + 1] >= 0 and abs(index[i + 1] - index[i]) <= 1:
            step = int(index[i + 1] - index[i])
        j = i
        while j + 1 < index.size and index[j + 1] >= 0 and index[j + 1] - index[j] == step:
            j += 1
        runs.append((i, j - i + 1, int(index[i]), step))
        i = j + 1
    return tuple(runs)


def _source_slice(src: int, length: int, step: int) -> slice:
    if step >= 0:
        return slice(src, src + length)
    stop = src - length
    return slice(src, stop if stop >= 0 else None, -1)


def pad(x: Array, widths: Sequence[tuple[int, int]], mode: str) -> Array:
    """Extend the trailing ``len(widths)`` axes of `x` by `mode`.

    Parameters
    ----------
    x : array
        Data; leading axes beyond ``len(widths)`` are left alone.
    widths : sequence of (int, int)
        Samples added before and after, per trailing axis.
    mode : {'reflect', 'symmetric', 'edge', 'wrap', 'zero'}
        NumPy's boundary extensions, ``'zero'`` for zeros.

    Returns
    -------
    array
        The padded array (`x` itself when nothing is added).
    """
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
    first = x.ndim - len(widths)
    for offset, (before, after) in enumerate(widths):
        if before == 0 and after == 0:
            continue
        axis = first + offset
        n = x.shape[axis]
        shape = list(x.shape)
        shape[axis] = n + before + after
        out = np.empty(shape, dtype=x.dtype)
        for start, length, src, step in _runs(n, before, after, mode):
            dst = [slice(None)] * x.ndim
            dst[axis] = slice(start, start + length)
            if src < 0:
                out[tuple(dst)] = 0
                continue
            sel = [slice(None)] * x.ndim
            sel[axis] = slice(src, src + 1) if step == 0 else _source_slice(src, length, step)
            out[tuple(dst)] = x[tuple(sel)]
        x = out
    return x


def pad_adjoint(z: Array, widths: Sequence[tuple[int, int]], mode: str) -> Array:
    """Adjoint of :func:`pad`: fold the padded samples back onto their sources.

    Returns `z` itself when nothing was padded.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
    first = z.ndim - len(widths)
    for offset, (before, after) in reversed(list(enumerate(widths))):
        if before == 0 and after == 0:
            continue
        axis = first + offset
        n = z.shape[axis] - before - after
        shape = list(z.shape)
        shape[axis] = n
        out = np.zeros(shape, dtype=z.dtype)
        for start, length, src, step in _runs(n, before, after, mode):
            if src < 0:
                continue
            sel = [slice(None)] * z.ndim
            sel[axis] = slice(start, start + length)
            part = z[tuple(sel)]
            dst = [slice(None)] * z.ndim
            if step == 0:
                dst[axis] = slice(src, src + 1)
                out[tuple(dst)] += part.sum(axis=axis, keepdims=True)
            else:
                dst[axis] = _source_slice(src, length, step)
                out[tuple(dst)] += part
        z = out
    return z

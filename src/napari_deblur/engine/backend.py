"""The engine's one door to array creation, FFTs and padding.

Every solver and operator creates arrays, transforms them and pads them
through the functions here. They follow the arrays they are given: NumPy
arrays are transformed by ``scipy.fft`` on every core; any other array of
the array API standard (PyTorch, CuPy, ``array_api_strict``) stays in its
own library and on its own device, through ``array_api_compat``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import array_api_compat
import numpy as np
import scipy.fft

#: Boundary extensions understood by :func:`pad` (NumPy's names).
PAD_MODES = ("reflect", "symmetric", "edge", "wrap", "zero")

Array = np.ndarray


def namespace(*arrays):
    """The array library of `arrays` (NumPy for anything that is not an array)."""
    arrays = [a for a in arrays if a is not None and not isinstance(a, (int, float, complex))]
    if not arrays or all(isinstance(a, (np.ndarray, np.generic, list, tuple)) for a in arrays):
        return np
    return array_api_compat.array_namespace(*arrays)


def foreign(x):
    """`x` itself if it is an array of a library other than NumPy (PyTorch, CuPy), else None.

    Dask arrays are not foreign here: they are read chunk by chunk, each a
    NumPy array.
    """
    if (
        isinstance(x, (np.ndarray, np.generic))
        or not array_api_compat.is_array_api_obj(x)
        or array_api_compat.is_dask_array(x)
    ):
        return None
    return x


def is_numpy(x) -> bool:
    """Whether `x` is a NumPy array (the engine's home, where SciPy serves too)."""
    return isinstance(x, (np.ndarray, np.generic))


def float_dtype(dtype, xp=np):
    """Floating type the engine computes in for data of type `dtype` (of library `xp`).

    float32 stays float32 and float16 becomes float32; 8- and 16-bit integers
    (camera data) become float32, which holds them exactly; wider integers,
    booleans and float64 become float64.
    """
    if xp is np:
        dtype = np.dtype(dtype)
        if dtype == np.float32 or dtype == np.float16:
            return np.dtype(np.float32)
        if dtype.kind in "iu" and dtype.itemsize <= 2:
            return np.dtype(np.float32)
        if dtype.kind in "iubf":
            return np.dtype(np.float64)
        raise TypeError(f"expected real numbers, got an array of {dtype}")
    if xp.isdtype(dtype, "real floating"):
        return xp.float32 if xp.finfo(dtype).bits <= 32 else xp.float64
    if xp.isdtype(dtype, "integral"):
        return xp.float32 if xp.iinfo(dtype).bits <= 16 else xp.float64
    if xp.isdtype(dtype, "bool"):
        return xp.float64
    raise TypeError(f"expected real numbers, got an array of {dtype}")


def asarray(x, dtype=None, *, like=None) -> Array:
    """`x` as an engine array (no copy when it is one), in the library and on the device of `like`.

    Without `like`, an array stays in its library; anything else becomes NumPy.
    """
    if like is None or is_numpy(like):
        if like is None and not is_numpy(x) and namespace(x) is not np:
            xp = namespace(x)
            return x if dtype is None else xp.astype(x, dtype, copy=False)
        return np.asarray(x, dtype=dtype)
    xp = namespace(like)
    if is_numpy(x) or isinstance(x, (list, tuple, int, float)):
        # A view NumPy will not write to (a broadcast) is copied: others may.
        x = np.require(x, requirements="W")
        dtype = dtype if dtype is not None else _same_kind(x.dtype, xp)
        return xp.asarray(x, dtype=dtype, device=array_api_compat.device(like))
    return x if dtype is None else xp.astype(x, dtype, copy=False)


def _same_kind(dtype: np.dtype, xp):
    """`xp`'s type for NumPy's `dtype` (its float and complex types, bool, int64)."""
    names = {"f": "float", "c": "complex", "b": "bool", "i": "int", "u": "uint"}
    bits = 8 * dtype.itemsize
    return getattr(xp, names[dtype.kind] + ("" if dtype.kind == "b" else str(bits)))


def to_numpy(x) -> np.ndarray:
    """`x` as a NumPy array, copied from its device where it is elsewhere."""
    if is_numpy(x):
        return x
    try:
        # Arrays in the host's memory are shared, not copied (DLPack).
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError):
        return np.asarray(array_api_compat.to_device(x, "cpu"))


def astype(x: Array, dtype) -> Array:
    """`x` in type `dtype` (itself when it already is)."""
    if is_numpy(x):
        return x.astype(dtype, copy=False)
    return namespace(x).astype(x, dtype, copy=False)


def at_least(x: Array, floor) -> Array:
    """`x` raised to at least `floor` (an array or a number): in place for NumPy."""
    if is_numpy(x):
        return np.maximum(x, floor, out=x)
    return namespace(x).maximum(x, floor)


def subtract(a: Array, b: Array, out: Array) -> Array:
    """``a - b`` written into the buffer `out` (of their shape), which is returned."""
    if is_numpy(out):
        return np.subtract(a, b, out=out)
    out[...] = a
    out -= b
    return out


def divide(a: Array, b: Array, out: Array) -> Array:
    """``a / b`` written into the buffer `out` (NumPy), or a new array (other libraries)."""
    if is_numpy(out):
        return np.divide(a, b, out=out)
    return a / b


def copy(x: Array) -> Array:
    """A copy of `x`, in its library and on its device."""
    return x.copy() if is_numpy(x) else namespace(x).asarray(x, copy=True)


def norm(x: Array) -> float:
    """The Euclidean norm of all of `x`'s entries."""
    if is_numpy(x):
        return math.sqrt(dot(x, x))
    return float(namespace(x).linalg.vector_norm(x))


def dot(a: Array, b: Array) -> float:
    """The inner product of all entries, ``sum(a * b)`` (real arrays).

    NumPy's own loop, not BLAS's: OpenBLAS spreads a long inner product
    over threads that spin while they wait, and when another process holds
    the cores (a second run, a Dask worker) each call waited for them: two
    estimates of a blur at once on two cores took over 120 s each instead
    of 5 s (20000 inner products of 33000 values, 0.08 s alone, over 60 s).
    """
    if is_numpy(a):
        return float(np.einsum("i,i->", a.ravel(), b.ravel()))
    return float(namespace(a).sum(a * b))


def zeros(shape: Sequence[int], dtype, *, like=None) -> Array:
    """Array of zeros (in the library and on the device of `like`)."""
    if like is None or is_numpy(like):
        return np.zeros(tuple(shape), dtype=dtype)
    xp = namespace(like)
    return xp.zeros(tuple(shape), dtype=dtype, device=array_api_compat.device(like))


def ones(shape: Sequence[int], dtype, *, like=None) -> Array:
    """Array of ones (in the library and on the device of `like`)."""
    if like is None or is_numpy(like):
        return np.ones(tuple(shape), dtype=dtype)
    xp = namespace(like)
    return xp.ones(tuple(shape), dtype=dtype, device=array_api_compat.device(like))


def fast_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Smallest sizes at least `shape` whose FFTs are fast (prime factors up to 11).

    pocketfft, behind ``scipy.fft``, is as fast on 11-smooth sizes as on
    5-smooth ones, which are often larger (2062 -> 2079, not 2160).
    """
    return tuple(scipy.fft.next_fast_len(int(n), real=False) for n in shape)


def rfftn(x: Array, axes: Sequence[int], shape: Sequence[int] | None = None) -> Array:
    """Real FFT over `axes` (on all cores for NumPy); `shape` zero-fills each axis at its end."""
    s = None if shape is None else tuple(shape)
    if is_numpy(x):
        return scipy.fft.rfftn(x, s=s, axes=tuple(axes), workers=-1)
    return namespace(x).fft.rfftn(x, s=s, axes=tuple(axes))


def irfftn(X: Array, shape: Sequence[int], axes: Sequence[int]) -> Array:
    """Inverse of :func:`rfftn`; `shape` is the real size along `axes`."""
    if is_numpy(X):
        return scipy.fft.irfftn(X, s=tuple(shape), axes=tuple(axes), workers=-1)
    return namespace(X).fft.irfftn(X, s=tuple(shape), axes=tuple(axes))


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
    out = zeros(tuple(x.shape[: x.ndim - ndim]) + tuple(shape), x.dtype, like=x)
    lead = (slice(None),) * (x.ndim - ndim)
    out[lead + tuple(slice(s, s + n) for s, n in zip(start, x.shape[x.ndim - ndim :]))] = x
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


def _source(x: Array, axis: int, src: int, length: int, step: int) -> Array:
    """The run of `length` samples from `src` along `axis` (reversed for ``step == -1``).

    Reversed runs are flipped rather than sliced backwards, which not every
    array library allows.
    """
    index = [slice(None)] * x.ndim
    if step >= 0:
        index[axis] = slice(src, src + length)
        return x[tuple(index)]
    index[axis] = slice(src - length + 1, src + 1)
    return namespace(x).flip(x[tuple(index)], axis=axis)


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
        out = zeros(shape, x.dtype, like=x)
        for start, length, src, step in _runs(n, before, after, mode):
            dst = [slice(None)] * x.ndim
            dst[axis] = slice(start, start + length)
            if src >= 0:
                out[tuple(dst)] = _source(x, axis, src, 1 if step == 0 else length, step)
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
        out = zeros(shape, z.dtype, like=z)
        xp = namespace(z)
        for start, length, src, step in _runs(n, before, after, mode):
            if src < 0:
                continue
            sel = [slice(None)] * z.ndim
            sel[axis] = slice(start, start + length)
            part = z[tuple(sel)]
            dst = [slice(None)] * z.ndim
            if step == 0:
                dst[axis] = slice(src, src + 1)
                part = xp.sum(part, axis=axis, keepdims=True)
            elif step > 0:
                dst[axis] = slice(src, src + length)
            else:
                dst[axis] = slice(src - length + 1, src + 1)
                part = xp.flip(part, axis=axis)
            out[tuple(dst)] += part
        z = out
    return z

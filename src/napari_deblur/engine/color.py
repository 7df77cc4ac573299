"""Camera encodings: sRGB gamma to linear light and back.

Blur is a sum of light, so it happens in linear light; camera files store
``v = f(L)`` with the sRGB transfer curve ``f`` (IEC 61966-2-1). Both
directions are odd-symmetric extensions so that the slightly negative values
a deconvolution can produce survive a round trip instead of becoming NaN.
"""

from __future__ import annotations

import numpy as np

from .backend import float_dtype

ENCODINGS = ("auto", "srgb", "linear")


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """Linear light from sRGB-encoded values on the scale 0..1.

    Parameters
    ----------
    encoded : ndarray
        sRGB values, nominally in [0, 1].

    Returns
    -------
    ndarray
        Linear light, same shape and floating dtype.
    """
    _check_scale("encoded", encoded)
    v = np.abs(encoded)
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return np.copysign(linear, encoded).astype(encoded.dtype, copy=False)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """sRGB-encoded values (scale 0..1) from linear light; inverse of :func:`srgb_to_linear`.

    Parameters
    ----------
    linear : ndarray
        Linear light, nominally in [0, 1].

    Returns
    -------
    ndarray
        sRGB values, same shape and floating dtype.
    """
    _check_scale("linear", linear)
    v = np.abs(linear)
    encoded = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    return np.copysign(encoded, linear).astype(linear.dtype, copy=False)


def _check_scale(name: str, values) -> None:
    """A TypeError naming `name` unless `values` are floating (the scale 0..1 has fractions)."""
    dtype = getattr(values, "dtype", None)
    if dtype is None or dtype.kind != "f":
        raise TypeError(
            f"{name} must be floating values on the scale 0..1, got {dtype or type(values)} "
            "(for 8-bit pixels, divide by 255 first)"
        )


def resolve_encoding(encoding: str, dtype: np.dtype) -> str:
    """Turn ``'auto'`` into ``'srgb'`` or ``'linear'`` for data of `dtype`.

    8-bit data is what cameras write to PNG and JPEG, gamma-encoded; float and
    16-bit data is what scientific cameras and pipelines write, linear.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if encoding != "auto":
        return encoding
    return "srgb" if np.dtype(dtype) == np.uint8 else "linear"


def full_scale(dtype: np.dtype) -> float:
    """Value that stands for full light in data of `dtype` (255 for uint8, 1 for floats)."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0


def to_linear(data: np.ndarray, encoding: str) -> np.ndarray:
    """Pixel values as linear light, in the engine's floating type.

    Parameters
    ----------
    data : ndarray
        Pixel values as stored.
    encoding : {'auto', 'srgb', 'linear'}
        How they are encoded (see :func:`resolve_encoding`).

    Returns
    -------
    ndarray
        sRGB data decoded to linear light on 0..1; linear data converted to
        float without rescaling.
    """
    dtype = float_dtype(data.dtype)
    values = data.astype(dtype, copy=False)
    if resolve_encoding(encoding, data.dtype) == "srgb":
        return srgb_to_linear(values / dtype.type(full_scale(data.dtype)))
    return values

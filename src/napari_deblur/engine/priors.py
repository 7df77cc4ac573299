"""Image priors on gradients: their proximal maps, and total variation denoising.

Total variation (TV) is the sum over pixels of the gradient's length; the
hyper-Laplacian prior is the sum of ``|g|^alpha`` (``alpha < 1``) over the
gradient's components, a closer match to the heavy-tailed gradient
statistics of natural images (Krishnan and Fergus 2009).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import backend
from .operators import Gradient


def vector_length(field: np.ndarray, channel_axes: tuple[int, ...] = ()) -> np.ndarray:
    """Length of each pixel's vector in a field of gradients.

    Parameters
    ----------
    field : ndarray
        The components on the leading axis (one per spatial direction), then
        the image's axes.
    channel_axes : tuple of int
        Axes of the image (counted without the leading one) whose entries
        belong to the same vector too: the channels, for colour TV.

    Returns
    -------
    ndarray
        ``sqrt(sum of squares)``, shape ``field.shape[1:]`` with `channel_axes`
        of size 1. Summed component by component, with no temporary the size
        of the field.
    """
    xp = backend.namespace(field)
    length = field[0, ...] ** 2
    for d in range(1, field.shape[0]):
        length += field[d, ...] ** 2
    if channel_axes:
        length = xp.sum(length, axis=channel_axes, keepdims=True)
    return np.sqrt(length, out=length) if xp is np else xp.sqrt(length)


def shrink_isotropic(
    g: np.ndarray, threshold, *, channel_axes: tuple[int, ...] = ()
) -> np.ndarray:
    """Proximal map of ``threshold * ||g||_2`` summed over pixels (vector soft threshold).

    Parameters
    ----------
    g : ndarray
        Gradient field: the components on the leading axis, then the image's axes.
    threshold : float or ndarray
        Threshold, broadcastable against one component.
    channel_axes : tuple of int
        Image axes whose entries join each pixel's vector (see :func:`vector_length`).

    Returns
    -------
    ndarray
        ``g * max(0, 1 - threshold / |g|)``.
    """
    length = vector_length(g, channel_axes)
    scale = backend.at_least(length - threshold, 0.0)
    tiny = float(backend.namespace(g).finfo(g.dtype).smallest_normal)
    scale /= backend.at_least(length, tiny)
    return g * scale


@lru_cache(maxsize=8)
def _hyper_laplacian_table(alpha: float, size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """``t*(u) = argmin_t |t|^alpha + (t - u)^2 / 2`` for ``u`` on a grid, ``u >= 0``.

    Any weight reduces to this one by scaling (see :func:`shrink_hyper_laplacian`).
    """
    u = np.linspace(0, 8.0, size)
    # The non-zero stationary point solves alpha t^(alpha-1) + t - u = 0 on t in (0, u];
    # Newton from t = u converges to it from above where it exists.
    t = u.copy()
    for _ in range(60):
        safe = np.maximum(t, 1e-12)
        f = alpha * safe ** (alpha - 1) + safe - u
        df = alpha * (alpha - 1) * safe ** (alpha - 2) + 1
        t = np.clip(safe - f / np.where(np.abs(df) > 1e-12, df, 1e-12), 1e-12, None)
    cost = t**alpha + (t - u) ** 2 / 2
    zero_cost = u**2 / 2
    stationary = np.abs(alpha * t ** (alpha - 1) + t - u) < 1e-6
    t = np.where(stationary & (cost < zero_cost), t, 0.0)
    return u, t


#: Values shrunk at a time by NumPy: the temporaries of a block stay in the
#: processor's cache, where those of a whole image went through memory
#: (a 2 x 2079^2 gradient field inside ADMM: 64 -> 40 ms).
SHRINK_BLOCK = 1 << 16


def shrink_hyper_laplacian(v: np.ndarray, weight: float, alpha: float) -> np.ndarray:
    """Proximal map of ``weight * |w|^alpha`` applied to each entry of `v`.

    With ``w = s t`` and ``v = s u``, ``s = weight^(1 / (2 - alpha))``, the
    problem ``min_w weight |w|^alpha + (w - v)^2 / 2`` becomes the weight-free
    ``min_t |t|^alpha + (t - u)^2 / 2``, tabulated once per `alpha` on a fine
    grid and looked up (the lookup-table method of Krishnan and Fergus 2009).

    Parameters
    ----------
    v : ndarray
        Values to shrink.
    weight : float
        Weight of the prior.
    alpha : float
        Exponent in (0, 1).

    Returns
    -------
    ndarray
        The minimisers, a new array of `v`'s shape and dtype.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    u_grid, t_grid = _hyper_laplacian_table(float(alpha))
    xp = backend.namespace(v)
    last = len(u_grid) - 1
    # A step of the table stays a normal number of v's type, whose inverse
    # is finite (a weight of 1e-30 made 0 / step a NaN index).
    smallest = float(xp.finfo(v.dtype).smallest_normal) * last / float(u_grid[-1])
    scale = max(float(weight) ** (1 / (2 - alpha)), smallest)
    # The table in v's units, and the width of one of its steps.
    table = backend.asarray(t_grid * scale, v.dtype, like=v)
    step = float(u_grid[-1]) / last * scale

    if xp is not np:
        # Nearest entry of the fine uniform table: one gather per value.
        position = xp.abs(v) / step
        index = xp.astype(xp.minimum(position, float(last)) + 0.5, xp.int32)
        shrunk = xp.reshape(xp.take(table, xp.reshape(index, (-1,))), v.shape)
        beyond = position > last
        if bool(xp.any(beyond)):
            shrunk[beyond] = _past_table(position[beyond] * step, scale, alpha)
        return xp.copysign(shrunk, v)
    # NumPy: the same, block by block in kept buffers.
    out = np.empty(v.shape, v.dtype)
    within, into = v.reshape(-1), out.reshape(-1)
    position = np.empty(min(SHRINK_BLOCK, within.size), v.dtype)
    index = np.empty(position.shape, np.intp)
    for start in range(0, within.size, SHRINK_BLOCK):
        block, shrunk = within[start : start + SHRINK_BLOCK], into[start : start + SHRINK_BLOCK]
        p, i = position[: block.size], index[: block.size]
        np.abs(block, out=p)
        with np.errstate(over="ignore"):
            # Past the type's range is past the table.
            p *= 1 / step
        beyond = p > last if p.max() > last else None
        np.minimum(p, last, out=p)
        p += 0.5
        np.copyto(i, p, casting="unsafe")
        np.take(table, i, out=shrunk)
        if beyond is not None:
            shrunk[beyond] = _past_table(np.abs(block[beyond]), scale, alpha)
        np.copysign(shrunk, block, out=shrunk)
    return out


def _past_table(magnitude, scale: float, alpha: float):
    """The prox's magnitude beyond the table: u minus the prior's derivative, in v's units."""
    u = magnitude / scale
    return (u - alpha * u ** (alpha - 1)) * scale


class TVDenoiser:
    """Isotropic TV denoising by the fast gradient projection (FGP) on the dual.

    Solves ``min_x ||x - image||^2 / 2 + weight TV(x)`` (with ``x >= 0`` when
    `nonnegative`), n-D, with Neumann boundaries. Each call starts from the
    dual field the previous call ended with (the warm start FISTA uses
    between its outer iterations) and works in buffers kept between calls:
    the fields are large, and allocating fresh ones costs as much as the
    arithmetic.

    Parameters
    ----------
    shape : tuple of int
        Shape of the images, batch axes first.
    dtype : dtype
        Floating type of the images.
    batch_ndim : int
        Number of leading batch axes.
    nonnegative : bool
        Project on ``x >= 0``.
    couple_channels : bool
        Colour TV: the gradient's length is taken across the batch axes too
        (then the weight must be one number).
    like : array, optional
        The buffers are made in this array's library and on its device
        (NumPy when omitted).

    Attributes
    ----------
    dual : ndarray
        The dual field, shape ``(spatial ndim,) + shape``.

    References
    ----------
    .. [1] A. Beck and M. Teboulle, "Fast gradient-based algorithms for
       constrained total variation image denoising and deblurring problems",
       IEEE TIP 18(11), 2419-2434, 2009.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype,
        *,
        batch_ndim: int = 0,
        nonnegative: bool = False,
        couple_channels: bool = False,
        like=None,
    ):
        self.gradient = Gradient(shape, batch_ndim=batch_ndim)
        self.dtype = dtype
        self.nonnegative = nonnegative
        self.channel_axes = tuple(range(batch_ndim)) if couple_channels else ()
        self.dual = backend.zeros(self.gradient.shape_out, dtype, like=like)
        self._momentum = backend.zeros(self.gradient.shape_out, dtype, like=like)
        self._ascended = backend.zeros(self.gradient.shape_out, dtype, like=like)
        self._estimate = backend.zeros(shape, dtype, like=like)

    def __call__(self, image: np.ndarray, weight, iterations: int) -> np.ndarray:
        """Denoise `image` with `iterations` FGP iterations; returns a new array.

        `weight` is one number, or one per batch image (broadcastable).
        """
        grad = self.gradient
        weight = backend.asarray(weight, self.dtype, like=self.dual)
        xp = backend.namespace(self.dual)
        # The dual step 1 / (4 d weight) is 1 / Lipschitz constant of the dual gradient.
        tiny = float(xp.finfo(self.dtype).smallest_normal)
        ascent = (1.0 / (4 * len(grad.axes))) / xp.maximum(weight, tiny)
        p, q, r = self.dual, self._ascended, self._momentum
        r[...] = p
        t = 1.0
        for _ in range(iterations):
            grad.apply(self._primal(image, weight, r, out=self._estimate), out=q)
            q *= ascent
            q += r
            # Project each pixel's vector (across directions, and channels for
            # colour TV) on the unit ball.
            q /= backend.at_least(vector_length(q, self.channel_axes), 1.0)
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            # r = q + (t - 1) / t_new (q - p), then q becomes p.
            r[...] = q
            r -= p
            r *= (t - 1) / t_new
            r += q
            p, q, t = q, p, t_new
        self.dual, self._ascended = p, q
        return self._primal(image, weight, p)

    def _primal(self, image, weight, field, out=None) -> np.ndarray:
        """``image - weight D^T field``, projected."""
        x = self.gradient.adjoint(field, out=out)
        x *= -weight
        x += image
        if self.nonnegative:
            x = backend.at_least(x, 0.0)
        return x


def total_variation(x: np.ndarray, *, batch_ndim: int = 0) -> np.ndarray:
    """Isotropic total variation of each batch image (Neumann boundaries)."""
    g = Gradient(x.shape, batch_ndim=batch_ndim).apply(x)
    return vector_length(g).sum(axis=tuple(range(batch_ndim, x.ndim)))

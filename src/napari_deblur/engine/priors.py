"""Image priors on gradients: their proximal maps, and total variation denoising.

Total variation (TV) is the sum over pixels of the gradient's length; the
hyper-Laplacian prior is the sum of ``|g|^alpha`` (``alpha < 1``) over the
gradient's components, a closer match to the heavy-tailed gradient
statistics of natural images (Krishnan and Fergus 2009).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .operators import Gradient


def shrink_isotropic(
    g: np.ndarray, threshold, *, group_axes: tuple[int, ...] = (0,)
) -> np.ndarray:
    """Proximal map of ``threshold * ||g||_2`` summed over pixels (vector soft threshold).

    Parameters
    ----------
    g : ndarray
        Gradient field, the gradient's components along `group_axes`.
    threshold : float or ndarray
        Threshold, broadcastable against `g` with `group_axes` of size 1.
    group_axes : tuple of int
        Axes whose entries form one vector (the spatial directions; add the
        channel axis to couple colours).

    Returns
    -------
    ndarray
        ``g * max(0, 1 - threshold / |g|)``.
    """
    norm = np.sqrt(np.sum(g * g, axis=group_axes, keepdims=True))
    scale = np.maximum(norm - threshold, 0) / np.maximum(norm, np.finfo(g.dtype).tiny)
    return g * scale


@lru_cache(maxsize=8)
def _hyper_laplacian_table(alpha: float, size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
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


def shrink_hyper_laplacian(v: np.ndarray, weight, alpha: float) -> np.ndarray:
    """Proximal map of ``weight * |w|^alpha`` applied to each entry of `v`.

    With ``w = s t`` and ``v = s u``, ``s = weight^(1 / (2 - alpha))``, the
    problem ``min_w weight |w|^alpha + (w - v)^2 / 2`` becomes the weight-free
    ``min_t |t|^alpha + (t - u)^2 / 2``, tabulated once per `alpha` and
    interpolated (the lookup-table method of Krishnan and Fergus 2009).

    Parameters
    ----------
    v : ndarray
        Values to shrink.
    weight : float or ndarray
        Weight of the prior (broadcastable).
    alpha : float
        Exponent in (0, 1).

    Returns
    -------
    ndarray
        The minimisers, same shape and dtype as `v`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    u_grid, t_grid = _hyper_laplacian_table(float(alpha))
    scale = np.asarray(weight, dtype=v.dtype) ** (1 / (2 - alpha))
    u = np.abs(v) / np.maximum(scale, np.finfo(v.dtype).tiny)
    # Beyond the table the solution is u minus the derivative of the prior.
    far = u - alpha * np.maximum(u, 1e-12) ** (alpha - 1)
    t = np.where(u <= u_grid[-1], np.interp(u, u_grid, t_grid), far)
    return (np.sign(v) * t * scale).astype(v.dtype, copy=False)


def denoise_tv(
    image: np.ndarray,
    weight,
    *,
    batch_ndim: int = 0,
    iterations: int = 10,
    dual: np.ndarray | None = None,
    nonnegative: bool = False,
    couple_channels: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic TV denoising by the fast gradient projection (FGP) on the dual.

    Solves ``min_x ||x - image||^2 / 2 + weight TV(x)`` (with ``x >= 0`` when
    `nonnegative`), n-D, with Neumann boundaries. The dual field can be given
    to warm-start, as FISTA does between its outer iterations.

    Parameters
    ----------
    image : ndarray
        Image(s) to denoise, batch axes first.
    weight : float or ndarray
        TV weight, per batch image when an array (broadcastable).
    batch_ndim : int
        Number of leading batch axes.
    iterations : int
        Iterations of FGP.
    dual : ndarray, optional
        Starting dual field, shape ``(spatial ndim,) + image.shape``.
    nonnegative : bool
        Project on ``x >= 0``.
    couple_channels : bool
        Colour TV: the gradient's length is taken across the batch axes too
        (then `weight` must be one number).

    Returns
    -------
    x, dual : ndarray
        The denoised image and the final dual field (for warm starts).

    References
    ----------
    .. [1] A. Beck and M. Teboulle, "Fast gradient-based algorithms for
       constrained total variation image denoising and deblurring problems",
       IEEE TIP 18(11), 2419-2434, 2009.
    """
    grad = Gradient(image.shape, batch_ndim=batch_ndim)
    ndim = len(grad.axes)
    weight = np.asarray(weight, dtype=image.dtype)
    project = (lambda x: np.maximum(x, 0)) if nonnegative else (lambda x: x)
    group = tuple(range(1 + batch_ndim)) if couple_channels else (0,)
    p = np.zeros(grad.shape_out, image.dtype) if dual is None else dual
    r = p.copy()
    t = 1.0
    # The dual step 1 / (4 d weight) is 1 / Lipschitz constant of the dual gradient.
    step = image.dtype.type(1.0 / (4 * ndim))

    def primal(q):
        return project(image - weight * grad.adjoint(q))

    for _ in range(iterations):
        q = r + step / np.maximum(weight, np.finfo(image.dtype).tiny) * grad.apply(primal(r))
        norm = np.sqrt(np.sum(q * q, axis=group, keepdims=True))
        p_new = q / np.maximum(norm, 1)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        r = p_new + ((t - 1) / t_new) * (p_new - p)
        p, t = p_new, t_new
    return primal(p), p


def total_variation(x: np.ndarray, *, batch_ndim: int = 0) -> np.ndarray:
    """Isotropic total variation of each batch image (Neumann boundaries)."""
    g = Gradient(x.shape, batch_ndim=batch_ndim).apply(x)
    magnitude = np.sqrt(np.sum(g * g, axis=0))
    return magnitude.sum(axis=tuple(range(batch_ndim, x.ndim)))

"""The PSF estimated together with the image: refining a measured PSF, and blind deblurring.

A measured PSF taken at another distance is the right PSF magnified:
refinement first finds the magnification that explains the image best
(:func:`fit_magnification`). Then both refinement and blind deblurring
alternate an image step and a PSF step (Chan and Wong):

- the image with the PSF fixed: for refinement, total-variation
  deconvolution under the unknown-boundary model (the engine's ADMM) with a
  heavy weight; for blind deblurring, an L0 gradient prior
  (:func:`sparse_edges`), which, unlike TV, prefers the sharp scene to a
  blurred one and so keeps the estimate from the no-blur solution (Levin et
  al.; Xu, Zheng and Jia);
- the PSF with the image fixed: least squares on the images' gradients,
  ``sum_d ||(d_d x) * h - d_d y||^2 / 2 + mu ||h - h0||^2 / 2``, with ``h``
  non-negative, of unit sum and inside a box (a PSF is compact); fitted on
  gradients, where the data are sparse and the fit well conditioned, by
  FISTA with projections on that set (:class:`KernelFit`).

Blind deblurring starts at a coarse scale, where the blur is a few pixels
and the problem nearly convex, and carries the PSF up a pyramid.

References
----------
.. [1] T. F. Chan and C.-K. Wong, "Total variation blind deconvolution",
   IEEE TIP 7(3), 370-375, 1998.
.. [2] A. Levin, Y. Weiss, F. Durand and W. T. Freeman, "Understanding and
   evaluating blind deconvolution algorithms", CVPR 2009.
.. [3] S. Cho and S. Lee, "Fast motion deblurring", ACM TOG 28(5), 2009.
.. [4] L. Xu and J. Jia, "Two-phase kernel estimation for robust motion
   deblurring", ECCV 2010.
.. [5] L. Xu, S. Zheng and J. Jia, "Unnatural L0 sparse representation for
   natural image deblurring", CVPR 2013.
.. [6] J. Duchi et al., "Efficient projections onto the l1-ball for
   learning in high dimensions", ICML 2008.
.. [7] S. J. Reeves and R. M. Mersereau, "Blur identification by the method
   of generalized cross-validation", IEEE TIP 1(3), 301-311, 1992.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from . import backend
from .methods import build_solver
from .noise import BlurScore, minimize_on_grid
from .operators import Convolution, Gradient, gradient_spectrum
from .priors import vector_length
from .psf import center_psf, centroid, normalize_psf, psf_to_otf, resample_psf, resize_psf

#: The image step's TV weight when the PSF is fitted, over the weight chosen
#: to deblur. The detail a weaker prior restores is restored with the PSF's
#: error in it, and a PSF fitted to it keeps that error: fitting to the main
#: edges alone (a cartoon of the image, as Xu and Jia, or Cho and Lee,
#: extract) corrects it. Share of the PSNR lost to a PSF 20% too large that
#: refinement recovers on camera-made images, by factor: 3x 40%, 10x 60%,
#: 30x 60-90%, 100x 60-80%.
EDGES_WEIGHT = 30.0
#: Weight of ``||h||^2`` in the blind PSF step, relative to the data term's
#: curvature (Cho and Lee's kernel prior): it keeps the PSF from collapsing
#: into a few spikes. Gains over the blurred input on four camera-shake
#: images: 6.4, 7.4, 6.2, -0.1 dB with it, 5.9, 7.3, 5.6, -0.2 without (and
#: 6.1, -1.6, 5.5, -0.2 without it when the L0 weight ends at 1e-3, not 2e-3).
KERNEL_L2 = 1e-3
#: Weight of the PSF's second moment about its box's centre in the blind PSF
#: step, ``sum_r h(r) |r|^2 / R^2`` (``R`` the box's half side), relative to
#: the data term's curvature: of the PSFs that explain the edges equally
#: well, the most compact. A straight edge says nothing of the blur along
#: it: on rocket's crop (one long vertical edge) the PSF, pushed apart by
#: :data:`KERNEL_L2`, spread along the whole box (RMS extent 9.5 rows,
#: truth 2.8) and the deblurred photo lost 3 to 4 dB to the blurred one;
#: with this weight 3.6-3.9 rows and a gain of 1.5 dB. 1e-4 left it
#: spread; 1e-3 shrank the 30 px shakes of camera and astronaut (gains
#: +2.1 and -0.2 dB instead of +2.8 and +3.0).
KERNEL_MOMENT = 3e-4
#: A fitted PSF's values under this share of its peak are noise (the fit's
#: errors, and the skirt a wrong measurement leaves through the pull towards
#: it) and are dropped, as in Cho and Lee's and Xu and Jia's kernel steps.
#: Share of the PSNR lost to a PSF 20% too large that refinement recovers on
#: the 18 camera-made images of ``bench_blind.py`` (seed 5), and PSNR lost
#: to refining the true PSF (mean, worst): with it median 91%, smallest 57%,
#: 0.48 and 1.43 dB; without, 94%, 49% (the moon's Gaussian keeping the
#: skirt of the wider measurement), 0.38 and 0.96 dB. Before the measurement
#: was magnified first, the smallest share was 33% with it and 24% without
#: (rocket's too-long motion keeping its ends).
KERNEL_FLOOR = 0.05


def drop_faint(h: np.ndarray) -> np.ndarray:
    """`h` with its values under :data:`KERNEL_FLOOR` of its peak set to zero, of unit sum."""
    h = np.where(h < KERNEL_FLOOR * h.max(), 0, h)
    return h / h.sum()


def project_simplex(values: np.ndarray) -> np.ndarray:
    """Euclidean projection on ``{h >= 0, sum h = 1}`` (Duchi et al.), any shape."""
    flat = values.ravel().astype(np.float64)
    ordered = np.sort(flat)[::-1]
    cumulative = np.cumsum(ordered) - 1
    index = np.arange(1, flat.size + 1)
    rho = np.flatnonzero(ordered - cumulative / index > 0)[-1]
    theta = cumulative[rho] / (rho + 1)
    return np.maximum(flat - theta, 0).reshape(values.shape).astype(values.dtype)


class KernelFit:
    """The PSF's step: fit ``h`` to the images' gradients with the sharp image fixed.

    Minimises ``sum_d ||V (d_d x) * h - d_d y||^2 / 2 + mu ||h - h0||^2 / 2`` over
    non-negative ``h`` of unit sum and shape `kernel`, where ``V`` keeps the
    samples of the 'valid' convolution (``x`` is the scene, larger than the
    observation ``y`` by the kernel's size less one).

    Parameters
    ----------
    scene : ndarray
        The sharp estimate ``x``, shape ``y.shape + kernel - 1`` (2D).
    observed : ndarray
        The observation ``y`` (2D).
    kernel : tuple of int
        The PSF's shape.
    """

    def __init__(self, scene: np.ndarray, observed: np.ndarray, kernel: tuple[int, int]):
        scene = np.asarray(scene, dtype=np.float64)
        observed = np.asarray(observed, dtype=np.float64)
        if tuple(s - o + 1 for s, o in zip(scene.shape, observed.shape)) != tuple(kernel):
            raise ValueError(
                f"scene {scene.shape} must exceed the observation {observed.shape} by the "
                f"kernel {kernel} less one"
            )
        self.kernel = tuple(kernel)
        self.grid = backend.fast_shape(scene.shape)
        self.axes = (0, 1)
        # The valid part of a full convolution starts at the kernel's size less one.
        self.start = [k - 1 for k in self.kernel]
        self.data_gradients = [np.diff(observed, axis=a) for a in self.axes]
        self.spectra = [
            backend.rfftn(np.diff(scene, axis=a), self.axes, shape=self.grid) for a in self.axes
        ]
        self.lipschitz = float(sum(np.abs(s) ** 2 for s in self.spectra).max())

    def _blur(self, h: np.ndarray) -> list[np.ndarray]:
        """``V (d_d x) * h`` for each axis: the valid part of each full convolution."""
        spectrum = backend.rfftn(h, self.axes, shape=self.grid)
        return [
            backend.crop(backend.irfftn(s * spectrum, self.grid, self.axes), self.start, d.shape)
            for d, s in zip(self.data_gradients, self.spectra)
        ]

    def _adjoint(self, residuals: list[np.ndarray]) -> np.ndarray:
        """The gradient in ``h`` of the data term: correlations of the residuals with ``d_d x``."""
        total = None
        for r, s in zip(residuals, self.spectra):
            part = s.conj() * backend.rfftn(backend.embed(r, self.start, self.grid), self.axes)
            total = part if total is None else total + part
        full = backend.irfftn(total, self.grid, self.axes)
        return np.ascontiguousarray(full[: self.kernel[0], : self.kernel[1]])

    def solve(
        self,
        start: np.ndarray,
        *,
        prior: np.ndarray | None = None,
        mu: float = 0.0,
        moment: float = 0.0,
        iterations: int = 100,
        tol: float = 1e-4,
    ) -> np.ndarray:
        """FISTA from `start`, projected on unit-sum non-negative kernels.

        Parameters
        ----------
        start : ndarray
            Starting kernel, of `kernel`'s shape.
        prior : ndarray, optional
            ``h0``, the kernel to stay near (a measured PSF).
        mu : float
            Weight of the nearness, relative to the data term's Lipschitz
            constant.
        moment : float
            Weight of the second moment about the box's centre,
            ``sum_r h(r) |r|^2 / R^2`` with ``R`` the box's half side,
            relative to the same constant: a pull towards compact kernels.
        iterations : int
            Upper bound on iterations.
        tol : float
            Stop when the kernel changes by less than this, relative.
        """
        mu = mu * self.lipschitz
        step = 1 / (self.lipschitz + mu)
        if moment:
            # The moment is linear in h: its gradient is a fixed map of r^2.
            offsets = np.indices(self.kernel) - (np.array(self.kernel)[:, None, None] - 1) / 2
            half = (max(self.kernel) - 1) / 2
            moment_gradient = moment * self.lipschitz * (offsets**2).sum(axis=0) / half**2
        h = project_simplex(np.asarray(start, dtype=np.float64))
        z, t = h, 1.0
        for _ in range(iterations):
            residuals = [b - d for b, d in zip(self._blur(z), self.data_gradients)]
            gradient = self._adjoint(residuals)
            if prior is not None and mu:
                gradient += mu * (z - prior)
            if moment:
                gradient += moment_gradient
            new = project_simplex(z - step * gradient)
            t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
            z = new + ((t - 1) / t_new) * (new - h)
            change = backend.norm(new - h) / max(backend.norm(new), 1e-30)
            h, t = new, t_new
            if change < tol:
                break
        return h


#: The smallest magnification of a measured PSF searched: a PSF measured
#: some 40% too large.
SMALLEST_MAGNIFICATION = 0.7


def fit_magnification(
    observed: np.ndarray, psf: np.ndarray, *, largest: float = 1.25
) -> tuple[np.ndarray, float]:
    """The measured PSF magnified to explain the image best: a PSF taken at another distance.

    A defocus disc or a motion streak measured at another distance (or
    another exposure time) has the right shape at the wrong scale. The
    magnification whose PSF explains the blurred image best (the lowest
    GCV value, :class:`~napari_deblur.engine.noise.BlurScore`) is found on
    a grid from :data:`SMALLEST_MAGNIFICATION` to `largest`, then refined
    between the grid's neighbours. On the 18 camera-made images of
    ``bench_blind.py`` with PSFs 20% too large (truth: 0.833) it finds
    about 0.80-0.86 for discs and motions, 0.83-0.91 (and 1.06 on the
    smooth moon) for Gaussians, whose width GCV overestimates; for the right
    PSFs 0.93-1.03 and, for Gaussians, up to 1.26.

    Parameters
    ----------
    observed : ndarray
        The blurred image, 2D, in linear light.
    psf : ndarray
        The measured PSF, 2D, centre at sample ``k // 2``.
    largest : float
        The largest magnification searched.

    Returns
    -------
    psf, magnification : ndarray, float
        The magnified PSF (unit sum, odd sizes) and its magnification.

    Raises
    ------
    ValueError
        If `largest` is not above :data:`SMALLEST_MAGNIFICATION`.
    """
    if not largest > SMALLEST_MAGNIFICATION:
        raise ValueError(
            f"largest must exceed the smallest magnification {SMALLEST_MAGNIFICATION}, "
            f"got {largest}"
        )
    psf = normalize_psf(psf)
    score = BlurScore(np.asarray(observed), np.shape(psf))

    def magnified(m: float) -> np.ndarray:
        return resample_psf(psf, 1.0, 1.0 / m)

    grid = np.geomspace(SMALLEST_MAGNIFICATION, largest, 21)
    magnification, _ = minimize_on_grid(lambda m: score(magnified(m)), grid, xatol=0.003)
    return magnified(magnification), magnification


def refine_psf(
    observed: np.ndarray,
    psf: np.ndarray,
    *,
    variance: float,
    rounds: int = 10,
    margin: float = 0.25,
    nearness: float = 0.03,
) -> tuple[np.ndarray, float, float]:
    """Refine a measured PSF on the image it blurred (semi-blind deblurring).

    The measurement is first magnified to explain the image best
    (:func:`fit_magnification`, at most ``1 + margin``). Then the image's
    TV step and the PSF's gradient-domain step (module docstring) alternate,
    starting from the magnified measurement; the PSF stays non-negative with
    unit sum, inside `psf`'s box grown by `margin` (so a PSF measured a bit
    small can grow), and is drawn towards the magnified measurement by
    `nearness`; after each PSF step its faint values are dropped
    (:func:`drop_faint`). The image step takes :data:`EDGES_WEIGHT` times the
    TV weight it would take to deblur: what the PSF is fitted to is the
    image's main edges. The magnification corrects the scale of discs and
    motions; the alternation corrects shapes and the width of Gaussians,
    which the magnification's score overestimates.

    Parameters
    ----------
    observed : ndarray
        The blurred image, 2D, in linear light.
    psf : ndarray
        The measured PSF, 2D.
    variance : float
        The image's noise variance (for the TV weight).
    rounds : int
        Upper bound on alternations; they stop once the PSF changes by less
        than 1% in a round.
    margin : float
        How much larger than the measured one the refined PSF may be, per
        side, as a fraction of its size.
    nearness : float
        Weight of ``||h - h0||^2``, relative to the data term's curvature.
        Share of the PSNR lost to a PSF 20% too large that refinement
        recovers on the 18 camera-made images of ``bench_blind.py``
        (smallest on two draws of the noise), and PSNR lost to refining the
        right PSF (mean, worst), by weight: 0.01 65% and 47%, 0.85 and 2.4
        dB; 0.02 67% and 52%, 0.6 and 1.9 dB; 0.03 57% and 54%, 0.45 and
        1.4 dB; 0.1 18% (the moon's Gaussian, which the magnification made
        wider, kept).

    Returns
    -------
    psf, change, magnification : ndarray, float, float
        The refined PSF, its relative distance from the measured one, and
        the magnification found for the measurement.
    """
    observed = np.asarray(observed, dtype=np.float64)
    if observed.ndim != 2 or np.ndim(psf) != 2:
        raise ValueError("the PSF is refined on a 2D image with a 2D PSF")
    if np.ptp(observed) == 0:
        raise ValueError("the image is flat: it shows no blur to refine the PSF on")
    grown = tuple(2 * int(np.ceil(k * (1 + margin) / 2)) + 1 for k in np.shape(psf))
    magnified, magnification = fit_magnification(observed, psf, largest=1 + margin)
    if not SMALLEST_MAGNIFICATION * 1.01 < magnification < (1 + margin) / 1.01:
        warnings.warn(
            f"the PSF's best magnification, {magnification:.2f}x, lies at the end of those "
            "searched: the image may be too small or too plain to refine the PSF on, or the "
            "PSF far from its blur; compare with refine_psf=False",
            UserWarning,
            stacklevel=3,
        )
    measured = resize_psf(normalize_psf(psf), grown)
    start = resize_psf(magnified, grown)
    h = start
    for _ in range(rounds):
        operator = Convolution(h, observed.shape, boundary="valid", method="fft")
        variance = np.array(variance)
        _, weight = build_solver("admm_tv", operator, observed, variance=variance)
        solver, _ = build_solver(
            "admm_tv", operator, observed, variance=variance, weight=weight * EDGES_WEIGHT
        )
        scene = solver.run(observed)
        fit = KernelFit(scene, observed, grown)
        new = fit.solve(h, prior=start, mu=nearness)
        new = drop_faint(new)
        change = backend.norm(new - h) / backend.norm(h)
        h = new
        if change < 0.01:
            break
    return h, backend.norm(h - measured) / backend.norm(measured), magnification


def sparse_edges(observed: np.ndarray, psf: np.ndarray, weight: float) -> np.ndarray:
    """The scene's main edges: ``argmin ||h * x - y||^2 + weight ||grad x||_0``.

    Half-quadratic splitting (Xu, Zheng and Jia): the gradient ``g`` is split
    off and kept only where its squared length exceeds ``weight / beta``,
    while the splitting's weight ``beta`` doubles from ``2 weight`` to
    ``1e5``; each ``x`` step is a division of spectra. Unlike total
    variation, an L0 prior prefers the sharp scene to a blurred one at every
    scale (Levin et al.), which keeps a blind estimate from the no-blur
    solution. The frame is extended by its mirror image (the division is
    periodic) and the scene returned is the observed frame grown by the
    PSF's size less one, as :class:`KernelFit` wants.
    """
    k = psf.shape
    margin = [(kk, kk) for kk in k]
    y = np.pad(observed, margin, mode="symmetric")
    grid = y.shape
    axes = (0, 1)
    otf = psf_to_otf(psf, grid)
    data = otf.conj() * backend.rfftn(y, axes)
    blur_power = np.abs(otf) ** 2
    prior_power = gradient_spectrum(grid, np.float64)
    gradient = Gradient(grid, periodic=True)
    x = y
    beta = 2 * weight
    while beta < 1e5:
        g = gradient.apply(x)
        g[:, vector_length(g) ** 2 < weight / beta] = 0
        numerator = data + beta * backend.rfftn(gradient.adjoint(g), axes)
        x = backend.irfftn(numerator / (blur_power + beta * prior_power), grid, axes)
        beta *= 2
    # The scene's sample 0 lies k - 1 - k // 2 samples before the frame, which
    # starts k samples into the extended grid.
    size = [n + kk - 1 for n, kk in zip(observed.shape, k)]
    return backend.crop(x, [1 + kk // 2 for kk in k], size)


def blind_psf(observed: np.ndarray, size: int, *, rounds: int = 12) -> np.ndarray:
    """Estimate a general PSF (camera shake) from the blurred image alone.

    Coarse to fine: on a pyramid of the image (steps of sqrt(2), from the
    scale where the PSF is about 3 samples wide), the scene's main edges
    (:func:`sparse_edges`, the L0 weight falling from 8e-3 to 2e-3 of the
    linear range within each scale: the main edges first) and the PSF
    (:class:`KernelFit`, with a small penalty :data:`KERNEL_L2` on its
    energy and a pull :data:`KERNEL_MOMENT` towards a compact PSF) are
    estimated in turn, the PSF found at each scale being the start at the
    next; at the end of each scale, its faint values are dropped
    (:func:`drop_faint`) and it is moved back to the box's centre. The PSF
    returned has its centroid on the centre sample (:func:`center_psf`).

    Parameters
    ----------
    observed : ndarray
        The blurred image, 2D, in linear light.
    size : int
        Side of the PSF's box (made odd), larger than the blur.
    rounds : int
        Alternations per scale.

    Returns
    -------
    ndarray
        The PSF, ``size`` x ``size``, non-negative with unit sum.
    """
    # scikit-image's transform module is only loaded when it is wanted.
    from skimage.transform import rescale

    observed = np.asarray(observed, dtype=np.float64)
    if observed.ndim != 2:
        raise ValueError("a PSF is estimated blind on a 2D image")
    size = int(size) | 1
    if min(observed.shape) < 4 * size:
        raise ValueError(f"the image {observed.shape} is too small for a PSF of {size} samples")
    steps = max(0, int(np.floor(np.log(size / 3) / np.log(np.sqrt(2)))))
    h = None
    for level in range(steps, -1, -1):
        scale = np.sqrt(2) ** -level
        kernel = int(np.ceil(size * scale)) | 1
        image = rescale(observed, scale, anti_aliasing=True) if level else observed
        if h is None:
            h = np.zeros((kernel, kernel))
            h[kernel // 2 - 1 : kernel // 2 + 2, kernel // 2 - 1 : kernel // 2 + 2] = 1 / 9
        else:
            h = _resized(ndimage.zoom(h, kernel / h.shape[0], order=1), kernel)
        for weight in np.geomspace(8e-3, 2e-3, rounds):
            scene = sparse_edges(image, h, weight)
            fit = KernelFit(scene, image, (kernel, kernel))
            h = fit.solve(h, prior=np.zeros_like(h), mu=KERNEL_L2, moment=KERNEL_MOMENT)
        h = _centred_whole(drop_faint(h))
    # Centred to the sample, as a measured PSF: the deblurred photo does not move.
    return center_psf(h)


def _centred_whole(h: np.ndarray) -> np.ndarray:
    """`h` moved by whole samples so that its centre of mass is at its box's centre.

    Found blind, a PSF is known only up to a translation (the scene moved
    the other way fits as well), and over the alternations it drifts, up to
    16 samples on the benchmark's photos: to the box's edge, where it is
    cut. Moved back after each scale, by whole samples (a sub-pixel shift
    would smooth it at every scale), it stays whole.
    """
    offset = np.rint(centroid(h) - np.array(h.shape) // 2)
    return ndimage.shift(h, -offset, order=0, mode="constant")


def _resized(h: np.ndarray, size: int) -> np.ndarray:
    """`h` centred in a box of `size` (cropped or zero-padded), non-negative with unit sum."""
    out = np.zeros((size, size))
    n = h.shape[0]
    if n >= size:
        start = (n - size) // 2
        out[:] = h[start : start + size, start : start + size]
    else:
        start = (size - n) // 2
        out[start : start + n, start : start + n] = h
    out = np.clip(out, 0, None)
    return out / out.sum()

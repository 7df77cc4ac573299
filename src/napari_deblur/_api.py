"""Public API: deblur an array with a PSF or a raw photo of a point light."""

from __future__ import annotations

import inspect
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from .engine import backend, psf_fit
from .engine.blind import estimate_blur
from .engine.color import full_scale, linear_to_srgb, resolve_encoding, to_linear
from .engine.memory import check_memory
from .engine.methods import (
    METHODS,
    ONE_PSF_METHODS,
    SCHEDULED,
    WEIGHTED_DATA_METHODS,
    build_solver,
    choose_method,
)
from .engine.noise import (
    COMPRESSED_BAND,
    data_weights,
    detail_is_noise,
    estimate_background,
    estimate_noise_level,
    pedestal,
    quantisation_noise,
)
from .engine.operators import BOUNDARIES, Convolution, VaryingConvolution
from .engine.outliers import hot_pixels
from .engine.point_source import psf_from_point_source
from .engine.psf import resample_psf, spread
from .engine.saturation import clipped_mask, clipped_regions, saturation_level
from .engine.solvers import fill_unobserved

#: The weight with a PSF estimated blind, over the weight with a measured one.
#: On camera-shake images at 3000 photons (benchmarks/bench_blind.py), 3x put
#: 5 of 6 above the blurred input where the measured PSF's weight put 2. With
#: the blind PSF centred and compact, on the 24 images of that benchmark
#: (gain over the blurred input, mean / smallest, above on): 2x +2.81 / -0.83
#: dB, 22; 3x +2.93 / -0.10, 23; 5x +2.92 / +0.44, 24; on another draw of the
#: shakes and noise, not used to choose: 3x +3.10 / -1.40, 22; 5x +3.07 /
#: -1.02, 23; 8x +2.83 / -0.74, 23. The PSF's error weighs most where the
#: photon noise is low: a larger weight loses a little on noisy photos and
#: gains on clean ones.
BLIND_WEIGHT = 5.0

#: Share of the samples more than 3 noise levels below zero beyond which the
#: data are said to be signed: Gaussian noise puts 0.13% there.
SIGNED_SHARE = 0.01

#: The most of a PSF's light that may lie beyond the image's extent, cut off
#: (a bead stack spanning more planes than the sample's: its far haze),
#: where the boundary model does not extend the image.
MAX_CUT_LIGHT = 0.05


#: The keyword arguments of :func:`deblur` that every image (chunk, frame)
#: of a run shares, passed on as they are.
OPTIONS = (
    "method",
    "boundary",
    "encoding",
    "noise",
    "weight",
    "max_iter",
    "bad_pixels",
    "saturation",
    "spacing",
    "psf_spacing",
    "varying",
    "refine_psf",
    "compressed",
    "psf_compressed",
)


def is_lazy(data) -> bool:
    """Whether `data` are read on demand (Dask, Zarr) rather than held in memory."""
    return type(data).__module__.split(".")[0] in ("dask", "zarr")


@dataclass(frozen=True)
class Plan:
    """What a run decided from its data, to repeat exactly on other data.

    The parts of an image too large to deblur at once are deblurred one by
    one, each with the decisions made once for the whole (from its centre):
    with the same noise, weight and steps they agree with the whole image
    deblurred at once (:func:`deblur`'s `chunks`). It also deblurs a series
    of images alike. Each :class:`Progress` carries the plan of its run so
    far (``Progress.plan``).

    Attributes
    ----------
    method, boundary, encoding : str
        The method, boundary model and pixel encoding.
    saturation : float or None
        The stored value at which pixels count as clipped.
    variance, weight, background, level : tuple of float
        Per channel: the noise variance in linear light, the regularisation
        weight (empty for plain Richardson-Lucy), the fitted background and
        the data's mean level.
    gain, floor : tuple of float
        Per channel: how much the noise variance grows per unit of light
        (photon noise) and its value in the dark (empty when the noise was
        given: then it is the same everywhere).
    psf_shape : tuple of int
        Size of the PSF as used (after cleaning).
    psf_spread : tuple of float
        Standard deviation of its light along each axis (the widest
        channel's), in samples: how far each iteration carries a change.
    iterations : int or None
        Iterations made; None in a plan to repeat: stop by the method's own
        rules (its steps are then measured, not repeated).
    schedule : tuple of float
        What each iteration adapted to the data (extrapolation lengths,
        momenta or ADMM's penalties: the
        :data:`~napari_deblur.engine.methods.SCHEDULED` metrics; empty for
        methods with nothing to repeat).
    """

    method: str
    boundary: str
    encoding: str
    saturation: float | None
    variance: tuple[float, ...]
    weight: tuple[float, ...]
    background: tuple[float, ...]
    level: tuple[float, ...]
    gain: tuple[float, ...]
    floor: tuple[float, ...]
    psf_shape: tuple[int, ...]
    psf_spread: tuple[float, ...]
    iterations: int | None
    schedule: tuple[float, ...]


@dataclass(frozen=True)
class Progress:
    """One step of a running deblur, as yielded by :func:`deblur_steps`.

    Attributes
    ----------
    iteration : int
        Iterations done.
    fraction : float
        Fraction of the work done, 1 on the last step.
    metrics : mapping
        What the solver measured at this step.
    settings : mapping
        What was chosen for this run: method, boundary, noise level, ...
    estimate : ndarray
        The solver's estimate, in linear light, channels first, including
        the unobserved border for the ``'valid'`` boundary.
    to_output : callable
        Turns an estimate into an image like the input (see :attr:`image`).
    plan : Plan
        The run's decisions up to this step, to repeat them elsewhere.
    psf : ndarray or None
        The PSF deblurred with, in linear light with unit sum: cleaned from
        the photo given, estimated (``psf='auto'``) or refined
        (`refine_psf`); one per channel, channels first, when they differ.
        None for a blur that varies across the frame.
    """

    iteration: int
    fraction: float
    metrics: Mapping[str, float]
    settings: Mapping[str, object]
    estimate: np.ndarray
    to_output: Callable[[np.ndarray], np.ndarray]
    plan: Plan
    psf: np.ndarray | None = None

    @property
    def image(self) -> np.ndarray:
        """The estimate as an image like the input: its shape, axes and encoding."""
        return self.to_output(self.estimate)


def _spacing(value, name: str, ndim: int) -> np.ndarray:
    """A voxel size: one positive number per spatial axis."""
    try:
        spacing = np.broadcast_to(np.asarray(value, dtype=float), (ndim,))
    except ValueError:
        raise ValueError(
            f"{name} must give one size per spatial axis ({ndim}), got {value}"
        ) from None
    if not np.all((spacing > 0) & np.isfinite(spacing)):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return spacing


def _is_number(value, *, integer: bool = False) -> bool:
    """Whether `value` is one finite real number (a whole one if `integer`)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    return isinstance(value, kinds) and not isinstance(value, bool) and bool(np.isfinite(value))


def _as_image(image, name: str) -> np.ndarray:
    image = np.asarray(image) if backend.foreign(image) is None else backend.to_numpy(image)
    if image.dtype.kind not in "iubf":
        raise TypeError(f"{name} must hold real numbers, got an array of {image.dtype}")
    if image.ndim < 1 or image.size == 0:
        raise ValueError(f"{name} must be a non-empty array, got shape {image.shape}")
    return image


def _left_out(
    image, channel_axis, bad_pixels, saturation
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Samples left out of the fit, and those of them that are clipped (not bad).

    Both channels first (one channel for grey), or None where there are none.
    """
    clipped = clipped_mask(image, saturation)
    bad = None
    if bad_pixels is not None:
        bad = np.asarray(bad_pixels)
        if bad.dtype.kind not in "biu":
            raise TypeError(f"bad_pixels must be a boolean or label array, got {bad.dtype}")
        spatial = tuple(n for a, n in enumerate(image.shape) if a != channel_axis)
        if bad.shape == spatial and channel_axis is not None:
            bad = np.expand_dims(bad, channel_axis)
        elif bad.shape != image.shape:
            shapes = f"{spatial}" if spatial == image.shape else f"{spatial} or {image.shape}"
            raise ValueError(f"bad_pixels must have the image's shape {shapes}, got {bad.shape}")
        bad = np.broadcast_to(bad != 0, image.shape)
        clipped = None if clipped is None else clipped & ~bad

    def channels_first(samples):
        if samples is None or not samples.any():
            return None
        return samples[None] if channel_axis is None else np.moveaxis(samples, channel_axis, 0)

    invalid = channels_first(bad if clipped is None else clipped if bad is None else clipped | bad)
    clipped = channels_first(clipped)
    if invalid is not None and invalid.all():
        raise ValueError("every pixel is clipped or marked bad; nothing is left to deblur")
    return invalid, clipped


def deblur_steps(
    image,
    psf,
    *,
    method: str = "auto",
    boundary: str = "auto",
    channel_axis: int | None = None,
    encoding: str = "auto",
    noise: float | None = None,
    weight: float | None = None,
    max_iter: int | None = None,
    bad_pixels=None,
    saturation: float | str | None = "auto",
    spacing=None,
    psf_spacing=None,
    time_axis: int | None = None,
    varying: bool = False,
    refine_psf: bool = False,
    compressed: bool = False,
    psf_compressed: bool = False,
    plan: Plan | None = None,
) -> Iterator[Progress]:
    """Deblur step by step: an iterator of :class:`Progress`, the last being the result.

    Takes the arguments of :func:`deblur` but `chunks`: the image is
    deblurred in memory (a Dask or Zarr array is read whole; :func:`deblur`
    deblurs it chunk by chunk). The arguments are checked, and the PSF
    prepared (estimated, for ``psf='auto'`` or ``'general'``), when this
    function is called; the iterations happen as the iterator is consumed
    (and the PSF's refinement, with `refine_psf`). Stopping early (for
    example from a Cancel button) leaves the last yielded estimate as a
    valid, less sharp result.
    """
    arguments = locals()
    options = {name: arguments[name] for name in (*OPTIONS, "plan")}
    if time_axis is not None:
        return _frame_by_frame(image, psf, time_axis, channel_axis, options)
    return _one_image(image, psf, channel_axis=channel_axis, **options)


def decisions(image, psf, *, channel_axis: int | None = None, **options) -> Plan:
    """The :class:`Plan` :func:`deblur_steps` decides on one image, without iterating.

    Takes :func:`deblur_steps`'s arguments but `time_axis` and `plan`; its
    iterations are 0 (they are only known by running).
    """
    options = {**option_defaults(), **options}
    return _one_image(
        image, psf, channel_axis=channel_axis, plan=None, decide_only=True, **options
    )


def option_defaults() -> dict:
    """The defaults of :data:`OPTIONS`, from :func:`deblur_steps`'s signature."""
    parameters = inspect.signature(deblur_steps).parameters
    return {name: parameters[name].default for name in OPTIONS}


def _frame_by_frame(image, psf, time_axis, channel_axis, options) -> Iterator[Progress]:
    """:func:`deblur_steps` for each frame along `time_axis` in turn, as one progress."""
    image = _as_image(image, "image")
    for name, axis in (("time_axis", time_axis), ("channel_axis", channel_axis)):
        if axis is not None and not _is_number(axis, integer=True):
            raise TypeError(f"{name} must be an integer axis, got {axis!r}")
        if axis is not None and not -image.ndim <= axis < image.ndim:
            raise ValueError(f"{name} {axis} is out of range for an image of {image.ndim} axes")
    time_axis %= image.ndim
    if channel_axis is not None:
        channel_axis %= image.ndim
        if channel_axis == time_axis:
            raise ValueError("time_axis and channel_axis must differ")
        channel_axis -= channel_axis > time_axis
    frames = np.moveaxis(image, time_axis, 0)
    if image.dtype.kind == "f":
        # Said now, not after the frames before it are deblurred.
        broken = [t for t, f in enumerate(frames) if not np.all(np.isfinite(f))]
        if broken:
            raise ValueError(
                f"frames {broken[:5]}{' ...' if len(broken) > 5 else ''} of the image contain "
                "NaN or infinite values; replace them first"
            )
    # A mask of the whole series' shape marks each frame's own bad pixels.
    bad = options.get("bad_pixels")
    masks = (
        np.moveaxis(np.asarray(bad), time_axis, 0)
        if bad is not None and np.shape(bad) == image.shape
        else None
    )

    def frame(t: int, method: str) -> Iterator[Progress]:
        masked = options if masks is None else {**options, "bad_pixels": masks[t]}
        masked = {**masked, "method": method}
        return _one_image(frames[t], psf, channel_axis=channel_axis, **masked)

    # The first frame's steps check every argument now, not when iterated.
    first = frame(0, options["method"])

    def steps() -> Iterator[Progress]:
        done = []
        chosen = options["method"]
        for t in range(len(frames)):
            frame_steps = first if t == 0 else frame(t, chosen)
            finished = tuple(done)
            for step in frame_steps:

                def to_output(estimate, step=step, t=t, finished=finished):
                    # Frames done, this one as it stands, the rest as they came.
                    rest = [f.astype(np.float32) for f in frames[t + 1 :]]
                    stack = np.stack([*finished, step.to_output(estimate), *rest])
                    return np.moveaxis(stack, 0, time_axis)

                settings = {**step.settings, "frame": t, "frames": len(frames)}
                fraction = (t + step.fraction) / len(frames)
                yield Progress(
                    step.iteration,
                    fraction,
                    step.metrics,
                    settings,
                    step.estimate,
                    to_output,
                    step.plan,
                    step.psf,
                )
            done.append(step.to_output(step.estimate))
            # One series, one method: the one the first frame chose.
            chosen = step.settings["method"]

    return steps()


def _spread(kernel) -> tuple[float, ...]:
    """Per axis, the widest :func:`~napari_deblur.engine.psf.spread` of a PSF's channels."""
    return tuple(np.max([spread(k) for k in backend.to_numpy(kernel)], axis=0).tolist())


def _extent(linear: np.ndarray) -> np.ndarray:
    """The range of each image of a batch, robustly: its 99.9th percentile of magnitude.

    One hot pixel (a cosmic ray, a sensor defect) does not set it; an image
    lit in fewer samples than that (a few stars) takes its largest value, and
    an image of zeros 1. It is relative to the data, whatever their units.
    """
    magnitude = np.abs(linear).reshape(len(linear), -1)
    extent = np.percentile(magnitude, 99.9, axis=1)
    extent = np.where(extent > 0, extent, magnitude.max(axis=1))
    return np.where(extent > 0, extent, 1.0)


def _one_image(
    image,
    psf,
    *,
    method,
    boundary,
    channel_axis,
    encoding,
    noise,
    weight,
    max_iter,
    bad_pixels,
    saturation,
    spacing,
    psf_spacing,
    varying,
    refine_psf,
    compressed,
    psf_compressed,
    plan,
    decide_only=False,
) -> Iterator[Progress] | Plan:
    """:func:`deblur_steps` for one image (or stack).

    With `decide_only`, the :class:`Plan` it decided (no iteration yet)
    instead of the steps.
    """
    source = backend.foreign(image)
    image = _as_image(image, "image")
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values; replace them first")
    # Sums of squares over the image must stay finite in the arithmetic's type.
    largest = max(float(image.max()), -float(image.min()))
    limit = np.sqrt(float(np.finfo(backend.float_dtype(image.dtype)).max)) / 3e4
    if largest > limit:
        raise ValueError(
            f"image values reach {largest:.3g}, whose squares overflow "
            f"{np.dtype(backend.float_dtype(image.dtype)).name}; scale the image down"
        )
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if boundary != "auto" and boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be 'auto' or one of {BOUNDARIES}, got {boundary!r}")
    if max_iter is not None and not (_is_number(max_iter, integer=True) and max_iter >= 1):
        raise ValueError(f"max_iter must be a whole number of at least 1, got {max_iter!r}")
    if noise is not None and not (_is_number(noise) and noise > 0):
        raise ValueError(f"noise must be a positive, finite standard deviation, got {noise!r}")
    if weight is not None and not (_is_number(weight) and weight >= 0):
        raise ValueError(f"weight must be a non-negative, finite number, got {weight!r}")
    if weight is not None and method == "richardson_lucy":
        raise ValueError("richardson_lucy takes no weight (it stops at the noise); use 'rl_tv'")
    if weight == 0 and method not in ("wiener", "landweber"):
        raise ValueError(
            f"weight 0 (no regularisation) is for 'wiener' and 'landweber'; {method!r} "
            "needs a positive weight"
        )
    if channel_axis is not None and not _is_number(channel_axis, integer=True):
        raise TypeError(f"channel_axis must be an integer axis, got {channel_axis!r}")
    if channel_axis is not None:
        if not -image.ndim <= channel_axis < image.ndim:
            raise ValueError(
                f"channel_axis {channel_axis} is out of range for an image of {image.ndim} axes"
            )
        channel_axis %= image.ndim
    spatial_ndim = image.ndim - (channel_axis is not None)
    if spatial_ndim < 2:
        raise ValueError(
            f"image has {spatial_ndim} spatial axis; images are 2D or 3D "
            "(a 1D signal is one row: image[None] with psf[None])"
        )
    if plan is not None:
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be a Plan (a step's .plan), got {type(plan).__name__}")
        if plan.method not in METHODS[1:]:
            raise ValueError(f"plan's method must be one of {METHODS[1:]}, got {plan.method!r}")
        if isinstance(psf, str) or varying or refine_psf:
            raise ValueError("a plan repeats a run with one given PSF (not estimated or varying)")
        # The plan's encoding is the image's; the PSF's stays the caller's.
        method, boundary = plan.method, plan.boundary
        channels = 1 if channel_axis is None else image.shape[channel_axis]
        if len(plan.variance) != channels:
            raise ValueError(
                f"plan was made for {len(plan.variance)} channels, the image has {channels}"
            )
    saturation = plan.saturation if plan is not None else saturation_level(image, saturation)
    invalid, clipped = _left_out(image, channel_axis, bad_pixels, saturation)

    estimate = None
    if isinstance(psf, str):
        if psf not in ("auto", "general"):
            raise ValueError(f"psf must be an array, 'auto' or 'general', got {psf!r}")
        if varying:
            raise ValueError(f"varying blur needs a photo of point lights, not psf={psf!r}")
        estimate = estimate_blur(
            image, kind=psf, encoding=encoding, channel_axis=channel_axis, compressed=compressed
        )
        psf = estimate.psf
    psf = _as_image(psf, "psf")
    if not np.all(np.isfinite(psf)):
        raise ValueError("psf contains NaN or infinite values")
    if psf.ndim == spatial_ndim:
        psf_channel_axis = None
    elif channel_axis is not None and psf.ndim == image.ndim:
        psf_channel_axis = channel_axis
        if psf.shape[channel_axis] not in (1, image.shape[channel_axis]):
            raise ValueError(
                f"psf has {psf.shape[channel_axis]} channels, "
                f"the image {image.shape[channel_axis]}"
            )
    else:
        raise ValueError(
            f"psf has {psf.ndim} axes but the image has {spatial_ndim} spatial axes; "
            "give a PSF of the image's dimensionality (2D for photos, 3D for stacks)"
            + (
                ", time_axis for a series of frames, or channel_axis for colour"
                if psf.ndim < spatial_ndim
                else ""
            )
        )

    encoding_image = plan.encoding if plan is not None else resolve_encoding(encoding, image.dtype)
    linear = to_linear(image, encoding_image)
    linear = linear[None] if channel_axis is None else np.moveaxis(linear, channel_axis, 0)
    measured = psf_from_point_source(
        psf,
        # A photo of a point light (integers) is encoded as the image is; a
        # floating-point PSF is light already (a model, or a PSF measured).
        encoding="linear" if psf.dtype.kind == "f" else encoding,
        channel_axis=psf_channel_axis,
        sources="auto" if varying else 1,
        compressed=psf_compressed,
    )
    kernel = measured.psf if psf_channel_axis is not None else measured.psf[None]
    if refine_psf and (varying or spatial_ndim != 2):
        raise ValueError("refine_psf refines one PSF of a 2D image (not varying blur, not stacks)")
    if varying:
        if method in ONE_PSF_METHODS:
            raise ValueError(
                f"method {method!r} needs one PSF for the whole frame; for blur that varies "
                "use 'fista_tv', 'rl_tv', 'richardson_lucy' or 'landweber'"
            )
        photo_shape = (
            tuple(int(n) for n in np.delete(psf.shape, psf_channel_axis))
            if psf_channel_axis is not None
            else psf.shape
        )
        if photo_shape != linear.shape[1:]:
            raise ValueError(
                f"varying blur needs the point-light photo framed like the image: its size "
                f"{photo_shape} is not the image's {linear.shape[1:]}"
            )
        if measured.sources < 2:
            raise ValueError(
                "varying blur needs a photo of several point lights spread over the frame; "
                "found one isolated light"
            )
    if psf_spacing is not None or spacing is not None:
        if psf_spacing is None or spacing is None:
            raise ValueError("give both spacing (the image's) and psf_spacing, or neither")
        spacings = [
            _spacing(v, name, spatial_ndim)
            for v, name in ((spacing, "spacing"), (psf_spacing, "psf_spacing"))
        ]
        if not np.allclose(*spacings):
            if varying:
                raise ValueError("varying blur needs the PSF photo taken with the image's spacing")
            sizes = tuple(
                2 * int((k // 2) * ratio + 1e-9) + 1
                for k, ratio in zip(kernel.shape[1:], spacings[1] / spacings[0])
            )
            # Sizes in two units magnify the PSF along every axis; a thin
            # stack's deep PSF is larger along one (and cut to it below).
            if all(m > 2 * n for m, n in zip(sizes, linear.shape[1:])):
                raise ValueError(
                    f"psf_spacing {tuple(spacings[1].tolist())} against spacing "
                    f"{tuple(spacings[0].tolist())} makes the PSF {sizes} samples, larger "
                    f"than the image {linear.shape[1:]}: are both in the same unit?"
                )
            kernel = np.stack([resample_psf(k, spacings[1], spacings[0]) for k in kernel])
    boundary = "valid" if boundary == "auto" else boundary
    kernel = backend.asarray(_within(kernel, linear.shape[1:], boundary), linear.dtype)
    if clipped is not None:
        clipped = clipped_regions(clipped, kernel.shape[1:])

    def blur_model(mask):
        if not varying:
            return Convolution(kernel, linear.shape, boundary=boundary, batch_ndim=1, mask=mask)
        each = measured.each if psf_channel_axis is not None else measured.each[:, None]
        return VaryingConvolution(
            backend.asarray(each, linear.dtype),
            measured.centres,
            linear.shape,
            boundary=boundary,
            batch_ndim=1,
            mask=mask,
        )

    mask = None if invalid is None else ~invalid
    operator = blur_model(mask)
    if plan is not None:
        variance, background = np.asarray(plan.variance), np.asarray(plan.background)
        data_level = np.asarray(plan.level)
        curve = (np.asarray(plan.gain), np.asarray(plan.floor)) if plan.gain else None
        chosen = np.asarray(plan.weight) if plan.weight else None
        filled = linear
        # A pedestal's negative floor is no noise in the dark (as below).
        sample_noise = (curve[0], np.maximum(curve[1], 0.0)) if curve else (0.0, variance)
    else:
        # The noise level and the weights are measured on the image with its
        # unobserved samples (and the glare round clipped lights) filled in.
        filled = fill_unobserved(operator, linear, around=clipped)
        level = (
            estimate_noise_level(filled, batch_ndim=1, scale=2 if compressed else 1)
            if noise is None or method == "auto"
            else None
        )
        # No image is cleaner than its rounding to integers; a noise-free
        # floating-point one is taken at a millionth of its range, so that
        # every weight stays positive (a noise of 1e-30 given made ADMM's
        # data weights infinite, and its estimate NaN).
        raw = image[None] if channel_axis is None else np.moveaxis(image, channel_axis, 0)
        rounding = quantisation_noise(raw, encoding_image)
        if rounding is None:
            rounding = 1e-6 * _extent(linear)
        if noise is None:
            variance = np.maximum(level.variance, rounding**2)
            curve = tuple(np.broadcast_to(c, linear.shape[:1]) for c in (level.gain, level.floor))
            sample_noise = (level.gain, np.maximum(level.floor, rounding**2))
        else:
            variance = np.maximum(np.full(linear.shape[0], float(noise) ** 2), rounding**2)
            curve = None
            sample_noise = (0.0, variance)
        signed = _signed(linear, variance)
        if method == "auto":
            # Signed data are not photon counts, whatever their noise looks
            # like (counts with read noise, a few samples below zero, are);
            # nor are data whose finest detail is the scene's (a noise-free
            # photo, whose detail grows with the light).
            counts = not signed and detail_is_noise(filled)
            photons = level.photon_share if counts else 0.0
            method = choose_method(
                encoding=encoding_image, boundary=boundary, photon_share=photons, varying=varying
            )
    # Samples no blur could make (hot pixels, cosmic rays) are left out too.
    hot = hot_pixels(linear, kernel, *sample_noise, invalid=invalid)
    if hot.any():
        invalid = hot if invalid is None else invalid | hot
        mask = ~invalid
        operator = blur_model(mask)
        if plan is None:
            filled = fill_unobserved(operator, linear, around=clipped)
    if boundary not in ("valid", "periodic") and method.startswith("admm"):
        raise ValueError(
            f"method {method!r} needs boundary 'valid' or 'periodic', got {boundary!r}"
        )
    check_memory(method, operator)
    if plan is None:
        # Poisson data carry their background in the noise: it is fitted under
        # the blur, not deblurred (the other methods' data terms are blind to a
        # constant).
        background = (
            estimate_background(linear, batch_ndim=1)
            if method in ("richardson_lucy", "rl_tv") and linear.min() >= 0
            else np.zeros(linear.shape[0])
        )
        data_level = np.mean(np.clip(linear, 0, None), axis=tuple(range(1, linear.ndim)))
    # A camera's offset is no light: Richardson-Lucy's Poisson likelihood
    # is for the counts above it (the shifted Poisson model). Read as
    # photons, an offset of 1000 on the bars at 3000 photons had RL-TV's
    # relative error grow from 0.585 to 0.739.
    offset = (
        np.minimum(pedestal(*curve), background)
        if method in ("richardson_lucy", "rl_tv") and curve is not None
        else np.zeros(len(linear))
    )
    # Taken off once (and not at all without an offset: a copy of the image).
    observed, filled_observed = linear, filled
    if np.any(offset):
        above = backend.asarray(offset, linear.dtype).reshape((-1,) + (1,) * spatial_ndim)
        observed, filled_observed = linear - above, filled - above
    # Least squares weigh each sample by its noise, which grows with the
    # light: measured on the data as recorded (the glare round a lamp is
    # where it matters).
    weights = (
        data_weights(linear, variance, *curve, batch_ndim=1)
        if method in WEIGHTED_DATA_METHODS and curve is not None and np.any(curve[0] > 0)
        else None
    )

    # A plan's iterations and their steps are repeated, not measured.
    repeat = {}
    if plan is not None:
        repeat = {"iterations": plan.iterations, "schedule": plan.schedule or None}

    def solver_for(operator, filled, weight=weight):
        return build_solver(
            method,
            operator,
            filled,
            variance=variance,
            weight=weight,
            max_iter=max_iter,
            clipped=clipped,
            background=background - offset,
            level=data_level,
            data_weights=weights,
            band=COMPRESSED_BAND if compressed else 0.5,
            **repeat,
        )

    if plan is None:
        solver, chosen = solver_for(operator, filled_observed)
        blind = estimate is not None and estimate.kind == "general"
        if blind and weight is None and chosen is not None:
            # A PSF estimated blind is rougher than a measured one, and its
            # errors act as noise: BLIND_WEIGHT times the weight.
            solver, chosen = solver_for(operator, filled_observed, chosen * BLIND_WEIGHT)
    # The iterations run where the image is (a GPU, another array library);
    # the decisions above were made on a copy in NumPy. (Varying blur and
    # PSF refinement are NumPy's.)
    device = source is not None and isinstance(operator, Convolution) and not refine_psf
    if device:
        operator = Convolution(
            backend.asarray(kernel, like=source),
            linear.shape,
            boundary=boundary,
            batch_ndim=1,
            mask=mask,
        )
    if plan is not None or device:
        solver, _ = solver_for(operator, filled_observed, chosen)
    settings = {
        "method": method,
        "boundary": boundary,
        "encoding": encoding_image,
        "noise": float(np.sqrt(np.mean(variance))),
        "weight": None if chosen is None else float(np.mean(chosen)),
        "psf_shape": tuple(kernel.shape[1:]),
        "psf_snr": measured.snr,
        "psfs": len(measured.each) if varying else 1,
        "psf_estimate": None if estimate is None else estimate.report(),
        "left_out": 0 if invalid is None else int(np.count_nonzero(invalid)),
        "hot_pixels": int(np.count_nonzero(hot)),
        "compressed": compressed,
        "background": float(np.mean(background)),
        "psf_refined": None,
        "psf_magnified": None,
    }
    out_scale = full_scale(image.dtype)

    # The fitted background is light the image had: it is given back, so
    # that the result keeps the input's level (settings["background"] says
    # how much of it is offset or haze, to subtract where that is wanted).
    restored = backend.asarray(background, linear.dtype).reshape((-1,) + (1,) * spatial_ndim)
    decided = Plan(
        method=method,
        boundary=boundary,
        encoding=encoding_image,
        saturation=saturation,
        variance=tuple(float(v) for v in np.broadcast_to(variance, len(linear))),
        weight=() if chosen is None else tuple(float(w) for w in chosen),
        background=tuple(float(b) for b in background),
        level=tuple(float(v) for v in data_level),
        gain=() if curve is None else tuple(float(g) for g in curve[0]),
        floor=() if curve is None else tuple(float(f) for f in curve[1]),
        psf_shape=tuple(int(k) for k in kernel.shape[1:]),
        psf_spread=_spread(kernel),
        iterations=0,
        schedule=(),
    )
    if decide_only:
        return decided

    def steps() -> Iterator[Progress]:
        current, psf_shape, run_plan = solver, kernel.shape[1:], decided
        used = backend.to_numpy(kernel)
        if refine_psf:
            # The PSF is refined on the channels' mean, whose noise is the
            # channels' mean variance over their number; the work starts here,
            # when the steps are consumed (in a widget's thread).
            refined, change, magnification = psf_fit.refine_psf(
                filled.mean(axis=0),
                kernel.mean(axis=0),
                variance=float(np.mean(variance)) / len(linear),
            )
            model = Convolution(
                backend.asarray(refined[None], linear.dtype),
                linear.shape,
                boundary=boundary,
                batch_ndim=1,
                mask=mask,
            )
            current, weights = solver_for(model, fill_unobserved(model, observed, around=clipped))
            psf_shape, used = refined.shape, refined[None]
            # The weight is chosen again for the refined PSF: that one is said.
            settings.update(
                psf_shape=psf_shape,
                psf_refined=change,
                psf_magnified=magnification,
                weight=None if weights is None else float(np.mean(weights)),
            )
            run_plan = replace(
                decided,
                psf_shape=tuple(int(k) for k in psf_shape),
                psf_spread=_spread(used),
                weight=() if weights is None else tuple(float(w) for w in weights),
            )
        frame = [k - 1 - k // 2 if boundary == "valid" else 0 for k in psf_shape]

        def to_output(estimate: np.ndarray) -> np.ndarray:
            x = backend.crop(backend.to_numpy(estimate), frame, linear.shape[1:]) + restored
            if encoding_image == "srgb":
                x = linear_to_srgb(x) * x.dtype.type(out_scale)
            return x[0].copy() if channel_axis is None else np.moveaxis(x, 0, channel_axis).copy()

        # One PSF for every channel is given as one.
        used = None if varying else used[0] if np.all(used == used[:1]) else used
        schedule = []
        for step in current.iterate(observed):
            schedule += [step.metrics[name] for name in SCHEDULED if name in step.metrics]
            yield Progress(
                step.iteration,
                step.fraction,
                step.metrics,
                settings,
                step.estimate,
                to_output,
                replace(run_plan, iterations=step.iteration, schedule=tuple(schedule)),
                used,
            )

    return steps()


def _within(kernel: np.ndarray, shape: tuple[int, ...], boundary: str) -> np.ndarray:
    """`kernel` (channels first) cut to the largest odd size the model holds, if it reaches beyond.

    A bead stack often spans more planes than the sample's. Under the
    unknown-boundary model ('valid') the PSF may be up to ``2 n - 1``
    samples long on an axis of ``n``: the scene's planes beyond the stack
    take the light of its far planes. A longer PSF is cut to that, centred,
    and renormalised, with a warning of how much light went. On thin
    widefield stacks under a 41-plane PSF
    (``benchmarks/bench_microscopy.py --sections 6``) the PSF so cut
    deblurs better than the whole one (relative error 0.702 against 0.920
    on 8 planes, 0.608 against 0.713 on 20), and than one cut to the
    stack's own planes on 8, 12 and 30 planes (not on 20: 0.608 against
    0.571). The other boundary models hold a PSF no larger than the image
    and refuse one that would lose more than :data:`MAX_CUT_LIGHT` of its
    light.

    Raises
    ------
    ValueError
        If more than :data:`MAX_CUT_LIGHT` of the light lies beyond an
        image that the boundary model does not extend.
    """
    extended = boundary == "valid"
    sizes = tuple(
        min(k, 2 * n - 1 if extended else n - 1 + n % 2) for k, n in zip(kernel.shape[1:], shape)
    )
    if sizes == kernel.shape[1:]:
        return kernel
    window = (slice(None),) + tuple(
        slice((k - m) // 2, (k - m) // 2 + m) for k, m in zip(kernel.shape[1:], sizes)
    )
    cut = kernel[window]
    axes = tuple(range(1, kernel.ndim))
    lost = float(np.max(1 - cut.sum(axis=axes) / kernel.sum(axis=axes)))
    if lost > MAX_CUT_LIGHT and not extended:
        raise ValueError(
            f"the PSF ({' x '.join(map(str, kernel.shape[1:]))} samples) is larger than the "
            f"image ({' x '.join(map(str, shape))}), with {lost:.0%} of its light beyond it; "
            "crop the PSF tighter, use a larger image or the 'valid' boundary"
        )
    warnings.warn(
        f"the PSF ({' x '.join(map(str, kernel.shape[1:]))}) reaches beyond what the image "
        f"({' x '.join(map(str, shape))}) holds: cut to {' x '.join(map(str, sizes))}, "
        f"{lost:.2%} of its light left out",
        UserWarning,
        stacklevel=4,
    )
    return cut / cut.sum(axis=axes, keepdims=True)


def _signed(linear: np.ndarray, variance: np.ndarray) -> bool:
    """Whether more of `linear` (channels first) lies below zero than its noise explains.

    Light is not negative: the noise of a dark background takes a few
    samples under zero (one in 740 beyond three standard deviations), an
    offset taken off too much, or signed data, take many (over
    :data:`SIGNED_SHARE`): then said in a warning.
    """
    sigma = np.sqrt(np.asarray(variance, dtype=np.float64)).reshape(
        (-1,) + (1,) * (linear.ndim - 1)
    )
    below = int(np.count_nonzero(linear < -3 * sigma))
    if below <= SIGNED_SHARE * linear.size:
        return False
    warnings.warn(
        f"{below} of {linear.size} values lie more than 3 noise levels below zero, and "
        "light does not: the result is the non-negative scene that fits best (add back "
        "the offset taken off)",
        UserWarning,
        stacklevel=4,
    )
    return True


def deblur(
    image,
    psf,
    *,
    method: str = "auto",
    boundary: str = "auto",
    channel_axis: int | None = None,
    encoding: str = "auto",
    noise: float | None = None,
    weight: float | None = None,
    max_iter: int | None = None,
    bad_pixels=None,
    saturation: float | str | None = "auto",
    spacing=None,
    psf_spacing=None,
    time_axis: int | None = None,
    varying: bool = False,
    refine_psf: bool = False,
    compressed: bool = False,
    psf_compressed: bool = False,
    plan: Plan | None = None,
    chunks=None,
):
    """Deblur `image`, given the blur's PSF or a raw photo of a point light.

    Parameters
    ----------
    image : array_like
        Blurred image: 2D, 3D (planes, rows, columns), optionally with a
        colour axis. Integers are taken as they are (no rescaling).
    psf : array_like or 'auto'
        The PSF, or a photo of a point light through the same optics, with
        the image's spatial axes and, for a colour image, optionally one PSF
        per channel. Either is cleaned by :func:`psf_from_point_source`
        (which changes a clean PSF very little). ``'auto'``: a defocus,
        Gaussian or motion PSF estimated from the 2D image itself;
        ``'general'``: any PSF (camera shake) estimated from it blind
        (:func:`~napari_deblur.engine.blind.estimate_blur`).
    method : str
        One of :data:`METHODS`: ``'wiener'``, ``'landweber'`` (accelerated
        projected gradient with the Wiener prior), ``'richardson_lucy'``,
        ``'rl_tv'`` (with total variation), ``'fista_tv'``, ``'admm_tv'``,
        ``'admm_hyper_laplacian'``. ``'auto'`` picks RL-TV for photon-counting
        data and TV by ADMM (FISTA for padded boundaries) otherwise (photos).
    boundary : {'auto', 'periodic', 'reflect', 'symmetric', 'edge', 'zero', 'valid'}
        What lies beyond the frame. ``'auto'`` is ``'valid'``: the image is the
        centre of a larger blurred scene, which is estimated too.
    channel_axis : int, optional
        Axis of colour channels; each is deblurred with its own noise level.
    encoding : {'auto', 'srgb', 'linear'}
        Whether pixel values are gamma-encoded (sRGB). ``'auto'`` means sRGB
        for uint8 data, linear otherwise. Deblurring runs in linear light and
        the result is encoded back. A photo of a point light given as `psf`
        in integers is taken to be encoded the same way; a floating-point
        PSF is linear.
    noise : float, optional
        Noise standard deviation in linear light (in the image's units, or
        on 0..1 for sRGB data); estimated from the image when omitted. It
        sets the TV and prior weights and the discrepancy rule; Wiener's and
        Landweber's weights are chosen by GCV, which needs none. Held, as
        the estimate is, to at least the image's rounding (a millionth of
        its range for floating-point data).
    weight : float, optional
        The method's regularisation weight (noise-to-signal ratio for Wiener
        and Landweber, TV weight otherwise); chosen from the noise level and
        the PSF when omitted, which is what it is for.
    max_iter : int, optional
        Upper bound on iterations; the methods otherwise stop when the
        estimate stops changing (plain Richardson-Lucy: by the discrepancy
        principle).
    bad_pixels : array_like of bool, optional
        True where a pixel is not a valid observation (hot, dead, a scratch):
        of the image's spatial shape, or its full shape for per-channel masks
        (and, with `time_axis`, per-frame ones).
        Such pixels are left out of the fit and filled in by the rest. Hot
        pixels and cosmic rays (single samples brighter than the PSF lets a
        blurred scene be, :mod:`~napari_deblur.engine.outliers`) are found
        and left out without it (``settings['hot_pixels']`` counts them).
    saturation : float, 'auto' or None
        The sensor's saturation level in the image's stored values: pixels at
        or near it (clipped lamps, highlights) are left out of the fit too,
        per channel. ``'auto'``: the top of an integer type, or 1.0 for
        floating data up to 1 that reach it in more than one pixel (data
        scaled to their maximum reach it once); None: no pixel is taken as
        clipped.
    spacing, psf_spacing : float or sequence of float, optional
        Voxel size of the image and of the PSF (one number, or one per
        spatial axis, in the same unit), for a bead stack taken with other
        steps than the image: the PSF is resampled to the image's voxels.
    time_axis : int, optional
        Axis of time points (TZYX, TYX): each frame is deblurred in turn
        with the same PSF (with ``psf='auto'`` or ``'general'``, its own
        estimate) and its own noise level and weight; the progress runs
        over all of them. A series deblurred in chunks (Dask, Zarr,
        `chunks`) takes the decisions made on its middle frame for every
        frame: a series whose light changes much (bleaching) is better
        deblurred in parts.
    varying : bool
        The blur changes across the frame (lens blur off-axis, a tilted
        scene): `psf` is then a photo of several point lights spread over
        the frame, framed like the image; each light gives the PSF where it
        is, and the blur between them is interpolated
        (:class:`~napari_deblur.engine.operators.VaryingConvolution`).
        Methods that need one PSF (Wiener, ADMM) are not available;
        ``'auto'`` takes FISTA-TV for photos.
    refine_psf : bool
        The PSF is a bit wrong (taken at another distance, noisy): it is
        refined on the image first, magnified to explain the image best,
        then alternating image and PSF estimates with the PSF kept
        non-negative, of unit sum, compact and near the magnified
        measurement (:func:`~napari_deblur.engine.psf_fit.refine_psf`);
        2D images, one PSF for all channels. Clipped and bad pixels are not
        left out of the refinement. The refined PSF (like an estimated one)
        is ``Progress.psf`` of :func:`deblur_steps`.
    compressed : bool
        The image was stored with lossy compression (a JPEG below quality
        98, :data:`~napari_deblur._io.LOSSY_JPEG_STEP`), which removes the
        noise of its finer detail: the noise is measured on 2 x 2 blocks and
        the weight chosen from the lower half of the frequencies
        (:data:`~napari_deblur.engine.noise.COMPRESSED_BAND`), as is a PSF
        estimated from the image (`psf` ``'auto'``). Measured on its finest
        detail, the weight came out 2 to 400 times too small at qualities 95
        and 90.
    psf_compressed : bool
        The same for a point-light photo given as `psf`: its noise, which
        sets what counts as light, is measured on 2 x 2 blocks
        (:func:`psf_from_point_source`'s `compressed`).
    plan : Plan, optional
        The decisions of an earlier run (``Progress.plan`` of
        :func:`deblur_steps`) to repeat: its method, boundary, noise,
        weight, background and iterations replace those arguments' values,
        so that images (or parts of one) are deblurred alike.
    chunks : int, sequence of int or 'auto', optional
        Deblur in chunks of this size along the spatial axes, each with a
        margin of its neighbours that the iterations reach (Dask's
        ``map_overlap``); ``'auto'`` sizes them to the available memory.
        A Dask or Zarr array (a napari layer of a Zarr store, say) is
        deblurred by its own chunks when `chunks` is omitted. The
        decisions are made once, on blocks spread over the image (or taken
        from `plan`), and every chunk repeats them; the result agrees with
        the image deblurred at once with those decisions, to float
        round-off in the interior (ADMM-TV, whose every step spans its
        chunk, to about 1e-3 of the range). Wiener's conjugate gradients and
        the hyper-Laplacian ADMM do not run in chunks: ``'landweber'`` and
        ``'admm_tv'`` fit models of their kind step by step.
        An image too large for memory is deblurred in chunks sized to it,
        with a warning (by a method that runs in chunks: the others raise
        MemoryError).

    Returns
    -------
    ndarray or dask.array.Array
        Floating array of the input's shape, in the input's encoding and
        scale (0..255 for uint8 input); values are not clipped. A lazy Dask
        array for a Dask or Zarr array: chunks are computed when asked for
        (``.compute()``, ``.to_zarr()``, or napari as it displays them).

    Raises
    ------
    ValueError
        If an argument is out of range or the PSF and image do not fit.
    TypeError
        If an array does not hold real numbers.
    MemoryError
        If the image is too large for memory and `method` does not run in
        chunks.

    Notes
    -----
    The model is ``y = crop(h * x) + n`` in linear light, with ``h`` the PSF
    and the boundary model deciding what ``x`` is beyond the frame. The
    regularised methods minimise a data term plus a gradient prior (quadratic
    for Wiener and Landweber, total variation or hyper-Laplacian otherwise),
    weighted from the noise level estimated in the image and GCV; see
    :mod:`napari_deblur.engine.methods`.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_deblur import deblur
    >>> from napari_deblur.engine.psf import gaussian_psf
    >>> from napari_deblur.engine.operators import Convolution
    >>> sharp = np.zeros((64, 64), np.float32)
    >>> sharp[20:44, 30:34] = 1
    >>> psf = gaussian_psf(2.0).astype(np.float32)
    >>> blurred = Convolution(psf, sharp.shape, boundary="reflect").apply(sharp)
    >>> restored = deblur(blurred, psf, method="wiener", noise=1e-3)
    >>> restored.shape, restored.dtype
    ((64, 64), dtype('float32'))
    >>> bool(np.abs(restored - sharp).mean() < np.abs(blurred - sharp).mean())
    True
    """
    arguments = locals()
    options = {name: arguments[name] for name in OPTIONS}
    lazy = is_lazy(image)
    if lazy:
        return _chunked(image, psf, chunks, channel_axis, time_axis, plan, options)
    # An array of another library (PyTorch, CuPy) comes back in its library.
    source = backend.foreign(image)
    if chunks is not None:
        result = _chunked(image, psf, chunks, channel_axis, time_axis, plan, options).compute()
    else:
        try:
            steps = deblur_steps(
                image, psf, channel_axis=channel_axis, time_axis=time_axis, plan=plan, **options
            )
        except MemoryError as error:
            from ._chunked import REACH

            if method not in ("auto", *REACH):
                raise
            warnings.warn(
                f"{error}. Deblurring it in chunks instead.", ResourceWarning, stacklevel=2
            )
            steps = None
            result = _chunked(image, psf, "auto", channel_axis, time_axis, plan, options)
            result = result.compute()
        if steps is not None:
            (last,) = deque(steps, maxlen=1)
            result = last.image
    return result if source is None else backend.asarray(result, like=source)


def _chunked(image, psf, chunks, channel_axis, time_axis, plan, options):
    """:func:`~napari_deblur._chunked.deblur_chunked`, imported when needed (Dask loads slowly)."""
    from ._chunked import deblur_chunked

    return deblur_chunked(
        image,
        psf,
        chunks=chunks,
        channel_axis=channel_axis,
        time_axis=time_axis,
        plan=plan,
        options=options,
    )

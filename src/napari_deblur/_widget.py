"""Dock widgets: layers in, the API in between, layers out.

"Deblur" runs :func:`deblur_steps` in a thread worker (a layer backed by
Dask or Zarr gets a lazy result layer, deblurred chunk by chunk as it is
displayed); "PSF from point
source" turns a photo of point lights into a PSF layer; "PSF model" makes a
theoretical microscope PSF as a layer.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from functools import partial

import napari
import numpy as np
import pint
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ._api import METHODS, Progress, deblur_steps, is_lazy
from ._chunked import chunked_steps
from ._io import is_compressed
from .engine.blind import BlurEstimate, estimate_blur
from .engine.color import ENCODINGS
from .engine.memory import available_bytes
from .engine.methods import WEIGHT_MEANING
from .engine.operators import BOUNDARIES
from .engine.point_source import PointSourcePSF, PSFQualityWarning, psf_from_point_source
from .engine.psf import confocal_psf, widefield_psf


def _regions(psf_layer: napari.layers.Image, shapes: napari.layers.Shapes) -> list:
    """Each shape's bounding box as ``(start, stop)`` per axis of the PSF layer's data."""
    if len(shapes.data) == 0:
        raise ValueError(
            f"the Shapes layer '{shapes.name}' has no rectangle; draw one round the light"
        )
    spatial = psf_layer.data.shape[: psf_layer.ndim]
    regions = []
    for vertices, kind in zip(shapes.data, shapes.shape_type):
        if kind in ("line", "path"):
            # Its box would cut across the light (a diagonal line's box holds it
            # by chance, a straight one's none).
            raise ValueError(
                f"a shape of '{shapes.name}' is a {kind}: draw a rectangle round the light"
            )
        world = np.array([shapes.data_to_world(v) for v in vertices])
        corners = np.array([psf_layer.world_to_data(w) for w in world])
        region = []
        for axis, n in enumerate(spatial):
            lo, hi = corners[:, axis].min(), corners[:, axis].max()
            if hi - lo < 1 and axis >= len(spatial) - 2:
                raise ValueError(
                    f"a shape of '{shapes.name}' has no area (a line or a point): "
                    "draw a rectangle round the light"
                )
            if hi - lo < 1:
                # A rectangle drawn on one plane of a stack crops rows and columns only.
                region.append((0, n))
            else:
                region.append((max(0, int(np.floor(lo))), min(n, int(np.ceil(hi)) + 1)))
        if any(start >= stop for start, stop in region):
            raise ValueError(
                f"a shape of '{shapes.name}' lies outside the PSF layer '{psf_layer.name}'"
            )
        regions.append(tuple(region))
    return regions


def _sample_sizes(
    image_layer: napari.layers.Image, psf_layer: napari.layers.Image, over_time: bool
) -> dict:
    """The image's and the PSF's sample sizes, in the image's units, to resample the PSF by.

    Empty when the PSF is taken sample for sample: a PSF layer with napari's
    default scale was opened without one, and a scale in pixels cannot be
    compared with one in a length.
    """
    if np.allclose(psf_layer.scale, 1):
        return {}
    scale = image_layer.scale[1:] if over_time else image_layer.scale
    units = image_layer.units[1:] if over_time else image_layer.units
    psf_units = psf_layer.units
    # A scale set without a unit (napari's "pixel") is in the other
    # layer's length: most readers and scripts give a scale alone, and the
    # PSF model's layer was taken sample for sample beside them.
    if _unitless(scale, units) and not _unitless(psf_layer.scale, psf_units):
        show_info(f"Deblur: the image's scale has no unit: taken in the PSF's {psf_units[-1]}")
        units = psf_units[-len(units) :]
    elif _unitless(psf_layer.scale, psf_units) and not _unitless(scale, units):
        show_info(f"Deblur: the PSF's scale has no unit: taken in the image's {units[-1]}")
        psf_units = units[-len(psf_units) :]
    try:
        psf_scale = [
            (size * unit).to(target).magnitude
            for size, unit, target in zip(psf_layer.scale, psf_units, units)
        ]
    except pint.DimensionalityError:
        show_info(
            f"Deblur: the PSF layer's scale is in {psf_layer.units[-1]} and the image's in "
            f"{units[-1]}: they cannot be compared, the PSF is taken sample for sample "
            "(give both layers a scale in one kind of unit to resample it)"
        )
        return {}
    return {"spacing": tuple(scale), "psf_spacing": tuple(psf_scale)}


def _unitless(scale, units) -> bool:
    """Whether a layer's scale was set without a unit: not all 1, in napari's pixels."""
    return not np.allclose(scale, 1) and all(str(unit) == "pixel" for unit in units)


def measure_psf(
    psf_layer: napari.layers.Image,
    shapes: napari.layers.Shapes | None,
    *,
    for_rgb: bool,
    **options,
) -> tuple[np.ndarray, PointSourcePSF]:
    """The PSF in a layer (clean or a raw point-light photo), ready for an image.

    Returns the PSF in layer layout (colour last for an RGB image, the
    colours summed for a grey one) and the measurement, whose problems are
    shown as napari warnings.
    """
    psf, measured, problems = _measured(_point_lights(psf_layer, shapes), for_rgb, **options)
    for problem in problems:
        show_warning(problem)
    return psf, measured


def _point_lights(psf_layer: napari.layers.Image, shapes: napari.layers.Shapes | None) -> dict:
    """What :func:`_measured` reads of a layer: read here, in the GUI's thread."""
    return {
        "name": psf_layer.name,
        "photo": _light(psf_layer),
        "rgb": psf_layer.rgb,
        "rois": None if shapes is None else _regions(psf_layer, shapes),
        "compressed": _compressed(psf_layer),
    }


def _measured(
    lights: dict, for_rgb: bool, **options
) -> tuple[np.ndarray, PointSourcePSF, list[str]]:
    """The PSF of :func:`_point_lights`, its measurement and its problems; for any thread.

    Raises
    ------
    ValueError
        If no PSF can be measured, naming the layer.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PSFQualityWarning)
        try:
            measured = psf_from_point_source(
                lights["photo"],
                rois=lights["rois"],
                channel_axis=-1 if lights["rgb"] else None,
                compressed=lights["compressed"],
                **options,
            )
        except ValueError as error:
            # Named by its layer: beside the image, "image" is the wrong one.
            raise ValueError(f"PSF layer '{lights['name']}': {error}") from None
    problems = [
        f"PSF '{lights['name']}': {warning.message}"
        for warning in caught
        if issubclass(warning.category, PSFQualityWarning)
    ]
    psf = measured.psf
    if lights["rgb"]:
        # Colour PSFs for a colour image, one for all colours for a grey one.
        psf = np.moveaxis(psf, 0, -1) if for_rgb else measured.grey
    return psf.astype(np.float32), measured, problems


def _light(layer: napari.layers.Image) -> np.ndarray:
    """A photo layer's light levels: an RGBA layer's alpha is no light."""
    photo = np.asarray(layer.data)
    return photo[..., :3] if layer.rgb and photo.shape[-1] == 4 else photo


def _compressed(layer: napari.layers.Image) -> bool:
    """Whether the layer was opened from a JPEG compressed enough to lose its fine noise."""
    try:
        return layer.source.path is not None and is_compressed(layer.source.path)
    except OSError:
        # Moved, deleted or not a local file since it was opened: unknown.
        return False


def _same_grid(labels: napari.layers.Labels, image: napari.layers.Image) -> bool:
    """Whether a Labels layer's pixels lie on the image's (their last axes)."""
    n = min(labels.ndim, image.ndim)
    return np.allclose(labels.scale[-n:], image.scale[-n:]) and np.allclose(
        labels.translate[-n:], image.translate[-n:]
    )


class _Threaded(Container):
    """A dock widget whose threads stop when it closes (their results would find it deleted)."""

    def __init__(self):
        super().__init__(labels=True)
        self._closed = False
        self._threads: list[FunctionWorker | GeneratorWorker] = []
        self.native.destroyed.connect(self._stop)

    def _start(self, worker: FunctionWorker | GeneratorWorker) -> None:
        """Start `worker`, to be stopped if the widget closes first."""
        self._threads.append(worker)
        worker.finished.connect(lambda: self._threads.remove(worker))
        worker.start()

    def _stop(self) -> None:
        """Stop the threads, whose results no widget will show any more."""
        self._closed = True
        for worker in list(self._threads):
            worker.quit()

    def _live(self, handler):
        """`handler`, called only while the widget is open (signals may follow its close)."""

        def call(*args) -> None:
            if not self._closed:
                handler(*args)

        return call


class DeblurWidget(_Threaded):
    """Deblur an Image layer with a PSF layer (or a photo of a point light).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self._worker: GeneratorWorker | None = None
        self._result: napari.layers.Image | None = None
        self._iterates: list[np.ndarray] = []
        # Whether the run's steps are still kept (memory allowing), and the
        # weight it was given (None: chosen by the run).
        self._keeping = False
        self._weight_given: float | None = None
        # The PSF a run refined on the image, shown as a layer when it ends.
        self._refined: np.ndarray | None = None
        # An RGBA input's alpha, kept apart from the colour that is deblurred.
        self._alpha: np.ndarray | None = None

        self.image = create_widget(annotation=napari.layers.Image, label="blurred image")
        self.psf = create_widget(annotation=napari.layers.Image, label="PSF or point light")
        self.blur_kind = ComboBox(
            choices=("auto", "defocus", "gaussian", "motion", "general"),
            value="auto",
            label="blur to estimate",
            tooltip="'auto': the defocus, Gaussian or motion blur that fits best; "
            "'general': any blur, such as camera shake (slower)",
        )
        self.estimate_button = PushButton(
            text="Estimate PSF from the image",
            tooltip="No point light? Find the blur in the image itself",
        )
        self.psf_region = create_widget(
            annotation=napari.layers.Shapes | None,
            label="PSF region",
            options={"tooltip": "Optional: a rectangle round the light in the PSF layer"},
        )
        self.bad_pixels = create_widget(
            annotation=napari.layers.Labels | None,
            label="bad pixels",
            options={
                "tooltip": "Optional: a Labels layer painted over pixels to leave out "
                "(dead pixels, dust, scratches); clipped and hot pixels are found by themselves"
            },
        )
        self.varying = CheckBox(
            value=False,
            text="blur varies across the frame",
            tooltip="The PSF layer is a photo of several point lights spread over the frame, "
            "framed like the image: each gives the blur where it is",
        )
        self.refine_psf = CheckBox(
            value=False,
            text="refine the PSF on the image",
            tooltip="For a PSF that is a bit wrong (taken at another distance, noisy): "
            "image and PSF are estimated in turn, the PSF kept near the given one",
        )
        self.method = ComboBox(choices=METHODS, value="auto", label="method")
        self.boundary = ComboBox(
            choices=("auto", *BOUNDARIES),
            value="auto",
            label="boundary",
            tooltip="What lies beyond the frame; 'auto' estimates the unseen surroundings",
        )
        self.weight = LineEdit(
            value="auto",
            label="weight",
            tooltip="Regularisation weight: 'auto' chooses it from the noise and the PSF "
            "(shown below after a run); a number overrides it",
        )
        self.max_iter = SpinBox(value=300, min=1, max=5000, label="max iterations")
        self.keep_iterations = CheckBox(value=False, text="keep iterations as a layer")
        self.side_by_side = CheckBox(value=False, text="side by side")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(min=0, max=100, value=0, label="progress")
        self.report = Label(value="")
        self.extend(
            [
                self.image,
                self.psf,
                self.blur_kind,
                self.estimate_button,
                self.psf_region,
                self.bad_pixels,
                self.varying,
                self.refine_psf,
                self.method,
                self.boundary,
                self.weight,
                self.max_iter,
                self.keep_iterations,
                self.side_by_side,
                self.run_button,
                self.cancel_button,
                self.progress,
                self.report,
            ]
        )
        self.run_button.changed.connect(self.run)
        self.estimate_button.changed.connect(self.estimate_psf)
        self.cancel_button.changed.connect(self.cancel)
        self.side_by_side.changed.connect(self._show_grid)

    def reset_choices(self, *_) -> None:
        """Refresh the layer choices; an image and PSF left on one layer are told apart.

        Both lists start on the first layer (a sample's hidden truth): the
        image is then the largest layer shown, the PSF the smallest other.
        A choice of two layers is kept.
        """
        super().reset_choices()
        if self.image.value is not self.psf.value:
            return
        shown = _shown_images(self._viewer)
        if len(shown) >= 2:
            image = max(shown, key=_size)
            self.image.value = image
            self.psf.value = min((layer for layer in shown if layer is not image), key=_size)

    @property
    def worker(self) -> GeneratorWorker | None:
        """The running (or last) worker, for callers that wait on it."""
        return self._worker

    def _inputs(self) -> tuple:
        """The image, PSF, channel axis, bad pixels, options and alpha (RGBA) of a run."""
        image_layer, psf_layer = self.image.value, self.psf.value
        if image_layer is None or psf_layer is None:
            raise ValueError("choose both a blurred image layer and a PSF layer")
        if image_layer is psf_layer:
            raise ValueError("the PSF layer must differ from the image layer")
        # The lights' photo, for varying blur, is measured by the run itself.
        lights_compressed = self.varying.value and _compressed(psf_layer)
        if self.varying.value:
            psf = self._varying_psfs(image_layer, psf_layer, lights_compressed)
        else:
            psf, _ = measure_psf(psf_layer, self.psf_region.value, for_rgb=image_layer.rgb)
        labels = self.bad_pixels.value
        if labels is not None and not _same_grid(labels, image_layer):
            raise ValueError(
                f"the bad-pixel layer '{labels.name}' lies at another scale or position "
                "than the image: paint it on the image's own pixels"
            )
        bad = None if labels is None else np.asarray(labels.data) != 0
        # A PSF layer with napari's default scale was opened without one: it
        # is taken to share the image's voxels. Otherwise the scales say how
        # each was sampled, and the PSF is resampled to the image's.
        # A layer with one axis more than the PSF is a time series (TZYX,
        # TYX, TYX in colour): its frames are deblurred in turn.
        over_time = image_layer.ndim == psf_layer.ndim + 1
        if over_time and psf_layer.ndim == 2 and not image_layer.rgb:
            show_info(
                "Deblur: a 2D PSF on a 3D layer: its planes are deblurred one by one, as "
                "frames (a 3D PSF deblurs a stack in 3D)"
            )
        options = {"time_axis": 0} if over_time else {}
        if self.varying.value:
            options["varying"] = True
            options["psf_compressed"] = lights_compressed
        if self.refine_psf.value:
            options["refine_psf"] = True
        if _compressed(image_layer):
            # Its noise and weight are measured on the detail the compression left.
            options["compressed"] = True
        options |= _sample_sizes(image_layer, psf_layer, over_time)
        channel_axis = -1 if image_layer.rgb else None
        data = image_layer.data
        if image_layer.multiscale:
            raise ValueError("choose a single-scale image layer (its full resolution)")
        data = data if is_lazy(data) else np.asarray(data)
        alpha = None
        if image_layer.rgb and data.shape[-1] == 4:
            # RGBA: the colour is deblurred, the alpha kept as it is.
            data, alpha = data[..., :3], data[..., 3]
        return data, psf, channel_axis, bad, options, alpha

    def _varying_psfs(
        self, image_layer: napari.layers.Image, psf_layer: napari.layers.Image, compressed: bool
    ) -> np.ndarray:
        """The photo of the lights, for blur that varies; its PSFs are shown as a layer."""
        if self.psf_region.value is not None:
            raise ValueError(
                "with varying blur the lights are found by themselves: choose no PSF region"
            )
        if psf_layer.rgb and not image_layer.rgb:
            raise ValueError("varying blur in a grey image needs a grey photo of the lights")
        photo = _light(psf_layer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PSFQualityWarning)
            try:
                measured = psf_from_point_source(
                    photo,
                    sources="auto",
                    channel_axis=-1 if psf_layer.rgb else None,
                    compressed=compressed,
                )
            except ValueError as error:
                raise ValueError(f"PSF layer '{psf_layer.name}': {error}") from None
        self._lights = (
            psf_layer,
            measured.placed(photo.shape[:-1] if psf_layer.rgb else photo.shape),
        )
        return photo

    def _show_lights(self) -> None:
        """The PSFs found in the photo of the lights, as a layer, once a run starts with them."""
        psf_layer, placed = self._lights
        name = f"{psf_layer.name} PSFs"
        if name in self._viewer.layers:
            self._viewer.layers[name].data = placed
        else:
            self._viewer.add_image(
                placed,
                name=name,
                scale=psf_layer.scale,
                units=psf_layer.units,
                colormap="magma",
                blending="additive",
            )

    def estimate_psf(self) -> None:
        """Estimate the PSF from the image layer in a thread; add it as the PSF layer."""
        layer = self.image.value
        if layer is None:
            show_error("Estimate PSF: choose the blurred image layer first")
            return
        data = np.asarray(layer.data)
        channel_axis = -1 if layer.rgb else None
        self.estimate_button.enabled = False
        self.report.value = "estimating the blur..."
        worker = create_worker(
            estimate_blur,
            data,
            kind=self.blur_kind.value,
            channel_axis=channel_axis,
            compressed=_compressed(layer),
            _start_thread=False,
            # Handled here: a failure is a notification, not an exception in Qt's loop.
            _connect={"errored": self._live(self._estimate_failed)},
        )
        worker.returned.connect(self._live(lambda estimate: self._add_estimate(layer, estimate)))
        worker.finished.connect(self._live(lambda: setattr(self.estimate_button, "enabled", True)))
        self._start(worker)

    def _estimate_failed(self, error: Exception) -> None:
        self.report.value = "no PSF estimated"
        show_error(f"Estimate PSF: {error}")

    def _add_estimate(self, layer: napari.layers.Image, estimate: BlurEstimate) -> None:
        report = estimate.report()
        psf_layer = self._viewer.add_image(
            estimate.psf.astype(np.float32),
            name=f"{layer.name} estimated PSF",
            colormap="magma",
            scale=layer.scale[-2:],
            units=layer.units[-2:],
            metadata={"psf_report": report},
        )
        self.psf.value = psf_layer
        self.report.value = report

    def _weight(self) -> float | None:
        text = self.weight.value.strip().lower()
        if text in ("", "auto"):
            return None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"weight must be 'auto' or a number, got {text!r}") from None

    def run(self) -> None:
        """Start deblurring in a thread; the result layer updates at each step.

        A layer backed by Dask or Zarr is not loaded: its result is a lazy
        layer, deblurred chunk by chunk as napari displays it. So is the
        result of a layer in memory that is too large to deblur at once.
        """
        # The button is off from a run's start to its end (a worker says it
        # is running only once its thread has started).
        if not self.run_button.enabled:
            show_info("Deblurring is already running; press Cancel to stop it.")
            return
        try:
            image, psf, channel_axis, bad, options, self._alpha = self._inputs()
            arguments = {
                "method": self.method.value,
                "boundary": self.boundary.value,
                "channel_axis": channel_axis,
                "weight": self._weight(),
                "max_iter": self.max_iter.value,
                "bad_pixels": bad,
                **options,
            }
            lazy = is_lazy(image)
            chunks = None
            if not lazy:
                try:
                    steps = deblur_steps(image, psf, **arguments)
                except MemoryError as error:
                    show_info(f"Deblur: {error}. Deblurring it in chunks as it is displayed.")
                    lazy, chunks = True, "auto"
        except (ValueError, TypeError, MemoryError) as error:
            # The last run's report and progress are not this one's.
            self.report.value = f"not run: {error}"
            self.progress.value = 0
            show_error(f"Deblur: {error}")
            return
        if self.varying.value:
            self._show_lights()
        self._source = self.image.value
        self._result = None
        self._weight_given = arguments["weight"]
        self._iterates = []
        # A series changes one frame a step: its steps are not kept as copies of it.
        self._keeping = self.keep_iterations.value
        if self._keeping and "time_axis" in arguments:
            show_info("Deblur: iterations are kept for a single image, not for a time series")
            self._keeping = False
        self._refined = None
        self.progress.value = 0
        if lazy:
            # The decisions are made on a few blocks, in the thread, which
            # Cancel stops between two of them.
            self.report.value = "deciding on a few blocks; the rest as it is displayed"
            axes = {k: arguments.pop(k, None) for k in ("channel_axis", "time_axis")}
            self._worker = create_worker(
                chunked_steps,
                image,
                psf,
                chunks=chunks,
                **axes,
                options=arguments,
                _start_thread=False,
                _connect={"errored": _failed},
            )
            self._worker.yielded.connect(self._live(self._on_planning))
            self._worker.returned.connect(self._live(self._on_lazy_result))
            self._worker.aborted.connect(self._live(self._on_planning_cancelled))
        else:
            self._worker = create_worker(
                _images, steps, _start_thread=False, _connect={"errored": _failed}
            )
            self._worker.yielded.connect(self._live(self._on_step))
            self._worker.aborted.connect(self._live(self._on_cancelled))
        self._worker.finished.connect(self._live(self._on_finished))
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self._start(self._worker)

    def cancel(self) -> None:
        """Stop after the current iteration, keeping the estimate so far."""
        if self._worker is not None:
            self._worker.quit()

    def _as_layer_data(self, image):
        """A result in the input layer's terms: its integer type (RGB), its alpha (RGBA).

        A Dask array stays lazy.
        """
        source = self._source
        if source.rgb and np.issubdtype(source.dtype, np.integer):
            info = np.iinfo(source.dtype)
            image = np.clip(np.round(image), info.min, info.max).astype(source.dtype)
        else:
            image = image.astype(np.float32)
        if self._alpha is not None:
            image = np.concatenate([image, self._alpha[..., None].astype(image.dtype)], axis=-1)
        return image

    def _on_step(self, item: tuple[Progress, np.ndarray]) -> None:
        progress, image = item
        data = self._as_layer_data(image)
        if self._result is None or self._result not in self._viewer.layers:
            self._add_result(
                data, progress.settings["method"], {"deblur": dict(progress.settings)}
            )
        else:
            self._result.data = data
        if self._keeping:
            self._keep(data)
        self.progress.value = int(round(100 * progress.fraction))
        settings = progress.settings
        values = ", ".join(f"{k} {v:.3g}" for k, v in progress.metrics.items())
        weight = settings["weight"]
        meaning = WEIGHT_MEANING[settings["method"]]
        chosen = "" if weight is None else f", {meaning} {weight:.3g}"
        if weight is not None and self._weight_given is None:
            chosen += " (auto)"
        left_out = settings["left_out"]
        left_out = f"; {left_out} clipped, hot or bad samples left out" if left_out else ""
        if settings["compressed"]:
            left_out += "; noise and weight from the detail the JPEG kept"
        if "frames" in settings:
            left_out += f"\nframe {settings['frame'] + 1} of {settings['frames']}"
        if settings["psf_refined"] is not None:
            self._refined = progress.psf
            left_out += (
                f"\nPSF refined on the image (magnified {settings['psf_magnified']:.2f}x, "
                f"moved {settings['psf_refined']:.0%})"
            )
        self.report.value = (
            f"{settings['method']}, boundary {settings['boundary']}, "
            f"{settings['encoding']} light, noise {settings['noise']:.3g}{chosen}{left_out}\n"
            f"iteration {progress.iteration}: {values}"
        )

    def _keep(self, data: np.ndarray) -> None:
        """Keep a step's image for the iterations layer, while memory allows."""
        have = available_bytes()
        # The layer's stack, made at the end, doubles what is kept.
        need = 2 * (len(self._iterates) + 1) * data.nbytes
        if have is not None and need > have / 2:
            show_warning(
                f"Deblur: iterations kept up to {len(self._iterates)}: more would need "
                f"{need / 1e9:.1f} GB of the {have / 1e9:.1f} GB available"
            )
            self._keeping = False
            return
        self._iterates.append(data)

    def _on_planning(self, fraction: float) -> None:
        self.progress.value = int(round(100 * fraction))

    def _on_planning_cancelled(self) -> None:
        self.report.value = "cancelled before the decisions were made; no layer added"

    def _add_result(self, data, label: str, metadata: dict) -> None:
        """The result layer, named after the input and `label`, placed like the input."""
        source = self._source
        self._result = self._viewer.add_image(
            data,
            name=f"{source.name} deblurred ({label})",
            rgb=source.rgb,
            metadata={**source.metadata, **metadata},
            **_placement(source),
        )

    def _on_lazy_result(self, result) -> None:
        self._add_result(self._as_layer_data(result), "chunked", {})
        self.progress.value = 100
        chunks = "x".join(str(max(c)) for c in result.chunks)
        self.report.value = f"lazy result: deblurred in chunks of {chunks} as displayed"

    def _on_cancelled(self) -> None:
        if self._result is not None:
            self._result.name = f"{self._result.name} cancelled"
        else:
            self.report.value = "cancelled before the first iteration; no layer added"

    def _on_finished(self) -> None:
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        if self._result is not None and self._iterates:
            source = self._source
            self._viewer.add_image(
                np.stack(self._iterates),
                name=f"{self._result.name} iterations",
                rgb=source.rgb,
                affine=_with_leading_axis(source),
                units=("pixel", *source.units),
                axis_labels=("iteration", *source.axis_labels),
                visible=False,
            )
            self._iterates = []
        if self._refined is not None:
            source = self._source
            self._viewer.add_image(
                self._refined.astype(np.float32),
                name=f"{source.name} refined PSF",
                colormap="magma",
                scale=source.scale[-2:],
                units=source.units[-2:],
            )
            self._refined = None
        # A run turns the grid on when asked; a grid the user turned on stays on.
        if self.side_by_side.value:
            self._show_grid(True)

    def _show_grid(self, shown: bool) -> None:
        self._viewer.canvas.grid.enabled = shown


def _shown_images(viewer: napari.viewer.Viewer) -> list[napari.layers.Image]:
    """The visible Image layers, first added first."""
    return [
        layer
        for layer in viewer.layers
        if isinstance(layer, napari.layers.Image) and layer.visible
    ]


def _size(layer: napari.layers.Image) -> int:
    """A layer's number of samples (of its full resolution)."""
    return int(np.prod(layer.data.shape))


def _placement(layer: napari.layers.Layer) -> dict:
    """Where `layer` lies in the world: its transforms, units and axis names."""
    return {
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": layer.affine,
        "units": layer.units,
        "axis_labels": layer.axis_labels,
    }


def _with_leading_axis(layer: napari.layers.Layer) -> np.ndarray:
    """`layer`'s whole data-to-world transform, as an affine matrix with an axis put first."""
    n = layer.ndim
    origin = np.asarray(layer.data_to_world(np.zeros(n)))
    columns = [np.asarray(layer.data_to_world(unit)) - origin for unit in np.eye(n)]
    matrix = np.eye(n + 2)
    matrix[1:-1, 1:-1] = np.stack(columns, axis=1)
    matrix[1:-1, -1] = origin
    return matrix


def _failed(error: Exception) -> None:
    """A deblurring thread's failure, as a notification (not an exception in Qt's loop)."""
    show_error(f"Deblur failed: {error}")


#: The shortest time, in seconds, between two steps of a time series shown:
#: each shows the whole series, whose copy costs more than a frame's
#: iteration (a series of 20 frames of 256 x 256 queued 113 copies, 0.7 GB,
#: and the display ran 4 s behind a Cancel).
SERIES_INTERVAL = 0.25


def _images(steps: Iterator[Progress]) -> Iterator[tuple[Progress, np.ndarray]]:
    """The steps to show with their images, converted in the worker thread.

    Every step of one image; a time series' last step, and others at most
    every :data:`SERIES_INTERVAL`.
    """
    shown = -np.inf
    for progress in steps:
        now = time.monotonic()
        if "frames" in progress.settings and progress.fraction < 1:
            if now - shown < SERIES_INTERVAL:
                continue
        shown = now
        yield progress, progress.image


class PointSourceWidget(_Threaded):
    """Measure a PSF from a photo of point lights and add it as a layer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self.photo = create_widget(annotation=napari.layers.Image, label="point-light photo")
        self.regions = create_widget(
            annotation=napari.layers.Shapes | None,
            label="regions",
            options={"tooltip": "Optional: one rectangle round each light to use"},
        )
        self.sources = SpinBox(
            value=1,
            min=0,
            max=100,
            label="sources",
            tooltip="Without regions: how many of the brightest isolated lights; 0 for all",
        )
        self.symmetric = CheckBox(value=False, text="radially symmetric (defocus, beads)")
        self.bead_diameter = FloatSpinBox(
            value=0.0,
            min=0.0,
            max=1e6,
            step=0.01,
            label="bead diameter",
            tooltip="In the layer's unit (its scale); 0 for beads below the resolution",
        )
        self.encoding = ComboBox(choices=ENCODINGS, value="auto", label="encoding")
        self.measure_button = PushButton(text="Measure PSF")
        self.report = Label(value="")
        self.extend(
            [
                self.photo,
                self.regions,
                self.sources,
                self.symmetric,
                self.bead_diameter,
                self.encoding,
                self.measure_button,
                self.report,
            ]
        )
        self.measure_button.changed.connect(self.measure)
        # Regions name the lights; the count is for the whole frame.
        self.regions.changed.connect(self._regions_chosen)
        self._regions_chosen(self.regions.value)

    def reset_choices(self, *_) -> None:
        """Refresh the layer choices; a hidden photo (a sample's truth) gives way.

        To the smallest layer shown: a photo of a light is rarely larger than
        the scene's.
        """
        super().reset_choices()
        shown = _shown_images(self._viewer)
        if self.photo.value is not None and not self.photo.value.visible and shown:
            self.photo.value = min(shown, key=_size)

    def _regions_chosen(self, regions: napari.layers.Shapes | None) -> None:
        self.sources.enabled = regions is None

    def measure(self) -> None:
        """Measure the PSF in a thread (a bead stack takes seconds); add it as a layer.

        The report is shown beside it.
        """
        if not self.measure_button.enabled:
            # Measuring already (the button is off until the thread ends).
            return
        photo = self.photo.value
        if photo is None:
            show_error("PSF from point source: choose the layer with the point-light photo")
            return
        try:
            lights = _point_lights(photo, self.regions.value)
        except ValueError as error:
            self._failed(error)
            return
        self.measure_button.enabled = False
        self.report.value = "measuring..."
        worker = create_worker(
            _measured,
            lights,
            photo.rgb,
            sources=(self.sources.value or "auto") if self.regions.value is None else 1,
            symmetric=self.symmetric.value,
            encoding=self.encoding.value,
            bead_diameter=self.bead_diameter.value or None,
            spacing=tuple(photo.scale),
            _start_thread=False,
            _connect={"errored": self._live(self._failed)},
        )
        worker.returned.connect(self._live(lambda measured: self._add(photo, *measured)))
        worker.finished.connect(self._live(lambda: setattr(self.measure_button, "enabled", True)))
        self._start(worker)

    def _failed(self, error: Exception) -> None:
        self.report.value = "no PSF measured"
        show_error(f"PSF from point source: {error}")

    def _add(
        self,
        photo: napari.layers.Image,
        psf: np.ndarray,
        measured: PointSourcePSF,
        problems: list[str],
    ) -> None:
        """The PSF as a layer beside the photo, its report and its problems."""
        for problem in problems:
            show_warning(problem)
        # napari's default scale (all 1) says nothing about the voxels.
        scale = None if np.allclose(photo.scale, 1) else photo.scale
        units = {str(u) for u in photo.units}
        report = measured.report(
            scale, units.pop() if scale is not None and len(units) == 1 else ""
        )
        self.report.value = report
        self._viewer.add_image(
            # RGB layers hold values in [0, 1]; the scale of a PSF is irrelevant.
            psf / psf.max() if photo.rgb else psf,
            name=f"{photo.name} PSF",
            rgb=photo.rgb,
            scale=photo.scale,
            units=photo.units,
            colormap=None if photo.rgb else "magma",
            metadata={"psf_report": report},
        )


class PSFModelWidget(_Threaded):
    """Make a theoretical microscope PSF (widefield or confocal) as a layer.

    Widefield is Born-Wolf, or Gibson-Lanni when the sample's refractive
    index differs from the immersion's (a point at some depth in water under
    an oil objective); confocal is the excitation PSF times the emission
    PSF. Lengths are in micrometres; the layer's scale is the voxel size.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer the layer is added to.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer

        def number(value, label, low, high, step=0.01):
            return FloatSpinBox(value=value, min=low, max=high, step=step, label=label)

        self.kind = ComboBox(choices=("widefield", "confocal"), value="widefield", label="kind")
        self.na = number(1.4, "NA", 0.05, 1.7)
        self.emission = number(0.52, "emission (um)", 0.2, 2.0, 0.005)
        self.excitation = number(0.488, "excitation (um)", 0.2, 2.0, 0.005)
        self.immersion = number(1.518, "immersion index", 1.0, 2.0, 0.001)
        self.sample = number(1.518, "sample index", 1.0, 2.0, 0.001)
        self.depth = number(0.0, "depth (um)", 0.0, 500.0, 0.5)
        self.dz = number(0.2, "z step (um)", 0.005, 10.0, 0.005)
        self.dxy = number(0.065, "pixel (um)", 0.005, 10.0, 0.005)
        self.planes = SpinBox(value=41, min=3, max=401, step=2, label="planes")
        self.side = SpinBox(value=41, min=3, max=401, step=2, label="rows, columns")
        self.make_button = PushButton(text="Make PSF")
        self.extend(
            [
                self.kind,
                self.na,
                self.emission,
                self.excitation,
                self.immersion,
                self.sample,
                self.depth,
                self.dz,
                self.dxy,
                self.planes,
                self.side,
                self.make_button,
            ]
        )
        self.make_button.changed.connect(self.make)

    def make(self) -> None:
        """Compute the PSF in a thread (401^3 samples take seconds); add it as a layer.

        The layer is scaled by the voxel size.
        """
        kind = self.kind.value
        shape = (self.planes.value, self.side.value, self.side.value)
        voxel = (self.dz.value, self.dxy.value, self.dxy.value)
        optics = {
            "na": self.na.value,
            "voxel_size": voxel,
            "refractive_index": self.immersion.value,
            "sample_index": self.sample.value,
            "depth": self.depth.value,
        }
        if kind == "confocal":
            compute = partial(
                confocal_psf,
                shape,
                excitation=self.excitation.value,
                emission=self.emission.value,
                **optics,
            )
        else:
            compute = partial(widefield_psf, shape, wavelength=self.emission.value, **optics)
        layer = {
            "name": f"{kind} PSF NA {self.na.value:g}",
            "scale": voxel,
            "units": "um",
            "colormap": "magma",
            "metadata": {"psf_model": {"kind": kind, "shape": shape, **optics}},
        }
        self.make_button.enabled = False
        worker = create_worker(
            compute,
            _start_thread=False,
            _connect={"errored": self._live(lambda error: show_error(f"PSF model: {error}"))},
        )
        worker.returned.connect(self._live(lambda psf: self._add(psf, layer)))
        worker.finished.connect(self._live(lambda: setattr(self.make_button, "enabled", True)))
        self._start(worker)

    def _add(self, psf: np.ndarray, layer: dict) -> None:
        """The PSF as a layer, and a warning if its box cuts it within its half maximum."""
        # Through the peak, across and along the axis: a box within the
        # half maximum holds a flat piece of the PSF (NA 0.05 on 41 pixels
        # of 0.065 um: all within 27% of the peak).
        peak = np.unravel_index(np.argmax(psf), psf.shape)
        cut = [
            name
            for name, profile in (
                ("across", psf[peak[0]]),
                ("along the axis", psf[(slice(None), *peak[1:])]),
            )
            if profile.min() > profile.max() / 2
        ]
        if cut:
            show_warning(
                f"PSF model: the box ends within the PSF's half maximum {' and '.join(cut)}: "
                "use more samples, or larger ones"
            )
        self._viewer.add_image(psf.astype(np.float32), **layer)

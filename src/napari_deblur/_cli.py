"""The ``napari-deblur`` command: the GUI, batch deblurring and a headless demo.

Each command is one function that makes one library call; the library
never prints, the commands log.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

log = logging.getLogger("napari_deblur")

#: The API's parameter names, as this command line spells them in its messages.
OPTIONS = {
    "max_iter": "--max-iter",
    "time_axis": "--time-axis",
    "channel_axis": "--channel-axis",
    "refine_psf": "--refine-psf",
    "psf_spacing": "--psf-spacing",
    "bad_pixels": "--mask",
    "rois": "--roi",
    "weight": "--weight",
    "sources": "--sources",
    "saturation": "--saturation",
    "energy": "--energy",
    "bead_diameter": "--bead-diameter",
    "spacing": "--spacing",
}


def _said(error: BaseException) -> str:
    """An error's message in the command line's words (an option's name left as it is)."""
    names = "|".join(OPTIONS)
    return re.sub(rf"(?<![-\w])({names})(?![-\w])", lambda m: OPTIONS[m[0]], str(error))


def launch_gui(sample: str = "defocused_photo") -> None:
    """Open napari with a sample loaded and the Deblur widget docked."""
    import napari

    viewer = napari.Viewer(title="napari-deblur")
    viewer.open_sample("napari-deblur", sample)
    viewer.window.add_plugin_dock_widget("napari-deblur", "Deblur")
    napari.run()


def run(args: argparse.Namespace) -> None:
    """Deblur image files or Zarr stores with a PSF file and write the results.

    One input is written to ``--output``; several go into the folder
    ``--output``, by their names, one task each on the cluster when one is
    asked for (``--workers``, ``--scheduler``).
    """
    from ._io import check_output, file_type, is_zarr

    inputs = [Path(p) for p in args.blurred]
    output = Path(args.output)
    # Every input there, of a type read here, before any work (or any
    # output folder) is begun.
    for path in inputs:
        if not path.exists():
            raise ValueError(f"{path}: no such file")
        if path.is_dir() and not is_zarr(path):
            raise ValueError(f"{path} is a folder; name the images in it ({path / '*.tif'})")
        if not is_zarr(path):
            file_type(path)
    for option, path in (("--psf", args.psf), ("--mask", args.mask)):
        if path is not None and path not in ("auto", "general") and not Path(path).is_file():
            raise ValueError(f"{option} {path}: no such file")
    # A folder: an existing one (not a store), one named with a trailing
    # slash (not a store's name, which a shell completes with one), or the
    # place for several results.
    into_folder = (
        len(inputs) > 1
        or (args.output.endswith(("/", os.sep)) and not is_zarr(output))
        or (output.is_dir() and not is_zarr(output))
    )
    if into_folder:
        if output.exists() and not output.is_dir():
            raise ValueError(f"{output} is a file; with several inputs --output is a folder")
        outputs = [output / p.name for p in inputs]
    else:
        outputs = [output]
    sources = {Path(p).resolve() for p in (*inputs, args.psf, args.mask) if p is not None}
    for target in outputs:
        if target.resolve() in sources:
            raise ValueError(f"{target} is an input; choose another output")
        if sources & set(target.resolve().parents):
            raise ValueError(f"{target} lies inside an input store; choose another output")
    if len(set(outputs)) < len(outputs):
        raise ValueError("several inputs have the same name; their results would collide")
    if into_folder:
        output.mkdir(parents=True, exist_ok=True)
    for target in outputs:
        check_output(target, overwrite=args.overwrite)
    job = {
        key: getattr(args, key)
        for key in (
            "psf", "mask", "method", "boundary", "encoding", "weight", "max_iter", "saturation",
            "varying", "refine_psf", "chunks", "channel_axis", "time_axis", "overwrite",
            "spacing", "psf_spacing",
        )
    }  # fmt: skip
    with _cluster(args.workers, args.scheduler) as client:
        if len(inputs) == 1:
            deblur_file(inputs[0], outputs[0], job, client)
            return
        if client is None:
            failed = [p for p, o in zip(inputs, outputs) if not _try(deblur_file, p, o, job)]
        else:
            from distributed import as_completed

            futures = client.map(_deblur_on_worker, inputs, outputs, job=job, pure=False)
            named = dict(zip(futures, inputs))
            failed = []
            for future in as_completed(futures):
                if future.status == "error":
                    log.error("%s: %s", named[future], _said(future.exception()))
                    failed.append(named[future])
                else:
                    for level, message in future.result():
                        log.log(level, "%s", message)
    if failed:
        names = ", ".join(str(p) for p in failed)
        raise ValueError(f"{len(failed)} of {len(inputs)} inputs failed: {names}")


def _deblur_on_worker(blurred: Path, output: Path, job: dict) -> list[tuple[int, str]]:
    """:func:`deblur_file` on a cluster's worker: its report, for the client to log."""
    from logging.handlers import BufferingHandler

    report = BufferingHandler(capacity=1 << 20)
    level, propagate = log.level, log.propagate
    log.addHandler(report)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        deblur_file(blurred, output, job)
    finally:
        log.removeHandler(report)
        log.setLevel(level)
        log.propagate = propagate
    return [(record.levelno, record.getMessage()) for record in report.buffer]


def _try(function, *args) -> bool:
    """Run `function`; log the error of a failed one (and go on), saying whether it worked."""
    try:
        function(*args)
    except (ValueError, TypeError, OSError, MemoryError) as error:
        log.error("%s: %s", args[0], _said(error))
        return False
    return True


def deblur_file(blurred: Path, output: Path, job: dict, client=None) -> None:
    """Deblur one image file or Zarr store as `job` says (the run command's options)."""
    import numpy as np

    from ._api import deblur, deblur_steps
    from ._io import (
        check_output,
        gamma_encoded,
        is_zarr,
        ome_with_spacing,
        read_image,
        read_mask,
        read_zarr,
        to_dtype,
        write_zarr,
    )
    from .engine.point_source import PSFQualityWarning, psf_from_point_source

    lazy = is_zarr(blurred)
    if lazy != is_zarr(output):
        raise ValueError(
            f"a Zarr store is deblurred into a Zarr store, an image file into an image file: "
            f"{blurred} -> {output}"
        )
    if not lazy and job["channel_axis"] is not None:
        raise ValueError(
            "--channel-axis is for Zarr stores; an image file says where its colour or "
            "channels are (an RGB file, a hyperstack's C)"
        )
    image = read_zarr(blurred) if lazy else read_image(blurred)
    if not lazy:
        # The result has the input's type, colour and alpha.
        check_output(output, overwrite=job["overwrite"], like=image)
    data = image.data
    # A hyperstack's (or an OME-Zarr image's) channels and time points are
    # its C and T axes unless told otherwise.
    channel_axis = image.channel_axis if job["channel_axis"] is None else job["channel_axis"]
    time_axis = image.time_axis if job["time_axis"] is None else job["time_axis"]
    encoding = job["encoding"]
    compressed = not lazy and image.compressed
    if compressed:
        log.info(
            "%s is compressed (JPEG steps of %.0f grey levels): its noise and weight are "
            "measured on its coarser detail, which the compression left",
            blurred,
            image.jpeg_step,
        )
    if (
        encoding == "auto"
        and not lazy
        and data.dtype != np.uint8
        and image.icc_profile
        and gamma_encoded(image.icc_profile)
    ):
        # A 16-bit photo exported with its colour profile is gamma-encoded,
        # as 8-bit ones are: its type alone would say linear light.
        encoding = "srgb"
        log.info("%s: its colour profile is gamma-encoded: decoded by sRGB's curve", blurred)
    psf = None if job["psf"] in ("auto", "general") else read_image(job["psf"])
    bad_pixels = None
    if job["mask"] is not None:
        bad_pixels = read_mask(job["mask"])
        # One mask for every frame of a series, or one per frame.
        axes = [a % data.ndim for a in (channel_axis, time_axis) if a is not None]
        frame = tuple(n for axis, n in enumerate(data.shape) if axis not in axes)
        spatial = (
            tuple(np.delete(data.shape, channel_axis)) if channel_axis is not None else data.shape
        )
        if bad_pixels.shape not in (frame, spatial):
            raise ValueError(
                f"--mask {job['mask']} is {bad_pixels.shape}, the image {blurred} {spatial}"
                + (f" (a frame {frame})" if frame != spatial else "")
            )
    psf_data = job["psf"] if psf is None else psf.data
    if psf is not None and psf.channel_axis is not None and channel_axis is not None:
        hyperstack = image.axes is not None
        if (psf.axes is not None) != hyperstack:
            held = {True: "a hyperstack's channels", False: "colours"}
            raise ValueError(
                f"{job['psf']} holds {held[psf.axes is not None]}, {blurred} {held[hyperstack]}: "
                "give a PSF with the image's channels, or a grey one for all"
            )
        # One PSF per channel, on the image's channel axis (a hyperstack's C).
        psf_data = np.moveaxis(psf_data, psf.channel_axis, channel_axis)
    grey_from_colour = psf is not None and psf.channel_axis is not None and channel_axis is None
    if grey_from_colour and job["varying"]:
        raise ValueError("--varying with a grey image needs a grey photo of the lights")
    psf_compressed = psf is not None and psf.compressed
    if grey_from_colour:
        # One PSF for a grey image: the colours' sum.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PSFQualityWarning)
            psf_data = psf_from_point_source(
                psf.data,
                channel_axis=psf.channel_axis,
                encoding=encoding,
                compressed=psf_compressed,
            ).grey
        _log_warnings(Path(job["psf"]), caught)
    options = {
        "method": job["method"],
        "boundary": job["boundary"],
        "channel_axis": channel_axis,
        "time_axis": time_axis,
        "encoding": encoding,
        "weight": job["weight"],
        "max_iter": job["max_iter"],
        "bad_pixels": bad_pixels,
        "saturation": job["saturation"],
        "varying": job["varying"],
        "refine_psf": job["refine_psf"],
        "compressed": compressed,
        "psf_compressed": psf_compressed,
    }
    # The sizes of both samples, given or in the files' metadata, resample
    # a PSF taken with other steps (a bead stack) to the image's.
    spacing = job["spacing"] or image.spacing
    psf_spacing = job["psf_spacing"] or (None if psf is None else psf.spacing)
    if job["spacing"]:
        # The result records the sample size given.
        spatial = data.ndim - sum(a is not None for a in (channel_axis, time_axis))
        image = replace(image, spacing=_per_axis(spacing, spatial, "image"))
        if image.ome is not None:
            image = replace(image, ome=ome_with_spacing(image.ome, image.spacing))
    if spacing is not None and psf_spacing is not None:
        options |= {"spacing": spacing, "psf_spacing": psf_spacing}
    elif job["spacing"] or job["psf_spacing"]:
        given = "--spacing" if job["spacing"] else "--psf-spacing"
        other = "--psf-spacing" if job["spacing"] else "--spacing"
        raise ValueError(f"{given} needs {other} too (the other file records no sample size)")
    start = time.perf_counter()
    if lazy or job["chunks"] is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PSFQualityWarning)
            result = deblur(data, psf_data, chunks=job["chunks"], **options)
            if lazy:
                result, clipped = to_dtype(result, data.dtype)
                counts = [clipped] if data.dtype.kind in "iu" else []
                counted = write_zarr(
                    output,
                    result,
                    overwrite=job["overwrite"],
                    compute=_computer(client),
                    also=counts,
                    ome=image.ome,
                )
        _log_warnings(blurred, caught)
        if lazy:
            _report_clipped(int(sum(counted)), result)
            log.info("deblurred %s in %.2f s", blurred, time.perf_counter() - start)
            return
        _write_like(output, result, image, job["overwrite"])
        log.info("deblurred %s in chunks in %.2f s", blurred, time.perf_counter() - start)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PSFQualityWarning)
        (last,) = deque(deblur_steps(data, psf_data, **options), maxlen=1)
    _log_warnings(blurred, caught)
    settings = last.settings
    if settings["psf_estimate"]:
        log.info("%s", settings["psf_estimate"])
    if settings["psf_refined"] is not None:
        log.info(
            "PSF refined on the image: magnified %.2fx, it moved %.0f%%",
            settings["psf_magnified"],
            100 * settings["psf_refined"],
        )
    log.info(
        "%s%s, %d iterations, noise %.3g, weight %s%s",
        settings["method"],
        f" with {settings['psfs']} PSFs across the frame" if settings["psfs"] > 1 else "",
        last.iteration,
        settings["noise"],
        "none" if settings["weight"] is None else f"{settings['weight']:.3g}",
        f", {settings['left_out']} clipped, hot or bad samples left out of the fit"
        if settings["left_out"]
        else "",
    )
    _write_like(output, last.image, image, job["overwrite"])
    log.info("deblurred %s in %.2f s", blurred, time.perf_counter() - start)


def _log_warnings(blurred: Path, caught: list[warnings.WarningMessage]) -> None:
    """The warnings of a file's run, one line each, naming the file."""
    for warning in caught:
        log.warning("warning: %s: %s", blurred, warning.message)


def _write_like(path: Path, result, source, overwrite: bool) -> None:
    """Write `result` in the type, layout and profile of the `source` file."""
    from ._io import to_dtype, write_image

    out, clipped = to_dtype(result, source.data.dtype)
    _report_clipped(clipped, out)
    write_image(path, replace(source, data=out), overwrite=overwrite)


def _report_clipped(clipped: int, out) -> None:
    """Say how many values the output's type clipped, if any."""
    if clipped:
        log.warning(
            "%d of %d values clipped to the range of %s", int(clipped), out.size, out.dtype
        )


@contextmanager
def _cluster(workers: int | None, scheduler: str | None):
    """A Dask client for `scheduler`'s cluster, or a local one of `workers` processes, or None."""
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers (a cluster here) or --scheduler (one running), not both")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError(
            "clusters need dask.distributed: pip install 'napari-deblur[dask]'"
        ) from None
    # The cluster's own news (workers starting and stopping) only when asked;
    # so is its event loop's (a gather cut short by Ctrl-C, say).
    logging.getLogger("distributed").setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if scheduler is not None:
        with Client(scheduler, timeout=30) as client:
            log.info("deblurring on the cluster at %s", scheduler)
            yield client
        return
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    # One thread a worker: the FFTs use every core of their machine.
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address=None,
            # A failed file is reported here, in one line; the workers'
            # tracebacks only when asked (-v).
            silence_logs=logging.WARNING if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        log.info("deblurring on a local cluster of %d workers", workers)
        yield client


def _computer(client):
    """How to compute Dask collections: on `client`'s cluster or here, progress on stderr."""
    if client is not None:

        def on_cluster(graphs):
            from distributed import progress

            futures = client.compute(graphs)
            try:
                if log.isEnabledFor(logging.INFO):
                    progress(futures)
                return client.gather(futures)
            except BaseException:
                # A task already running is not stopped by cancelling it: our
                # own cluster's workers are, so that none writes on after the
                # caller has removed what was half-written.
                client.cancel(futures)
                if client.cluster is not None:
                    client.cluster.close()
                raise

        return on_cluster

    def here(graphs):
        import dask
        from dask.diagnostics import ProgressBar

        if log.isEnabledFor(logging.INFO):
            with ProgressBar(out=sys.stderr):
                return dask.compute(*graphs)
        return dask.compute(*graphs)

    return here


def psf(args: argparse.Namespace) -> None:
    """Measure a PSF from a photo of point lights; write it and print the report."""
    import numpy as np

    from ._io import ImageFile, check_output, is_zarr, read_image, write_image
    from .engine.point_source import PSFQualityWarning, psf_from_point_source

    output = Path(args.output)
    if output.resolve() == Path(args.photo).resolve():
        raise ValueError(f"{output} is the input; choose another output")
    if is_zarr(output):
        raise ValueError(f"{output}: a PSF is written as TIFF (float32); use a .tif name")
    photo = read_image(args.photo)
    if photo.time_axis is not None:
        raise ValueError(f"{args.photo}: a photo of point lights is one time point, not a series")
    # A PSF is written in float32, which only TIFF holds.
    check_output(
        output,
        overwrite=args.overwrite,
        like=ImageFile(np.zeros((1, 1), np.float32), photo.channel_axis),
    )
    spatial = photo.data.ndim - (photo.channel_axis is not None)
    # The sample size given, or the one the photo's file records: the PSF
    # file keeps it, for a run to resample the PSF by.
    spacing = args.spacing or photo.spacing
    spacing = None if spacing is None else _per_axis(spacing, spatial, "photo")
    if args.bead_diameter is not None and spacing is None:
        # In samples it would remove next to nothing, and say it was removed.
        raise ValueError(
            f"--bead-diameter needs the size of a sample: {args.photo} records none; "
            "give --spacing in the diameter's unit"
        )
    with warnings.catch_warnings():
        # The report below says the same.
        warnings.simplefilter("ignore", PSFQualityWarning)
        measured = psf_from_point_source(
            photo.data,
            rois=args.roi or None,
            sources=1 if args.sources is None else args.sources,
            encoding=args.encoding,
            channel_axis=photo.channel_axis,
            energy=args.energy,
            symmetric=args.symmetric,
            bead_diameter=args.bead_diameter,
            spacing=spacing or 1.0,
            compressed=photo.compressed,
            saturation=args.saturation,
        )
    # Channels where the photo had them (last for colour, a hyperstack's C).
    data = (
        measured.psf
        if photo.channel_axis is None
        else np.moveaxis(measured.psf, 0, photo.channel_axis)
    )
    image = ImageFile(
        data.astype(np.float32), photo.channel_axis, spacing=spacing, axes=photo.axes
    )
    write_image(args.output, image, overwrite=args.overwrite)
    # A file's own sample size is read in micrometres; one given is in the user's unit.
    print(measured.report(spacing, "um" if args.spacing is None and spacing else ""))


def _per_axis(spacing, ndim: int, what: str) -> tuple[float, ...]:
    """A sample size given once or per axis (of the `what` file), as one per spatial axis."""
    import numpy as np

    if len(spacing) not in (1, ndim):
        raise ValueError(
            f"--spacing gives {len(spacing)} sizes, the {what} has {ndim} spatial axes"
        )
    return tuple(np.broadcast_to(spacing, (ndim,)).tolist())


def _spacing(text: str) -> tuple[float, ...]:
    """``'0.2,0.1,0.1'`` -> ``(0.2, 0.1, 0.1)``: a sample's size per spatial axis."""
    try:
        sizes = tuple(float(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or not all(0 < s < float("inf") for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 0.2,0.1,0.1, got {text!r}")
    return sizes


def _roi(text: str) -> tuple[tuple[int, int], ...]:
    """``'10:50,20:70'`` -> ``((10, 50), (20, 70))``: start:stop per axis, from 0."""
    try:
        region = tuple(tuple(int(v) for v in part.split(":")) for part in text.split(","))
    except ValueError:
        region = ()
    if not region or any(len(pair) != 2 for pair in region):
        raise argparse.ArgumentTypeError(f"{text!r} is not START:STOP,START:STOP")
    if any(v < 0 for pair in region for v in pair):
        raise argparse.ArgumentTypeError(
            f"{text!r}: START and STOP count samples from 0 (none from the end)"
        )
    return region


def _chunks(text: str) -> tuple[int, ...] | str:
    """``'256'`` or ``'32,512,512'`` -> chunk sizes; ``'auto'`` stays."""
    if text == "auto":
        return text
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes like 256 or 32,512,512, got {text!r}")
    return sizes


def _saturation(text: str) -> float | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, 'auto' or 'none'") from None


def _sources(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'auto'") from None


def demo(args: argparse.Namespace) -> None:
    """Deblur the sample photo headless; write it, the result and a side-by-side PNG."""
    import numpy as np

    from ._api import deblur
    from ._io import ImageFile, check_output, to_dtype, write_image
    from ._sample_data import make_defocused_photo

    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; name a folder for the PNG files")
    folder.mkdir(parents=True, exist_ok=True)
    names = ("blurred.png", "point-light.png", "deblurred.png", "side-by-side.png")
    for name in names:
        check_output(folder / name, overwrite=args.overwrite)
    blurred, light, sharp = make_defocused_photo()
    result, clipped = to_dtype(deblur(blurred, light, channel_axis=-1), np.uint8)
    _report_clipped(clipped, result)
    gap = np.full((blurred.shape[0], 8, 3), 255, np.uint8)
    pictures = (blurred, light, result, np.concatenate([blurred, gap, result, gap, sharp], axis=1))
    for name, data in zip(names, pictures):
        write_image(folder / name, ImageFile(data, -1), overwrite=args.overwrite)
    log.info("side-by-side.png: blurred | deblurred | truth")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors take one line, as every other error here."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (--help for the options)\n")


def _parser() -> argparse.ArgumentParser:
    from ._api import METHODS
    from .engine.color import ENCODINGS
    from .engine.operators import BOUNDARIES

    parser = _Parser(
        prog="napari-deblur",
        description="Deblur images with a measured PSF. With no command, opens napari "
        "with the sample data and the Deblur widget.",
    )
    # -v/-q work before or after the command; SUPPRESS keeps a command's
    # parser from resetting what was given before it.
    logging_flags = _Parser(add_help=False)
    for target, default in ((parser, False), (logging_flags, argparse.SUPPRESS)):
        target.add_argument(
            "-v", "--verbose", action="store_true", default=default, help="say more"
        )
        target.add_argument(
            "-q", "--quiet", action="store_true", default=default, help="only warnings and errors"
        )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"napari-deblur {__version__}")
    commands = parser.add_subparsers(dest="command")

    p = commands.add_parser(
        "run", parents=[logging_flags], help="deblur image files or Zarr stores with a PSF file"
    )
    p.add_argument(
        "blurred",
        nargs="+",
        help="blurred image (PNG, JPEG, TIFF; gray, RGB or a stack) or Zarr store; "
        "several are deblurred alike into the folder --output",
    )
    p.add_argument(
        "--psf",
        required=True,
        help="PSF or photo of a point light; 'auto' to estimate a defocus, Gaussian or "
        "motion blur from the image itself, 'general' for any blur (camera shake)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="result file (PNG, JPEG, TIFF, or a .zarr store for a Zarr input); "
        "a folder for several inputs",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="deconvolution method (default auto: chosen for the data)",
    )
    p.add_argument(
        "--boundary",
        choices=("auto", *BOUNDARIES),
        default="auto",
        help="what lies beyond the frame (default auto: valid, the frame is the centre of a "
        "larger blurred scene, estimated too)",
    )
    p.add_argument(
        "--encoding", choices=ENCODINGS, default="auto", help="sRGB or linear pixel values"
    )
    p.add_argument(
        "--weight",
        type=float,
        help="the method's regularisation weight (default: chosen from the image's noise; "
        "the log says which): larger is smoother",
    )
    p.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="upper bound on iterations (default: the method's own)",
    )
    p.add_argument(
        "--mask", help="bad-pixel mask: an image of the same size, non-zero where a pixel is bad"
    )
    p.add_argument(
        "--saturation",
        type=_saturation,
        default="auto",
        help="stored value at which the sensor clipped ('auto': the top of the file's range; "
        "'none': nothing is clipped); clipped pixels are left out of the fit",
    )
    p.add_argument(
        "--varying",
        action="store_true",
        help="the blur changes across the frame: --psf is a photo of several point lights "
        "spread over it, framed like the image; the blur is interpolated between them",
    )
    p.add_argument(
        "--refine-psf",
        action="store_true",
        help="the PSF is a bit wrong (another distance, noisy): refine it on the image first",
    )
    p.add_argument(
        "--chunks",
        type=_chunks,
        help="deblur in chunks of this size (N or Z,Y,X) or 'auto' (to fit the memory), "
        "each with the margin its iterations reach; a Zarr store goes by its own chunks",
    )
    p.add_argument(
        "--channel-axis",
        type=int,
        help="axis of colour channels in a Zarr store (by default an OME-Zarr's C)",
    )
    p.add_argument(
        "--time-axis",
        type=int,
        help="axis of time points (TZYX): frames deblurred in turn (by default a "
        "hyperstack's or an OME-Zarr's T)",
    )
    p.add_argument(
        "--spacing",
        type=_spacing,
        help="Z,Y,X (or Y,X) size of the image's samples (by default an OME or ImageJ "
        "TIFF's own, or an OME-Zarr's); with the PSF's, the PSF is resampled to the image's",
    )
    p.add_argument(
        "--psf-spacing",
        type=_spacing,
        help="Z,Y,X (or Y,X) size of the PSF's samples (by default its TIFF's own)",
    )
    p.add_argument(
        "--workers", type=int, help="run on a local Dask cluster of this many worker processes"
    )
    p.add_argument("--scheduler", help="run on the Dask cluster at this address (tcp://host:8786)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run)

    p = commands.add_parser(
        "psf", parents=[logging_flags], help="measure a PSF from a photo of point lights"
    )
    p.add_argument("photo", help="photo of one or more point lights (PNG, JPEG, TIFF)")
    p.add_argument("-o", "--output", required=True, help="PSF file to write (float32 TIFF)")
    p.add_argument(
        "--roi",
        type=_roi,
        action="append",
        help="START:STOP,START:STOP region holding one light, rows then columns (planes "
        "first for a stack; repeat for several)",
    )
    p.add_argument(
        "--sources",
        type=_sources,
        help="without --roi: how many of the brightest isolated lights, or 'auto' (default 1)",
    )
    p.add_argument(
        "--encoding", choices=ENCODINGS, default="auto", help="sRGB or linear pixel values"
    )
    p.add_argument(
        "--energy", type=float, default=0.995, help="fraction of the light kept (default 0.995)"
    )
    p.add_argument("--symmetric", action="store_true", help="average over rotations")
    p.add_argument(
        "--spacing",
        type=_spacing,
        help="Z,Y,X (or Y,X) size of a sample, e.g. voxels in um; FWHM is reported in it too",
    )
    p.add_argument(
        "--bead-diameter",
        type=float,
        help="diameter of the beads, in the unit of --spacing: their size is taken out",
    )
    p.add_argument(
        "--saturation",
        type=_saturation,
        default="auto",
        help="stored value at which the sensor clipped ('auto': the top of the file's range, "
        "or of a 12- or 14-bit camera's; 'none': nothing is clipped); clipped samples are "
        "counted and warned about",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=psf)

    p = commands.add_parser(
        "demo", parents=[logging_flags], help="deblur the sample photo without a display"
    )
    p.add_argument("folder", help="folder for the PNG files")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.set_defaults(func=demo)

    p = commands.add_parser(
        "gui",
        parents=[logging_flags],
        help="open napari with a sample and the widget (the default)",
    )
    p.add_argument(
        "--sample",
        choices=("defocused_photo", "widefield_stack"),
        default="defocused_photo",
        help="the sample to open (default defocused_photo)",
    )
    p.set_defaults(func=lambda a: launch_gui(a.sample))
    return parser


def _has_display() -> bool:
    """Whether napari's window can open: on Linux, an X or Wayland display (or Qt told where)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``napari-deblur`` and ``python -m napari_deblur``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        parser.error("-q (quiet) and -v (verbose) contradict each other; give one")
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    # Pillow reports every PNG chunk it reads at the debug level.
    logging.getLogger("PIL").setLevel(max(level, logging.INFO))
    # tifffile warns of a broken file in its own words; the error names it.
    logging.getLogger("tifffile").setLevel(logging.ERROR)
    main_thread = threading.current_thread() is threading.main_thread()
    terminate = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        if args.command in (None, "gui") and not _has_display():
            raise ValueError(
                "no display for napari; 'napari-deblur demo FOLDER' runs the sample headless"
            )
        if args.command is None:
            launch_gui()
        else:
            args.func(args)
    except (ValueError, TypeError, OSError, MemoryError) as error:
        print(f"napari-deblur: error: {_said(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "napari-deblur: interrupted; the output being written was not written",
            file=sys.stderr,
        )
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, terminate)
    return 0


def _interrupt(signum, frame) -> None:
    """A termination request (a batch system's time limit) stops the run like Ctrl-C."""
    raise KeyboardInterrupt

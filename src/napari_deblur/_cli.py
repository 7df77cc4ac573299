"""The ``napari-deblur`` command: the GUI, batch deblurring and a headless demo.

Each command is one function that makes one library call; the library
never prints, the commands log.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from collections import deque
from pathlib import Path

log = logging.getLogger("napari_deblur")


def launch_gui(sample: str = "defocused_photo") -> None:
    """Open napari with a sample loaded and the Deblur widget docked."""
    import napari

    viewer = napari.Viewer(title="napari-deblur")
    viewer.open_sample("napari-deblur", sample)
    viewer.window.add_plugin_dock_widget("napari-deblur", "Deblur")
    napari.run()


def run(args: argparse.Namespace) -> None:
    """Deblur one file with a PSF file and write the result."""
    from ._api import deblur_steps
    from ._io import ImageFile, read_image, to_dtype, write_image
    from .engine.point_source import PSFQualityWarning, psf_from_point_source

    inputs = {Path(p).resolve() for p in (args.blurred, args.psf, args.mask) if p is not None}
    if Path(args.output).resolve() in inputs:
        raise ValueError(f"{args.output} is an input; choose another output file")
    image = read_image(args.blurred)
    psf = None if args.psf in ("auto", "general") else read_image(args.psf)
    bad_pixels = None
    if args.mask is not None:
        mask = read_image(args.mask)
        bad_pixels = mask.data != 0
        if mask.channel_axis is not None:
            # A colour mask file marks a pixel bad where any of its channels is set.
            bad_pixels = bad_pixels.any(axis=-1)
    psf_data = args.psf if psf is None else psf.data
    if psf is not None and psf.channel_axis is not None and image.channel_axis is None:
        if args.varying:
            raise ValueError("--varying with a grey image needs a grey photo of the lights")
        psf_data = psf_from_point_source(psf.data, channel_axis=-1, encoding=args.encoding).grey
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PSFQualityWarning)
        steps = deblur_steps(
            image.data,
            psf_data,
            method=args.method,
            boundary=args.boundary,
            channel_axis=image.channel_axis,
            encoding=args.encoding,
            max_iter=args.max_iter,
            bad_pixels=bad_pixels,
            saturation=args.saturation,
            varying=args.varying,
            refine_psf=args.refine_psf,
        )
        (last,) = deque(steps, maxlen=1)
    for warning in caught:
        log.warning("warning: %s", warning.message)
    settings = last.settings
    if settings["psf_estimate"]:
        log.info("%s", settings["psf_estimate"])
    if settings["psf_refined"] is not None:
        log.info("PSF refined on the image: it moved %.0f%%", 100 * settings["psf_refined"])
    log.info(
        "%s%s, %d iterations, noise %.3g%s",
        settings["method"],
        f" with {settings['psfs']} PSFs across the frame" if settings["psfs"] > 1 else "",
        last.iteration,
        settings["noise"],
        f", {settings['left_out']} clipped or bad samples left out of the fit"
        if settings["left_out"]
        else "",
    )
    out, clipped = to_dtype(last.image, image.data.dtype)
    if clipped:
        log.warning("%d of %d values clipped to the range of %s", clipped, out.size, out.dtype)
    result = ImageFile(out, image.channel_axis, image.alpha, image.exif, image.icc_profile)
    write_image(args.output, result, overwrite=args.overwrite)
    log.info("deblurred %s in %.2f s", args.blurred, time.perf_counter() - start)


def psf(args: argparse.Namespace) -> None:
    """Measure a PSF from a photo of point lights; write it and print the report."""
    import numpy as np

    from ._io import ImageFile, read_image, write_image
    from .engine.point_source import PSFQualityWarning, psf_from_point_source

    photo = read_image(args.photo)
    with warnings.catch_warnings():
        # The report below says the same.
        warnings.simplefilter("ignore", PSFQualityWarning)
        measured = psf_from_point_source(
            photo.data,
            rois=args.roi or None,
            sources=args.sources,
            encoding=args.encoding,
            channel_axis=photo.channel_axis,
            energy=args.energy,
            symmetric=args.symmetric,
            bead_diameter=args.bead_diameter,
            spacing=args.spacing or 1.0,
        )
    data = measured.psf if photo.channel_axis is None else np.moveaxis(measured.psf, 0, -1)
    image = ImageFile(data.astype(np.float32), photo.channel_axis)
    write_image(args.output, image, overwrite=args.overwrite)
    print(measured.report(args.spacing))


def _spacing(text: str) -> tuple[float, ...]:
    """``'0.2,0.1,0.1'`` -> ``(0.2, 0.1, 0.1)``: a sample's size per spatial axis."""
    try:
        sizes = tuple(float(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or not all(s > 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 0.2,0.1,0.1, got {text!r}")
    return sizes


def _roi(text: str) -> tuple[tuple[int, int], ...]:
    """``'10:50,20:70'`` -> ``((10, 50), (20, 70))``: start:stop per axis, numpy style."""
    try:
        return tuple(tuple(int(v) for v in part.split(":")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not START:STOP,START:STOP") from None


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
    from ._io import ImageFile, to_dtype, write_image
    from ._sample_data import make_defocused_photo

    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    blurred, light, sharp = make_defocused_photo()
    result, clipped = to_dtype(deblur(blurred, light, channel_axis=-1), np.uint8)
    gap = np.full((blurred.shape[0], 8, 3), 255, np.uint8)
    files = {
        "blurred.png": blurred,
        "point-light.png": light,
        "deblurred.png": result,
        "side-by-side.png": np.concatenate([blurred, gap, result, gap, sharp], axis=1),
    }
    for name, data in files.items():
        write_image(folder / name, ImageFile(data, -1), overwrite=args.overwrite)
    log.info("side-by-side.png: blurred | deblurred | truth")


def _parser() -> argparse.ArgumentParser:
    from ._api import METHODS
    from .engine.color import ENCODINGS
    from .engine.operators import BOUNDARIES

    parser = argparse.ArgumentParser(
        prog="napari-deblur",
        description="Deblur images with a measured PSF. With no command, opens napari "
        "with the sample data and the Deblur widget.",
    )
    # -v/-q work before or after the command; SUPPRESS keeps a command's
    # parser from resetting what was given before it.
    logging_flags = argparse.ArgumentParser(add_help=False)
    for target, default in ((parser, False), (logging_flags, argparse.SUPPRESS)):
        target.add_argument(
            "-v", "--verbose", action="store_true", default=default, help="say more"
        )
        target.add_argument(
            "-q", "--quiet", action="store_true", default=default, help="only warnings and errors"
        )
    commands = parser.add_subparsers(dest="command")

    p = commands.add_parser(
        "run", parents=[logging_flags], help="deblur an image file with a PSF file"
    )
    p.add_argument("blurred", help="blurred image (PNG, JPEG, TIFF; gray, RGB or a stack)")
    p.add_argument(
        "--psf",
        required=True,
        help="PSF or photo of a point light; 'auto' to estimate a defocus, Gaussian or "
        "motion blur from the image itself, 'general' for any blur (camera shake)",
    )
    p.add_argument("-o", "--output", required=True, help="result file (PNG, JPEG, TIFF)")
    p.add_argument("--method", choices=METHODS, default="auto")
    p.add_argument("--boundary", choices=("auto", *BOUNDARIES), default="auto")
    p.add_argument(
        "--encoding", choices=ENCODINGS, default="auto", help="sRGB or linear pixel values"
    )
    p.add_argument("--max-iter", type=int, default=None, help="upper bound on iterations")
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
        help="START:STOP,START:STOP region holding one light (repeat for several)",
    )
    p.add_argument(
        "--sources",
        type=_sources,
        default=1,
        help="without --roi: how many of the brightest isolated lights, or 'auto' (default 1)",
    )
    p.add_argument(
        "--encoding", choices=ENCODINGS, default="auto", help="sRGB or linear pixel values"
    )
    p.add_argument("--energy", type=float, default=0.995, help="fraction of the light kept")
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
        "--sample", choices=("defocused_photo", "widefield_stack"), default="defocused_photo"
    )
    p.set_defaults(func=lambda a: launch_gui(a.sample))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``napari-deblur`` and ``python -m napari_deblur``."""
    parser = _parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    if args.command is None:
        launch_gui()
        return 0
    try:
        args.func(args)
    except (ValueError, TypeError, OSError, MemoryError) as error:
        print(f"napari-deblur: error: {error}", file=sys.stderr)
        return 1
    return 0

"""Image files: PNG, JPEG and TIFF in, the same depth, layout and profile out, written atomically.

The camera's EXIF record and the ICC colour profile travel from the input to
the output where the output's format holds them: both in PNG and JPEG, the
ICC profile in TIFF (tifffile writes no EXIF directory). Zarr stores, for
data larger than memory, are read and written chunk by chunk (Dask).
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from PIL import Image

log = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
ZARR_SUFFIX = ".zarr"


#: The largest JPEG compression (:func:`jpeg_step`) that leaves a
#: photo's noise to be measured. On the camera-made photos of
#: ``benchmarks/bench_photos.py --sections 6``, at quality 98 (steps of 2.7)
#: the weight chosen is 0.6-0.7 of the PNG's and the result within 1.1 dB of
#: it; at 95 (6.7) and 90 (13) it is 2.4 to 400 times too small, and the
#: result mostly worse than the blurred photo.
LOSSY_JPEG_STEP = 4.0


@dataclass(frozen=True)
class ImageFile:
    """Pixels of a file and how to read them.

    Attributes
    ----------
    data : ndarray
        Pixels, colour last when `channel_axis` is set.
    channel_axis : int or None
        -1 for colour (RGB or RGBA); the axis of a hyperstack's channels
        (an ImageJ or OME TIFF's C); None for grey images and stacks.
    alpha : ndarray or None
        The alpha channel, kept apart from the colour.
    exif, icc_profile : bytes or None
        The file's EXIF record and ICC colour profile, as stored.
    orientation : int or None
        The EXIF or TIFF orientation (1 to 8): how viewers turn the stored
        pixels (a phone's portrait photo is stored on its side).
    spacing : tuple of float or None
        Size of a sample along each spatial axis in micrometres, from an
        OME-TIFF's or an ImageJ TIFF's metadata.
    premultiplied : bool
        The colour is stored multiplied by the alpha (a TIFF's associated
        alpha), and is written back so.
    dpi : tuple of float or None
        The print resolution, dots per inch across and down (a JPEG's JFIF
        density, a PNG's pHYs, a TIFF's resolution tags).
    jpeg_step : float or None
        A JPEG's compression (:func:`jpeg_step`).
    axes : str or None
        A hyperstack's axes as its TIFF names them (``'TZCYX'``, ``'CZYX'``),
        written back with it; None for other images.
    time_axis : int or None
        The axis of a hyperstack's time points (its T).
    ome : dict or None
        An OME-Zarr image's ``'axes'`` (their NGFF entries: names, types,
        units) and ``'scale'`` (its full resolution's), written back with
        its result.
    """

    @property
    def compressed(self) -> bool:
        """Whether lossy compression took its finest detail's noise (:data:`LOSSY_JPEG_STEP`)."""
        return _lossy(self.jpeg_step)

    data: np.ndarray
    channel_axis: int | None
    alpha: np.ndarray | None = None
    exif: bytes | None = None
    icc_profile: bytes | None = None
    orientation: int | None = None
    spacing: tuple[float, ...] | None = None
    premultiplied: bool = False
    dpi: tuple[float, float] | None = None
    jpeg_step: float | None = None
    axes: str | None = None
    time_axis: int | None = None
    ome: dict | None = None


def file_type(path: Path) -> str:
    """The lower-case suffix of an image file read and written here.

    Raises
    ------
    ValueError
        If files of `path`'s type are not.
    """
    suffix = path.suffix.lower()
    if suffix not in TIFF_SUFFIXES + PHOTO_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported file type {suffix!r}; use PNG, JPEG, TIFF or a .zarr store"
        )
    return suffix


def read_image(path: str | os.PathLike) -> ImageFile:
    """Read a PNG, JPEG or TIFF (2D, RGB(A) or a stack of planes).

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    ImageFile
        Pixels as stored (8/16-bit integers or floats), colour last.
    """
    path = Path(path)
    suffix = file_type(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return _read_file(path, suffix)
    except Exception as error:
        # What the reading libraries make of a broken file (an IndexError, a
        # truncated read) is said with the file's name; our own refusals
        # name it already.
        if isinstance(error, ValueError) and str(error).startswith(f"{path}: "):
            raise
        raise ValueError(f"{path}: cannot be read as {suffix[1:].upper()} ({error})") from error


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Bad pixels from a mask file: True where any of its channels is set.

    Any image file :func:`read_image` reads, and 1-bit ones (a bilevel PNG),
    whose pixels are marks, not light levels.

    Raises
    ------
    ValueError
        If the file is missing or cannot be read.
    """
    path = Path(path)
    if path.is_file() and file_type(path) not in TIFF_SUFFIXES:
        try:
            with Image.open(path) as opened:
                if opened.mode == "1":
                    return np.asarray(opened)
        except OSError:
            pass  # read_image says what is wrong with the file.
    mask = read_image(path)
    bad = mask.data != 0
    return bad.any(axis=-1) if mask.channel_axis is not None else bad


def _read_file(path: Path, suffix: str) -> ImageFile:
    """:func:`read_image` of an existing file of a known type."""
    exif = step = None
    if suffix in TIFF_SUFFIXES:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
                raise ValueError(
                    f"{path}: {page.photometric.name} TIFF pixels are not light levels; "
                    "save it as grey (min-is-black) or RGB"
                )
            if len(tif.series) > 1:
                log.warning("%s holds %d images; the first is read", path, len(tif.series))
            data = tif.asarray()
            colour = page.photometric == tifffile.PHOTOMETRIC.RGB
            grey_alpha = not colour and len(page.extrasamples) == 1
            if colour and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
                data = np.moveaxis(data, -3, -1)
            # A hyperstack's channels and time points, as its axes name them.
            axes = tif.series[0].axes
            hyperstack = (
                not (colour or grey_alpha)
                and len(axes) == data.ndim
                and any(a in axes for a in "CT")
                and set(axes) <= set("TZCYX")
            )
            axes = axes if hyperstack else None
            channels = axes.index("C") if axes and "C" in axes else None
            time_axis = axes.index("T") if axes and "T" in axes else None
            icc_profile = page.iccprofile
            orientation = int(page.tags[ORIENTATION].value) if ORIENTATION in page.tags else None
            spatial = data.ndim - colour - grey_alpha - sum(a in (axes or "") for a in "CT")
            spacing = _voxel_size(tif, spatial)
            premultiplied = tuple(page.extrasamples) == (tifffile.EXTRASAMPLE.ASSOCALPHA,)
            dpi = None if spacing is not None else _tiff_dpi(page)
    else:
        with Image.open(path) as opened:
            if suffix == ".png" and "exif" not in opened.info:
                # A PNG's EXIF may follow its pixels, read only with them.
                opened.load()
            mode, info = opened.mode, opened.info
            step = _quantisation_step(opened)
            # A palette's transparent entries are alpha (imageio drops them).
            palette_alpha = mode == "P" and "transparency" in info
            if palette_alpha:
                data = np.asarray(opened.convert("RGBA"))
        if mode not in PHOTO_MODES:
            raise ValueError(
                f"{path}: pixels of Pillow's mode {mode!r} are not light levels read here; "
                "convert it to grey or RGB"
            )
        if suffix == ".png" and _png_bit_depth(path) == 16 and mode != "I;16":
            # Pillow keeps 16 bits for grey PNGs without alpha only.
            raise ValueError(
                f"{path}: a 16-bit PNG with colour or alpha is read as 8 bits; save it as a TIFF"
            )
        if not palette_alpha:
            data = iio.imread(path)
        grey_alpha = mode == "LA"
        colour = data.ndim == 3 and not grey_alpha
        exif, icc_profile = info.get("exif"), info.get("icc_profile")
        orientation = _exif_orientation(exif)
        spacing, premultiplied = None, False
        dpi = tuple(float(d) for d in info["dpi"]) if "dpi" in info else None
        axes = channels = time_axis = None
    if colour and data.shape[-1] not in (3, 4):
        raise ValueError(f"{path}: colour image with {data.shape[-1]} channels; expected 3 or 4")
    alpha = None
    if (colour and data.shape[-1] == 4) or grey_alpha:
        # RGBA, or grey and alpha: the alpha kept apart, untouched.
        data, alpha = data[..., :-1], data[..., -1]
        data = data if colour else data[..., 0]
    return ImageFile(
        data,
        -1 if colour else channels,
        alpha,
        exif or None,
        icc_profile or None,
        orientation,
        spacing,
        premultiplied,
        dpi,
        step,
        axes,
        time_axis,
    )


def jpeg_step(path: str | os.PathLike) -> float | None:
    """A JPEG file's compression: the root mean square of its luminance quantisation steps.

    In grey levels: 1 at quality 100, 2.7 at 98, 6.7 at 95, 13 at 90 with
    the IJG tables. None for a file without quantisation tables.
    """
    with Image.open(path) as opened:
        return _quantisation_step(opened)


def _quantisation_step(opened: Image.Image) -> float | None:
    """:func:`jpeg_step` of a file Pillow has open."""
    tables = getattr(opened, "quantization", None)
    return float(np.sqrt(np.mean(np.square(tables[0])))) if tables else None


def is_compressed(path: str | os.PathLike) -> bool:
    """Whether a file is a JPEG whose compression took its finest detail's noise.

    Its :func:`jpeg_step` above :data:`LOSSY_JPEG_STEP`; False for other files.
    """
    if Path(path).suffix.lower() not in (".jpg", ".jpeg"):
        return False
    return _lossy(jpeg_step(path))


def _lossy(step: float | None) -> bool:
    """Whether a JPEG's :func:`jpeg_step` exceeds :data:`LOSSY_JPEG_STEP` (None: not a JPEG)."""
    return (step or 0) > LOSSY_JPEG_STEP


#: Micrometres per unit of length, as OME and ImageJ spell the units.
MICROMETRES = {
    "µm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "\\u00B5m": 1.0,
    "nm": 1e-3,
    "mm": 1e3,
    # OME-Zarr's (UDUNITS) names.
    "micrometer": 1.0,
    "nanometer": 1e-3,
    "millimeter": 1e3,
}


def _voxel_metadata(image: ImageFile, path: Path) -> dict:
    """The arguments of ``tifffile.imwrite`` that record a grey image's sample size.

    And a hyperstack's axes, which it is written with. OME metadata for an
    ``.ome.tif`` name, ImageJ's otherwise (tifffile's own where ImageJ
    cannot hold the axes' order or type).
    """
    grey = image.channel_axis is None and image.alpha is None
    if not grey and image.axes is None:
        return {}
    sizes = {} if image.spacing is None else dict(zip("ZYX"[-len(image.spacing) :], image.spacing))
    if image.axes is None and not sizes:
        return {}
    axes = image.axes or ("TZYX"[-image.data.ndim :] if image.data.ndim <= 4 else None)
    if axes is None or image.data.ndim < len(sizes):
        return {}
    if path.name.lower().endswith((".ome.tif", ".ome.tiff")):
        physical = {f"PhysicalSize{axis}": size for axis, size in sizes.items()}
        return {"ome": True, "metadata": {"axes": axes, **physical}}
    imagej_order = "".join(a for a in "TZCYX" if a in axes) == axes
    if image.data.dtype not in (np.uint8, np.uint16, np.float32) or not imagej_order:
        return {"metadata": {"axes": axes}} if image.axes else {}
    metadata = {"axes": axes}
    if not sizes:
        return {"imagej": True, "metadata": metadata}
    metadata["unit"] = "um"
    if "Z" in sizes:
        metadata["spacing"] = sizes["Z"]
    return {
        "imagej": True,
        "resolution": (1 / sizes["X"], 1 / sizes["Y"]),
        "metadata": metadata,
    }


def _resolution(page: tifffile.TiffPage) -> tuple[float, float] | None:
    """A TIFF page's samples per unit across and down (its X and Y resolution tags), if set."""
    if "XResolution" not in page.tags or "YResolution" not in page.tags:
        return None
    across, down = (page.tags[name].value for name in ("XResolution", "YResolution"))
    if not all(across) or not all(down):
        return None
    return across[0] / across[1], down[0] / down[1]


def _tiff_dpi(page: tifffile.TiffPage) -> tuple[float, float] | None:
    """A TIFF page's print resolution in dots per inch, if its tags give one in inches or cm."""
    per_inch = {tifffile.RESUNIT.INCH: 1.0, tifffile.RESUNIT.CENTIMETER: 2.54}
    unit = page.tags.valueof("ResolutionUnit")
    resolution = _resolution(page)
    if unit not in per_inch or resolution is None:
        return None
    return resolution[0] * per_inch[unit], resolution[1] * per_inch[unit]


def _voxel_size(tif: tifffile.TiffFile, ndim: int) -> tuple[float, ...] | None:
    """A sample's size per spatial axis in micrometres, from OME or ImageJ metadata."""
    if tif.is_ome:
        from xml.etree import ElementTree

        root = ElementTree.fromstring(tif.ome_metadata)
        pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels")), None)
        if pixels is None:
            return None
        sizes = []
        for axis in "ZYX"[-min(ndim, 3) :]:
            size = pixels.get(f"PhysicalSize{axis}")
            scale = MICROMETRES.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
            if size is None or scale is None:
                return None
            sizes.append(float(size) * scale)
        return tuple(sizes)
    if tif.is_imagej:
        meta = tif.imagej_metadata or {}
        scale = MICROMETRES.get(meta.get("unit"))
        resolution = _resolution(tif.pages[0])
        if scale is None or resolution is None:
            return None
        lateral = (scale / resolution[1], scale / resolution[0])
        if ndim == 2:
            return tuple(lateral)
        if ndim == 3:
            # ImageJ leaves out a z step of 1 (its FileSaver writes
            # "spacing=" for a pixel depth other than 0 and 1).
            return (float(meta.get("spacing", 1.0)) * scale, *lateral)
    return None


def gamma_encoded(icc_profile: bytes) -> bool | None:
    """Whether an ICC profile's tone curve is a gamma (sRGB, Adobe RGB), not linear light.

    Mid grey (128 of 255) through the profile is about lightness 54 (L*) on
    sRGB's curve, 60 on a gamma of 1.8, 76 on a linear one. None when the
    profile cannot be read or is not RGB or grey.
    """
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        mode = {"RGB": "RGB", "GRAY": "L"}.get(profile.profile.xcolor_space.strip())
        if mode is None:
            return None
        lab = ImageCms.createProfile("LAB")
        transform = ImageCms.buildTransform(profile, lab, mode, "LAB")
        grey = ImageCms.applyTransform(Image.new(mode, (1, 1), (128,) * len(mode)), transform)
    except (OSError, ValueError, ImageCms.PyCMSError):
        return None
    return grey.getpixel((0, 0))[0] / 255 * 100 < 68


def _exif_orientation(exif: bytes | None) -> int | None:
    """The orientation an EXIF record gives, if any."""
    if not exif:
        return None
    record = Image.Exif()
    record.load(exif)
    return record.get(ORIENTATION)


#: The EXIF and TIFF tag of a picture's orientation.
ORIENTATION = 274

#: Pillow's modes of light levels: grey, 16-bit grey, grey and alpha, colour
#: with or without alpha, and a palette (read as its colours).
PHOTO_MODES = ("L", "LA", "I;16", "I;16B", "RGB", "RGBA", "P", "PA")


def _png_bit_depth(path: Path) -> int:
    """A PNG's bits per sample, from its header (the IHDR chunk's ninth byte)."""
    with open(path, "rb") as file:
        header = file.read(26)
    return header[24] if len(header) == 26 else 8


def to_dtype(image, dtype: np.dtype) -> tuple:
    """Round and clip `image` into integer `dtype` (floats pass); also the count clipped.

    A Dask array stays lazy, and so does its count.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        return image.astype(dtype, copy=False), 0
    info = np.iinfo(dtype)
    rounded = image.round()
    clipped = ((rounded < info.min) | (rounded > info.max)).sum()
    return rounded.clip(info.min, info.max).astype(dtype), clipped


def _default_mode() -> int:
    """Permissions a newly created file gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_image(path: str | os.PathLike, image: ImageFile, *, overwrite: bool = False) -> None:
    """Write `image` to `path` through a temporary file in the same folder.

    The file appears complete or not at all. An existing file is replaced
    only with `overwrite`.

    Parameters
    ----------
    path : str or path-like
        Destination; its suffix picks the format.
    image : ImageFile
        Pixels (alpha is put back as the last channel).
    overwrite : bool
        Replace an existing file.
    """
    path = Path(path)
    check_output(path, overwrite=overwrite, like=image)
    suffix = file_type(path)
    data = image.data
    if image.alpha is not None:
        channels = data if image.channel_axis is not None else data[..., None]
        data = np.concatenate([channels, image.alpha[..., None].astype(data.dtype)], axis=-1)
    folder = path.parent if str(path.parent) else Path(".")
    # The name's start only: the whole name and the random part may pass the
    # file system's 255 bytes.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.stem[:64]}.", suffix=suffix)
    os.close(handle)
    try:
        if suffix in TIFF_SUFFIXES:
            colour = image.channel_axis is not None and image.axes is None
            photometric = "rgb" if colour else "minisblack"
            turned = image.orientation not in (None, 1)
            voxels = _voxel_metadata(image, path)
            if image.dpi is not None and "resolution" not in voxels:
                voxels |= {"resolution": image.dpi, "resolutionunit": "INCH"}
            tifffile.imwrite(
                temporary,
                data,
                photometric=photometric,
                planarconfig="contig" if image.alpha is not None else None,
                extrasamples=[("assocalpha" if image.premultiplied else "unassalpha")]
                if image.alpha is not None
                else None,
                iccprofile=image.icc_profile,
                extratags=[(ORIENTATION, "H", 1, image.orientation, True)] if turned else None,
                **voxels,
            )
            if image.exif:
                log.info("%s: TIFF output keeps the ICC profile but not the EXIF record", path)
        else:
            exif = image.exif
            if not exif and image.orientation not in (None, 1):
                record = Image.Exif()
                record[ORIENTATION] = image.orientation
                exif = record.tobytes()
            profile = {
                key: value
                for key, value in (("exif", exif), ("icc_profile", image.icc_profile))
                if value
            }
            # JPEG: full-resolution colour (4:4:4), which the deblur sharpened.
            options = {"quality": 95, "subsampling": 0} if suffix != ".png" else {}
            if image.dpi is not None:
                options["dpi"] = image.dpi
            iio.imwrite(temporary, data, extension=suffix, **options, **profile)
        os.chmod(temporary, path.stat().st_mode if path.exists() else _default_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    log.info("wrote %s (%s, %s)", path, "x".join(map(str, data.shape)), data.dtype)


def check_output(
    path: str | os.PathLike, *, overwrite: bool = False, like: ImageFile | None = None
) -> None:
    """Refuse, before any work, an output that could not be written.

    Parameters
    ----------
    path : str or path-like
        The file (PNG, JPEG, TIFF) or Zarr store to write.
    overwrite : bool
        Whether an existing output may be replaced.
    like : ImageFile, optional
        An image of the type, colour and alpha of the output: whether the
        file's format can hold them.

    Raises
    ------
    ValueError
        If the type is not written here, the folder is missing, `path` is a
        folder where a file is meant (or a file where a store is), or the
        format cannot hold pixels like `like`'s.
    FileExistsError
        If `path` exists and `overwrite` is false.
    """
    path = Path(path)
    if is_zarr(path):
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file, not a Zarr store")
    else:
        suffix = file_type(path)
        if path.is_dir():
            raise ValueError(f"{path} is a folder; name the file to write")
        if like is not None:
            _check_format(path, suffix, like)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder to write {path.name} in")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def _check_format(path: Path, suffix: str, image: ImageFile) -> None:
    """A ValueError unless a `suffix` file holds `image`'s type, colour and alpha."""
    dtype = image.data.dtype
    allowed = {".png": (np.uint8, np.uint16), ".jpg": (np.uint8,), ".jpeg": (np.uint8,)}
    if suffix in allowed and dtype not in allowed[suffix]:
        raise ValueError(f"{path}: {suffix} cannot hold {dtype} pixels; write a TIFF instead")
    planes = image.data.ndim - (image.channel_axis is not None)
    if suffix in allowed and planes > 2:
        raise ValueError(
            f"{path}: a stack of {image.data.shape[0]} planes is written as TIFF or Zarr, "
            f"not {suffix}; use a .tif name"
        )
    if image.axes is not None and suffix not in TIFF_SUFFIXES:
        raise ValueError(
            f"{path}: a hyperstack ({image.axes}) is written as TIFF; use a .tif name"
        )
    if image.premultiplied and suffix not in TIFF_SUFFIXES:
        raise ValueError(
            f"{path}: colour premultiplied by its alpha is written as TIFF; use a .tif name"
        )
    if suffix in (".jpg", ".jpeg") and image.alpha is not None:
        raise ValueError(f"{path}: JPEG has no alpha channel; write a PNG or TIFF instead")
    if (
        suffix == ".png"
        and dtype == np.uint16
        and (image.channel_axis is not None or image.alpha is not None)
    ):
        # Pillow, which writes PNG here, keeps 16 bits for grey images only.
        raise ValueError(
            f"{path}: 16-bit colour or alpha is written as TIFF, not PNG; use a .tif name"
        )


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether `path` names a Zarr store (by its ``.zarr`` suffix)."""
    return Path(path).suffix.lower() == ZARR_SUFFIX


def read_zarr(path: str | os.PathLike) -> ImageFile:
    """A Zarr store's array as a lazy Dask array, chunked like the store.

    The array at the store's root, or an OME-Zarr image's full resolution
    with its axes (channels, time) and the sample size of its spatial axes
    (OME-NGFF 0.4 or 0.5 metadata).

    Returns
    -------
    ImageFile
        `data` a Dask array; `channel_axis`, `time_axis`, `axes` and
        `spacing` from the OME metadata, None without.
    """
    import dask.array as da
    import zarr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    node = zarr.open(str(path), mode="r")
    if not isinstance(node, zarr.Group):
        return ImageFile(da.from_zarr(str(path)), None)
    attributes = dict(node.attrs)
    multiscales = attributes.get("ome", attributes).get("multiscales")
    component = multiscales[0]["datasets"][0]["path"] if multiscales else "0"
    if component not in node:
        raise ValueError(f"{path}: a Zarr group without an array '0'; give the array's path")
    data = da.from_zarr(str(path), component=component)
    ome = _ome_layout(multiscales[0], data.ndim) if multiscales else None
    if ome is None:
        return ImageFile(data, None)
    axes = "".join(_ome_letter(entry) for entry in ome["axes"])
    spatial = [i for i, a in enumerate(axes) if a in "ZYX"]
    units = [MICROMETRES.get(ome["axes"][i].get("unit")) for i in spatial]
    spacing = None
    if ome["scale"] is not None and spatial and None not in units:
        spacing = tuple(float(ome["scale"][i] * u) for i, u in zip(spatial, units))
    return ImageFile(
        data,
        axes.index("C") if "C" in axes else None,
        spacing=spacing,
        axes=axes,
        time_axis=axes.index("T") if "T" in axes else None,
        ome=ome,
    )


def _ome_letter(entry: dict) -> str:
    """An OME axis' letter in ``'TCZYX'``: by its type (time, channel), else its name."""
    kinds = {"time": "T", "channel": "C"}
    return kinds.get(entry.get("type"), str(entry.get("name", "")).upper())


def _ome_layout(multiscale: dict, ndim: int) -> dict | None:
    """An OME-Zarr image's axes (NGFF entries) and its full resolution's scale.

    None for axes other than ``'TCZYX'`` or fewer; the scale None where the
    metadata gives none (NGFF asks for one: its sample size is unknown).
    """
    named = multiscale.get("axes") or []
    if len(named) != ndim or not all(isinstance(a, dict) for a in named):
        return None
    axes = "".join(_ome_letter(entry) for entry in named)
    if len(axes) != ndim or not set(axes) <= set("TCZYX") or len(set(axes)) != ndim:
        return None
    scale, found = np.ones(ndim), False
    for transforms in (
        multiscale["datasets"][0].get("coordinateTransformations", []),
        multiscale.get("coordinateTransformations", []),
    ):
        for transform in transforms:
            if transform.get("type") == "scale":
                scale *= np.asarray(transform["scale"], float)
                found = True
    return {"axes": [dict(a) for a in named], "scale": scale.tolist() if found else None}


def ome_with_spacing(ome: dict, spacing: Sequence[float]) -> dict:
    """`ome` (:attr:`ImageFile.ome`) with its spatial axes' sample size `spacing`, in um."""
    axes = [dict(a) for a in ome["axes"]]
    scale = list(ome["scale"] or [1.0] * len(axes))
    sizes = iter(spacing)
    for i, entry in enumerate(axes):
        if _ome_letter(entry) in "ZYX":
            entry["unit"], scale[i] = "micrometer", float(next(sizes))
    return {"axes": axes, "scale": scale}


def _ome_metadata(ome: dict) -> dict:
    """OME-NGFF 0.4 attributes of a one-resolution image (:attr:`ImageFile.ome`)."""
    scale = ome["scale"] or [1.0] * len(ome["axes"])
    dataset = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
    return {"multiscales": [{"version": "0.4", "axes": ome["axes"], "datasets": [dataset]}]}


def write_zarr(
    path: str | os.PathLike,
    data,
    *,
    overwrite: bool = False,
    compute=None,
    also=(),
    ome: dict | None = None,
) -> tuple:
    """Write the Dask array `data` to a new Zarr store, chunk by chunk.

    The store is written under a temporary name beside `path` and renamed
    when complete, so that `path` holds a whole result or nothing new. With
    `ome`, it is an OME-Zarr image (NGFF 0.4: its array ``'0'`` in a Zarr
    v2 group) that records the input's axes and scale.

    Parameters
    ----------
    path : str or path-like
        The store to create (a folder ending in ``.zarr``).
    data : dask.array.Array
        The array; its chunks are the store's.
    overwrite : bool
        Replace an existing store.
    compute : callable, optional
        Computes a list of Dask collections and returns their values (by
        default ``dask.compute`` on the current scheduler): for progress
        reports or a cluster.
    also : sequence of Dask collections
        Values computed in the same pass as the write (a count of clipped
        samples, say), which would otherwise compute `data` again.
    ome : dict, optional
        The axes and scale of `data` (:attr:`ImageFile.ome`).

    Returns
    -------
    tuple
        The values of `also`.
    """
    import shutil

    import dask
    import zarr

    path = Path(path)
    if not is_zarr(path):
        raise ValueError(f"{path}: a Zarr store's name ends in .zarr")
    check_output(path, overwrite=overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    # A store's chunks are regular (all of one size, the last no larger);
    # Dask would rechunk to them with a warning of three lines.
    if not all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in data.chunks):
        data = data.rechunk(tuple(c[0] for c in data.chunks))
    temporary = Path(tempfile.mkdtemp(dir=folder, prefix=f".{path.name}.", suffix=ZARR_SUFFIX))
    try:
        group = {} if ome is None else {"component": "0", "zarr_format": 2}
        writes = data.to_zarr(str(temporary), overwrite=True, compute=False, **group)
        values = (compute or (lambda graphs: dask.compute(*graphs)))([writes, *also])
        if ome is not None:
            zarr.open_group(str(temporary), mode="r+").attrs.update(_ome_metadata(ome))
        if path.exists():
            # The old store steps aside, the new one takes its name, and only
            # then is the old one removed: a crash between leaves one whole.
            retired = Path(tempfile.mkdtemp(dir=folder, prefix=f".{path.name}.old."))
            os.replace(path, retired / path.name)
            os.replace(temporary, path)
            shutil.rmtree(retired)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    log.info("wrote %s (%s, %s)", path, "x".join(map(str, data.shape)), data.dtype)
    return tuple(values[1:])

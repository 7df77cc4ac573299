"""napari reader and writer: TIFF stacks and hyperstacks with their axes, channels and voxel size.

napari's own TIFF reader gives a ZCYX hyperstack as one 4D layer without a
scale: a widget cannot tell its channels from its planes, nor its planes
from time; its writer keeps the pixels alone. This reader splits the
channels into layers (ImageJ's and OME's C axis), names each axis, and
gives the spatial axes the sample size the file records, in micrometres;
the writer records a layer's sample size and time axis (an ImageJ TIFF, or
OME for a ``.ome.tif`` name). Everything else is read and written as the
command line reads and writes it (:mod:`napari_deblur._io`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pint

from ._io import TIFF_SUFFIXES, ImageFile, read_image, write_image

LayerData = tuple[np.ndarray, dict, str]


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """The reader for one TIFF file, None for anything else (npe2's ``get_reader``)."""
    if isinstance(path, list) or not os.fspath(path).lower().endswith(TIFF_SUFFIXES):
        return None
    return read_tiff


def read_tiff(path: str | os.PathLike) -> list[LayerData]:
    """The layers of a TIFF: one per channel of a hyperstack, one otherwise.

    Parameters
    ----------
    path : str or path-like
        An ImageJ, OME or plain TIFF: grey, RGB(A), a stack or a hyperstack.

    Returns
    -------
    list of (data, metadata, 'image')
        napari layer data; a hyperstack's channels as ``channel_axis``, its
        spatial axes scaled in micrometres where the file records a sample
        size, its time axis in frames.

    Raises
    ------
    ValueError
        If the file cannot be read (:func:`napari_deblur._io.read_image`).
    """
    image = read_image(path)
    name = re.sub(r"(\.ome)?\.tiff?$", "", Path(path).name, flags=re.IGNORECASE)
    meta: dict = {"name": name}
    if image.channel_axis == -1:
        data = image.data
        if image.alpha is not None:
            data = np.concatenate([data, image.alpha[..., None]], axis=-1)
        return [(data, meta | {"rgb": True}, "image")]
    data = image.data
    axes = image.axes or ("TZYX"[-data.ndim :] if data.ndim <= 4 else None)
    if axes is None:
        return [(data, meta, "image")]
    if image.channel_axis is not None:
        channels = data.shape[image.channel_axis]
        meta = {
            "name": [f"{name} C{c}" for c in range(channels)],
            "channel_axis": image.channel_axis,
        }
        axes = axes.replace("C", "")
    meta["axis_labels"] = tuple(a.lower() for a in axes)
    if image.spacing is not None and len(image.spacing) == len(axes.replace("T", "")):
        spatial = iter(image.spacing)
        meta["scale"] = tuple(1.0 if a == "T" else next(spatial) for a in axes)
        meta["units"] = tuple("pixel" if a == "T" else "µm" for a in axes)
    return [(data, meta, "image")]


def write_tiff(path: str, data, attributes: dict) -> list[str]:
    """Write an image layer to a TIFF with its sample size (npe2's single-layer writer).

    Parameters
    ----------
    path : str
        The file, ``.tif`` or ``.tiff`` (``.ome.tif`` for OME metadata).
    data : array_like
        The layer's pixels (colour last for an RGB(A) layer).
    attributes : dict
        The layer's attributes: its scale in its units (lengths are
        recorded in micrometres, a scale in pixels not at all), its axis
        labels (a first axis ``'t'`` is the time axis) and ``rgb``.

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    ValueError
        If the layer cannot be written as a TIFF.
    """
    data = np.asarray(data)
    if attributes.get("rgb"):
        colour, alpha = (data[..., :3], data[..., 3]) if data.shape[-1] == 4 else (data, None)
        write_image(path, ImageFile(colour, -1, alpha), overwrite=True)
        return [path]
    labels = tuple(str(a).lower() for a in attributes.get("axis_labels") or ())
    series = len(labels) == data.ndim and data.ndim > 2 and labels[0] == "t"
    scale = np.asarray(attributes.get("scale", np.ones(data.ndim)), float)[series:]
    units = list(attributes.get("units") or ["pixel"] * data.ndim)[series:]
    try:
        spacing = tuple(
            float((size * pint.Unit(str(unit))).to("micrometer").magnitude)
            for size, unit in zip(scale, units)
        )
    except (pint.DimensionalityError, pint.UndefinedUnitError):
        spacing = None
    spatial = data.ndim - series
    axes = "T" + "ZYX"[-spatial:] if series and spatial <= 3 else None
    if data.dtype == np.float64:
        # ImageJ reads single precision.
        data = data.astype(np.float32)
    image = ImageFile(data, None, spacing=spacing, axes=axes, time_axis=0 if axes else None)
    write_image(path, image, overwrite=True)
    return [path]

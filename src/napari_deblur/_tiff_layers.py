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
import warnings
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


def _axes(labels, ndim: int) -> str | None:
    """A layer's axes as letters of ``'TZCYX'``, from its labels; ZYX (or YX) for unlabelled ones.

    None for more than three unlabelled axes, or labels that are not
    t, c, z, y, x each at most once.
    """
    letters = "".join(str(label).upper() for label in labels or ())
    if len(letters) == ndim and set(letters) <= set("TCZYX") and len(set(letters)) == ndim:
        return letters
    return "ZYX"[-ndim:] if ndim <= 3 else None


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
        labels (t, c, z, y, x: a hyperstack's time and channels) and ``rgb``.

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
    axes = _axes(attributes.get("axis_labels"), data.ndim)
    if axes is None:
        warnings.warn(
            f"{Path(path).name}: the layer's {data.ndim} axes are not labelled t, c, z, y, x: "
            "saved without its sample size",
            UserWarning,
            stacklevel=2,
        )
    scale = np.asarray(attributes.get("scale", np.ones(data.ndim)), float)
    units = list(attributes.get("units") or ["pixel"] * data.ndim)
    if axes is not None:
        # In ImageJ's order (TZCYX), which ImageJ and its TIFFs hold.
        order = [axes.index(a) for a in "TZCYX" if a in axes]
        data, axes = np.transpose(data, order), "".join(axes[i] for i in order)
        scale, units = scale[order], [units[i] for i in order]
    spatial = [i for i, a in enumerate(axes or "") if a in "ZYX"]
    try:
        spacing = tuple(
            float((scale[i] * pint.Unit(str(units[i]))).to("micrometer").magnitude)
            for i in spatial
        )
    except (pint.DimensionalityError, pint.UndefinedUnitError):
        spacing = None
    if data.dtype == np.float64:
        # ImageJ reads single precision.
        data = data.astype(np.float32)
    hyperstack = axes is not None and any(a in axes for a in "TC")
    image = ImageFile(
        data,
        axes.index("C") if hyperstack and "C" in axes else None,
        spacing=spacing or None,
        axes=axes if hyperstack else None,
        time_axis=axes.index("T") if hyperstack and "T" in axes else None,
    )
    write_image(path, image, overwrite=True)
    return [path]

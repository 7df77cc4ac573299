"""Sample data, made at first use the way a camera or a microscope makes it.

Each sample comes with the sharp scene it was made from (as a hidden layer),
so a result can be compared with the truth.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage
from skimage import data as skdata

from .engine.color import linear_to_srgb, srgb_to_linear
from .engine.operators import Convolution
from .engine.psf import defocus_psf, widefield_psf

#: Voxel size (planes, rows, columns) of the microscopy sample, in micrometres.
VOXEL_SIZE = (0.25, 0.1, 0.1)


def _blur_larger_scene(scene: np.ndarray, psf: np.ndarray, batch_ndim: int = 0) -> np.ndarray:
    """Blur `scene` and keep the part not affected by what lies beyond it."""
    frame = tuple(n - k + 1 for n, k in zip(scene.shape[batch_ndim:], psf.shape[batch_ndim:]))
    operator = Convolution(
        psf, scene.shape[:batch_ndim] + frame, boundary="valid", batch_ndim=batch_ndim
    )
    return operator.apply(scene)


def _camera(
    linear: np.ndarray, rng: np.random.Generator, photons: float, read_noise: float
) -> np.ndarray:
    """Shot and read noise on linear light in [0, 1], then sRGB 8-bit encoding."""
    counts = rng.poisson(np.clip(linear, 0, None) * photons) / photons
    noisy = counts + rng.normal(0, read_noise, linear.shape)
    return np.round(linear_to_srgb(np.clip(noisy, 0, 1)) * 255).astype(np.uint8)


@lru_cache(maxsize=1)
def make_defocused_photo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A defocused colour photo, a photo of a point light, and the sharp photo.

    The astronaut of scikit-image, in linear light, is blurred by a defocus
    disc of radius 5 px; the frame is the centre of the blurred scene. Shot
    noise (1000 photons at full scale) and read noise are added and the
    result is encoded to sRGB 8-bit. The point light is photographed through
    the same disc, off-centre and at a sub-pixel position, on a dim uneven
    background with the same noise.

    Returns
    -------
    blurred : ndarray
        (rows, columns, 3) uint8, sRGB.
    point_light : ndarray
        (72, 72, 3) uint8, sRGB.
    sharp : ndarray
        (rows, columns, 3) uint8, sRGB, the same frame without blur or noise.
    """
    rng = np.random.default_rng(20261127)
    scene = srgb_to_linear(skdata.astronaut().astype(np.float64) / 255)
    scene = np.moveaxis(scene, -1, 0)
    psf = defocus_psf(5.0)
    blurred = _blur_larger_scene(scene, psf[None], batch_ndim=1)
    frame = tuple(slice(k // 2, k // 2 + n) for k, n in zip(psf.shape, blurred.shape[1:]))
    sharp = scene[(slice(None),) + frame]

    size = 72
    offset = np.array([31.3, 40.6])
    spot = np.zeros((size, size))
    spot[: psf.shape[0], : psf.shape[1]] = psf / psf.max() * 0.8
    spot = ndimage.shift(spot, offset - psf.shape[0] // 2, order=3, mode="constant")
    rows, cols = np.mgrid[:size, :size] / size
    background = 0.01 + 0.01 * rows + 0.005 * cols
    light = np.clip(spot, 0, None) + background

    def channels_last(a):
        return np.ascontiguousarray(np.moveaxis(a, 0, -1))

    return (
        channels_last(_camera(blurred, rng, photons=1000, read_noise=0.002)),
        _camera(np.repeat(light[..., None], 3, axis=-1), rng, photons=1000, read_noise=0.002),
        np.round(linear_to_srgb(channels_last(sharp)) * 255).astype(np.uint8),
    )


def _cell(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A cell-like volume: bright membrane, dim nucleus, vesicles and filaments."""
    z, y, x = (np.arange(n, dtype=np.float64)[:, None, None] for n in shape)
    y, x = y.reshape(1, -1, 1), x.reshape(1, 1, -1)
    centre = np.array(shape) / 2
    scaled = (
        ((z - centre[0]) * VOXEL_SIZE[0] / 3.0) ** 2
        + ((y - centre[1]) * VOXEL_SIZE[1] / 6.5) ** 2
        + ((x - centre[2]) * VOXEL_SIZE[2] / 7.5) ** 2
    )
    radius = np.sqrt(scaled)
    volume = 0.6 * np.exp(-(((radius - 1) / 0.04) ** 2))
    nucleus = (
        ((z - centre[0]) * VOXEL_SIZE[0] / 1.8) ** 2
        + ((y - centre[1] - 10) * VOXEL_SIZE[1] / 3.0) ** 2
        + ((x - centre[2] + 8) * VOXEL_SIZE[2] / 3.5) ** 2
    )
    volume += 0.15 * (nucleus < 1)
    for _ in range(40):
        p = rng.uniform(0.2, 0.8, 3) * shape
        d2 = (
            ((z - p[0]) * VOXEL_SIZE[0]) ** 2
            + ((y - p[1]) * VOXEL_SIZE[1]) ** 2
            + ((x - p[2]) * VOXEL_SIZE[2]) ** 2
        )
        volume += rng.uniform(0.5, 1.0) * (d2 < 0.15**2) * (radius < 0.95)
    for _ in range(6):
        start = rng.uniform(0.25, 0.75, 3) * shape
        direction = rng.normal(size=3)
        direction[0] *= 0.2
        direction /= np.linalg.norm(direction)
        for t in np.linspace(0, 60, 600):
            p = np.round(start + t * direction).astype(int)
            if np.all(p >= 0) and np.all(p < shape):
                volume[tuple(p)] += 0.5
    return ndimage.gaussian_filter(volume, 0.5)


@lru_cache(maxsize=1)
def make_widefield_stack() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A widefield fluorescence stack of a cell, a bead stack, and the sharp cell.

    The cell is blurred by the Born-Wolf PSF of a NA 1.0 water objective at
    520 nm, sampled at :data:`VOXEL_SIZE`, as the centre of a larger volume;
    photon counts (400 at the brightest) with a background of 10 and Poisson
    noise, stored as uint16. The bead is a sub-resolution bead of the same
    microscope, off-centre, with 20000 photons.

    Returns
    -------
    blurred, bead, sharp : ndarray
        (planes, rows, columns) arrays: uint16, uint16 and float32.
    """
    rng = np.random.default_rng(7)
    psf = widefield_psf(
        (31, 41, 41), wavelength=0.52, na=1.0, voxel_size=VOXEL_SIZE, refractive_index=1.33
    )
    frame = (32, 128, 128)
    scene = _cell(tuple(n + k - 1 for n, k in zip(frame, psf.shape)), rng)
    blurred = _blur_larger_scene(scene, psf)
    sharp = scene[
        tuple(slice(k - 1 - k // 2, k - 1 - k // 2 + n) for k, n in zip(psf.shape, frame))
    ]
    scale = 400 / blurred.max()
    stack = rng.poisson(blurred * scale + 10).astype(np.uint16)

    bead = np.zeros((48, 64, 64))
    bead[tuple(slice(0, k) for k in psf.shape)] = psf
    bead = ndimage.shift(bead, np.array([21.4, 29.7, 33.2]) - np.array(psf.shape) // 2, order=3)
    bead_stack = rng.poisson(np.clip(bead, 0, None) * 20000 + 10).astype(np.uint16)
    return stack, bead_stack, (sharp * scale).astype(np.float32)


def defocused_photo() -> list[tuple]:
    """npe2 sample: the defocused photo, the point-light photo and the truth."""
    blurred, light, sharp = make_defocused_photo()
    return [
        (sharp, {"name": "sharp photo (truth)", "rgb": True, "visible": False}, "image"),
        (light, {"name": "point light", "rgb": True}, "image"),
        (blurred, {"name": "defocused photo", "rgb": True}, "image"),
    ]


def widefield_stack() -> list[tuple]:
    """npe2 sample: the widefield stack, the bead stack and the truth."""
    blurred, bead, sharp = make_widefield_stack()
    common = {"scale": VOXEL_SIZE, "units": "µm"}
    return [
        (sharp, {"name": "cell (truth)", "visible": False, **common}, "image"),
        (bead, {"name": "bead", "colormap": "magma", **common}, "image"),
        (blurred, {"name": "widefield cell", "colormap": "gray", **common}, "image"),
    ]

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def adjointness_error(op, rng, dtype=np.float64) -> float:
    """Relative gap in the dot test <A x, y> = <x, A^T y> for random x, y."""
    x = rng.standard_normal(op.shape_in).astype(dtype)
    y = rng.standard_normal(op.shape_out).astype(dtype)
    lhs = np.vdot(op.apply(x).ravel(), y.ravel())
    rhs = np.vdot(x.ravel(), op.adjoint(y).ravel())
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


def psnr(truth, estimate, data_range) -> float:
    mse = np.mean((np.asarray(truth, np.float64) - np.asarray(estimate, np.float64)) ** 2)
    return float(10 * np.log10(data_range**2 / mse))


def rms_radius(psf) -> float:
    """Root-mean-square distance of a PSF's light from its centroid, in samples."""
    psf = np.asarray(psf, np.float64) / np.sum(psf)
    grid = np.indices(psf.shape)
    centroid = [np.sum(g * psf) for g in grid]
    return float(np.sqrt(sum(np.sum((g - c) ** 2 * psf) for g, c in zip(grid, centroid))))


def cubes(rng, shape, count, value, margins):
    """A stack of `shape` holding `count` cubes of 3 samples and `value`, placed at random
    at least `margins` (per axis) inside: beads or cell parts in a fluorescence stack."""
    scene = np.zeros(shape)
    for _ in range(count):
        z, y, x = (rng.integers(m, n - m) for m, n in zip(margins, shape))
        scene[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] = value
    return scene


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def shared_data():
    """The shared real-data folder; tests that need it skip when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    return DATA


def varying_defocus(scene: np.ndarray, size: int, near: float, far: float) -> np.ndarray:
    """The central size x size frame of `scene` under defocus whose radius grows from
    `near` at the left edge to `far` at the right: a disc for every quarter pixel of
    radius, mixed linearly across the columns (a continuum, not an interpolated model)."""
    from napari_deblur.engine.operators import Convolution
    from napari_deblur.engine.psf import defocus_psf, resize_psf

    kernel = scene.shape[0] - size + 1
    columns = np.arange(scene.shape[1]) - kernel // 2
    radius = np.clip(near + (far - near) * columns / (size - 1), near, far)
    frame = np.zeros((size, size))
    for r in np.arange(near, far + 0.125, 0.25):
        share = np.clip(1 - np.abs(radius - r) / 0.25, 0, None)
        disc = resize_psf(defocus_psf(r), (kernel, kernel))
        frame += Convolution(disc, (size, size), boundary="valid").apply(scene * share)
    return frame


@pytest.fixture(scope="session")
def varying_scene():
    """A scene blurred by defocus growing from radius 2 to 5 px left to right, a 3 x 3
    grid of point lights photographed the same way, and the sharp frame."""
    from skimage import data, transform

    rng = np.random.default_rng(7)
    size, kernel = 128, 13
    scene = transform.resize(data.camera() / 255.0, (size + kernel - 1,) * 2, order=3)
    blurred = varying_defocus(scene, size, 2.0, 5.0) + rng.normal(0, 0.005, (size, size))
    lights = np.zeros_like(scene)
    for r in (20, 64, 108):
        for c in (20, 64, 108):
            lights[r + kernel // 2, c + kernel // 2] = 1
    photo = varying_defocus(lights, size, 2.0, 5.0)
    photo = photo / photo.max() + rng.normal(0, 1e-3, photo.shape)
    sharp = scene[kernel // 2 : -(kernel // 2), kernel // 2 : -(kernel // 2)]
    return blurred.astype(np.float32), photo.astype(np.float32), sharp

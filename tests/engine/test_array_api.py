"""The engine on arrays of other libraries: array_api_strict and PyTorch (CPU)."""

import numpy as np
import pytest

from napari_deblur import deblur
from napari_deblur._api import deblur_steps
from napari_deblur.engine.operators import BOUNDARIES, Convolution, Gradient
from napari_deblur.engine.psf import gaussian_psf
from napari_deblur.engine.solvers import (
    ADMM,
    FistaTV,
    MaxIterations,
    NesterovGradient,
    RichardsonLucy,
    Wiener,
)
from tests.conftest import adjointness_error


def strict(a):
    xp = pytest.importorskip("array_api_strict")
    return xp.asarray(a)


def torch_cpu(a):
    torch = pytest.importorskip("torch")
    return torch.asarray(a)


LIBRARIES = [strict, torch_cpu]


def host(a):
    return np.from_dlpack(a)


@pytest.fixture
def photons(rng):
    from skimage import data

    scene = data.camera()[100:196, 200:310].astype(np.float64) + 10
    psf = gaussian_psf(1.5)
    blurred = Convolution(psf, scene.shape, boundary="reflect").apply(scene)
    return rng.poisson(blurred).astype(np.float64), psf


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_convolution_computes_in_the_psfs_library(library, boundary, rng):
    psf = gaussian_psf(1.2)[None]
    reference = Convolution(psf, (1, 30, 41), boundary=boundary, batch_ndim=1)
    op = Convolution(library(psf), (1, 30, 41), boundary=boundary, batch_ndim=1)
    x = rng.standard_normal(op.shape_in)
    blurred = op.apply(library(x))
    assert type(blurred) is type(library(x))
    assert np.allclose(host(blurred), reference.apply(x), atol=1e-12)
    assert adjointness_error(_OnHost(op, library), rng) < 1e-12
    assert op.lipschitz() == pytest.approx(reference.lipschitz(), rel=1e-9)


class _OnHost:
    """An operator of another library seen from NumPy, for the dot test."""

    def __init__(self, op, library):
        self.op, self.library = op, library
        self.shape_in, self.shape_out = op.shape_in, op.shape_out

    def apply(self, x):
        return host(self.op.apply(self.library(x)))

    def adjoint(self, y):
        return host(self.op.adjoint(self.library(y)))


@pytest.mark.parametrize("library", LIBRARIES)
def test_gradient_and_its_adjoint(library, rng):
    grad = Gradient((2, 9, 11), batch_ndim=1)
    x = rng.standard_normal(grad.shape_in)
    g = grad.apply(library(x))
    assert np.array_equal(host(g), grad.apply(x))
    assert np.array_equal(host(grad.adjoint(g)), grad.adjoint(grad.apply(x)))


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize(
    "make",
    [
        lambda op: RichardsonLucy(op, accelerate=True, stop=MaxIterations(12)),
        lambda op: RichardsonLucy(op, tv_weight=0.002, accelerate=True, stop=MaxIterations(12)),
        lambda op: NesterovGradient(op, weight=0.01, stop=MaxIterations(12)),
        lambda op: FistaTV(op, weight=2.0, stop=MaxIterations(12)),
        lambda op: Wiener(op, nsr=0.01, stop=MaxIterations(12)),
        lambda op: ADMM(op, weight=2.0, stop=MaxIterations(12)),
        lambda op: ADMM(op, weight=0.5, prior="hyper-laplacian", stop=MaxIterations(12)),
    ],
    ids=[
        "richardson_lucy",
        "rl_tv",
        "landweber",
        "fista_tv",
        "wiener",
        "admm_tv",
        "admm_hyper_laplacian",
    ],
)
def test_solvers_run_unchanged_in_another_library(library, make, photons):
    y, psf = photons
    y = y[None]
    reference = make(Convolution(psf[None], y.shape, boundary="valid", batch_ndim=1)).run(y)
    op = Convolution(library(psf[None]), y.shape, boundary="valid", batch_ndim=1)
    steps = list(make(op).iterate(library(y)))
    estimate = steps[-1].estimate
    assert type(estimate) is type(library(y)) and len(steps) == 12
    # The observed frame (the unobserved border's far corners are round-off).
    k = psf.shape[0] // 2
    frame = (slice(None), slice(k, -k), slice(k, -k))
    assert np.abs(host(estimate) - reference)[frame].max() < 1e-9 * reference.max()


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("method", ["auto", "landweber", "fista_tv", "wiener", "admm_tv"])
def test_deblur_returns_the_inputs_library(library, method, photons):
    y, psf = photons
    expected = deblur(y, psf, method=method)
    result = deblur(library(y), psf, method=method)
    assert type(result) is type(library(y))
    assert np.abs(host(result) - expected).max() < 1e-8 * expected.max()


def test_iterations_run_in_the_images_library(photons):
    torch = pytest.importorskip("torch")
    y, psf = photons
    steps = list(deblur_steps(torch.asarray(y), psf))
    assert steps[-1].settings["method"] == "rl_tv"
    assert all(isinstance(step.estimate, torch.Tensor) for step in steps)
    image = steps[-1].image
    assert isinstance(image, np.ndarray) and image.shape == y.shape


@pytest.mark.parametrize("method", ["admm_tv", "rl_tv"])
def test_clipped_and_bad_pixels_on_another_library(method, photons):
    y, psf = photons
    y = y.copy()
    y[40:43, 50:53] = 4095  # a clipped light
    bad = np.zeros(y.shape, bool)
    bad[10, 20:25] = True
    options = {"method": method, "saturation": 4095, "bad_pixels": bad}
    expected = deblur(y, psf, **options)
    result = deblur(torch_cpu(y), psf, **options)
    assert np.abs(host(result) - expected).max() < 1e-8 * expected.max()

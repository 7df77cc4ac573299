import numpy as np
import pytest
from scipy import ndimage, signal

from napari_deblur.engine.operators import (
    BOUNDARIES,
    Convolution,
    Gradient,
    VaryingConvolution,
    gradient_spectrum,
    interpolation_weights,
)
from napari_deblur.engine.psf import psf_to_otf
from tests.conftest import adjointness_error

CASES = [
    ((20, 17), (5, 4), 0),
    ((9, 10, 11), (3, 4, 5), 0),
    ((3, 16, 15), (1, 3, 2), 1),
    ((3, 16, 15), (3, 5, 5), 1),
    ((12, 13), (12, 13), 0),
]


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("method", ["fft", "direct"])
@pytest.mark.parametrize(("shape", "kernel", "batch_ndim"), CASES)
def test_convolution_dot_test(shape, kernel, batch_ndim, boundary, method, rng):
    op = Convolution(
        rng.random(kernel), shape, boundary=boundary, batch_ndim=batch_ndim, method=method
    )
    assert adjointness_error(op, rng) < 1e-10


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("method", ["fft", "direct"])
def test_masked_convolution_dot_test_and_silence(boundary, method, rng):
    shape = (3, 16, 15)
    mask = rng.random(shape) > 0.3
    op = Convolution(
        rng.random((1, 5, 4)), shape, boundary=boundary, batch_ndim=1, method=method, mask=mask
    )
    assert adjointness_error(op, rng) < 1e-10
    assert op.observed_count == np.count_nonzero(mask)
    # The model says nothing about masked samples, and ignores what they hold.
    assert np.all(op.apply(rng.random(op.shape_in))[~mask] == 0)
    y = rng.random(shape)
    noisy = y.copy()
    noisy[~mask] = 1e6
    np.testing.assert_array_equal(op.adjoint(noisy), op.adjoint(y))


def test_mask_must_fit_the_image():
    with pytest.raises(ValueError, match="mask"):
        Convolution(np.ones((3, 3)), (8, 8), mask=np.ones((7, 8), bool))


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_fft_and_direct_agree(boundary, rng):
    psf = rng.random((3, 4))
    fft = Convolution(psf, (20, 17), boundary=boundary, method="fft")
    direct = Convolution(psf, (20, 17), boundary=boundary, method="direct")
    x = rng.random(fft.shape_in)
    np.testing.assert_allclose(fft.apply(x), direct.apply(x), atol=1e-12)
    y = rng.random(fft.shape_out)
    np.testing.assert_allclose(fft.adjoint(y), direct.adjoint(y), atol=1e-12)


@pytest.mark.parametrize(
    ("boundary", "ndimage_mode"),
    [
        ("periodic", "wrap"),
        ("symmetric", "reflect"),
        ("reflect", "mirror"),
        ("edge", "nearest"),
        ("zero", "constant"),
    ],
)
@pytest.mark.parametrize("size", [5, 6])
def test_boundary_models_match_scipy(boundary, ndimage_mode, size, rng):
    psf = rng.random((size, size))
    x = rng.random((20, 17))
    op = Convolution(psf, x.shape, boundary=boundary, method="fft")
    # ndimage centres a kernel of size k at k // 2, our convention too.
    np.testing.assert_allclose(
        op.apply(x), ndimage.convolve(x, psf, mode=ndimage_mode), atol=1e-12
    )


def test_valid_is_the_centre_of_the_larger_scene(rng):
    psf = rng.random((5, 6))
    op = Convolution(psf, (20, 17), boundary="valid")
    assert op.shape_in == (24, 22)
    scene = rng.random(op.shape_in)
    full = ndimage.convolve(scene, psf, mode="constant")
    # y[j] = full[j + k - 1 - k // 2]: an offset of 2 for both sizes.
    np.testing.assert_allclose(op.apply(scene), full[2:22, 2:19], atol=1e-12)


def test_centred_delta_is_identity(rng):
    for size in (4, 5):
        psf = np.zeros((size, size))
        psf[size // 2, size // 2] = 1
        x = rng.random((16, 16))
        for boundary in ("periodic", "symmetric"):
            np.testing.assert_allclose(
                Convolution(psf, x.shape, boundary=boundary).apply(x), x, atol=1e-12
            )


def test_float32_stays_float32(rng):
    op = Convolution(rng.random((5, 5)).astype(np.float32), (32, 32), boundary="valid")
    x = rng.random(op.shape_in).astype(np.float32)
    assert op.apply(x).dtype == np.float32
    assert op.adjoint(op.apply(x)).dtype == np.float32
    assert op.otf.dtype == np.complex64
    assert adjointness_error(op, rng, np.float32) < 1e-5


def test_fft_grid_is_fast_and_large_enough():
    op = Convolution(np.ones((15, 15)), (2048, 2048), boundary="valid")
    assert all(2048 + 14 <= f <= 2100 for f in op.fft_shape)


def test_tiny_psf_goes_direct():
    assert Convolution(np.ones((1, 3)), (64, 64)).direct
    assert not Convolution(np.ones((5, 5)), (64, 64)).direct


def test_rejects_psf_larger_than_image():
    with pytest.raises(ValueError, match="larger than the image"):
        Convolution(np.ones((9, 9)), (8, 20))


def test_rejects_dimensionality_mismatch():
    with pytest.raises(ValueError, match="one axis per image axis"):
        Convolution(np.ones((3, 3)), (8, 8, 8))


def test_rejects_unknown_boundary():
    with pytest.raises(ValueError, match="boundary"):
        Convolution(np.ones((3, 3)), (8, 8), boundary="mirror")


def test_rejects_wrong_input_shape():
    op = Convolution(np.ones((3, 3)), (8, 8), boundary="valid")
    with pytest.raises(ValueError, match="shape"):
        op.apply(np.zeros((8, 8)))


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize(("shape", "batch_ndim"), [((7, 8), 0), ((3, 5, 6, 4), 1), ((1, 5), 0)])
def test_gradient_dot_test(shape, batch_ndim, periodic, rng):
    grad = Gradient(shape, batch_ndim=batch_ndim, periodic=periodic)
    assert adjointness_error(grad, rng) < 1e-12


def test_periodic_gradient_power_is_the_gradient_spectrum(rng):
    x = rng.standard_normal((6, 10))
    g = Gradient(x.shape, periodic=True).apply(x)
    power = sum(np.abs(np.fft.rfft2(component)) ** 2 for component in g)
    expected = gradient_spectrum(x.shape, float) * np.abs(np.fft.rfft2(x)) ** 2
    np.testing.assert_allclose(power, expected, atol=1e-9)


def test_gradient_of_ramp():
    x = np.add.outer(np.arange(4.0), 2 * np.arange(5.0))
    g = Gradient(x.shape).apply(x)
    np.testing.assert_array_equal(g[0, :-1], 1)
    np.testing.assert_array_equal(g[1, :, :-1], 2)
    np.testing.assert_array_equal(g[0, -1], 0)


def varying_psfs(rng, count, kernel=(7, 7), channels=()):
    return rng.random((count, *channels, *kernel))


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("batch_ndim", [0, 1])
def test_varying_convolution_dot_test(boundary, batch_ndim, rng):
    shape = (3, 30, 28)[1 - batch_ndim :]
    channels = (3,) if batch_ndim else ()
    positions = [(5, 5), (5, 22), (25, 5), (25, 22), (15, 14)]
    op = VaryingConvolution(
        varying_psfs(rng, 5, channels=channels),
        positions,
        shape,
        boundary=boundary,
        batch_ndim=batch_ndim,
        mask=rng.random(shape[batch_ndim:]) > 0.2,
    )
    assert adjointness_error(op, rng) < 1e-10


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_one_psf_everywhere_is_a_convolution(boundary, rng):
    psf = rng.random((5, 7))
    positions = [(3, 3), (3, 30), (20, 16)]
    op = VaryingConvolution(np.stack([psf] * 3), positions, (24, 33), boundary=boundary)
    plain = Convolution(psf, (24, 33), boundary=boundary)
    x = rng.random(op.shape_in)
    np.testing.assert_allclose(op.apply(x), plain.apply(x), atol=1e-12)


def test_a_point_at_a_psfs_position_is_blurred_by_that_psf(rng):
    psfs = varying_psfs(rng, 4)
    positions = np.array([(10, 10), (10, 40), (40, 10), (40, 40)])
    op = VaryingConvolution(psfs, positions, (50, 50), boundary="zero")
    for psf, (r, c) in zip(psfs, positions):
        point = np.zeros((50, 50))
        point[r, c] = 1
        np.testing.assert_allclose(op.apply(point)[r - 3 : r + 4, c - 3 : c + 4], psf, atol=1e-12)
    # Midway between two PSFs, the blur is their mean.
    point = np.zeros((50, 50))
    point[10, 25] = 1
    np.testing.assert_allclose(op.apply(point)[7:14, 22:29], (psfs[0] + psfs[1]) / 2, atol=1e-12)


@pytest.mark.parametrize(
    "positions",
    [
        [(2.0, 3.0), (30.5, 4.0), (12.0, 40.0), (33.0, 37.0), (20.0, 20.0)],
        [(5.0, 5.0), (15.0, 15.0), (30.0, 30.0)],
    ],
    ids=["scattered", "on a line"],
)
def test_interpolation_weights_interpolate_and_sum_to_one(positions):
    weights = interpolation_weights(positions, (36, 44))
    np.testing.assert_allclose(weights.sum(axis=0), 1, atol=1e-12)
    assert weights.min() >= -1e-12
    for k, (r, c) in enumerate(positions):
        if r == int(r) and c == int(c):
            np.testing.assert_allclose(
                weights[:, int(r), int(c)], np.eye(len(positions))[k], atol=1e-12
            )


def test_interpolation_weights_of_a_grid_measured_off_it_interpolate_positions(rng):
    # Lights photographed on a grid are measured a little off it: the
    # weights must still interpolate between neighbours (reproducing the
    # position inside the grid, the nearest point of the grid beyond it),
    # not along slivers between near-collinear lights nor in a frame rotated
    # by the grid's isotropic spread.
    lines = (8.0, 30.0, 52.0)
    positions = np.array([(r, c) for r in lines for c in lines])
    positions += rng.uniform(-0.03, 0.03, positions.shape)
    weights = interpolation_weights(positions, (60, 60))
    interpolated = np.tensordot(positions.T, weights, axes=1)
    expected = np.clip(np.indices((60, 60)), 8, 52)
    # Within a sample: the grid's edge is not on a sample (11 off before).
    np.testing.assert_allclose(interpolated, expected, atol=1.0)


def test_varying_lipschitz_bounds_the_norm(rng):
    op = VaryingConvolution(
        varying_psfs(rng, 3), [(4, 4), (4, 25), (20, 14)], (24, 30), boundary="valid"
    )
    x = rng.random(op.shape_in)
    for _ in range(50):
        x = op.adjoint(op.apply(x))
        x /= np.linalg.norm(x)
    norm = np.linalg.norm(op.adjoint(op.apply(x)))
    assert norm <= op.lipschitz() <= 2 * norm


def test_varying_convolution_rejects_mismatched_positions(rng):
    with pytest.raises(ValueError, match="positions"):
        VaryingConvolution(varying_psfs(rng, 3), [(1, 1), (2, 2)], (20, 20))


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_valid_model_holds_a_psf_longer_than_the_image(rng, method):
    # A thin stack under a deeper PSF: the unknown scene spans n + k - 1
    # planes, and the operator is the adjoint pair and the plain sum it was.
    psf = rng.random((9, 3, 3))
    op = Convolution(psf, (4, 12, 12), boundary="valid", method=method)
    assert op.shape_in == (12, 14, 14)
    assert adjointness_error(op, rng) < 1e-12
    x = rng.random(op.shape_in)
    np.testing.assert_allclose(op.apply(x), signal.convolve(x, psf, mode="valid"), atol=1e-12)


def test_otf_of_a_psf_longer_than_the_grid_wraps_it_round(rng):
    # Circular convolution with a kernel longer than the grid adds up its
    # samples one grid apart (it was refused).
    psf = rng.random((7, 3))
    x = rng.random((4, 6))
    wrapped = np.fft.irfft2(np.fft.rfft2(x) * psf_to_otf(psf, x.shape), s=x.shape)
    expected = np.zeros_like(x)
    for (i, j), value in np.ndenumerate(psf):
        expected += value * np.roll(x, (i - 3, j - 1), axis=(0, 1))
    np.testing.assert_allclose(wrapped, expected, atol=1e-12)

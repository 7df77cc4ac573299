import numpy as np
import pytest

from napari_deblur.engine import backend


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "edge", "wrap"])
@pytest.mark.parametrize("widths", [[(2, 3)], [(0, 7)], [(11, 4)], [(3, 0), (5, 9)]])
def test_pad_matches_numpy(mode, widths, rng):
    x = rng.standard_normal((6,) * len(widths))
    np.testing.assert_array_equal(backend.pad(x, widths, mode), np.pad(x, widths, mode=mode))


def test_zero_pad_and_batch_axes(rng):
    x = rng.standard_normal((3, 5, 4))
    padded = backend.pad(x, [(1, 2), (0, 3)], "zero")
    np.testing.assert_array_equal(padded, np.pad(x, [(0, 0), (1, 2), (0, 3)]))


@pytest.mark.parametrize("mode", backend.PAD_MODES)
def test_pad_adjoint_dot_test(mode, rng):
    widths = [(4, 9), (7, 2)]
    x = rng.standard_normal((2, 5, 6))
    z = rng.standard_normal((2, 5 + 13, 6 + 9))
    lhs = np.vdot(backend.pad(x, widths, mode).ravel(), z.ravel())
    rhs = np.vdot(x.ravel(), backend.pad_adjoint(z, widths, mode).ravel())
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)


def test_pad_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        backend.pad(np.zeros(3), [(1, 1)], "mirror")


def test_fast_shape_is_11_smooth_and_not_smaller():
    for n, fast in zip((97, 1000, 2062), backend.fast_shape((97, 1000, 2062))):
        assert n <= fast < 1.05 * n
        m = fast
        for p in (2, 3, 5, 7, 11):
            while m % p == 0:
                m //= p
        assert m == 1


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.uint8, np.float32),
        (np.uint16, np.float32),
        (np.int16, np.float32),
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.int32, np.float64),
        (np.float64, np.float64),
        (bool, np.float64),
    ],
)
def test_float_dtype(dtype, expected):
    assert backend.float_dtype(dtype) == expected


def test_float_dtype_rejects_complex():
    with pytest.raises(TypeError, match="real numbers, got .*complex64"):
        backend.float_dtype(np.complex64)


def test_crop_and_embed_are_adjoint(rng):
    x = rng.standard_normal((3, 4))
    z = rng.standard_normal((7, 9))
    lhs = np.vdot(backend.embed(x, (2, 5), (7, 9)).ravel(), z.ravel())
    rhs = np.vdot(x.ravel(), backend.crop(z, (2, 5), (3, 4)).ravel())
    assert lhs == pytest.approx(rhs)

import numpy as np
import pytest
from scipy import ndimage

from napari_deblur.engine.psf import (
    airy_psf,
    center_psf,
    centroid,
    confocal_psf,
    defocus_psf,
    gaussian_psf,
    motion_psf,
    normalize_psf,
    psf_to_otf,
    resample_psf,
    resize_psf,
    spread,
    widefield_psf,
)


def relative_error(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_normalize_to_unit_sum():
    assert normalize_psf(np.arange(9.0).reshape(3, 3)).sum() == pytest.approx(1)


@pytest.mark.parametrize(
    "bad", [np.zeros((3, 3)), -np.ones((3, 3)), np.array([[np.nan, 1.0]]), np.zeros((0, 3))]
)
def test_normalize_rejects_bad_psf(bad):
    with pytest.raises(ValueError, match="psf"):
        normalize_psf(bad)


@pytest.mark.parametrize("size", [4, 5, 8, 9])
def test_delta_at_centre_has_flat_real_otf(size):
    psf = np.zeros((size, size + 1))
    psf[size // 2, (size + 1) // 2] = 1
    otf = psf_to_otf(psf, (16, 20))
    np.testing.assert_allclose(otf, 1, atol=1e-12)


def test_symmetric_psf_has_real_otf():
    otf = psf_to_otf(gaussian_psf(1.7, shape=(9, 9)), (32, 30))
    assert np.abs(otf.imag).max() < 1e-12


def test_otf_keeps_leading_channels():
    psf = np.stack([gaussian_psf(1.0, shape=(7, 7)), gaussian_psf(2.0, shape=(7, 7))])
    assert psf_to_otf(psf, (16, 16)).shape == (2, 16, 9)


@pytest.mark.parametrize("shape", [(15, 15), (16, 14)])
def test_center_moves_centroid_to_centre_sample(shape):
    psf = np.zeros(shape)
    psf[:7, :7] = gaussian_psf(1.2, shape=(7, 7))
    psf = ndimage.shift(psf, (2.3, 3.6), order=3)
    centred = center_psf(np.clip(psf, 0, None))
    np.testing.assert_allclose(centroid(centred), [n // 2 for n in shape], atol=0.02)
    assert centred.sum() == pytest.approx(1)
    assert centred.min() >= 0


def test_resize_psf_keeps_centre():
    psf = gaussian_psf(1.0, shape=(7, 7))
    bigger = resize_psf(psf, (10, 11))
    assert bigger.shape == (10, 11)
    np.testing.assert_allclose(centroid(bigger), [5, 5], atol=1e-9)
    np.testing.assert_allclose(resize_psf(bigger, (7, 7)), psf)


@pytest.mark.parametrize("sigma", [0.8, 2.0, (1.0, 3.0)])
def test_gaussian_psf_second_moment(sigma):
    psf = gaussian_psf(sigma, shape=(41, 41))
    sigma = np.broadcast_to(sigma, 2)
    for axis in range(2):
        coords = np.arange(41) - 20
        profile = psf.sum(axis=1 - axis)
        # Pixel integration adds the variance of a unit box, 1/12.
        assert np.sum(profile * coords**2) == pytest.approx(sigma[axis] ** 2 + 1 / 12, rel=1e-3)


def test_gaussian_psf_3d():
    assert gaussian_psf(1.0, ndim=3).shape == (9, 9, 9)


@pytest.mark.parametrize("radius", [3.0, 6.5, 10.0])
def test_defocus_disc_area(radius):
    psf = defocus_psf(radius)
    # Uniform inside: a fully covered pixel holds 1 / area of the light.
    assert 1 / psf.max() == pytest.approx(np.pi * radius**2, rel=0.03)
    assert np.ptp(psf[psf >= psf.max() * 0.999]) == 0
    np.testing.assert_allclose(centroid(psf), [n // 2 for n in psf.shape], atol=1e-9)


@pytest.mark.parametrize(
    "model",
    [
        lambda offset: gaussian_psf(1.5, offset=offset),
        lambda offset: defocus_psf(4.0, offset=offset),
        lambda offset: motion_psf(9, 20, offset=offset),
        lambda offset: airy_psf(0.5, 0.8, 0.1, offset=offset),
    ],
)
def test_models_render_between_pixels(model):
    centred = model(None)
    moved = model((0.3, -0.4))
    centre = np.array([n // 2 for n in moved.shape])
    np.testing.assert_allclose(centroid(moved) - centre, [0.3, -0.4], atol=0.02)
    assert centroid(centred) - np.array([n // 2 for n in centred.shape]) == pytest.approx(
        0, abs=1e-6
    )


def test_defocus_ball_3d():
    assert defocus_psf(3.0, ndim=3).ndim == 3


def test_ball_on_anisotropic_voxels_is_an_ellipsoid():
    # A 1 um ball on 0.25 x 0.1 x 0.1 um voxels: radii 2 x 5 x 5 samples.
    ball = defocus_psf((2.0, 5.0, 5.0), edge=0.05)
    assert [np.ptp(i) + 1 for i in np.nonzero(ball)] == [5, 11, 11]
    assert 1 / ball.max() == pytest.approx(4 / 3 * np.pi * 2 * 5 * 5, rel=0.05)
    centre = ball[ball.shape[0] // 2] > 0.5 * ball.max()
    assert centre[ball.shape[1] // 2].sum() == 9
    with pytest.raises(ValueError, match="radius"):
        defocus_psf((2.0, -1.0))


@pytest.mark.parametrize(("length", "angle"), [(10, 0), (15, 90), (12, 30), (20, 135)])
def test_motion_psf_extent_and_direction(length, angle):
    psf = motion_psf(length, angle)
    rows, cols = np.nonzero(psf > psf.max() * 0.05)
    centre = np.array(psf.shape) // 2
    extent = np.hypot(rows - centre[0], cols - centre[1]).max() * 2
    assert extent == pytest.approx(length, abs=2)
    # Principal direction of the path (rows point down, angles go counter-clockwise).
    r, c = np.indices(psf.shape)
    cov = np.cov(
        np.stack([(-(r - centre[0])).ravel(), (c - centre[1]).ravel()]), aweights=psf.ravel()
    )
    direction = np.linalg.eigh(cov)[1][:, -1]
    measured = np.rad2deg(np.arctan2(direction[0], direction[1])) % 180
    assert min(abs(measured - angle % 180), 180 - abs(measured - angle % 180)) < 3


def test_airy_first_dark_ring():
    psf = airy_psf(0.5, 0.5, 0.05, supersample=1)
    centre = psf.shape[0] // 2
    profile = psf[centre, centre:]
    first_min = np.argmax(np.diff(profile) > 0)
    # First zero at 0.61 wavelength / NA = 0.61 um = 12.2 pixels.
    assert first_min == pytest.approx(12.2, abs=1)


def test_widefield_psf_is_symmetric_and_elongated():
    psf = widefield_psf(
        (21, 31, 31), wavelength=0.5, na=1.0, voxel_size=(0.2, 0.05, 0.05), refractive_index=1.33
    )
    assert psf.sum() == pytest.approx(1)
    np.testing.assert_allclose(psf, psf[::-1], rtol=1e-6, atol=1e-12)
    peak = np.unravel_index(psf.argmax(), psf.shape)
    assert peak == (10, 15, 15)
    axial = psf[:, 15, 15] / psf.max()
    lateral = psf[10, 15, :] / psf.max()
    axial_fwhm = 0.2 * (axial > 0.5).sum()
    lateral_fwhm = 0.05 * (lateral > 0.5).sum()
    assert axial_fwhm > 2.5 * lateral_fwhm


def half_maximum_width(profile: np.ndarray, step: float) -> float:
    """Full width at half maximum of a single-peaked profile, interpolated."""
    p = profile / profile.max()
    above = np.flatnonzero(p > 0.5)
    lo, hi = above[0], above[-1]
    left = lo - (p[lo] - 0.5) / (p[lo] - p[lo - 1])
    right = hi + (p[hi] - 0.5) / (p[hi] - p[hi + 1])
    return (right - left) * step


@pytest.mark.parametrize(
    ("wavelength", "na", "index"), [(0.5, 1.0, 1.33), (0.52, 1.4, 1.518), (0.6, 0.5, 1.0)]
)
def test_widefield_psf_has_the_textbook_widths(wavelength, na, index):
    # In focus 0.51 wavelength / NA across; along the axis the non-paraxial
    # 0.88 wavelength / (n - sqrt(n^2 - NA^2)) (the paraxial 1.77 n
    # wavelength / NA^2 is 14-45% longer for these).
    psf = widefield_psf(
        (81, 41, 41),
        wavelength=wavelength,
        na=na,
        voxel_size=(0.08, 0.03, 0.03),
        refractive_index=index,
    )
    lateral = half_maximum_width(psf[40, 20, :], 0.03)
    axial = half_maximum_width(psf[:, 20, 20], 0.08)
    assert lateral == pytest.approx(0.51 * wavelength / na, rel=0.05)
    assert axial == pytest.approx(
        0.88 * wavelength / (index - np.sqrt(index**2 - na**2)), rel=0.08
    )


def test_gibson_lanni_mismatch_shifts_lengthens_and_breaks_symmetry():
    # An oil objective (NA 1.4, n 1.518) imaging a bead 10 um deep in water.
    options = {"wavelength": 0.52, "na": 1.4, "voxel_size": (0.1, 0.065, 0.065)}
    matched = widefield_psf((61, 25, 25), **options)
    deep = widefield_psf((61, 25, 25), **options, sample_index=1.33, depth=10.0)
    np.testing.assert_allclose(
        widefield_psf((61, 25, 25), **options, sample_index=1.518, depth=10.0),
        matched,
        atol=1e-12,
    )

    def axial(psf):
        profile = psf[:, 12, 12] / psf[:, 12, 12].max()
        return profile, 0.1 * (profile > 0.5).sum()

    _, fwhm_matched = axial(matched)
    profile_deep, fwhm_deep = axial(deep)
    assert fwhm_deep > 1.5 * fwhm_matched
    # The focus moves towards the objective (the stage overestimates depth in water).
    assert np.argmax(profile_deep) != 30
    assert np.abs(profile_deep - profile_deep[::-1]).max() > 0.2
    # Deeper, the focus leaves the planes asked for: said, not silent.
    with pytest.warns(UserWarning, match="add planes"):
        widefield_psf((21, 25, 25), **options, sample_index=1.33, depth=20.0)


def test_confocal_psf_is_narrower_than_widefield():
    options = {"na": 1.2, "voxel_size": (0.1, 0.04, 0.04), "refractive_index": 1.33}
    wide = widefield_psf((41, 41, 41), wavelength=0.52, **options)
    confocal = confocal_psf((41, 41, 41), excitation=0.488, emission=0.52, **options)
    assert confocal.sum() == pytest.approx(1)

    def lateral_fwhm(psf):
        profile = psf[20, 20, :] / psf[20, 20, :].max()
        return (profile > 0.5).sum()

    assert lateral_fwhm(confocal) < 0.85 * lateral_fwhm(wide)


def test_resample_psf_to_coarser_and_finer_voxels():
    # A Gaussian of sigma 2 on a 0.1 grid is one of sigma 0.8 on a 0.25 grid.
    fine = gaussian_psf((2.0, 2.0, 2.0), shape=(25, 25, 25))
    coarse = resample_psf(fine, (0.1, 0.1, 0.1), (0.25, 0.1, 0.1))
    assert all(n % 2 == 1 for n in coarse.shape) and coarse.shape[1:] == (25, 25)
    assert abs(coarse.sum() - 1) < 1e-6
    np.testing.assert_allclose(centroid(coarse), [n // 2 for n in coarse.shape], atol=1e-3)
    z = np.arange(coarse.shape[0]) - coarse.shape[0] // 2
    profile = coarse.sum(axis=(1, 2))
    sigma = np.sqrt(np.sum(profile * z**2))
    # The integration over the new voxel adds a little width.
    assert 0.8 < sigma < 0.9
    same = resample_psf(fine, 0.1, 0.1)
    np.testing.assert_allclose(same, fine / fine.sum(), atol=1e-6)


def test_a_psf_within_one_new_sample_becomes_one_sample():
    # Voxels 1e9 times larger (a unit mistaken): 4e9 points were averaged.
    np.testing.assert_array_equal(resample_psf(gaussian_psf(1.5), 1.0, 1e9), [[1.0]])


@pytest.mark.parametrize("ratio", [2, 4, 6])
def test_resampled_psf_is_the_psf_of_the_coarser_pixels(ratio):
    # An Airy pattern on 0.065 um pixels, binned to `ratio` times coarser,
    # against the pattern integrated over the coarse pixels directly. An odd
    # box of 2 * (ratio // 2) + 1 old samples was averaged over: 1.5 new
    # pixels at ratio 2 (FWHM 7% wide, peak 12% low), 5 old ones at 6.
    fine = airy_psf(0.5, 1.3, 0.065, shape=(121, 121), supersample=9)
    binned = resample_psf(fine, 0.065, 0.065 * ratio)
    direct = airy_psf(0.5, 1.3, 0.065 * ratio, shape=binned.shape, supersample=15)
    direct /= direct.sum()
    assert abs(binned.max() / direct.max() - 1) < 0.05
    assert np.abs(binned - direct).sum() < 0.04


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: gaussian_psf(np.nan), "sigma"),
        (lambda: defocus_psf(np.inf), "radius"),
        (lambda: defocus_psf(2.0, supersample=0), "supersample"),
        (lambda: motion_psf(np.inf, 0), "length"),
        (lambda: motion_psf(5, np.nan), "angle"),
        (lambda: airy_psf(np.inf, 1.0, 0.1), "wavelength"),
        (lambda: widefield_psf((9, 9, 9), wavelength=0, na=1, voxel_size=(1, 1, 1)), "wavelength"),
        (lambda: widefield_psf((9, 9, 9), wavelength=0.5, na=1, voxel_size=(1, 1)), "voxel_size"),
        # Both named na, whose value was fine.
        (
            lambda: widefield_psf(
                (9, 9, 9), wavelength=0.5, na=1.2, voxel_size=(1, 1, 1), refractive_index=np.nan
            ),
            "refractive_index must be",
        ),
        (
            lambda: confocal_psf(
                (9, 9, 9), excitation=0, emission=0.5, na=1.2, voxel_size=(1, 1, 1)
            ),
            "excitation",
        ),
        (lambda: widefield_psf((0, 9, 9), wavelength=0.5, na=1, voxel_size=(1, 1, 1)), "shape"),
        (lambda: resample_psf(gaussian_psf(1.5), 1.0, np.inf), "spacings"),
    ],
)
def test_models_refuse_sizes_that_make_no_psf(make, message):
    # NaN and infinite sizes reached int() ("cannot convert float NaN to
    # integer"), a zero wavelength or voxel divided by zero.
    with pytest.raises(ValueError, match=message):
        make()


def test_a_float32_psf_whose_sum_overflows_float32_is_normalised():
    # Its sum, taken to float32, was infinite: the PSF came back all zeros.
    psf = normalize_psf(np.full((3, 3), 3e38, np.float32))
    assert psf.dtype == np.float32 and np.allclose(psf, 1 / 9)


def test_spread_is_the_standard_deviation_of_the_light():
    # Integrated over its pixels: a pixel's own variance, 1 / 12, is added.
    sigmas = np.sqrt(np.array([2.0, 1.0]) ** 2 + 1 / 12)
    np.testing.assert_allclose(spread(gaussian_psf((2.0, 1.0), shape=(21, 11))), sigmas, rtol=1e-3)
    # A disc of radius r: r / 2 along each axis.
    np.testing.assert_allclose(spread(defocus_psf(6.0)), [3.0, 3.0], rtol=0.03)
    np.testing.assert_allclose(spread(motion_psf(10.0, 0.0)), [0.0, 10 / np.sqrt(12)], atol=0.15)

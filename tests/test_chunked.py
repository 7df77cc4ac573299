from dataclasses import replace

import dask
import dask.array as da
import numpy as np
import pytest

from napari_deblur import deblur
from napari_deblur._api import deblur_steps, decisions
from napari_deblur._chunked import overlap
from napari_deblur.engine import memory
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf


@pytest.fixture
def photons(rng):
    """A blurred scene of photon counts (rows and columns of unequal size) and its truth."""
    from skimage import data

    scene = data.camera()[:480:2, :448:2].astype(np.float64) / 255 * 300 + 20
    psf = gaussian_psf(1.0)
    blurred = Convolution(psf, scene.shape, boundary="reflect").apply(scene)
    return rng.poisson(blurred).astype(np.float64), psf, scene


def whole_and_plan(image, psf, **options):
    *_, last = deblur_steps(image, psf, **options)
    return last.image, last.plan


def interior(a, k):
    return a[k:-k, k:-k]


@pytest.mark.parametrize(
    ("method", "tolerance"),
    [
        ("rl_tv", 1e-4),
        ("richardson_lucy", 1e-4),
        ("fista_tv", 1e-4),
        ("landweber", 1e-4),
        # ADMM's every step spans its whole grid (_chunked.REACH).
        ("admm_tv", 1e-3),
    ],
)
def test_chunks_agree_with_the_whole_image_on_its_interior(photons, method, tolerance):
    image, psf, _ = photons
    # At most 60 iterations, so that the margins leave several chunks.
    whole, plan = whole_and_plan(image, psf, method=method, max_iter=60)
    lazy = deblur(da.from_array(image, chunks=(48, 64)), psf, plan=plan)
    assert isinstance(lazy, da.Array) and lazy.dtype == whole.dtype
    assert len(lazy.chunks[0]) > 1 and len(lazy.chunks[1]) > 1
    chunked = lazy.compute()
    k = psf.shape[0]
    difference = np.abs(interior(chunked, k) - interior(whole, k)).max()
    assert difference <= tolerance * np.abs(whole).max()


@pytest.mark.parametrize("method", ["richardson_lucy", "fista_tv"])
def test_chunks_agree_for_a_disc_whose_light_fills_its_box(photons, method, rng):
    # Margins counted in box widths gave a disc, whose light reaches its
    # box's edge, half what its iterations carry: 2e-3 to 2e-2 of the range.
    _, _, scene = photons
    psf = defocus_psf(4.0)
    image = rng.poisson(Convolution(psf, scene.shape, boundary="reflect").apply(scene))
    whole, plan = whole_and_plan(image.astype(np.float64), psf, method=method, max_iter=60)
    chunked = deblur(da.from_array(image.astype(np.float64), chunks=(48, 64)), psf, plan=plan)
    k = psf.shape[0]
    difference = np.abs(interior(chunked.compute(), k) - interior(whole, k)).max()
    assert difference <= 1e-4 * np.abs(whole).max()


def test_chunks_repeat_the_penalties_balanced_round_clipped_lamps(rng):
    from tests.test_api import night_scene

    # Lamps in one corner: the far chunks, with their margins, hold none.
    photo, psf, _, _ = night_scene(rng, size=288)
    whole, plan = whole_and_plan(photo, psf, max_iter=60)
    assert plan.method == "admm_tv" and min(plan.schedule) < 1
    chunked = deblur(da.from_array(photo, chunks=(96, 96)), psf, plan=plan).compute()
    k = psf.shape[0]
    difference = np.abs(interior(chunked, k) - interior(whole, k)).max()
    # Each chunk balanced its own penalty (none without a lamp): 0.020 here.
    assert difference <= 0.015 * np.abs(whole).max()


def test_a_plan_on_8_bit_photos_keeps_the_float_psf_linear(rng):
    # The plan's encoding (the image's: sRGB) was applied to the PSF too: a
    # float PSF was decoded as if gamma-encoded, and chunks and repeats of
    # an 8-bit photo were deblurred with another blur (126 of 255 apart).
    from skimage import data

    scene = data.camera()[:128, :160] / 255.0
    psf = gaussian_psf(2.0)
    blurred = Convolution(psf, scene.shape, boundary="reflect").apply(scene)
    photo = np.round(255 * np.clip(blurred + rng.normal(0, 0.01, blurred.shape), 0, 1))
    photo = photo.astype(np.uint8)
    peak_one = (psf / psf.max()).astype(np.float32)
    whole, plan = whole_and_plan(photo, peak_one, method="landweber")
    repeated = deblur(photo, peak_one, plan=plan)
    assert np.abs(repeated - whole).max() < 1e-3
    chunked = deblur(photo, peak_one, plan=plan, chunks=64)
    k = psf.shape[0]
    assert np.abs(interior(chunked, k) - interior(whole, k)).max() < 0.5


def test_float32_chunks_agree_for_the_fluorescence_default(photons):
    image, psf, _ = photons
    image = image.astype(np.float32)
    whole, plan = whole_and_plan(image, psf)
    assert plan.method == "rl_tv"
    chunked = deblur(image, psf, plan=plan, chunks=48)
    assert isinstance(chunked, np.ndarray) and chunked.dtype == np.float32
    k = psf.shape[0]
    assert np.abs(interior(chunked, k) - interior(whole, k)).max() <= 1e-4 * whole.max()


def test_chunks_take_off_the_cameras_offset_as_the_whole_image(photons, rng):
    image, psf, _ = photons
    image = image + 500 + rng.normal(0, 2.0, image.shape)
    whole, plan = whole_and_plan(image, psf)
    assert plan.method == "rl_tv" and plan.floor[0] < 0
    chunked = deblur(image, psf, plan=plan, chunks=48)
    k = psf.shape[0]
    assert np.abs(interior(chunked, k) - interior(whole, k)).max() <= 1e-4 * whole.max()


def test_a_chunk_reads_only_the_input_chunks_within_its_margin(photons):
    image, psf, _ = photons
    read = set()

    def load(block, block_id=None):
        read.add(block_id)
        return block

    source = da.from_array(image, chunks=16).map_blocks(load, meta=np.empty((0, 0)))
    _, plan = whole_and_plan(image, psf, method="landweber")
    lazy = deblur(source, psf, plan=plan)
    (margin,) = set(overlap(plan.method, plan.psf_shape, plan.psf_spread, plan.iterations))
    assert len(read) <= 1 and read <= {None}
    with dask.config.set(scheduler="synchronous"):
        lazy[:10, :10].compute()
    read.discard(None)
    # The first output chunk (a margin's size at least) and its margin.
    reach = -(-2 * max(margin, 16) // 16)
    assert read and all(r < reach and c < reach for r, c in read)
    assert len(read) < (image.shape[0] // 16) * (image.shape[1] // 16) / 4


def test_without_a_plan_chunks_follow_the_centre_and_deblur(photons):
    image, psf, scene = photons
    result = deblur(da.from_array(image, chunks=50), psf).compute()
    k = psf.shape[0]

    def error(a):
        return np.sqrt(np.mean((interior(a, k) - interior(scene, k)) ** 2))

    assert error(result) < 0.8 * error(image)
    assert error(result) < 1.1 * error(deblur(image, psf))


def test_chunks_keep_channels_together_and_time_points_apart(rng):
    psf = gaussian_psf(1.2)
    frames = rng.poisson(40 + 200 * rng.random((3, 48, 56, 2))).astype(np.float32)
    lazy = da.from_array(frames, chunks=(2, 24, 56, 1))
    *_, last = deblur_steps(frames[1], psf, channel_axis=-1)
    result = deblur(lazy, psf, channel_axis=-1, time_axis=0, plan=last.plan)
    assert result.chunks[0] == (1, 1, 1) and result.chunks[3] == (2,)
    expected = deblur(frames, psf, channel_axis=-1, time_axis=0, plan=last.plan)
    k = psf.shape[0]
    inner = (slice(None), slice(k, -k), slice(k, -k))
    assert np.allclose(
        result.compute()[inner], expected[inner], rtol=0, atol=1e-4 * expected.max()
    )


def test_bad_pixels_travel_with_their_chunks(photons):
    image, psf, _ = photons
    bad = np.zeros(image.shape, bool)
    bad[30:33, 100:104] = True
    image = image.copy()
    image[bad] = 5000
    whole, plan = whole_and_plan(image, psf, bad_pixels=bad, method="landweber")
    chunked = deblur(da.from_array(image, chunks=32), psf, bad_pixels=bad, plan=plan).compute()
    k = psf.shape[0]
    assert np.abs(interior(chunked, k) - interior(whole, k)).max() <= 1e-4 * whole.max()
    assert chunked.max() < 1000


def test_auto_chunks_share_the_memory_among_the_cores(photons, monkeypatch):
    # Dask's threads run a chunk on every core: chunks were sized for two.
    image, psf, _ = photons
    monkeypatch.setattr(memory, "available_bytes", lambda: 40_000_000)
    largest = {}
    for cores in (2, 16):
        monkeypatch.setattr(dask.system, "CPU_COUNT", cores)
        lazy = deblur(da.from_array(image), psf, method="landweber", chunks="auto", max_iter=5)
        largest[cores] = max(lazy.chunks[0]) * max(lazy.chunks[1])
    assert largest[16] < largest[2] / 4


def test_an_image_too_large_for_memory_is_deblurred_in_chunks(photons, monkeypatch):
    image, psf, scene = photons
    whole = deblur(image, psf, method="landweber")
    # The whole image needs about 9 MB with Landweber (20 float64 copies).
    monkeypatch.setattr(memory, "available_bytes", lambda: 4_000_000)
    with pytest.warns(ResourceWarning, match="in chunks"):
        result = deblur(image, psf, method="landweber")
    assert isinstance(result, np.ndarray) and result.shape == image.shape
    k = psf.shape[0]

    def error(a):
        return np.sqrt(np.mean(interior(a - scene, k) ** 2))

    # Its noise and weight are judged on a centre block a quarter of the image.
    assert error(result) < min(0.9 * error(image), 1.15 * error(whole))
    # A method that does not run in chunks says what the memory allows (it
    # said the method could not be chunked, the memory's message advising
    # Wiener, which cannot).
    with pytest.raises(MemoryError, match="chunks='auto'"):
        deblur(image, psf, method="wiener")


def test_a_colour_image_too_large_for_memory_is_deblurred_in_chunks(photons, monkeypatch):
    image, psf, scene = photons
    colour = np.stack([image, image[::-1], image[:, ::-1]], axis=-1)
    truth = np.stack([scene, scene[::-1], scene[:, ::-1]], axis=-1)
    # About 47 MB with ADMM-TV; the chunks and the blocks the decisions are
    # made on were sized for one channel, and planning ran out of memory too.
    monkeypatch.setattr(memory, "available_bytes", lambda: 30_000_000)
    with pytest.warns(ResourceWarning, match="in chunks"):
        result = deblur(colour, psf, method="admm_tv", channel_axis=-1)
    k = psf.shape[0]
    assert result.shape == colour.shape
    assert (
        np.abs(interior(result - truth, k)).mean()
        < 0.9 * np.abs(interior(colour - truth, k)).mean()
    )


def test_chunked_deblurring_refuses_what_it_cannot_repeat(photons):
    image, psf, _ = photons
    lazy = da.from_array(image, chunks=64)
    with pytest.raises(ValueError, match="landweber"):
        deblur(lazy, psf, method="wiener")
    # Its chunks differed from the whole image by up to 30% of the range.
    with pytest.raises(ValueError, match="admm_hyper_laplacian"):
        deblur(lazy, psf, method="admm_hyper_laplacian")
    with pytest.raises(ValueError, match="one measured PSF"):
        deblur(lazy, "auto")
    with pytest.raises(ValueError, match="chunks"):
        deblur(image, psf, chunks="small")
    # Refused once the chunks computed reached the clash (35% of a job).
    series = da.from_array(np.stack([image] * 3), chunks=(1, 64, 64))
    with pytest.raises(ValueError, match="must differ"):
        deblur(series, psf[None], time_axis=0, channel_axis=0)
    with pytest.raises(ValueError, match="channels"):
        _, plan = whole_and_plan(image, psf)
        deblur(np.stack([image, image], -1), psf, channel_axis=-1, plan=plan)


@pytest.mark.parametrize("method", ["auto", "richardson_lucy", "fista_tv"])
def test_the_decisions_are_those_of_the_first_step_without_iterating(photons, method):
    image, psf, _ = photons
    first = next(iter(deblur_steps(image, psf, method=method)))
    decided = decisions(image, psf, method=method)
    assert decided.iterations == 0 and decided.schedule == ()
    assert decided == replace(first.plan, iterations=0, schedule=())


def test_the_margin_grows_with_the_iterations_up_to_their_reach():
    assert overlap("rl_tv", (13, 9), (1.5, 1.0), 1) == (12, 8)
    few, many = overlap("rl_tv", (13,), (1.5,), 10), overlap("rl_tv", (13,), (1.5,), 160)
    assert few[0] < many[0] <= 160 * 12
    assert many[0] < 8 * few[0]


def test_a_zarr_array_comes_back_lazy(photons, tmp_path):
    zarr = pytest.importorskip("zarr")
    image, psf, _ = photons
    store = zarr.create_array(
        tmp_path / "image.zarr", shape=image.shape, chunks=(72, 112), dtype="float64"
    )
    store[:] = image
    whole, plan = whole_and_plan(image, psf, method="rl_tv")
    result = deblur(store, psf, plan=plan)
    # The store's chunks, those a store of them takes (the last row's 24, too
    # few for the margin, are deblurred with their neighbour's).
    assert isinstance(result, da.Array) and result.chunks == ((72, 72, 72, 24), (112, 112))
    k = psf.shape[0]
    assert np.abs(interior(result.compute(), k) - interior(whole, k)).max() <= 1e-4 * whole.max()

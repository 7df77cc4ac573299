"""How well a PSF is recovered from camera-made photos of point lights.

Run: python benchmarks/bench_point_source.py [--quick]

Each photo is made the way a camera makes it: the PSF (defocus disc, Gaussian
or linear motion, each softened by the lens) rendered at sub-pixel
positions in a frame four times its size, a background of 3% of the peak
(flat, or a gradient from 1% to 5%), Poisson photon noise with Gaussian
read noise at a given peak SNR, then sRGB encoding to 8 bits. Printed:
the relative L2 error of the extracted PSF (and, for scale, the error that
moving the noise-free PSF by its known sub-pixel offset alone leaves: no
centring can do better), the error of the centre found, for 1, 2 and 4
sources and for a clipped exposure; then the PSNR of deconvolving a
camera-made blurred photo with the true PSF, the extracted PSF and the
"raw crop" PSF with one fixed method (Richardson-Lucy, 25
iterations, so that only the PSF differs), the question's own method (raw
crop, divide Fourier transforms) and the default deblur; last, four lights
photographed in the dark (no background: the noise of the dark clipped at
the sensor's black level) beside the same on a background of 3%; and a
pair of lights at a growing distance beside two single ones (FWHM 4.7 px).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import machine, psnr
from scipy import ndimage
from skimage import data

from napari_deblur import deblur, psf_from_point_source
from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.point_source import PSFQualityWarning
from napari_deblur.engine.psf import (
    centroid,
    defocus_psf,
    gaussian_psf,
    motion_psf,
    resize_psf,
    shift_subpixel,
)
from napari_deblur.engine.solvers import MaxIterations, RichardsonLucy

LENS_SIGMA = 0.7


def lens(psf: np.ndarray) -> np.ndarray:
    """A little diffraction and aberration: no lens makes a sharper PSF than this."""
    return ndimage.gaussian_filter(psf, LENS_SIGMA)


FAMILIES = {
    "defocus r=3": lambda o: lens(defocus_psf(3.0, offset=o, shape=(11, 11))),
    "defocus r=6": lambda o: lens(defocus_psf(6.0, offset=o, shape=(17, 17))),
    "defocus r=10": lambda o: lens(defocus_psf(10.0, offset=o, shape=(25, 25))),
    "gaussian s=1.5": lambda o: gaussian_psf(1.5, offset=o, shape=(13, 13)),
    "gaussian s=3": lambda o: gaussian_psf(3.0, offset=o, shape=(25, 25)),
    "motion L=10": lambda o: lens(motion_psf(10, 30, offset=o, shape=(11, 15))),
    "motion L=20": lambda o: lens(motion_psf(20, 30, offset=o, shape=(17, 23))),
}


def camera(
    linear: np.ndarray, rng, peak_snr: float, exposure: float = 0.8, encoded: bool = True
) -> np.ndarray:
    """Photons, read noise and sRGB 8-bit: `linear` scaled so its peak is `exposure`.

    Not `encoded`: linear light in float32, clipped at 0 only (a
    dark-subtracted photo).
    """
    photons = peak_snr**2  # at the peak, Poisson noise alone gives this SNR
    light = linear / linear.max() * exposure
    counts = rng.poisson(light * photons / exposure) * exposure / photons
    noisy = counts + rng.normal(0, 0.001, light.shape)
    if not encoded:
        return np.clip(noisy, 0, None).astype(np.float32)
    return np.round(linear_to_srgb(np.clip(noisy, 0, 1)) * 255).astype(np.uint8)


def point_light_photo(
    model,
    rng,
    *,
    sources: int,
    peak_snr: float,
    gradient: bool,
    exposure=0.8,
    dark=False,
    encoded=True,
):
    """Sources on a grid of cells, each at a random sub-pixel position.

    `dark`: no background, the sensor's black level at 0, so that the
    noise of the dark is clipped there (an LED in a dark room); `encoded`
    as for :func:`camera`.
    """
    k = max(model(None).shape)
    cell = 4 * k
    grid = int(np.ceil(np.sqrt(sources)))
    frame = np.zeros((cell * grid, cell * grid))
    truth, offsets = [], []
    for i in range(sources):
        position = np.array([(i // grid + 0.5) * cell, (i % grid + 0.5) * cell]) + rng.uniform(
            -3, 3, 2
        )
        anchor = np.round(position).astype(int)
        spot = model(tuple(position - anchor))
        start = anchor - np.array(spot.shape) // 2
        frame[start[0] : start[0] + spot.shape[0], start[1] : start[1] + spot.shape[1]] += spot
        truth.append(anchor + centroid(spot) - np.array(spot.shape) // 2)
        offsets.append(position - anchor)
    frame /= frame.max()
    rows, cols = np.mgrid[: frame.shape[0], : frame.shape[1]] / frame.shape[0]
    background = 0.0 if dark else 0.01 + 0.04 * (rows + cols) / 2 if gradient else 0.03
    photo = camera(frame + background, rng, peak_snr, exposure, encoded)
    return photo, np.array(truth), offsets


def relative_error(measured: np.ndarray, truth: np.ndarray) -> float:
    common = tuple(max(a, b) for a, b in zip(measured.shape, truth.shape))
    a, b = resize_psf(measured, common), resize_psf(truth, common)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def resampling_floor(model, offset) -> float:
    """Error of centring a noise-free photo knowing its exact offset: what sampling costs."""
    moved = shift_subpixel(model(tuple(offset)), -np.asarray(offset))
    return relative_error(moved, model(None))


def raw_crop(photo: np.ndarray, size: int) -> np.ndarray:
    """The question's PSF: the pixels round the brightest one, as they are, normalised."""
    peak = np.unravel_index(np.argmax(photo), photo.shape)
    half = size // 2
    crop = photo[peak[0] - half : peak[0] + half + 1, peak[1] - half : peak[1] + half + 1]
    crop = crop.astype(np.float64)
    return crop / crop.sum()


def fourier_division(blurred: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """The question's deconvolution: divide the Fourier transforms."""
    from napari_deblur.engine.psf import psf_to_otf

    otf = psf_to_otf(psf, blurred.shape)
    return np.fft.irfft2(np.fft.rfft2(blurred) / otf, s=blurred.shape)


def extraction_table(rng, quick: bool) -> None:
    print(
        "| PSF | sources found | peak SNR | background | rel. L2 error | resampling floor "
        "| centre error (px) | raw crop error | time (s) |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    snrs = (20, 50, 200)
    for name, model in FAMILIES.items():
        for sources in (1, 2, 4):
            for snr in snrs:
                for gradient in (False, True):
                    if quick and (sources > 1 or gradient) and snr != 50:
                        continue
                    photo, truth, offsets = point_light_photo(
                        model, rng, sources=sources, peak_snr=snr, gradient=gradient
                    )
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", PSFQualityWarning)
                        measured = psf_from_point_source(
                            photo, sources="auto" if sources > 1 else 1
                        )
                    seconds = time.perf_counter() - start
                    found = measured.centres
                    pairs = [np.min(np.linalg.norm(found - t, axis=1)) for t in truth]
                    error = relative_error(measured.psf, model(None))
                    naive = relative_error(raw_crop(photo, max(model(None).shape)), model(None))
                    floor = np.mean([resampling_floor(model, o) for o in offsets])
                    print(
                        f"| {name} | {measured.sources}/{sources} | {snr} | "
                        f"{'gradient' if gradient else 'flat'} | {error:.3f} | {floor:.3f} | "
                        f"{max(pairs):.3f} | {naive:.2f} | {seconds:.3f} |"
                    )


def clipped_table(rng) -> None:
    print("\n| PSF | exposure | clipped samples found | warned | rel. L2 error |")
    print("|---|---:|---:|---|---:|")
    for name in ("defocus r=6", "gaussian s=3"):
        model = FAMILIES[name]
        for exposure in (0.8, 3.0):
            photo, _, _ = point_light_photo(
                model, rng, sources=1, peak_snr=100, gradient=False, exposure=exposure
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PSFQualityWarning)
                measured = psf_from_point_source(photo)
            warned = any("clipped" in str(w.message) for w in caught)
            print(
                f"| {name} | {exposure} | {measured.clipped} | {warned} | "
                f"{relative_error(measured.psf, model(None)):.3f} |"
            )


def dark_table(rng) -> None:
    """Four lights in the dark, whose noise the sensor clips at its black level."""
    print("\n| PSF | peak SNR | photo | sources found | PSF size (true) | rel. L2 error |")
    print("|---|---:|---|---:|---|---:|")
    kinds = {
        "background 3%, sRGB 8-bit": {},
        "dark, sRGB 8-bit": {"dark": True},
        "dark, linear float": {"dark": True, "encoded": False},
    }
    for name, model in FAMILIES.items():
        true_size = " x ".join(map(str, model(None).shape))
        for peak_snr in (50, 200):
            for kind, options in kinds.items():
                photo, _, _ = point_light_photo(
                    model, rng, sources=4, peak_snr=peak_snr, gradient=False, **options
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PSFQualityWarning)
                    measured = psf_from_point_source(photo, sources="auto")
                size = " x ".join(map(str, measured.psf.shape))
                print(
                    f"| {name} | {peak_snr} | {kind} | {measured.sources} | {size} ({true_size}) "
                    f"| {relative_error(measured.psf, model(None)):.3f} |"
                )


def blend_table(rng) -> None:
    """Two single lights and a pair at a growing distance: the PSF of the brightest source."""
    print("\n| pair's distance (px) | sources | used | FWHM (px) | left out as blended |")
    print("|---:|---|---:|---|---:|")
    spot = gaussian_psf(2.0, shape=(21, 21))
    spot /= spot.max()
    for distance in (4, 6, 8, 10, 12, 16, 20):
        photo = np.zeros((160, 160))
        for row, col in ((40, 40), (40, 120), (110, 60), (110, 60 + distance)):
            photo[row - 10 : row + 11, col - 10 : col + 11] += spot
        photo += rng.normal(0, 0.01, photo.shape)
        for sources in (1, "auto"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PSFQualityWarning)
                measured = psf_from_point_source(photo, sources=sources)
            blended = any("blended" in str(w.message) for w in caught)
            print(
                f"| {distance} | {sources} | {measured.sources} "
                f"| {' x '.join(f'{w:.2f}' for w in measured.fwhm)} | {blended} |"
            )


def restore(blurred: np.ndarray, psf: np.ndarray, iterations: int = 25) -> np.ndarray:
    """A fixed deconvolution, so that only the PSF differs: RL, 25 iterations, linear light."""
    linear = srgb_to_linear(blurred / 255.0)
    operator = Convolution(psf, linear.shape, boundary="valid")
    estimate = RichardsonLucy(operator, stop=MaxIterations(iterations)).run(linear)
    c = [k - 1 - k // 2 for k in psf.shape]
    frame = estimate[c[0] : c[0] + linear.shape[0], c[1] : c[1] + linear.shape[1]]
    return linear_to_srgb(frame) * 255


def deconvolution_table(rng) -> None:
    scene = srgb_to_linear(data.camera()[:384, :384] / 255.0)
    print(
        "\n| PSF | blurred | true PSF | extracted PSF | loss (dB) | raw crop PSF "
        "| raw crop + Fourier division | default deblur, true / extracted |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    losses = []
    for name, model in FAMILIES.items():
        psf = model(None)
        frame = tuple(n - k + 1 for n, k in zip(scene.shape, psf.shape))
        blurred_linear = Convolution(psf, frame, boundary="valid").apply(scene)
        c = [k - 1 - k // 2 for k in psf.shape]
        truth = np.round(
            linear_to_srgb(scene[c[0] : c[0] + frame[0], c[1] : c[1] + frame[1]]) * 255
        )
        blurred = camera(blurred_linear, rng, peak_snr=100, exposure=float(blurred_linear.max()))
        photo, _, _ = point_light_photo(model, rng, sources=1, peak_snr=50, gradient=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PSFQualityWarning)
            extracted = psf_from_point_source(photo).psf
            default_true = psnr(truth, deblur(blurred, psf))
            default_extracted = psnr(truth, deblur(blurred, extracted))
        crop = raw_crop(photo, max(psf.shape))
        with_true = psnr(truth, restore(blurred, psf))
        with_extracted = psnr(truth, restore(blurred, extracted))
        losses.append(with_true - with_extracted)
        print(
            f"| {name} | {psnr(truth, blurred):.2f} | {with_true:.2f} | {with_extracted:.2f} | "
            f"{with_true - with_extracted:.2f} | {psnr(truth, restore(blurred, crop)):.2f} | "
            f"{psnr(truth, fourier_division(blurred.astype(float), crop)):.2f} | "
            f"{default_true:.2f} / {default_extracted:.2f} |"
        )
    print(f"\nlargest loss with the extracted PSF: {max(losses):.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer configurations")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"lens blur sigma {LENS_SIGMA} px; sRGB 8-bit photos; seed 3\n")
    rng = np.random.default_rng(3)
    extraction_table(rng, args.quick)
    clipped_table(rng)
    deconvolution_table(rng)
    dark_table(rng)
    blend_table(rng)


if __name__ == "__main__":
    main()

"""Camera photos: ringing at the borders, colour fringes, clipped lights, 16-bit input.

Run: python benchmarks/bench_photos.py [--size 256] [--sections 123456]

Every photo is made the way a camera makes it: a scikit-image colour photo
in linear light, the centre of a larger scene, blurred (a PSF per colour
where the lens has chromatic blur), photon and read noise, clipped to the
sensor's range, encoded to sRGB 8 bits (or kept linear in 16 bits). The
default ``deblur`` gets the photo and the PSF and nothing else.

1. Ringing: PSNR gain over the blurred photo in the outer band (as wide as
   the PSF) against the interior's, unknown boundary (the default), the
   periodic FFT model, and the surroundings known (a larger photo deblurred
   and cropped): the band's content alone can make its gain smaller, and
   the known-surroundings column shows by how much. Floor: the band's gain
   within 1 dB of the interior's.
2. Colour: a lens with chromatic blur (a different defocus per colour) and
   a colour point-light photo: the default (a PSF per colour, colour TV)
   against each channel deblurred alone with its PSF, and against one grey
   PSF for all; the colour error near edges is the mean CIEDE2000.
3. Clipped lights: night scenes with lamps far brighter than the sensor's
   range: the default (clipped pixels left out of the fit) against the same
   with every pixel fitted; PSNR on the unclipped pixels and the mean error
   in a ring round each lamp. Floor: at least 2 dB on the unclipped pixels.
4. 16-bit linear input (a raw-like TIFF) against the same photo in sRGB 8 bits.
5. Low-noise 16-bit linear input (rounding only, or read noise of 3e-4 of
   the range): PSNR of the outer band and the interior, and the pixels off
   by more than 0.3 of the range, where little noise makes the weight small.
6. JPEG input: the sRGB 8-bit photo saved as JPEG at qualities 98, 95 and
   90 (Pillow's IJG tables, colour at half resolution as cameras store it)
   against the PNG: PSNR of the default's result given the JPEG's pixels
   alone, and with ``compressed=True`` (what the command line and the
   widget say for a JPEG file below quality 98), and the weights chosen
   relative to the PNG's.
"""

from __future__ import annotations

import argparse
import io
import warnings
from collections import deque

import numpy as np
from _common import machine, psnr
from PIL import Image
from scipy import ndimage
from skimage import color, data, transform

from napari_deblur import deblur, deblur_steps
from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.point_source import PSFQualityWarning
from napari_deblur.engine.psf import defocus_psf, gaussian_psf, motion_psf

PHOTOS = {
    "astronaut": data.astronaut,
    "coffee": data.coffee,
    "chelsea": data.chelsea,
    "rocket": data.rocket,
}


def scene(name: str, size: int, margin: int) -> np.ndarray:
    """Linear-light colour scene of side ``size + margin``, channels last."""
    photo = PHOTOS[name]()[..., :3] / 255.0
    side = min(photo.shape[:2])
    photo = transform.resize(photo[:side, :side], (size + margin,) * 2, order=3)
    return srgb_to_linear(np.clip(photo, 0, 1))


def blur(linear: np.ndarray, psfs: list[np.ndarray], size: int) -> np.ndarray:
    """Each channel blurred by its PSF, the frame the centre of the scene."""
    channels = []
    for c, psf in enumerate(psfs):
        k = psf.shape[0]
        big = psf.shape[0] if len(psfs) == 1 else max(p.shape[0] for p in psfs)
        offset = (big - k) // 2
        window = linear[offset : offset + size + k - 1, offset : offset + size + k - 1, c]
        channels.append(Convolution(psf, (size, size), boundary="valid").apply(window))
    return np.stack(channels, axis=-1)


def expose(
    linear: np.ndarray, psfs: list[np.ndarray], size: int, rng, photons: float = 3000
) -> np.ndarray:
    """Blur each channel, add noise, clip: linear in [0, 1]."""
    blurred = blur(linear, psfs, size)
    noisy = rng.poisson(np.clip(blurred, 0, None) * photons) / photons
    noisy = noisy + rng.normal(0, 0.002, noisy.shape)
    return np.clip(noisy, 0, 1)


def light_photo(psfs: list[np.ndarray], rng) -> np.ndarray:
    """A point light photographed through the same lens (a PSF per colour), sRGB 8-bit."""
    k = max(p.shape[0] for p in psfs)
    photo = np.zeros((4 * k, 4 * k, len(psfs)))
    peak = max(p.max() for p in psfs)
    for c, psf in enumerate(psfs):
        m = psf.shape[0]
        start = k + (k - m) // 2
        photo[start + 3 : start + 3 + m, start + 5 : start + 5 + m, c] = psf / peak * 0.8
    photo = rng.poisson((photo + 0.02) * 20000) / 20000
    return np.round(linear_to_srgb(np.clip(photo, 0, 1)) * 255).astype(np.uint8)


def truth_of(linear: np.ndarray, size: int, k: int) -> np.ndarray:
    """The frame of the scene the photo shows, sRGB 8-bit scale."""
    c = k - 1 - k // 2
    return linear_to_srgb(np.clip(linear[c : c + size, c : c + size], 0, 1)) * 255


def frames(kernels: dict[str, np.ndarray], size: int):
    """Each photo's scene with each PSF: (photo, PSF's name, PSF, scene, sharp frame)."""
    for name in PHOTOS:
        for label, psf in kernels.items():
            k = psf.shape[0]
            linear = scene(name, size, k - 1)
            yield name, label, psf, linear, truth_of(linear, size, k)


def square(psf: np.ndarray) -> np.ndarray:
    """`psf` (odd sizes) zero-padded evenly to a square, its centre kept."""
    side = max(psf.shape)
    return np.pad(psf, [((side - n) // 2, (side - n) // 2) for n in psf.shape])


def srgb8(linear: np.ndarray) -> np.ndarray:
    return np.round(linear_to_srgb(linear) * 255).astype(np.uint8)


def band_psnr(truth, estimate, width: int) -> tuple[float, float]:
    """PSNR of the outer band of `width` pixels and of the interior."""
    band = np.ones(truth.shape[:2], bool)
    band[width:-width, width:-width] = False
    return psnr(truth[band], estimate[band]), psnr(truth[~band], estimate[~band])


def ringing(size: int, rng) -> None:
    kernels = {
        "defocus r=6": defocus_psf(6.0),
        "gaussian s=3": gaussian_psf(3.0),
        "motion 15 px": square(motion_psf(15, 30)),
    }
    print("### 1. Ringing at the borders (sRGB 8-bit photos, 3000 photons)\n")
    print(
        "The frame is the centre of a photo 2 PSF widths larger on each side: "
        "'known' deblurs that\nlarger photo and keeps the frame (the surroundings "
        "observed: no boundary problem at all).\n"
    )
    print(
        "| photo | PSF | band gain: default / periodic / known (dB) "
        "| inside gain: default / known (dB) | band - inside: default / known (dB) "
        "| boundary cost (dB) |"
    )
    print("|---|---|---|---|---|---:|")
    worst, costs = [], []
    for name in PHOTOS:
        for label, psf in kernels.items():
            k = psf.shape[0]
            margin = 2 * k
            linear = scene(name, size + 2 * margin, k - 1)
            larger = srgb8(expose(linear, [psf] * 3, size + 2 * margin, rng))
            inner = (slice(margin, margin + size),) * 2
            photo, truth = larger[inner], truth_of(linear, size + 2 * margin, k)[inner]
            before = band_psnr(truth, photo, k)
            results = {
                "default": deblur(photo, psf, channel_axis=-1),
                "periodic": deblur(photo, psf, channel_axis=-1, boundary="periodic"),
                "known": deblur(larger, psf, channel_axis=-1)[inner],
            }
            gains = {}
            for key, result in results.items():
                after = band_psnr(truth, result, k)
                gains[key] = (after[0] - before[0], after[1] - before[1])
            band = {key: gain[0] for key, gain in gains.items()}
            difference = {key: gains[key][0] - gains[key][1] for key in ("default", "known")}
            worst.append(difference["default"])
            costs.append(band["known"] - band["default"])
            print(
                f"| {name} | {label} | {band['default']:+.2f} / {band['periodic']:+.2f} / "
                f"{band['known']:+.2f} | {gains['default'][1]:+.2f} / {gains['known'][1]:+.2f} "
                f"| {difference['default']:+.2f} / {difference['known']:+.2f} "
                f"| {costs[-1]:.2f} |"
            )
    print(
        f"\nband - inside with the default: worst {min(worst):+.2f} dB (floor -1 dB), "
        f"within 1 dB on {sum(d >= -1 for d in worst)} of {len(worst)}; "
        f"boundary cost (known - default band gain): largest {max(costs):.2f} dB, "
        f"mean {np.mean(costs):.2f} dB\n"
    )


def edge_delta_e(truth: np.ndarray, estimate: np.ndarray) -> float:
    """Mean CIEDE2000 between the sRGB images on the pixels near edges of the truth."""
    lab_truth = color.rgb2lab(truth / 255)
    lab_estimate = color.rgb2lab(np.clip(estimate, 0, 255) / 255)
    edges = ndimage.generic_gradient_magnitude(lab_truth[..., 0], ndimage.sobel)
    near = ndimage.binary_dilation(edges > np.percentile(edges, 90), iterations=2)
    return float(color.deltaE_ciede2000(lab_truth, lab_estimate)[near].mean())


def colour_fringes(size: int, rng) -> None:
    # A lens whose red and blue are out of focus by different amounts.
    psfs = [defocus_psf(4.0), defocus_psf(3.0), defocus_psf(6.0)]
    k = max(p.shape[0] for p in psfs)
    print("### 2. Chromatic blur and colour fringes (sRGB 8-bit, colour point-light photo)\n")
    print(
        "| photo | blurred: PSNR / edge dE | colour PSFs + colour TV (default) "
        "| each channel alone | one grey PSF for all |"
    )
    print("|---|---|---|---|---|")
    totals = np.zeros((3, 2))
    for name in PHOTOS:
        linear = scene(name, size, k - 1)
        photo = srgb8(expose(linear, psfs, size, rng))
        light = light_photo(psfs, rng)
        truth = truth_of(linear, size, k)
        default = deblur(photo, light, channel_axis=-1)
        alone = np.stack(
            [
                deblur(photo[..., c], light[..., c], encoding="srgb", saturation=None)
                for c in range(3)
            ],
            axis=-1,
        )
        grey = deblur(photo, light.mean(axis=-1).astype(np.uint8), channel_axis=-1)
        row = [f"| {name} | {psnr(truth, photo):.2f} / {edge_delta_e(truth, photo):.2f}"]
        for i, result in enumerate((default, alone, grey)):
            scores = psnr(truth, result), edge_delta_e(truth, result)
            totals[i] += scores
            row.append(f"{scores[0]:.2f} / {scores[1]:.2f}")
        print(" | ".join(row) + " |")
    mean = totals / len(PHOTOS)
    print(
        f"\nmean PSNR / edge dE: default {mean[0, 0]:.2f} / {mean[0, 1]:.2f}, "
        f"each channel alone {mean[1, 0]:.2f} / {mean[1, 1]:.2f}, "
        f"one grey PSF {mean[2, 0]:.2f} / {mean[2, 1]:.2f}\n"
    )


def night_scene(name: str, size: int, psf: np.ndarray, rng):
    """A dim scene with lamps 10-50x brighter than the sensor's range; lamp centres."""
    k = psf.shape[0]
    linear = scene(name, size, k - 1) * 0.15
    yy, xx = np.mgrid[: size + k - 1, : size + k - 1]
    centres = []
    for _ in range(8):
        y, x = rng.integers(k + 4, size - 4, 2)
        radius = rng.uniform(1.5, 4)
        lamp = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        linear[lamp] = rng.uniform(10, 50) * np.array([1.0, 0.85, 0.6])
        centres.append((y - (k - 1 - k // 2), x - (k - 1 - k // 2), radius))
    return linear, centres


def clipped_lights(size: int, rng) -> None:
    psf = defocus_psf(5.0)
    k = psf.shape[0]
    print("### 3. Clipped lights (night scenes, sRGB 8-bit, 8 lamps each)\n")
    print(
        "| scene | clipped pixels | PSNR unclipped: blurred / fitted / left out (dB) "
        "| gain (dB) | ring error: blurred / fitted / left out |"
    )
    print("|---|---:|---|---:|---|")
    gains = []
    for name in PHOTOS:
        linear, centres = night_scene(name, size, psf, rng)
        photo = srgb8(expose(linear, [psf] * 3, size, rng))
        truth = truth_of(linear, size, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PSFQualityWarning)
            (last,) = deque(deblur_steps(photo, psf, channel_axis=-1), maxlen=1)
            fitted = deblur(photo, psf, channel_axis=-1, saturation=None)
        left_out = last.image
        unclipped = np.all(photo < 253, axis=-1)
        yy, xx = np.mgrid[:size, :size]
        ring = np.zeros((size, size), bool)
        for y, x, radius in centres:
            distance = np.hypot(yy - y, xx - x)
            ring |= (distance > radius + 2) & (distance <= radius + k)
        ring &= unclipped
        scores = [psnr(truth[unclipped], r[unclipped]) for r in (photo, fitted, left_out)]
        rings = [
            np.abs(np.clip(r, 0, 255) - truth)[ring].mean() for r in (photo, fitted, left_out)
        ]
        gains.append(scores[2] - scores[1])
        print(
            f"| {name} | {last.settings['left_out']} | "
            + " / ".join(f"{s:.2f}" for s in scores)
            + f" | {scores[2] - scores[1]:+.2f} | "
            + " / ".join(f"{r:.1f}" for r in rings)
            + " |"
        )
    print(f"\nsmallest gain from leaving clipped pixels out: {min(gains):+.2f} dB (floor 2 dB)\n")


def sixteen_bit(size: int, rng) -> None:
    psf = defocus_psf(6.0)
    k = psf.shape[0]
    print("### 4. 16-bit linear input against sRGB 8-bit\n")
    print("| photo | blurred (dB) | from sRGB 8-bit (dB) | from 16-bit linear (dB) |")
    print("|---|---:|---:|---:|")
    for name in PHOTOS:
        linear = scene(name, size, k - 1)
        exposed = expose(linear, [psf] * 3, size, rng, photons=20000)
        truth = truth_of(linear, size, k)
        photo8 = srgb8(exposed)
        photo16 = np.round(exposed * 65535).astype(np.uint16)
        from8 = deblur(photo8, psf, channel_axis=-1)
        from16 = deblur(photo16, psf, channel_axis=-1)
        shown16 = linear_to_srgb(np.clip(from16 / 65535, 0, 1)) * 255
        print(
            f"| {name} | {psnr(truth, photo8):.2f} | {psnr(truth, from8):.2f} "
            f"| {psnr(truth, shown16):.2f} |"
        )
    print()


def low_noise(size: int, rng) -> None:
    kernels = {
        "gaussian s=1.5": gaussian_psf(1.5),
        "gaussian s=3": gaussian_psf(3.0),
        "defocus r=5": defocus_psf(5.0),
    }
    print("### 5. Low-noise 16-bit linear input: the border\n")
    print(
        "| photo | PSF | read noise | blurred: band / inside (dB) "
        "| deblurred: band / inside (dB) | pixels off > 0.3 |"
    )
    print("|---|---|---:|---|---|---:|")
    gains = []
    for name, label, psf, linear, truth in frames(kernels, size):
        k = psf.shape[0]
        c = k - 1 - k // 2
        sharp = linear[c : c + size, c : c + size]
        blurred = blur(linear, [psf] * 3, size)
        for read in (0.0, 3e-4):
            noisy = np.clip(blurred + rng.normal(0, read, blurred.shape), 0, 1)
            photo = np.round(noisy * 65535).astype(np.uint16)
            result = np.clip(deblur(photo, psf, channel_axis=-1) / 65535, 0, 1)
            shown = linear_to_srgb(result) * 255
            before = band_psnr(truth, linear_to_srgb(photo / 65535) * 255, k)
            after = band_psnr(truth, shown, k)
            gains.append((after[0] - before[0], after[1] - before[1]))
            off = int(np.sum(np.abs(result - sharp) > 0.3))
            print(
                f"| {name} | {label} | {read:g} | {before[0]:.2f} / {before[1]:.2f} "
                f"| {after[0]:.2f} / {after[1]:.2f} | {off} |",
                flush=True,
            )
    gains = np.array(gains)
    print(
        f"\nmean gain: band {gains[:, 0].mean():+.2f} dB, inside {gains[:, 1].mean():+.2f} dB; "
        f"band within 1 dB of the inside's gain on {np.sum(gains[:, 0] >= gains[:, 1] - 1)} "
        f"of {len(gains)}\n"
    )


def jpeg(photo: np.ndarray, quality: int) -> np.ndarray:
    """`photo` saved as a JPEG of `quality` and read back."""
    stored = io.BytesIO()
    Image.fromarray(photo).save(stored, "JPEG", quality=quality)
    return np.asarray(Image.open(stored))


def _deblurred(photo, light, truth, **options) -> tuple[float, float]:
    """PSNR of the default's result on a colour photo, and the weight it took."""
    (last,) = deque(deblur_steps(photo, light, channel_axis=-1, **options), maxlen=1)
    return psnr(truth, last.image), last.settings["weight"]


def jpeg_input(size: int, rng) -> None:
    kernels = {
        "defocus r=6": defocus_psf(6.0),
        "gaussian s=1.5": gaussian_psf(1.5),
        "motion 15 px": square(motion_psf(15.0, 30.0)),
    }
    print("### 6. JPEG input (sRGB 8-bit, 3000 photons)\n")
    print(
        "| photo | PSF | blurred (dB) | PNG (dB) | JPEG 98 (dB) "
        "| JPEG 95: not said / compressed (dB) | JPEG 90: not said / compressed (dB) "
        "| weight / PNG's at 90: not said / compressed |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    gains = []
    for name, label, psf, linear, truth in frames(kernels, size):
        photo = srgb8(expose(linear, [psf] * 3, size, rng))
        light = np.repeat(light_photo([psf], rng), 3, axis=-1)
        png, weight = _deblurred(photo, light, truth)
        q98, _ = _deblurred(jpeg(photo, 98), light, truth)
        cells = []
        for quality in (95, 90):
            compressed = jpeg(photo, quality)
            plain, plain_weight = _deblurred(compressed, light, truth)
            said, said_weight = _deblurred(compressed, light, truth, compressed=True)
            cells.append(f"{plain:.2f} / {said:.2f}")
            ratios = [plain_weight / weight, said_weight / weight]
            gains.append(said - psnr(truth, photo))
        print(
            f"| {name} | {label} | {psnr(truth, photo):.2f} | {png:.2f} | {q98:.2f} | "
            + " | ".join(cells)
            + f" | {ratios[0]:.2g} / {ratios[1]:.2g} |",
            flush=True,
        )
    gains = np.array(gains)
    print(
        f"\ncompressed=True at qualities 95 and 90: gain over the blurred photo "
        f"{gains.min():+.2f} to {gains.max():+.2f} dB, above it on {np.sum(gains > 0)} "
        f"of {gains.size}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sections", default="123456", help="which sections to run")
    args = parser.parse_args()
    print(f"machine: {machine()}; frames {args.size} x {args.size}\n")
    rng = np.random.default_rng(11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PSFQualityWarning)
        sections = (ringing, colour_fringes, clipped_lights, sixteen_bit, low_noise, jpeg_input)
        for number, section in enumerate(sections, 1):
            if str(number) in args.sections:
                section(args.size, rng)


if __name__ == "__main__":
    main()

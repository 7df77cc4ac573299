"""Quality of method='auto', with nothing tuned, against oracle-tuned scikit-image.

Run: python benchmarks/bench_quality.py [--size 256] [--quick]

Photos are made the way a camera makes them: a scikit-image photo in linear
light is blurred as the centre of a larger scene by a defocus disc, a
Gaussian or a camera-shake path (each softened by the lens), then photon
noise (300 or 3000 photons at full scale) and read noise are added and it is
encoded to sRGB 8 bits. The PSF is given as a separate photo of a point
light (sRGB 8 bits, background, noise, off-centre), from which
napari-deblur measures it. scikit-image's ``wiener`` and ``richardson_lucy``
get the TRUE PSF, the image in linear light, and their balance / iteration
count tuned per image against the ground truth from a grid: an oracle no
user has. PSNR and SSIM are measured on the sRGB 8-bit result against the
sharp photo.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import deque

import numpy as np
from _common import machine, psnr
from scipy import ndimage
from skimage import data
from skimage.metrics import structural_similarity
from skimage.restoration import richardson_lucy, wiener

from napari_deblur import deblur_steps
from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.point_source import PSFQualityWarning
from napari_deblur.engine.psf import defocus_psf, gaussian_psf, normalize_psf

PHOTOS = {
    "camera": lambda: data.camera(),
    "moon": lambda: data.moon(),
    "astronaut": lambda: data.astronaut(),
    "coffee": lambda: data.coffee(),
    "chelsea": lambda: data.chelsea(),
    "rocket": lambda: data.rocket(),
}


def lens(psf: np.ndarray) -> np.ndarray:
    return normalize_psf(ndimage.gaussian_filter(psf, 0.5))


def camera_shake(length: float, rng: np.random.Generator) -> np.ndarray:
    """A random smooth path of about `length` pixels: the hand's motion during exposure."""
    steps = 400
    velocity = rng.normal(size=2)
    path = [np.zeros(2)]
    for _ in range(steps):
        velocity = 0.97 * velocity + 0.25 * rng.normal(size=2)
        path.append(path[-1] + velocity)
    path = np.array(path)
    path *= length / np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1))
    path -= path.mean(axis=0)
    size = 2 * int(np.ceil(np.abs(path).max())) + 5
    psf = np.zeros((size, size))
    centre = size // 2
    for point in np.linspace(0, len(path) - 1, 20 * len(path)):
        i = int(point)
        p = path[min(i, len(path) - 2)] * (1 - (point - i)) + path[min(i + 1, len(path) - 1)] * (
            point - i
        )
        r, c = p + centre
        r0, c0 = int(np.floor(r)), int(np.floor(c))
        fr, fc = r - r0, c - c0
        psf[r0, c0] += (1 - fr) * (1 - fc)
        psf[r0 + 1, c0] += fr * (1 - fc)
        psf[r0, c0 + 1] += (1 - fr) * fc
        psf[r0 + 1, c0 + 1] += fr * fc
    return lens(psf)


def kernels(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "defocus r=4": lens(defocus_psf(4.0)),
        "defocus r=8": lens(defocus_psf(8.0)),
        "defocus r=12": lens(defocus_psf(12.0)),
        "gaussian s=1.5": gaussian_psf(1.5),
        "gaussian s=4": gaussian_psf(4.0),
        "shake 15 px": camera_shake(15, rng),
        "shake 30 px": camera_shake(30, rng),
    }


def camera(linear: np.ndarray, rng, photons: float) -> np.ndarray:
    counts = rng.poisson(np.clip(linear, 0, None) * photons) / photons
    noisy = np.clip(counts + rng.normal(0, 0.002, linear.shape), 0, 1)
    return np.round(linear_to_srgb(noisy) * 255).astype(np.uint8)


def point_light(psf: np.ndarray, rng) -> np.ndarray:
    size = 4 * max(psf.shape)
    frame = np.zeros((size, size))
    offset = np.array([size // 2 - 3, size // 2 + 4])
    frame[offset[0] : offset[0] + psf.shape[0], offset[1] : offset[1] + psf.shape[1]] = psf
    frame = ndimage.shift(frame, rng.uniform(-0.5, 0.5, 2), order=3).clip(0) / frame.max() * 0.8
    rows = np.linspace(0, 1, size)[:, None]
    return camera(frame + 0.01 + 0.02 * rows, rng, photons=20000)


def ssim(truth: np.ndarray, estimate: np.ndarray) -> float:
    axis = -1 if truth.ndim == 3 else None
    return float(
        structural_similarity(truth, np.clip(estimate, 0, 255), data_range=255, channel_axis=axis)
    )


def per_channel(function, image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return function(image)
    return np.stack([function(image[..., c]) for c in range(image.shape[-1])], axis=-1)


def oracle_skimage(blurred_linear, psf, truth) -> tuple[tuple, tuple]:
    """Best PSNR over a grid of balances / iteration counts, and what it took."""
    best_wiener = (-np.inf, None)
    for balance in np.geomspace(1e-4, 1, 13):
        out = per_channel(lambda c, b=balance: wiener(c, psf, b), blurred_linear)
        best_wiener = max(best_wiener, (psnr(truth, linear_to_srgb(out) * 255), balance, out))
    best_rl = (-np.inf, None)
    for count in (1, 2, 3, 5, 8, 12, 20, 30, 50, 80):
        out = per_channel(
            lambda c, n=count: richardson_lucy(c, psf, num_iter=n, clip=False), blurred_linear
        )
        best_rl = max(best_rl, (psnr(truth, linear_to_srgb(out) * 255), count, out))
    return best_wiener, best_rl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the scene crop")
    parser.add_argument("--quick", action="store_true", help="two photos, three kernels")
    args = parser.parse_args()
    rng = np.random.default_rng(4)
    print(f"machine: {machine()}; scene {args.size} px, seed 4\n")
    print(
        "| photo | PSF | photons | blurred | skimage Wiener (oracle) | skimage RL (oracle) "
        "| auto | gain (dB) | SSIM blurred / best skimage / auto | method | time (s) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|")
    gains = []
    photos = list(PHOTOS.items())[:2] if args.quick else PHOTOS.items()
    all_kernels = kernels(rng)
    if args.quick:
        all_kernels = {k: all_kernels[k] for k in ("defocus r=8", "gaussian s=1.5", "shake 30 px")}
    for name, load in photos:
        photo = load()
        colour = photo.ndim == 3
        top = (photo.shape[0] - args.size) // 2
        left = (photo.shape[1] - args.size) // 2
        scene = srgb_to_linear(photo[top : top + args.size, left : left + args.size] / 255.0)
        for kernel_name, psf in all_kernels.items():
            k = psf.shape
            frame = (args.size - k[0] + 1, args.size - k[1] + 1)
            c = (k[0] - 1 - k[0] // 2, k[1] - 1 - k[1] // 2)
            sharp = scene[c[0] : c[0] + frame[0], c[1] : c[1] + frame[1]]
            truth = np.round(linear_to_srgb(sharp) * 255)
            stack = np.moveaxis(scene, -1, 0) if colour else scene[None]
            op = Convolution(psf[None], (stack.shape[0], *frame), boundary="valid", batch_ndim=1)
            blurred_linear = op.apply(stack)
            blurred_linear = np.moveaxis(blurred_linear, 0, -1) if colour else blurred_linear[0]
            light = point_light(psf, rng)
            for photons in (300, 3000):
                blurred = camera(blurred_linear, rng, photons)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PSFQualityWarning)
                    steps = deblur_steps(blurred, light, channel_axis=-1 if colour else None)
                    (last,) = deque(steps, maxlen=1)
                seconds = time.perf_counter() - start
                ours = last.image
                linear_input = srgb_to_linear(blurred / 255.0)
                best_w, best_rl = oracle_skimage(linear_input, psf, truth)
                best = max(best_w[0], best_rl[0])
                best_image = (
                    linear_to_srgb((best_w if best_w[0] >= best_rl[0] else best_rl)[2]) * 255
                )
                gain = psnr(truth, ours) - best
                gains.append(gain)
                print(
                    f"| {name} | {kernel_name} | {photons} | {psnr(truth, blurred):.2f} "
                    f"| {best_w[0]:.2f} | {best_rl[0]:.2f} ({best_rl[1]} it) "
                    f"| {psnr(truth, ours):.2f} "
                    f"| {gain:+.2f} | {ssim(truth, blurred):.3f} / "
                    f"{ssim(truth, best_image):.3f} / {ssim(truth, ours):.3f} "
                    f"| {last.settings['method']} | {seconds:.2f} |",
                    flush=True,
                )
    gains = np.array(gains)
    print(
        f"\nimages: {gains.size}; PSNR gain of auto over the oracle-tuned best of "
        f"skimage's two: mean {gains.mean():+.2f} dB, smallest {gains.min():+.2f} dB, "
        f"below 0 on {int(np.sum(gains <= 0))}"
    )


if __name__ == "__main__":
    main()

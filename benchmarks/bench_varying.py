"""Blur that varies across the frame: the varying model against the best single PSF.

Run: python benchmarks/bench_varying.py [--size 384] [--photons 3000] [--seed 0]

A field-varying scene, made the way a camera makes it: defocus whose radius
grows from 2 px at the frame's left edge to 10 px at its right (a scene
tilted away from the camera), applied in linear light to a scene larger than
the frame, with Poisson-Gaussian noise, stored as sRGB 8-bit. The varying
blur is rendered as a fine continuum (a disc for every half pixel of radius,
mixed linearly across the columns), not by the model under test. A 3 x 3
grid of point lights photographed through the same lens, with the same
framing, gives the PSFs.

Compared, by PSNR against the sharp scene: ``deblur(..., varying=True)``
with the light photo, against ``deblur`` with a single PSF, each of the nine
measured and their average, the best of the ten picked by an oracle that
knows the truth.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import machine, psnr
from scipy import ndimage
from skimage import color, data, transform

from napari_deblur import deblur, psf_from_point_source
from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.point_source import PSFQualityWarning
from napari_deblur.engine.psf import defocus_psf, normalize_psf, resize_psf

SCENES = {
    "camera": data.camera,
    "astronaut": lambda: color.rgb2gray(data.astronaut()) * 255,
    "coffee": lambda: color.rgb2gray(data.coffee()) * 255,
    "chelsea": lambda: color.rgb2gray(data.chelsea()) * 255,
}
#: Defocus radius at the left and right edges of the frame, in pixels.
NEAR, FAR = 2.0, 10.0
KERNEL = 25


def disc(radius: float) -> np.ndarray:
    """A defocus disc softened by the lens, in a box of KERNEL samples."""
    return resize_psf(
        normalize_psf(ndimage.gaussian_filter(defocus_psf(radius), 0.5)), (KERNEL,) * 2
    )


def varying_blur(scene: np.ndarray, size: int) -> np.ndarray:
    """The frame (size x size) of `scene` (side size + KERNEL - 1) under the varying defocus."""
    columns = np.arange(scene.shape[1]) - KERNEL // 2
    radius = np.clip(NEAR + (FAR - NEAR) * columns / (size - 1), NEAR, FAR)
    frame = np.zeros((size, size))
    for r in np.arange(NEAR, FAR + 0.25, 0.5):
        share = np.clip(1 - np.abs(radius - r) / 0.5, 0, None)
        if share.any():
            frame += Convolution(disc(r), (size, size), boundary="valid").apply(scene * share)
    return frame


def camera(linear: np.ndarray, rng, photons: float) -> np.ndarray:
    counts = rng.poisson(np.clip(linear, 0, None) * photons) / photons
    noisy = np.clip(counts + rng.normal(0, 0.002, linear.shape), 0, 1)
    return np.round(linear_to_srgb(noisy) * 255).astype(np.uint8)


def light_grid(size: int, rng) -> np.ndarray:
    """A 3 x 3 grid of point lights photographed with the same framing, sRGB 8-bit."""
    lights = np.zeros((size + KERNEL - 1,) * 2)
    for r in (size // 8, size // 2, 7 * size // 8):
        for c in (size // 8, size // 2, 7 * size // 8):
            lights[r + KERNEL // 2, c + KERNEL // 2] = 1
    photo = varying_blur(lights, size)
    return camera(photo / photo.max() * 0.8 + 0.01, rng, photons=20000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--photons", type=float, default=3000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    args = parser.parse_args()
    size = args.size
    rng = np.random.default_rng(args.seed)
    warnings.simplefilter("ignore", PSFQualityWarning)
    photo = light_grid(size, rng)
    measured = psf_from_point_source(photo, sources="auto")
    candidates = {
        f"light at ({r:.0f}, {c:.0f})": p for (r, c), p in zip(measured.centres, measured.each)
    }
    candidates["average"] = measured.psf
    print(f"machine: {machine()}\n")
    print(
        f"{size} x {size}, defocus radius {NEAR:g} -> {FAR:g} px left to right, "
        f"{args.photons:g} photons at white, seed {args.seed}; {measured.sources} lights found\n"
    )
    print(
        "| scene | blurred | best single PSF (which) | varying model | gain (dB) "
        "| time single / varying (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    gains = []
    for name, load in SCENES.items():
        grey = np.asarray(load(), dtype=np.float64) / 255
        side = min(grey.shape)
        grey = transform.resize(grey[:side, :side], (size + KERNEL - 1,) * 2, order=3)
        linear = srgb_to_linear(np.clip(grey, 0, 1))
        truth = np.round(
            linear_to_srgb(linear[KERNEL // 2 : -(KERNEL // 2), KERNEL // 2 : -(KERNEL // 2)])
            * 255
        )
        blurred = camera(varying_blur(linear, size), rng, args.photons)
        singles = {}
        start = time.perf_counter()
        for label, psf in candidates.items():
            singles[label] = psnr(truth, deblur(blurred, psf, encoding="srgb"))
        single_time = (time.perf_counter() - start) / len(candidates)
        best = max(singles, key=singles.get)
        start = time.perf_counter()
        varying = psnr(truth, deblur(blurred, photo, varying=True))
        varying_time = time.perf_counter() - start
        gains.append(varying - singles[best])
        print(
            f"| {name} | {psnr(truth, blurred):.2f} | {singles[best]:.2f} ({best}) "
            f"| {varying:.2f} | {gains[-1]:+.2f} | {single_time:.1f} / {varying_time:.1f} |"
        )
    print(f"\nmean gain {np.mean(gains):+.2f} dB, smallest {np.min(gains):+.2f} dB (floor +1.5)")


if __name__ == "__main__":
    main()

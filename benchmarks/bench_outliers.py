"""Hot pixels and cosmic rays: found by themselves, and nothing else found.

Run: python benchmarks/bench_outliers.py [--size 256] [--seed 5] [--sections 123]

1. False alarms: camera-made photos (``bench_blind.py``'s six photos, defocus
   r = 4, 8, 12 and Gaussian sigma = 1.5, 2.5, 4, 3000 photons, sRGB 8-bit)
   and photon counts (camera, Gaussian sigma 1.5, 0.05 to 100 photons a
   pixel): the samples the default's `deblur` leaves out as hot
   (``settings['hot_pixels']``).
2. Hits: the same photos with 40 single-sample hits added in linear light
   (0.1 to 3 times the photo's brightest light, as cosmic rays and hot
   pixels are): how many samples are found hot, how many hits reach the top
   of the range (left out as clipped), and the PSNR of the result against
   the photo without hits deblurred alike (the damage the hits leave), with
   the test and without it (the baseline, in the same run).
3. A PSF wider than the blur: 60 stars (50 to 5000 photons on a sky of 5)
   blurred by one Gaussian and deblurred with a wider one: how many of
   their samples are taken for hot (real light, inconsistent with the PSF
   given).
"""

from __future__ import annotations

import argparse
import warnings
from contextlib import contextmanager

import numpy as np
from _common import machine, psnr
from bench_blind import expose, scenes
from skimage import data

from napari_deblur import _api, deblur_steps
from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf

PSFS = {f"defocus r={r:g}": defocus_psf(r) for r in (4.0, 8.0, 12.0)} | {
    f"gaussian s={s:g}": gaussian_psf(s) for s in (1.5, 2.5, 4.0)
}
HITS = 40


@contextmanager
def untested():
    """The default without its hot-pixel test: the baseline."""
    tested = _api.hot_pixels
    _api.hot_pixels = lambda image, *args, **kwargs: np.zeros(image.shape, bool)
    try:
        yield
    finally:
        _api.hot_pixels = tested


def last(image, psf):
    """The default's last step on `image` with `psf`."""
    *_, step = deblur_steps(image, psf, channel_axis=-1 if image.ndim == 3 else None)
    return step


def false_alarms(size: int, rng) -> None:
    print("### 1. False alarms\n")
    print("| data | PSF | samples | left out as hot |")
    print("|---|---|---:|---:|")
    total = 0
    for name, scene in scenes(size, False):
        for label, psf in PSFS.items():
            blurred, _ = expose(scene, psf, rng, 3000)
            found = last(blurred, psf).settings["hot_pixels"]
            total += found
            print(f"| {name} | {label} | {blurred.size} | {found} |", flush=True)
    camera = data.camera()[: size + 12, : size + 12] / 255.0
    blurred = Convolution(gaussian_psf(1.5), (size, size), boundary="valid").apply(camera)
    for photons in (0.05, 0.2, 1.0, 5.0, 20.0, 100.0):
        counts = rng.poisson(blurred * photons).astype(np.uint16)
        found = last(counts, gaussian_psf(1.5)).settings["hot_pixels"]
        total += found
        print(f"| camera, {photons:g} photons | gaussian s=1.5 | {counts.size} | {found} |")
    print(f"\nleft out as hot in all: {total}\n")


def hits(size: int, rng) -> None:
    print("### 2. Hits (40 a photo)\n")
    print(
        "| photo | PSF | hit (x brightest) | samples found hot | hits at 255 (clipped) "
        "| PSNR vs clean result (dB) | not tested (dB) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, scene in scenes(size, False):
        for label in ("defocus r=4", "gaussian s=2.5"):
            psf = PSFS[label]
            blurred, _ = expose(scene, psf, rng, 3000)
            clean = last(blurred, psf).image
            for strength in (0.1, 0.3, 1.0, 3.0):
                linear = srgb_to_linear(blurred / 255.0)
                rows, cols = (rng.integers(2, n - 2, HITS) for n in blurred.shape[:2])
                linear[rows, cols] += strength * linear.max()
                hit = np.round(linear_to_srgb(np.clip(linear, 0, 1)) * 255).astype(np.uint8)
                top = int(
                    np.count_nonzero(
                        (hit[rows, cols] == 255).any(axis=-1)
                        if hit.ndim == 3
                        else hit[rows, cols] == 255
                    )
                )
                step = last(hit, psf)
                with untested():
                    plain = last(hit, psf)
                print(
                    f"| {name} | {label} | {strength:g} | {step.settings['hot_pixels']} | {top} "
                    f"| {psnr(clean, step.image):.2f} | {psnr(clean, plain.image):.2f} |",
                    flush=True,
                )
    print()


def wider_psf(size: int, rng) -> None:
    print("### 3. A PSF wider than the blur (60 stars)\n")
    print("| blur sigma | PSF given sigma | samples left out as hot |")
    print("|---:|---:|---:|")
    sky = np.zeros((size, size))
    sky[rng.integers(0, size, 60), rng.integers(0, size, 60)] = rng.uniform(50, 5000, 60)
    for blur, given in ((1.0, 1.0), (1.0, 1.25), (1.0, 1.5), (1.0, 2.0), (0.7, 1.0), (0.7, 1.5)):
        light = Convolution(gaussian_psf(blur), sky.shape, boundary="periodic").apply(sky)
        counts = rng.poisson(light + 5).astype(np.uint16)
        found = last(counts, gaussian_psf(given)).settings["hot_pixels"]
        print(f"| {blur:g} | {given:g} | {found} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--sections", default="123")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"machine: {machine()}; scene {args.size} px, seed {args.seed}\n")
    warnings.simplefilter("ignore")
    for number, section in enumerate((false_alarms, hits, wider_psf), start=1):
        if str(number) in args.sections:
            section(args.size, rng)


if __name__ == "__main__":
    main()

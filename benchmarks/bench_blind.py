"""PSFs that are wrong or missing: refinement, parametric and general blind estimation.

Run: python benchmarks/bench_blind.py [--size 256] [--quick] [--sections 1234] [--seed 5]

On the camera-made benchmark set of ``bench_quality.py`` (skimage photos,
a crop of ``size`` px, blurred in linear light inside a larger scene,
Poisson-Gaussian noise, sRGB 8-bit):

1. parametric blind estimation (``estimate_blur``, nothing given): the
   family found and the relative error of the radius, sigma or length,
   for defocus discs (r = 4, 8, 12), Gaussians (sigma = 1.5, 2.5, 4) and
   straight motions (10, 20, 30 px at random angles), 3000 photons;
2. refinement (``deblur(refine_psf=True)``) of a PSF 20% too large (disc,
   Gaussian, motion): PSNR with the true PSF, with the wrong one as given,
   and refined; the share of the lost PSNR recovered; and the true PSF
   refined (what refinement costs when the measurement was right);
3. general blind deblurring (``deblur(psf='general')``) of the camera-shake
   images (15 and 30 px paths, 300 and 3000 photons): PSNR against the
   blurred input and against deblurring with the true PSF;
4. section 1's photos stored as JPEG at quality 90: the estimate read on
   the whole band (not said compressed) and with ``compressed=True`` (the
   CLI and the widget say it for such a file).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import machine, psnr
from bench_photos import jpeg
from bench_quality import PHOTOS, camera, camera_shake, lens

from napari_deblur import deblur
from napari_deblur.engine.blind import estimate_blur
from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.point_source import PSFQualityWarning
from napari_deblur.engine.psf import defocus_psf, gaussian_psf, motion_psf


def scenes(size: int, quick: bool):
    """Linear-light crops of the photos, channels first."""
    photos = list(PHOTOS.items())[:2] if quick else PHOTOS.items()
    for name, load in photos:
        photo = load()
        top, left = (photo.shape[0] - size) // 2, (photo.shape[1] - size) // 2
        crop = srgb_to_linear(photo[top : top + size, left : left + size] / 255.0)
        yield name, np.moveaxis(crop, -1, 0) if crop.ndim == 3 else crop[None]


def expose(scene: np.ndarray, psf: np.ndarray, rng, photons: float):
    """The blurred 8-bit photo (frame = centre of the scene) and the sharp frame, 0..255."""
    k = psf.shape
    frame = tuple(n - kk + 1 for n, kk in zip(scene.shape[1:], k))
    blurred = Convolution(psf[None], (len(scene), *frame), boundary="valid", batch_ndim=1)
    c = [kk - 1 - kk // 2 for kk in k]
    sharp = scene[:, c[0] : c[0] + frame[0], c[1] : c[1] + frame[1]]
    out = camera(np.moveaxis(blurred.apply(scene), 0, -1), rng, photons)
    truth = np.round(linear_to_srgb(np.moveaxis(sharp, 0, -1)) * 255)
    if len(scene) == 1:
        return out[..., 0], truth[..., 0]
    return out, truth


def parametric(size: int, quick: bool, rng, quality: int | None = None) -> None:
    """Section 1; given a JPEG `quality`, section 4 on the same photos stored so."""
    if quality is None:
        print("### 1. Parametric blind estimation (3000 photons)\n")
        print("| photo | true blur | found | relative error | time (s) |")
        print("|---|---|---|---:|---:|")
    else:
        print(f"### 4. Parametric blind estimation from JPEG {quality} (3000 photons)\n")
        print("| photo | true blur | not said | error | compressed=True | error | time (s) |")
        print("|---|---|---|---:|---|---:|---:|")
    errors, unsaid = [], []

    def error(found, kind, parameter, value):
        return abs(found.parameters[parameter] - value) / value if found.kind == kind else np.inf

    for name, scene in scenes(size, quick):
        cases = [("defocus", "radius", r, lens(defocus_psf(r))) for r in (4.0, 8.0, 12.0)]
        cases += [("gaussian", "sigma", s, gaussian_psf(s)) for s in (1.5, 2.5, 4.0)]
        for length in (10.0, 20.0, 30.0):
            angle = float(rng.uniform(0, 180))
            cases.append(("motion", "length", length, lens(motion_psf(length, angle))))
        for kind, parameter, value, psf in cases:
            blurred, _ = expose(scene, psf, rng, 3000)
            axis = -1 if blurred.ndim == 3 else None
            row = f"| {name} | {kind} {parameter} {value:g} |"
            if quality is not None:
                blurred = jpeg(blurred, quality)
                found = estimate_blur(blurred, channel_axis=axis)
                unsaid.append(error(found, kind, parameter, value))
                row += f" {found.report()[16:]} | {unsaid[-1]:.1%} |"
            start = time.perf_counter()
            found = estimate_blur(blurred, channel_axis=axis, compressed=quality is not None)
            elapsed = time.perf_counter() - start
            errors.append(error(found, kind, parameter, value))
            print(f"{row} {found.report()[16:]} | {errors[-1]:.1%} | {elapsed:.1f} |", flush=True)
    errors = np.array(errors)
    if unsaid:
        unsaid = np.array(unsaid)
        print(
            f"\nnot said compressed: {np.sum(unsaid <= 0.1)} of {unsaid.size} within 10%; "
            f"compressed=True: {np.sum(errors <= 0.1)}",
            end="",
        )
    else:
        print(f"\n{np.sum(errors <= 0.1)} of {errors.size} within 10%", end="")
    print(f" (right family and parameter); median error {np.median(errors):.1%}\n")


def parametric_jpeg(size: int, quick: bool, rng) -> None:
    """Section 4: section 1 from JPEGs of quality 90."""
    parametric(size, quick, rng, quality=90)


def refinement(size: int, quick: bool, rng) -> None:
    print("### 2. Refining a PSF 20% too large (3000 photons)\n")
    print("| photo | blur | true PSF | as given | refined | recovered | time (s) | true refined |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    shares, costs = [], []
    for name, scene in scenes(size, quick):
        angle = float(rng.uniform(0, 180))
        cases = [
            ("defocus r=6", lens(defocus_psf(6.0)), lens(defocus_psf(7.2))),
            ("gaussian s=2.5", gaussian_psf(2.5), gaussian_psf(3.0)),
            ("motion 15 px", lens(motion_psf(15, angle)), lens(motion_psf(18, angle))),
        ]
        for label, truth_psf, given in cases:
            blurred, truth = expose(scene, truth_psf, rng, 3000)
            axis = -1 if blurred.ndim == 3 else None
            right = psnr(truth, deblur(blurred, truth_psf, channel_axis=axis))
            wrong = psnr(truth, deblur(blurred, given, channel_axis=axis))
            start = time.perf_counter()
            refined = psnr(truth, deblur(blurred, given, channel_axis=axis, refine_psf=True))
            elapsed = time.perf_counter() - start
            share = (refined - wrong) / (right - wrong)
            shares.append(share)
            kept = psnr(truth, deblur(blurred, truth_psf, channel_axis=axis, refine_psf=True))
            costs.append(right - kept)
            print(
                f"| {name} | {label} | {right:.2f} | {wrong:.2f} | {refined:.2f} "
                f"| {share:.0%} | {elapsed:.1f} | {kept:.2f} |",
                flush=True,
            )
    shares, costs = np.array(shares), np.array(costs)
    print(
        f"\nshare of the lost PSNR recovered: median {np.median(shares):.0%}, "
        f"smallest {shares.min():.0%}; at least half on {np.sum(shares >= 0.5)} of {shares.size}; "
        f"refining the true PSF costs {costs.mean():.2f} dB on average, "
        f"at most {costs.max():.2f}\n"
    )


def general(size: int, quick: bool, rng) -> None:
    print("### 3. General blind deblurring of camera shake\n")
    print("| photo | shake | photons | blurred | blind | true PSF | time (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    gains = []
    for name, scene in scenes(size, quick):
        for length in (15, 30):
            psf = camera_shake(length, rng)
            for photons in (300, 3000):
                blurred, truth = expose(scene, psf, rng, photons)
                axis = -1 if blurred.ndim == 3 else None
                start = time.perf_counter()
                blind = psnr(truth, deblur(blurred, "general", channel_axis=axis))
                elapsed = time.perf_counter() - start
                known = psnr(truth, deblur(blurred, psf, channel_axis=axis))
                gains.append(blind - psnr(truth, blurred))
                print(
                    f"| {name} | {length} px | {photons} | {psnr(truth, blurred):.2f} "
                    f"| {blind:.2f} | {known:.2f} | {elapsed:.1f} |",
                    flush=True,
                )
    gains = np.array(gains)
    print(
        f"\nblind over blurred: above on {np.sum(gains > 0)} of {gains.size}, "
        f"mean {gains.mean():+.2f} dB, smallest {gains.min():+.2f} dB\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the scene crop")
    parser.add_argument("--quick", action="store_true", help="two photos")
    parser.add_argument(
        "--sections", default="123", help="which of the four sections to run (default 123)"
    )
    parser.add_argument(
        "--seed", type=int, default=5, help="seed of the noise, angles and shakes (default 5)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", PSFQualityWarning)
    rng = np.random.default_rng(args.seed)
    print(f"machine: {machine()}; scene {args.size} px, seed {args.seed}\n")
    sections = (parametric, refinement, general, parametric_jpeg)
    for number, section in enumerate(sections, start=1):
        if str(number) in args.sections:
            section(args.size, args.quick, rng)


if __name__ == "__main__":
    main()

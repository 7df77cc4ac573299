"""Validation of the total-variation weight rule against the oracle weight.

Run: python benchmarks/bench_weight_rule.py

For grey camera-made photos (scikit-image photos in linear light, blurred as
the centre of a larger scene, photon and read noise, sRGB 8 bits), FISTA-TV
is run to convergence for a grid of weights; the PSNR the rule
``kappa * sqrt(variance * nsr)`` would get (interpolated on the grid, in
log weight) is compared with the grid's best, for several ``kappa``.
"""

from __future__ import annotations

import numpy as np
from _common import machine, psnr
from skimage import data

from napari_deblur.engine.color import linear_to_srgb, srgb_to_linear
from napari_deblur.engine.noise import TV_WEIGHT_FACTOR, gcv_nsr, mean_noise_variance
from napari_deblur.engine.operators import Convolution
from napari_deblur.engine.psf import defocus_psf, gaussian_psf
from napari_deblur.engine.solvers import FistaTV, MaxIterations, RelativeChange

WEIGHTS = np.geomspace(2e-5, 1e-2, 10)
KAPPAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"machine: {machine()}; rule factor in use: {TV_WEIGHT_FACTOR}\n")
    print("| photo | PSF | photons | best PSNR | best weight | rule's weight (0.5) |")
    print("|---|---|---:|---:|---:|---:|")
    losses = {kappa: [] for kappa in KAPPAS}
    for name in ("camera", "astronaut", "coffee"):
        image = getattr(data, name)()
        image = image.mean(axis=-1) if image.ndim == 3 else image
        scene = srgb_to_linear(image[:256, :256] / 255.0)
        for label, psf in (
            ("defocus r=4", defocus_psf(4.0)),
            ("defocus r=9", defocus_psf(9.0)),
            ("gaussian s=2.5", gaussian_psf(2.5)),
        ):
            k = psf.shape[0]
            c = k - 1 - k // 2
            frame = (256 - k + 1,) * 2
            blurred = Convolution(psf, frame, boundary="valid").apply(scene)
            truth = np.round(linear_to_srgb(scene[c : c + frame[0], c : c + frame[1]]) * 255)
            for photons in (300, 3000):
                counts = rng.poisson(np.clip(blurred, 0, None) * photons) / photons
                noisy = np.clip(counts + rng.normal(0, 0.002, blurred.shape), 0, 1)
                photo = np.round(linear_to_srgb(noisy) * 255)
                y = srgb_to_linear(photo / 255.0).astype(np.float32)
                op = Convolution(psf.astype(np.float32), y.shape, boundary="valid")
                scale = float(np.sqrt(mean_noise_variance(y) * gcv_nsr(y, op.psf)))
                curve = []
                for weight in WEIGHTS:
                    stop = RelativeChange(5e-4) | MaxIterations(300)
                    x = FistaTV(op, weight=weight, stop=stop).run(y)
                    curve.append(
                        psnr(truth, linear_to_srgb(x[c : c + frame[0], c : c + frame[1]]) * 255)
                    )
                curve = np.array(curve)
                for kappa in KAPPAS:
                    at_rule = np.interp(np.log(kappa * scale), np.log(WEIGHTS), curve)
                    losses[kappa].append(curve.max() - at_rule)
                print(
                    f"| {name} | {label} | {photons} | {curve.max():.2f} | "
                    f"{WEIGHTS[np.argmax(curve)]:.1e} | {0.5 * scale:.1e} |",
                    flush=True,
                )
    print("\n| kappa | mean loss (dB) | largest loss (dB) |")
    print("|---:|---:|---:|")
    for kappa in KAPPAS:
        print(f"| {kappa} | {np.mean(losses[kappa]):.2f} | {np.max(losses[kappa]):.2f} |")


if __name__ == "__main__":
    main()

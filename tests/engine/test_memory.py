import numpy as np
import pytest

from napari_deblur import deblur
from napari_deblur._cli import main
from napari_deblur.engine import memory
from napari_deblur.engine.operators import Convolution, VaryingConvolution
from napari_deblur.engine.psf import gaussian_psf


def test_peak_model_counts_copies_of_the_unknown():
    op = Convolution(gaussian_psf(2.0), (100, 120), boundary="valid", dtype=np.float32)
    assert op.shape_in == (116, 136)
    assert memory.peak_bytes("admm_tv", op) == memory.COPIES["admm_tv"] * 116 * 136 * 4
    psfs = np.stack([gaussian_psf(s, shape=(9, 9)) for s in (1.0, 1.5, 2.0)])
    positions = [(10, 10), (10, 100), (90, 50)]
    varying = VaryingConvolution(psfs, positions, (100, 120), boundary="valid")
    assert (
        memory.peak_bytes("fista_tv", varying) == (memory.COPIES["fista_tv"] + 6) * 108 * 128 * 8
    )


def test_available_memory_is_read():
    available = memory.available_bytes()
    if available is None:
        pytest.skip("this system does not say how much memory is available")
    assert available > 0


def test_a_run_that_does_not_fit_is_refused(monkeypatch, rng, capsys, tmp_path):
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**6)
    image = rng.random((200, 200)).astype(np.float32)
    # 35 float32 copies of its grid; both to two digits (both read "0.0 GB").
    with pytest.raises(MemoryError, match=r"needs about 0\.00\d* GB and 0\.001 GB are available"):
        deblur(image, gaussian_psf(2.0), method="admm_tv")
    # Hundreds of GB in whole numbers (they read "2.5e+02 GB").
    monkeypatch.setattr(memory, "peak_bytes", lambda method, operator: 250e9)
    monkeypatch.setattr(memory, "available_bytes", lambda: 130e9)
    with pytest.raises(MemoryError, match="needs about 250 GB and 130 GB are available"):
        deblur(image, gaussian_psf(2.0), method="admm_tv")
    import tifffile

    tifffile.imwrite(tmp_path / "in.tif", image)
    tifffile.imwrite(tmp_path / "psf.tif", gaussian_psf(2.0).astype(np.float32))
    code = main(
        [
            "run",
            str(tmp_path / "in.tif"),
            "--psf",
            str(tmp_path / "psf.tif"),
            "-o",
            str(tmp_path / "out.tif"),
        ]
    )
    assert code == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "GB are available" in error
    assert not (tmp_path / "out.tif").exists()

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def adjointness_error(op, rng, dtype=np.float64) -> float:
    """Relative gap in the dot test <A x, y> = <x, A^T y> for random x, y."""
    x = rng.standard_normal(op.shape_in).astype(dtype)
    y = rng.standard_normal(op.shape_out).astype(dtype)
    lhs = np.vdot(op.apply(x).ravel(), y.ravel())
    rhs = np.vdot(x.ravel(), op.adjoint(y).ravel())
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


def psnr(truth, estimate, data_range) -> float:
    mse = np.mean((np.asarray(truth, np.float64) - np.asarray(estimate, np.float64)) ** 2)
    return float(10 * np.log10(data_range**2 / mse))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def shared_data():
    """The shared real-data folder; tests that need it skip when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    return DATA

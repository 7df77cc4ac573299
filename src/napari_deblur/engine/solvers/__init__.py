"""Deconvolution methods, one module each, sharing the protocol of ``_base``."""

from ._base import (
    AllOf,
    AnyOf,
    Discrepancy,
    MaxIterations,
    RelativeChange,
    Solver,
    Stagnation,
    Step,
    StoppingRule,
    fill_unobserved,
)
from .admm import ADMM
from .fista import FistaTV
from .gradient import NesterovGradient
from .richardson_lucy import RichardsonLucy
from .wiener import Wiener

__all__ = [
    "ADMM",
    "AllOf",
    "AnyOf",
    "Discrepancy",
    "FistaTV",
    "MaxIterations",
    "NesterovGradient",
    "RelativeChange",
    "RichardsonLucy",
    "Solver",
    "Stagnation",
    "Step",
    "StoppingRule",
    "Wiener",
    "fill_unobserved",
]

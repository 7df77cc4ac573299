"""Deconvolution methods, one module each, sharing the protocol of ``_base``."""

from ._base import (
    AllOf,
    AnyOf,
    Discrepancy,
    MaxIterations,
    RelativeChange,
    Solver,
    Step,
    StoppingRule,
)
from .richardson_lucy import RichardsonLucy
from .wiener import Wiener

__all__ = [
    "AllOf",
    "AnyOf",
    "Discrepancy",
    "MaxIterations",
    "RelativeChange",
    "RichardsonLucy",
    "Solver",
    "Step",
    "StoppingRule",
    "Wiener",
]

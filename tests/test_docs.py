"""The examples in the docstrings run and show what they say."""

import doctest

import pytest

from napari_deblur import _api
from napari_deblur.engine import psf


@pytest.mark.parametrize("module", [_api, psf])
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0

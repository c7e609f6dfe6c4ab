"""The examples in the index layer's docstrings run and print what they say."""

import doctest

import pytest

from embedops.index import codecs, footprints, settings, table


@pytest.mark.parametrize("module", [codecs, footprints, settings, table], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0

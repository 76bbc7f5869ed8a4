import pytest

from cgeval.scoring.extract.options import _context


@pytest.fixture(autouse=True)
def _fresh_option_contexts():
    """Each test builds its option sets' patterns afresh: a context cached by an earlier test (or, under mutation
    testing, by the process the test runs in a fork of) would hide a change to the code that builds them."""
    _context.cache_clear()
    yield

"""Random and hostile requests to every page and action (hypothesis):
none may answer 5xx, or more than 2 MB.

A short, derandomized run on the embedded store, for CI;
``benchmarks/fuzz_pages.py`` runs the same requests as long as asked.
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.pagefuzz import MAX_RESPONSE, FuzzSite, requests


@pytest.fixture(scope='module')
def site():
    site = FuzzSite()
    yield site
    site.close()


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_no_request_is_a_server_error_or_too_large(site, data):
    fuzz = data.draw(requests(site.ids, site.token), label='request')
    sent = site.send(fuzz)
    assert sent.status < 500, str(fuzz)
    assert sent.size <= MAX_RESPONSE, str(fuzz)

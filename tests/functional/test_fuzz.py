"""Random and hostile requests to every page and action and to the JSON
API (hypothesis): none may answer 5xx, or more than 2 MB.

Short, derandomized runs on the embedded store, for CI: on the test site
(logged in by ``REMOTE_USER``) and on the demo site (logged in through
its form, its own pages included). ``benchmarks/fuzz_pages.py`` sends the
same requests as long as asked.
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.pagefuzz import MAX_RESPONSE, DemoFuzzSite, FuzzSite

FUZZ = settings(max_examples=800, deadline=None, derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope='module', params=[FuzzSite, DemoFuzzSite],
                ids=['test-site', 'demo'])
def site(request):
    site = request.param()
    yield site
    site.close()


@FUZZ
@given(data=st.data())
def test_no_request_is_a_server_error_or_too_large(site, data):
    # Drawn with the site's token of the moment (the demo renews it).
    fuzz = data.draw(site.strategy(), label='request')
    sent = site.send(fuzz)
    assert sent.status < 500, str(fuzz)
    assert sent.size <= MAX_RESPONSE, str(fuzz)

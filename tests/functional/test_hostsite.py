"""The host site of the wheel check (``tests/installed``), run here on
the package under test: every management page renders, and a job handed
over by the site's view under pyramid_tm's explicit manager is stored.
``.ci/wheel-check`` runs the same check on the installed wheel."""
import os
import sys

INSTALLED = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         os.pardir, 'installed')
if INSTALLED not in sys.path:
    sys.path.insert(0, INSTALLED)

import check_pages  # noqa: E402


def test_every_page_of_the_host_site_renders():
    rendered = check_pages.check()
    assert '/queue/' in rendered and '/queue/jobs' in rendered
    assert len(rendered) >= 11

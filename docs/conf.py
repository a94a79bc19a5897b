"""Sphinx configuration of the m01.remote documentation.

Build the pages with warnings as errors, and run the examples as doctests
on the embedded store (no server, no network)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest
"""
import importlib.metadata

project = 'm01.remote'
author = 'the m01.remote developers'
copyright = 'the m01.remote developers, ZPL 2.1'
release = importlib.metadata.version('m01.remote')
version = '.'.join(release.split('.')[:2])

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.doctest',
    # autodoc for zope.interface interfaces (``autointerface``).
    'sphinxcontrib.zopeext.autointerface',
]
# No intersphinx: the build runs without a network.

root_doc = 'index'
exclude_patterns = ['_build']
# The reStructuredText default role (`text`) is an error, not a guess.
default_role = None

autodoc_member_order = 'bysource'
autodoc_default_options = {
    'members': True,
    # The interfaces' dunder members are part of their contracts.
    'special-members': '__call__, __getitem__, __len__, __contains__, '
                       '__name__',
}

# The examples' outputs hold ids and times that differ per run; doctests
# write ``...`` for them. Sphinx's default flags already include ELLIPSIS.
doctest_global_setup = ''

html_theme = 'alabaster'
html_title = 'm01.remote %s' % release
html_static_path = []
html_theme_options = {
    'description': 'A remote processing queue for Pyramid, stored in '
                   'MongoDB',
    'fixed_sidebar': False,
    # Room for 79-character lines of code beside the sidebar.
    'page_width': '1100px',
}

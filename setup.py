import os

from setuptools import find_namespace_packages, setup

here = os.path.abspath(os.path.dirname(__file__))


def read(name):
    with open(os.path.join(here, name), encoding='utf-8') as f:
        return f.read()


requires = [
    'chameleon',
    # The embedded store's index relies on mongomock's internals: the
    # releases it was tested with (m01.remote.store.embedded.compat).
    'mongomock >= 4.3, < 4.4',
    # m01remote tells a configuration it cannot load by its errors.
    'plaster',
    'pymongo',
    'pyramid >= 2.0',
    'pyramid_chameleon',
    'pyramid_tm',
    'transaction >= 3.0',
    'tzdata',
    'waitress',
    'zope.component',
    'zope.interface',
]

#: The outbox (m01.remote.outbox): jobs committed with the site's own SQL
#: rows.
sqlalchemy_requires = [
    'SQLAlchemy >= 2.0',
    'zope.sqlalchemy >= 2.0',
]

testing_requires = sqlalchemy_requires + [
    'beautifulsoup4',
    'hypothesis',
    # The tracing tests export spans to the SDK's in-memory exporter.
    'opentelemetry-sdk >= 1.20',
    # Every answer of the JSON API in the tests is checked against its
    # OpenAPI document.
    'openapi-core == 0.23.1',
    # A host site on the site's own database beside the queue: SQLAlchemy
    # on PostgreSQL (one-phase and two-phase zope.sqlalchemy) and ZODB,
    # with pyramid_retry retrying what their COMMIT refused (SQLAlchemy
    # and zope.sqlalchemy come with the sqlalchemy extra, above).
    'psycopg[binary] >= 3.1',
    'pyramid_retry',
    'pyramid_zodbconn',
    'pytest',
    # The suite in parallel processes (the README's test command).
    'pytest-xdist',
    'ruff',
    'selenium',
    'waitress',
    'WebTest',
    'ZODB',
    'build',
]

# Tracing: a job keeps the trace context of the span active when it was
# added, and each attempt's run is a span of that trace.
otel_requires = ['opentelemetry-api >= 1.20']

# The Sphinx documentation in docs/: its build and its doctests.
docs_requires = [
    'sphinx',
    # autodoc for zope.interface interfaces (the API reference).
    'sphinxcontrib-zopeext',
]

setup(
    name='m01.remote',
    version='1.0.0.dev0',
    description='A remote processing queue for Pyramid, stored in MongoDB',
    long_description=read('README.rst') + '\n\n' + read('CHANGES.rst'),
    long_description_content_type='text/x-rst',
    classifiers=[
        'Framework :: Pyramid',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.11',
        'License :: OSI Approved :: Zope Public License',
        'Topic :: Internet :: WWW/HTTP :: WSGI :: Application',
    ],
    keywords='pyramid mongodb queue jobs scheduler cron worker',
    license='ZPL 2.1',
    # m01 is an implicit namespace package: every package under it is
    # found, so a new subpackage cannot be left out of the wheel. The
    # templates live at the top of the repository and are installed as
    # the m01.remote.templates package.
    packages=find_namespace_packages(
        where='src', include=['m01.*'], exclude=['*.__pycache__'])
    + ['m01.remote.templates'],
    package_dir={
        '': 'src',
        'm01.remote.templates': 'templates',
    },
    # The pages' stylesheet and script are served from the package, and
    # so is the JSON API's OpenAPI document.
    package_data={'m01.remote.templates': ['*.pt', 'static/*'],
                  'm01.remote': ['openapi.json']},
    include_package_data=True,
    zip_safe=False,
    python_requires='>=3.10',
    install_requires=requires,
    extras_require={'testing': testing_requires, 'docs': docs_requires,
                    'sqlalchemy': sqlalchemy_requires,
                    'otel': otel_requires},
    entry_points={
        'console_scripts': [
            'm01remote = m01.remote.console:main',
        ],
    },
)

"""The outbox: a job added in a request is committed with the site's own
SQL rows, and reaches the queue even when MongoDB does not answer then.

Needs the ``sqlalchemy`` extra (``pip install 'm01.remote[sqlalchemy]'``:
SQLAlchemy 2 and zope.sqlalchemy). A site turns it on with::

    config.include('m01.remote')
    config.include('m01.remote.outbox')
    config.set_remote_outbox(session=lambda request: request.dbsession)

and creates the table (``outbox_table(metadata)`` on its own metadata,
for its migrations, or ``create_outbox_table(engine)``). From then on,
``request.remote_processor.addJob()`` writes the job as a row of the
request's session (``m01.remote.outbox.jobs``); the workers' upkeep
sweeps what was left behind.
"""
from m01.remote.outbox.config import set_remote_outbox
from m01.remote.outbox.jobs import JobOutbox
from m01.remote.outbox.table import (
    TABLE_NAME,
    create_outbox_table,
    outbox,
    outbox_table,
)

__all__ = ['JobOutbox', 'TABLE_NAME', 'create_outbox_table', 'outbox',
           'outbox_table', 'set_remote_outbox', 'includeme']


def includeme(config):
    """Add the ``config.set_remote_outbox`` directive."""
    config.add_directive('set_remote_outbox', set_remote_outbox)

"""The outbox table: one row per job committed and not in the queue yet.

The table is the site's: define it on the site's own ``MetaData`` with
``outbox_table(metadata)`` so that its migrations create it, or let
``create_outbox_table(engine)`` create the one defined here.
"""
import sqlalchemy as sa

#: The table's name unless the site names it otherwise.
TABLE_NAME = 'm01_remote_outbox'

#: The columns the outbox reads and writes.
COLUMNS = ('id', 'name', 'document', 'added')


def outbox_table(metadata, name=TABLE_NAME, schema=None):
    """Define the outbox table ``name`` on ``metadata`` and return it.

    ``id`` is the job's id (its ObjectId in hex), ``name`` its factory,
    ``document`` the whole job document as BSON, exactly as the queue
    stores it, and ``added`` the time it was written (UTC), by which the
    sweep takes the oldest first.
    """
    return sa.Table(
        name, metadata,
        sa.Column('id', sa.String(24), primary_key=True),
        sa.Column('name', sa.Text, nullable=False),
        sa.Column('document', sa.LargeBinary, nullable=False),
        sa.Column('added', sa.DateTime, nullable=False),
        sa.Index('%s_added' % name, 'added'),
        schema=schema)


#: The outbox table on a ``MetaData`` of its own.
metadata = sa.MetaData()
outbox = outbox_table(metadata)


def create_outbox_table(bind, table=outbox):
    """Create ``table`` (default: ``outbox``) through ``bind`` (an engine
    or a connection) unless it exists."""
    table.create(bind, checkfirst=True)


def checkTable(table):
    """Raise ValueError unless ``table`` is a ``Table`` with the outbox's
    columns."""
    if not isinstance(table, sa.Table):
        raise ValueError('The outbox table is an SQLAlchemy Table made by '
                         'm01.remote.outbox.outbox_table(), not %r'
                         % (table,))
    missing = [name for name in COLUMNS if name not in table.c]
    if missing:
        raise ValueError('Table %s has no column %s: make it with '
                         'm01.remote.outbox.outbox_table()'
                         % (table.name, ', '.join(missing)))
    return table

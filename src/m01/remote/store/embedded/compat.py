"""Which mongomock runs here, and whether the embedded store's index fits
it.

The index (``index``, ``updates``) reaches into mongomock's internals: a
collection's ``_iter_documents`` and ``_update`` methods, its store's
``_documents`` dictionary and three helpers. ``setup.py`` pins mongomock
to the releases tested with it (``TESTED``); ``indexed()`` checks, once,
that the mongomock imported is one of them and has those internals. When
it is not, the embedded store warns once and runs on plain mongomock:
every claim then copies and sorts the queued jobs, slower but correct.
"""
import logging
import threading

import mongomock
import mongomock.filtering
import mongomock.helpers

logger = logging.getLogger('m01.remote')

#: The mongomock releases the index was tested with: from the first,
#: up to (not including) the second.
TESTED = ((4, 3), (4, 4))

_checked = None
_lock = threading.Lock()


def version(text=None):
    """mongomock's release as a tuple of numbers, ``(0,)`` when unknown."""
    numbers = []
    for part in (text or getattr(mongomock, '__version__', '')).split('.'):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers) or (0,)


def missing():
    """The internals the index needs that this mongomock lacks."""
    wanted = [(mongomock.Collection, '_iter_documents'),
              (mongomock.Collection, '_update'),
              (mongomock.filtering, 'filter_applies'),
              (mongomock.helpers, 'patch_datetime_awareness_in_document'),
              (mongomock.helpers,
               'make_datetime_timezone_aware_in_document')]
    lacking = ['%s.%s' % (owner.__name__, name) for owner, name in wanted
               if not callable(getattr(owner, name, None))]
    collection = mongomock.MongoClient().db.probe
    if not isinstance(getattr(getattr(collection, '_store', None),
                              '_documents', None), dict):
        lacking.append('Collection._store._documents')
    return lacking


def check(release=None, lacking=None):
    """Whether the index fits the mongomock given (default: this one);
    a warning when it does not."""
    release = version() if release is None else release
    lacking = missing() if lacking is None else lacking
    low, high = TESTED
    if low <= release < high and not lacking:
        return True
    logger.warning(
        'mongomock %s is not a release the embedded store was tested with '
        '(%s to before %s)%s: it runs on plain mongomock, slower but '
        'correct', '.'.join(map(str, release)), '.'.join(map(str, low)),
        '.'.join(map(str, high)),
        ', and lacks %s' % ', '.join(lacking) if lacking else '')
    return False


def indexed():
    """Whether the embedded store uses its index: checked once."""
    global _checked
    if _checked is None:
        with _lock:
            if _checked is None:
                _checked = check()
    return _checked

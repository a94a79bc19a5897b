"""Search terms: what a job can be found by, written with the job.

A job carries ``terms``, a list of normalised words: its id and the words
and values of its input when it is added, the words of its output or its
error with each outcome. MongoDB serves ``{terms: {$all: [...]}}`` from
the multikey index the processor creates (``TERMS_INDEX``); a search is
the same normalisation applied to the text typed, so "Invoice-42" finds
a job whose input holds ``{"invoice": 42}`` or the text "invoice 42".

Everything is bounded, whatever a job holds: the words are read from at
most ``MAX_SCANNED`` characters of text and ``MAX_VALUES`` values, each
word is cut at ``MAX_TERM_LENGTH`` characters, a job keeps at most
``MAX_TERMS`` (``MAX_ADDED_TERMS`` of them from its input), each outcome
adds at most ``MAX_OUTCOME_TERMS``, and a search takes at most
``MAX_QUERY_TERMS`` words.
"""
import datetime
import re

import pymongo

from m01.remote.limits import MAX_TERM_LENGTH, MAX_TERMS

#: Terms a job keeps, at most (``m01.remote.limits``); and those its id
#: and input give it.
MAX_ADDED_TERMS = 60
#: Terms one outcome (an output, an error) adds, at most.
MAX_OUTCOME_TERMS = 20
#: Characters of text and values read from one value, at most.
MAX_SCANNED = 64 * 1024
MAX_VALUES = 10000
#: Words a search takes, at most; and the longest text it reads.
MAX_QUERY_TERMS = 10
MAX_QUERY_TEXT = 500

#: The index ``{terms: {$all: ...}}`` is served from, in the jobs page's
#: default order.
TERMS_INDEX = [('terms', pymongo.ASCENDING), ('created', pymongo.DESCENDING),
               ('_id', pymongo.DESCENDING)]

_WORD = re.compile(r'\w+')
# The time stamp the queue puts before every error message: the same
# for no two errors, found by no one.
_STAMP = re.compile(r'^\[[0-9T:+.-]+\] ')


def _texts(value):
    """The texts of a value: strings, numbers, dict keys, walked with a
    stack of our own (never recursing), at most ``MAX_VALUES`` of them."""
    stack = [value]
    seen = 0
    while stack and seen < MAX_VALUES:
        value = stack.pop()
        seen += 1
        if isinstance(value, str):
            yield value
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, (int, float)):
            yield str(value)
        elif isinstance(value, dict):
            items = list(value.items())[:MAX_VALUES]
            for key, child in reversed(items):
                stack.append(child)
                stack.append(key)
        elif isinstance(value, (list, tuple)):
            stack.extend(reversed(list(value[:MAX_VALUES])))
        elif isinstance(value, datetime.datetime):
            continue
        else:
            yield str(value)


def words(text):
    """The normalised words of ``text``: lower case, each cut at
    ``MAX_TERM_LENGTH`` characters."""
    return [word[:MAX_TERM_LENGTH] for word in _WORD.findall(text.lower())]


def termsOf(*values, limit=MAX_TERMS, exclude=()):
    """The distinct terms of ``values`` in the order met, at most
    ``limit``, none of those in ``exclude``."""
    terms = []
    seen = set(exclude)
    scanned = 0
    for value in values:
        for text in _texts(value):
            text = text[:MAX_SCANNED - scanned]
            scanned += len(text)
            for word in words(text):
                if word not in seen:
                    seen.add(word)
                    terms.append(word)
                    if len(terms) >= limit:
                        return terms
            if scanned >= MAX_SCANNED:
                return terms
    return terms


def addedTerms(jobid, input):
    """The terms of a job being added: its id, then its input's."""
    return termsOf(str(jobid), input, limit=MAX_ADDED_TERMS)


def editedTerms(jobid, terms, oldInput, newInput):
    """The terms of the job ``jobid`` holding ``terms`` once its input is
    ``newInput`` instead of ``oldInput``: its id's and the new input's,
    then those its outcomes added (which never repeat its input's)."""
    old = set(addedTerms(jobid, oldInput))
    added = addedTerms(jobid, newInput)
    new = set(added)
    kept = [term for term in terms or () if term not in old and
            term not in new]
    return (added + kept)[:MAX_TERMS]


def errorTerms(message, source=None):
    """The terms an error adds to a job, leaving out the time stamp and
    the words its input and earlier errors gave already."""
    if not isinstance(message, str):
        message = str(message)
    known = _knownWords(source)
    return termsOf(_STAMP.sub('', message), limit=MAX_OUTCOME_TERMS,
                   exclude=known)


def outputTerms(output, source=None):
    """The terms an output adds to a job, but those of its input."""
    return termsOf(output, limit=MAX_OUTCOME_TERMS,
                   exclude=_knownWords(source))


def _knownWords(source):
    """Words a job (a document or a job object) has surely: its input's
    and its earlier errors' (what an outcome need not push again)."""
    if source is None:
        return ()
    get = source.get if isinstance(source, dict) else \
        lambda name: getattr(source, name, None)
    errors = [_STAMP.sub('', str(e)) for e in (get('errors') or ())[-5:]]
    return set(termsOf(get('input'), limit=MAX_ADDED_TERMS)) | set(
        termsOf(errors, limit=MAX_TERMS))


def pushTerms(update, terms):
    """Add pushing ``terms`` (capped at ``MAX_TERMS`` on the job) to an
    update; the update."""
    if terms:
        update.setdefault('$push', {})['terms'] = {
            '$each': list(terms), '$slice': MAX_TERMS}
    return update


def queryTerms(text):
    """The terms a search for ``text`` asks for; ValueError when it is
    too long or has too many words."""
    if not isinstance(text, str):
        raise ValueError('A search is text, not %r' % (text,))
    if len(text) > MAX_QUERY_TEXT:
        raise ValueError('A search has at most %d characters, not %d'
                         % (MAX_QUERY_TEXT, len(text)))
    terms = []
    for word in words(text):
        if word not in terms:
            terms.append(word)
    if len(terms) > MAX_QUERY_TERMS:
        raise ValueError('A search takes at most %d words, not %d'
                         % (MAX_QUERY_TERMS, len(terms)))
    return terms

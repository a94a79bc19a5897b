"""Ini files for ``pserve`` and ``m01remote`` processes started by the
tests and the fault scenarios."""

#: The log line format of ``pasteIni``.
LOG_FORMAT = ('%(asctime)s %(levelname)s [%(process)d %(threadName)s] '
              '%(name)s %(message)s')


LOGGING_SECTIONS = """
[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = {logFormat}
"""


def pasteIni(use, settings, logFormat=LOG_FORMAT):
    """The text of an ini file for ``pserve`` and ``m01remote``: the
    application ``use`` names, with ``settings``, logging INFO and above
    to stderr in ``logFormat``."""
    lines = ''.join('%s = %s\n' % item for item in settings.items())
    return '[app:main]\nuse = %s\n%s%s' % (
        use, lines, LOGGING_SECTIONS.format(logFormat=logFormat))

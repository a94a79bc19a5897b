"""The management pages of a remote processor.

``config.include('m01.remote.views')`` registers them for the
``m01.remote`` route (added by ``m01.remote.includeme``), each requiring
the configured permission. The host application provides the security
policy and the session (flash messages and CSRF tokens live there).
"""


def includeme(config):
    config.include('pyramid_chameleon')
    config.include('m01.remote.views.security')
    config.include('m01.remote.views.assets')
    config.scan('m01.remote.views', categories=('m01.remote',))

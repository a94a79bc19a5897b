"""Checking the JSON API's answers against its OpenAPI document
(``m01/remote/openapi.json``) with openapi-core: a WebTest app whose
every answer under the API is validated, request and response."""
import json

import webtest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from m01.remote.views.api import spec


class CheckedRequest:
    """A WebTest request as openapi-core reads one."""

    def __init__(self, request):
        self.host_url = request.host_url
        self.path = request.path
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.GET.items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(list(request.cookies.items())))
        self.content_type = (request.content_type or '').lower()
        self.body = request.body or None


class CheckedResponse:

    def __init__(self, response):
        self.status_code = response.status_int
        self.headers = Headers(list(response.headers.items()))
        self.content_type = (response.content_type or '').lower()
        self.data = response.body


class CheckedApp(webtest.TestApp):
    """Validates every answer under ``/remote/api/`` against the document,
    and counts them (``checked``)."""

    openapi = None

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        if CheckedApp.openapi is None:
            CheckedApp.openapi = OpenAPI.from_dict(spec())
        self.checked = 0

    def do_request(self, req, status=None, expect_errors=None):
        response = super().do_request(req, status=status,
                                      expect_errors=expect_errors)
        if req.path.startswith('/remote/api/'):
            request = CheckedRequest(req)
            checked = CheckedResponse(response)
            if response.status_int < 400:
                self.openapi.validate_request(request)
            self.openapi.validate_response(request, checked)
            self.checked += 1
        return response


def body(response):
    return json.loads(response.body)

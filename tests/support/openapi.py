"""Factorial's OpenAPI document (docs/specs/) and openapi-core's request
and response protocols over httpx exchanges, for the conformance tests."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.support.harness import REPO

SPEC = REPO / "docs" / "specs" / "factorial-ats-2026-07-01.yaml"  # Factorial's official document, kept in the repo
SPEC_HOST = "https://api.factorialhr.com"


class OpenAPIRequest:
    """openapi-core's request protocol over an httpx request, rebased on the spec's server."""

    def __init__(self, request: httpx.Request) -> None:
        url = urlsplit(str(request.url))
        self.host_url = SPEC_HOST
        self.path = url.path
        self.method = request.method.lower()
        query = ImmutableMultiDict(parse_qsl(url.query, keep_blank_values=True))
        self.parameters = RequestParameters(query=query, header=Headers(dict(request.headers)), cookie={})
        self.content_type = request.headers.get("content-type", "application/json")  # with its boundary
        self.body = request.content if request.method in ("POST", "PUT") else None

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


class OpenAPIResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.data = response.content
        self.content_type = response.headers.get("content-type", "application/json").split(";")[0]
        self.headers = Headers(dict(response.headers))


def load_factorial_openapi() -> OpenAPI:
    """The parsed document (in the repository, so the check never skips)."""
    return OpenAPI.from_dict(yaml.safe_load(SPEC.read_text()))

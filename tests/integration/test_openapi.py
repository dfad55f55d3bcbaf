"""schemathesis against the local API with openapi.yaml: every response the API gives to generated
requests (valid and invalid parameters) has a documented status, content type, headers and
body schema, and none is a server error."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import app
from chalicelib.kernel.aws import reset as reset_clients
from tests.localapi import local_api_url
from tests.oidc import Issuer, policy_yaml
from tests.paths import ROOT

# Locally every request passes Chalice's IAM authorizer; the token route still answers 401 to a
# request without an IAM principal, which is what the document says.
pytestmark = pytest.mark.filterwarnings("ignore:IAMAuthorizer is not a supported")

OPENAPI = ROOT / "openapi.yaml"
STATIC_KEY = "schemathesis-local-key"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

schema = schemathesis.openapi.from_path(str(OPENAPI))
# Chalice's local server (http.server) answers TRACE and QUERY with its own 501 page, which API
# Gateway never serves; the other unexpected methods are still tried.
schema.config.phases.coverage.unexpected_methods = {"post", "put", "delete", "patch"}


@pytest.fixture(scope="module")
def api_url() -> str:
    return local_api_url()


@pytest.fixture
def api_policy(aws, policy_file, tmp_path: Path) -> Iterator[None]:
    reset_clients()
    jwks = Issuer().write_jwks(tmp_path / "jwks.json")
    # Limits lifted: schemathesis is one caller sending hundreds of requests (429 is documented
    # on every route, but would leave the rest of the answers unexplored).
    policy_file(
        policy_yaml(
            jwks,
            static_sha256=hashlib.sha256(STATIC_KEY.encode()).hexdigest(),
            rate_limits="{per_caller_burst: 100000, per_address_burst: 100000}",
        )
    )
    yield
    reset_clients()


def test_the_document_covers_every_route_of_the_app() -> None:

    documented = set(yaml.safe_load(OPENAPI.read_text())["paths"])
    assert documented == set(app.app.routes)


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_openapi(case, api_url: str, api_policy: None) -> None:
    case.call_and_validate(
        base_url=api_url, headers={"Authorization": f"Bearer {STATIC_KEY}"}, checks=CHECKS
    )

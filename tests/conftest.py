"""Shared fixtures: one embedded AWS endpoint per test session, reset before every test.

Every test talks to ECR, DynamoDB, SQS and EventBridge through boto3 against that endpoint, so
botocore's service model checks each request and response.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from chalicelib.ecr.gateway import Registry
from chalicelib.kernel import aws as kernel_aws
from chalicelib.kernel.settings import get_settings
from steward_tools.local.server import EmbeddedAWS, bootstrap
from tests.aws_helpers import CallCounter

# Set before anything builds a boto3 client: nothing in the suite may reach real AWS.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "EcrSteward",
        "POWERTOOLS_SERVICE_NAME": "ecr-steward",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)

ACCOUNT = "123456789012"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def embedded_aws() -> Iterator[object]:

    with EmbeddedAWS(port=0) as aws:
        os.environ["AWS_ENDPOINT_URL"] = aws.endpoint_url
        yield aws
        os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture(scope="session")
def boto_session(embedded_aws: object):
    """One boto3 session for the run: building one reloads botocore's models (~0.3 s)."""

    return boto3.session.Session()


@pytest.fixture
def aws(embedded_aws: object, boto_session: object) -> Iterator[object]:
    """The embedded endpoint with empty state, and the local event plumbing bootstrapped."""

    embedded_aws.reset()  # type: ignore[attr-defined]
    embedded_aws.resources = bootstrap(boto_session, account=ACCOUNT, region=REGION)  # type: ignore[attr-defined]
    yield embedded_aws


@pytest.fixture
def registry(aws: object):

    return Registry(region=REGION)


@pytest.fixture
def policy_file(tmp_path, monkeypatch):
    """Point the service at a policy file: the example policy, or the text given to the fixture.

    Each call writes a new file, so the service's (path, mtime) policy cache always sees it.
    """

    counter = iter(range(1_000_000))

    def use(text: str | None = None) -> Path:
        path = tmp_path / f"policy-{next(counter)}.yaml"
        source = Path(__file__).resolve().parent.parent / "policy.example.yaml"
        path.write_text(source.read_text() if text is None else text)
        monkeypatch.setenv("STEWARD_POLICY", str(path))
        get_settings.cache_clear()
        return path

    use()
    yield use
    get_settings.cache_clear()


TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test is marked with its tier, from its folder; a unit test may not use the embedded
    backend (that is what makes `make test-unit` run in seconds)."""
    for item in items:
        tier = next((t for t in TIERS if f"/tests/{t}/" in str(item.path)), None)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, integration or e2e")
        item.add_marker(getattr(pytest.mark, tier))
        if tier == "unit" and "embedded_aws" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid}: a unit test uses the embedded backend")


@pytest.fixture
def counted(aws: object) -> Iterator[CallCounter]:
    """Count the calls of every client `chalicelib.kernel.aws` builds during the test."""
    kernel_aws.reset()  # the clients built from here on report to the counter
    counter = CallCounter()
    kernel_aws.session().events.register("before-call", counter)
    yield counter
    kernel_aws.reset()

"""Issue 12: each finding of the attack on `make run`, replayed through the Lambda entry point
(API Gateway proxy events) against the embedded backend. Each test failed before the fix."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from moto.sts.models import sts_backends

import app
from chalicelib.gate.records import GateDecision, GateRecord, records
from chalicelib.kernel import aws as kernel_aws
from chalicelib.kernel.aws import reset as reset_clients
from chalicelib.kernel.settings import get_settings
from chalicelib.tokens import authn
from steward_tools.cli import main
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.local.tokens import credential_of
from tests.integration.test_tokens import ACCOUNT, api_event, pull
from tests.oidc import Issuer, policy_yaml

STATIC_KEY = "local-dev-key-0123456789"
DIGEST = "sha256:" + "ab" * 32
MISSING = "sha256:" + "cd" * 32


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def secure_policy(aws, policy_file, issuer: Issuer, tmp_path: Path) -> Iterator[None]:
    reset_clients()
    jwks = issuer.write_jwks(tmp_path / "jwks.json")
    sha = hashlib.sha256(STATIC_KEY.encode()).hexdigest()
    policy_file(policy_yaml(jwks, static_sha256=sha))
    yield
    reset_clients()


def request(
    path: str,
    query: dict[str, str] | None = None,
    bearer: str | None = None,
    identity: dict[str, Any] | None = None,
    source_ip: str = "203.0.113.7",
) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    event = api_event(path, query, headers, {"sourceIp": source_ip, **(identity or {})})
    if path.startswith("/v1/images/"):
        # API Gateway routes by the resource template and passes the segments decoded once.
        _, _, _, repository, digest, *rest = path.split("/")
        resource = "/v1/images/{repository}/{digest}/" + "/".join(rest)
        event["resource"] = event["requestContext"]["resourcePath"] = resource
        event["pathParameters"] = {"repository": repository, "digest": digest}
    response = app.app(event, LocalLambdaContext())
    return response["statusCode"], response["headers"], json.loads(response["body"])


def assumed_roles() -> list[Any]:
    return [r for b in sts_backends.values() for x in b.values() for r in x.assumed_roles]


def gate_path(repository: str, digest: str, iam: bool = False) -> str:
    return f"/v1/images/{quote(repository, safe='')}/{digest}/gate" + ("/iam" if iam else "")


def put_record(repository: str, digest: str = DIGEST, account: str = ACCOUNT) -> None:
    now = datetime.now(UTC)
    records().put(
        GateRecord(
            repository=repository,
            digest=digest,
            account=account,
            region="us-east-1",
            pending_since=now,
            status="fail",
            decision=GateDecision(verdict="fail", reasons=["CRITICAL: 1 findings"]),
            decided_at=now,
        )
    )


# --- 1. the gate route ---------------------------------------------------------------------------


def test_gate_route_wants_a_caller_whose_grant_covers_the_repository(
    secure_policy, issuer: Issuer
) -> None:
    put_record("team-a/web")
    # Unauthenticated: 401 whether or not the digest exists, and the same body.
    found = request(gate_path("team-a/web", DIGEST))
    missing = request(gate_path("team-a/web", MISSING))
    assert found[0] == missing[0] == 401
    assert found[2] == missing[2]
    assert found[1]["WWW-Authenticate"] == 'Bearer realm="ecr-steward"'
    assert ACCOUNT not in json.dumps(found[2])

    status, _, body = request(gate_path("team-a/web", DIGEST), bearer=issuer.github("acme/app"))
    assert status == 200, body
    assert body["status"] == "fail"

    # A grant for other repositories: 403, insufficient_scope, nothing about the record.
    status, headers, body = request(
        gate_path("team-a/web", DIGEST),
        bearer=issuer.github("acme/deployer", ref="refs/heads/feature"),
    )
    assert status == 403, body
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]

    # A record in a registry no covering grant names reads as absent.
    put_record("team-a/other", account="210987654321")
    status, _, _ = request(gate_path("team-a/other", DIGEST), bearer=issuer.github("acme/app"))
    assert status == 404


def test_gate_route_by_iam(secure_policy) -> None:
    put_record("team-b/api")
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/session-1"
    status, _, body = request(gate_path("team-b/api", DIGEST, iam=True), identity={"userArn": arn})
    assert status == 200, body
    status, _, body = request(gate_path("team-b/api", DIGEST, iam=True))
    assert status == 401
    assert "SigV4" in body["message"]


# --- 2. regions, STS and the caches --------------------------------------------------------------


def test_invalid_regions_never_reach_sts(
    secure_policy, issuer: Issuer, policy_file, tmp_path: Path
) -> None:
    jwks = issuer.write_jwks(tmp_path / "jwks.json")
    policy_file(policy_yaml(jwks, rate_limits="{per_caller_burst: 100}"))
    bearer = issuer.github("acme/app")
    hosts = [f"{ACCOUNT}.dkr.ecr.r{n}x.amazonaws.com" for n in range(50)]
    hosts += [f"{ACCOUNT}.dkr.ecr.-.amazonaws.com", f"{ACCOUNT}.dkr.ecr.a-.amazonaws.com"]
    hosts += [f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com"]  # a China region, commercial suffix
    for host in hosts:
        status, headers, body = request("/v1/token", {**pull(), "registry": host}, bearer)
        assert status == 400, (host, body)
        assert 'error="invalid_request"' in headers["WWW-Authenticate"]
    assert assumed_roles() == []


# --- 6 and 8. authentication first, RFC 6750, bounded echo, rate limits --------------------------


def test_authentication_comes_before_validation(secure_policy, issuer: Issuer) -> None:
    status, headers, body = request("/v1/token", {"registry": "nonsense", "access": "admin"})
    assert status == 401, body
    assert headers["WWW-Authenticate"] == 'Bearer realm="ecr-steward"'
    assert "access" not in body["message"] and "registry" not in body["message"]

    status, headers, body = request(
        "/v1/token", {"registry": "nonsense"}, Issuer().github("acme/app")
    )
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="ecr-steward", error="invalid_token"'

    status, headers, _ = request("/v1/token", pull("team-b/api"), issuer.github("acme/app"))
    assert status == 403
    assert headers["WWW-Authenticate"] == 'Bearer realm="ecr-steward", error="insufficient_scope"'


def test_a_huge_forged_token_is_not_echoed_or_logged_whole(
    secure_policy, issuer: Issuer, capsys
) -> None:
    forged = "eyJhbGciOiJub25lIn0." + "A" * 40_000 + ".sig"
    status, _, body = request("/v1/token", pull(), forged)
    assert status == 401
    assert len(json.dumps(body)) < 300
    assert "AAAAAAAAAA" not in json.dumps(body)
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(len(line) for line in lines) < 2000

    # Caller input that is echoed is bounded and escaped: no raw newline reaches the answer.
    status, _, body = request(
        "/v1/token", {"registry": "x\n" + "y" * 5000}, issuer.github("acme/app")
    )
    assert status == 400
    assert "\n" not in body["message"] and len(body["message"]) < 300


def test_forged_requests_from_one_address_get_429(secure_policy) -> None:
    statuses = []
    for _ in range(60):
        status, headers, _ = request("/v1/token", pull(), "forged.forged.forged")
        statuses.append(status)
    assert statuses[:40] == [401] * 40
    assert set(statuses[40:]) == {429}
    assert int(headers["Retry-After"]) >= 1
    # Another address is not held up by this one.
    status, _, _ = request("/v1/token", pull(), "forged.forged.forged", source_ip="198.51.100.9")
    assert status == 401


def test_one_caller_is_limited_without_throttling_others(secure_policy, issuer: Issuer) -> None:
    app_token = issuer.github("acme/app")
    statuses = [request("/v1/token", pull(), app_token)[0] for _ in range(25)]
    assert statuses[:20] == [200] * 20
    assert 429 in statuses[20:]
    assert len(assumed_roles()) == 1
    status, _, body = request(
        "/v1/token",
        {"registry": ACCOUNT, "repository": "team-b/api", "access": "push"},
        issuer.github("acme/deployer"),
    )
    assert status == 200, body


# --- 7. /health ----------------------------------------------------------------------------------


def test_health_names_no_path(secure_policy, policy_file) -> None:
    status, _, body = request("/health")
    assert status == 200
    text = json.dumps(body)
    assert "/" not in text.replace("ecr-steward", "")
    assert "policy" in body and "fingerprint" in body["policy"]


# --- 9. attribution ------------------------------------------------------------------------------


def test_a_jwt_without_sub_is_refused(secure_policy, issuer: Issuer) -> None:
    subjects: list[dict[str, Any]] = [{}, {"sub": ""}, {"sub": "  "}]
    for subject in subjects:
        token = issuer.token(repository="acme/app", ref="refs/heads/main", **subject)
        status, _, body = request("/v1/token", pull(), token)
        assert status == 401, (subject, body)
        assert "sub" in body["message"]


def test_the_sts_session_names_the_caller(secure_policy, issuer: Issuer, capsys) -> None:
    sent: list[dict[str, Any]] = []
    kernel_aws.sts().meta.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params))
    )
    status, _, _ = request("/v1/token", pull(), issuer.github("acme/app"))
    assert status == 200
    status, _, _ = request("/v1/token", pull(), issuer.github("acme/app2"))
    assert status == 200
    identities = [call["SourceIdentity"] for call in sent]
    assert len(set(identities)) == 2  # one session per caller
    assert identities[0].startswith("github-repo-acme-app-ref-refs-heads-main.")
    vended = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"token vended"' in line
    ]
    assert [v["source_identity"] for v in vended] == identities
    assert vended[0]["caller"] == "github:repo:acme/app:ref:refs/heads/main"


# --- 10. hosts keep their endpoint; ASCII digits; no trailing newline ----------------------------


def test_fips_and_china_hosts_keep_their_endpoint(secure_policy, issuer: Issuer) -> None:
    bearer = issuer.github("acme/app")
    fips = f"{ACCOUNT}.dkr.ecr-fips.us-east-1.amazonaws.com"
    status, _, body = request("/v1/token", {**pull(), "registry": fips}, bearer)
    assert status == 200, body
    assert body["proxyEndpoint"] == f"https://{fips}"

    status, _, body = request(
        "/v1/token",
        {**pull(), "registry": f"{ACCOUNT}.dkr.ecr-fips.eu-west-1.amazonaws.com"},
        bearer,
    )
    assert status == 400, body  # no FIPS endpoint outside the US

    china = f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn"
    status, _, body = request("/v1/token", {**pull(), "registry": china}, bearer)
    assert status == 200, body
    assert body["proxyEndpoint"] == f"https://{china}"
    session = credential_of(body["password"])
    assert session["role_arn"].startswith("arn:aws-cn:iam::")
    assert session["session_policy"]["Statement"][1]["Resource"] == [
        f"arn:aws-cn:ecr:cn-north-1:{ACCOUNT}:repository/team-a/*"
    ]


def test_a_registry_outside_the_vending_roles_partition_is_refused(
    secure_policy, issuer: Issuer, monkeypatch
) -> None:
    monkeypatch.setenv("STEWARD_TOKEN_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/vending")
    get_settings.cache_clear()
    china = f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn"
    status, _, body = request("/v1/token", {**pull(), "registry": china}, issuer.github("acme/app"))
    get_settings.cache_clear()
    assert status == 403, body
    assert "aws-cn" in body["message"]
    assert assumed_roles() == []


def test_other_scripts_digits_and_trailing_newlines_are_refused(
    secure_policy, issuer: Issuer
) -> None:
    bearer = issuer.github("acme/app")
    arabic_indic = "١٢٣٤٥٦٧٨٩٠١٢"
    for query in (
        {**pull(), "registry": arabic_indic},
        {**pull(), "registry": f"{arabic_indic}.dkr.ecr.us-east-1.amazonaws.com"},
        pull("team-a/web\n"),
    ):
        status, _, body = request("/v1/token", query, bearer)
        assert status == 400, (query, body)
    assert assumed_roles() == []


# --- JWKS ----------------------------------------------------------------------------------------


def test_the_jwks_file_is_parsed_once_and_each_token_decoded_once(
    secure_policy, issuer: Issuer, monkeypatch
) -> None:
    parsed: list[int] = []
    decoded: list[int] = []
    real_parse, real_decode = authn._parse, authn.jwt.decode

    def parse(document: dict[str, Any]) -> Any:
        parsed.append(1)
        return real_parse(document)

    def decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(authn, "_parse", parse)
    monkeypatch.setattr(authn.jwt, "decode", decode)
    bearer, other = issuer.github("acme/app"), issuer.github("acme/app", run_id="2")
    for _ in range(5):
        assert request("/v1/token", pull(), bearer)[0] == 200
        assert request("/v1/token", pull(), other)[0] == 200
    assert len(parsed) <= 1  # 0 when an earlier test of this process loaded the same keys
    assert len(decoded) == 2  # one decode per token: a repeated token is verified already


def test_a_remembered_token_is_verified_again_once_it_expires(
    secure_policy, issuer: Issuer, monkeypatch
) -> None:
    verified: list[str] = []
    real_verify = authn._verify_jwt

    def verify(token: str, issuers: Any) -> Any:
        verified.append(token)
        return real_verify(token, issuers)

    monkeypatch.setattr(authn, "_verify_jwt", verify)
    bearer = issuer.github("acme/app", run_id="expiring")  # exp in 300 s, leeway 60 s
    assert request("/v1/token", pull(), bearer)[0] == 200
    assert request("/v1/token", pull(), bearer)[0] == 200
    assert len(verified) == 1
    later = authn.time.time() + 361
    monkeypatch.setattr(authn.time, "time", lambda: later)
    request("/v1/token", pull(), bearer)
    assert len(verified) == 2


def test_policy_validate_warns_about_an_unprotected_promotion_tag(tmp_path: Path) -> None:
    """A warning, not a refusal: the policy is valid and the service runs on it."""
    policy = tmp_path / "p.yaml"
    policy.write_text("gate:\n  rules:\n    - repositories: ['team/*']\n")
    result = CliRunner().invoke(main, ["policy", "validate", str(policy)])
    assert result.exit_code == 0
    assert "valid" in result.output
    assert "warning: gate.rules[0].promotion_tags: 'approved' on 'team/*'" in result.output

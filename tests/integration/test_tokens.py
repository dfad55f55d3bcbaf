"""GET /v1/token end to end: API Gateway proxy events, shaped as AWS sends them, through the
Lambda entry point (`app.app`), against the embedded STS and ECR."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.sts.models import sts_backends

import app
from chalicelib.ecr.access import PULL_ACTIONS
from chalicelib.ecr.errors import AccessDenied
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.aws import reset as reset_clients
from chalicelib.kernel.settings import RESOURCE_VARIABLES, get_settings
from chalicelib.policy.document import PolicyError, parse_policy
from chalicelib.tokens import authn, vend
from chalicelib.tokens.http import token_response
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.local.tokens import credential_of
from steward_tools.samples import build_image
from tests.aws_helpers import error_code
from tests.imagefactory import push_built
from tests.oidc import Issuer, policy_yaml

ACCOUNT = "123456789012"
STATIC_KEY = "local-dev-key-0123456789"


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def token_policy(aws, policy_file, issuer: Issuer, tmp_path: Path):
    reset_clients()
    jwks = issuer.write_jwks(tmp_path / "jwks.json")
    sha = hashlib.sha256(STATIC_KEY.encode()).hexdigest()
    policy_file(policy_yaml(jwks, static_sha256=sha))
    yield
    reset_clients()


def api_event(
    path: str,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event as API Gateway sends it."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "GET",
            "path": f"/api{path}",
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "accountId": ACCOUNT,
            "identity": {
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
                "userArn": None,
                "caller": None,
                "accessKey": None,
                **(identity or {}),
            },
        },
        "body": None,
        "isBase64Encoded": False,
    }


def call(
    query: dict[str, str] | None,
    bearer: str | None = None,
    path: str = "/v1/token",
    identity: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    response = app.app(api_event(path, query, headers, identity), LocalLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def pull(repository: str = "team-a/web", **extra: str) -> dict[str, str]:
    return {"registry": ACCOUNT, "repository": repository, "access": "pull", **extra}


# --- vending -------------------------------------------------------------------------------------


def test_two_grants_vend_credentials_of_different_scope(token_policy, issuer: Issuer) -> None:
    status, ci = call(pull("team-a/web"), issuer.github("acme/app"))
    assert status == 200, ci
    status, deployer = call(
        {"registry": ACCOUNT, "repository": "team-b/api", "access": "push"},
        issuer.github("acme/deployer"),
    )
    assert status == 200, deployer

    assert ci["scope"] == {
        "grant": "ci-pull",
        "registry": ACCOUNT,
        "region": "us-east-1",
        "repositories": ["team-a/*"],
        "access": "pull",
    }
    assert deployer["scope"]["grant"] == "deployer-push"
    assert deployer["scope"]["access"] == "push"
    assert ci["password"] != deployer["password"]
    assert ci["username"] == "AWS"
    assert ci["proxyEndpoint"] == f"https://{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"

    # What each password can do is the session policy of the assumed-role session behind it.
    ci_session = credential_of(ci["password"])
    deployer_session = credential_of(deployer["password"])
    assert ci_session["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/ecr-steward-token-vending"
    ci_scope = ci_session["session_policy"]["Statement"][1]
    assert ci_scope["Resource"] == [f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/team-a/*"]
    assert set(ci_scope["Action"]) == set(PULL_ACTIONS)
    deployer_scope = deployer_session["session_policy"]["Statement"][1]
    assert deployer_scope["Resource"] == [
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/team-b/api",
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/team-b/worker",
    ]
    assert "ecr:PutImage" in deployer_scope["Action"]
    # Each password stands for its own assumed-role session, named after its grant (what
    # CloudTrail shows): two scopes are never one session.
    assert ci_session["access_key_id"] != deployer_session["access_key_id"]
    assert ci_session["session_name"] == "steward-ci-pull-pull"
    assert deployer_session["session_name"] == "steward-deployer-push-push"


def vended_keys(password: str) -> tuple[str, str, str]:
    """The assumed-role session's keys a vended password stands for: what a holder of the
    password could do with the credentials behind it."""
    access_key = credential_of(password)["access_key_id"]
    session = next(
        role
        for by_partition in sts_backends.values()
        for backend in by_partition.values()
        for role in backend.assumed_roles
        if role.access_key_id == access_key
    )
    return session.access_key_id, session.secret_access_key, session.session_token


def session_ecr(password: str) -> Any:
    access_key, secret_key, token = vended_keys(password)
    return boto3.client(
        "ecr",
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
    )


def test_a_pull_credential_is_refused_push_and_other_repositories(
    token_policy, issuer: Issuer, registry
) -> None:
    image, other = build_image(seed=11), build_image(seed=12)
    for repository in ("team-a/web", "team-c/secret", "team-b/api"):
        registry.create_repository(repository)
    push_built(registry, image, "team-a/web", tag="1.0.0")
    push_built(registry, other, "team-c/secret", tag="1.0.0")
    status, ci = call(pull("team-a/web"), issuer.github("acme/app"))
    assert status == 200, ci
    ecr = session_ecr(ci["password"])

    # Within its scope the credential reads the image...
    got = ecr.batch_get_image(repositoryName="team-a/web", imageIds=[{"imageTag": "1.0.0"}])
    assert [i["imageId"]["imageDigest"] for i in got["images"]] == [image.digest]
    layer = json.loads(got["images"][0]["imageManifest"])["layers"][0]["digest"]
    url = ecr.get_download_url_for_layer(repositoryName="team-a/web", layerDigest=layer)
    assert url["layerDigest"] == layer and url["downloadUrl"]
    # ...but cannot push there, nor read a repository outside team-a/*.
    manifest = image.manifests[-1]
    with pytest.raises(ClientError) as push:
        ecr.put_image(
            repositoryName="team-a/web",
            imageManifest=manifest.body,
            imageManifestMediaType=manifest.media_type,
            imageTag="pushed-with-a-pull-credential",
        )
    assert error_code(push) == "AccessDeniedException"
    assert push.value.response["Error"]["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/ecr-steward-token-vending/"
        "steward-ci-pull-pull is not authorized to perform: ecr:PutImage on resource: "
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/team-a/web because no session policy "
        "allows the ecr:PutImage action"
    )
    with pytest.raises(ClientError) as read:
        ecr.batch_get_image(repositoryName="team-c/secret", imageIds=[{"imageTag": "1.0.0"}])
    assert error_code(read) == "AccessDeniedException"
    assert "repository/team-c/secret" in read.value.response["Error"]["Message"]
    # Nothing was written: the refused push left no tag.
    listed = boto3.client("ecr", region_name="us-east-1").list_images(repositoryName="team-a/web")
    assert [i.get("imageTag") for i in listed["imageIds"]] == ["1.0.0"]

    # A push grant's credential pushes to its own repositories, and only there.
    status, deployer = call(
        {"registry": ACCOUNT, "repository": "team-b/api", "access": "push"},
        issuer.github("acme/deployer"),
    )
    assert status == 200, deployer
    as_deployer = Registry.with_credentials("us-east-1", *vended_keys(deployer["password"]))
    assert push_built(as_deployer, image, "team-b/api", tag="1.0.0") == image.digest
    with pytest.raises(AccessDenied, match="repository/team-a/web because no session policy"):
        push_built(as_deployer, image, "team-a/web", tag="2.0.0")


def test_expiry_never_promises_more_than_the_session(token_policy, issuer: Issuer) -> None:
    before = datetime.now(UTC)
    status, body = call(pull(), issuer.github("acme/app"))
    assert status == 200
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    # ECR says 12 hours; the assumed session lasts one hour (role chaining's cap).
    assert before + timedelta(minutes=59) < expires <= before + timedelta(hours=1, seconds=5)


def test_many_concurrent_requests_of_one_scope_make_one_token_call(
    token_policy, issuer: Issuer, policy_file, tmp_path: Path
) -> None:
    jwks = issuer.write_jwks(tmp_path / "jwks.json")
    policy_file(policy_yaml(jwks, rate_limits="{per_caller_burst: 50}"))
    bearer = issuer.github("acme/app")
    results: list[tuple[int, dict[str, Any]]] = []
    barrier = threading.Barrier(24)

    class Request:
        query_params = pull()
        headers = {"authorization": f"Bearer {bearer}"}
        context: dict[str, Any] = {}

    def one() -> None:
        barrier.wait()
        response = token_response(Request(), via="bearer")
        results.append((response["status_code"], response["body"]))

    threads = [threading.Thread(target=one) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [status for status, _ in results] == [200] * 24
    assert len({body["password"] for _, body in results}) == 1
    vendor = next(iter(vend._VENDORS.values()))
    assert vendor.calls == {"assume_role": 1, "get_authorization_token": 1}
    # The embedded STS saw exactly one session too.
    assumed = [r for b in sts_backends.values() for x in b.values() for r in x.assumed_roles]
    assert len(assumed) == 1


def test_cache_refreshes_before_expiry(token_policy, issuer: Issuer) -> None:
    bearer = issuer.github("acme/app")
    status, first = call(pull(), bearer)
    assert status == 200
    status, again = call(pull(), bearer)
    assert again["password"] == first["password"]

    vendor = next(iter(vend._VENDORS.values()))
    expires = datetime.fromisoformat(first["expiresAt"].replace("Z", "+00:00"))
    scope, caller = next(iter(vendor._entries))
    just_before_window = expires - vendor.refresh_before - timedelta(seconds=1)
    assert vendor.credential(scope, just_before_window, source_identity=caller).cached
    refreshed = vendor.credential(scope, expires - vendor.refresh_before, source_identity=caller)
    assert not refreshed.cached
    assert refreshed.credential.password.get_secret_value() != first["password"]
    assert vendor.calls["get_authorization_token"] == 2


def test_formats(token_policy, issuer: Issuer) -> None:
    bearer = issuer.github("acme/app")
    status, config = call(pull(format="docker-config"), bearer)
    assert status == 200
    host = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    username, _, password = base64.b64decode(config["auths"][host]["auth"]).decode().partition(":")
    assert username == "AWS"

    status, login = call(pull(format="login"), bearer)
    assert status == 200
    assert login["command"] == f"docker login --username AWS --password-stdin https://{host}"
    assert login["password"] == password  # same scope, same cached credential
    assert password not in login["command"]


def test_registry_host_form_and_repository_optional(token_policy, issuer: Issuer) -> None:
    query = {"registry": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com", "access": "pull"}
    status, body = call(query, issuer.github("acme/app"))
    assert status == 200, body
    assert body["scope"]["repositories"] == ["team-a/*"]


def test_iam_principal_from_api_gateway(token_policy) -> None:
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/session-1"
    query = {"registry": ACCOUNT, "repository": "team-b/worker", "access": "push"}
    status, body = call(query, path="/v1/token/iam", identity={"userArn": arn})
    assert status == 200, body
    assert body["scope"]["grant"] == "deployer-push"

    status, body = call(query, path="/v1/token/iam")
    assert status == 401
    assert "SigV4" in body["message"]


def test_static_key_only_in_local_mode(token_policy, monkeypatch) -> None:
    status, body = call(pull("anything/at-all"), STATIC_KEY)
    assert status == 200, body
    assert body["scope"]["grant"] == "local-dev"

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ecr-steward-prod-APIHandler")
    for name, local_name in RESOURCE_VARIABLES.items():
        monkeypatch.setenv(name, local_name)
    get_settings.cache_clear()
    status, body = call(pull(), STATIC_KEY)
    get_settings.cache_clear()
    assert status == 401
    assert "local mode" in body["message"]


# --- every error status ------------------------------------------------------------------------


def test_401_without_valid_credentials(token_policy, issuer: Issuer) -> None:
    stranger = Issuer(kid=issuer.kid)  # same kid, different key: a forged signature
    cases = {
        None: "missing Authorization",
        "not-a-key": "unknown static key",
        stranger.github("acme/app"): "Signature verification failed",
        issuer.token(audience="someone-else", sub="s", repository="acme/app"): "Audience",
        issuer.token(lifetime=-600, sub="s", repository="acme/app"): "expired",
        Issuer(issuer="https://evil.example").github("acme/app"): "not trusted",
    }
    for bearer, reason in cases.items():
        status, body = call(pull(), bearer)
        assert status == 401, (reason, body)
        assert body["error"] == "unauthenticated"
        assert reason.lower() in body["message"].lower(), body


def test_403_says_which_check_failed(token_policy, issuer: Issuer) -> None:
    app_token = issuer.github("acme/app")
    cases = [
        (issuer.github("other/repo"), pull(), "caller"),
        (issuer.github("acme/app", ref="refs/heads/feature"), pull(), "caller"),
        (app_token, {**pull(), "registry": "210987654321"}, "registry"),
        (app_token, pull("team-b/api"), "repository"),
        (app_token, {**pull(), "access": "push"}, "access"),
    ]
    for bearer, query, check in cases:
        status, body = call(query, bearer)
        assert status == 403, body
        assert body["check"] == check, body


def test_400_for_bad_parameters(token_policy, issuer: Issuer) -> None:
    bearer = issuer.github("acme/app")
    for query, word in [
        (None, "registry"),
        ({"registry": "not-a-registry"}, "registry"),
        ({"registry": ACCOUNT, "access": "admin"}, "access"),
        ({"registry": ACCOUNT, "repository": "Team-A/UPPER"}, "repository"),
        ({"registry": ACCOUNT, "format": "yaml"}, "format"),
    ]:
        status, body = call(query, bearer)
        assert status == 400, body
        assert word in body["message"]


class _FakeSTS(BaseHTTPRequestHandler):
    """Answers every STS call with a Throttling error, as STS does under load."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = (
            b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
            b"<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
            b"</Error><RequestId>1</RequestId></ErrorResponse>"
        )
        self.send_response(400)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_429_when_aws_throttles(token_policy, issuer: Issuer, monkeypatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _FakeSTS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{server.server_port}")
        reset_clients()
        status, body = call(pull(), issuer.github("acme/app"))
    finally:
        server.shutdown()
        server.server_close()
    assert status == 429, body
    assert body["error"] == "throttled"


class _ThrottlingECR(BaseHTTPRequestHandler):
    """Answers every ECR call with ThrottlingException, as ECR does past its rate quota."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_429_when_ecr_throttles_the_token_call(token_policy, issuer: Issuer, monkeypatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _ThrottlingECR)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", f"http://127.0.0.1:{server.server_port}")
        status, body = call(pull(), issuer.github("acme/app"))
    finally:
        server.shutdown()
        server.server_close()
    assert status == 429, body
    assert "ThrottlingException" in body["message"]


def test_503_when_aws_is_unavailable(token_policy, issuer: Issuer, monkeypatch) -> None:

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{port}")
    reset_clients()
    status, body = call(pull(), issuer.github("acme/app"))
    assert status == 503, body
    assert body["error"] == "unavailable"


# --- audit ---------------------------------------------------------------------------------------


def test_every_vend_is_audited_and_no_output_holds_a_token(
    token_policy, issuer: Issuer, capsys
) -> None:
    status, body = call(pull(), issuer.github("acme/app"))
    assert status == 200
    call(pull("team-b/api"), issuer.github("acme/app"))  # refused
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    vended = [line for line in lines if line.get("message") == "token vended"]
    assert len(vended) == 1
    assert vended[0]["caller"] == "github:repo:acme/app:ref:refs/heads/main"
    assert vended[0]["grant"] == "ci-pull"
    assert vended[0]["scope"]["repositories"] == ["team-a/*"]
    assert vended[0]["expires_at"]
    refused = [line for line in lines if line.get("message") == "token refused"]
    assert refused and refused[0]["check"] == "repository"
    metrics = [line for line in lines if "_aws" in line]
    assert any(m.get("TokensVended") == [1.0] or m.get("TokensVended") == 1.0 for m in metrics)
    assert body["password"] not in out
    assert body["password"].split(".")[-1] not in out


# --- the policy section --------------------------------------------------------------------------


def test_policy_refuses_unsafe_or_dangling_token_settings(tmp_path: Path) -> None:
    bad = """
tokens:
  issuers:
    - {name: gh, issuer: https://x, audience: a, jwks: {keys: []}, algorithms: [HS256]}
  grants:
    - {name: g, oidc: {issuer: nobody}, registries: ["*"], repositories: ["*"]}
"""
    with pytest.raises(PolicyError) as raised:
        parse_policy(bad)
    text = str(raised.value)
    assert "tokens.issuers[0].algorithms" in text
    with pytest.raises(PolicyError, match="no issuer named 'nobody'"):
        parse_policy(
            "tokens:\n  grants:\n    - {name: g, oidc: {issuer: nobody}, registries: ['*'],"
            " repositories: ['*']}\n"
        )


def test_jwks_from_the_issuers_url(aws, policy_file, issuer: Issuer) -> None:
    """Production issuers publish their keys at a URL (GitHub's, a cluster's /keys)."""
    jwks = json.dumps(issuer.jwks()).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    reset_clients()
    try:
        url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks"
        policy_file(policy_yaml(Path("unused")).replace("jwks_file: unused", f"jwks_uri: {url}"))
        status, body = call(pull(), issuer.github("acme/app"))
        assert status == 200, body
    finally:
        server.shutdown()
        server.server_close()
    # A key the cached JWKS lacks is refused; a JWKS that cannot be fetched is AWS-side trouble.
    status, body = call(pull(), Issuer(kid="rotated").github("acme/app"))
    assert status == 401, body
    # A cold container: no keys and no verified token kept, so the keys must be fetched again.
    authn._KEYSETS.clear()
    authn._VERIFIED.clear()
    status, body = call(pull(), issuer.github("acme/app"))
    assert status == 503, body
    assert "cannot fetch the JWKS" in body["message"]
    authn._KEYSETS.clear()

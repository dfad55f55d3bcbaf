"""`docker-credential-steward` and `steward login`, run as docker and a user run them, against
the local API on the embedded backend."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.kernel.aws import reset as reset_clients
from tests.localapi import local_api_url
from tests.oidc import Issuer, policy_yaml
from tests.v2client import V2

BIN = Path(sys.executable).parent
HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture(scope="module")
def api_url() -> str:
    return local_api_url()


@pytest.fixture
def issuer(aws, policy_file, tmp_path: Path) -> Iterator[Issuer]:
    reset_clients()
    issuer = Issuer()
    policy_file(policy_yaml(issuer.write_jwks(tmp_path / "jwks.json")))
    yield issuer
    reset_clients()


def client_env(api_url: str, token: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEWARD_"))}
    env.update(
        STEWARD_API_URL=api_url,
        STEWARD_TOKEN=token,
        XDG_STATE_HOME=str(tmp_path / "state"),
        **extra,
    )
    return env


def helper(action: str, stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "docker-credential-steward"), action],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_credential_helper_protocol(api_url: str, issuer: Issuer, tmp_path: Path) -> None:
    env = client_env(api_url, issuer.github("acme/app"), tmp_path)

    got = helper("get", f"https://{HOST}", env)
    assert got.returncode == 0, got.stdout + got.stderr
    credential = json.loads(got.stdout)
    assert credential["ServerURL"] == f"https://{HOST}"
    assert credential["Username"] == "AWS"
    assert credential["Secret"]

    listed = helper("list", "", env)
    assert json.loads(listed.stdout) == {f"https://{HOST}": "AWS"}
    # Credentials come from the API: the secret is never written to disk.
    state = (tmp_path / "state" / "ecr-steward" / "credential-helper.json").read_text()
    assert credential["Secret"] not in state

    stored = helper("store", json.dumps({"ServerURL": "other.example", "Username": "u"}), env)
    assert stored.returncode == 0
    assert json.loads(helper("list", "", env).stdout) == {
        f"https://{HOST}": "AWS",
        "other.example": "u",
    }
    assert helper("erase", "other.example", env).returncode == 0
    assert json.loads(helper("list", "", env).stdout) == {f"https://{HOST}": "AWS"}

    unknown = helper("frobnicate", "", env)
    assert unknown.returncode == 1


def test_credential_helper_reports_a_refusal(api_url: str, issuer: Issuer, tmp_path: Path) -> None:
    env = client_env(api_url, issuer.github("acme/app"), tmp_path, STEWARD_ACCESS="push")
    got = helper("get", HOST, env)
    assert got.returncode == 1
    assert "403" in got.stdout and "pull only" in got.stdout


def test_steward_login_writes_docker_config(api_url: str, issuer: Issuer, tmp_path: Path) -> None:
    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credsStore": "desktop", "auths": {"ghcr.io": {"auth": "x"}}}))
    env = client_env(api_url, issuer.github("acme/app"), tmp_path)
    result = subprocess.run(
        [
            str(BIN / "steward"),
            "login",
            HOST,
            "--repository",
            "team-a/web",
            "--config",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    written = json.loads(config.read_text())
    assert written["credsStore"] == "desktop"
    assert written["auths"]["ghcr.io"] == {"auth": "x"}
    username, _, password = base64.b64decode(written["auths"][HOST]["auth"]).decode().partition(":")
    assert username == "AWS" and password
    assert password not in result.stdout + result.stderr
    assert oct(config.stat().st_mode & 0o777) == "0o600"


def test_steward_login_pipes_the_password_to_docker(
    api_url: str, issuer: Issuer, tmp_path: Path
) -> None:
    record = tmp_path / "docker-call.json"
    fake_docker = tmp_path / "docker"
    fake_docker.write_text(
        "#!/bin/sh\n"
        f"{sys.executable} -c \"import json,sys; json.dump({{'argv': sys.argv[1:], "
        f"'stdin': sys.stdin.read()}}, open('{record}', 'w'))\" \"$@\"\n"
    )
    fake_docker.chmod(0o755)
    env = client_env(api_url, issuer.github("acme/app"), tmp_path)
    result = subprocess.run(
        [str(BIN / "steward"), "login", HOST, "--docker", str(fake_docker)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    call = json.loads(record.read_text())
    assert call["argv"] == ["login", "--username", "AWS", "--password-stdin", f"https://{HOST}"]
    assert call["stdin"]  # the password, on stdin only
    assert call["stdin"] not in " ".join(call["argv"]) + result.stdout


def test_steward_login_says_why_it_was_refused(
    api_url: str, issuer: Issuer, tmp_path: Path
) -> None:
    env = client_env(api_url, issuer.github("other/repo"), tmp_path)
    result = subprocess.run(
        [str(BIN / "steward"), "login", HOST, "--config", str(tmp_path / "c.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "403" in result.stderr and "no grant names" in result.stderr


def test_helper_and_login_serve_the_local_registry(
    aws, api_url: str, issuer: Issuer, tmp_path: Path
) -> None:

    local = aws.registry_host  # 127.0.0.1:<port>, the embedded registry
    env = client_env(api_url, issuer.github("acme/app"), tmp_path, STEWARD_LOCAL_REGISTRY=local)
    got = helper("get", local, env)
    assert got.returncode == 0, got.stdout + got.stderr
    secret = json.loads(got.stdout)["Secret"]
    assert V2(aws.port, secret).request("GET", "/v2/").status == 200

    config = tmp_path / "config.json"
    result = subprocess.run(
        [str(BIN / "steward"), "login", "123456789012", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [(host, entry)] = json.loads(config.read_text())["auths"].items()
    assert host == local
    password = base64.b64decode(entry["auth"]).decode().partition(":")[2]
    assert V2(aws.port, password).request("GET", "/v2/").status == 200

"""Issue 13 end to end: `steward serve` in its own process, driven as the README drives it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws_helpers import wait_for
from tests.paths import ROOT

STEWARD = [sys.executable, "-m", "steward_tools.cli"]
BAD_EVENT = {
    "version": "0",
    "id": "bad-1",
    "detail-type": "ECR Image Action",
    "source": "aws.ecr",
    "account": "123456789012",
    "time": "2026-11-27T03:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"result": "SUCCESS", "action-type": "PUSH"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment() -> dict[str, str]:
    env = {
        **os.environ,
        "STEWARD_AWS_PORT": str(_free_port()),
        "STEWARD_API_PORT": str(_free_port()),
        "STEWARD_POLICY": str(ROOT / "policy.example.yaml"),
    }
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key, None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


@pytest.fixture(scope="module")
def service() -> Iterator[dict[str, str]]:
    env = _environment()
    server = subprocess.Popen(
        [*STEWARD, "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if "Ctrl-C stops everything" in line:
                break
        yield env
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)


def steward(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STEWARD, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_a_busy_port_is_named(tmp_path: Path) -> None:
    env = _environment()
    with socket.socket() as held:
        held.bind(("127.0.0.1", int(env["STEWARD_API_PORT"])))
        held.listen()
        result = steward(env, "serve")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"port {env['STEWARD_API_PORT']} on 127.0.0.1 is in use" in line
    assert "STEWARD_API_PORT" in line


def test_the_readmes_try_it_works_twice_in_one_shell(
    service: dict[str, str], tmp_path: Path
) -> None:
    env = {**service, "AWS_PROFILE": "a-profile-only-my-laptop-has"}
    hello, older, bad = tmp_path / "hello", tmp_path / "older", tmp_path / "bad.json"
    bad.write_text(json.dumps(BAD_EVENT))
    for attempt in (1, 2):
        for args in (
            ("sample-image", str(hello)),
            ("push", "--local", "--create", str(hello), "demo/hello:1.2.3"),
            ("sample-image", str(older)),
            ("push", "--local", str(older), "demo/hello:1.2.1"),
            ("events", "send", str(bad)),
        ):
            done = steward(env, *args)
            assert done.returncode == 0, (attempt, args, done.stderr)

        def pushed_and_tagged() -> list[dict[str, object]] | None:
            listed = json.loads(steward(env, "images", "--local", "--json", "demo/hello").stdout)
            newest = [i for i in listed if "1.2.3" in i["tags"]]
            if newest and {"1", "1.2", "latest"} <= set(newest[0]["tags"]):
                return listed
            return None

        assert wait_for(pushed_and_tagged)

        def dead_letters(expected: int = attempt) -> list[dict[str, object]] | None:
            found = json.loads(steward(env, "events", "dead-letters", "--json").stdout)
            return found if len(found) >= expected else None

        letters = wait_for(dead_letters)
        assert letters[0]["reason"] == "detail.repository-name: Field required"


def test_another_region_is_served_like_the_first(service: dict[str, str], tmp_path: Path) -> None:
    env = {**service, "AWS_DEFAULT_REGION": "eu-central-1"}
    source = tmp_path / "image"
    assert steward(env, "sample-image", str(source)).returncode == 0

    pushed = steward(env, "push", "--local", "--create", str(source), "demo/far:2.0.0")

    assert pushed.returncode == 0, pushed.stderr

    def aliased() -> str | None:
        listing = steward(env, "images", "--local", "demo/far").stdout
        return listing if "2, 2.0, 2.0.0, latest" in listing else None

    assert wait_for(aliased)
    home = steward({**service, "AWS_DEFAULT_REGION": "us-east-1"}, "images", "--local", "demo/far")
    assert home.returncode == 1 and "RepositoryNotFoundException" in home.stderr
    swept = steward(env, "sweep", "run", "--local", "--json")
    assert swept.returncode == 0, swept.stderr
    assert set(json.loads(swept.stdout)) == {
        "start_sweep",
        "gate_sweep",
        "governance_reconcile",
        "mirror_sync",
    }

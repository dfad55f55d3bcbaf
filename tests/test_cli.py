"""The operator's command line, and `steward serve` run as a new user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.registry import Registry
from steward_tools.cli import main

ROOT = Path(__file__).resolve().parent.parent
STEWARD = [sys.executable, "-m", "steward_tools.cli"]


def run(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_policy_validate_accepts_the_example() -> None:
    result = run("policy", "validate", str(ROOT / "policy.example.yaml"))
    assert result.exit_code == 0
    assert "valid (1 tagging rules" in result.output


def test_policy_validate_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("tagging:\n  - repositories: ['*']\n    templates: ['sha-{digst}']\n")
    result = run("policy", "validate", str(bad))
    assert result.exit_code == 1
    assert "tagging[0].templates" in result.output
    assert "digst" in result.output


def test_policy_schema_is_json_schema() -> None:
    schema = json.loads(run("policy", "schema").output)
    assert schema["title"] == "ecr-steward policy"
    assert "tagging" in schema["properties"]


def test_serve_refuses_an_invalid_policy(tmp_path: Path, monkeypatch) -> None:
    from chalicelib.settings import get_settings

    bad = tmp_path / "p.yaml"
    bad.write_text("tagging: 3\n")
    monkeypatch.setenv("STEWARD_POLICY", str(bad))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "tagging: Input should be a valid list" in result.output


@pytest.mark.parametrize("source_format", ["oci-layout", "oci-archive", "docker-archive"])
def test_sample_image_then_push_and_list(
    aws, registry: Registry, tmp_path: Path, monkeypatch, source_format: str
) -> None:
    monkeypatch.setenv("STEWARD_AWS_PORT", str(aws.port))
    source = tmp_path / "image"
    assert run("sample-image", str(source), "--format", source_format, "--seed", "7").exit_code == 0

    pushed = run("push", "--local", "--create", str(source), "demo/app:1.0.0")
    assert pushed.exit_code == 0, pushed.output
    digest = pushed.output.strip().splitlines()[-2].split("@")[1]

    [image] = list(registry.iter_images("demo/app"))
    assert image.digest == digest and image.tags == ["1.0.0"]
    listing = run("images", "--local", "demo/app").output
    assert digest in listing and "1.0.0" in listing


def test_push_to_missing_repository_says_so(aws, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STEWARD_AWS_PORT", str(aws.port))
    run("sample-image", str(tmp_path / "image"))
    result = CliRunner().invoke(main, ["push", "--local", str(tmp_path / "image"), "nope:1"])
    assert result.exit_code == 1
    assert "RepositoryNotFoundException" in result.output


def test_multi_arch_sample(aws, registry: Registry, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STEWARD_AWS_PORT", str(aws.port))
    source = tmp_path / "index"
    run("sample-image", str(source), "--platform", "linux/amd64", "--platform", "linux/arm64/v8")
    assert run("push", "--local", "--create", str(source), "demo/multi:2.0.0").exit_code == 0
    found = {image.media_type: image for image in registry.iter_images("demo/multi")}
    assert found["application/vnd.oci.image.index.v1+json"].tags == ["2.0.0"]
    assert len(found) == 2  # the index and its children (both children share a media type)


# --- make run, as a new user does it -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_serve_tags_a_pushed_release_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STEWARD_AWS_PORT": str(_free_port()),
        "STEWARD_API_PORT": str(_free_port()),
        "STEWARD_POLICY": str(ROOT / "policy.example.yaml"),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    server = subprocess.Popen(
        [*STEWARD, "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert server.stdout is not None
        for line in server.stdout:
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        banner = "".join(output)
        assert f"127.0.0.1:{env['STEWARD_AWS_PORT']}" in banner

        health = f"http://127.0.0.1:{env['STEWARD_API_PORT']}/health"
        with urllib.request.urlopen(health, timeout=10) as response:
            assert json.load(response)["status"] == "ok"

        source = tmp_path / "hello"
        subprocess.run([*STEWARD, "sample-image", str(source)], env=env, check=True)
        subprocess.run(
            [*STEWARD, "push", "--local", "--create", str(source), "demo/hello:1.2.3"],
            env=env,
            check=True,
            capture_output=True,
        )

        def aliases() -> str | None:
            listing = subprocess.run(
                [*STEWARD, "images", "--local", "demo/hello"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            return listing if "1, 1.2, 1.2.3, latest" in listing else None

        assert len(_wait_for(aliases).splitlines()) == 1  # one digest carries all four tags
    finally:
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "stopped." in rest

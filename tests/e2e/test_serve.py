"""`steward serve` run as a new user runs it: a real process, its banner, a push tagged, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from chalicelib.kernel.settings import get_settings
from steward_tools.cli import main
from tests.aws_helpers import wait_for
from tests.paths import ROOT

STEWARD = [sys.executable, "-m", "steward_tools.cli"]


def test_serve_refuses_an_invalid_policy(tmp_path: Path, monkeypatch) -> None:

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

        assert len(wait_for(aliases).splitlines()) == 1  # one digest carries all four tags
    finally:
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "stopped." in rest

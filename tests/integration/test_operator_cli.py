"""Issue 13, the operator's side: one-line errors, --json, progress, schedules and findings."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner, Result

import app
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel import aws as aws_factory
from steward_tools.cli import main
from steward_tools.local import runner, schedules
from steward_tools.local.delivery import EventPump
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image, write_oci_layout
from tests.imagefactory import corrupt_blob, push_built

GATE_POLICY = """
gate:
  rules:
    - repositories: ["team/*"]
      max_counts: {CRITICAL: 0, HIGH: 0}
      promotion_tags: [approved]
      scan_timeout_minutes: 30
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_line_error(result: Result) -> str:
    """The result's error: exit 1, one `Error:` line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def deliver(aws) -> None:
    EventPump(
        boto3.client("sqs"),
        aws.resources.events_queue_url,
        lambda event: app.on_ecr_event(event, LocalLambdaContext()),
    ).drain()


def discard_events(aws) -> None:
    EventPump(boto3.client("sqs"), aws.resources.events_queue_url, lambda event: None).drain()


@pytest.fixture
def local(aws, monkeypatch):
    monkeypatch.setenv("STEWARD_AWS_PORT", str(aws.port))
    return aws


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- point 2: one line, never a traceback ------------------------------------------------------


def test_pushing_what_is_not_an_image_says_so_in_one_line(local, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    tarball = tmp_path / "files.tar"
    shutil.make_archive(str(tmp_path / "files"), "tar", root_dir=empty)
    two = tmp_path / "two"
    write_oci_layout(two, {"a": build_image([64], seed=1), "b": build_image([64], seed=2)})

    expected = {
        text: "neither an OCI layout directory nor a tar archive",
        empty: "no index.json",
        tarball: "no index.json",
        two: "holds several images",
    }
    for source, message in expected.items():
        line = one_line_error(run("push", "--local", "--create", str(source), "demo/x:1"))
        assert message in line, line
    assert "--ref" in one_line_error(run("push", "--local", "--create", str(two), "demo/x:1"))


def test_a_corrupt_blob_fails_in_one_line(local, tmp_path: Path) -> None:
    built = build_image([64, 64], seed=4)
    layout = tmp_path / "layout"
    write_oci_layout(layout, built, ref_name="latest")
    corrupt_blob(layout, built.layer_digests[1])

    line = one_line_error(run("push", "--local", "--create", str(layout), "demo/x:1"))

    assert "corrupt blob" in line


def test_sample_image_onto_a_file_or_foreign_directory_says_so(tmp_path: Path) -> None:
    existing = tmp_path / "file"
    existing.write_text("mine")
    foreign = tmp_path / "dir"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")

    assert "is a file" in one_line_error(run("sample-image", str(existing)))
    assert "not an OCI layout" in one_line_error(run("sample-image", str(foreign)))
    assert existing.read_text() == "mine"


def test_sample_image_twice_into_one_layout_leaves_one_image(local, tmp_path: Path) -> None:
    layout = tmp_path / "hello"
    assert run("sample-image", str(layout)).exit_code == 0
    assert run("sample-image", str(layout)).exit_code == 0

    assert json.loads((layout / "index.json").read_text())["manifests"][1:] == []
    assert run("push", "--local", "--create", str(layout), "demo/hello:1.2.3").exit_code == 0
    assert run("push", "--local", "--create", str(layout), "demo/hello:1.2.3").exit_code == 0


def test_events_send_refuses_what_is_not_json(local, tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)))
    text = tmp_path / "bad.json"
    text.write_text("{not json")

    assert "not a JSON event (not UTF-8" in one_line_error(run("events", "send", str(binary)))
    assert "not a JSON event (Expecting" in one_line_error(run("events", "send", str(text)))


@pytest.mark.parametrize(
    "args",
    [
        ["events", "send", "{event}"],
        ["events", "dead-letters"],
        ["gate", "status", "--local", "team/app@sha256:" + "0" * 64],
        ["sweep", "run", "--local"],
        ["images", "--local", "demo/hello"],
        ["push", "--local", "{event}", "demo/hello:1"],
    ],
)
def test_a_stopped_service_is_named_within_a_second(
    tmp_path: Path, monkeypatch, args: list[str]
) -> None:
    event = tmp_path / "event.json"
    event.write_text("{}")
    monkeypatch.setenv("STEWARD_AWS_PORT", str(_free_port()))
    started = time.monotonic()

    result = run(*[a.replace("{event}", str(event)) for a in args])

    assert time.monotonic() - started < 1.0
    line = one_line_error(result)
    assert "the local service is not running at http://127.0.0.1:" in line
    assert "start it with `make run`" in line


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    monkeypatch.setenv("STEWARD_AWS_PORT", str(_free_port()))

    plain = run("sample-image", str(text))
    debug = CliRunner().invoke(main, ["--debug", "push", str(text), "demo/x:1"])

    assert plain.exit_code == 1
    assert debug.exit_code == 1 and debug.exception is not None
    assert "neither an OCI layout" in str(debug.exception)


# -- point 5: AWS_PROFILE ----------------------------------------------------------------------


def test_an_aws_profile_in_the_environment_does_not_break_local_commands(
    local, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    aws_factory.reset()
    layout = tmp_path / "hello"
    run("sample-image", str(layout))

    pushed = run("push", "--local", "--create", str(layout), "demo/hello:1.0.0")

    assert pushed.exit_code == 0, pushed.output
    assert "1.0.0" in run("images", "--local", "demo/hello").stdout


# -- point 7: --json alone on stdout, progress -------------------------------------------------


def test_push_and_images_print_json_alone(local, tmp_path: Path) -> None:
    layout = tmp_path / "hello"
    run("sample-image", str(layout))

    pushed = run("push", "--local", "--create", "--json", str(layout), "demo/hello:1.0.0")
    listed = run("images", "--local", "--json", "demo/hello")

    result = json.loads(pushed.stdout)
    assert result["repository"] == "demo/hello" and result["tag"] == "1.0.0"
    assert result["bytes_uploaded"] > 0
    [image] = json.loads(listed.stdout)
    assert image["digest"] == result["digest"] and image["tags"] == ["1.0.0"]


def test_push_progress_counts_bytes_without_carriage_returns(local, tmp_path: Path) -> None:
    layout = tmp_path / "big"
    run("sample-image", str(layout), "--layer-size", str(3 * 1024 * 1024), "--uncompressed")

    pushed = run("push", "--local", "--create", str(layout), "demo/big:1")

    assert pushed.exit_code == 0, pushed.output
    assert "\r" not in pushed.stderr
    progress = [line for line in pushed.stderr.splitlines() if line.startswith("push demo/big:1")]
    assert progress and "MiB in" in progress[-1] and "/s)" in progress[-1]
    assert pushed.stderr.count("sha256:") == 0  # no digest per part any more


def test_gate_status_json_is_the_record_alone(local, registry: Registry, policy_file) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=21)
    push_built(registry, image, "team/app", tag="1.0.0")
    deliver(local)

    shown = run("gate", "status", "--local", "--json", f"team/app@{image.digest}")

    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert record["status"] == "pass" and record["digest"] == image.digest


# -- point 3: every schedule runs locally, the gate sweep included ----------------------------


def test_every_schedule_of_app_py_has_a_local_command() -> None:
    assert set(schedules.app_schedules()) == set(schedules.SCHEDULES)
    assert all(schedules.rate_seconds(e) for e in schedules.app_schedules().values())


def test_sweep_run_runs_the_gate_sweep_and_prints_json_alone(
    local, registry: Registry, policy_file
) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app")  # no scan on push: no result will ever come
    image = build_image(seed=22)
    push_built(registry, image, "team/app", tag="1.0.0")
    discard_events(local)
    app.on_ecr_event(
        {
            "version": "0",
            "id": "push-timeout",
            "detail-type": "ECR Image Action",
            "source": "aws.ecr",
            "account": "123456789012",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "result": "SUCCESS",
                "repository-name": "team/app",
                "image-digest": image.digest,
                "action-type": "PUSH",
                "image-tag": "1.0.0",
            },
        },
        LocalLambdaContext(),
    )
    discard_events(local)  # the scan result never arrives
    later = (datetime.now(UTC) + timedelta(minutes=31)).isoformat()

    swept = run("sweep", "run", "--local", "--json", "--now", later)

    assert swept.exit_code == 0, swept.output
    outcome = json.loads(swept.stdout)
    assert set(outcome) == {"start_sweep", "gate_sweep", "governance_reconcile", "mirror_sync"}
    assert outcome["gate_sweep"]["fail"] == 1
    assert "running start_sweep, gate_sweep, governance_reconcile, mirror_sync" in swept.stderr
    shown = json.loads(
        run("gate", "status", "--local", "--json", f"team/app@{image.digest}").stdout
    )
    assert shown["status"] == "fail"


# -- point 4: findings per image (digest or tag) and per repository ---------------------------


def test_findings_set_per_image_and_per_repository(
    local, registry: Registry, tmp_path: Path
) -> None:
    registry.create_repository("team/app", scan_on_push=True)
    first, second, third = (build_image(seed=s) for s in (31, 32, 33))
    push_built(registry, first, "team/app", tag="1.0.0")
    push_built(registry, second, "team/app", tag="2.0.0")
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps([{"name": "CVE-2024-0001", "severity": "high"}]))

    by_tag = run("findings", "set", "team/app:1.0.0", "--file", str(findings), "--scan")
    by_digest = run(
        "findings", "set", f"team/app@{second.digest}", "--finding", "CVE-1:CRITICAL", "--scan"
    )
    per_repository = run("findings", "set", "team/app", "--finding", "CVE-2:LOW")
    push_built(registry, third, "team/app", tag="3.0.0")

    assert by_tag.exit_code == by_digest.exit_code == per_repository.exit_code == 0
    ecr = boto3.client("ecr")

    def counts(digest: str) -> dict[str, int]:
        return ecr.describe_image_scan_findings(
            repositoryName="team/app", imageId={"imageDigest": digest}
        )["imageScanFindings"]["findingSeverityCounts"]

    assert counts(first.digest) == {"HIGH": 1}
    assert counts(second.digest) == {"CRITICAL": 1}
    assert counts(third.digest) == {"LOW": 1}
    bad = run("findings", "set", "team/app", "--finding", "CVE-3:SEVERE")
    assert bad.exit_code == 2 and "SEVERITY one of" in bad.output


# -- point 8: what is no event is dead-lettered at once, with the reason -----------------------


def test_a_body_that_is_not_json_is_dead_lettered_with_its_reason(local) -> None:
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=local.resources.events_queue_url, MessageBody="not json at all")
    invoked: list[dict] = []

    EventPump(
        sqs,
        local.resources.events_queue_url,
        invoked.append,
        dead_letter_queue_url=local.resources.dead_letter_queue_url,
    ).drain()

    assert invoked == []
    letters = run("events", "dead-letters", "--json")
    [letter] = json.loads(letters.stdout)
    assert letter["reason"].startswith("not JSON: Expecting value")
    assert letter["event"] == "not json at all"


def test_make_run_fires_each_schedule_on_its_rate_in_every_region(monkeypatch) -> None:
    fired: list[tuple[str, str, str]] = []

    def record(name: str, event: dict, region: str | None = None) -> None:
        fired.append((name, event["detail-type"], str(region)))

    class Stacks:
        def regions(self) -> list[str]:
            return ["us-east-1", "eu-central-1"]

    monkeypatch.setattr(runner, "invoke", record)
    stop = threading.Event()
    clock = runner.ScheduleClock(stop, Stacks())  # type: ignore[arg-type]
    assert clock.rates == {
        "gate_sweep": 300,
        "start_sweep": 3600,
        "governance_reconcile": 3600,
        "mirror_sync": 3600,
    }
    clock.rates = {"gate_sweep": 1}
    thread = threading.Thread(target=clock.run)
    thread.start()
    time.sleep(2.5)
    stop.set()
    thread.join(timeout=5)

    assert ("gate_sweep", "Scheduled Event", "us-east-1") in fired
    assert ("gate_sweep", "Scheduled Event", "eu-central-1") in fired
    assert {name for name, _, _ in fired} == {"gate_sweep"}

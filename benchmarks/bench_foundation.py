"""Foundation benchmark: cold start of a first event, ECR calls per retagged tag, events per second.

    .venv/bin/python benchmarks/bench_foundation.py        (or: make bench)

Everything runs against the embedded AWS backend on loopback; figures are printed, not asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from datetime import UTC, datetime

import boto3

import app
from chalicelib.ecr.gateway import Registry
from chalicelib.policy.document import current_policy
from chalicelib.tagging.react import tag_pushed_image
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.local.server import EmbeddedAWS, bootstrap
from steward_tools.samples import build_image

ACCOUNT, REGION = "123456789012", "us-east-1"
RUNS = 15


def _time_process(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - started


# A Lambda cold start for one push event: import the handler, load the policy, build the clients,
# make the calls. Runs in a fresh process against the embedded backend of this one.
FIRST_EVENT = """
import json, sys, uuid
import app

class Context:
    function_name = "ecr-steward-dev-on_ecr_event"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:on_ecr_event"
    aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self):
        return 300_000

event = json.loads(sys.argv[1])
event["id"] = str(uuid.uuid4())
calls = []
if len(sys.argv) > 2:  # record the AWS calls the event makes, for the bare-SDK floor
    from chalicelib.kernel import aws

    def record(params, model, **_):
        calls.append([model.service_model.service_name, model.name, params])

    aws.session().events.register("provide-client-params.*.*", record)
outcome = app.on_ecr_event(event, Context())
assert outcome["status"] == "handled", outcome
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as out:
        json.dump(calls, out, default=str)
"""

# The floor under any implementation: a fresh process, `import boto3`, and exactly the AWS calls
# the first event made (recorded above), with bare clients; errors (a put already made, a scan
# already started) ignored, not retried: the event's own calls succeeded the first time.
BARE_SDK = """
import json, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore import xform_name

session = boto3.session.Session()
once = Config(retries={"total_max_attempts": 1})
clients = {}
for service, operation, params in json.load(open(sys.argv[1])):
    if service not in clients:
        clients[service] = session.client(service, config=once)
    client = clients[service]
    try:
        getattr(client, xform_name(operation))(**params)
    except ClientError:
        pass
"""

TAGGING_ONLY = "tagging:\n  - repositories: ['*']\n    semver_aliases: true\n    latest: true\n"


def cold_start() -> None:
    """Whole-process time of a cold function's first push event beside a bare `import boto3`,
    interleaved: with the full example policy (tagging, gate, replication) and with tagging only.
    Beside them, the floor: bare boto3 making exactly the AWS calls that event made.

    Modules load from bytecode, as from the deployment zip (`infra/package.py` precompiles it):
    the cache goes to a scratch PYTHONPYCACHEPREFIX, warmed before timing, for both sides."""
    with EmbeddedAWS(port=0) as aws, tempfile.TemporaryDirectory() as scratch:
        tagging_only = Path(scratch) / "tagging.yaml"
        tagging_only.write_text(TAGGING_ONLY)
        full = ROOT / "examples" / "policy.full.yaml"
        _environment(aws.endpoint_url, full)
        bootstrap(boto3.session.Session(), account=ACCOUNT, region=REGION)
        registry = Registry(region=REGION)
        registry.create_repository("demo/cold")
        events = []
        for n in range(2 * RUNS + 2):
            tag = f"2.{n}.0"
            events.append(_push_event("demo/cold", _push(registry, "demo/cold", tag, 500 + n), tag))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(scratch) / "pycache")
        env["POWERTOOLS_LOG_LEVEL"] = "ERROR"
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "app.py", "chalicelib"],
            cwd=ROOT,
            check=True,
            env=env,
        )

        def run(args: list[str], policy: Path) -> float:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, *args],
                cwd=ROOT,
                check=True,
                env={**env, "STEWARD_POLICY": str(policy)},
                stdout=subprocess.DEVNULL,
            )
            return time.perf_counter() - started

        recorded = {name: Path(scratch) / f"{name}.json" for name in ("full", "tagging")}
        policies = {"full": full, "tagging": tagging_only}
        for name, policy in policies.items():  # warms the caches; records each event's calls
            run(["-c", FIRST_EVENT, json.dumps(events.pop()), str(recorded[name])], policy)
        run(["-c", "import boto3"], full)
        samples: dict[str, list[float]] = {
            "boto3": [],
            "full": [],
            "tagging": [],
            "full floor": [],
            "tagging floor": [],
        }
        for _ in range(RUNS):
            samples["boto3"].append(run(["-c", "import boto3"], full))
            for name, policy in policies.items():
                samples[name].append(run(["-c", FIRST_EVENT, json.dumps(events.pop())], policy))
                samples[f"{name} floor"].append(run(["-c", BARE_SDK, str(recorded[name])], policy))
        made = {name: len(json.loads(recorded[name].read_text())) for name in policies}
    boto_s = statistics.median(samples["boto3"])
    print(f"cold start: a fresh process's first push event (median of {RUNS}, from bytecode)")
    print(f"  import boto3                                {boto_s * 1000:7.1f} ms")
    for name, label, target in (
        ("full", "full example policy", 2.0),
        ("tagging", "tagging only", 1.5),
    ):
        took = statistics.median(samples[name])
        floor = statistics.median(samples[f"{name} floor"])
        print(
            f"  first push event, {label:19}       {took * 1000:7.1f} ms   "
            f"ratio {took / boto_s:.2f}x (target <= {target}x)"
        )
        print(
            f"    floor: bare boto3, the same {made[name]:2} AWS calls {floor * 1000:7.1f} ms   "
            f"ratio {floor / boto_s:.2f}x; the service's own cost "
            f"{(took - floor) * 1000:.0f} ms"
        )


def _environment(endpoint: str, policy: Path) -> None:
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "STEWARD_POLICY": str(policy),
        }
    )


def _push(registry, repository: str, tag: str, seed: int) -> str:

    image = build_image([1024], seed=seed)
    for data in image.blobs.values():
        registry.upload_bytes(repository, data)
    registry.put_manifest(repository, image.manifest, tag)
    return image.digest


def _push_event(repository: str, digest: str, tag: str) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": "2026-11-27T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
        },
    }


def in_process() -> None:

    with EmbeddedAWS(port=0) as aws, tempfile.TemporaryDirectory() as scratch:
        policy = Path(scratch) / "policy.yaml"
        policy.write_text(
            "tagging:\n  - repositories: ['*']\n    semver_aliases: true\n    latest: true\n"
        )
        _environment(aws.endpoint_url, policy)
        bootstrap(boto3.session.Session(), account=ACCOUNT, region=REGION)
        calls_per_tag()
        events_per_second()


def calls_per_tag() -> None:

    registry = Registry(region=REGION)
    registry.create_repository("bench/calls")
    digest = _push(registry, "bench/calls", "1.2.3", seed=1)
    rules = current_policy().policy.tagging
    registry.calls.clear()
    result = tag_pushed_image(
        registry, rules, "bench/calls", digest, "1.2.3", now=datetime.now(UTC)
    )
    applied = len(result.tags_with("applied"))
    writes = registry.calls["batch_get_image"] + registry.calls["put_image"]
    reads = registry.calls["describe_repositories"] + registry.calls["describe_images"]
    print("ECR calls per retagged tag (push of 1.2.3 → 1.2, 1, latest)")
    print(f"  tags applied                  {applied}")
    print(f"  batch-get + put per tag       {writes / applied:.2f}   (target 2)")
    print(f"  plus reads per event          {reads}   (describe-repositories, describe-images)")
    registry.calls.clear()
    tag_pushed_image(registry, rules, "bench/calls", digest, "1.2.3", now=datetime.now(UTC))
    print(f"  same push again: writes       {registry.calls['put_image']}")


def events_per_second() -> None:

    def run(events: list[dict]) -> float:
        started = time.perf_counter()
        for event in events:
            app.on_ecr_event(event, LocalLambdaContext())
        return len(events) / (time.perf_counter() - started)

    registry = Registry(region=REGION)
    registry.create_repository("bench/events")
    n = 200
    ignored = [
        {**_push_event("bench/events", "sha256:" + "0" * 64, "x"), "detail-type": "ECR Image Scan"}
        for _ in range(n)
    ]
    for event in ignored:
        event["detail"] = {
            "scan-status": "COMPLETE",
            "repository-name": "bench/events",
            "image-digest": "sha256:" + "0" * 64,
            "finding-severity-counts": {},
        }
    pushes: list[dict] = []
    for k in range(n):
        tag = f"1.{k // 10}.{k % 10}"
        pushes.append(
            _push_event("bench/events", _push(registry, "bench/events", tag, 100 + k), tag)
        )
    steady = [
        _push_event("bench/events", e["detail"]["image-digest"], e["detail"]["image-tag"])
        for e in pushes
    ]
    duplicates = [json.loads(json.dumps(e)) for e in pushes]

    print(f"events per second through on_ecr_event, in-process ({n} events each)")
    print(f"  acknowledged (no action)      {run(ignored):7.1f} /s")
    print(f"  push → new aliases put        {run(pushes):7.1f} /s")
    print(f"  push, tags already converged  {run(steady):7.1f} /s")
    print(f"  duplicate deliveries          {run(duplicates):7.1f} /s")


if __name__ == "__main__":
    cold_start()
    in_process()

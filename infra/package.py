"""`make package`: the CloudFormation (SAM) template and deployment package for one stage.

    python infra/package.py --stage dev [--policy policy.example.yaml] [--out build/dev]

Chalice packages whatever project directory it is given, so this assembles one under
`build/<stage>-src/` rather than editing the checkout:

1. `app.py`, `requirements.txt` and `chalicelib/`: everything a function runs, and nothing else
   (the CLI and the embedded backend live in `steward_tools/`, outside it; the smoke import in
   `smoke_test` fails the build if packaged code reaches for them).
2. The stage's policy file, validated, as `chalicelib/steward-policy.yaml`, and
   `STEWARD_POLICY` pointing at it in the stage's environment.
3. One IAM policy per function (`infra/iam.py`): the statements `infra/functions.json` gives
   that function, out of the stage's `.chalice/policy-<stage>.json`.
4. `chalice package --merge-template infra/resources.json`, then post-processing that stays
   true as functions are added: `ReportBatchItemFailures` on every SQS event source, errors and
   throttles alarms on every function, a depth alarm on every dead-letter queue, alarms on ECR's
   throttling of the service and on pacing without its table, and the `Stage` parameter's default
   set to the stage.
5. Precompiled bytecode in the zip (Lambda's file system is read-only, so Python cannot cache
   it there; see benchmarks/bench_tokens.py for the cold-import difference).

Dependencies: on x86-64 Linux (what Lambda runs) the virtualenv's installed distributions of
`requirements.txt`, pinned by `constraints.txt`, are copied into `vendor/`, so packaging needs no
network. Elsewhere Chalice downloads Lambda-compatible wheels (and caches them in
`.chalice/deployments/`).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import platform
from importlib import metadata

import boto3
from packaging.requirements import Requirement

from chalicelib.kernel.observability import NAMESPACE, SERVICE
from chalicelib.kernel.pacing import FALLBACK_METRIC, THROTTLED_METRIC
from chalicelib.policy.document import load_policy
from infra import iam

POLICY_IN_PACKAGE = "chalicelib/steward-policy.yaml"
ALARM_TOPIC = "AlarmTopic"


def assemble(stage: str, policy: Path, src: Path) -> None:

    load_policy(policy)  # refuses an invalid policy, naming every bad field
    if src.exists():
        shutil.rmtree(src)
    (src / ".chalice").mkdir(parents=True)
    shutil.copy2(ROOT / "app.py", src / "app.py")
    if offline_dependencies_possible():
        vendor_dependencies(src / "vendor")
    else:
        shutil.copy2(ROOT / "requirements.txt", src / "requirements.txt")
    shutil.copytree(
        ROOT / "chalicelib",
        src / "chalicelib",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy2(policy, src / POLICY_IN_PACKAGE)

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage_config = config["stages"][stage]
    stage_config.setdefault("environment_variables", {})["STEWARD_POLICY"] = POLICY_IN_PACKAGE
    functions = stage_config.setdefault("lambda_functions", {})
    for function, document in iam.function_policies(stage).items():
        name = f"policy-{stage}-{function}.json"
        (src / ".chalice" / name).write_text(json.dumps(document, indent=2))
        functions.setdefault(function, {})["iam_policy_file"] = name
    (src / ".chalice" / "config.json").write_text(json.dumps(config, indent=2))
    cache = ROOT / ".chalice" / "deployments"
    if cache.is_dir():
        shutil.copytree(cache, src / ".chalice" / "deployments")


# The Lambda runtime provides these; the package never carries them.
RUNTIME_PROVIDED = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python-dateutil",
    "six",
}


def offline_dependencies_possible() -> bool:
    """The virtualenv's own wheels fit Lambda when it is CPython on x86-64 Linux: Chalice
    targets the local Python version anyway, and `constraints.txt` pins the same versions."""

    return sys.platform == "linux" and platform.machine() == "x86_64"


def runtime_distributions() -> list[str]:
    """requirements.txt and everything it needs, by distribution name (markers and extras
    honoured), minus what the Lambda runtime provides."""

    lines = (ROOT / "requirements.txt").read_text().splitlines()
    queue = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    seen: dict[str, None] = {}
    while queue:
        requirement = queue.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen or name in RUNTIME_PROVIDED:
            continue
        seen[name] = None
        for text in metadata.distribution(requirement.name).requires or []:
            child = Requirement(text)
            extras = requirement.extras or {""}
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                queue.append(child)
    return sorted(seen)


def vendor_dependencies(vendor: Path) -> None:
    """Copy the installed runtime dependencies into `vendor/`, which Chalice packages as is:
    no download, so packaging works offline."""

    for name in runtime_distributions():
        distribution = metadata.distribution(name)
        for file in distribution.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts:
                continue  # console scripts, and bytecode we compile ourselves
            target = vendor / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(distribution.locate_file(file))), target)


def chalice_package(stage: str, src: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    subprocess.run(
        [
            str(Path(sys.executable).parent / "chalice"),
            "package",
            "--stage",
            stage,
            "--merge-template",
            str(ROOT / "infra" / "resources.json"),
            str(out),
        ],
        cwd=src,
        env=env,
        check=True,
    )
    # Keep dependency builds for the next run (and for packaging offline).
    built = src / ".chalice" / "deployments"
    if built.is_dir():
        shutil.copytree(built, ROOT / ".chalice" / "deployments", dirs_exist_ok=True)


def post_process(template: dict[str, Any], stage: str) -> dict[str, Any]:
    """What `--merge-template` cannot say once for every function and queue."""
    resources: dict[str, Any] = template["Resources"]
    template.setdefault("Parameters", {}).setdefault("Stage", {"Type": "String"})["Default"] = stage

    for logical_id, resource in list(resources.items()):
        if resource.get("Type") == "AWS::Serverless::Function":
            for event in resource["Properties"].get("Events", {}).values():
                if event.get("Type") == "SQS":
                    properties = event["Properties"]
                    properties["Queue"] = _override_wins(properties["Queue"])
                    _ensure_queue(resources, logical_id, resource, properties)
                    _report_batch_item_failures(properties)
                    _let_lambda_poll(resources, resource, properties["Queue"])
        elif resource.get("Type") == "AWS::Lambda::EventSourceMapping":
            arn = json.dumps(resource["Properties"].get("EventSourceArn", ""))
            if "sqs" in arn.lower() or "Queue" in arn:
                _report_batch_item_failures(resource["Properties"])

    resources.setdefault(
        ALARM_TOPIC,
        {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "TopicName": {"Fn::Sub": "ecr-steward-${Stage}-alarms"},
                "KmsMasterKeyId": "alias/aws/sns",
            },
        },
    )
    for logical_id, resource in list(resources.items()):
        if resource.get("Type") == "AWS::Serverless::Function":
            for metric in ("Errors", "Throttles"):
                resources.setdefault(
                    f"{logical_id}{metric}Alarm",
                    _alarm(
                        f"{logical_id} {metric.lower()}",
                        "AWS/Lambda",
                        metric,
                        [{"Name": "FunctionName", "Value": {"Ref": logical_id}}],
                    ),
                )
        elif resource.get("Type") == "AWS::SQS::Queue" and _is_dead_letter_queue(
            logical_id, resource
        ):
            resources.setdefault(
                f"{logical_id}DepthAlarm",
                _alarm(
                    f"{logical_id} holds messages",
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    [{"Name": "QueueName", "Value": {"Fn::GetAtt": [logical_id, "QueueName"]}}],
                    statistic="Maximum",
                ),
            )
    service = [{"Name": "service", "Value": SERVICE}]
    # Pacing keeps the service's own calls within ECR's quotas, so throttling that lasts means
    # others share them (clients of the account, a stack in another region) or a quota is lower
    # than its default: a few throttled calls are retried; sustained, they are an alarm.
    resources.setdefault(
        "EcrThrottlingAlarm",
        _alarm(
            "ECR throttled more than 10 calls in each of 3 periods of 5 minutes",
            NAMESPACE,
            THROTTLED_METRIC,
            service,
            threshold=10,
            periods=3,
        ),
    )
    resources.setdefault(
        "EcrPacingFallbackAlarm",
        _alarm(
            "the pacing table cannot be reached: functions pace themselves at a share of the quota",
            NAMESPACE,
            FALLBACK_METRIC,
            service,
        ),
    )
    return template


def _override_wins(value: Any) -> Any:
    """`--merge-template` merges dicts key by key, so overriding Chalice's queue ARN
    (`{"Fn::Sub": "arn:…:sqs:…:NAME"}`) with `{"Fn::GetAtt": [...]}` leaves both keys, which
    CloudFormation rejects. The merge template's reference is the one meant."""
    if isinstance(value, dict) and len(value) > 1 and "Fn::Sub" in value:
        return {k: v for k, v in value.items() if k != "Fn::Sub"}
    return value


def _ensure_queue(
    resources: dict[str, Any], function_id: str, function: dict[str, Any], event: dict[str, Any]
) -> None:
    """A consumer of a queue that no resource creates (Chalice only references queues by name)
    gets one, with a dead-letter queue after 3 receives, and a visibility timeout six times the
    function's timeout (AWS's advice for Lambda consumers)."""
    queue = event["Queue"]
    if not (isinstance(queue, dict) and set(queue) == {"Fn::Sub"}):
        return
    name = str(queue["Fn::Sub"]).rsplit(":", 1)[1]
    names = [json.dumps(r.get("Properties", {}).get("QueueName")) for r in resources.values()]
    if any(name in n for n in names if n != "null"):
        return
    queue_id, dlq_id = f"{function_id}Queue", f"{function_id}DeadLetterQueue"
    timeout = int(function["Properties"].get("Timeout", 60))
    resources[dlq_id] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": f"{name}-dlq",
            "MessageRetentionPeriod": 1209600,
            "SqsManagedSseEnabled": True,
        },
    }
    resources[queue_id] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": name,
            "VisibilityTimeout": min(6 * timeout, 43200),
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
                "maxReceiveCount": 3,
            },
        },
    }
    event["Queue"] = {"Fn::GetAtt": [queue_id, "Arn"]}


# What Lambda's event source mapping does with the function's role; no code of ours calls these.
POLL_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
]


def _let_lambda_poll(resources: dict[str, Any], function: dict[str, Any], queue: Any) -> None:
    """Chalice's per-function role holds only the function's policy file; the SQS event source
    also needs the role to receive and delete that queue's messages."""
    role = function["Properties"].get("Role", {})
    role_id = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
    if role_id not in resources:
        return
    policies = resources[role_id]["Properties"].setdefault("Policies", [])
    policies.append(
        {
            "PolicyName": f"Poll{len(policies)}",
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "LambdaEventSourcePolling",
                        "Effect": "Allow",
                        "Action": POLL_ACTIONS,
                        "Resource": queue,
                    }
                ],
            },
        }
    )


def _report_batch_item_failures(properties: dict[str, Any]) -> None:
    types = properties.setdefault("FunctionResponseTypes", [])
    if "ReportBatchItemFailures" not in types:
        types.append("ReportBatchItemFailures")


def _is_dead_letter_queue(logical_id: str, resource: dict[str, Any]) -> bool:
    name = json.dumps(resource.get("Properties", {}).get("QueueName", "")).lower()
    return "deadletter" in logical_id.lower() or "dlq" in name


def _alarm(
    description: str,
    namespace: str,
    metric: str,
    dimensions: list[dict[str, Any]],
    statistic: str = "Sum",
    *,
    threshold: float = 0,
    periods: int = 1,
) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": f"ecr-steward: {description}",
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "Statistic": statistic,
            "Period": 300,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": ALARM_TOPIC}],
        },
    }


def add_bytecode(zip_path: Path) -> int:
    """Add `__pycache__/*.cpython-311.pyc` for every module in the zip. Unchecked-hash pycs:
    Lambda's extracted files keep no meaningful mtimes, and the sources never change there."""
    with tempfile.TemporaryDirectory() as scratch:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(scratch)
            infos = {i.filename: i for i in archive.infolist()}
        compileall.compile_dir(
            scratch,
            quiet=2,
            invalidation_mode=__import__("py_compile").PycInvalidationMode.UNCHECKED_HASH,
            workers=0,
        )
        added = 0
        with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for pyc in sorted(Path(scratch).rglob("*.pyc")):
                name = pyc.relative_to(scratch).as_posix()
                if name not in infos:
                    archive.write(pyc, name)
                    added += 1
    return added


SMOKE = """
import sys; sys.path = [p for p in sys.path if "site-packages" not in p]
import importlib, pkgutil, chalicelib, app
for module in pkgutil.walk_packages(chalicelib.__path__, "chalicelib."):
    importlib.import_module(module.name)
event = {"resource": "/health", "path": "/health", "httpMethod": "GET", "headers": {},
         "multiValueHeaders": {}, "queryStringParameters": None,
         "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
         "requestContext": {"resourcePath": "/health", "httpMethod": "GET", "identity": {}},
         "body": None, "isBase64Encoded": False}
response = app.app(event, None)
assert response["statusCode"] == 200, response
"""


def smoke_test(zip_path: Path) -> None:
    """Import every packaged module and answer /health from the extracted zip alone (plus
    boto3, which the Lambda runtime provides), as Lambda would: a missing dependency or an
    import of something left out fails the build here, not in production."""

    site = Path(boto3.__file__).parent.parent
    with tempfile.TemporaryDirectory() as scratch:
        package, runtime = Path(scratch) / "task", Path(scratch) / "runtime"
        runtime.mkdir()
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(package)
        for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3"):
            (runtime / name).symlink_to(site / name)
        if (site / "six.py").exists():
            (runtime / "six.py").symlink_to(site / "six.py")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": f"{package}{os.pathsep}{runtime}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "STEWARD_POLICY": POLICY_IN_PACKAGE,
        }
        subprocess.run([sys.executable, "-c", SMOKE], cwd=package, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--policy", type=Path, default=ROOT / "policy.example.yaml")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-bytecode", action="store_true")
    args = parser.parse_args()
    out = (args.out or ROOT / "build" / args.stage).resolve()
    src = out.parent / f"{out.name}-src"

    assemble(args.stage, args.policy.resolve(), src)
    chalice_package(args.stage, src, out)
    template_path = out / "sam.json"
    template = post_process(json.loads(template_path.read_text()), args.stage)
    template_path.write_text(json.dumps(template, indent=2) + "\n")
    added = 0 if args.no_bytecode else add_bytecode(out / "deployment.zip")
    smoke_test(out / "deployment.zip")
    size = (out / "deployment.zip").stat().st_size / 1e6
    print(
        f"{template_path.relative_to(ROOT)}: {len(template['Resources'])} resources; "
        f"deployment.zip {size:.1f} MB, {added} precompiled modules"
    )


if __name__ == "__main__":
    main()

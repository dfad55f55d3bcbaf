"""`make run`: the whole service in one foreground process, on the embedded AWS backend.

- the embedded AWS endpoint (ECR with layer bytes, DynamoDB, SQS, STS, EventBridge),
- the HTTP API (Chalice's local server),
- event delivery: ECR's events go to EventBridge's default bus, a rule routes them to a queue
  standing in for the Lambda target, and a pump invokes `app.on_ecr_event` with each payload
  exactly as EventBridge would invoke the function.

Ctrl-C (or SIGTERM) stops all three cleanly.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
from chalice.cli.factory import CLIFactory
from chalice.local import create_local_server

import app
from chalicelib.kernel.settings import PROJECT_ROOT, get_settings
from chalicelib.policy import load_policy
from steward_tools.local.delivery import EventPump
from steward_tools.local.jobs import SqsJobPump
from steward_tools.local.server import EmbeddedAWS, bootstrap

ACCOUNT = "123456789012"
REGION = "us-east-1"


class LocalLambdaContext:
    """The parts of the Lambda context object that Powertools reads."""

    function_name = "ecr-steward-dev-on_ecr_event"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


# Lambda runs one event at a time per process, and Powertools' logger keys and metrics are
# process-wide. The local pumps share one process, so their invocations take turns.
_ONE_AT_A_TIME = threading.Lock()


def invoke(function: str, event: dict[str, Any]) -> Any:
    """Invoke a Lambda entry point of app.py the way the Lambda runtime does: handler(event,
    context). The event is what EventBridge, or the SQS event source mapping, would pass."""

    with _ONE_AT_A_TIME:
        return getattr(app, function)(event, LocalLambdaContext())


def invoke_on_ecr_event(event: dict[str, Any]) -> Any:
    return invoke("on_ecr_event", event)


def invoke_on_copy_job(event: dict[str, Any]) -> Any:
    return invoke("on_copy_job", event)


def invoke_on_repository_job(event: dict[str, Any]) -> Any:
    return invoke("on_repository_job", event)


def configure_environment(endpoint_url: str) -> None:
    """Every boto3 client in this process talks to the embedded endpoint, never to AWS."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
    os.environ.pop("AWS_PROFILE", None)


def serve(*, host: str, aws_port: int, api_port: int, data_dir: Path | None) -> None:

    # Refuse to start on an invalid policy: raises PolicyError naming every bad field.
    loaded = load_policy(get_settings().policy_path)

    stop = threading.Event()
    with EmbeddedAWS(host=host, port=aws_port, data_dir=data_dir, region=REGION) as aws:
        configure_environment(aws.endpoint_url)
        resources = bootstrap(boto3.session.Session(), account=ACCOUNT, region=REGION)
        api = _start_api(host, api_port)
        pump = EventPump(boto3.client("sqs"), resources.events_queue_url, invoke_on_ecr_event)
        pump_thread = threading.Thread(target=pump.run, args=(stop,), daemon=True)
        pump_thread.start()
        # Sweep jobs (`chalicelib.sweep`) go to on_repository_job as the SQS event source would.

        sweep_pump = SqsJobPump(
            boto3.client("sqs"), resources.repository_jobs_queue_url, invoke_on_repository_job
        )
        threading.Thread(target=sweep_pump.run, args=(stop,), daemon=True).start()
        # Replication copy jobs go to on_copy_job, likewise.
        copy_pump = SqsJobPump(
            boto3.client("sqs"), resources.replication_queue_url, invoke_on_copy_job
        )
        threading.Thread(target=copy_pump.run, args=(stop,), daemon=True).start()

        def _stop(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        print(
            _banner(
                aws.endpoint_url, f"http://{host}:{api_port}", loaded.source, aws.registry_host
            ),
            flush=True,
        )
        try:
            stop.wait()
        finally:
            print("\nstopping…", flush=True)
            api.shutdown()
            pump_thread.join(timeout=5)
    print("stopped.", flush=True)


def _start_api(host: str, port: int) -> Any:

    factory = CLIFactory(str(PROJECT_ROOT))
    config = factory.create_config_obj(chalice_stage_name="dev")
    server = create_local_server(config.chalice_app, config, host, port)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    return server


def _banner(aws_url: str, api_url: str, policy: str, registry: str) -> str:
    return f"""
ecr-steward is running on the embedded AWS backend.

  AWS endpoint (ECR, DynamoDB, SQS, STS, EventBridge)  {aws_url}
  OCI registry (docker, podman, skopeo, oras)          {registry}   (plain HTTP, user AWS)
  HTTP API                                             {api_url}   (try {api_url}/health)
  policy                                               {policy}
  ECR events                                           delivered to on_ecr_event

Push an image from another shell (an OCI layout, OCI archive or `docker save` tarball):

  .venv/bin/steward sample-image /tmp/hello          # or use your own image
  .venv/bin/steward push --local --create /tmp/hello demo/hello:1.2.3
  AWS_ENDPOINT_URL={aws_url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
    aws ecr describe-images --region {REGION} --repository-name demo/hello

Or with a registry client (docs/registry.md):

  PASSWORD=$(AWS_ENDPOINT_URL={aws_url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
    aws ecr get-login-password --region {REGION})
  skopeo copy --dest-tls-verify=false --dest-creds "AWS:$PASSWORD" \\
    oci:/tmp/hello:latest docker://{registry}/demo/hello:1.2.4

Ctrl-C stops everything.
"""

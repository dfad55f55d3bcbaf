"""`make run`: the whole service in one foreground process, on the embedded AWS backend.

- the embedded AWS endpoint (ECR with layer bytes, DynamoDB, SQS, STS, EventBridge),
- the HTTP API (Chalice's local server),
- event delivery: ECR's events go to EventBridge's default bus, a rule routes them to a queue
  standing in for the Lambda target, and a pump invokes `app.on_ecr_event` with each payload
  exactly as EventBridge would invoke the function.

Ctrl-C (or SIGTERM) stops all three cleanly.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from chalice.cli.factory import CLIFactory
from chalice.local import create_local_server

import app
from chalicelib.kernel import aws
from chalicelib.kernel.settings import PROJECT_ROOT, get_settings
from chalicelib.policy.document import load_policy
from steward_tools.local.delivery import EventPump
from steward_tools.local.jobs import SqsJobPump
from steward_tools.local.schedules import app_schedules, rate_seconds, scheduled_event
from steward_tools.local.server import SETUP_ACCESS_KEY, EmbeddedAWS, bootstrap

logger = logging.getLogger(__name__)

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


def invoke(function: str, event: dict[str, Any], region: str | None = None) -> Any:
    """Invoke a Lambda entry point of app.py the way the Lambda runtime does: handler(event,
    context). The event is what EventBridge, or the SQS event source mapping, would pass.

    `region`: run as the function deployed in that region would (its tables and queues there);
    the default is the home region of `make run`."""

    with _ONE_AT_A_TIME, _in_region(region):
        return getattr(app, function)(event, LocalLambdaContext())


@contextlib.contextmanager
def _in_region(region: str | None) -> Iterator[None]:
    """The process's region is `region` for the duration (invocations take turns, so only the
    HTTP API, between two of them, could see it); settings and clients follow it."""
    home = os.environ.get("AWS_DEFAULT_REGION", REGION)
    if not region or region == home:
        yield
        return
    _switch_region(region)
    try:
        yield
    finally:
        _switch_region(home)


def _switch_region(region: str) -> None:

    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_REGION"] = region
    get_settings.cache_clear()
    aws.reset()


def invoke_on_ecr_event(event: dict[str, Any], region: str | None = None) -> Any:
    return invoke("on_ecr_event", event, region)


def invoke_on_copy_job(event: dict[str, Any], region: str | None = None) -> Any:
    return invoke("on_copy_job", event, region)


def invoke_on_repository_job(event: dict[str, Any], region: str | None = None) -> Any:
    return invoke("on_repository_job", event, region)


def configure_environment(endpoint_url: str) -> None:
    """Every boto3 client in this process talks to the embedded endpoint, never to AWS."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)


class PortInUse(RuntimeError):
    """A port `make run` needs is taken; the message names it and the variable that moves it."""


def check_ports(host: str, ports: dict[str, int]) -> None:
    """Bind each port once before starting anything, so a busy one is named, not a traceback."""
    for variable, port in ports.items():
        if port == 0:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise PortInUse(
                    f"port {port} on {host} is in use ({error.strerror}): stop what holds it "
                    f"(another `make run`?) or set {variable} to a free port"
                ) from None


class RegionStacks:
    """The service's stack in every region a client uses: on a region's first request (or
    event), its rule, queues and tables are created and its pumps start, as if the stack were
    deployed there too. The home region is set up at start."""

    def __init__(self, endpoint_url: str, stop: threading.Event) -> None:
        self.endpoint_url = endpoint_url
        self.stop = stop
        self._lock = threading.Lock()
        self._ready: dict[str, threading.Event] = {}
        self.threads: list[threading.Thread] = []

    def regions(self) -> list[str]:
        """The regions set up so far (each has the whole stack, schedules included)."""
        with self._lock:
            return [region for region, ready in self._ready.items() if ready.is_set()]

    def ensure(self, region: str) -> None:
        with self._lock:
            ready = self._ready.get(region)
            first = ready is None
            if first:
                ready = self._ready[region] = threading.Event()
        assert ready is not None
        if not first:
            ready.wait(timeout=60)
            return
        try:
            self._set_up(region)
        except Exception:
            logger.exception("could not set up region %s", region)
            with self._lock:
                self._ready.pop(region, None)  # a later request tries again
        finally:
            ready.set()

    def _set_up(self, region: str) -> None:

        # The set-up's own requests carry SETUP_ACCESS_KEY, so they do not wait for this region.
        session = boto3.session.Session(
            aws_access_key_id=SETUP_ACCESS_KEY, aws_secret_access_key="testing", region_name=region
        )
        resources = bootstrap(
            session, account=ACCOUNT, region=region, endpoint_url=self.endpoint_url
        )
        sqs = session.client("sqs", endpoint_url=self.endpoint_url)
        pumps = [
            EventPump(
                sqs,
                resources.events_queue_url,
                functools.partial(invoke_on_ecr_event, region=region),
                dead_letter_queue_url=resources.dead_letter_queue_url,
            ),
            # Sweep jobs (chalicelib/sweep/) go to on_repository_job as the SQS event source would.
            SqsJobPump(
                sqs,
                resources.repository_jobs_queue_url,
                functools.partial(invoke_on_repository_job, region=region),
            ),
            # Replication copy jobs go to on_copy_job, likewise.
            SqsJobPump(
                sqs,
                resources.replication_queue_url,
                functools.partial(invoke_on_copy_job, region=region),
            ),
        ]
        for pump in pumps:
            thread = threading.Thread(
                target=pump.run, args=(self.stop,), name=f"{pump.name} {region}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        if region != REGION:
            logger.warning("region %s: events, queues and tables set up", region)


class ScheduleClock:
    """Fires each schedule of app.py on its rate, as EventBridge Scheduler does: the first time
    one interval after start, then every interval."""

    def __init__(self, stop: threading.Event, stacks: RegionStacks) -> None:

        self.stop = stop
        self.stacks = stacks
        self.rates = {
            name: seconds
            for name, expression in app_schedules().items()
            if (seconds := rate_seconds(expression)) is not None
        }

    def run(self) -> None:

        started = time.monotonic()
        fired = dict.fromkeys(self.rates, 0)
        while not self.stop.wait(1):
            elapsed = time.monotonic() - started
            for name, seconds in self.rates.items():
                if elapsed // seconds > fired[name]:
                    fired[name] += 1
                    for region in self.stacks.regions():
                        event = scheduled_event(name, ACCOUNT, region, datetime.now(UTC))
                        try:
                            invoke(name, event, region)
                        except Exception:
                            logger.exception("schedule %s failed in %s", name, region)


def serve(*, host: str, aws_port: int, api_port: int, data_dir: Path | None) -> None:

    # Refuse to start on an invalid policy: raises PolicyError naming every bad field.
    loaded = load_policy(get_settings().policy_path)
    check_ports(host, {"STEWARD_AWS_PORT": aws_port, "STEWARD_API_PORT": api_port})

    stop = threading.Event()
    stacks: RegionStacks | None = None

    def on_region(region: str) -> None:
        if stacks is not None:
            stacks.ensure(region)

    with EmbeddedAWS(
        host=host, port=aws_port, data_dir=data_dir, region=REGION, on_region=on_region
    ) as aws:
        configure_environment(aws.endpoint_url)
        stacks = RegionStacks(aws.endpoint_url, stop)
        stacks.ensure(REGION)
        api = _start_api(host, api_port)
        clock = ScheduleClock(stop, stacks)
        threading.Thread(target=clock.run, name="schedules", daemon=True).start()

        def _stop(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        print(
            _banner(
                aws.endpoint_url,
                f"http://{host}:{api_port}",
                loaded.source,
                aws.registry_host,
                clock.rates,
            ),
            flush=True,
        )
        try:
            stop.wait()
        finally:
            print("\nstopping…", flush=True)
            api.shutdown()
            for thread in stacks.threads:
                thread.join(timeout=5)
    print("stopped.", flush=True)


def _start_api(host: str, port: int) -> Any:

    factory = CLIFactory(str(PROJECT_ROOT))
    config = factory.create_config_obj(chalice_stage_name="dev")
    server = create_local_server(config.chalice_app, config, host, port)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    return server


def _banner(
    aws_url: str, api_url: str, policy: str, registry: str, schedules: dict[str, int]
) -> str:
    fired = ", ".join(f"{name} every {_every(seconds)}" for name, seconds in schedules.items())
    return f"""
ecr-steward is running on the embedded AWS backend.

  AWS endpoint (ECR, DynamoDB, SQS, STS, EventBridge)  {aws_url}
  OCI registry (docker, podman, skopeo, oras)          {registry}   (plain HTTP, user AWS)
  HTTP API                                             {api_url}   (try {api_url}/health)
  policy                                               {policy}
  ECR events (every region)                            delivered to on_ecr_event
  schedules                                            {fired}
                                                       (now: steward sweep run --local)

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


def _every(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}" if n != 1 else unit
    return f"{seconds} s"

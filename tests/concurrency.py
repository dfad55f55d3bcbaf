"""Concurrent invocations in separate processes against one embedded backend.

Each worker process is one stream of Lambda invocations: it pushes its releases (as a client,
outside the service, without faults), then hands ECR's push event to `on_ecr_event` with the
fault injector in front of every AWS client of the service. Like Lambda's async invocation, an
event that raises is retried twice; after the third failure it is dead-lettered (returned to
the parent with its reason). Used by tests/integration/test_concurrency.py (small) and
benchmarks/bench_reliability.py (large).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

import app
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel import aws
from chalicelib.kernel.settings import get_settings
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image
from tests.faults import FaultInjector, fast_backoff
from tests.imagefactory import push_built
from tests.paths import EVENTS

ACCOUNT, REGION = "123456789012", "us-east-1"
WARM_SERVICES = ("ecr", "dynamodb", "sqs", "events", "sts")
LAMBDA_ATTEMPTS = 3  # the invocation and Lambda's two async retries
# Seconds an invocation's in-progress record holds the event in the workers; Lambda's retry
# delay is simulated as just over it.
IN_PROGRESS_SECONDS = 1


@dataclass
class Outcome:
    """What the workers report: results by status, dead-lettered events, injected faults."""

    statuses: Counter[str] = field(default_factory=Counter)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    push_seconds: float = 0.0
    invoke_seconds: float = 0.0
    crashes: list[str] = field(default_factory=list)


def push_event(repository: str, digest: str, tag: str, event_id: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "ecr_image_action_push_success.json").read_text())
    event.update(id=event_id, account=ACCOUNT, region=REGION)
    event["detail"].update({"repository-name": repository, "image-digest": digest})
    event["detail"]["image-tag"] = tag
    return event


def invoke_like_lambda(event: dict[str, Any], outcome: Outcome) -> None:
    """Invoke, retry twice on an exception (as Lambda does an async event), then dead-letter."""
    reason = ""
    for attempt in range(LAMBDA_ATTEMPTS):
        if attempt:
            outcome.retries += 1
        try:
            result = app.on_ecr_event(event, LocalLambdaContext())
        except IdempotencyAlreadyInProgressError:
            reason = "in progress"
            time.sleep(IN_PROGRESS_SECONDS + 0.1)  # Lambda's retry comes after the window
            continue
        except Exception as error:  # transient errors raise for a retry, as on Lambda
            reason = f"{type(error).__name__}: {error}"
            continue
        outcome.statuses[result.get("status", "?")] += 1
        return
    outcome.dead_letters.append({"reason": reason, "event": event})


def _worker(
    endpoint: str,
    environment: Mapping[str, str],
    repository: str,
    releases: list[tuple[str, int]],
    rates: Mapping[str, Mapping[str, float]],
    seed: int,
    attempts: int | None,
    backoff: float,
    results: Any,
) -> None:
    outcome = Outcome()
    try:
        if attempts is not None:
            _cap_botocore_attempts(attempts)
        os.environ.update(environment)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ["STEWARD_IDEMPOTENCY_IN_PROGRESS"] = str(IN_PROGRESS_SECONDS)
        get_settings.cache_clear()
        # Clients inherited from the parent share its sockets: build new ones, from the
        # session the parent warmed (its service models stay loaded).
        aws.reset(keep_session=True)
        # The pusher is a client of ECR, not the service: built before the hook, never faulted.
        pusher = Registry(region=REGION, session=aws.session())
        assert pusher.client is not None
        injector = FaultInjector(rates, seed=seed).install(keep_session=True)
        with fast_backoff(backoff):
            for n, (tag, image_seed) in enumerate(releases):
                started = time.monotonic()
                digest = push_built(pusher, build_image([64], seed=image_seed), repository, tag)
                pushed = time.monotonic()
                event_id = f"push-{repository}-{seed}-{n}-{tag}"  # unique across runs
                event = push_event(repository, digest, tag, event_id)
                invoke_like_lambda(event, outcome)
                outcome.push_seconds += pushed - started
                outcome.invoke_seconds += time.monotonic() - pushed
        outcome.injected = injector.injected
    except Exception:
        outcome.crashes.append(traceback.format_exc())
    finally:
        aws.reset()
        results.put(outcome)


def _cap_botocore_attempts(attempts: int) -> None:
    """At most `attempts` requests per AWS call in this worker, so injected faults outlast
    botocore's retries and reach Lambda's (the invocation raises, is retried, dead-lettered)."""
    for profile in aws.RETRIES.values():
        profile["total_max_attempts"] = min(profile["total_max_attempts"], attempts)
    build = Registry._build_client

    def capped(self: Registry, mode: str, total_attempts: int) -> Any:
        return build(self, mode, min(total_attempts, attempts))

    Registry._build_client = capped  # type: ignore[method-assign,assignment]


def run_pushers(
    endpoint: str,
    repository: str,
    releases: list[tuple[str, int]],
    *,
    processes: int,
    rates: Mapping[str, Mapping[str, float]],
    seed: int,
    attempts: int | None = None,
    backoff: float = 0.01,
) -> Outcome:
    """Push `releases` ((tag, image seed) pairs) from `processes` processes, round robin, each
    invoking the service for its own pushes under the given fault rates. `attempts` caps
    botocore's requests per call; `backoff` scales botocore's retry delays. Blocks until done."""
    # Forked: the workers start with the parent's imports and its loaded service models.
    for service in WARM_SERVICES:
        aws.session().client(service, region_name=REGION)
    environment = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "STEWARD_"))}
    parts = in_processes(
        _worker,
        [
            (
                endpoint,
                environment,
                repository,
                releases[index::processes],
                rates,
                seed * 1000 + index,
                attempts,
                backoff,
            )
            for index in range(processes)
        ],
    )
    merged = Outcome()
    for part in parts:
        merged.statuses.update(part.statuses)
        merged.dead_letters += part.dead_letters
        merged.injected.update(part.injected)
        merged.retries += part.retries
        merged.push_seconds += part.push_seconds
        merged.invoke_seconds += part.invoke_seconds
        merged.crashes += part.crashes
    return merged


def in_processes(
    target: Callable[..., None], arguments: list[tuple[Any, ...]], timeout: float = 600
) -> list[Any]:
    """`target(*args, results)` in a forked process for each `args`, at once; returns what each
    put on `results`, in the order they finished. Forked, the processes start with the parent's
    imports and the service models it loaded."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=target, args=(*args, results)) for args in arguments]
    for worker in workers:
        worker.start()
    parts = [results.get(timeout=timeout) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return parts


def tags_by_digest(registry: Registry, repository: str) -> dict[str, set[str]]:
    return {i.digest: set(i.tags) for i in registry.iter_images(repository)}

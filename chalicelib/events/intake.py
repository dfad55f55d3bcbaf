"""Event intake: every ECR and Inspector event enters here, exactly once in effect.

parse (typed models) → reject malformed events to the dead-letter queue → idempotency on DynamoDB
→ route by event kind. A malformed event is logged with its reason, counted, sent to the
dead-letter queue, and the function returns normally: retrying it cannot make it valid, so a
retry storm would only hide good events. A transient AWS error raises, so Lambda retries; a
permanent one (or a bug) dead-letters the event with its reason, once, for a redrive after the
fix. The in-progress idempotency record expires after `idempotency_in_progress_seconds`, so an
invocation that died, or whose write to DynamoDB lost its answer, never strands the event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

from chalicelib.ecr.errors import ImageNotFound, RepositoryNotFound
from chalicelib.ecr.readcache import shared_reads
from chalicelib.events.models import (
    Envelope,
    ImageActionDetail,
    MalformedEvent,
    ParsedEvent,
    parse_event,
)
from chalicelib.gate import react as gate_react
from chalicelib.kernel.aws import client as aws_client
from chalicelib.kernel.aws import on_reset
from chalicelib.kernel.errors import AwsCallError, aws_errors, is_transient
from chalicelib.kernel.jobqueue import queue_url
from chalicelib.kernel.observability import count, flushes_metrics, logger
from chalicelib.kernel.settings import Settings, SettingsError, get_settings
from chalicelib.policy.document import PolicyError
from chalicelib.replication import react as replication_react
from chalicelib.tagging import react as tagging_react

Reaction = Callable[[Envelope[Any], datetime], dict[str, Any] | None]


@flushes_metrics
def handle_ecr_event(raw: Any, context: Any = None) -> dict[str, Any]:
    """The body of the `on_ecr_event` Lambda function."""
    log = logger()
    count("EventsReceived")
    try:
        parsed = parse_event(raw)
    except MalformedEvent as error:
        return reject(raw, error.reason)
    detail = parsed.event.detail
    with log.append_context_keys(
        event_id=parsed.event.id,
        detail_type=parsed.event.detail_type,
        repository=getattr(detail, "repository_name", None),
        digest=getattr(detail, "image_digest", None),
    ):
        try:
            return _process_once(parsed, context)
        except EventFailed as failed:
            return _fail(raw, failed.reason, failed.outcome)
        except IdempotencyAlreadyInProgressError:
            # Another invocation holds the event (or held it and died): retry after its
            # in-progress record expires. Not a failure of the event.
            log.info("event in progress elsewhere: raising for a retry")
            raise
        except (PolicyError, SettingsError):
            # The function cannot run as deployed: fail loudly (the documented behaviour, and
            # what /health reports) rather than dead-letter every event.
            raise
        except Exception as error:
            if is_transient(error):
                raise  # Lambda retries; the idempotency record was released (or expires)
            # A retry would fail the same way: dead-letter once, with the reason, for a redrive.
            log.exception("event failed", extra={"error": type(error).__name__})
            return _fail(raw, f"{type(error).__name__}: {error}", None)


class EventFailed(Exception):
    """A reaction failed for good (a permanent AWS error). Raised out of the idempotent section
    so its record is released: a redrive of the dead letter is processed, not a duplicate."""

    def __init__(self, reason: str, outcome: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome


def _fail(raw: Any, reason: str, outcome: dict[str, Any] | None) -> dict[str, Any]:
    event_id = raw.get("id") if isinstance(raw, dict) else None
    logger().error("event failed", extra={"reason": reason, "event_id": event_id})
    count("EventsFailed")
    dead_letter(raw, reason)
    return {**(outcome or {}), "status": "failed", "reason": reason, "event_id": event_id}


def reject(raw: Any, reason: str) -> dict[str, Any]:
    """Log, count and dead-letter an event that cannot be processed, then acknowledge it."""
    event_id = raw.get("id") if isinstance(raw, dict) else None
    logger().error("event rejected", extra={"reason": reason, "event_id": event_id})
    count("EventsRejected")
    dead_letter(raw, reason)
    return {"status": "rejected", "reason": reason, "event_id": event_id}


def dead_letter(raw: Any, reason: str) -> None:
    body = json.dumps({"reason": reason, "event": raw}, default=str)
    # A failed send raises (transient: Lambda retries the event, which is rejected again).
    with aws_errors("sqs", "send_message"):
        aws_client("sqs").send_message(
            QueueUrl=queue_url(get_settings().dead_letter_queue),
            MessageBody=body,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1024]}},
        )


# --- exactly once in effect --------------------------------------------------------------------


class _InProgressWindow:
    """The Lambda context as Powertools sees it: the remaining time, capped.

    Powertools sets the in-progress record's expiry to now + the remaining time (about 300 s on
    this function). Lambda's two async retries come within that, so an invocation whose write
    answer was lost, or that died, would leave its record in progress past both retries and the
    event would be dead-lettered unprocessed. Capped below the first retry's delay, the retry
    takes the record over. Every reaction converges, so the rare overlap with a slow invocation
    of the same event costs time, not correctness."""

    def __init__(self, context: Any, cap_seconds: int) -> None:
        self._context = context
        self._cap_ms = cap_seconds * 1000

    def get_remaining_time_in_millis(self) -> int:
        remaining = getattr(self._context, "get_remaining_time_in_millis", None)
        left = int(remaining()) if callable(remaining) else self._cap_ms
        return max(0, min(left, self._cap_ms))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _process_once(parsed: ParsedEvent, context: Any) -> dict[str, Any]:
    settings = get_settings()
    process = _idempotent_processor(settings)
    # Registered on every call, with or without a real context: without one, an in-progress
    # record would last the whole TTL.
    process.config.register_lambda_context(
        _InProgressWindow(context, settings.idempotency_in_progress_seconds)  # type: ignore[arg-type]
    )
    result: dict[str, Any] = process(event=parsed.event.model_dump(mode="json", by_alias=True))
    return result


class _IdempotentProcessor:
    """Route an event once per event id; a redelivery returns the first outcome unchanged."""

    def __init__(self, settings: Settings) -> None:

        self.config = IdempotencyConfig(
            # EventBridge keeps an event's id across redeliveries; the source and detail-type
            # make the key unique across event producers.
            event_key_jmespath='[source, "detail-type", id]',
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=_mark_duplicate,
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=aws_client("dynamodb")
        )
        self._run = idempotent_function(
            data_keyword_argument="event",
            persistence_store=persistence,
            config=self.config,
        )(_route)

    def __call__(self, *, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._run(event=event)
        return result


@lru_cache(maxsize=4)
def _idempotent_processor(settings: Settings) -> _IdempotentProcessor:
    return _IdempotentProcessor(settings)


# The processor holds a DynamoDB client: it is rebuilt with every other client.
on_reset(_idempotent_processor.cache_clear)


def _mark_duplicate(response: Any, idempotent_data: Any) -> Any:
    count("EventsDuplicate")
    logger().info("duplicate event: already handled, nothing changed")
    if isinstance(response, dict):
        return {**response, "duplicate": True}
    return response


# --- routing ---------------------------------------------------------------------------------


def _route(event: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_event(event)
    now = datetime.now(UTC)
    key = reaction_key(parsed)
    outcomes: dict[str, Any] = {}
    failures: list[str] = []
    # One read of the image and its repository, shared by every reaction to the event.
    with shared_reads():
        for capability, reaction in REACTIONS.get(key, ()):
            try:
                outcome = _react(capability, reaction, parsed, now)
            except AwsCallError as error:
                if error.transient:
                    raise
                # The other reactions still run; the event is then dead-lettered with this.
                logger().error(
                    "reaction failed", extra={"reaction": capability, "why": error.reason}
                )
                failures.append(f"{capability}: {error.reason}")
                outcome = {"failed": error.reason}
            if outcome is not None:
                outcomes[capability] = outcome
    if failures:
        result = {"kind": parsed.kind, "event_id": parsed.event.id, **outcomes}
        raise EventFailed("; ".join(failures), result)
    if not outcomes:
        return acknowledge(parsed, f"no rule acts on {key} events here")
    return {"status": "handled", "kind": parsed.kind, "event_id": parsed.event.id, **outcomes}


# Which capabilities react to which events, in order. A reaction takes (event, now) and returns
# its outcome, or None when none of its rules applies.
REACTIONS: dict[str, tuple[tuple[str, Reaction], ...]] = {
    "push": (
        ("tagging", tagging_react.react_to_push),
        ("gate", gate_react.react_to_push),
        ("replication", replication_react.react_to_push),
    ),
    "image-scan": (("gate", gate_react.react_to_scan),),
    "inspector-scan": (("gate", gate_react.react_to_scan),),
    "delete": (("replication", replication_react.react_to_delete),),
    "gate-decision": (("replication", replication_react.react_to_gate_decision),),
}


def reaction_key(parsed: ParsedEvent) -> str:
    """`push`, `delete`, `update_storage_class` for successful ECR Image Actions; else the kind."""
    if parsed.kind == "image-action":
        detail: ImageActionDetail = parsed.event.detail
        if detail.result == "SUCCESS" and detail.image_digest:
            return detail.action_type.lower()
        return f"image-action-{detail.result.lower()}"
    return parsed.kind


def _react(
    capability: str, reaction: Reaction, parsed: ParsedEvent, now: datetime
) -> dict[str, Any] | None:
    try:
        return reaction(parsed.event, now)
    except (RepositoryNotFound, ImageNotFound) as error:
        # Deleted since the event: nothing left to act on, and a retry would not change that.
        logger().info("nothing to act on", extra={"reaction": capability, "why": error.code})
        return {"skipped": f"image or repository no longer exists ({error.code})"}


def acknowledge(parsed: ParsedEvent, why: str) -> dict[str, Any]:
    count("EventsIgnored")
    logger().info("event acknowledged", extra={"kind": parsed.kind, "why": why})
    return {"status": "ignored", "kind": parsed.kind, "why": why, "event_id": parsed.event.id}

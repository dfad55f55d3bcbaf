"""Event intake: every ECR and Inspector event enters here, exactly once in effect.

parse (typed models) → reject malformed events to the dead-letter queue → idempotency on DynamoDB
→ route by event kind. A malformed event is logged with its reason, counted, sent to the
dead-letter queue, and the function returns normally: retrying it cannot make it valid, so a
retry storm would only hide good events. A transient AWS error raises, so Lambda retries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from chalicelib.events import (
    ImageActionDetail,
    MalformedEvent,
    ParsedEvent,
    parse_event,
)
from chalicelib.observability import count, flush_metrics, logger
from chalicelib.settings import Settings, get_settings

Handler = Callable[[ParsedEvent, datetime], dict[str, Any]]


def handle_ecr_event(raw: Any, context: Any = None) -> dict[str, Any]:
    """The body of the `on_ecr_event` Lambda function."""
    log = logger()
    count("EventsReceived")
    try:
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
            return _process_once(parsed, context)
    finally:
        flush_metrics()


def reject(raw: Any, reason: str) -> dict[str, Any]:
    """Log, count and dead-letter an event that cannot be processed, then acknowledge it."""
    event_id = raw.get("id") if isinstance(raw, dict) else None
    logger().error("event rejected", extra={"reason": reason, "event_id": event_id})
    count("EventsRejected")
    dead_letter(raw, reason)
    return {"status": "rejected", "reason": reason, "event_id": event_id}


def dead_letter(raw: Any, reason: str) -> None:
    body = json.dumps({"reason": reason, "event": raw}, default=str)
    _sqs().send_message(
        QueueUrl=_dead_letter_queue_url(get_settings().dead_letter_queue),
        MessageBody=body,
        MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1024]}},
    )


@lru_cache(maxsize=1)
def _sqs() -> Any:
    import boto3

    return boto3.client("sqs")


@lru_cache(maxsize=8)
def _dead_letter_queue_url(queue: str) -> str:
    if queue.startswith(("https://", "http://")):
        return queue
    return str(_sqs().get_queue_url(QueueName=queue)["QueueUrl"])


# --- exactly once in effect --------------------------------------------------------------------


def _process_once(parsed: ParsedEvent, context: Any) -> dict[str, Any]:
    process = _idempotent_processor(get_settings())
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        process.config.register_lambda_context(context)
    result: dict[str, Any] = process(event=parsed.event.model_dump(mode="json", by_alias=True))
    return result


class _IdempotentProcessor:
    """Route an event once per event id; a redelivery returns the first outcome unchanged."""

    def __init__(self, settings: Settings) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self.config = IdempotencyConfig(
            # EventBridge keeps an event's id across redeliveries; the source and detail-type
            # make the key unique across event producers.
            event_key_jmespath='[source, "detail-type", id]',
            raise_on_no_idempotency_key=True,
            expires_after_seconds=settings.idempotency_ttl_seconds,
            response_hook=_mark_duplicate,
        )
        persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
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


def _mark_duplicate(response: Any, idempotent_data: Any) -> Any:
    count("EventsDuplicate")
    logger().info("duplicate event: already handled, nothing changed")
    if isinstance(response, dict):
        return {**response, "duplicate": True}
    return response


# --- routing ---------------------------------------------------------------------------------


def _route(event: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_event(event)
    handler = _HANDLERS.get(parsed.kind)
    now = datetime.now(UTC)
    if handler is None:
        return acknowledge(parsed, "no action for this kind of event")
    return handler(parsed, now)


def acknowledge(parsed: ParsedEvent, why: str) -> dict[str, Any]:
    count("EventsIgnored")
    logger().info("event acknowledged", extra={"kind": parsed.kind, "why": why})
    return {"status": "ignored", "kind": parsed.kind, "why": why, "event_id": parsed.event.id}


def on_image_action(parsed: ParsedEvent, now: datetime) -> dict[str, Any]:
    detail: ImageActionDetail = parsed.event.detail
    if detail.action_type == "PUSH" and detail.result == "SUCCESS" and detail.image_digest:
        return on_push(parsed, detail, now)
    return acknowledge(parsed, f"{detail.action_type} {detail.result}: no action")


def on_push(parsed: ParsedEvent, detail: ImageActionDetail, now: datetime) -> dict[str, Any]:
    """A pushed image gets the tags the policy's tagging rules give it."""
    from chalicelib.policy import current_policy
    from chalicelib.registry import ImageNotFound, RepositoryNotFound, registry_for
    from chalicelib.tagging import tag_pushed_image

    loaded = current_policy()
    rules = loaded.policy.tagging_rules(detail.repository_name)
    if not rules:
        return acknowledge(parsed, "no tagging rule selects this repository")
    registry = registry_for(parsed.event.account, parsed.event.region)
    try:
        result = tag_pushed_image(
            registry,
            rules,
            detail.repository_name,
            str(detail.image_digest),
            detail.image_tag,
            now=now,
            dry_run=loaded.policy.dry_run or get_settings().dry_run,
        )
    except (RepositoryNotFound, ImageNotFound) as error:
        # Deleted since the push: nothing left to tag, and a retry would not change that.
        return acknowledge(parsed, f"image no longer exists: {error.code}")
    summary = result.model_dump(mode="json")
    for outcome in ("applied", "blocked", "unchanged", "planned"):
        n = sum(1 for tag in summary.get("tags", []) if tag.get("outcome") == outcome)
        if n:
            count(f"Tags{outcome.capitalize()}", n)
    logger().info("tagging done", extra={"tagging": summary})
    return {"status": "handled", "kind": parsed.kind, "event_id": parsed.event.id, **summary}


_HANDLERS: dict[str, Handler] = {
    "image-action": on_image_action,
}

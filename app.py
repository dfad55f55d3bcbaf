"""ecr-steward's Lambda functions and HTTP API. Doors, not rooms: each handler calls one function
in chalicelib. chalicelib is imported inside the handlers so that a cold start pays only for what
the invoked function uses (see benchmarks/bench_foundation.py)."""

from typing import Any

from chalice import Chalice, Response
from chalice.app import CloudWatchEvent

app = Chalice(app_name="ecr-steward", configure_logs=False)

ECR_EVENT_PATTERN = {"source": ["aws.ecr", "aws.inspector2"]}


class RawEventBridgeEvent(CloudWatchEvent):
    """Chalice's CloudWatchEvent raises KeyError on a payload missing a field, before any of our
    code runs; that would make Lambda retry a malformed event forever instead of rejecting it to
    the dead-letter queue. This keeps the raw payload and lets intake validate it."""

    def _extract_attributes(self, event_dict: Any) -> None:
        fields: dict[str, Any] = event_dict if isinstance(event_dict, dict) else {}
        self.version = str(fields.get("version", ""))
        self.account = str(fields.get("account", ""))
        self.region = str(fields.get("region", ""))
        self.detail = fields.get("detail") or {}
        self.detail_type = str(fields.get("detail-type", ""))
        self.source = str(fields.get("source", ""))
        self.time = str(fields.get("time", ""))
        self.event_id = str(fields.get("id", ""))
        self.resources = fields.get("resources") or []


@app.on_cw_event(ECR_EVENT_PATTERN, name="on_ecr_event")
def on_ecr_event(event: RawEventBridgeEvent) -> dict[str, Any]:
    from chalicelib.intake import handle_ecr_event

    return handle_ecr_event(event.to_dict(), event.context)


on_ecr_event.event_class = RawEventBridgeEvent


@app.route("/health", methods=["GET"])
def health() -> Response:
    from chalicelib.health import health_report

    status, body = health_report()
    return Response(body=body, status_code=status)

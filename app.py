"""ecr-steward's Lambda functions and HTTP API. Doors, not rooms: each handler calls one function
in chalicelib. chalicelib is imported inside the handlers so that a cold start pays only for what
the invoked function uses (see benchmarks/bench_foundation.py)."""

from typing import Any

from chalice import Chalice, IAMAuthorizer, Response
from chalice.app import CloudWatchEvent

app = Chalice(app_name="ecr-steward", configure_logs=False)

# steward.gate: the scan gate's decisions, which replication's `gate` trigger acts on.
ECR_EVENT_PATTERN = {"source": ["aws.ecr", "aws.inspector2", "steward.gate"]}


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
    from chalicelib.events.intake import handle_ecr_event

    return handle_ecr_event(event.to_dict(), event.context)


on_ecr_event.event_class = RawEventBridgeEvent


@app.route("/health", methods=["GET"])
def health() -> Response:
    from chalicelib.health import health_report

    status, body = health_report()
    return Response(body=body, status_code=status)


@app.route("/v1/token", methods=["GET"])
def vend_token() -> Response:
    """A scoped ECR credential for a caller with an OIDC JWT (or, locally, a static key)."""
    from chalicelib.tokens.http import token_response

    return Response(**token_response(app.current_request, via="bearer"))


@app.route("/v1/token/iam", methods=["GET"], authorizer=IAMAuthorizer())
def vend_token_iam() -> Response:
    """The same, for a caller API Gateway authenticated by SigV4 (its IAM principal)."""
    from chalicelib.tokens.http import token_response

    return Response(**token_response(app.current_request, via="iam"))


@app.on_sqs_message(queue="steward-replication-jobs", batch_size=10, name="on_copy_job")
def on_copy_job(event: Any) -> dict[str, Any]:
    """Replication copy jobs, one image and destination each; failures reported per record."""
    from chalicelib.replication.consumer import handle_copy_jobs

    return handle_copy_jobs(event.to_dict(), event.context)


@app.schedule("rate(5 minutes)", name="gate_sweep")
def gate_sweep(event: Any) -> dict[str, Any]:
    """Scan gate: fail closed images with no scan result past the timeout; re-decide what a
    policy change or an expired allowlist entry changed."""
    from datetime import UTC, datetime

    from chalicelib.gate.sweep import sweep

    return sweep(datetime.now(UTC))


@app.route("/v1/images/{repository}/{digest}/gate", methods=["GET"])
def gate_decision(repository: str, digest: str) -> Response:
    """The scan gate's record for one image, for a bearer token whose grant covers the
    repository. A repository name's slashes are URL-encoded (`team%2Fapp`): one path segment."""
    from urllib.parse import unquote

    from chalicelib.gate_api import gate_response

    request = app.current_request
    return Response(**gate_response(request, unquote(repository), unquote(digest), via="bearer"))


@app.route("/v1/images/{repository}/{digest}/gate/iam", methods=["GET"], authorizer=IAMAuthorizer())
def gate_decision_iam(repository: str, digest: str) -> Response:
    """The same, for a caller API Gateway authenticated by SigV4 (its IAM principal)."""
    from urllib.parse import unquote

    from chalicelib.gate_api import gate_response

    request = app.current_request
    return Response(**gate_response(request, unquote(repository), unquote(digest), via="iam"))


@app.schedule("rate(1 hour)", name="start_sweep")
def start_sweep(event: Any) -> dict[str, Any]:
    """The sweep: one job per repository in scope, onto the repository-job queue."""
    from chalicelib.sweep.jobs import handle_schedule

    return handle_schedule(event.to_dict())


@app.on_sqs_message(queue="steward-repository-jobs", batch_size=10, name="on_repository_job")
def on_repository_job(event: Any) -> dict[str, Any]:
    """Sweep tasks (retention, governance, …) for one repository a record; failures per record."""
    from chalicelib.sweep.jobs import handle_repository_jobs

    return handle_repository_jobs(event.to_dict(), event.context)


@app.schedule("rate(1 hour)", name="governance_reconcile")
def governance_reconcile(event: Any) -> dict[str, Any]:
    """Governance, registry-wide: create missing declared repositories, expire ephemeral ones
    (repository settings run per repository in the sweep)."""
    from chalicelib.governance.task import handle_schedule

    return handle_schedule(event.to_dict())


@app.schedule("rate(1 hour)", name="mirror_sync")
def mirror_sync(event: Any) -> dict[str, Any]:
    """Mirror rules: one copy job per upstream image of each rule whose interval has come,
    onto the copy-job queue (`on_copy_job` copies it)."""
    from chalicelib.mirror.fanout import handle_schedule

    return handle_schedule(event.to_dict())

"""Runtime settings: every environment variable the functions read, in one validated model.

Locally (and in tests) each table and queue has the name the embedded backend creates. In a
deployed function (`AWS_LAMBDA_FUNCTION_NAME` is set) nothing falls back to a local name: a stage
whose config misses a variable fails at the first use of its settings, naming the variables,
rather than quietly using `steward-*` resources that do not exist there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Names the embedded backend creates; on AWS the stage's config sets the deployed names.
DEFAULT_IDEMPOTENCY_TABLE = "steward-idempotency"
DEFAULT_EVENTS_DLQ = "steward-ecr-events-dlq"
DEFAULT_SWEEP_QUEUE = "steward-repository-jobs"
DEFAULT_SWEEP_DLQ = "steward-repository-jobs-dlq"
DEFAULT_SWEEP_TABLE = "steward-sweeps"
DEFAULT_RETENTION_TABLE = "steward-retention-marks"
DEFAULT_GATE_TABLE = "steward-gate-decisions"
DEFAULT_REPLICATION_QUEUE = "steward-replication-jobs"
DEFAULT_REPLICATION_DLQ = "steward-replication-jobs-dlq"
DEFAULT_REPLICATION_TABLE = "steward-replication-copies"
DEFAULT_PACING_TABLE = "steward-pacing"

# variable -> local default; a deployed stage must set every one of them.
RESOURCE_VARIABLES = {
    "STEWARD_IDEMPOTENCY_TABLE": DEFAULT_IDEMPOTENCY_TABLE,
    "STEWARD_EVENTS_DLQ": DEFAULT_EVENTS_DLQ,
    "STEWARD_SWEEP_QUEUE": DEFAULT_SWEEP_QUEUE,
    "STEWARD_SWEEP_TABLE": DEFAULT_SWEEP_TABLE,
    "STEWARD_RETENTION_TABLE": DEFAULT_RETENTION_TABLE,
    "STEWARD_GATE_TABLE": DEFAULT_GATE_TABLE,
    "STEWARD_REPLICATION_QUEUE": DEFAULT_REPLICATION_QUEUE,
    "STEWARD_REPLICATION_TABLE": DEFAULT_REPLICATION_TABLE,
    "STEWARD_PACING_TABLE": DEFAULT_PACING_TABLE,
}
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


class SettingsError(RuntimeError):
    """The environment is not one the functions can run in."""


class Settings(BaseModel):
    """What a function needs to know about where it runs."""

    model_config = ConfigDict(frozen=True)  # hashable: caches key on it

    # True in a Lambda function: static token keys are refused there, resources must be named.
    deployed: bool
    policy_path: Path
    dry_run: bool
    region: str
    idempotency_table: str
    idempotency_ttl_seconds: int
    # How long an event's in-progress idempotency record holds off another invocation of the
    # same event. Shorter than Lambda's first async retry (about a minute) so a record whose
    # invocation died, or whose write answer was lost, never strands the event's retries.
    idempotency_in_progress_seconds: int = 45
    dead_letter_queue: str
    sweep_queue: str
    # The sweep's lease and its claims on pages and repositories (`chalicelib.sweep.ledger`).
    sweep_table: str
    retention_table: str
    gate_table: str
    replication_queue: str
    replication_table: str
    # ECR's rate quotas, one token bucket per (account, region, operation) shared by every
    # function (`chalicelib.kernel.pacing`).
    pacing_table: str
    # While that table cannot be reached, each process paces itself at this share of a quota.
    pacing_fallback_share: float = 0.1
    # The role the token API assumes; default: ecr-steward-token-vending in the caller's account.
    token_role_arn: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        deployed = bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        missing = [name for name in RESOURCE_VARIABLES if not environ.get(name)]
        if deployed and missing:
            raise SettingsError(
                f"the function's environment lacks {', '.join(missing)}: "
                "set them in the stage's config (.chalice/config.json)"
            )
        names = {name: environ.get(name) or default for name, default in RESOURCE_VARIABLES.items()}
        policy = Path(environ.get("STEWARD_POLICY", "policy.example.yaml"))
        if not policy.is_absolute() and not policy.exists():
            # Lambda's working directory is the package root; locally it is the checkout.
            policy = PROJECT_ROOT / policy
        ttl = environ.get("STEWARD_IDEMPOTENCY_TTL", "86400")
        if not ttl.isdigit():
            raise SettingsError(f"STEWARD_IDEMPOTENCY_TTL must be a number of seconds, not {ttl!r}")
        in_progress = environ.get("STEWARD_IDEMPOTENCY_IN_PROGRESS", "45")
        if not in_progress.isdigit() or int(in_progress) < 1:
            raise SettingsError(
                "STEWARD_IDEMPOTENCY_IN_PROGRESS must be a positive number of seconds, "
                f"not {in_progress!r}"
            )
        share = environ.get("STEWARD_PACING_FALLBACK_SHARE", "0.1")
        try:
            fallback_share = float(share)
        except ValueError:
            fallback_share = 0.0
        if not 0 < fallback_share <= 1:
            raise SettingsError(
                f"STEWARD_PACING_FALLBACK_SHARE must be a fraction in (0, 1], not {share!r}"
            )
        return cls(
            deployed=deployed,
            policy_path=policy,
            dry_run=environ.get("STEWARD_DRY_RUN", "").strip().lower() in TRUE_WORDS,
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            idempotency_table=names["STEWARD_IDEMPOTENCY_TABLE"],
            idempotency_ttl_seconds=int(ttl),
            idempotency_in_progress_seconds=int(in_progress),
            dead_letter_queue=names["STEWARD_EVENTS_DLQ"],
            sweep_queue=names["STEWARD_SWEEP_QUEUE"],
            sweep_table=names["STEWARD_SWEEP_TABLE"],
            retention_table=names["STEWARD_RETENTION_TABLE"],
            gate_table=names["STEWARD_GATE_TABLE"],
            replication_queue=names["STEWARD_REPLICATION_QUEUE"],
            replication_table=names["STEWARD_REPLICATION_TABLE"],
            pacing_table=names["STEWARD_PACING_TABLE"],
            pacing_fallback_share=fallback_share,
            token_role_arn=environ.get("STEWARD_TOKEN_ROLE_ARN") or None,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()

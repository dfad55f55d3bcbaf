"""Runtime settings, read from the environment once per process."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Names the embedded backend creates; on AWS the stage's config sets the deployed names.
DEFAULT_IDEMPOTENCY_TABLE = "steward-idempotency"
DEFAULT_EVENTS_DLQ = "steward-ecr-events-dlq"
# sweep and retention
DEFAULT_SWEEP_QUEUE = "steward-repository-jobs"
DEFAULT_SWEEP_DLQ = "steward-repository-jobs-dlq"
DEFAULT_RETENTION_TABLE = "steward-retention-marks"
# scan gate
DEFAULT_GATE_TABLE = "steward-gate-decisions"
# replication: copy jobs and the record of what each rule copied
DEFAULT_REPLICATION_QUEUE = "steward-replication-jobs"
DEFAULT_REPLICATION_DLQ = "steward-replication-jobs-dlq"
DEFAULT_REPLICATION_TABLE = "steward-replication-copies"


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Settings(BaseModel):
    """What a function needs to know about where it runs. Every field has an env var."""

    model_config = ConfigDict(frozen=True)  # hashable: caches key on it

    policy_path: Path
    dry_run: bool
    region: str
    idempotency_table: str
    dead_letter_queue: str
    idempotency_ttl_seconds: int
    # sweep and retention (read here so the constructor above stays as it was)
    sweep_queue: str = Field(
        default_factory=lambda: os.environ.get("STEWARD_SWEEP_QUEUE", DEFAULT_SWEEP_QUEUE)
    )
    retention_table: str = Field(
        default_factory=lambda: os.environ.get("STEWARD_RETENTION_TABLE", DEFAULT_RETENTION_TABLE)
    )
    # scan gate: the decisions table
    gate_table: str = Field(
        default_factory=lambda: os.environ.get("STEWARD_GATE_TABLE", DEFAULT_GATE_TABLE)
    )
    # replication: the copy-job queue and the table of copies each rule made
    replication_queue: str = Field(
        default_factory=lambda: os.environ.get(
            "STEWARD_REPLICATION_QUEUE", DEFAULT_REPLICATION_QUEUE
        )
    )
    replication_table: str = Field(
        default_factory=lambda: os.environ.get(
            "STEWARD_REPLICATION_TABLE", DEFAULT_REPLICATION_TABLE
        )
    )

    @classmethod
    def from_env(cls) -> Settings:
        policy = Path(os.environ.get("STEWARD_POLICY", "policy.example.yaml"))
        if not policy.is_absolute() and not policy.exists():
            # Lambda's working directory is the package root; locally it is the checkout.
            policy = PROJECT_ROOT / policy
        return cls(
            policy_path=policy,
            dry_run=_flag("STEWARD_DRY_RUN"),
            region=os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            idempotency_table=os.environ.get(
                "STEWARD_IDEMPOTENCY_TABLE", DEFAULT_IDEMPOTENCY_TABLE
            ),
            dead_letter_queue=os.environ.get("STEWARD_EVENTS_DLQ", DEFAULT_EVENTS_DLQ),
            idempotency_ttl_seconds=int(os.environ.get("STEWARD_IDEMPOTENCY_TTL", "86400")),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()

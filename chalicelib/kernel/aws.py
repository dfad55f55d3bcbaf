"""The one factory of AWS clients: a shared session, cached clients, assumed-role sessions, and
one `reset()`.

One boto3 session per process: building a session loads botocore's data again, which costs
70-90 ms per client on a cold start. Clients are cached per (service, region, retry profile).
Modules that cache something built from these clients (queue URLs, ECR gateways, vended tokens)
register a callback with `on_reset`, so `reset()` forgets everything at once (tests switch
endpoints and state between cases). ECR gateways come from `chalicelib.ecr.registries`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

import boto3
from botocore.config import Config

# A caller waits on a `quick` client's request (the token API): a few quick retries, never
# minutes of backoff. `standard` is botocore's standard mode with its default attempts.
RetryProfile = Literal["standard", "quick"]
RETRIES: dict[RetryProfile, dict[str, Any]] = {
    "standard": {"mode": "standard", "total_max_attempts": 5},
    "quick": {"mode": "standard", "total_max_attempts": 3},
}
ASSUMED_SESSION_SECONDS = 3600

_lock = threading.RLock()
_session: boto3.session.Session | None = None
_clients: dict[tuple[str, str | None, RetryProfile], Any] = {}
_reset_callbacks: list[Callable[[], None]] = []


def session() -> boto3.session.Session:
    """The process's boto3 session (credentials and region from the environment)."""
    global _session
    with _lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session


def client(service: str, region: str | None = None, retries: RetryProfile = "standard") -> Any:
    """A client of `service` from the shared session, built once per (service, region, retries)."""
    key = (service, region, retries)
    with _lock:
        if key not in _clients:
            _clients[key] = session().client(
                service,
                region_name=region,
                config=Config(retries=RETRIES[retries], max_pool_connections=32),
            )
        return _clients[key]


def sts() -> Any:
    """STS for requests a caller waits on (credential vending, assumed roles)."""
    return client("sts", retries="quick")


def assumed_session(
    role_arn: str, session_name: str, duration_seconds: int = ASSUMED_SESSION_SECONDS
) -> boto3.session.Session:
    """A boto3 session acting as `role_arn` (another account's role)."""
    credentials = sts().assume_role(
        RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration_seconds
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def caller_account() -> str:
    return str(sts().get_caller_identity()["Account"])


def on_reset(callback: Callable[[], None]) -> None:
    """Have `reset()` call `callback` (a cache built from these clients forgets itself)."""
    with _lock:
        _reset_callbacks.append(callback)


def reset(*, keep_session: bool = False) -> None:
    """Forget the session, every client and everything built from them. `keep_session` keeps
    the session (and the service models it loaded): a forked process builds its own clients
    without loading botocore's data again."""
    global _session
    with _lock:
        if not keep_session:
            _session = None
        _clients.clear()
        callbacks = list(_reset_callbacks)
    for callback in callbacks:
        callback()

"""A pytest plugin that records which AWS actions each Lambda function makes during the suite.

`make test` loads it (`-p tests.awscalls`) and then runs `infra/iam.py check`, which compares the
record with each function's IAM policy: every action called must be granted, and every action
granted must have been called by some test of that function. Calls are attributed to a function
while Chalice is running that function's handler (`Chalice.__call__` for the API,
`EventSourceHandler.__call__` for events, queues and schedules), in any thread. A call made with
credentials other than the function's own (the token API's assumed-role sessions) is recorded as
`<function>:vended`; the vending role's policy, not the function's, must allow it. Calls a test
makes with a vended credential itself, outside any function, are recorded as `vended`.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import botocore.client
import chalice.app
import pytest
from moto.sts.models import sts_backends

import app as app_module

RECORD = Path(__file__).resolve().parent.parent / "build" / "aws-calls.json"

_calls: dict[str, set[str]] = defaultdict(set)
_state = threading.local()
_active: list[str] = []  # functions running in any thread (a fallback for worker threads)
_active_lock = threading.Lock()


def _current() -> str | None:
    name = getattr(_state, "function", None)
    if name:
        return str(name)
    with _active_lock:
        # A worker thread a function started (a thread pool): attribute it when unambiguous.
        return _active[0] if len(set(_active)) == 1 else None


def _enter(name: str) -> tuple[str | None, str]:
    previous = getattr(_state, "function", None)
    _state.function = name
    with _active_lock:
        _active.append(name)
    return previous, name


def _leave(token: tuple[str | None, str]) -> None:
    previous, name = token
    _state.function = previous
    with _active_lock:
        _active.remove(name)


def _vended_by_token_api(access_key: str | None) -> bool:
    """Whether the key belongs to an assumed-role session of the token-vending role."""
    return any(
        role.access_key_id == access_key and role.role_arn.endswith("-token-vending")
        for by_partition in sts_backends.values()
        for backend in by_partition.values()
        for role in backend.assumed_roles
    )


def _install() -> None:

    names = {
        id(getattr(app_module, source.handler_string.rsplit(".", 1)[1])): source.name
        for source in app_module.app.event_sources
    }
    original_event_call = chalice.app.EventSourceHandler.__call__
    original_api_call = chalice.app.Chalice.__call__
    original_api_call_raw = botocore.client.BaseClient._make_api_call

    def event_call(self: Any, event: Any, context: Any) -> Any:
        token = _enter(names.get(id(self), "unknown"))
        try:
            return original_event_call(self, event, context)
        finally:
            _leave(token)

    def api_call(self: Any, event: Any, context: Any) -> Any:
        token = _enter("api_handler")
        try:
            return original_api_call(self, event, context)
        finally:
            _leave(token)

    def make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        function = _current()
        credentials = getattr(self._request_signer, "_credentials", None)
        own = os.environ.get("AWS_ACCESS_KEY_ID")
        key = getattr(credentials, "access_key", own) if credentials else own
        action = f"{self.meta.service_model.signing_name}:{operation_name}"
        if function:
            _calls[function if key == own else f"{function}:vended"].add(action)
        elif key != own and _vended_by_token_api(key):
            # A test acting as the holder of a vended credential: what the vending role's
            # ceiling must allow (and what infra/iam.py checks that role's grants against).
            _calls["vended"].add(action)
        return original_api_call_raw(self, operation_name, api_params)

    chalice.app.EventSourceHandler.__call__ = event_call  # type: ignore[method-assign]
    chalice.app.Chalice.__call__ = api_call  # type: ignore[method-assign]
    botocore.client.BaseClient._make_api_call = make_api_call


def pytest_configure(config: Any) -> None:
    _install()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:

    # Only a whole, passing run can show what a function never calls; a selection of tests
    # (or a failing run) is written beside it, so that it never replaces a complete record.
    config = session.config
    complete = (
        exitstatus == 0
        and config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not config.option.keyword
        and not config.option.markexpr
    )
    path = RECORD if complete else RECORD.with_suffix(".partial.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "complete": complete,
        "calls": {name: sorted(actions) for name, actions in sorted(_calls.items())},
    }
    path.write_text(json.dumps(record, indent=2) + "\n")

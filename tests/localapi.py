"""The HTTP API served by Chalice's local server (as `make run` serves it) on a free port."""

from __future__ import annotations

import threading

from steward_tools.local.runner import _start_api

_url: str | None = None
_lock = threading.Lock()


def local_api_url(host: str = "127.0.0.1") -> str:
    """One local server for the whole test session: Chalice's `create_local_server` rebinds the
    app's class, so it cannot run twice in a process. It serves until the process exits."""
    global _url
    with _lock:
        if _url is None:
            server = _start_api(host, 0)
            _url = f"http://{host}:{server.server.server_address[1]}"
        return _url

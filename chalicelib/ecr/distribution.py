"""ECR's registry protocol (`/v2`) for a gateway: where the registry is and its login.

On AWS a registry is `https://<account>.dkr.ecr.<region>.amazonaws.com`; the password is
get-authorization-token's (user `AWS`), made with the gateway's own credentials (an assumed role
for another account) and fetched again well before its 12 hours run out. Against the embedded
backend (an endpoint that is not ECR's) the registry is the same address, named by the virtual
host `<account>.dkr.ecr.<region>.localhost`, as its `/v2` routes by Host.
"""

from __future__ import annotations

import threading
import weakref
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from chalicelib.ecr.gateway import Registry
from chalicelib.kernel import aws
from chalicelib.kernel.pacing import count_throttled, pacer_for
from chalicelib.registry_client.transport import Endpoint, RegistryClient

# Fetch a new password this long before the current one expires.
REFRESH_BEFORE = timedelta(minutes=30)

_lock = threading.Lock()
_clients: weakref.WeakKeyDictionary[Registry, RegistryClient] = weakref.WeakKeyDictionary()


class _Login:
    """get-authorization-token's credential for one gateway, refreshed before it expires."""

    def __init__(self, gateway: Registry) -> None:
        self._gateway = gateway
        self._lock = threading.Lock()
        self._pair: tuple[str, str] | None = None
        self._expires = datetime.min.replace(tzinfo=UTC)
        self.account = ""

    def __call__(self) -> tuple[str, str]:
        with self._lock:
            if self._pair is None or datetime.now(UTC) >= self._expires - REFRESH_BEFORE:
                token = self._gateway.authorization_token()
                self._pair = (token.username, token.password.get_secret_value())
                expires = token.expires_at
                self._expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
                self.account = urlsplit(token.proxy_endpoint).netloc.split(".")[0]
            return self._pair


def registry_client(gateway: Registry) -> RegistryClient:
    """The `/v2` client of the gateway's registry (one per gateway, reused while it lives)."""
    with _lock:
        found = _clients.get(gateway)
        if found is not None:
            return found
    login = _Login(gateway)
    account = gateway.registry_id
    if account is None:
        login()
        account = login.account
    region = gateway.region
    control = urlsplit(gateway.endpoint_url)
    if control.netloc.endswith(".amazonaws.com") or control.netloc.endswith(".amazonaws.com.cn"):
        suffix = control.netloc.split(f".{region}.", 1)[-1]
        endpoint = Endpoint(
            url=f"https://{account}.dkr.ecr.{region}.{suffix}",
            credentials=login,
            label=f"ecr:{account}:{region}",
        )
    else:
        endpoint = Endpoint(
            url=f"{control.scheme}://{control.netloc}",
            host=f"{account}.dkr.ecr.{region}.localhost",
            credentials=login,
            label=f"ecr:{account}:{region}",
        )
    pacer = pacer_for(account, region)
    client = RegistryClient(endpoint, pace=pacer, throttled=count_throttled, expect=pacer.expect)
    with _lock:
        _clients[gateway] = client
    return client


def _forget() -> None:
    with _lock:
        _clients.clear()


aws.on_reset(_forget)

"""get-authorization-token as ECR answers it, for the embedded backend.

moto answers every caller with the same password and an `expiresAt` in 2015. ECR's token is
valid for 12 hours and stands for the credentials that asked for it, so here the password names
the caller's access key and expires 12 hours out: two sessions get two different passwords, and
`credential_of(password)` tells which assumed-role session (and session policy) a vended
password stands for. Passwords carry an HMAC under a key made at start-up, so the embedded
registry (steward_tools/local/registry) recognises only passwords this process issued, and
refuses them after `expiresAt`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

from moto.core.responses import ActionResult
from moto.ecr.responses import ECRResponse
from moto.sts.models import sts_backends

TOKEN_HOURS = 12
PREFIX = "steward-local."
_KEY = secrets.token_bytes(32)


class InvalidPassword(ValueError):
    """Not a password this process issued, or one past its expiry (`expired` says which)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def _sign(payload: str) -> str:
    return hmac.new(_KEY, payload.encode(), hashlib.sha256).hexdigest()


def issue_password(access_key: str, expires_at: float) -> str:
    """A password standing for `access_key` until `expires_at` (epoch seconds)."""
    payload = json.dumps(
        {"accessKeyId": access_key, "expiresAt": int(expires_at), "nonce": secrets.token_hex(8)},
        separators=(",", ":"),
    )
    encoded = base64.urlsafe_b64encode(payload.encode()).decode()
    return f"{PREFIX}{encoded}.{_sign(encoded)}"


def verify_password(password: str, now: float | None = None) -> dict[str, Any]:
    """The payload of a password this process issued; InvalidPassword otherwise."""
    if not password.startswith(PREFIX):
        raise InvalidPassword("not a password the embedded ECR issued")
    encoded, _, signature = password[len(PREFIX) :].rpartition(".")
    if not encoded or not hmac.compare_digest(_sign(encoded), signature):
        raise InvalidPassword("not a password the embedded ECR issued")
    try:
        payload = json.loads(base64.urlsafe_b64decode(encoded))
        expires_at = float(payload["expiresAt"])
        access_key = str(payload["accessKeyId"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidPassword("not a password the embedded ECR issued") from None
    if expires_at <= (time.time() if now is None else now):
        raise InvalidPassword("the password has expired", expired=True)
    return {"accessKeyId": access_key, "expiresAt": expires_at}


# Any access key id in a SigV4 credential scope: moto's own pattern wants 20 capitals (AKIA…) and
# answers AKIAEXAMPLE for others, such as the `testing` keys the README uses.
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def caller_access_key(response: ECRResponse) -> str:
    found = _CREDENTIAL.search(str(response.headers.get("Authorization", "")))
    return found.group(1) if found else str(response.get_access_key())


def _get_authorization_token(self: ECRResponse) -> ActionResult:
    access_key = caller_access_key(self)
    expires_at = time.time() + TOKEN_HOURS * 3600
    password = issue_password(access_key, expires_at)
    token = base64.b64encode(f"AWS:{password}".encode()).decode()
    return ActionResult(
        {
            "authorizationData": [
                {
                    "authorizationToken": token,
                    "expiresAt": expires_at,
                    "proxyEndpoint": (
                        f"https://{self.current_account}.dkr.ecr.{self.region}.amazonaws.com"
                    ),
                }
            ]
        }
    )


def credential_of(password: str) -> dict[str, Any]:
    """The access key a password was issued to and, for an assumed-role session, its role ARN
    and session policy (as moto's STS recorded them). InvalidPassword (a ValueError) for a
    forged or expired password."""

    access_key = verify_password(password)["accessKeyId"]
    for by_partition in sts_backends.values():
        for backend in by_partition.values():
            for role in backend.assumed_roles:
                if role.access_key_id == access_key:
                    return {
                        "access_key_id": access_key,
                        "role_arn": role.role_arn,
                        "session_name": role.session_name,
                        "session_policy": json.loads(role.policy) if role.policy else None,
                    }
    return {"access_key_id": access_key, "role_arn": None, "session_policy": None}


RESPONSE_HANDLERS = {"get_authorization_token": _get_authorization_token}

"""get-authorization-token as ECR answers it, for the embedded backend.

moto answers every caller with the same password and an `expiresAt` in 2015. ECR's token is
valid for 12 hours and stands for the credentials that asked for it, so here the password names
the caller's access key and expires 12 hours out: two sessions get two different passwords, and
`credential_of(password)` tells a test which assumed-role session (and session policy) a vended
password stands for.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from moto.core.responses import ActionResult
from moto.ecr.responses import ECRResponse

TOKEN_HOURS = 12
PREFIX = "steward-local."


def _get_authorization_token(self: ECRResponse) -> ActionResult:
    access_key = self.get_access_key()
    expires_at = time.time() + TOKEN_HOURS * 3600
    payload = json.dumps({"accessKeyId": access_key, "nonce": secrets.token_hex(8)})
    password = PREFIX + base64.urlsafe_b64encode(payload.encode()).decode()
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
    and session policy (as moto's STS recorded them)."""
    from moto.sts.models import sts_backends

    if not password.startswith(PREFIX):
        raise ValueError("not a password the embedded ECR issued")
    access_key = json.loads(base64.urlsafe_b64decode(password[len(PREFIX) :]))["accessKeyId"]
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

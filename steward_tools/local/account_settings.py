"""ECR's PutAccountSetting/GetAccountSetting, which moto lacks: the registry-wide switches.

Only BLOB_MOUNTING changes behaviour here (the /v2 cross-repository mount,
https://docs.aws.amazon.com/AmazonECR/latest/userguide/blob-mounting.html); the others are
kept so that scripts setting them work. Defaults are AWS's: mounting is off until enabled.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ecr.exceptions import InvalidParameterException
from moto.ecr.responses import ECRResponse

SETTINGS: dict[str, tuple[str, frozenset[str]]] = {
    "BLOB_MOUNTING": ("DISABLED", frozenset({"ENABLED", "DISABLED"})),
    "BASIC_SCAN_TYPE_VERSION": ("AWS_NATIVE", frozenset({"AWS_NATIVE", "CLAIR"})),
    "REGISTRY_POLICY_SCOPE": ("V2", frozenset({"V1", "V2"})),
}


def settings_of(backend: Any) -> dict[str, str]:
    """The backend's settings (a fresh backend, after a reset too, has AWS's defaults)."""
    found: dict[str, str] | None = getattr(backend, "account_settings", None)
    if found is None:
        found = {name: default for name, (default, _) in SETTINGS.items()}
        backend.account_settings = found
    return found


def _name(response: ECRResponse) -> str:
    name = response._get_param("name")
    if name not in SETTINGS:
        raise InvalidParameterException(
            f"Invalid parameter at 'name' failed to satisfy constraint: 'Member must satisfy "
            f"enum value set: [{', '.join(SETTINGS)}]'"
        )
    return str(name)


def _put_account_setting(self: ECRResponse) -> ActionResult:
    name = _name(self)
    value = self._get_param("value")
    if value not in SETTINGS[name][1]:
        raise InvalidParameterException(
            f"Invalid parameter at 'value' failed to satisfy constraint: 'Member must satisfy "
            f"enum value set: [{', '.join(sorted(SETTINGS[name][1]))}]'"
        )
    settings_of(self.ecr_backend)[name] = value
    return ActionResult({"name": name, "value": value})


def _get_account_setting(self: ECRResponse) -> ActionResult:
    name = _name(self)
    return ActionResult({"name": name, "value": settings_of(self.ecr_backend)[name]})


RESPONSE_HANDLERS = {
    "put_account_setting": _put_account_setting,
    "get_account_setting": _get_account_setting,
}

"""One line for every error a user can cause, and the group that prints it.

`StewardGroup` is the `steward` group's class: an exception escaping any command becomes
`Error: <what is wrong; what to do>` on stderr with exit status 1, never a traceback.
`steward --debug …` (or `STEWARD_DEBUG=1`) lets the exception through, traceback and all.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

import click
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import ValidationError

from chalicelib.ecr.errors import RegistryError
from chalicelib.kernel.errors import describe as describe_validation
from chalicelib.kernel.observability import logs_to_stderr
from chalicelib.kernel.settings import SettingsError
from chalicelib.policy.document import PolicyError
from steward_tools.image_source.errors import ImageSourceError

# A local service answers a TCP connect in microseconds; a second is plenty even on a busy box,
# and far below botocore's connect timeout (60 s) times its retries.
PROBE_SECONDS = 0.5
START_HINT = "start it with `make run` (or `steward serve`)"


class ServiceNotRunning(click.ClickException):
    """Nothing listens where `--local` looks for the embedded backend."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"the local service is not running at {endpoint}: {START_HINT}")


def probe(host: str, port: int, endpoint: str) -> None:
    """Fail within PROBE_SECONDS when nothing listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            return
    except OSError as error:
        raise ServiceNotRunning(endpoint) from error


def one_line(text: str) -> str:
    """Multi-line messages (lists of candidates, problems) joined into one line."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def describe(error: BaseException) -> str:
    """What went wrong and, where we know, what to do about it, in one line."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if isinstance(error, EndpointConnectionError | BotoConnectionError | ConnectionRefusedError):
        hint = START_HINT if endpoint else "check your network and region"
        return f"cannot reach {endpoint or 'AWS'}: {hint}"
    if isinstance(error, ProfileNotFound):
        return f"{error}: set AWS_PROFILE to a profile in ~/.aws/config, or unset it"
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return f"{error}: configure AWS credentials, or add --local for the embedded backend"
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region or set AWS_DEFAULT_REGION"
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "") or "AWS call"
        return f"{operation}: {info.get('Code', 'error')}: {info.get('Message', '')}".rstrip(": ")
    if isinstance(error, ParamValidationError):
        return one_line(str(error))
    if isinstance(error, ValidationError):
        return describe_validation(error)
    if isinstance(error, RegistryError | ImageSourceError | PolicyError | SettingsError):
        return one_line(str(error))
    if isinstance(error, UnicodeDecodeError):
        return f"not text (UTF-8): {error.reason} at byte {error.start}"
    if isinstance(error, OSError):
        if error.errno == errno.EADDRINUSE:
            return f"address already in use: {error}"
        name = f"{error.filename}: " if error.filename else ""
        return f"{name}{error.strerror or error}"
    return one_line(f"{type(error).__name__}: {error}") + " (steward --debug shows the traceback)"


def debugging(ctx: click.Context | None) -> bool:
    if os.environ.get("STEWARD_DEBUG", "").lower() in ("1", "true", "yes", "on"):
        return True
    while ctx is not None:
        if ctx.params.get("debug"):
            return True
        ctx = ctx.parent
    return False


class StewardGroup(click.Group):
    """A click group whose commands' unexpected exceptions end in one line (see module doc)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            # stdout is the command's output (JSON with --json); the service's logs go to stderr.
            with logs_to_stderr():
                return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if debugging(ctx):
                raise
            raise click.ClickException(describe(error)) from error

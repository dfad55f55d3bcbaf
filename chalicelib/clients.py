"""boto3 clients for the AWS services other than ECR, built on first use (never at import time)
and shared by the data-access modules. ECR goes through chalicelib/registry.py; STS for token
vending, with its own retry settings, through chalicelib/sts.py."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=16)
def client(service: str) -> Any:
    import boto3

    return boto3.client(service)

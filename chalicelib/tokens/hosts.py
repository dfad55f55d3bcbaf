"""Which registry a token request names: an account id, or an ECR registry host whose region is
one of its partition's regions (botocore's endpoint data, not a hand-kept list), each host keeping
its own endpoint: `ecr-fips` stays FIPS, `.amazonaws.com.cn` stays in China."""

from __future__ import annotations

import re
import threading

from pydantic import BaseModel, ConfigDict

from chalicelib.kernel import aws

# ASCII digits only (`\d` also matches other scripts' digits); fullmatch, so no trailing newline.
ACCOUNT_RE = re.compile(r"[0-9]{12}", re.ASCII)

REGISTRY_HOST_RE = re.compile(
    r"(?:https://)?(?P<account>[0-9]{12})\.dkr\.(?P<service>ecr|ecr-fips)\."
    r"(?P<region>[a-z0-9-]{1,32})\.(?P<suffix>amazonaws\.com|amazonaws\.com\.cn)/?",
    re.ASCII,
)

# The partitions a host's DNS suffix may belong to (botocore's `dnsSuffix` of each partition).
PARTITIONS_BY_SUFFIX = {
    "amazonaws.com": ("aws", "aws-us-gov"),
    "amazonaws.com.cn": ("aws-cn",),
}


class Registry(BaseModel):
    """One ECR registry: account, region, partition, and the host docker logs in to."""

    model_config = ConfigDict(frozen=True)

    account: str
    region: str
    partition: str
    host: str


class InvalidRegistry(ValueError):
    pass


_REGIONS: dict[str, frozenset[str]] = {}
_REGIONS_LOCK = threading.Lock()


def partition_regions(partition: str) -> frozenset[str]:
    """ECR's regions in a partition, from botocore's endpoint data, read once per process."""
    with _REGIONS_LOCK:
        if partition not in _REGIONS:
            names = aws.session().get_available_regions("ecr", partition_name=partition)
            _REGIONS[partition] = frozenset(names)
        return _REGIONS[partition]


def partition_of(region: str, suffix: str = "amazonaws.com") -> str | None:
    for partition in PARTITIONS_BY_SUFFIX.get(suffix, ()):
        if region in partition_regions(partition):
            return partition
    return None


def fips_available(partition: str, region: str) -> bool:
    # ECR's FIPS endpoints serve the US regions of the commercial partition and GovCloud;
    # botocore's endpoint data carries no per-region FIPS variants for ECR.
    return partition == "aws-us-gov" or (partition == "aws" and region.startswith("us-"))


def parse_registry(text: str, default_region: str) -> Registry:
    """An account id (in the function's region) or a registry host; InvalidRegistry says why."""
    if ACCOUNT_RE.fullmatch(text):
        partition = partition_of(default_region)
        if partition is None:
            raise InvalidRegistry(f"the service's region {default_region} has no ECR registry")
        return Registry(
            account=text,
            region=default_region,
            partition=partition,
            host=f"{text}.dkr.ecr.{default_region}.amazonaws.com",
        )
    found = REGISTRY_HOST_RE.fullmatch(text)
    if found is None:
        raise InvalidRegistry("is neither a 12-digit account id nor an ECR registry host")
    region, suffix, service = found["region"], found["suffix"], found["service"]
    partition = partition_of(region, suffix)
    if partition is None:
        raise InvalidRegistry(f"names region {region}, which has no ECR registry at {suffix}")
    if service == "ecr-fips" and not fips_available(partition, region):
        raise InvalidRegistry(f"names a FIPS endpoint, which {region} does not have")
    return Registry(
        account=found["account"],
        region=region,
        partition=partition,
        host=f"{found['account']}.dkr.{service}.{region}.{suffix}",
    )

"""What a mirror rule's upstream holds: its tags, filtered, each resolved to a digest (and an
index's platforms), read over the registry protocol with the rule's credentials."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from chalicelib.mirror.plan import UpstreamImage
from chalicelib.oci.manifests import Manifest
from chalicelib.policy.mirror import MirrorRule
from chalicelib.registry_client.auth import CredentialSource, anonymous
from chalicelib.registry_client.credentials import from_docker_config, from_secret
from chalicelib.registry_client.manifests import get_manifest
from chalicelib.registry_client.reference import registry_url, repository_path
from chalicelib.registry_client.tags import iter_tags
from chalicelib.registry_client.transport import Endpoint, RegistryClient

RESOLVE_CONCURRENCY = 8


def upstream_url(rule: MirrorRule) -> str:
    return registry_url(rule.upstream)


def upstream_client(rule: MirrorRule, *, docker_config: bool = False) -> RegistryClient:
    """The upstream's client: the rule's secret, else (CLI) docker's config, else anonymous."""
    credentials: CredentialSource = anonymous
    if rule.credentials_secret:
        credentials = from_secret(rule.credentials_secret)
    elif docker_config:
        credentials = from_docker_config(rule.registry_host)
    return RegistryClient(Endpoint(url=upstream_url(rule), credentials=credentials))


def read_upstream(rule: MirrorRule, client: RegistryClient) -> tuple[list[UpstreamImage], int]:
    """The selected tags of every repository of the rule, resolved; and how many tags there are."""
    found: list[UpstreamImage] = []
    total = 0
    for name in rule.repositories:
        repository = repository_path(rule.registry_host, name)
        tags = list(iter_tags(client, repository))
        total += len(tags)
        chosen = rule.select_tags(tags)

        def resolve(tag: str, repository: str = repository) -> UpstreamImage:
            raw = get_manifest(client, repository, tag)
            manifest = Manifest(
                digest=raw.digest, media_type=raw.media_type, body=raw.body.decode()
            )
            platforms = None
            if manifest.is_index:
                platforms = [
                    f"{p.get('os')}/{p.get('architecture')}"
                    + (f"/{p['variant']}" if p.get("variant") else "")
                    for c in manifest.children()
                    if (p := c.platform or {})
                ]
            return UpstreamImage(
                repository=repository, tag=tag, digest=raw.digest, platforms=platforms
            )

        with ThreadPoolExecutor(max_workers=RESOLVE_CONCURRENCY) as pool:
            found += list(pool.map(resolve, chosen))
    return found, total

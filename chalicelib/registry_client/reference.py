"""Image references and registry addresses: `ghcr.io/org/app:1.0`, `nginx` (Docker Hub:
`registry-1.docker.io/library/nginx`), `localhost:5000/app@sha256:...`."""

from __future__ import annotations

from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "https://registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


def registry_url(registry: str, *, insecure: bool = False) -> str:
    """Where the registry's API is: Docker Hub's aliases go to registry-1.docker.io; plain HTTP
    for loopback (`localhost`, `127.0.0.1`) or when `insecure`; an explicit scheme is kept."""
    if registry.startswith(("http://", "https://")):
        return registry.rstrip("/")
    if registry in _HUB_ALIASES:
        return DOCKER_HUB_API
    host = registry.split(":")[0]
    plain = insecure or host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost")
    return f"{'http' if plain else 'https'}://{registry}"


def repository_path(registry: str, repository: str) -> str:
    """Docker Hub's official images live under `library/`: `nginx` → `library/nginx`."""
    if registry.removeprefix("https://") in _HUB_ALIASES | {
        DOCKER_HUB_API.removeprefix("https://")
    }:
        return repository if "/" in repository else f"library/{repository}"
    return repository


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port], Docker Hub as docker.io
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"


def parse_reference(text: str) -> Reference:
    rest, _, digest = text.partition("@")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
    name, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    return Reference(registry, repository_path(registry, name), tag or None, digest or None)

"""The OCI distribution API (`/v2`) on the embedded ECR: docker, podman, skopeo and oras push
and pull through it, and every push or delete is an ECR one (events, scans, records, rules)."""

from .app import RegistryMiddleware

__all__ = ["RegistryMiddleware"]

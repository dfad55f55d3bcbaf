"""Layers: which are missing, where to download one, and uploads in parts holding one in memory."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterable
from typing import IO

from chalicelib.ecr.core import (
    BATCH_LAYER_DIGESTS,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    GatewayCore,
    _batches,
    _read_exactly,
)
from chalicelib.ecr.errors import (
    RegistryError,
)
from chalicelib.oci.manifests import digest_of


class LayerCalls(GatewayCore):
    def missing_layers(self, repository: str, digests: Iterable[str]) -> list[str]:
        """Which of these blobs the repository does not have (100 digests a call)."""
        wanted = list(dict.fromkeys(digests))
        available: set[str] = set()
        for batch in _batches(wanted, BATCH_LAYER_DIGESTS):
            response = self._call(
                "batch_check_layer_availability", repositoryName=repository, layerDigests=batch
            )
            available.update(
                layer["layerDigest"]
                for layer in response.get("layers", [])
                if layer.get("layerAvailability") == "AVAILABLE"
            )
        return [d for d in wanted if d not in available]

    def download_url(self, repository: str, digest: str) -> str:
        response = self._call(
            "get_download_url_for_layer", repositoryName=repository, layerDigest=digest
        )
        return str(response["downloadUrl"])

    def open_blob(self, repository: str, digest: str, *, timeout: float = 60.0) -> IO[bytes]:
        """A streaming reader of one blob, from the URL ECR hands out (S3 on AWS)."""
        url = self.download_url(repository, digest)
        return urllib.request.urlopen(url, timeout=timeout)

    def upload_blob(self, repository: str, reader: IO[bytes], digest: str) -> bool:
        """Upload one blob in consecutive parts of the size ECR asks for.

        Memory holds one part at a time, never the whole blob. Returns False when ECR already
        had the blob (LayerAlreadyExistsException counts as success).
        """
        started = self._call("initiate_layer_upload", repositoryName=repository)
        upload_id = started["uploadId"]
        part_size = max(int(started.get("partSize") or DEFAULT_PART_SIZE), MIN_PART_SIZE)
        first = 0
        while True:
            part = _read_exactly(reader, part_size)
            if not part:
                if first == 0:
                    raise RegistryError(
                        "EmptyUploadException", f"{digest} is empty: ECR cannot store it"
                    )
                break
            self._upload_part(repository, upload_id, first, part)
            first += len(part)
            if len(part) < part_size:
                break
        try:
            self._call(
                "complete_layer_upload",
                repositoryName=repository,
                uploadId=upload_id,
                layerDigests=[digest],
            )
        except RegistryError as error:
            if error.code == "LayerAlreadyExistsException":
                return False
            raise
        return True

    def _upload_part(self, repository: str, upload_id: str, first: int, part: bytes) -> None:
        last = first + len(part) - 1
        try:
            self._call(
                "upload_layer_part",
                repositoryName=repository,
                uploadId=upload_id,
                partFirstByte=first,
                partLastByte=last,
                layerPartBlob=part,
            )
        except RegistryError as error:
            # A retried part whose first attempt did arrive (the response was lost) is refused
            # as "not consecutive"; ECR's lastValidByteReceived says it is already there.
            landed = error.details.get("lastValidByteReceived")
            if error.code == "InvalidLayerPartException" and landed == last:
                return
            raise

    def upload_bytes(self, repository: str, data: bytes) -> str:
        """Upload a small blob held in memory (a config, a test layer); returns its digest."""

        digest = digest_of(data)
        if self.missing_layers(repository, [digest]):
            self.upload_blob(repository, io.BytesIO(data), digest)
        return digest

"""Reading a local image: an OCI layout, an OCI archive, or a legacy `docker save` tarball.

Reading is pure (`load_image`): it walks the source, checks every manifest against its digest and
notes where each blob lives, without reading a layer into memory. One module per kind of source
(`oci_layout`, `docker_archive`), over the files of a directory or a tar archive (`archive`).
"""

from __future__ import annotations

from pathlib import Path

from steward_tools.image_source.archive import open_source
from steward_tools.image_source.docker_archive import load_docker_archive
from steward_tools.image_source.errors import ImageSourceError
from steward_tools.image_source.local_image import LocalImage
from steward_tools.image_source.oci_layout import load_oci_layout


def load_image(source: Path, ref: str | None = None) -> LocalImage:
    """Read an image from an OCI layout directory, an OCI archive or a docker-save tarball.

    `ref` picks the image when the source holds several: an `org.opencontainers.image.ref.name`
    or `io.containerd.image.name` annotation, a docker RepoTag (or just its tag), or a digest
    (for a docker-save tarball, the image id).
    """
    path = Path(source)
    files, is_archive = open_source(path)
    # docker save (25+) writes both; index.json is the complete, exact description.
    if files.exists("index.json"):
        return load_oci_layout(files, path, "oci-archive" if is_archive else "oci-layout", ref)
    if files.exists("manifest.json"):
        return load_docker_archive(files, path, ref)
    raise ImageSourceError(f"{path}: no index.json (OCI layout) nor manifest.json (docker save)")

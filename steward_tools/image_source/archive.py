"""Where an image source's bytes live: a directory or a tar archive, read file by file by the
slash-separated paths that manifests and descriptors name."""

from __future__ import annotations

import json
import posixpath
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any

from steward_tools.image_source.errors import ImageSourceError

# ECR refuses larger manifests; anything bigger in a layout is not a manifest we can push.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class Source(ABC):
    """Files of an image source, by their slash-separated path inside it."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def size(self, name: str) -> int: ...

    @abstractmethod
    def open(self, name: str) -> AbstractContextManager[IO[bytes]]: ...

    def read(self, name: str, limit: int) -> bytes:
        """The whole file, refusing one larger than `limit` (only manifests and configs)."""
        if self.size(name) > limit:
            raise ImageSourceError(f"{name} in {self}: larger than {limit} bytes")
        with self.open(name) as handle:
            data: bytes = handle.read()
            return data

    def where(self, name: str) -> str:
        return f"{name} in {self}"


class _DirectorySource(Source):
    def __init__(self, root: Path) -> None:
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def _path(self, name: str) -> Path | None:
        parts = name.split("/")
        # Names come from manifest.json and descriptors: never let them leave the directory.
        if name.startswith("/") or ".." in parts:
            return None
        return self.root.joinpath(*parts)

    def exists(self, name: str) -> bool:
        path = self._path(name)
        return path is not None and path.is_file()

    def size(self, name: str) -> int:
        path = self._path(name)
        if path is None or not path.is_file():
            raise ImageSourceError(f"{self.where(name)}: no such file")
        return path.stat().st_size

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        path = self._path(name)
        if path is None or not path.is_file():
            raise ImageSourceError(f"{self.where(name)}: no such file")
        with path.open("rb") as handle:
            yield handle

    def where(self, name: str) -> str:
        return str(self.root / name)


def _normalise_member(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


class _TarSource(Source):
    """A tar archive, indexed once; each open re-opens the archive and streams one member."""

    MAX_LINK_DEPTH = 32

    def __init__(self, path: Path) -> None:
        self.path = path
        self._files: dict[str, tarfile.TarInfo] = {}
        self._links: dict[str, str] = {}
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                name = _normalise_member(info.name)
                if info.isfile():
                    self._files[name] = info
                    self._links.pop(name, None)
                elif info.issym():
                    # docker save links a layer it already wrote instead of writing it twice.
                    target = posixpath.join(posixpath.dirname(name), info.linkname)
                    self._links[name] = posixpath.normpath(target)
                    self._files.pop(name, None)
                elif info.islnk():
                    self._links[name] = _normalise_member(info.linkname)
                    self._files.pop(name, None)

    def __str__(self) -> str:
        return str(self.path)

    def _member(self, name: str) -> tarfile.TarInfo | None:
        for _ in range(self.MAX_LINK_DEPTH):
            if name in self._files:
                return self._files[name]
            if name not in self._links:
                return None
            name = self._links[name]
        return None

    def exists(self, name: str) -> bool:
        return self._member(name) is not None

    def size(self, name: str) -> int:
        member = self._member(name)
        if member is None:
            raise ImageSourceError(f"{self.where(name)}: no such member")
        return member.size

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        member = self._member(name)
        if member is None:
            raise ImageSourceError(f"{self.where(name)}: no such member")
        with tarfile.open(self.path, "r:*") as archive:
            # A TarInfo carries its data offset, so this seeks straight to the member.
            handle = archive.extractfile(member)
            if handle is None:
                raise ImageSourceError(f"{self.where(name)}: not a regular file")
            with handle:
                yield handle


def open_source(path: Path) -> tuple[Source, bool]:
    """The source and whether it is an archive."""
    if path.is_dir():
        return _DirectorySource(path), False
    if not path.exists():
        raise ImageSourceError(f"{path}: no such file or directory")
    if not tarfile.is_tarfile(path):
        raise ImageSourceError(f"{path}: neither an OCI layout directory nor a tar archive")
    try:
        return _TarSource(path), True
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ImageSourceError(f"{path}: unreadable tar archive: {error}") from error


def read_json(source: Source, name: str, limit: int = MAX_MANIFEST_BYTES) -> Any:
    try:
        return json.loads(source.read(name, limit))
    except (ValueError, UnicodeDecodeError) as error:
        raise ImageSourceError(f"{source.where(name)}: not valid JSON: {error}") from error

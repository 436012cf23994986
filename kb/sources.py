"""Rule sources: a checkout or folder on disk, or a .tar.gz / .zip archive, read alike.

Paths inside a source are POSIX and relative to its root. An archive whose members all sit
under one top-level folder (as a GitHub export does) is rooted inside that folder.
"""

from __future__ import annotations

import fnmatch
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kb.errors import SourceError

_SKIPPED_DIRS = frozenset({".git", ".github", "node_modules", "__pycache__"})


@dataclass(frozen=True)
class RuleFile:
    """One file handed to a loader: its path inside the source and its text."""

    path: str
    text: str


class Source:
    """A read-only tree of files."""

    def __init__(self, name: str, files: dict[str, bytes | Path]) -> None:
        self.name = name
        self._files = files

    @classmethod
    def open(cls, location: str | Path) -> Source:
        path = Path(location)
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        if path.is_dir():
            return cls(str(path), _folder_files(path))
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return cls(str(path), _strip_common_root(_tar_files(path)))
        if path.suffix == ".zip":
            return cls(str(path), _strip_common_root(_zip_files(path)))
        raise SourceError(f"{path}: not a folder, .tar.gz or .zip archive")

    def paths(self) -> list[str]:
        return sorted(self._files)

    def glob(self, pattern: str) -> Iterator[str]:
        """Paths matching a glob such as `rules/**/*.yml`."""
        for path in self.paths():
            if _glob_match(path, pattern):
                yield path

    def exists(self, path: str) -> bool:
        return path in self._files

    def read_bytes(self, path: str) -> bytes:
        data = self._files[path]
        return data.read_bytes() if isinstance(data, Path) else data

    def read_text(self, path: str) -> str:
        """The file decoded as UTF-8 (a BOM is dropped, undecodable bytes replaced)."""
        return self.read_bytes(path).decode("utf-8-sig", errors="replace")

    def rule_file(self, path: str) -> RuleFile:
        return RuleFile(path, self.read_text(path))


def _glob_match(path: str, pattern: str) -> bool:
    """fnmatch semantics, where `*` also crosses folders; `/**/` may match a single `/`."""
    if fnmatch.fnmatchcase(path, pattern):
        return True
    return "/**/" in pattern and fnmatch.fnmatchcase(path, pattern.replace("/**/", "/"))


def _folder_files(root: Path) -> dict[str, bytes | Path]:
    files: dict[str, bytes | Path] = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part in _SKIPPED_DIRS for part in relative.parts) or not path.is_file():
            continue
        files[relative.as_posix()] = path
    return files


def _tar_files(path: Path) -> dict[str, bytes | Path]:
    files: dict[str, bytes | Path] = {}
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    files[member.name.lstrip("./")] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise SourceError(f"{path}: cannot read archive: {error}") from error
    return files


def _zip_files(path: Path) -> dict[str, bytes | Path]:
    try:
        with zipfile.ZipFile(path) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist()
                    if not info.is_dir()}
    except (zipfile.BadZipFile, OSError) as error:
        raise SourceError(f"{path}: cannot read archive: {error}") from error


def _strip_common_root(files: dict[str, bytes | Path]) -> dict[str, bytes | Path]:
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) != 1 or all("/" not in name for name in files):
        return files
    return {name.split("/", 1)[1]: data for name, data in files.items() if "/" in name}

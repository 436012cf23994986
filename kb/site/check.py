"""Check a written site: every link and every script or stylesheet it names resolves on disk.

The site writes its own HTML with double-quoted attributes, so a regular expression finds
every `href` and `src`; links out of the site (http, https, mailto) are not followed.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

_REFERENCE = re.compile(r'\b(?:href|src)="([^"]*)"')
_ID = re.compile(r'\bid="([^"]*)"')
_EXTERNAL = ("http://", "https://", "mailto:", "data:")


def broken_links(out: Path) -> list[str]:
    """`page: reference` for every reference that names no file, or no element of its page."""
    files = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    ids: dict[str, set[str]] = {}
    broken = []
    for path in sorted(name for name in files if name.endswith(".html")):
        for reference in _REFERENCE.findall((out / path).read_text(encoding="utf-8")):
            if reference.startswith(_EXTERNAL):
                continue
            if not _resolves(out, files, path, reference, ids):
                broken.append(f"{path}: {reference}")
    return broken


def _resolves(out: Path, files: set[str], page: str, reference: str,
              ids: dict[str, set[str]]) -> bool:
    target, _, fragment = reference.partition("#")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), target)) if target \
        else page
    if resolved not in files:
        return False
    if not fragment:
        return True
    if resolved not in ids:
        ids[resolved] = set(_ID.findall((out / resolved).read_text(encoding="utf-8")))
    return fragment in ids[resolved]

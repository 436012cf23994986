"""Parse rule files with no database: lone files, folders, checkouts or archives."""

from __future__ import annotations

from pathlib import Path

from kb.build import open_source, parse_sources
from kb.errors import UserError
from kb.model import RuleRecord
from kb.normalize import normalise
from kb.sources import RuleFile, Source
from loaders import all_loaders


def parse_paths(paths: list[str | Path]) -> list[RuleRecord]:
    """Every rule in the given files and sources, normalised, in the order given."""
    records: list[RuleRecord] = []
    for location in paths:
        path = Path(location)
        if path.is_file() and not _is_archive(path):
            records.extend(parse_lone_file(path))
        else:
            records.extend(parse_sources([open_source(path)], progress=None))
    for record in records:
        normalise(record)
    return records


def parse_lone_file(path: Path) -> list[RuleRecord]:
    """A single rule file; its vendor is recognised from its content.

    When the file's folder is itself a source of that vendor (a Panther YAML beside its Python
    file, say), the folder supplies what the rule shares with its neighbours.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as error:
        raise UserError(f"{path}: cannot read: {error.strerror}") from error
    loader = next((loader for loader in all_loaders() if loader.sniff(str(path), text)), None)
    if loader is None:
        raise UserError(f"{path}: not a rule file of a known vendor")
    folder = Source.open(path.parent)
    if not loader.detect(folder):
        return loader.parse_file(RuleFile(str(path), text), loader.load_context(None))
    records = loader.parse_file(RuleFile(path.name, text), loader.load_context(folder))
    for record in records:
        record.path = str(path)
    return records


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz", ".tar", ".zip"))

"""The sources file: which rule repositories and which ATT&CK bundle a knowledge base is built from.

kb reads a standalone YAML file, `kb.yaml`, rather than a `[tool.kb]` table in
`pyproject.toml`: the people who keep detection rules rarely work inside a Python project, and
one small file sits in any folder (or beside a rules repository) and takes comments. Without
one, kb uses the packaged default (`kb/data/kb.default.yaml`): the six public repositories and
Enterprise ATT&CK.

```yaml
cache: .kb-cache                 # optional; default $KB_CACHE_DIR or ~/.cache/kb
attack:
  domain: enterprise-attack      # enterprise-attack, mobile-attack or ics-attack
  version: "18.1"                # a release (or `latest`), fetched by mitreattack-python...
  # url: https://.../enterprise-attack-18.1.json   ...or any URL, with optional sha256:
  # path: ./enterprise-attack.json                 ...or a local file
sources:
  sigma:                         # the source's name: unique, used in the lock and the graph
    vendor: sigma                # or auto (the default): recognised from the files
    git: https://github.com/SigmaHQ/sigma.git      # or path: ./rules  or archive: x.tar.gz
    ref: master                  # optional branch, tag or commit
    include: ["rules/**"]        # optional: only files matching one of these globs
    exclude: ["rules/**/test_*"] # optional: never files matching one of these
```

Globs match paths inside the source: `*` and `?` stay within one folder, `**` spans any
number of folders, and a glob naming a folder takes in everything under it (`rules` and
`rules/**` both mean everything under `rules/`). Include and exclude filter every
file kb reads from a source, support files as well (a Splunk source that sets `include` must
list `macros/**`, `lookups/**` and `data_sources/**` too). For a git source, `include` also
drives a sparse checkout, so files nobody reads are never downloaded. Relative paths are
relative to the sources file's folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kb.errors import UserError
from loaders import LOADER_MODULES

DEFAULT_FILE = "kb.yaml"
LOCK_SUFFIX = ".lock"
ATTACK_DOMAINS = ("enterprise-attack", "mobile-attack", "ics-attack")

_SOURCE_KEYS = frozenset({"vendor", "git", "path", "archive", "ref", "sha256", "include",
                          "exclude"})
_ATTACK_KEYS = frozenset({"domain", "version", "url", "path", "sha256"})
_TOP_KEYS = frozenset({"cache", "attack", "sources"})
_LOCATION_KEYS = ("git", "path", "archive")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SourceSpec:
    """One rule source as the sources file describes it."""

    name: str
    kind: str  # git, path or archive
    location: str  # the URL or path as written (paths made absolute)
    vendor: str = "auto"
    ref: str = ""
    sha256: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def wants(self, path: str) -> bool:
        """Whether the include and exclude globs let kb read this path of the source."""
        if self.include and not any(glob_match(path, g) for g in self.include):
            return False
        return not any(glob_match(path, g) for g in self.exclude)

    @property
    def slug(self) -> str:
        """A folder name for this source's cache: its name and a digest of its location."""
        digest = hashlib.sha256(self.location.encode()).hexdigest()[:10]
        return f"{self.name}-{digest}"

    @property
    def is_remote(self) -> bool:
        return self.kind == "git" or is_url(self.location)


@dataclass(frozen=True)
class AttackSpec:
    """Where the ATT&CK bundle comes from: a release, a URL or a local file."""

    domain: str = "enterprise-attack"
    version: str = ""
    url: str = ""
    path: str = ""
    sha256: str = ""

    @property
    def origin(self) -> str:
        return self.path or self.url or f"{self.domain} {self.version}"


@dataclass(frozen=True)
class Config:
    """A sources file, read and checked."""

    path: Path
    sources: tuple[SourceSpec, ...]
    attack: AttackSpec
    cache: Path
    packaged: bool = False

    @property
    def lock_path(self) -> Path:
        """`kb.lock` beside the sources file; for the packaged default, in this folder."""
        if self.packaged:
            return Path.cwd() / "kb.lock"
        return self.path.with_name(self.path.stem + LOCK_SUFFIX)

    def source(self, name: str) -> SourceSpec:
        for spec in self.sources:
            if spec.name == name:
                return spec
        raise UserError(f"{self.path}: no source named {name!r} "
                        f"(known: {', '.join(s.name for s in self.sources)})")


def default_config_path() -> Path:
    """`./kb.yaml` when there is one, else the packaged default."""
    local = Path.cwd() / DEFAULT_FILE
    return local if local.is_file() else packaged_default()


def packaged_default() -> Path:
    return Path(str(resources.files("kb.data").joinpath("kb.default.yaml")))


def cache_root() -> Path:
    return Path(os.environ.get("KB_CACHE_DIR", Path.home() / ".cache" / "kb"))


def load_config(path: Path | None = None) -> Config:
    """Read a sources file (by default `./kb.yaml`, else the packaged default)."""
    path = (path or default_config_path()).expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"{path}: cannot read the sources file: {error.strerror}") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        place = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{place}: not valid YAML: {getattr(error, 'problem', error)}") from error
    return parse_config(data, path)


def parse_config(data: Any, path: Path) -> Config:
    """Check a sources file's content; every mistake is one UserError naming the file."""
    if not isinstance(data, dict):
        raise UserError(f"{path}: a sources file is a mapping with `sources:` and `attack:`")
    _no_unknown(data, _TOP_KEYS, str(path))
    base = path.resolve().parent
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        raise UserError(f"{path}: `sources:` must map source names to their settings")
    specs = tuple(_source(str(name), body, base, path) for name, body in sources.items())
    attack = _attack(data.get("attack") or {}, base, path)
    cache = Path(str(data["cache"])).expanduser() if data.get("cache") else cache_root()
    return Config(path=path, sources=specs, attack=attack,
                  cache=cache if cache.is_absolute() else base / cache,
                  packaged=path.resolve() == packaged_default().resolve())


def _source(name: str, body: Any, base: Path, path: Path) -> SourceSpec:
    where = f"{path}: source {name!r}"
    if not _NAME.match(name):
        raise UserError(f"{where}: a name is letters, digits, '.', '_' or '-'")
    if not isinstance(body, dict):
        raise UserError(f"{where}: expected a mapping with git, path or archive")
    _no_unknown(body, _SOURCE_KEYS, where)
    kinds = [key for key in _LOCATION_KEYS if body.get(key)]
    if len(kinds) != 1:
        raise UserError(f"{where}: give exactly one of git, path or archive")
    kind = kinds[0]
    location = str(body[kind])
    if kind != "git" and not is_url(location):
        location = str((base / Path(location).expanduser()).resolve())
    vendor = str(body.get("vendor") or "auto")
    if vendor != "auto" and vendor not in LOADER_MODULES:
        raise UserError(f"{where}: unknown vendor {vendor!r} "
                        f"(known: auto, {', '.join(sorted(LOADER_MODULES))})")
    if body.get("ref") and kind != "git":
        raise UserError(f"{where}: `ref` is for git sources only")
    return SourceSpec(name=name, kind=kind, location=location, vendor=vendor,
                      ref=str(body.get("ref") or ""), sha256=str(body.get("sha256") or ""),
                      include=_globs(body.get("include"), where, "include"),
                      exclude=_globs(body.get("exclude"), where, "exclude"))


def _attack(body: Any, base: Path, path: Path) -> AttackSpec:
    where = f"{path}: attack"
    if not isinstance(body, dict):
        raise UserError(f"{where}: expected a mapping with domain and version, url or path")
    _no_unknown(body, _ATTACK_KEYS, where)
    domain = str(body.get("domain") or "enterprise-attack")
    if not domain.endswith("-attack"):
        domain += "-attack"
    if domain not in ATTACK_DOMAINS:
        raise UserError(f"{where}: unknown domain {domain!r} (known: {', '.join(ATTACK_DOMAINS)})")
    given = [key for key in ("version", "url", "path") if body.get(key)]
    if len(given) > 1:
        raise UserError(f"{where}: give one of version, url or path")
    local = str(body.get("path") or "")
    if local:
        local = str((base / Path(local).expanduser()).resolve())
    return AttackSpec(domain=domain, version=str(body.get("version") or ""),
                      url=str(body.get("url") or ""), path=local,
                      sha256=str(body.get("sha256") or "").lower())


def _globs(value: Any, where: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UserError(f"{where}: `{key}` must be a glob or a list of globs")
    return tuple(item.strip("/") for item in value)


def _no_unknown(body: dict, known: frozenset[str], where: str) -> None:
    unknown = sorted(set(map(str, body)) - known)
    if unknown:
        raise UserError(f"{where}: unknown setting {unknown[0]!r} "
                        f"(known: {', '.join(sorted(known))})")


def is_url(location: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", location))


def glob_match(path: str, pattern: str) -> bool:
    """Whether a POSIX path, or a folder it sits in, matches a glob: `*` and `?` stay within a
    folder, `**` spans folders. As in `.gitignore`, a pattern naming a folder takes in
    everything under it."""
    regex = _glob_regex(pattern)
    parts = path.split("/")
    return any(regex.match("/".join(parts[:end])) for end in range(len(parts), 0, -1))


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts) + r"\Z")


def sparse_patterns(spec: SourceSpec) -> list[str]:
    """The sparse-checkout patterns (git's non-cone mode) that fetch what `include` names."""
    return ["/" + glob for glob in spec.include]

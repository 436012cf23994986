"""Fetch the sources a sources file names into the cache, and record what was fetched.

`sync` brings each source up to date: a git source is cloned once (shallow, blobs on demand,
a sparse checkout of its `include` globs) and fetched and checked out again later; an archive
URL is downloaded and checked against its sha256; a local path or archive is used as it is. The
ATT&CK bundle comes through mitreattack-python's release download (a release and its known
sha256) or a plain fetch of a URL. What each source was fetched at (commit and commit date,
archive or bundle digest, ATT&CK version) goes into the lock file, `kb.lock` (JSON); with
`locked=True`, sync fetches exactly what the lock records instead.

A source that cannot be fetched (offline, unreachable, a bad ref or checksum) fails alone with
one line saying why, and its cached copy stays as it was: a new clone is made in a scratch
folder and moved into place only when complete, and an existing checkout moves only after its
fetch succeeded. Git runs as the system `git`, never prompting for credentials.

`resolve` turns a sources file and the cache into what `kb build` reads; `materialise` writes
out the files a lock records, so that two locks can be built and compared (`kb diff`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kb.build import SourceInput
from kb.config import AttackSpec, Config, SourceSpec, is_url, sparse_patterns
from kb.errors import KbError, UserError

logger = logging.getLogger(__name__)

LOCK_VERSION = 1
GIT_TIMEOUT = 1800
DOWNLOAD_TIMEOUT = 300
_STIX_VERSION = "2.1"


class SyncError(KbError):
    """A source that could not be fetched; the message is one line."""


# --- the lock file ------------------------------------------------------------------------------


@dataclass
class LockedSource:
    """What a source was fetched at, with the settings that decided it (so a lock stands
    alone)."""

    kind: str
    location: str
    vendor: str = "auto"
    ref: str = ""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    commit: str = ""
    date: str = ""
    sha256: str = ""
    file: str = ""  # a downloaded archive, relative to the cache folder
    fetched_at: str = ""


@dataclass
class LockedAttack:
    domain: str
    version: str
    origin: str
    sha256: str
    file: str  # relative to the cache folder, or an absolute path for a local bundle
    fetched_at: str = ""


@dataclass
class Lock:
    sources: dict[str, LockedSource] = field(default_factory=dict)
    attack: LockedAttack | None = None
    version: int = LOCK_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Lock:
        data = json.loads(text)
        sources = {name: LockedSource(**body) for name, body in data.get("sources", {}).items()}
        attack = LockedAttack(**data["attack"]) if data.get("attack") else None
        return cls(sources, attack, data.get("version", LOCK_VERSION))


def read_lock(path: Path) -> Lock:
    try:
        return Lock.from_json(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"{path}: cannot read the lock file: {error.strerror}") from error
    except (ValueError, TypeError, KeyError) as error:
        raise UserError(f"{path}: not a kb lock file: {error}") from error


def write_lock(path: Path, lock: Lock) -> None:
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(lock.to_json(), encoding="utf-8")
    scratch.replace(path)


# --- sync ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What sync did with one source (or the ATT&CK bundle)."""

    name: str
    ok: bool
    message: str  # one line
    changed: bool = False


@dataclass
class SyncResult:
    outcomes: list[Outcome]
    lock: Lock

    @property
    def failed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]


def sync(config: Config, locked: bool = False, only: tuple[str, ...] = ()) -> SyncResult:
    """Fetch every source (or those named in `only`) and the ATT&CK bundle; write the lock
    unless `locked`, in which case the lock's own versions are fetched."""
    previous = read_lock(config.lock_path) if config.lock_path.is_file() else Lock()
    if locked and not config.lock_path.is_file():
        raise UserError(f"{config.lock_path}: no lock file to reproduce (run `kb sync` first)")
    for name in only:
        config.source(name)
    lock = Lock(dict(previous.sources), previous.attack)
    outcomes = []
    for spec in config.sources:
        if only and spec.name not in only:
            continue
        pinned = previous.sources.get(spec.name) if locked else None
        outcome, entry = _guarded(spec.name, lambda s=spec, p=pinned: sync_source(
            config, s, p, locked))
        outcomes.append(outcome)
        if entry is not None:
            lock.sources[spec.name] = entry
    if not only:
        outcome, attack = _guarded("attack", lambda: sync_attack(
            config, previous.attack, locked))
        outcomes.append(outcome)
        lock.attack = attack or lock.attack
        lock.sources = {s.name: lock.sources[s.name] for s in config.sources
                        if s.name in lock.sources}
    if not locked:
        write_lock(config.lock_path, lock)
    return SyncResult(outcomes, lock)


def _guarded(name: str, work: Callable[[], tuple[Any, str, bool]]) -> tuple[Outcome, Any]:
    try:
        entry, message, changed = work()
    except (SyncError, UserError) as error:
        logger.info("%s: %s", name, error)
        return Outcome(name, False, " ".join(str(error).split())), None
    return Outcome(name, True, message, changed), entry


def sync_source(config: Config, spec: SourceSpec, pinned: LockedSource | None,
                locked: bool) -> tuple[LockedSource, str, bool]:
    if locked and pinned is None:
        raise SyncError("not in the lock file (run `kb sync` without --locked)")
    if pinned is not None and (pinned.kind, pinned.location) != (spec.kind, spec.location):
        raise SyncError(f"the lock records {pinned.kind} {pinned.location}, the sources file "
                        f"{spec.kind} {spec.location} (run `kb sync` without --locked)")
    if spec.kind == "git":
        return sync_git(spec, checkout_dir(config, spec), pinned.commit if pinned else "")
    if spec.kind == "archive" and is_url(spec.location):
        return sync_download(config, spec, pinned.sha256 if pinned else spec.sha256)
    return sync_local(spec, pinned.sha256 if pinned else spec.sha256)


def checkout_dir(config: Config, spec: SourceSpec) -> Path:
    return config.cache / "sources" / spec.slug


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _entry(spec: SourceSpec, **found: str) -> LockedSource:
    return LockedSource(kind=spec.kind, location=spec.location, vendor=spec.vendor, ref=spec.ref,
                        include=list(spec.include), exclude=list(spec.exclude),
                        fetched_at=_now(), **found)


# --- git ----------------------------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None) -> str:
    """Run the system git without prompts; a failure is a SyncError with git's own reason."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
           "GCM_INTERACTIVE": "never", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError as error:
        raise SyncError("git is not installed (kb sync needs the git command)") from error
    except subprocess.TimeoutExpired as error:
        raise SyncError(f"git {args[0]} took longer than {GIT_TIMEOUT} s") from error
    if done.returncode != 0:
        raise SyncError(_git_reason(done.stderr) or f"git {args[0]} failed")
    return done.stdout.strip()


def _git_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    line = (fatal or lines or [""])[0]
    return line.removeprefix("fatal: ").removeprefix("error: ")


def sync_git(spec: SourceSpec, dest: Path, commit: str = "") -> tuple[LockedSource, str, bool]:
    """Clone or update a git source at `commit` (when given) or its ref."""
    target = commit or spec.ref or "HEAD"
    before = head_commit(dest) if (dest / ".git").is_dir() else ""
    try:
        if before:
            _update(dest, spec, target)
        else:
            _clone(dest, spec, target)
    except SyncError as error:
        raise SyncError(f"cannot fetch {spec.location} at {target}: {error}") from error
    found, date = head_commit(dest), git("log", "-1", "--format=%cI", "HEAD", cwd=dest)
    if commit and found != commit:
        raise SyncError(f"checked out {found[:12]}, the lock records {commit[:12]}")
    if found == before:
        message = f"{found[:12]} ({date}), up to date"
    else:
        message = f"{found[:12]} ({date})" + (f", was {before[:12]}" if before else ", new")
    return _entry(spec, commit=found, date=date), message, found != before


def head_commit(repo: Path) -> str:
    try:
        return git("rev-parse", "HEAD", cwd=repo)
    except SyncError:
        return ""


def _clone(dest: Path, spec: SourceSpec, target: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        git("init", "-q", cwd=scratch)
        git("remote", "add", "origin", spec.location, cwd=scratch)
        git("config", "remote.origin.promisor", "true", cwd=scratch)
        git("config", "remote.origin.partialclonefilter", "blob:none", cwd=scratch)
        _fetch(scratch, target)
        _check_out(scratch, spec)
        if dest.exists():
            shutil.rmtree(dest)
        scratch.rename(dest)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _update(dest: Path, spec: SourceSpec, target: str) -> None:
    _fetch(dest, target)
    _check_out(dest, spec)


def _fetch(repo: Path, target: str) -> None:
    """Fetch one commit shallowly; a server that will not serve a bare commit id gets a full
    fetch of its branches instead."""
    try:
        git("fetch", "-q", "--depth", "1", "--filter=blob:none", "origin", target, cwd=repo)
        git("update-ref", "refs/kb/fetched", "FETCH_HEAD^{commit}", cwd=repo)
    except SyncError:
        if not _looks_like_commit(target):
            raise
        git("fetch", "-q", "--filter=blob:none", "origin", cwd=repo)
        git("update-ref", "refs/kb/fetched", f"{target}^{{commit}}", cwd=repo)


def _looks_like_commit(target: str) -> bool:
    return 7 <= len(target) <= 64 and all(c in "0123456789abcdef" for c in target.lower())


def _check_out(repo: Path, spec: SourceSpec) -> None:
    if spec.include:
        git("sparse-checkout", "set", "--no-cone", *sparse_patterns(spec), cwd=repo)
    elif (repo / ".git" / "info" / "sparse-checkout").is_file():
        git("sparse-checkout", "disable", cwd=repo)
    git("checkout", "-q", "--force", "--detach", "refs/kb/fetched", cwd=repo)


# --- archives and local sources -----------------------------------------------------------------


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def download(url: str, dest_dir: Path, sha256: str = "", suffix: str = "") -> tuple[Path, str]:
    """Fetch a URL (https, http or file) into `dest_dir/<sha256><suffix>`, checking the digest
    when one is given; nothing is left behind on failure."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if sha256 and (dest_dir / f"{sha256}{suffix}").is_file():
        return dest_dir / f"{sha256}{suffix}", sha256
    handle, scratch_name = tempfile.mkstemp(prefix=".download.", dir=dest_dir)
    scratch = Path(scratch_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(
                url, timeout=DOWNLOAD_TIMEOUT) as response:
            shutil.copyfileobj(response, out)
        found = sha256_of(scratch)
        if sha256 and found != sha256:
            raise SyncError(f"{url}: sha256 is {found}, expected {sha256}")
        final = dest_dir / f"{found}{suffix}"
        scratch.replace(final)
        return final, found
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise SyncError(f"cannot fetch {url}: {reason}") from error
    finally:
        scratch.unlink(missing_ok=True)


def _suffix(location: str) -> str:
    name = location.rsplit("/", 1)[-1].split("?", 1)[0]
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip", ".json.gz", ".json"):
        if name.endswith(suffix):
            return suffix
    return ""


def sync_download(config: Config, spec: SourceSpec, sha256: str
                  ) -> tuple[LockedSource, str, bool]:
    folder = config.cache / "archives" / spec.slug
    path, found = download(spec.location, folder, sha256, _suffix(spec.location))
    relative = path.relative_to(config.cache).as_posix()
    return _entry(spec, sha256=found, file=relative), f"sha256 {found[:12]}", True


def sync_local(spec: SourceSpec, sha256: str) -> tuple[LockedSource, str, bool]:
    path = Path(spec.location)
    if not path.exists():
        raise SyncError(f"{path}: no such file or folder")
    if path.is_dir():
        commit = head_commit(path) if (path / ".git").exists() else ""
        date = git("log", "-1", "--format=%cI", "HEAD", cwd=path) if commit else ""
        note = f"local folder at {commit[:12]}" if commit else "local folder, used as it is"
        return _entry(spec, commit=commit, date=date), note, False
    found = sha256_of(path)
    if sha256 and found != sha256:
        raise SyncError(f"{path}: sha256 is {found}, expected {sha256}")
    return _entry(spec, sha256=found), f"local archive, sha256 {found[:12]}", False


# --- ATT&CK -------------------------------------------------------------------------------------


def sync_attack(config: Config, previous: LockedAttack | None, locked: bool
                ) -> tuple[LockedAttack, str, bool]:
    """Fetch the bundle (with `locked`, exactly the one `previous` records)."""
    spec = config.attack
    if locked and previous is None:
        raise SyncError("the lock file records no ATT&CK bundle")
    want = previous.sha256 if locked and previous else spec.sha256
    folder = config.cache / "attack"
    if spec.path:
        path = Path(spec.path)
        if not path.is_file():
            raise SyncError(f"{path}: no such ATT&CK bundle")
        found, file = sha256_of(path), str(path)
        if want and found != want:
            raise SyncError(f"{path}: sha256 is {found}, expected {want}")
    elif spec.url:
        path, found = download(spec.url, folder, want, _suffix(spec.url) or ".json")
        file = path.relative_to(config.cache).as_posix()
    else:
        path, found = _release(spec, folder, want)
        file = path.relative_to(config.cache).as_posix()
    domain, version = bundle_version(path)
    entry = LockedAttack(spec.domain, version or spec.version, spec.origin, found, file, _now())
    changed = previous is None or previous.sha256 != found
    shown = f"{domain or spec.domain} {version or spec.version} (sha256 {found[:12]})"
    return entry, shown, changed


def _release(spec: AttackSpec, folder: Path, want: str) -> tuple[Path, str]:
    """An ATT&CK release through mitreattack-python's downloader, checked against the sha256
    mitreattack-python knows for it."""
    from mitreattack import release_info
    from mitreattack.download_stix import download_stix

    release = release_info.LATEST_VERSION if spec.version in ("", "latest") else spec.version
    short = spec.domain.removesuffix("-attack")
    known = release_info.STIX21.get(short, {}).get(release)
    if known is None:
        raise SyncError(f"ATT&CK {spec.domain} {release} is not a release mitreattack-python "
                        "knows (give `url:` or `path:` instead)")
    if want and want != known:
        raise SyncError(f"the lock records sha256 {want[:12]} for ATT&CK {release}, "
                        f"the release has {known[:12]}")
    final = folder / f"{known}.json"
    if final.is_file():
        return final, known
    scratch = Path(tempfile.mkdtemp(prefix=".release.", dir=_made(folder)))
    try:
        download_stix(_STIX_VERSION, short, str(scratch), release, known)
        (scratch / f"v{release}" / f"{short}-attack.json").replace(final)
    except SyncError:
        raise
    except Exception as error:  # pooch and requests raise many kinds; each is one line here
        raise SyncError(f"cannot fetch ATT&CK {release}: {error}") from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final, known


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def bundle_version(path: Path) -> tuple[str, str]:
    """The collection name and ATT&CK version a STIX bundle declares, or empty strings."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            bundle = json.load(handle)
    except (OSError, ValueError) as error:
        raise SyncError(f"{path}: not a readable STIX bundle: {error}") from error
    for obj in bundle.get("objects", []) if isinstance(bundle, dict) else []:
        if isinstance(obj, dict) and obj.get("type") == "x-mitre-collection":
            return str(obj.get("name", "")), str(obj.get("x_mitre_version", ""))
    return "", ""


# --- what kb build reads ------------------------------------------------------------------------


def resolve(config: Config, lock: Lock | None = None) -> tuple[list[SourceInput], Path]:
    """The sources and the ATT&CK bundle `kb build` reads for a sources file, as synced."""
    if lock is None and config.lock_path.is_file():
        lock = read_lock(config.lock_path)
    inputs = [_input(config, spec, lock) for spec in config.sources]
    return inputs, attack_path(config, lock)


def _input(config: Config, spec: SourceSpec, lock: Lock | None) -> SourceInput:
    entry = lock.sources.get(spec.name) if lock else None
    common = {"name": spec.name, "vendor": spec.vendor, "include": spec.include,
              "exclude": spec.exclude, "origin": spec.location}
    if spec.kind == "git":
        folder = checkout_dir(config, spec)
        commit = head_commit(folder) if (folder / ".git").is_dir() else ""
        if not commit:
            raise UserError(f"source {spec.name!r}: not fetched yet (run `kb sync`)")
        date = git("log", "-1", "--format=%cI", "HEAD", cwd=folder)
        return SourceInput(folder, commit=commit, date=date, **common)
    if is_url(spec.location):
        if entry is None or not (config.cache / entry.file).is_file():
            raise UserError(f"source {spec.name!r}: not downloaded yet (run `kb sync`)")
        return SourceInput(config.cache / entry.file, **common)
    path = Path(spec.location)
    commit = head_commit(path) if path.is_dir() and (path / ".git").exists() else ""
    return SourceInput(path, commit=commit, **common)


def attack_path(config: Config, lock: Lock | None) -> Path:
    if config.attack.path:
        return Path(config.attack.path)
    entry = lock.attack if lock else None
    if entry is None or not (config.cache / entry.file).is_file():
        raise UserError("the ATT&CK bundle is not fetched yet (run `kb sync`, or give --attack)")
    return config.cache / entry.file


def materialise(config: Config, lock: Lock, scratch: Path) -> tuple[list[SourceInput], Path]:
    """Write out every source as the lock records it (git sources read from the cached
    repository, fetching the commit if it is not there), for a build of that lock."""
    inputs = []
    for name, entry in lock.sources.items():
        spec = SourceSpec(name=name, kind=entry.kind, location=entry.location,
                          vendor=entry.vendor, ref=entry.ref, include=tuple(entry.include),
                          exclude=tuple(entry.exclude))
        common = {"name": name, "vendor": entry.vendor, "origin": entry.location,
                  "include": spec.include, "exclude": spec.exclude}
        if entry.kind == "git":
            folder = scratch / name
            _write_tree(checkout_dir(config, spec), entry.commit, spec, folder)
            inputs.append(SourceInput(folder, commit=entry.commit, date=entry.date, **common))
        elif entry.file:
            inputs.append(SourceInput(_present(config.cache / entry.file, name), **common))
        else:
            inputs.append(SourceInput(_present(Path(entry.location), name), **common))
    if lock.attack is None:
        raise UserError("the lock file records no ATT&CK bundle")
    bundle = Path(lock.attack.file)
    return inputs, _present(bundle if bundle.is_absolute() else config.cache / bundle, "attack")


def _present(path: Path, name: str) -> Path:
    if not path.exists():
        raise UserError(f"{name}: {path} is not in the cache any more (run `kb sync --locked` "
                        "with this lock)")
    return path


def _write_tree(repo: Path, commit: str, spec: SourceSpec, dest: Path) -> None:
    """The files of `commit` the source's globs let in, written under `dest`."""
    if not (repo / ".git").is_dir():
        raise UserError(f"{spec.name}: no cached repository (run `kb sync` first)")
    try:
        git("cat-file", "-e", f"{commit}^{{commit}}", cwd=repo)
    except SyncError:
        git("fetch", "-q", "--depth", "1", "--filter=blob:none", "origin", commit, cwd=repo)
    listing = git("ls-tree", "-r", "-z", "--full-tree", commit, cwd=repo)
    wanted = []
    for entry in listing.split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob" and spec.wants(path):
            wanted.append((parts[2], path))
    blobs = _read_blobs(repo, [blob for blob, _ in wanted])
    for blob, path in wanted:
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blobs[blob])


def _read_blobs(repo: Path, blobs: list[str]) -> dict[str, bytes]:
    """Blob contents by id through one `git cat-file --batch`."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    request = "".join(f"{blob}\n" for blob in dict.fromkeys(blobs)).encode()
    done = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, env=env, input=request,
                          capture_output=True, timeout=GIT_TIMEOUT, check=False)
    if done.returncode != 0:
        raise SyncError(_git_reason(done.stderr.decode(errors="replace")) or "git cat-file failed")
    out, position, found = done.stdout, 0, {}
    while position < len(out):
        end = out.index(b"\n", position)
        header = out[position:end].split()
        if len(header) < 3:
            raise SyncError(f"git cat-file: {out[position:end].decode(errors='replace')}")
        size = int(header[2])
        found[header[0].decode()] = out[end + 1:end + 1 + size]
        position = end + 1 + size + 1
    return found

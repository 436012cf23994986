"""Write the catalogue as static HTML: Jinja2 templates, one stylesheet, one script, no build
step and nothing fetched from the network, so the pages work from a file:// URL.

Pages are rendered by forked workers, each taking every n-th page of `site_pages`, sharing the
catalogue the parent read (as `kb.build` shares its sources with its parsers).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from kb.errors import UserError
from kb.graph.backend import Backend
from kb.site.catalogue import RULE_SCALE, VENDOR_SCALE, Catalogue, heat
from kb.site.data import load_site_data
from kb.site.links import Links
from kb.site.pages import MATRIX_DATA, site_pages

logger = logging.getLogger(__name__)

MARKER = ".kb-site"
_OWNED = ("index.html", "assets", "techniques", "rules", "fields", "events", "indicators")
_STATIC = ("site.css", "site.js")
PARALLEL_THRESHOLD = 1000  # rules; a smaller catalogue renders faster in one process


@dataclass
class SiteReport:
    """What a site build wrote."""

    out: Path
    pages: Counter = field(default_factory=Counter)
    bytes: int = 0
    largest: tuple[str, int] = ("", 0)
    seconds: float = 0.0

    def add(self, kind: str, path: str, size: int) -> None:
        self.pages[kind] += 1
        self.bytes += size
        if size > self.largest[1]:
            self.largest = (path, size)

    def merge(self, other: SiteReport) -> None:
        self.pages.update(other.pages)
        self.bytes += other.bytes
        self.largest = max(self.largest, other.largest, key=lambda item: item[1])

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "pages": dict(self.pages),
                "total_pages": sum(self.pages.values()), "bytes": self.bytes,
                "largest_page": self.largest[0], "largest_page_bytes": self.largest[1],
                "seconds": self.seconds}


def build_site(backend: Backend, out: Path, jobs: int | None = None) -> SiteReport:
    """Write the whole catalogue of the knowledge base under `out`."""
    started = time.perf_counter()
    prepare_output(out)
    catalogue = Catalogue.build(load_site_data(backend))
    _copy_static(out)
    _write(out, MATRIX_DATA, "window.KB_MATRIX = "
           + json.dumps(catalogue.matrix_data(), separators=(",", ":")) + ";\n")
    report = render_pages(catalogue, out, jobs or os.cpu_count() or 1)
    report.seconds = round(time.perf_counter() - started, 2)
    logger.info("site: %d pages, %d bytes in %.1f s", sum(report.pages.values()), report.bytes,
                report.seconds)
    return report


def prepare_output(out: Path) -> None:
    """An empty folder, or one holding an earlier site (whose pages are removed first)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise UserError(f"{out}: folder is not empty and holds no kb site; "
                            "name a new or empty folder")
        for name in _OWNED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `kb site`; its pages are replaced on the next run\n",
                              encoding="utf-8")


# The catalogue and folder the forked renderers read, set before they start.
_SHARED: list[tuple[Catalogue, Path]] = []


def render_pages(catalogue: Catalogue, out: Path, jobs: int) -> SiteReport:
    """Render and write every page, in `jobs` forked workers when there are many."""
    report = SiteReport(out)
    workers = jobs if len(catalogue.data.rules) >= PARALLEL_THRESHOLD else 1
    _SHARED[:] = [(catalogue, out)]
    if workers < 2:
        report.merge(_render_share((0, 1)))
        return report
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_render_share, [(index, workers) for index in range(workers)]):
            report.merge(part)
    return report


def _render_share(share: tuple[int, int]) -> SiteReport:
    """Render every `step`-th page from `start`."""
    start, step = share
    catalogue, out = _SHARED[0]
    env = environment(catalogue)
    links: dict[str, Links] = {}
    report = SiteReport(out)
    for page in islice(site_pages(catalogue), start, None, step):
        root = "../" * page.path.count("/")
        page_links = links.setdefault(root, Links(catalogue, root))
        text = env.get_template(page.template).render(links=page_links, **page.context())
        report.add(page.kind, page.path, _write(out, page.path, text))
    return report


def environment(catalogue: Catalogue) -> Environment:
    env = Environment(loader=PackageLoader("kb.site", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["heat"] = heat
    env.filters["s"] = lambda count: "" if count == 1 else "s"
    env.filters["basename"] = lambda path: str(path).replace("\\", "/").rstrip("/").rsplit(
        "/", 1)[-1]
    env.globals.update(
        RULE_SCALE=RULE_SCALE, VENDOR_SCALE=VENDOR_SCALE, info=catalogue.data.info,
        names={tid: row["name"] for tid, row in catalogue.data.techniques.items()})
    return env


def _copy_static(out: Path) -> None:
    for name in _STATIC:
        text = resources.files("kb.site").joinpath("static", name).read_text(encoding="utf-8")
        _write(out, f"assets/{name}", text)


def _write(out: Path, path: str, text: str) -> int:
    target = out / path
    target.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    target.write_bytes(data)
    return len(data)

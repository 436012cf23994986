"""Links from a page to the others, as ready HTML: plain text where no page exists.

Written in Python rather than as template macros, and remembered per link: the full catalogue
makes a few million links, many of them the same, and a macro call costs some thirty times a
function call. One `Links` serves every page at the same depth below the site's root.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from kb.site import paths
from kb.site.catalogue import Catalogue


class Links:
    def __init__(self, catalogue: Catalogue, root: str) -> None:
        self._catalogue = catalogue
        self.root = root
        self._anchors: dict[tuple[str, ...], Markup] = {}

    def home(self) -> str:
        return f"{self.root}index.html"

    def asset(self, name: str) -> str:
        return f"{self.root}assets/{name}"

    def technique_href(self, technique: str) -> str:
        known = technique in self._catalogue.technique_set
        return f"{self.root}{paths.technique_path(technique)}" if known else ""

    def technique(self, technique: str) -> Markup:
        key = ("t", technique)
        if key not in self._anchors:
            self._anchors[key] = _anchor(self.technique_href(technique), technique)
        return self._anchors[key]

    def techniques(self, techniques: list[str]) -> Markup:
        return Markup(" ".join(self.technique(t) for t in sorted(techniques)))

    def rule(self, uid: str, title: str | None = None) -> Markup:
        key = ("r", uid, title or "")
        if key not in self._anchors:
            known = uid in self._catalogue.data.rules
            self._anchors[key] = _anchor(
                f"{self.root}{paths.rule_path(uid)}" if known else "", title or uid)
        return self._anchors[key]

    def field(self, name: str) -> Markup:
        if not name:
            return Markup('<span class="field none">(any field)</span>')
        key = ("f", name)
        if key not in self._anchors:
            known = name in self._catalogue.data.fields
            self._anchors[key] = _anchor(f"{self.root}{paths.field_path(name)}" if known else "",
                                         name)
        return self._anchors[key]

    def event_type(self, event_type: str) -> Markup:
        key = ("e", event_type)
        if key not in self._anchors:
            known = event_type in self._catalogue.data.event_types
            self._anchors[key] = _anchor(
                f"{self.root}{paths.event_type_path(event_type)}" if known else "", event_type)
        return self._anchors[key]

    def value(self, name: str, op: str, value: str) -> Markup:
        """The value as code, linking to its indicator's drill-down: a page of its own when
        several rules use it, the one rule's indicators when only one does."""
        key = ("v", name, op, value)
        if key not in self._anchors:
            indicator = (name, op, value)
            href = ""
            if indicator in self._catalogue.indicators:
                href = f"{self.root}{paths.indicator_path(*indicator)}"
            elif indicator in self._catalogue.single_users:
                uid = self._catalogue.single_users[indicator]
                href = f"{self.root}{paths.rule_path(uid)}#indicators"
            self._anchors[key] = Markup(f"<code>{_anchor(href, value or '(empty)')}</code>")
        return self._anchors[key]


def _anchor(href: str, text: str) -> Markup:
    """A link, or the bare text without one; paths need no escaping (see kb.site.paths)."""
    if not href:
        return Markup(f"<span>{escape(text)}</span>")
    return Markup(f'<a href="{href}">{escape(text)}</a>')

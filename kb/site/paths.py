"""Where each page of the site lives, relative to the site's root.

Paths are safe on any file system and in any URL: technique ids as they are, rule native ids
when they are short lower-case words, anything else a readable slug followed by a hash of the
exact name, so that names differing only in case or punctuation never share a file.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PLAIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SLUG_LENGTH = 48


def digest(text: str) -> str:
    return hashlib.blake2s(text.encode("utf-8"), digest_size=5).hexdigest()


def slug(text: str, length: int = _SLUG_LENGTH) -> str:
    """A file-name-safe, readable and unique stand-in for any text."""
    readable = _UNSAFE.sub("-", text).strip("-.")[:length].rstrip("-.")
    return f"{readable}-{digest(text)}" if readable else digest(text)


def technique_path(technique: str) -> str:
    return f"techniques/{technique}.html"


def rule_path(uid: str) -> str:
    vendor, _, native_id = uid.partition(":")
    name = native_id if _PLAIN_ID.match(native_id) else slug(native_id)
    return f"rules/{slug(vendor) if not _PLAIN_ID.match(vendor) else vendor}/{name}.html"


def field_path(field: str) -> str:
    return f"fields/{slug(field)}.html"


def event_type_path(event_type: str) -> str:
    return f"events/{slug(event_type)}.html"


def indicator_path(field: str, op: str, value: str) -> str:
    readable = _UNSAFE.sub("-", f"{field}-{op}-{value}").strip("-.")[:_SLUG_LENGTH].rstrip("-.")
    return f"indicators/{readable}-{digest(repr((field, op, value)))}.html"


def root_of(path: str) -> str:
    """The relative way back to the site's root from a page at `path`."""
    return "../" * path.count("/")

"""A small sample corpus written for kb: a few rules per supported vendor and an ATT&CK subset.

`kb demo` builds from it with no network and no arguments.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEMO_TECHNIQUE = "T1505"
_VENDOR_FOLDERS = ("sigma", "elastic", "splunk", "sentinel", "chronicle", "panther")


def _root() -> Path:
    return Path(str(resources.files("kb.demo")))


def demo_sources() -> list[Path]:
    """The demo's rule sources, one folder per vendor."""
    return [_root() / folder for folder in _VENDOR_FOLDERS]


def demo_attack_bundle() -> Path:
    return _root() / "attack-subset.json"

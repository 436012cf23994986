"""Rule loaders, one module per vendor, all with the same small interface.

Every loader module defines:

- `VENDOR`: its vendor key, also the first part of each rule uid;
- `detect(source) -> bool`: whether a source's root holds this vendor's rules;
- `sniff(path, text) -> bool`: whether a lone file is one of this vendor's rules;
- `rule_paths(source) -> list[str]`: the rule files of a source;
- `load_context(source | None)`: what every rule of a source shares (macros, lookups), picklable;
  `None` stands for a lone file with no source around it;
- `parse_file(rule_file, context) -> list[RuleRecord]`: never raises for a bad rule; the
  problem is recorded on the returned record instead.

Loaders never touch the graph and never print.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kb.errors import UserError

LOADER_MODULES = {
    "chronicle": "loaders.chronicle",
    "panther": "loaders.panther",  # before sigma: a Panther checkout also has rules/**/*.yml
    "sigma": "loaders.sigma",
    "elastic": "loaders.elastic",
    "sentinel": "loaders.sentinel",
    "splunk": "loaders.splunk",
}


def get_loader(vendor: str) -> ModuleType:
    if vendor not in LOADER_MODULES:
        known = ", ".join(sorted(LOADER_MODULES))
        raise UserError(f"unknown vendor {vendor!r} (known: {known})")
    return importlib.import_module(LOADER_MODULES[vendor])


def all_loaders() -> list[ModuleType]:
    return [get_loader(vendor) for vendor in LOADER_MODULES]

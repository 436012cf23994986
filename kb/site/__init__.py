"""A static, browsable catalogue of the knowledge base (`kb site OUT`).

An index with the ATT&CK matrix as a heatmap, searchable and filterable in the browser; one
page per technique (its authoring guide), per rule, per field, per event type and per
indicator, every value linking to its drill-down. Plain HTML from Jinja2 templates, one
stylesheet and one script shipped as package data: no front-end build, no network.
"""

from kb.site.generate import SiteReport, build_site

__all__ = ["SiteReport", "build_site"]

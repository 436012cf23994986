"""The documentation stays true to the code it describes."""

from pathlib import Path

from kb.graph.schema import NODES, RELS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_schema_doc_names_every_label_type_and_property():
    text = (DOCS / "schema.md").read_text(encoding="utf-8")
    names = [f"`{spec.label}`" for spec in NODES] + [f"`{spec.type}`" for spec in RELS]
    names += [f"`{prop.name}`" for spec in (*NODES, *RELS) for prop in spec.props]

    assert [name for name in names if name not in text] == []

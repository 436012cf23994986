"""`kb stats` lists unmapped fields per vendor: the canned query's golden result on both engines.

The golden graph (tests/golden_graph.py) is not normalised, so every field there is unmapped:
sigma r1 (alpha, beta, gamma), r3 (alpha), r5 (epsilon, alpha); elastic r2 (alpha, delta);
splunk r4 (beta, gamma).
"""

from kb.queries import run_query


def test_unmapped_fields_per_vendor_with_rule_counts(golden_backend):
    rows = run_query(golden_backend, "unmapped_fields", limit=100)

    assert rows == [
        {"vendor": "sigma", "field": "alpha", "rules": 3},
        {"vendor": "elastic", "field": "alpha", "rules": 1},
        {"vendor": "elastic", "field": "delta", "rules": 1},
        {"vendor": "sigma", "field": "beta", "rules": 1},
        {"vendor": "sigma", "field": "epsilon", "rules": 1},
        {"vendor": "sigma", "field": "gamma", "rules": 1},
        {"vendor": "splunk", "field": "beta", "rules": 1},
        {"vendor": "splunk", "field": "gamma", "rules": 1},
    ]


def test_unmapped_fields_of_one_vendor(golden_backend):
    rows = run_query(golden_backend, "unmapped_fields", vendor="splunk", limit=1)

    assert rows == [{"vendor": "splunk", "field": "beta", "rules": 1}]

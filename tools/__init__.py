"""Generators of kb's committed normalisation data (see docs/normalisation.md)."""

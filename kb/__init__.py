"""kb: a knowledge base of security detection rules across six vendors, on a graph."""

__version__ = "0.1.0"

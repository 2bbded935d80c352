"""Docs connector: full-text, BM25-ranked search over the product documentation pages."""

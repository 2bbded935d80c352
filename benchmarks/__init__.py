"""Benchmark scripts; each prints one JSON object."""

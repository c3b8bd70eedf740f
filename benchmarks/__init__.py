"""Benchmarks: one script per figure, each printing JSON. `make bench` runs them all (see docs/benchmarks.md)."""

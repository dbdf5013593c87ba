"""Benchmarks for Sanji. Run one with ``python -m bench.<name>``; see bench/README.md."""

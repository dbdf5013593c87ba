"""Development tooling, never installed with the product: the deterministic simulation and the in-memory
replica it runs, the fault-injecting TCP proxy, and the synthetic corpus of people and matters.

Tests and benchmarks import it from the source tree (pytest's ``pythonpath = ["."]``); the rules it
exercises all live in ``protocol/``.
"""

"""Argument types the commands share, light enough for any parser to import (no store, no web)."""

from __future__ import annotations

import argparse

from protocol.bounds import node_id_problem


def node_id_arg(value: str) -> str:
    """An argparse ``type`` for a node id: one outside ``protocol.bounds``' bound is refused with the rule, exit 2."""
    if problem := node_id_problem(value):
        raise argparse.ArgumentTypeError(problem)
    return value

"""Argument types the commands share, light enough for any parser to import (no store, no web)."""

from __future__ import annotations

import argparse

from protocol.bounds import node_id_problem


def node_id_arg(value: str) -> str:
    """An argparse ``type`` for a node id: one outside ``protocol.bounds``' bound is refused with the rule, exit 2."""
    if problem := node_id_problem(value):
        raise argparse.ArgumentTypeError(problem)
    return value


# A document's version is a 32-bit integer column (``sanji.store.schema``): PostgreSQL refuses a larger one sent
# to it with an error of its own, so the command line refuses it first, as it does a version below 1.
MAX_DOCUMENT_VERSION = 2**31 - 1


def version_arg(value: str) -> int:
    """An argparse ``type`` for a document's version: a whole number from 1 to ``MAX_DOCUMENT_VERSION``, exit 2."""
    try:
        version = int(value) if value.strip().isascii() else 0
    except ValueError:
        version = 0
    if not 1 <= version <= MAX_DOCUMENT_VERSION:
        raise argparse.ArgumentTypeError(
            f"版本号应为 1 到 {MAX_DOCUMENT_VERSION} 的整数 · a version is a whole number from 1 to "
            f"{MAX_DOCUMENT_VERSION}, not {value[:20]!r}"
        )
    return version

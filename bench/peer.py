"""The peer `bench.apply_rate` measures Sanji against, in the same run: PouchDB replicating to express-pouchdb.

The documents are the county-bound actions of the very corpus Sanji's county ingests, one JSON document
per action (PouchDB has no batches, signatures or hash chains: each action becomes a plain document with
its errand id and fields). `bench/peer/replicate.js` loads them into an in-memory source database,
then times one `PouchDB.replicate` to an express-pouchdb server on loopback (batch size 100, PouchDB's
default), once with the in-memory adapter and once with LevelDB (durable, like Sanji's stores), counting
requests and body bytes the way Sanji's HTTP measurement counts its own.

The JavaScript packages come from `bench/peer/package-lock.json` (pinned, with integrity hashes) through
`npm ci --ignore-scripts`: nothing runs at install time; LevelDB's native module loads from the prebuilt
binaries its package ships. Node and npm are the machine's own; without them the peer is recorded as
skipped and the rest of the benchmark still runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from protocol.actions import Action

PEER_DIR = Path(__file__).resolve().parent / "peer"
ADAPTERS = ("memory", "leveldb")
_TIMEOUT_S = 900


class PeerUnavailable(Exception):
    """The peer cannot run here (no Node, npm refused); the reason goes into the result as `skipped`."""


def install() -> None:
    """`npm ci --ignore-scripts` from the pinned lock, unless node_modules already matches it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise PeerUnavailable("node and npm are not on PATH")
    lock = PEER_DIR / "package-lock.json"
    installed = PEER_DIR / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    done = subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PEER_DIR,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise PeerUnavailable(f"npm ci failed: {done.stderr.strip()[-400:]}")


def write_documents(actions: Iterable[Action], path: Path) -> int:
    """One JSON document per action, keyed by the action's own id; its fields (and kind) as they are."""
    count = 0
    with path.open("wb") as out:
        for action in actions:
            fields = msgspec.to_builtins(action)
            doc = {"_id": action.id, **fields}
            out.write(msgspec.json.encode(doc) + b"\n")
            count += 1
    return count


def replicate(documents: Path, adapter: str, workdir: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(PEER_DIR / "replicate.js"), str(documents), adapter, str(workdir / f"peer-{adapter}")],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        return {"failed": done.stderr.strip()[-600:]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(actions: list[Action], workdir: Path) -> dict[str, Any]:
    """Replicate the actions as documents with each adapter; `{"skipped": reason}` when the peer cannot run."""
    try:
        install()
    except (PeerUnavailable, subprocess.TimeoutExpired, OSError) as exc:
        return {"skipped": str(exc)}
    documents = workdir / "peer-documents.jsonl"
    count = write_documents(actions, documents)
    out: dict[str, Any] = {"documents": count, "document_bytes": documents.stat().st_size}
    for adapter in ADAPTERS:
        try:
            out[adapter] = replicate(documents, adapter, workdir)
        except subprocess.TimeoutExpired:
            out[adapter] = {"failed": f"no answer within {_TIMEOUT_S} s"}
    return out


def ratios(
    peer: dict[str, Any], *, sanji_rate: float, sanji_bytes_per_action: float, sanji_requests: int, sanji_actions: int
) -> dict[str, Any]:
    """Sanji ÷ peer, per adapter that ran: throughput (higher is better), bytes and requests (lower is better)."""
    out: dict[str, Any] = {}
    for adapter in ADAPTERS:
        run = peer.get(adapter)
        if not isinstance(run, dict) or "docs_per_s" not in run:
            continue
        docs = run["documents"]
        out[adapter] = {
            "throughput_ratio": sanji_rate / run["docs_per_s"],
            "bytes_ratio": sanji_bytes_per_action / (run["request_body_bytes"] / docs),
            "requests_ratio": (sanji_requests / sanji_actions) / (run["requests"] / docs),
        }
    return out

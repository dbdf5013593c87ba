"""Helpers for the hardening tests: a small enrolled county of real processes, requests signed as a node."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import httpx
import msgspec

from protocol.session import request_signing_bytes
from protocol.signing import SigningKey
from sanji.demo.cluster import Cluster
from sanji.keys import read_key
from sanji.sync.requests_auth import COUNTER, HEADER_COUNTER, HEADER_KEY, HEADER_NODE, HEADER_SIGNATURE, HEADER_TO

MSGPACK = "application/msgpack"
LEAD_US = 1_000_000  # request counters are microseconds


class PatientCluster(Cluster):
    """A cluster that waits longer for a node to answer: nine test suites share two cores here."""

    def wait_ready(self, node_id: str, timeout: float = 180.0) -> None:
        super().wait_ready(node_id, timeout=timeout)


def signed_headers(key: SigningKey, sender: str, to: str, path: str, body: bytes) -> dict[str, str]:
    counter = COUNTER.next()
    signature = key.sign(request_signing_bytes(path, body, recipient=to, counter=counter))
    return {
        HEADER_NODE: sender,
        HEADER_KEY: key.key_id,
        HEADER_SIGNATURE: base64.b64encode(signature).decode(),
        HEADER_TO: to,
        HEADER_COUNTER: str(counter),
    }


def signed_post(cluster: Cluster, sender: str, to: str, path: str, body: msgspec.Struct | bytes) -> httpx.Request:
    """A request exactly as ``sender``'s driver would sign it (its own key file), addressed to ``to``."""
    raw = body if isinstance(body, bytes) else msgspec.msgpack.encode(body)
    key = read_key(cluster.nodes[sender].config.parent / "node.key")
    counter = COUNTER.next()
    signature = key.sign(request_signing_bytes(path, raw, recipient=to, counter=counter))
    headers = {
        "content-type": MSGPACK,
        HEADER_NODE: sender,
        HEADER_KEY: key.key_id,
        HEADER_SIGNATURE: base64.b64encode(signature).decode(),
        HEADER_TO: to,
        HEADER_COUNTER: str(counter),
    }
    return httpx.Request("POST", cluster.nodes[to].url + path, content=raw, headers=headers)


def send(request: httpx.Request, *, to: str | None = None, cluster: Cluster | None = None) -> httpx.Response:
    """Send ``request`` as captured (same bytes, same headers), optionally to another node."""
    url = request.url if to is None or cluster is None else httpx.URL(cluster.nodes[to].url + request.url.path)
    with httpx.Client(timeout=10) as client:
        return client.post(url, content=request.content, headers=dict(request.headers))


def send_fresh(
    cluster: Cluster, sender: str, to: str, path: str, body: msgspec.Struct | bytes
) -> tuple[httpx.Request, httpx.Response]:
    """Sign and send as ``sender``; if its running driver got a higher counter in first, sign again above it.

    The node under test and this process both sign as ``sender``, each from its own clock; a request
    of ours can lose that race on a busy machine, as a second process of the same node would.
    """
    for _ in range(5):
        request = signed_post(cluster, sender, to, path, body)
        response = send(request)
        if response.status_code != 401 or response.json().get("error") != "stale_request":
            return request, response
        # Sign a second ahead of the counter the node last took: under load the live driver, sending every
        # 0.3 s, otherwise keeps getting a fresher counter in while ours is on its way.
        COUNTER.bump(int(response.json()["last_counter"]) + LEAD_US)
    return request, response


def events(cluster: Cluster, node: str, kind: str | None = None) -> list[dict[str, object]]:
    db = cluster.nodes[node].config.parent / "node.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute("SELECT kind, peer, detail FROM events ORDER BY id").fetchall()
    out = [{"kind": k, "peer": p, "detail": json.loads(d)} for k, p, d in rows]
    return [e for e in out if kind is None or e["kind"] == kind]


def node_dir(cluster: Cluster, node: str) -> Path:
    return cluster.nodes[node].config.parent

"""Fuzzing every decoder of sync requests and hand-carried files: only clear errors, never a crash or a 500.

Pure decoders get arbitrary msgpack trees (deep, wide, wrongly typed), raw bytes and mutated
valid messages; the transfer-file scanner gets arbitrary bytes in arbitrary chunks; the signature
headers get arbitrary strings; and a real township app (its store on a real SQLite file, served
through Litestar's test client) gets arbitrary bodies and headers on every /sync/v1 endpoint,
signed and unsigned. ``SANJI_SYNC_FUZZ_EXAMPLES`` sets the examples per property (default 300).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from protocol.carry import CarryHeader, CarryScanner, write_carry
from protocol.enrollment import EnrollRequest
from protocol.errors import SanjiError
from protocol.session import (
    BlobGet,
    BlobGetReply,
    BlobPut,
    BlobPutReply,
    CursorsRequest,
    CursorsResponse,
    NodeReport,
    PullRequest,
    PullResponse,
    PushRequest,
    PushResponse,
)
from protocol.wire import decode
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.keys import read_key
from sanji.sync.requests_auth import SignedRequest, Unauthenticated
from tests.hardening.hard_kit import MSGPACK, signed_headers
from town_node.app import create_app

EXAMPLES = int(os.environ.get("SANJI_SYNC_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
KINDS = [
    CursorsRequest,
    PushRequest,
    PullRequest,
    BlobPut,
    BlobGet,
    EnrollRequest,
    CursorsResponse,
    PushResponse,
    PullResponse,
    BlobPutReply,
    BlobGetReply,
    CarryHeader,
]
PATHS = [
    "/sync/v1/cursors",
    "/sync/v1/push",
    "/sync/v1/pull",
    "/sync/v1/blob/put",
    "/sync/v1/blob/get",
    "/sync/v1/enroll",
]

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
trees = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10) | st.integers(), inner, max_size=5)
    ),
    max_leaves=40,
)
VALID = [
    msgspec.msgpack.encode(CursorsRequest(sender="T01V01", reports=(NodeReport(node="T01V01", at=1),))),
    msgspec.msgpack.encode(PullRequest(sender="T01V01", at=1, cursors=())),
    msgspec.msgpack.encode(PushRequest(sender="T01V01", at=1, frames=(b"SJB\x01" + b"x" * 90,))),
]


def _encode(tree: object) -> bytes:
    try:
        return msgspec.msgpack.encode(tree)
    except (OverflowError, TypeError):
        return b"\xc0"


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return _encode(draw(trees))
    if kind == 1:
        return draw(st.binary(max_size=400))
    if kind == 2:
        depth = draw(st.integers(1, 5000))
        return b"\x81\xa1x" + draw(st.sampled_from([b"\x91", b"\x81\xa1k"])) * depth + b"\xc0"
    base = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(base) - 1))
        base[at] = draw(st.integers(0, 255))
    if kind == 4:
        base = base[: draw(st.integers(0, len(base)))]
    return bytes(base)


COUNTS: dict[str, int] = {}


def counted(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@FUZZ
@given(bodies(), st.sampled_from(KINDS))
def test_every_sync_decoder_raises_only_clear_errors(data: bytes, kind: type) -> None:
    counted("decoders")
    try:
        decode(data, kind, what="fuzz", max_bytes=8 * 1024 * 1024)
    except SanjiError:
        pass


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda n: write_carry(CarryHeader(exporter="A", recipient="B", created=1, count=n), [b"x" * 80] * n),
            st.integers(0, 4),
        ),
    ),
    st.integers(1, 64),
    st.data(),
)
def test_the_transfer_file_scanner_raises_only_clear_errors(data: bytes, chunk: int, draw: st.DataObject) -> None:
    counted("carry")
    if data and draw.draw(st.booleans()):
        at = draw.draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    try:
        scanner = CarryScanner(len(data), keep=True)
        for i in range(0, len(data), chunk):
            scanner.feed(data[i : i + chunk])
        scanner.finish()
    except SanjiError:
        pass


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["x-sanji-node", "x-sanji-key", "x-sanji-signature", "x-sanji-to", "x-sanji-counter"]),
        st.text(max_size=300),
    )
)
def test_signature_headers_raise_only_unauthenticated(headers: dict[str, str]) -> None:
    counted("headers")
    try:
        SignedRequest.from_headers(headers, "/sync/v1/pull", b"")
    except Unauthenticated:
        pass


@pytest.fixture(scope="module")
def township(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient[object], Cluster]]:
    cluster = Cluster.prepare(tmp_path_factory.mktemp("fuzz") / "c", towns=1, villages_per_town=1)
    settings_ = load_settings(str(cluster.nodes["T01"].config))
    with TestClient(create_app(settings_), raise_server_exceptions=False) as client:
        yield client, cluster  # type: ignore[misc]


def test_every_sync_endpoint_answers_fuzz_with_a_4xx_never_a_500(township: tuple[TestClient[object], Cluster]) -> None:
    client, cluster = township
    key = read_key(cluster.nodes["T01V01"].config.parent / "node.key")
    statuses: dict[int, int] = {}

    @FUZZ
    @given(bodies(), st.sampled_from(PATHS), st.sampled_from(["none", "signed", "garbage"]))
    def one(body: bytes, path: str, how: str) -> None:
        counted("http")
        headers = {"content-type": MSGPACK}
        if how == "signed":
            headers.update(signed_headers(key, "T01V01", "T01", path, body))
        elif how == "garbage":
            headers.update(
                {
                    "x-sanji-node": "T01V01",
                    "x-sanji-key": key.key_id,
                    "x-sanji-signature": "AAAA",
                    "x-sanji-to": "T01",
                    "x-sanji-counter": "1",
                }
            )
        answer = client.post(path, content=body, headers=headers)  # type: ignore[attr-defined]
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        assert answer.status_code < 500, (path, how, answer.status_code, answer.text[:300])

    one()
    print(f"sync fuzz: {COUNTS} statuses {sorted(statuses.items())}")

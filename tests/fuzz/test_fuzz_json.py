"""Fuzzing every JSON decoder of the API: any bytes, any nesting, any numbers, any text — never a 5xx.

In process (Litestar's TestClient over a real SQLite node), so thousands of inputs fit in a test:
hypothesis draws structured JSON (deep, wide, huge integers, every code point), raw bytes, and
mutations of valid forms (bytes flipped, cut, repeated, wrapped in nesting), each sent to every
endpoint that reads JSON with a random media type. ``SANJI_JSON_FUZZ_EXAMPLES`` per strategy
(default 150). The count of inputs sent is printed (``-s``) for the record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from village_agent.app import create_app

EXAMPLES = int(os.environ.get("SANJI_JSON_FUZZ_EXAMPLES", "150"))
GOOD = {"matter": "MZ-001", "applicant_name": "张秀英", "actor": "代办员 李建国", "materials": ["身份证"]}
ACTION = {"kind": "note", "actor": "代办员", "text": "已电话联系"}
PRECHECK = {"matter": "MZ-001", "materials": ["身份证"], "by_proxy": True}
MEDIA = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])
SENT: list[int] = []


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:  # type: ignore[type-arg]
    cluster = Cluster.prepare(tmp_path_factory.mktemp("json-fuzz") / "c", towns=1, villages_per_town=1, open_demo=True)
    with TestClient(create_app(load_settings(cluster.nodes["T01V01"].config)), raise_server_exceptions=False) as c:
        errand = c.post("/api/errands", json=GOOD).json()["errand"]
        yield c, errand
    print(f"\nJSON fuzz: {len(SENT)} inputs sent, statuses {sorted(set(SENT))}")


def send(client: tuple[TestClient, str], body: bytes, media: str) -> None:  # type: ignore[type-arg]
    c, errand = client
    for path in ("/api/errands", f"/api/errands/{errand}/actions", "/api/precheck"):
        r = c.post(path, content=body, headers={"content-type": media} if media else {})
        SENT.append(r.status_code)
        assert r.status_code < 500, (path, body[:200], r.status_code, r.text[:300])
        assert set(r.json()) >= {"error", "message", "hint", "retryable"} or r.status_code < 300


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=40,
)
FIELDS = sorted({*GOOD, *ACTION, *PRECHECK, "size", "expected_version", "days", "in_person", "items"})
forms = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)


def nest(depth: int, inner: bytes, *, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + inner + closer * depth


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    body = json.dumps(draw(st.sampled_from([GOOD, ACTION, PRECHECK])), ensure_ascii=draw(st.booleans())).encode()
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "repeat", "nest", "insert"]))
        at = draw(st.integers(0, max(0, len(body) - 1)))
        if how == "flip" and body:
            body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
        elif how == "cut":
            body = body[:at]
        elif how == "repeat":
            body = body[:at] + body[at:] * draw(st.integers(2, 50))
        elif how == "nest":
            body = nest(
                draw(st.integers(1, 3000)),
                body,
                opener=b'{"a":' if draw(st.booleans()) else b"[",
                closer=b"}" if body.startswith(b"{") else b"]",
            )
        else:
            body = body[:at] + draw(st.binary(max_size=40)) + body[at:]
    return body


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(value=forms, media=MEDIA)
def test_structured_json(client: tuple[TestClient, str], value: dict[str, object], media: str) -> None:  # type: ignore[type-arg]
    send(client, json.dumps(value, allow_nan=True).encode(), media)


@SETTINGS
@given(body=st.binary(max_size=2000), media=MEDIA)
def test_raw_bytes(client: tuple[TestClient, str], body: bytes, media: str) -> None:  # type: ignore[type-arg]
    send(client, body, media)


@SETTINGS
@given(body=mutated())
def test_mutated_forms(client: tuple[TestClient, str], body: bytes) -> None:  # type: ignore[type-arg]
    send(client, body, "application/json")


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
@pytest.mark.parametrize("shape", [(b"[", b"]"), (b'{"a":', b"}"), (b'{"matter":[', b"]}")])
def test_deep_nesting(client: tuple[TestClient, str], depth: int, shape: tuple[bytes, bytes]) -> None:  # type: ignore[type-arg]
    send(client, nest(depth, b"1", opener=shape[0], closer=shape[1]), "application/json")

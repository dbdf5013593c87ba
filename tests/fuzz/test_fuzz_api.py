"""Property-based calls (schemathesis) against every operation of a live village node: never a 5xx.

A real node process (``sanji village serve``, its own config, key, directory and SQLite file)
is started with ``sanji.demo.cluster.Cluster`` on a free loopback port; its parent is not
running, which is how a village usually is (it works offline). The OpenAPI schema is read
from the node itself (``/schema/openapi.json``); every operation gets schema-conforming
(positive) and schema-violating (negative) requests. A 4xx is a fine answer to a bad request;
a 5xx, a dropped connection or a hang is a bug. Operations with an ``{errand_id}`` or
``{receipt}`` are also called on a real errand, so the handlers behind the 404 are reached.

Bounded: ``SANJI_API_FUZZ_EXAMPLES`` cases per operation and mode (default 12), about 30 s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from sanji.demo.cluster import Cluster
from sanji.web.openapi_dump import schema as built_schema
from tests.schema import st_hooks  # noqa: F401  (registers the msgpack serializer the sync endpoints need)

EXAMPLES = int(os.environ.get("SANJI_API_FUZZ_EXAMPLES", "12"))
REQUEST_TIMEOUT = 10.0
VILLAGE = "T01V01"

pytestmark = pytest.mark.processes


def operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation, from the village's own schema (collected without a server)."""
    paths: dict[str, dict[str, Any]] = built_schema("village")["paths"]  # type: ignore[assignment]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


@dataclass
class LiveNode:
    url: str
    log: Path
    schema: Any
    errand: str
    receipt: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    cluster = Cluster.prepare(tmp_path_factory.mktemp("api-fuzz") / "c", towns=1, villages_per_town=1, open_demo=True)
    node = cluster.nodes[VILLAGE]
    cluster.start(VILLAGE)
    try:
        created = httpx.post(
            node.url + "/api/errands",
            json={"matter": "MZ-001", "applicant_name": "张秀英", "actor": "代办员 李建国", "materials": ["身份证"]},
            timeout=REQUEST_TIMEOUT,
        )
        assert created.status_code == 201, created.text
        errand = created.json()["errand"]
        receipt = httpx.get(f"{node.url}/api/errands/{errand}", timeout=REQUEST_TIMEOUT).json()["receipt"]
        schema = schemathesis.openapi.from_url(node.url + "/schema/openapi.json", timeout=REQUEST_TIMEOUT)
        yield LiveNode(url=node.url, log=node.log, schema=schema, errand=errand, receipt=receipt)
    finally:
        cluster.stop()


def fixed_path(live: LiveNode, path: str) -> dict[str, str]:
    fixed = {}
    if "{errand_id}" in path:
        fixed["errand_id"] = live.errand
    if "{receipt}" in path:
        fixed["receipt"] = live.receipt
    return fixed


def log_tail(log: Path, size: int = 2500) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-size:]
    except OSError:
        return ""


@pytest.mark.parametrize(("method", "path"), operations(), ids=lambda v: str(v))
def test_no_request_makes_the_node_fail(live: LiveNode, method: str, path: str) -> None:
    operation = live.schema[path][method]
    failures: list[str] = []
    variants: list[tuple[GenerationMode, dict[str, str]]] = [
        (GenerationMode.POSITIVE, {}),
        (GenerationMode.NEGATIVE, {}),
    ]
    if fixed := fixed_path(live, path):
        variants += [(GenerationMode.POSITIVE, fixed), (GenerationMode.NEGATIVE, fixed)]
    started = time.monotonic()
    sent: list[int] = []
    for mode, path_parameters in variants:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: every failure is recorded as found
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None))
        def call(case: Any) -> None:
            try:
                response = case.call(base_url=live.url, timeout=REQUEST_TIMEOUT)
            except Exception as exc:  # a dropped connection or a timeout is a failure too
                failures.append(f"{type(exc).__name__}: {exc}\n  {case.as_curl_command(base_url=live.url)}")
                return
            sent.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{response.status_code} {response.text[:300]}\n  {case.as_curl_command(base_url=live.url)}"
                )

        try:
            call()
        except Unsatisfiable:
            if mode is not GenerationMode.NEGATIVE:
                raise  # an operation without parameters has no invalid request to make: nothing to do
    assert time.monotonic() - started < 120, "the run is meant to stay bounded"
    assert sent or failures, "no request was made"
    assert not failures, (
        f"{len(failures)} request(s) to {method} {path} got a 5xx or no answer:\n"
        + "\n".join(failures[:5])
        + f"\n--- node log tail ---\n{log_tail(live.log)}"
    )


def test_an_offset_beyond_64_bits_is_refused_not_a_server_error(live: LiveNode) -> None:
    response = httpx.get(live.url + "/api/errands", params={"offset": str(2**63)}, timeout=REQUEST_TIMEOUT)
    assert response.status_code < 500, response.text

"""The errand page of an errand bound to an entry that differs from the county's catalogue: a warning, Chinese
first, and no step judged by the entry offered; the step posted anyway is a 409 naming ``binding_mismatch``; the
电子监察 screen lists the errand."""

from __future__ import annotations

import re

import msgspec
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import MZ003_ALL, register

from sanji.context import NodeContext

Client = TestClient[Litestar]


def test_a_tampered_binding_is_said_on_the_errand_page_and_its_accept_refused(village: Client) -> None:
    context: NodeContext = village.app.state.runtime.get_context()
    signed = context.catalogue
    assert signed is not None
    entry = signed.get("MZ-003")
    assert entry is not None
    genuine = register(village)
    # The village's software, changed for one registration: it binds to a lenient entry under the same version.
    lenient = msgspec.structs.replace(entry, materials=(), committed_limit=entry.committed_limit + 30)
    context.catalogue = msgspec.structs.replace(
        signed, matters=tuple(lenient if m.code == "MZ-003" else m for m in signed.matters)
    )
    try:
        tampered = register(village, materials=MZ003_ALL)
    finally:
        context.catalogue = signed

    page = village.get(f"/errands/{tampered}").text
    warning = re.search(r'<div class="error" role="alert" id="binding-mismatch"[^>]*>(.*?)</div>', page, re.S)
    assert warning is not None
    text = warning.group(1)
    assert f"登记所附事项条目（MZ-003）与县级目录第{signed.version}版不一致" in text and "可能被篡改" in text
    assert text.index("登记所附事项条目") < text.index("differs from the county")
    assert "materials" in text and "committed_limit" in text
    steps = set(re.findall(r'name="kind" value="([a-z_]+)"', page))
    assert "accept" not in steps and "not_accept" in steps

    r = village.post(
        f"/errands/{tampered}/act",
        data={"kind": "accept", "actor": "李建国", "role": "代办员"},
        follow_redirects=False,
    )
    assert r.status_code == 409 and 'data-refusal="binding_mismatch"' in r.text
    assert village.get(f"/api/errands/{tampered}").json()["version"] == 1  # nothing written
    api = village.post(f"/api/errands/{tampered}/actions", json={"kind": "accept", "actor": "李建国"})
    assert api.status_code == 409, api.text
    assert api.json()["error_code"] == "binding_mismatch" and api.json()["message_zh"].startswith("登记所附事项条目")

    page = village.get(f"/errands/{genuine}").text
    assert 'id="binding-mismatch"' not in page
    assert "accept" in set(re.findall(r'name="kind" value="([a-z_]+)"', page))

    supervision = village.get("/supervision").text
    listed = re.search(r'<div class="error" role="alert" id="binding-mismatches"[^>]*>(.*?)</div>', supervision, re.S)
    assert listed is not None and f'data-errand="{tampered}"' in listed.group(1)
    assert f'data-errand="{genuine}"' not in listed.group(1)

    # the home page's worklist marks it (and not the genuine one) rather than offering it as plain work waiting
    home = village.get("/").text
    worklist = home[home.index("待办") : home.index("全部办件")]
    rows = {m.group(2): m.group(1) for m in re.finditer(r'<tr([^>]*)><td[^>]*><a href="/errands/([^"]+)"', worklist)}
    assert 'data-refusal="binding_mismatch"' in rows[tampered] and "勿受理" in home
    assert "binding_mismatch" not in rows[genuine]

"""The five supervision stages (受理 承办 审核 批准 办结) on the errand page: a step that would leave stages behind
unreached says so on its form before it is taken (not refused), in the words supervision uses later; after the
decision (办结 decided) the page marks the skipped stages and shows 办结 as reached by the decision.

Before, the county's 办结 form took an errand whose 承办 and 审核 were never done with no word, and supervision
then flagged it and the approver lost points (protocol.errand.skipped_steps is the one place both ask)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from litestar.testing import TestClient

from protocol.errand import skipped_steps
from sanji.forms import ActionForm
from sanji.tiers import create_app
from tests.web.test_department_inbox import MINZHENG, T01, C, open_county


def test_the_decide_form_warns_of_skipped_stages_and_the_page_marks_them(tmp_path: Path) -> None:
    async def received() -> tuple[str, object]:
        county = await open_county(tmp_path)
        try:
            errand = await county.escalate(T01, "MZ-001", MINZHENG, "张秀英")
            await county.service(C).act(errand, ActionForm(kind="receive", actor="赵敏", role="审批员"))
            return errand, county.settings[C]
        finally:
            await county.close()

    errand, settings = asyncio.run(received())
    with TestClient(create_app(settings)) as client:  # type: ignore[arg-type]
        page = client.get(f"/errands/{errand}").text
        warning = re.search(r'<p class="warn" role="note" id="skipped-decide" data-skipped="([^"]*)">(.*?)</p>', page)
        assert warning is not None, "the decide form says which stages it leaves behind"
        assert warning.group(1) == "承办,审核" and "尚未办理“承办、审核”环节" in warning.group(2)
        assert "电子监察将记为环节缺失" in warning.group(2)
        # the points are the errand's handler's (protocol.assessment), not those of whoever fills in the form
        assert "扣该件承办人的分" in warning.group(2) and "经办人本季度" not in warning.group(2)

        version = int(re.search(r'name="expected_version" value="(\d+)"', page).group(1))  # type: ignore[union-attr]
        once = re.search(r'name="_once" value="([^"]*)"', page).group(1)  # type: ignore[union-attr]
        r = client.post(
            f"/errands/{errand}/act",
            data={
                "_once": once,
                "kind": "decide",
                "expected_version": str(version),
                "actor": "赵敏",
                "role": "审批员",
                "outcome": "approved",
                "document": "民〔2026〕1号",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text[:2000]  # warned, not refused
        page = client.get(f"/errands/{errand}").text
        marks = {stage: cls for cls, stage in re.findall(r'<span class="([a-z]*)" data-stage="([^"]+)"', page)}
        assert marks == {"受理": "done", "承办": "missed", "审核": "missed", "批准": "done", "办结": "decided"}
        assert 'id="skipped-decide"' not in page


def test_one_rule_for_the_warning_and_the_flag() -> None:
    assert skipped_steps(("受理", "批准", "办结")) == ("承办", "审核")  # what supervision flags once answered
    assert skipped_steps(("受理",), before="批准") == ("承办", "审核")  # what the decide form warns of
    assert skipped_steps(("受理", "承办", "审核"), before="批准") == ()
    assert skipped_steps((), before="受理") == ()

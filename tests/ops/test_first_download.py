"""bench.first_download: a brand-new village laptop, syncing with a real township process, ends holding exactly
its village's errands; what it downloads grows with them and not with other villages' errands."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.first_download import Plan, run, villages_of

pytestmark = pytest.mark.processes


def test_the_plan_puts_each_size_in_a_village_of_its_own() -> None:
    plan = villages_of(Plan(sizes=(2, 6, 18), others=5, others_few=11))
    assert plan["T01"] == {"T01V01": 0, "T01V02": 2, "T01V03": 6, "T01V04": 18, "T01V05": 3, "T01V06": 2}
    assert plan["T02"]["T02V01"] == 0 and plan["T02"]["T02V02"] == 6
    assert sum(plan["T02"].values()) == 6 + 11 and len(plan["T02"]) == len(plan["T01"])


async def test_a_new_laptop_downloads_its_village_and_nothing_else(tmp_path: Path) -> None:
    result = await run(Plan(sizes=(1, 4), others=4, others_few=1, long_streams=(300,)), seed=3, workdir=tmp_path)
    verdict = result["verdict"]
    assert verdict["every_laptop_holds_exactly_its_village"]
    assert verdict["no_other_village_errand_downloaded"]
    small, large = result["sizes"]
    for sample, n in ((small, 1), (large, 4), (result["fewer_others"], 4)):
        assert sample["errands_held"] == sample["errands_expected"] == n
        assert sample["digests_differ"] == 0 and sample["other_scopes_actions_held"] == 0
        assert sample["actions_held"] == sample["township"]["actions"]
        # It downloads its own batches (no fewer bytes) and little else beside them.
        frames = sample["township"]["frame_bytes"]
        assert frames <= sample["bytes_down"] <= 1.2 * frames + 2_000
    for sample in (small, large):  # while its township holds far more
        assert sample["township"]["township_frame_bytes"] > 1.5 * sample["township"]["frame_bytes"]
    assert large["bytes_down"] > 2 * small["bytes_down"]
    # The same size beside many others' errands (T01) and few (T02) costs the same per byte of its own batches.
    assert large["township"]["township_errands"] > 1.5 * result["fewer_others"]["township"]["township_errands"]
    assert verdict["others_do_not_count"], verdict["others_bytes_ratio"]
    empty = result["empty_village"]["T01"]
    assert empty["errands_held"] == 0 and empty["holds_exactly_its_errands"]
    assert {f["figure"] for f in result["figures"]} >= {"bytes_down_per_errand_4", "other_villages_errands_held"}
    assert result["parent_paging"] == [{**result["parent_paging"][0], "batches": 300, "pages": 3}]

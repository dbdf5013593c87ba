"""``sanji calendar``: check, publish (county only), show and due, on real config files and stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sanji.cli.main import main
from sanji.demo.cluster import Cluster

NOTICE_2027 = """
county = "示范县"
version = {version}
published_at = "2026-11-20"

[year.2027]
source = "测试用：虚构的2027年安排 (made up for the test)"
holidays = [2027-01-01, 2027-01-02, 2027-01-03, 2027-01-04,
            2027-02-05, 2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11,
            2027-04-05, 2027-05-01, 2027-05-02, 2027-05-03, 2027-05-04, 2027-05-05,
            2027-06-09, 2027-09-15, 2027-10-01, 2027-10-02, 2027-10-03, 2027-10-04, 2027-10-05, 2027-10-06, 2027-10-07]
workdays = [2027-01-09, 2027-02-20, 2027-10-09]
"""


def write(tmp_path: Path, text: str, name: str = "calendar.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_check_accepts_a_notice_and_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "calendar", "check", str(write(tmp_path, NOTICE_2027.format(version=1))))
    assert code == 0 and "v1" in out and "no problems" in out
    bad = NOTICE_2027.format(version=1).replace("2027-01-01, ", "").replace("2027-10-09", "2027-10-08")
    code, out = run(capsys, "calendar", "check", str(write(tmp_path, bad)))
    assert code == 2
    assert "2027-01-01 (元旦) is a statutory holiday" in out and "2027-10-08 is a Friday" in out


def test_due_without_a_county_calendar_is_provisional(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "calendar", "due", "--from", "2026-12-21", "--working-days", "10", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["due"] == "2027-01-05" and answer["provisional"] is True and answer["calendar_version"] == 0
    assert answer["weekday_holidays_skipped"] == ["2027-01-01"]
    code, out = run(capsys, "calendar", "due", "--from", "2026-12-01", "--working-days", "5", "--json")
    assert json.loads(out)["provisional"] is False
    code, out = run(capsys, "calendar", "due", "--from", "2026-12-21", "--working-days", "10")
    assert "2027-01-05" in out and "暂定" in out
    for bad in (["--from", "2026-13-01", "--working-days", "3"], ["--from", "2026-12-01", "--working-days", "-1"]):
        code, out = run(capsys, "calendar", "due", *bad)
        assert code == 2 and out.startswith("error:")


def test_show_marks_a_provisional_year(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "calendar", "show", "2027")
    assert code == 0 and "暂定 PROVISIONAL" in out and "no adjusted working days" in out
    assert "2027-01-01 五 休 元旦" in out and "2027-02-09 二 休 春节补假" in out
    code, out = run(capsys, "calendar", "show", "2026")
    assert code == 0 and "official" in out and "2026-02-14 六 班" in out


def test_publish_at_the_county_then_show_and_due_read_it(
    tmp_path: Path, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    county, town = str(cluster.nodes["C"].config), str(cluster.nodes["T01"].config)
    notice = write(tmp_path, NOTICE_2027.format(version=1))
    code, out = run(capsys, "calendar", "publish", "--config", town, str(notice))
    assert code == 2 and "only the county hub" in out
    code, out = run(capsys, "calendar", "publish", "--config", county, str(notice))
    assert code == 0 and "published" in out, out
    code, out = run(capsys, "calendar", "publish", "--config", county, str(notice))
    assert code == 2 and "higher version" in out
    without = write(tmp_path, NOTICE_2027.format(version=2).split("[year.2027]")[0] + "[year.2026]\nholidays = []\n")
    code, out = run(capsys, "calendar", "publish", "--config", county, str(without))
    assert code == 2  # 2026 without its statutory days, and 2027 dropped: refused either way
    code, out = run(capsys, "calendar", "show", "2027", "--config", county)
    assert code == 0 and "official (county calendar v1" in out and "2027-01-09 六 班" in out
    code, out = run(
        capsys, "calendar", "due", "--from", "2026-12-21", "--working-days", "10", "--json", "--config", county
    )
    answer = json.loads(out)
    assert answer == {**answer, "due": "2027-01-06", "provisional": False, "calendar_version": 1}
    code, out = run(
        capsys, "calendar", "due", "--from", "2026-12-21", "--working-days", "10", "--json", "--config", town
    )
    assert json.loads(out)["calendar_version"] == 0  # the town has not synced yet

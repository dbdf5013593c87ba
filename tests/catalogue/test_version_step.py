"""How far above the version held a county may publish, on every path that publishes.

The bound (``protocol.bounds.check_version_step``: at most ``MAX_VERSION_STEP`` above the version held)
is asked where every publication passes — ``NodeContext.publish``, ``publish_calendar``,
``publish_rules`` — so the catalogue file the county loads at start and the command line are held to
it as the desk's pages are (``tests/auth/test_admin_*_screen.py``, ``tests/office/test_business_http.py``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from protocol.bounds import MAX_VERSION_STEP, check_version_step
from protocol.errors import SanjiError, VersionTooFar
from sanji.catalogue import default_catalogue_path
from sanji.cli.common import node_store
from sanji.cli.main import main
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.tiers import create_app
from tests.cli.test_calendar_cli import NOTICE_2027
from tests.serve_kit import serve_refused

TEXT = default_catalogue_path().read_text(encoding="utf-8")
assert "version = 1\n" in TEXT


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True)


def held_versions(config: Path) -> tuple[int, int, int]:
    """(catalogue, calendar, rules) as the node's store holds them."""

    async def read() -> tuple[int, int, int]:
        async with node_store(load_settings(config)) as (_, context):
            return context.catalogue_version, context.calendar_version, context.rules_version

    return asyncio.run(read())


def with_catalogue(config: Path, version: int) -> Path:
    """The county's config naming a catalogue file of ``version`` (``[node] catalogue``)."""
    path = config.parent / "catalogue.toml"
    path.write_text(TEXT.replace("version = 1\n", f"version = {version}\n", 1), encoding="utf-8")
    text = config.read_text(encoding="utf-8")
    if "catalogue =" not in text:
        config.write_text(text.replace("[node]\n", '[node]\ncatalogue = "catalogue.toml"\n', 1), encoding="utf-8")
    return path


def test_the_bound_is_a_typed_refusal() -> None:
    check_version_step(0, MAX_VERSION_STEP)  # from nothing held, up to the step itself
    check_version_step(7, 3)  # not newer: not this rule's to refuse (the document is simply not kept)
    with pytest.raises(VersionTooFar) as caught:
        check_version_step(5, 5 + MAX_VERSION_STEP + 1)
    refusal = caught.value
    assert isinstance(refusal, SanjiError) and refusal.code == refusal.error_code == "version_too_far"
    assert "1,000,000" in refusal.message and "use 6" in refusal.message and refusal.hint == "Publish version 6."
    body = refusal.as_dict()
    assert body["error"] == body["error_code"] == "version_too_far"
    assert body["params"] == {"held": 5, "version": 5 + MAX_VERSION_STEP + 1}


def test_the_start_up_catalogue_file_far_above_the_one_held_is_refused(cluster: Cluster) -> None:
    config = cluster.nodes["C"].config
    with TestClient(create_app(load_settings(config))):
        pass  # the first start publishes the shipped catalogue, version 1
    assert held_versions(config)[0] == 1
    path = with_catalogue(config, 2 + MAX_VERSION_STEP)
    app = create_app(load_settings(config))
    with pytest.raises(BaseExceptionGroup) as group, TestClient(app):  # the lifespan's error, in the test's task group
        pass
    assert group.value.subgroup(VersionTooFar) is not None
    refused = app.state.runtime.refused  # what ``sanji county serve`` says alone (below)
    assert isinstance(refused, VersionTooFar)
    assert str(path) in refused.message and "1,000,000" in refused.message
    assert (refused.held, refused.version) == (1, 2 + MAX_VERSION_STEP)
    assert held_versions(config)[0] == 1  # nothing signed
    with_catalogue(config, 1 + MAX_VERSION_STEP)  # the largest step allowed
    with TestClient(create_app(load_settings(config))):
        pass
    assert held_versions(config)[0] == 1 + MAX_VERSION_STEP


def test_sanji_serve_says_the_refusal_and_exits_non_zero(cluster: Cluster) -> None:
    config = cluster.nodes["C"].config
    path = with_catalogue(config, 1 + MAX_VERSION_STEP + 5)  # above nothing held (0) by more than the step
    last = serve_refused(config)
    said = last[-2]  # Chinese first (VersionTooFar.message_zh), then the English naming the file
    assert said.startswith("error: 版本号") and f" [node] catalogue {path}: " in said and "1,000,000" in said, last[-5:]
    assert last[-1] == "hint: 请以第1版的版本号发布 Publish version 1."
    assert held_versions(config)[0] == 0


def test_the_calendar_cli_refuses_a_version_far_above(
    tmp_path: Path, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    county = str(cluster.nodes["C"].config)
    notice = tmp_path / "calendar.toml"
    notice.write_text(NOTICE_2027.format(version=MAX_VERSION_STEP + 1), encoding="utf-8")
    assert main(["calendar", "publish", "--config", county, str(notice)]) == 2
    out = capsys.readouterr().out
    assert "error: " in out and "1,000,000" in out and "hint: 请以第1版的版本号发布 Publish version 1." in out
    assert held_versions(cluster.nodes["C"].config)[1] == 0
    notice.write_text(NOTICE_2027.format(version=MAX_VERSION_STEP), encoding="utf-8")
    assert main(["calendar", "publish", "--config", county, str(notice)]) == 0
    assert held_versions(cluster.nodes["C"].config)[1] == MAX_VERSION_STEP


def test_the_rules_cli_refuses_a_version_far_above(
    tmp_path: Path, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    county = str(cluster.nodes["C"].config)
    assert main(["rules", "show", "--config", county, "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert rules["version"] == 1  # the seed defaults the county signed
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({**rules, "version": 2 + MAX_VERSION_STEP}), encoding="utf-8")
    assert main(["rules", "publish", "--config", county, str(path)]) == 2
    err = capsys.readouterr().err
    assert "error: 版本号" in err and "1,000,000" in err and "hint: 请以第2版的版本号发布 Publish version 2." in err
    assert held_versions(cluster.nodes["C"].config)[2] == 1
    path.write_text(json.dumps({**rules, "version": 1 + MAX_VERSION_STEP}), encoding="utf-8")
    assert main(["rules", "publish", "--config", county, str(path)]) == 0
    assert held_versions(cluster.nodes["C"].config)[2] == 1 + MAX_VERSION_STEP


def test_every_publisher_of_the_context_asks_the_bound(cluster: Cluster) -> None:
    """The publishers themselves refuse, whoever calls them: nothing is signed or kept."""
    from protocol.assessment import default_rules
    from sanji.catalogue import load_catalogue
    from sanji.workcalendar import checked_calendar

    config = cluster.nodes["C"].config
    notice = config.parent / "calendar.toml"
    notice.write_text(NOTICE_2027.format(version=MAX_VERSION_STEP + 1), encoding="utf-8")
    far = msgspec.structs.replace(load_catalogue(default_catalogue_path()), version=MAX_VERSION_STEP + 1)

    async def publish_all() -> list[str]:
        refused = []
        async with node_store(load_settings(config)) as (_, context):
            for publish in (
                lambda: context.publish(far),
                lambda: context.publish_calendar(checked_calendar(notice)),
                lambda: context.publish_rules(default_rules("C", version=MAX_VERSION_STEP + 2)),
            ):
                try:
                    await publish()
                except VersionTooFar as exc:
                    refused.append(exc.message)
        return refused

    refused = asyncio.run(publish_all())
    assert len(refused) == 3 and all("1,000,000" in r for r in refused)
    assert held_versions(config) == (0, 0, 1)

"""Finding a matter by code, name, pinyin or initials (issue 13): what is found, in what order, and odd input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.catalogue import Catalogue
from sanji.catalogue import default_catalogue
from sanji.catalogue import search as search_module
from sanji.catalogue.search import MAX_INDEXED, MAX_QUERY, MAX_READINGS, index, normalise, search

CATALOGUE = default_catalogue()


def _codes(query: str, catalogue: Catalogue = CATALOGUE) -> list[str]:
    return [hit.matter.code for hit in search(catalogue, query)]


def _renamed(*names: str, version: int = 900) -> Catalogue:
    """A catalogue whose first matters carry ``names`` (codes X-1, X-2, ...)."""
    base = CATALOGUE.matters[0]
    matters = tuple(msgspec.structs.replace(base, code=f"X-{i}", name=n) for i, n in enumerate(names, 1))
    return msgspec.structs.replace(CATALOGUE, version=version, matters=matters)


@pytest.mark.parametrize("query", ["dbs", "db", "DB", "ｄｂ", "zdsh", "zdshbz", "dbsq"])
def test_initials_find_dibao(query: str) -> None:
    hits = search(CATALOGUE, query)
    assert hits[0].matter.code == "MZ-001"
    assert hits[0].match == "initials"


@pytest.mark.parametrize("query", ["dibao", "di bao", "dib", "dbao", "zuidishenghuo", "zuidi", "di'bao"])
def test_full_and_mixed_pinyin_find_dibao(query: str) -> None:
    assert _codes(query)[0] == "MZ-001"


def test_the_bracketed_short_name_is_a_name() -> None:
    hit = search(CATALOGUE, "低保")[0]
    assert (hit.matter.code, hit.match) == ("MZ-001", "name")
    assert _codes("五保") == ["MZ-002"]
    assert _codes("wb")[0] == "MZ-002"  # 五保供养申请 from its short name
    assert _codes("gljt")[0] == "MZ-005"  # 高龄津贴


def test_codes_exact_in_any_spelling_and_prefix() -> None:
    for query in ("MZ-001", "mz-001", "mz001", " MZ 001 "):
        hit = search(CATALOGUE, query)[0]
        assert (hit.matter.code, hit.match) == ("MZ-001", "code")
    assert set(_codes("rs-00")) >= {"RS-001", "RS-002", "RS-007"}
    assert search(CATALOGUE, "rs-00")[0].match == "code_prefix"


def test_heteronyms_match_by_any_reading() -> None:
    # 重度 is zhongdu; chongdu (the other reading of 重) finds it too; 调解 as tiaojie and diaojie
    assert "CL-002" in _codes("zhongdu") and "CL-002" in _codes("chongdu")
    assert "XF-002" in _codes("tiaojie") and "XF-002" in _codes("diaojie")
    small = _renamed("长期护理", "行政复议", "银行开户")
    assert _codes("cqhl", small) == ["X-1"] and _codes("zqhl", small) == ["X-1"]
    assert _codes("changqi", small) == _codes("zhangqi", small) == ["X-1"]
    assert _codes("yhkh", small) == ["X-3"] and _codes("xzfy", small) == ["X-2"]
    assert "X-3" in _codes("yinhang", small) and "X-2" in _codes("hangzheng", small)


def test_ranking_exact_code_then_name_then_initials_then_contained_then_pinyin() -> None:
    small = _renamed("养老补贴", "补贴养老", "老人", "老年养护", version=901)
    hits = search(small, "老")
    assert [h.match for h in hits] == ["contains"] * 4
    assert [h.matter.code for h in hits] == ["X-3", "X-4", "X-1", "X-2"]  # earlier in the name first
    assert [(h.matter.code, h.match) for h in search(small, "老人")] == [("X-3", "name")]
    ranked = search(small, "yl")
    assert [(h.matter.code, h.match) for h in ranked] == [("X-1", "initials"), ("X-2", "pinyin_inside")]
    assert search(small, "x-1")[0].match == "code"
    assert [h.match for h in search(CATALOGUE, "db")] == ["initials", "initials"]  # 低保, 大病


def test_english_names_are_found_last() -> None:
    hits = search(CATALOGUE, "pension")
    assert hits and {h.match for h in hits} == {"english"}
    assert {h.matter.code for h in hits} >= {"RS-002"}


@pytest.mark.parametrize(
    "query",
    ["", " ", "'", "%", "\x00", "\ud800", "<script>", "a" * 10_000, "的" * 500, "'; DROP TABLE x;--", "🙂", "\u202e"],
)
def test_odd_input_finds_nothing_or_something_without_error(query: str) -> None:
    hits = search(CATALOGUE, query)
    assert isinstance(hits, list)
    assert len(normalise(query)) <= MAX_QUERY


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_a_query(query: str) -> None:
    hits = search(CATALOGUE, query, limit=5)
    assert len(hits) <= 5
    assert all(h.matter in CATALOGUE.matters for h in hits)


def test_no_catalogue_and_limits() -> None:
    assert search(None, "db") == []
    assert len(search(CATALOGUE, "s", limit=3)) == 3
    assert search(CATALOGUE, "s", limit=0) == []


def test_the_index_is_built_once_per_catalogue_version() -> None:
    first = index(CATALOGUE)
    assert index(CATALOGUE) is first
    assert index(msgspec.structs.replace(CATALOGUE)) is first  # an equal copy of the same version
    changed = _renamed("临时救助", version=CATALOGUE.version)
    assert index(changed) is not first and _codes("lsjz", changed) == ["X-1"]
    for v in range(MAX_INDEXED + 2):
        index(_renamed("残疾人证", version=1000 + v))
    assert index(CATALOGUE).catalogue == CATALOGUE


class _Counted(Sequence[tuple[str, ...]]):
    """A name's readings that count each look (one per step of the pinyin walk that is not memoised)."""

    def __init__(self, readings: Sequence[tuple[str, ...]], steps: list[int]) -> None:
        self.readings = readings
        self.steps = steps

    def __len__(self) -> int:
        return len(self.readings)

    @overload
    def __getitem__(self, i: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[str, ...]]: ...
    def __getitem__(self, i: int | slice) -> Any:
        self.steps[0] += 1
        return self.readings[i]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("query", ["a" * 200, "zhong" * 8, "zhongchangtiaoxingdiaozhangchongtiaohangz", "zcztxh" * 7])
def test_an_adversarial_query_against_2000_matters_does_bounded_work(
    query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 generated names of heteronyms (重长调行 and 啊): one rank per matter, a pinyin walk of at most
    (characters + 1) x (letters + 1) steps per name variant, and nothing ranked when the query is asked again."""
    base = CATALOGUE.matters[0]
    chars = "重长调行啊阿"
    matters = tuple(
        msgspec.structs.replace(
            base, code=f"Q-{i:04d}", name="".join(chars[(i + k * k) % len(chars)] for k in range(30)) + f"({i})"
        )
        for i in range(2000)
    )
    catalogue = msgspec.structs.replace(CATALOGUE, version=7000 + len(query), matters=matters)
    index(catalogue)  # built once per version, as a node does at its first search

    ranks: list[int] = [0]
    walks: list[tuple[int, int, int]] = []  # (characters, letters, steps) of each pinyin walk
    real_rank, real_walk = search_module._rank, search_module._pinyin_at

    def rank(*args: Any) -> Any:
        ranks[0] += 1
        return real_rank(*args)

    def walk(readings: Sequence[tuple[str, ...]], letters: str) -> int | None:
        steps = [0]
        found = real_walk(_Counted(readings, steps), letters)
        walks.append((len(readings), len(letters), steps[0]))
        return found

    monkeypatch.setattr(search_module, "_rank", rank)
    monkeypatch.setattr(search_module, "_pinyin_at", walk)
    search(catalogue, query)
    assert ranks[0] == 2000  # each matter ranked once
    assert walks and all(steps <= (n + 1) * (m + 1) for n, m, steps in walks), max(walks, key=lambda w: w[2])
    assert all(m <= MAX_QUERY for _, m, _ in walks) and MAX_READINGS <= 4
    assert len(walks) <= 2000 * 4  # at most a walk per name variant (the name, and bracket forms)
    ranks[0], walks[:] = 0, []
    search(catalogue, query.upper())  # the same normalised query: from the cache
    assert ranks[0] == 0 and walks == []

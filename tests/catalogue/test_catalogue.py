"""The matter catalogue: its checks, its signed envelope, its file formats and the village pre-check."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import openpyxl
import pytest

from protocol.catalogue import (
    MAGIC,
    MAX_CATALOGUE_BYTES,
    Catalogue,
    CatalogueError,
    Material,
    Matter,
    catalogue_digest,
    open_catalogue,
    precheck,
    publisher_keys,
    sign_catalogue,
    validate_catalogue,
)
from protocol.encoding import encode
from protocol.errors import FrameError, FrameTooLarge, SanjiError, SignatureError, UnsupportedFormat
from protocol.signing import KeyRecord, SigningKey
from protocol.topology import Directory, NodeEntry
from sanji.catalogue import default_catalogue, default_catalogue_path, load_catalogue, load_json, load_xlsx
from sanji.cli import catalogue_cmd
from sanji.demo.population import MATTERS as CORPUS_MATTERS
from sanji.keys import write_key
from tests.catalogue import hostile_xlsx

# ------------------------------------------------------------------------------------------------ helpers


def _seed_key(name: str) -> SigningKey:
    import hashlib

    return SigningKey.from_private_bytes(hashlib.sha256(f"sanji catalogue test {name}".encode()).digest())


COUNTY_KEY = _seed_key("county")
OTHER_KEY = _seed_key("other")


def _keys(*keys: SigningKey, node: str = "C") -> dict[str, KeyRecord]:
    return {k.key_id: k.record(node) for k in keys}


def _matter(**changes: Any) -> Matter:
    base = Matter(
        code="T-001",
        name="测试事项",
        name_en="Test matter",
        category="给付",
        legal_basis="《社会救助暂行办法》",
        accept_levels=("town",),
        handle_levels=("town",),
        approve_levels=("town",),
        proxy_allowed=True,
        in_person=False,
        materials=(Material(name="申请书", main=True), Material(name="照片", main=False)),
        statutory_limit=20,
        committed_limit=10,
        limit_unit="working",
        township_limit=10,
        county_limit=0,
        fee="不收费",
        window="社会救助窗口",
        department="",
        immediate=False,
    )
    return msgspec.structs.replace(base, **changes)


def _catalogue(*matters: Matter) -> Catalogue:
    return Catalogue(county="测试县", version=3, published_at="2024-03-01", matters=matters or (_matter(),))


def _envelope(payload: bytes, key: SigningKey, *, version: int = 1, magic: bytes = MAGIC) -> bytes:
    """The envelope layout built by hand, to sign payloads ``sign_catalogue`` would refuse."""
    kid = key.key_id.encode()
    signed = magic + bytes([version, len(kid)]) + kid + struct.pack(">I", len(payload)) + payload
    sig = key.sign(signed)
    return signed + struct.pack(">H", len(sig)) + sig


def _good_row(code: str = "T-001", **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "code": code,
        "name": "测试事项",
        "name_en": "Test matter",
        "category": "给付",
        "legal_basis": "《社会救助暂行办法》",
        "accept_levels": ["town"],
        "handle_levels": ["town", "county"],
        "approve_levels": ["county"],
        "proxy_allowed": True,
        "in_person": False,
        "materials": [{"name": "申请书", "main": True}, {"name": "照片", "main": False, "note": "二寸"}],
        "statutory_limit": 30,
        "committed_limit": 20,
        "limit_unit": "working",
        "township_limit": 5,
        "county_limit": 10,
        "fee": "不收费",
        "window": "社会救助窗口",
        "department": "县民政局",
        "immediate": False,
    }
    row.update(changes)
    return row


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _write_toml(path: Path, header: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    lines = [f"{k} = {_toml_value(v)}" for k, v in header.items()]
    for row in rows:
        lines.append("\n[[matters]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in row.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


HEADER = {"county": "测试县", "version": 2, "published_at": "2024-05-06"}


# ------------------------------------------------------------------------------------------ envelope


def test_signed_catalogue_round_trips_and_signing_is_deterministic() -> None:
    catalogue = default_catalogue()
    blob = sign_catalogue(catalogue, COUNTY_KEY)
    assert blob[:3] == b"SJC" and blob[3] == 1
    assert blob == sign_catalogue(catalogue, COUNTY_KEY)  # Ed25519 + deterministic msgpack
    opened = open_catalogue(blob, _keys(COUNTY_KEY))
    assert opened == catalogue
    assert opened.get("MZ-001") == catalogue.get("MZ-001") and opened.get("NOPE") is None
    assert len(catalogue_digest(blob)) == 64


@pytest.mark.parametrize("where", ["magic", "version", "key_id", "length", "payload_start", "payload_mid", "signature"])
def test_a_changed_byte_is_refused(where: str) -> None:
    blob = bytearray(sign_catalogue(_catalogue(), COUNTY_KEY))
    kid_end = 5 + blob[4]
    positions = {
        "magic": 0,
        "version": 3,
        "key_id": 6,
        "length": kid_end + 3,
        "payload_start": kid_end + 4,
        "payload_mid": kid_end + 4 + 100,
        "signature": len(blob) - 5,
    }
    blob[positions[where]] ^= 0x01
    with pytest.raises((FrameError, SignatureError)):
        open_catalogue(bytes(blob), _keys(COUNTY_KEY))


def test_signature_is_checked_before_the_payload_is_decoded() -> None:
    blob = bytearray(sign_catalogue(_catalogue(), COUNTY_KEY))
    payload_at = 5 + blob[4] + 4
    blob[payload_at] = 0xC1  # never valid msgpack: a decoder would fail with FrameError first
    with pytest.raises(SignatureError):
        open_catalogue(bytes(blob), _keys(COUNTY_KEY))


def test_wrong_unknown_or_revoked_key_is_refused() -> None:
    blob = sign_catalogue(_catalogue(), OTHER_KEY)
    with pytest.raises(SignatureError, match="does not trust"):
        open_catalogue(blob, _keys(COUNTY_KEY))
    # A blob claiming the county's key id but signed by another key.
    forged = _envelope(encode(_catalogue()), OTHER_KEY)
    forged = forged.replace(OTHER_KEY.key_id.encode(), COUNTY_KEY.key_id.encode(), 1)
    with pytest.raises(SignatureError, match="does not match"):
        open_catalogue(forged, _keys(COUNTY_KEY))
    revoked = {COUNTY_KEY.key_id: msgspec.structs.replace(COUNTY_KEY.record("C"), revoked=True)}
    with pytest.raises(SignatureError, match="revoked"):
        open_catalogue(sign_catalogue(_catalogue(), COUNTY_KEY), revoked)
    with pytest.raises(SignatureError, match="publisher"):
        open_catalogue(sign_catalogue(_catalogue(), COUNTY_KEY), _keys(COUNTY_KEY, node="T01"), publisher="C")


def test_only_the_county_root_publishes() -> None:
    directory = Directory(
        [
            NodeEntry(id="C", role="county", keys=(COUNTY_KEY.record("C"),)),
            NodeEntry(id="T01", role="town", parent="C", keys=(OTHER_KEY.record("T01"),)),
        ]
    )
    keys = publisher_keys(directory)
    assert set(keys) == {COUNTY_KEY.key_id}
    with pytest.raises(SignatureError):
        open_catalogue(sign_catalogue(_catalogue(), OTHER_KEY), keys)


def test_malformed_envelopes_are_frame_errors() -> None:
    blob = sign_catalogue(_catalogue(), COUNTY_KEY)
    keys = _keys(COUNTY_KEY)
    with pytest.raises(FrameError, match="truncated"):
        open_catalogue(blob[:20], keys)
    with pytest.raises(FrameError, match="length"):
        open_catalogue(blob + b"\x00", keys)
    with pytest.raises(FrameError, match="batch frame"):
        open_catalogue(b"SJB" + blob[3:], keys)
    with pytest.raises(FrameError, match="magic"):
        open_catalogue(b"hello world", keys)
    with pytest.raises(UnsupportedFormat):
        open_catalogue(_envelope(encode(_catalogue()), COUNTY_KEY, version=2), keys)
    with pytest.raises(FrameTooLarge):
        open_catalogue(blob + bytes(MAX_CATALOGUE_BYTES), keys)
    with pytest.raises(FrameError, match="does not decode"):
        open_catalogue(_envelope(encode({"county": "x"}), COUNTY_KEY), keys)


def test_agency_fee_is_refused_when_signing_and_when_opening() -> None:
    charging = _catalogue(_matter(agency_fee=5))
    problems = validate_catalogue(charging)
    assert any("agency_fee" in p and "free" in p for p in problems)
    with pytest.raises(CatalogueError) as signing:
        sign_catalogue(charging, COUNTY_KEY)
    assert any("agency_fee" in p for p in signing.value.problems)
    # Even correctly signed by a trusted key, such a catalogue is not accepted.
    blob = _envelope(encode(charging), COUNTY_KEY)
    with pytest.raises(CatalogueError) as opening:
        open_catalogue(blob, _keys(COUNTY_KEY))
    assert isinstance(opening.value, SanjiError) and opening.value.as_dict()["problems"]


# ------------------------------------------------------------------------------------------ validation


def test_validation_names_every_problem_with_matter_and_field() -> None:
    bad = _catalogue(
        _matter(code="A-1", committed_limit=30, statutory_limit=20),
        _matter(code="A-1"),
        _matter(code="B-1", in_person=True, proxy_allowed=True),
        _matter(code="C-1", materials=(Material(name="照片", main=False),)),
        _matter(code="D-1", accept_levels=()),
        _matter(code="E-1", handle_levels=("town", "province")),
        _matter(code="F-1", department="县民政局", county_limit=0),
        _matter(code="G-1", immediate=True),
    )
    problems = validate_catalogue(bad)
    expected = [
        ("matter 1 (A-1)", "committed_limit", "exceeds the statutory limit"),
        ("matter 2 (A-1)", "code", "duplicate code; matter 1"),
        ("matter 3 (B-1)", "proxy_allowed", "in person"),
        ("matter 4 (C-1)", "materials", "no main material"),
        ("matter 5 (D-1)", "accept_levels", "at least one"),
        ("matter 6 (E-1)", "handle_levels", "unknown level 'province'"),
        ("matter 7 (F-1)", "approve_levels", "must include county"),
        ("matter 7 (F-1)", "county_limit", "at least 1 day"),
        ("matter 8 (G-1)", "committed_limit", "immediate"),
    ]
    for where, field, text in expected:
        assert any(p.startswith(f"{where}, field {field}:") and text in p for p in problems), (where, field, problems)
    assert validate_catalogue(_catalogue()) == []
    header = validate_catalogue(Catalogue(county="", version=0, published_at="March", matters=()))
    assert {p.split(":")[0] for p in header} == {
        "catalogue, field county",
        "catalogue, field version",
        "catalogue, field published_at",
        "catalogue, field matters",
    }


def test_joint_and_deemed_approval_rules() -> None:
    assert validate_catalogue(_catalogue(_matter(joint_departments=("县医保局",)))) == []
    problems = validate_catalogue(
        _catalogue(
            _matter(
                code="J-1",
                department="县民政局",
                approve_levels=("county",),
                county_limit=5,
                joint_departments=("县民政局",),
            ),
            _matter(code="J-2", immediate=True, committed_limit=0, township_limit=0, deemed_approval=True),
        )
    )
    assert any(p.startswith("matter 1 (J-1), field joint_departments") for p in problems)
    assert any(p.startswith("matter 2 (J-2), field deemed_approval") for p in problems)


def test_an_entry_of_rules_2_extends_no_further_than_the_law() -> None:
    """From rules 2 an entry's extension cap stays within its statutory limit; older entries keep being read."""
    law = _matter().statutory_limit
    too_long = _matter(rules=2, extension_limit=law + 1)
    problems = validate_catalogue(_catalogue(too_long))
    assert len(problems) == 1 and "field extension_limit" in problems[0] and "statutory limit" in problems[0]
    assert validate_catalogue(_catalogue(_matter(rules=2, extension_limit=law))) == []
    assert validate_catalogue(_catalogue(_matter(rules=1, extension_limit=law + 1))) == []


def test_rules_is_a_known_generation_of_errand_rules(tmp_path: Path) -> None:
    """``Matter.rules``: 0 (left out) judges the errands as 0.3.0 did, 1 to 3 by the later rules; nothing else."""
    assert _matter().rules == 0
    assert validate_catalogue(_catalogue(_matter(rules=0), _matter(code="T-002", rules=1))) == []
    assert validate_catalogue(_catalogue(_matter(rules=2), _matter(code="T-002", rules=3))) == []
    for bad in (4, -1, True):
        problems = validate_catalogue(_catalogue(_matter(rules=bad)))
        assert len(problems) == 1 and problems[0].startswith("matter 1 (T-001), field rules"), problems
        assert "0 to 3" in problems[0] and "once every node runs the release" in problems[0]
    path = _write_toml(tmp_path / "rules.toml", HEADER, [_good_row("T-001", rules=1), _good_row("T-002")])
    assert [m.rules for m in load_catalogue(path).matters] == [1, 0]
    path = _write_toml(tmp_path / "bad.toml", HEADER, [_good_row("T-001", rules=4), _good_row("T-002", rules="新")])
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    problems = caught.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("[[matters]] #1 (T-001), field rules") and "0 to 3" in problems[0]
    assert problems[1].startswith("[[matters]] #2 (T-002), field rules") and "not a whole number" in problems[1]
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    row = _good_row("X-001")
    sheet.append([*(k for k in row if k != "materials"), "申报材料", "办件规则"])
    sheet.append([*(";".join(v) if isinstance(v, list) else v for k, v in row.items() if k != "materials"),
                  "申请书(主);照片(副)", "1"])  # fmt: skip
    meta = book.create_sheet("catalogue")
    for key, value in HEADER.items():
        meta.append([key, value])
    book.save(tmp_path / "rules.xlsx")
    assert [m.rules for m in load_xlsx(tmp_path / "rules.xlsx").matters] == [1]


# ------------------------------------------------------------------------------------------ the shipped file


def test_shipped_catalogue_is_clean_illustrative_and_covers_the_seeds() -> None:
    catalogue = default_catalogue()
    assert validate_catalogue(catalogue) == []
    assert len(catalogue.matters) >= 30
    assert all(m.illustrative for m in catalogue.matters)
    assert all(m.agency_fee == 0 for m in catalogue.matters)
    assert sum(m.deemed_approval for m in catalogue.matters) >= 2
    assert any(m.immediate for m in catalogue.matters)
    assert any(m.joint_departments for m in catalogue.matters)
    assert any(m.in_person and not m.proxy_allowed for m in catalogue.matters)
    assert any(m.department for m in catalogue.matters) and any(not m.department for m in catalogue.matters)
    names = "".join(m.name for m in catalogue.matters)
    for word in ("低保", "五保", "临时救助", "优待抚恤", "残疾人证", "生育服务证", "养老保险补缴", "关系转移",
                 "合作医疗", "户口迁移", "建房", "个体工商户登记", "个体工商户变更", "个体工商户注销", "惠农补贴",
                 "党组织关系转接", "信访", "调解"):  # fmt: skip
        assert word in names, word
    text = default_catalogue_path().read_text(encoding="utf-8")
    assert "ILLUSTRATIVE ONLY" in text.split("[[matters]]")[0]


def test_shipped_catalogue_keeps_the_demo_codes() -> None:
    catalogue = default_catalogue()
    for old in CORPUS_MATTERS:
        matter = catalogue.get(old.code)
        assert matter is not None, old.code
        assert matter.department == old.department and matter.immediate == old.immediate, old.code
        assert not matter.in_person and matter.proxy_allowed
        # What the demo's village agents bring is enough to be accepted.
        assert precheck(matter, ["身份证复印件", "户口簿复印件", "申请书"], by_proxy=True).ok, old.code


def test_shipped_catalogue_reads_the_same_from_json_and_xlsx(tmp_path: Path) -> None:
    catalogue = default_catalogue()
    as_json = tmp_path / "cat.json"
    as_json.write_bytes(msgspec.json.encode(catalogue))
    assert load_json(as_json) == catalogue

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "事项"
    fields = [f.name for f in msgspec.structs.fields(Matter)]
    sheet.append(fields)
    for m in catalogue.matters:
        row: list[Any] = []
        for name in fields:
            value = getattr(m, name)
            if name == "materials":
                value = ";".join(f"{x.name}({'主' if x.main else '副'}{':' + x.note if x.note else ''})" for x in value)
            elif isinstance(value, tuple):
                value = ";".join(value)
            row.append(value)
        sheet.append(row)
    meta = book.create_sheet("目录")
    meta.append(["county", catalogue.county])
    meta.append(["版本", catalogue.version])
    meta.append(["发布日期", catalogue.published_at])
    path = tmp_path / "cat.xlsx"
    book.save(path)
    assert load_xlsx(path) == catalogue


# ------------------------------------------------------------------------------------------ loader errors


def test_toml_errors_name_the_table_and_field_of_every_problem(tmp_path: Path) -> None:
    rows = [
        _good_row("T-001", committed_limit=40, category="补贴"),
        _good_row("T-002", accept_levels=["town", "xian"], comitted_limit=3),
        _good_row("T-001", in_person=True),
        _good_row("T-004", materials="身份证(主);照片"),
        {k: v for k, v in _good_row("T-005").items() if k != "window"},
    ]
    path = _write_toml(tmp_path / "bad.toml", {**HEADER, "published_at": "2024-13-01"}, rows)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    problems = caught.value.problems
    expected = [
        ("[[matters]] #1 (T-001), field committed_limit", "exceeds the statutory limit"),
        ("[[matters]] #1 (T-001), field category", "not a category"),
        ("[[matters]] #2 (T-002), field accept_levels", "xian"),
        ("[[matters]] #2 (T-002), field comitted_limit", "did you mean committed_limit"),
        ("[[matters]] #3 (T-001), field code", "duplicate code; [[matters]] #1 has it"),
        ("[[matters]] #3 (T-001), field proxy_allowed", "in person"),
        ("[[matters]] #4 (T-004), field materials", "照片"),
        ("[[matters]] #5 (T-005), field window", "missing"),
        ("catalogue, field published_at", "ISO date"),
    ]
    for prefix, text in expected:
        assert any(p.startswith(prefix) and text in p for p in problems), (prefix, problems)
    assert len(problems) == len(expected), problems
    assert str(path) in caught.value.message


def test_json_errors_name_the_index_and_field(tmp_path: Path) -> None:
    data = {
        **HEADER,
        "matters": [
            _good_row("J-001"),
            _good_row("J-002", agency_fee=10, township_limit="five"),
            _good_row("J-003", materials=[{"name": "照片", "main": False}], limit_unit="weeks"),
        ],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    problems = caught.value.problems
    expected = [
        ("matters[1] (J-002), field agency_fee", "free"),
        ("matters[1] (J-002), field township_limit", "not a whole number"),
        ("matters[2] (J-003), field limit_unit", "working or calendar"),
        # A field that does not convert does not hide the faults of the rest of its row.
        ("matters[2] (J-003), field materials", "no main material"),
    ]
    for prefix, text in expected:
        assert any(p.startswith(prefix) and text in p for p in problems), (prefix, problems)
    assert len(problems) == len(expected), problems


def test_xlsx_errors_name_the_row_column_and_field(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "matters"
    headings = [
        "事项编码",
        "事项名称",
        "name_en",
        "事项类别",
        "legal_basis",
        "受理层级",
        "handle_levels",
        "审批层级",
        "可代办",
        "本人亲自办理",
        "申报材料",
        "法定时限",
        "承诺时限",
        "时限单位",
        "township_limit",
        "county_limit",
        "fee",
        "办理窗口",
        "县级部门",
        "即办件",
    ]
    sheet.append(headings)
    good = [
        "X-001",
        "低保申请",
        "Dibao",
        "给付",
        "《社会救助暂行办法》",
        "乡镇",
        "town;county",
        "县",
        "是",
        "否",
        "身份证(主);户口簿(主);照片(副)",
        40,
        30,
        "工作日",
        15,
        12,
        "不收费",
        "社会救助窗口",
        "县民政局",
        "否",
    ]
    sheet.append(good)
    bad = list(good)
    bad[0] = "X-002"
    bad[8] = "也许"  # proxy_allowed
    bad[12] = 50  # committed_limit > statutory
    bad[10] = "照片(副)"  # no main material
    sheet.append(bad)
    sheet.append([None] * len(headings))  # blank rows are skipped
    worse = list(good)
    worse[0] = "X-003"
    worse[5] = "省"  # unknown level
    worse[11] = "四十"  # statutory_limit
    sheet.append(worse)
    path = tmp_path / "bad.xlsx"
    book.save(path)

    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    problems = caught.value.problems
    for prefix, text in [
        ("row 3 (X-002), field proxy_allowed (column I)", "not true or false"),
        ("row 5 (X-003), field accept_levels (column F)", "省"),
        ("row 5 (X-003), field statutory_limit (column L)", "not a whole number"),
        ("catalogue, field county", "missing"),
    ]:
        assert any(p.startswith(prefix) and text in p for p in problems), (prefix, problems)

    # Fix the header fields and the unconvertible cells: the whole-matter checks now speak.
    sheet.cell(row=3, column=9, value="是")
    sheet.delete_rows(5, 1)
    book.save(path)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path, county="测试县", version=1, published_at="2024-01-01")
    problems = caught.value.problems
    for prefix, text in [
        ("row 3 (X-002), field committed_limit (column M)", "exceeds the statutory limit"),
        ("row 3 (X-002), field materials (column K)", "no main material"),
    ]:
        assert any(p.startswith(prefix) and text in p for p in problems), (prefix, problems)
    assert len(problems) == 2, problems

    sheet.delete_rows(3, 1)
    book.save(path)
    catalogue = load_catalogue(path, county="测试县", version=1, published_at="2024-01-01")
    matter = catalogue.matters[0]
    assert matter.materials == (
        Material(name="身份证", main=True),
        Material(name="户口簿", main=True),
        Material(name="照片", main=False),
    )
    assert matter.accept_levels == ("town",) and matter.handle_levels == ("town", "county")
    assert matter.proxy_allowed and not matter.in_person and matter.limit_unit == "working"


def test_unreadable_files_are_catalogue_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('county = "x"\n[[matters]\n', encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid TOML"):
        load_catalogue(broken)
    with pytest.raises(CatalogueError, match="unknown catalogue format"):
        load_catalogue(tmp_path / "cat.csv")
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.toml")
    not_xlsx = tmp_path / "fake.xlsx"
    not_xlsx.write_bytes(b"not a zip")
    with pytest.raises(CatalogueError, match="XLSX"):
        load_catalogue(not_xlsx)


# ------------------------------------------------------------------------------------------ pre-check


def test_precheck_lists_missing_materials_and_allows_provisional_acceptance() -> None:
    matter = _matter(
        materials=(
            Material(name="申请书", main=True),
            Material(name="户口簿（复印件）", main=True),
            Material(name="照片", main=False),
        )
    )
    result = precheck(matter, ["申请书"], by_proxy=True)
    assert result.missing_main == ("户口簿（复印件）",) and result.missing_secondary == ("照片",)
    assert not result.ok and result.proxy_refused_reason == ""
    # Width and spaces do not matter; missing secondary materials allow 容缺受理.
    result = precheck(matter, ["申请书", "户口簿 (复印件)"], by_proxy=True)
    assert result.ok and result.provisional and result.missing_secondary == ("照片",)
    assert precheck(matter, ["申请书", "户口簿(复印件)", "照片"], by_proxy=True) == precheck(
        matter, ["照片", "户口簿（复印件）", "申请书", "其他"], by_proxy=False
    )
    # 即办件除外: an immediate matter cannot be accepted with secondary materials owed.
    immediate = msgspec.structs.replace(matter, immediate=True, committed_limit=0, township_limit=0)
    assert not precheck(immediate, ["申请书", "户口簿(复印件)"], by_proxy=False).ok


def test_precheck_refuses_proxy_for_in_person_and_non_proxy_matters() -> None:
    id_card = default_catalogue().get("GA-003")
    assert id_card is not None and id_card.in_person
    everything = [m.name for m in id_card.materials]
    refused = precheck(id_card, everything, by_proxy=True)
    assert not refused.ok and "in person" in refused.proxy_refused_reason
    assert precheck(id_card, everything, by_proxy=False).ok
    party = default_catalogue().get("DJ-001")
    assert party is not None and not party.proxy_allowed and not party.in_person
    assert "not open to proxy" in precheck(party, [m.name for m in party.materials], by_proxy=True).proxy_refused_reason


# ------------------------------------------------------------------------------------------ command line


def test_cli_check_and_sign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write_toml(tmp_path / "bad.toml", HEADER, [_good_row(in_person=True), _good_row("T-002", agency_fee=3)])
    assert catalogue_cmd.run_check(bad) == 2
    out = capsys.readouterr().out
    assert "[[matters]] #1 (T-001), field proxy_allowed" in out
    assert "[[matters]] #2 (T-002), field agency_fee" in out

    key_path = tmp_path / "county.key"
    write_key(key_path, COUNTY_KEY)
    signed = tmp_path / "out" / "catalogue.sjc"
    assert catalogue_cmd.run_sign(bad, key_path, signed) == 2
    assert not signed.exists()
    capsys.readouterr()

    good = _write_toml(tmp_path / "good.toml", HEADER, [_good_row()])
    assert catalogue_cmd.run_check(good) == 0
    assert "no problems" in capsys.readouterr().out
    assert catalogue_cmd.run_sign(good, key_path, signed) == 0
    assert COUNTY_KEY.key_id in capsys.readouterr().out
    opened = open_catalogue(signed.read_bytes(), _keys(COUNTY_KEY))
    assert opened.version == 2 and opened.codes() == ("T-001",)
    assert catalogue_cmd.run_check(default_catalogue_path()) == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("make", "says"),
    [
        (hostile_xlsx.dimension_trick, "too many rows"),
        (hostile_xlsx.zip_bomb, "refused before it is read"),
        (hostile_xlsx.too_many_rows, "too many rows"),
    ],
)
def test_cli_check_refuses_a_hostile_spreadsheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[], bytes], says: str
) -> None:
    """A tiny file that asks for unbounded work is refused with a clear error (and the check finishes)."""
    path = tmp_path / "hostile.xlsx"
    path.write_bytes(make())
    assert path.stat().st_size < 2 * 1024 * 1024
    assert catalogue_cmd.run_check(path) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: ") and says in out


def test_an_optional_material_is_never_owed() -> None:
    """患病或残疾证明 is marked 如有 ("if any"): the pre-check does not list it as missing, so neither 容缺 nor a
    one-time notice asks for it (before, the accept form offered it as owed and failed as it stood)."""
    from protocol.catalogue import precheck

    matter = default_catalogue().get("MZ-001")
    assert matter is not None
    optional = [m.name for m in matter.materials if m.optional]
    assert optional == ["患病或残疾证明"]
    mains = [m.name for m in matter.materials if m.main]
    check = precheck(matter, [*mains, "家庭收入及财产状况声明"], by_proxy=True)
    assert check.ok and check.missing_secondary == () and not check.provisional
    assert precheck(matter, mains, by_proxy=True).missing_secondary == ("家庭收入及财产状况声明",)


def test_a_catalogue_too_large_to_sign_is_a_problem_the_check_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every matter within its limits, but the whole larger than a signed catalogue may be: ``catalogue check``
    names it (Chinese first) instead of passing a file that signing then refuses with a traceback."""
    base = default_catalogue()
    long_basis = "a" * 3900  # within the 4,000 characters of one text field
    matters = tuple(
        msgspec.structs.replace(base.matters[i % len(base.matters)], code=f"ZZ-{i:04d}", name=f"事项{i}",
                                legal_basis=long_basis)
        for i in range(420)
    )  # fmt: skip
    big = msgspec.structs.replace(base, version=2, matters=matters)
    problems = validate_catalogue(big)
    assert any("bytes encoded" in p for p in problems), problems
    path = tmp_path / "big.json"
    path.write_text(json.dumps(msgspec.to_builtins(big), ensure_ascii=False), encoding="utf-8")
    assert catalogue_cmd.run_check(path) == 2
    out = capsys.readouterr().out
    assert "目录编码后过大" in out and "bytes encoded" in out, out
    key_path = tmp_path / "county.key"
    write_key(key_path, COUNTY_KEY)
    signed = tmp_path / "big.sjc"
    assert catalogue_cmd.run_sign(path, key_path, signed) == 2
    assert not signed.exists()
    assert validate_catalogue(base) == []

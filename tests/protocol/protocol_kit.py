"""Builders shared by the protocol tests: errand stories and hand-made frames.

The layout is ``sanji.layout.county_layout(2, 2)``::

    C ── T01 ── T01V01, T01V02
      └─ T02 ── T02V01, T02V02
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from typing import Any

import msgspec

from protocol.actions import Accept, Action, Applicant, Decide, Deliver, HandOff, Note, Receive, Register
from protocol.batch import FORMAT_VERSION, GENESIS, MAGIC, BatchPayload, seal
from protocol.encoding import encode
from protocol.signing import SigningKey
from protocol.topology import Directory
from sanji.demo.population import person
from sanji.layout import Layout, county_layout

COUNTY_ID = "C"
TOWN_ID = "T01"
VILLAGE_ID = "T01V01"
SISTER_VILLAGE = "T01V02"  # same township, different village
OTHER_TOWN = "T02"
FAR_VILLAGE = "T02V01"
OUTSIDER = "X99"  # in no directory

ERRAND = "E1"
AT0 = 1_700_000_000_000 << 16  # a hybrid-clock timestamp
DEPARTMENT = "县民政局"

ROLE_NAMES = {COUNTY_ID: "department", TOWN_ID: "window", VILLAGE_ID: "agent"}


def new_layout() -> Layout:
    return county_layout(2, 2)


def applicant(seed: int = 7) -> Applicant:
    p = person(random.Random(seed))
    return Applicant(name=p.name, id_number=p.id_number, phone=p.phone)


def make(
    cls: type[Action],
    *,
    node: str,
    id: str,
    base: int = 0,
    errand: str = ERRAND,
    scope: str = VILLAGE_ID,
    at: int | None = None,
    **fields: Any,
) -> Action:
    """One action with the common fields filled in plausibly."""
    if cls is Register:
        fields.setdefault("matter", "MZ-001 最低生活保障(低保)申请")
        fields.setdefault("applicant", applicant())
    return cls(
        id=id,
        errand=errand,
        scope=scope,
        node=node,
        actor=f"{node}-staff",
        role=fields.pop("role", ROLE_NAMES.get(node, "staff")),
        at=AT0 + base * 1000 if at is None else at,
        base=base,
        **fields,
    )


def happy_steps(*, escalate: bool) -> list[tuple[type[Action], str, dict[str, Any], str]]:
    """(kind, node, fields, stage after it) for the whole life of a village errand."""
    steps: list[tuple[type[Action], str, dict[str, Any], str]] = [
        (Register, VILLAGE_ID, {"materials": ("身份证复印件", "户口簿")}, "registered"),
        (HandOff, VILLAGE_ID, {"to": TOWN_ID, "purpose": "submit"}, "submitted"),
        (Receive, TOWN_ID, {}, "received"),
        (Accept, TOWN_ID, {"errand_kind": "上报件" if escalate else "承诺件"}, "accepted"),
    ]
    if escalate:
        steps += [
            (HandOff, TOWN_ID, {"to": COUNTY_ID, "purpose": "escalate", "department": DEPARTMENT}, "escalated"),
            (Receive, COUNTY_ID, {}, "at_department"),
            (Decide, COUNTY_ID, {"outcome": "approved", "document": "民低〔2024〕17号"}, "decided"),
            (HandOff, COUNTY_ID, {"to": TOWN_ID, "purpose": "result"}, "result_down"),
            (Receive, TOWN_ID, {}, "result_ready"),
        ]
    else:
        steps.append((Decide, TOWN_ID, {"outcome": "refused", "document": "不符合条件告知书"}, "decided"))
    steps += [
        (HandOff, TOWN_ID, {"to": VILLAGE_ID, "purpose": "result"}, "result_down"),
        (Receive, VILLAGE_ID, {}, "result_ready"),
        (Deliver, VILLAGE_ID, {"confirmed_by": applicant().name, "signature": "签名图像#1"}, "delivered"),
    ]
    return steps


def happy_path(*, escalate: bool, prefix: str = "m", errand: str = ERRAND) -> list[Action]:
    """The main line of a village errand; action ``i`` is based on version ``i``."""
    return [
        make(cls, node=node, id=f"{prefix}{i:02d}", base=i, errand=errand, **fields)
        for i, (cls, node, fields, _) in enumerate(happy_steps(escalate=escalate))
    ]


def note(node: str, id: str, *, at: int = AT0, scope: str = VILLAGE_ID, text: str = "已电话告知申请人") -> Note:
    return make(Note, node=node, id=id, at=at, scope=scope, text=text)  # type: ignore[return-value]


# --- frames ---------------------------------------------------------------------------------


def seal_for(
    layout: Layout,
    origin: str,
    actions: Sequence[Action],
    *,
    scope: str | None = None,
    seq: int = 1,
    prev: bytes = GENESIS,
    key: SigningKey | None = None,
    audience: Sequence[str] | None = None,
    created: int = AT0,
) -> bytes:
    """Seal a batch the way a node does, with the origin's own key unless told otherwise."""
    scope = scope or origin
    directory = layout.directory
    return seal(
        key=key or layout.keys[origin],
        origin=origin,
        scope=scope,
        audience=directory.audience(origin, scope) if audience is None else audience,
        seq=seq,
        prev=prev,
        created=created,
        actions=actions,
    )


def payload_for(
    directory: Directory, key: SigningKey, origin: str, body: bytes, *, count: int, **overrides: Any
) -> BatchPayload:
    fields: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "origin": origin,
        "scope": origin,
        "audience": directory.audience(origin, origin),
        "seq": 1,
        "prev": GENESIS,
        "created": AT0,
        "key_id": key.key_id,
        "encoding": "msgpack",
        "count": count,
        "body": body,
    }
    fields.update(overrides)
    return BatchPayload(**fields)


def raw_frame(
    key: SigningKey,
    payload: BatchPayload | bytes,
    *,
    magic: bytes = MAGIC,
    version: int = FORMAT_VERSION,
    key_id: str | None = None,
) -> bytes:
    """Build and sign a frame by hand, byte for byte as ``protocol.batch.seal`` lays it out."""
    payload_bytes = payload if isinstance(payload, bytes) else encode(payload)
    kid = (key.key_id if key_id is None else key_id).encode()
    signed = magic + bytes([version, len(kid)]) + kid + struct.pack(">I", len(payload_bytes)) + payload_bytes
    signature = key.sign(signed)
    return signed + struct.pack(">H", len(signature)) + signature


def with_revoked(layout: Layout, node: str) -> Directory:
    """The layout's directory with ``node``'s key marked revoked."""
    entries = []
    for entry in layout.entries:
        if entry.id == node:
            keys = tuple(msgspec.structs.replace(k, revoked=True) for k in entry.keys)
            entry = msgspec.structs.replace(entry, keys=keys)
        entries.append(entry)
    return Directory(entries)

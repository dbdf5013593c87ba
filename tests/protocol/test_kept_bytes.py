"""protocol.kept_bytes: an object's bytes are made once while it is held, never answered for another object,
and what is held stays within its count and its bytes."""

from __future__ import annotations

import msgspec

from protocol.kept_bytes import KeptBytes


class Box(msgspec.Struct, frozen=True):
    text: str


def test_bytes_are_made_once_per_object_held_and_never_for_another() -> None:
    made: list[str] = []

    def make(box: Box) -> bytes:
        made.append(box.text)
        return box.text.encode()

    kept = KeptBytes(make)
    a, b = Box("a"), Box("a")
    assert bytes(kept(a)) == bytes(kept(a)) == b"a" and made == ["a"]
    assert bytes(kept(b)) == b"a" and made == ["a", "a"]  # equal in value, another object: made for itself
    del kept._kept[id(a)]
    kept._kept[id(a)] = (Box("zz"), msgspec.Raw(b"zz"))  # another object filed under a's id (a freed one's)
    kept._bytes += 1
    assert bytes(kept(a)) == b"a" and kept.holds(a)
    assert kept.held() == 2 and len(kept) == 2  # a's byte and b's: the other object's two are gone


def test_what_is_held_stays_within_its_count_and_bytes() -> None:
    kept = KeptBytes(lambda box: box.text.encode(), entries=3, held_bytes=9, largest=6)
    boxes = [Box(t) for t in ("aaaa", "bbbb", "cc", "dd", "eeeeeee")]
    for box in boxes[:3]:
        kept(box)
    assert len(kept) == 2 and kept.held() == 6 and not kept.holds(boxes[0])  # 4 + 4 + 2 > 9: the oldest out
    kept(boxes[3])
    assert len(kept) == 3 and kept.held() == 8
    assert bytes(kept(boxes[4])) == b"eeeeeee" and not kept.holds(boxes[4])  # past ``largest``: made, not held
    assert len(kept) <= kept.entries and kept.held() <= kept.held_bytes
    kept.clear()
    assert len(kept) == 0 and kept.held() == 0

"""Encodings of frozen objects kept by the objects' identity, to be spliced in as ``msgspec.Raw``.

Every state stepped from one registration shares that registration's catalogue entry object (``step``
copies the reference), and the entry is about half of what a state encodes: the errand digest
(``protocol.errand``) and the stored ``errands.state`` column (``sanji.store.projections``) each encode
it once per entry, not once per state. The cache holds the object beside its bytes, so an id found here
is that very object (an id is reused only once its object is freed, and a held one is not); only frozen
objects go in, so the bytes stay what encoding the object gives. ``msgspec.Raw`` splices the bytes in as
they are: encoding is context-free, so the whole comes out byte for byte as encoding the object in place.

Bounded twice: by entries and by the bytes held (entries come from signed registrations that nothing
checks against the catalogue, so one can be large). The oldest kept goes first: errands come back in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")


class KeptBytes(Generic[T]):
    """``make(obj)`` as ``msgspec.Raw``, kept for the last objects asked while they are held here."""

    def __init__(
        self,
        make: Callable[[T], bytes],
        *,
        entries: int = 4096,
        held_bytes: int = 2 * 1024 * 1024,
        largest: int = 64 * 1024,
    ) -> None:
        self._make = make
        self.entries, self.held_bytes, self.largest = entries, held_bytes, largest
        self._kept: dict[int, tuple[T, msgspec.Raw]] = {}
        self._bytes = 0

    def __call__(self, obj: T) -> msgspec.Raw:
        key = id(obj)
        hit = self._kept.get(key)
        if hit is not None:
            if hit[0] is obj:
                return hit[1]
            self._drop(key)  # another object under a freed one's id
        raw = msgspec.Raw(self._make(obj))
        size = len(raw)
        if size > self.largest:
            return raw  # far past a real entry's few KB: made each time, never held
        while self._kept and (len(self._kept) >= self.entries or self._bytes + size > self.held_bytes):
            self._drop(next(iter(self._kept)))
        self._kept[key] = (obj, raw)
        self._bytes += size
        return raw

    def _drop(self, key: int) -> None:
        _, raw = self._kept.pop(key)
        self._bytes -= len(raw)

    def holds(self, obj: object) -> bool:
        hit = self._kept.get(id(obj))
        return hit is not None and hit[0] is obj

    def held(self) -> int:
        """How many bytes are kept."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()
        self._bytes = 0

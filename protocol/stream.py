"""What a receiver does with a verified batch, given what it already holds of the stream.

Pure and total: the store supplies its cursor, the decision is made here, so the
same rule runs in the real nodes and in the simulation.
"""

from __future__ import annotations

import enum

import msgspec


class Verdict(enum.Enum):
    APPLY = "apply"  # next in line: store and apply atomically
    DUPLICATE = "duplicate"  # already held, byte-identical: acknowledge again, change nothing
    HOLD = "hold"  # a predecessor is missing: keep aside until it arrives
    FORK = "fork"  # conflicts with what is held: quarantine, never apply


class StreamKey(msgspec.Struct, frozen=True, order=True):
    origin: str
    scope: str

    def __str__(self) -> str:
        return f"{self.origin}->{self.scope}"


def classify(
    *, seq: int, prev: bytes, digest: bytes, cursor: int, last_hash: bytes, held_hash: bytes | None
) -> Verdict:
    """Decide the fate of batch ``seq`` of a stream whose contiguous prefix ends at ``cursor``.

    ``held_hash`` is the hash already stored for ``seq`` when ``seq <= cursor``.
    """
    if seq <= cursor:
        return Verdict.DUPLICATE if held_hash == digest else Verdict.FORK
    if seq == cursor + 1:
        return Verdict.APPLY if prev == last_hash else Verdict.FORK
    return Verdict.HOLD

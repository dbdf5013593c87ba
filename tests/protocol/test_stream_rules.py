"""classify(): apply, duplicate, hold and fork, on hashes and on a real chain of signed frames."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest
from protocol_kit import VILLAGE_ID, note, seal_for

from protocol.batch import GENESIS, Batch, frame_hash, open_frame
from protocol.stream import StreamKey, Verdict, classify
from protocol.topology import Directory
from sanji.layout import Layout

H1, H2, H3, OTHER = (bytes([n]) * 32 for n in (1, 2, 3, 9))


# --- the rule itself ----------------------------------------------------------------------------


def test_first_batch_follows_genesis() -> None:
    verdict = classify(seq=1, prev=GENESIS, digest=H1, cursor=0, last_hash=GENESIS, held_hash=None)
    assert verdict is Verdict.APPLY


def test_next_batch_that_links_to_the_last_is_applied() -> None:
    assert classify(seq=3, prev=H2, digest=H3, cursor=2, last_hash=H2, held_hash=None) is Verdict.APPLY


def test_next_number_with_the_wrong_previous_hash_is_a_fork() -> None:
    assert classify(seq=3, prev=OTHER, digest=H3, cursor=2, last_hash=H2, held_hash=None) is Verdict.FORK
    assert classify(seq=1, prev=H1, digest=H1, cursor=0, last_hash=GENESIS, held_hash=None) is Verdict.FORK


def test_replay_of_a_held_batch_is_a_duplicate() -> None:
    assert classify(seq=2, prev=H1, digest=H2, cursor=3, last_hash=H3, held_hash=H2) is Verdict.DUPLICATE
    assert classify(seq=3, prev=H2, digest=H3, cursor=3, last_hash=H3, held_hash=H3) is Verdict.DUPLICATE


def test_same_number_different_content_is_a_fork() -> None:
    assert classify(seq=2, prev=H1, digest=OTHER, cursor=3, last_hash=H3, held_hash=H2) is Verdict.FORK
    assert classify(seq=3, prev=H2, digest=OTHER, cursor=3, last_hash=H3, held_hash=H3) is Verdict.FORK


@pytest.mark.parametrize("ahead", [2, 3, 50])
def test_a_gap_is_held_whatever_it_claims_to_follow(ahead: int) -> None:
    for prev in (H2, OTHER, GENESIS):
        verdict = classify(seq=2 + ahead, prev=prev, digest=OTHER, cursor=2, last_hash=H2, held_hash=None)
        assert verdict is Verdict.HOLD


def test_stream_keys_sort_and_print() -> None:
    keys = [StreamKey("T01", "T01V01"), StreamKey("C", "T01V02"), StreamKey("C", "T01V01")]
    assert sorted(keys) == [StreamKey("C", "T01V01"), StreamKey("C", "T01V02"), StreamKey("T01", "T01V01")]
    assert str(keys[0]) == "T01->T01V01"
    assert len({StreamKey("C", "X"), StreamKey("C", "X")}) == 1


# --- a receiver driven by classify, fed real frames ----------------------------------------------


@dataclass
class Receiver:
    """The smallest faithful receiver: applies in order, holds gaps, drains them, quarantines forks."""

    directory: Directory
    cursor: int = 0
    last_hash: bytes = GENESIS
    hashes: dict[int, bytes] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)  # action ids, in application order
    held: dict[int, Batch] = field(default_factory=dict)
    forks: list[int] = field(default_factory=list)
    duplicates: int = 0

    def receive(self, frame: bytes) -> Verdict:
        batch = open_frame(frame, self.directory)
        verdict = self._classify(batch)
        if verdict is Verdict.APPLY:
            self._apply(batch)
            while (nxt := self.held.pop(self.cursor + 1, None)) is not None:
                again = self._classify(nxt)
                if again is Verdict.APPLY:
                    self._apply(nxt)
                else:
                    self.forks.append(nxt.seq)
        elif verdict is Verdict.HOLD:
            self.held.setdefault(batch.seq, batch)
        elif verdict is Verdict.DUPLICATE:
            self.duplicates += 1
        else:
            self.forks.append(batch.seq)
        return verdict

    def _classify(self, batch: Batch) -> Verdict:
        return classify(
            seq=batch.seq,
            prev=batch.prev,
            digest=batch.hash,
            cursor=self.cursor,
            last_hash=self.last_hash,
            held_hash=self.hashes.get(batch.seq),
        )

    def _apply(self, batch: Batch) -> None:
        self.cursor, self.last_hash = batch.seq, batch.hash
        self.hashes[batch.seq] = batch.hash
        self.applied.extend(a.id for a in batch.actions)


def chain(layout: Layout, n: int, *, tag: str = "n") -> list[bytes]:
    frames: list[bytes] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        frame = seal_for(layout, VILLAGE_ID, [note(VILLAGE_ID, f"{tag}{seq}")], seq=seq, prev=prev)
        frames.append(frame)
        prev = frame_hash(frame)
    return frames


def test_in_order_delivery_applies_everything(layout: Layout, directory: Directory) -> None:
    receiver = Receiver(directory)
    verdicts = [receiver.receive(f) for f in chain(layout, 4)]
    assert verdicts == [Verdict.APPLY] * 4
    assert receiver.applied == ["n1", "n2", "n3", "n4"]


def test_every_arrival_order_ends_in_the_same_state(layout: Layout, directory: Directory) -> None:
    frames = chain(layout, 5)
    reference = Receiver(directory)
    for frame in frames:
        reference.receive(frame)
    for order in itertools.permutations(range(5)):
        receiver = Receiver(directory)
        for i in order:
            receiver.receive(frames[i])
        assert (receiver.cursor, receiver.last_hash, receiver.applied) == (5, reference.last_hash, reference.applied)
        assert receiver.held == {} and receiver.forks == []


def test_reordered_batches_are_held_then_drained(layout: Layout, directory: Directory) -> None:
    f1, f2, f3 = chain(layout, 3)
    receiver = Receiver(directory)
    assert receiver.receive(f3) is Verdict.HOLD
    assert receiver.receive(f2) is Verdict.HOLD
    assert receiver.cursor == 0 and receiver.applied == []
    assert receiver.receive(f1) is Verdict.APPLY
    assert receiver.cursor == 3 and receiver.applied == ["n1", "n2", "n3"]


def test_replays_change_nothing(layout: Layout, directory: Directory) -> None:
    frames = chain(layout, 3)
    receiver = Receiver(directory)
    for frame in frames:
        receiver.receive(frame)
    before = (receiver.cursor, receiver.last_hash, list(receiver.applied))
    assert [receiver.receive(f) for f in frames] == [Verdict.DUPLICATE] * 3
    assert (receiver.cursor, receiver.last_hash, receiver.applied) == before
    assert receiver.duplicates == 3


def test_random_delivery_with_duplicates_converges(layout: Layout, directory: Directory) -> None:
    frames = chain(layout, 6)
    rng = random.Random(42)
    for _ in range(50):
        deliveries = frames + [rng.choice(frames) for _ in range(6)]
        rng.shuffle(deliveries)
        receiver = Receiver(directory)
        for frame in deliveries:
            receiver.receive(frame)
        assert receiver.cursor == 6
        assert receiver.applied == [f"n{i}" for i in range(1, 7)]
        assert receiver.forks == []


def test_same_number_different_batch_after_the_original_is_a_fork(layout: Layout, directory: Directory) -> None:
    f1, f2, f3 = chain(layout, 3)
    rival2 = seal_for(layout, VILLAGE_ID, [note(VILLAGE_ID, "rival")], seq=2, prev=frame_hash(f1))
    receiver = Receiver(directory)
    for frame in (f1, f2, f3):
        receiver.receive(frame)
    assert receiver.receive(rival2) is Verdict.FORK
    assert receiver.applied == ["n1", "n2", "n3"]


def test_a_restored_origin_forks_its_own_stream(layout: Layout, directory: Directory) -> None:
    """The origin was restored from a backup and wrote a different batch 2; its old successors then break."""
    f1, f2, f3 = chain(layout, 3)
    rival2 = seal_for(layout, VILLAGE_ID, [note(VILLAGE_ID, "rival")], seq=2, prev=frame_hash(f1))
    receiver = Receiver(directory)
    receiver.receive(f1)
    assert receiver.receive(rival2) is Verdict.APPLY  # first come: nothing tells them apart yet
    assert receiver.receive(f2) is Verdict.FORK  # same number, different hash
    assert receiver.receive(f3) is Verdict.FORK  # next number, but it links to the other batch 2
    assert receiver.applied == ["n1", "rival"]
    assert receiver.forks == [2, 3]


def test_a_held_batch_that_does_not_link_is_quarantined_when_its_turn_comes(
    layout: Layout, directory: Directory
) -> None:
    f1, _, f3 = chain(layout, 3)
    rival2 = seal_for(layout, VILLAGE_ID, [note(VILLAGE_ID, "rival")], seq=2, prev=frame_hash(f1))
    receiver = Receiver(directory)
    assert receiver.receive(f3) is Verdict.HOLD  # links to f2
    receiver.receive(f1)
    assert receiver.receive(rival2) is Verdict.APPLY
    assert receiver.forks == [3]
    assert receiver.cursor == 2 and receiver.applied == ["n1", "rival"]

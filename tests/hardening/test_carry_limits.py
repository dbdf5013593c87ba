"""Hand-carried files: size before reading, streamed, frame limits, clear messages, bounded writes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time
from pathlib import Path

import msgspec
import pytest

from protocol.carry import MAGIC, MAX_CARRY_BYTES, CarryHeader, CarryScanner
from protocol.errors import FrameError, FrameTooLarge
from sanji.cli import carry_cmd
from sanji.cli.common import node_store
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from tests.conftest import row_counts


@pytest.fixture
def county(tmp_path: Path) -> Cluster:
    return Cluster.prepare(tmp_path / "c", towns=1, villages_per_town=1)


def town(cluster: Cluster) -> str:
    return str(cluster.nodes["T01"].config)


async def counts(config: str) -> dict[str, int]:
    async with node_store(load_settings(config)) as (store, _):
        return await row_counts(store)


def crafted(frames: list[bytes], *, count: int | None = None) -> bytes:
    """A transfer file with a correct checksum (it is plain SHA-256: anyone can recompute it)."""
    head = msgspec.msgpack.encode(
        CarryHeader(exporter="T01V01", recipient="T01", created=1, count=len(frames) if count is None else count)
    )
    body = MAGIC + bytes([1]) + struct.pack(">I", len(head)) + head
    body += b"".join(struct.pack(">I", len(f)) + f for f in frames)
    return body + hashlib.sha256(body).digest()


def test_twenty_thousand_empty_frames_are_refused_quickly_writing_nothing(
    county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "crafted.sjx"
    path.write_bytes(crafted([b""] * 20_000))
    before = asyncio.run(counts(town(county)))
    started = time.monotonic()
    assert carry_cmd.run_import(town(county), path) == 2
    assert time.monotonic() - started < 20  # was 49 s and 20,000 event rows
    out = capsys.readouterr().out
    assert "batch 1 in the transfer file is 0 bytes" in out and "Traceback" not in out
    assert asyncio.run(counts(town(county))) == before


def test_junk_frames_of_plausible_size_write_a_bounded_summary(county: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "junk.sjx"
    path.write_bytes(crafted([b"SJB\x01" + bytes([i % 256]) * 90 for i in range(2000)]))
    before = asyncio.run(counts(town(county)))
    assert carry_cmd.run_import(town(county), path) == 1
    after = asyncio.run(counts(town(county)))
    assert after["events"] - before["events"] <= 5  # three examples, one count of the rest, the import itself
    assert {k: v for k, v in after.items() if k != "events"} == {k: v for k, v in before.items() if k != "events"}


@pytest.mark.parametrize("case", ["directory", "missing", "too_big", "bad_checksum", "more_than_announced"])
def test_every_bad_argument_gets_a_clear_message_and_no_traceback(
    county: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    path = tmp_path / "file.sjx"
    good = crafted([b"x" * 100])
    expect = {
        "directory": "is a directory",
        "missing": "does not exist",
        "too_big": "is larger than",
        "bad_checksum": "checksum mismatch",
        "more_than_announced": "more batches than the 0 it announces",
    }[case]
    if case == "directory":
        path.mkdir()
    elif case == "too_big":
        with path.open("wb") as fh:  # sparse: 2 GiB + 1 without writing them; refused before reading
            fh.truncate(MAX_CARRY_BYTES + 1)
    elif case == "bad_checksum":
        path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    elif case == "more_than_announced":
        path.write_bytes(crafted([b"x" * 100], count=0))
    assert carry_cmd.run_import(town(county), path) == 2
    out = capsys.readouterr().out
    assert expect in out and "Traceback" not in out, out


def test_the_scanner_keeps_one_frame_in_memory_whatever_the_chunking() -> None:
    frames = [bytes([i]) * (100 + i) for i in range(50)]
    data = crafted(frames)
    for chunk in (1, 7, 4096, len(data)):
        scanner = CarryScanner(len(data), keep=True)
        got: list[bytes] = []
        for i in range(0, len(data), chunk):
            got += scanner.feed(data[i : i + chunk])
            assert len(scanner._buf) <= max(chunk, 200) + 4
        assert scanner.finish().count == 50 and got == frames
    with pytest.raises(FrameTooLarge):
        CarryScanner(MAX_CARRY_BYTES + 1, keep=False)
    with pytest.raises(FrameError, match="announces"):
        CarryScanner(len(big := crafted([], count=10**9)), keep=False).feed(big)


def test_import_does_not_read_the_file_into_memory(county: Cluster, tmp_path: Path) -> None:
    """A sound file of ~60 MB of (unverifiable) frames: resident memory grows by far less than the file."""
    import resource

    path = tmp_path / "big.sjx"
    frame = b"SJB\x01" + os.urandom(60_000)
    path.write_bytes(crafted([frame] * 1000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    carry_cmd.run_import(town(county), path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 40 * 1024, f"resident memory grew by {grown_kib} KiB"

"""Coverage-guided fuzzing (atheris / libFuzzer) of what a node reads: batches and transfer files.

Not collected by pytest (the file name does not start with ``test_``); run it by hand::

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz/atheris_batch.py -max_total_time=300          # five minutes
    .venv/bin/python tests/fuzz/atheris_batch.py -runs=200000 corpus_dir/     # keep a corpus

The first input byte picks the target; the rest is the input:

    0  protocol.batch.open_frame on the raw bytes
    1  open_frame on a frame *validly signed* by a directory key around the bytes as payload
       (the signature is checked first; this reaches the payload and body decoders behind it)
    2  protocol.carry.read_carry on the raw bytes
    3  read_carry on the bytes with a correct trailing checksum (reaches the parser behind it),
       then open_frame on every frame it yields

Contract: only ``protocol.errors.SanjiError`` subclasses may be raised. Anything else is a
crash that libFuzzer reports with the input that caused it (saved as ``crash-<sha1>``);
replay it with ``.venv/bin/python tests/fuzz/atheris_batch.py crash-<sha1>``.
"""

from __future__ import annotations

import hashlib
import struct
import sys

import atheris

with atheris.instrument_imports():
    from protocol.batch import FORMAT_VERSION, MAGIC, open_frame
    from protocol.carry import read_carry
    from protocol.errors import SanjiError
    from protocol.signing import SigningKey
    from protocol.topology import Directory, NodeEntry

KEY = SigningKey.from_private_bytes(bytes(range(32)))  # fixed, so crashes replay
DIRECTORY = Directory(
    [
        NodeEntry(id="C", role="county"),
        NodeEntry(id="T01", role="town", parent="C"),
        NodeEntry(id="T01V01", role="village", parent="T01", keys=(KEY.record("T01V01"),)),
    ]
)


def signed_frame(payload: bytes) -> bytes:
    kid = KEY.key_id.encode()
    signed = MAGIC + bytes([FORMAT_VERSION, len(kid)]) + kid + struct.pack(">I", len(payload)) + payload
    signature = KEY.sign(signed)
    return signed + struct.pack(">H", len(signature)) + signature


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[0] % 4, data[1:]
    try:
        if target == 0:
            open_frame(body, DIRECTORY)
        elif target == 1:
            open_frame(signed_frame(body), DIRECTORY)
        elif target == 2:
            read_carry(body)
        else:
            carried = read_carry(body + hashlib.sha256(body).digest())
            for frame in carried.frames:
                try:
                    open_frame(frame, DIRECTORY)
                except SanjiError:
                    pass
    except SanjiError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Sanji's wire protocol: what every node agrees on.

Pure: msgspec, cryptography and the standard library only — no I/O, no
database, no web framework — so the same rules run in nodes and simulations.
"""

from protocol.actions import (
    Accept,
    Action,
    Applicant,
    Decide,
    Deliver,
    HandOff,
    Note,
    Receive,
    Register,
    is_main_line,
    kind_of,
)
from protocol.batch import GENESIS, Batch, BatchPayload, frame_hash, open_frame, seal
from protocol.errand import ErrandState, Projection, judge, project
from protocol.errors import (
    ActionRefused,
    ChainError,
    ChainFork,
    ChainGap,
    FrameError,
    FrameTooLarge,
    RouteError,
    SanjiError,
    SignatureError,
    UnsupportedFormat,
)
from protocol.hlc import HybridClock
from protocol.signing import KeyRecord, SigningKey
from protocol.stream import StreamKey, Verdict, classify
from protocol.topology import COUNTY, TOWN, VILLAGE, Directory, NodeEntry

__all__ = [
    "COUNTY",
    "GENESIS",
    "TOWN",
    "VILLAGE",
    "Accept",
    "Action",
    "ActionRefused",
    "Applicant",
    "Batch",
    "BatchPayload",
    "ChainError",
    "ChainFork",
    "ChainGap",
    "Decide",
    "Deliver",
    "Directory",
    "ErrandState",
    "FrameError",
    "FrameTooLarge",
    "HandOff",
    "HybridClock",
    "KeyRecord",
    "NodeEntry",
    "Note",
    "Projection",
    "Receive",
    "Register",
    "RouteError",
    "SanjiError",
    "SignatureError",
    "SigningKey",
    "StreamKey",
    "UnsupportedFormat",
    "Verdict",
    "classify",
    "frame_hash",
    "is_main_line",
    "judge",
    "kind_of",
    "open_frame",
    "project",
    "seal",
]

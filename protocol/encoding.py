"""Canonical encoding: msgpack via msgspec, with typed strict decoders."""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.actions import Action

_encoder = msgspec.msgpack.Encoder(order="deterministic")
_action_decoder = msgspec.msgpack.Decoder(Action)
_actions_decoder = msgspec.msgpack.Decoder(list[Action])


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode_action(data: bytes) -> Action:
    action: Action = _action_decoder.decode(data)
    return action


def decode_actions(data: bytes) -> list[Action]:
    return _actions_decoder.decode(data)

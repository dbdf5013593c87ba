"""``sanji keys init``: create a node's signing key and print its public key record."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec

from protocol.signing import SigningKey
from sanji.keys import create_sealing_key, write_key


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="manage node keys")
    inner = keys.add_subparsers(dest="action", required=True)
    init = inner.add_parser("init", help="create a node's Ed25519 signing key")
    init.add_argument("--node", required=True, help="node id, e.g. T01V02")
    init.add_argument("--out", required=True, help="where to write the private key (mode 600)")
    init.add_argument("--force", action="store_true", help="overwrite an existing key")
    init.add_argument(
        "--sealing",
        action="store_true",
        help="also create the X25519 key that personal data is sealed to (node.enc.key beside it); "
        "prints its record as a second line",
    )
    init.set_defaults(func=lambda args: run(args.node, Path(args.out), force=args.force, sealing=args.sealing))
    rotate = inner.add_parser(
        "rotate",
        help="make a new signing key; the running node has its parent certify it in its next exchange "
        "and switches to it (the old key signs nothing after that point)",
    )
    rotate.add_argument("--config", required=True, help="the node's TOML config")
    rotate.set_defaults(func=lambda args: run_rotate(args.config))


def run(node: str, out: Path, *, force: bool = False, sealing: bool = False) -> int:
    if out.exists() and not force:
        print(f"error: {out} exists; a node keeps its key (use --force to replace it)")
        return 2
    key = SigningKey.generate()
    write_key(out, key)
    print(msgspec.json.encode(key.record(node)).decode())
    if sealing:
        try:
            _, sealing_key = create_sealing_key(out, force=force)
        except FileExistsError as exc:
            print(f"error: {exc}")
            return 2
        print(msgspec.json.encode(sealing_key.record(node)).decode())
    return 0


def run_rotate(config: str) -> int:
    from sanji.config import ConfigError, load_settings
    from sanji.sync.trust_step import next_key_path

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    path = next_key_path(settings.path(settings.node.key_file))
    if path.exists():
        print(f"a rotation is already waiting for the parent: {path}")
        return 0
    key = SigningKey.generate()
    write_key(path, key)
    print(f"new signing key {key.key_id} written to {path}; the node switches to it in its next exchange")
    return 0

"""``sanji keys ...``: create a node's keys, protect them with a passphrase, rotate the signing key.

``keys init`` prints the public key records; with ``--passphrase-env NAME`` it writes the key
files protected by the passphrase in that environment variable (``sanji.keys``). ``keys protect``
converts a node's existing plain key files in place. A node opens protected files when its config
names the variable: ``[node] key_passphrase_env = "SANJI_KEY_PASSPHRASE"``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

import msgspec

from protocol.signing import SigningKey
from sanji.cli import say
from sanji.cli.args import node_id_arg
from sanji.keys import (
    KIND_SEALING,
    KIND_SIGNING,
    KeyFileError,
    Passphrase,
    create_sealing_key,
    passphrase_from_env,
    protect_key_file,
    read_key,
    sealing_key_path,
    write_key,
)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="manage node keys")
    inner = keys.add_subparsers(dest="action", required=True)
    init = inner.add_parser("init", help="create a node's Ed25519 signing key")
    init.add_argument("--node", required=True, type=node_id_arg, help="node id, e.g. T01V02")
    init.add_argument("--out", required=True, help="where to write the private key (mode 600)")
    init.add_argument("--force", action="store_true", help="overwrite an existing key")
    init.add_argument(
        "--sealing",
        action="store_true",
        help="also create the X25519 key that personal data is sealed to (node.enc.key beside it); "
        "prints its record as a second line",
    )
    init.add_argument(
        "--passphrase-env",
        default="",
        metavar="NAME",
        help="protect the key files with the passphrase in this environment variable (asked for on a terminal "
        'if unset); the node\'s config then needs [node] key_passphrase_env = "NAME"',
    )
    init.set_defaults(
        func=lambda args: run(
            args.node, Path(args.out), force=args.force, sealing=args.sealing, passphrase_env=args.passphrase_env
        )
    )
    protect = inner.add_parser(
        "protect",
        help="encrypt a node's existing key files in place with a passphrase (scrypt + ChaCha20-Poly1305)",
    )
    protect.add_argument("--config", required=True, help="the node's TOML config")
    protect.add_argument(
        "--passphrase-env",
        default="",
        metavar="NAME",
        help="the environment variable holding the passphrase (default: [node] key_passphrase_env)",
    )
    protect.set_defaults(func=lambda args: run_protect(args.config, passphrase_env=args.passphrase_env))
    rotate = inner.add_parser(
        "rotate",
        help="make a new signing key; the running node has its parent certify it in its next exchange "
        "and switches to it (the old key signs nothing after that point)",
    )
    rotate.add_argument("--config", required=True, help="the node's TOML config")
    rotate.set_defaults(func=lambda args: run_rotate(args.config))


def ask_passphrase(env: str, *, new: bool) -> Passphrase:
    """The passphrase in ``env`` (or its systemd credential); on a terminal, typed (twice when ``new``)."""
    found = passphrase_from_env(env)
    if found is not None:
        return found
    if not sys.stdin.isatty():
        raise KeyFileError(
            f"the key passphrase variable {env} is not set",
            hint=f"Set {env} to the passphrase (e.g. `read -rs {env}; export {env}`) and run the command again.",
        )
    typed = getpass.getpass(f"key passphrase ({env} is not set): ")
    if new and getpass.getpass("the same passphrase again: ") != typed:
        raise KeyFileError("the two passphrases differ; nothing was written")
    if not typed:
        raise KeyFileError("no passphrase typed; nothing was written")
    return typed


def run(node: str, out: Path, *, force: bool = False, sealing: bool = False, passphrase_env: str = "") -> int:
    if out.exists() and not force:
        say.error(
            f"密钥文件已存在，节点沿用原有密钥（确需更换请加 --force）：{out}",
            f"{out} exists; a node keeps its key (use --force to replace it)",
        )
        return 2
    try:
        passphrase = ask_passphrase(passphrase_env, new=True) if passphrase_env else None
        key = SigningKey.generate()
        write_key(out, key, passphrase)
    except KeyFileError as exc:
        return _refused(exc)
    print(msgspec.json.encode(key.record(node)).decode())
    if sealing:
        try:
            _, sealing_key = create_sealing_key(out, force=force, passphrase=passphrase)
        except FileExistsError as exc:
            say.failure(exc)
            return 2
        print(msgspec.json.encode(sealing_key.record(node)).decode())
    if passphrase_env:
        say.info(
            f"已用环境变量 {passphrase_env} 中的口令加密；"
            f'请在节点配置的 [node] 中写 key_passphrase_env = "{passphrase_env}"',
            f'protected with the passphrase from {passphrase_env}; put key_passphrase_env = "{passphrase_env}" '
            "under [node] in the node's config",
            file=sys.stderr,
        )
    return 0


def run_protect(config: str, *, passphrase_env: str = "") -> int:
    """Protect the node's key files in place: node.key, node.enc.key, a waiting rotation, retired keys."""
    from sanji.config import ConfigError, load_settings
    from sanji.sync.trust_step import next_key_path

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        say.failure(exc)
        return 2
    env = passphrase_env or settings.node.key_passphrase_env
    if not env:
        say.error(
            "请指明存放口令的环境变量：--passphrase-env 变量名，或在配置的 [node] 中写 key_passphrase_env",
            "name the environment variable holding the passphrase: --passphrase-env NAME, "
            "or [node] key_passphrase_env in the config",
        )
        return 2
    key_path = settings.path(settings.node.key_file)
    if not key_path.exists():
        say.error(
            f"密钥文件不存在，请先生成节点密钥（`sanji keys init`）：{key_path}",
            f"{key_path} does not exist; create the node's keys first (`sanji keys init`)",
        )
        return 2
    files = [(key_path, KIND_SIGNING), (sealing_key_path(key_path), KIND_SEALING)]
    files.append((next_key_path(key_path), KIND_SIGNING))
    files += [(p, KIND_SIGNING) for p in sorted(key_path.parent.glob(f"{key_path.name}.retired-*"))]
    converted = 0
    try:
        passphrase = ask_passphrase(env, new=True)
        for path, kind in files:
            if not path.exists() or path.name.endswith(".tmp"):
                continue
            done = protect_key_file(path, kind, passphrase)
            converted += done
            print(f"{path}: {say.both('已加密', 'protected') if done else say.both('此前已加密', 'already protected')}")
    except KeyFileError as exc:
        return _refused(exc)
    if settings.node.key_passphrase_env != env:
        say.info(
            f'请在 {config} 的 [node] 中写 key_passphrase_env = "{env}"：节点知道口令在哪里之前打不开自己的密钥',
            f'now put key_passphrase_env = "{env}" under [node] in {config}: '
            "the node cannot open its keys until it knows where the passphrase is",
        )
    if converted:
        say.info(
            "未加密的密钥内容可能仍残留在磁盘空闲空间中；见 deploy/README.md",
            "the plain key bytes may survive in the disk's free space; see deploy/README.md",
        )
    return 0


def run_rotate(config: str) -> int:
    from sanji.config import ConfigError, load_settings
    from sanji.sync.trust_step import next_key_path

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        say.failure(exc)
        return 2
    key_path = settings.path(settings.node.key_file)
    path = next_key_path(key_path)
    if path.exists():
        say.info(f"已有一个新密钥在等待上级节点认证：{path}", f"a rotation is already waiting for the parent: {path}")
        return 0
    env = settings.node.key_passphrase_env
    try:
        # The new key is protected like the node's own: the passphrase must open the current key.
        passphrase = ask_passphrase(env, new=False) if env else None
        if passphrase is not None:
            read_key(key_path, passphrase)
        key = SigningKey.generate()
        write_key(path, key, passphrase)
    except KeyFileError as exc:
        return _refused(exc)
    say.info(
        f"新签名密钥 {key.key_id} 已写入 {path}；节点在下一次同步时换用它",
        f"new signing key {key.key_id} written to {path}; the node switches to it in its next exchange",
    )
    return 0


def _refused(exc: KeyFileError) -> int:
    say.failure(exc)
    return 2

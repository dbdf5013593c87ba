"""``sanji trust ...`` and ``sanji enroll ...``: the root of trust, certificates, enrollment, revocation.

At the county, once: ``trust init-root`` makes three root keys (for three officials to keep
apart, offline) and root version 1; ``trust certify-hub`` has two of them certify the hub.
Then every parent enrolls its children: ``enroll issue`` prints a one-time token (text and a
QR code), and on the child's machine ``enroll join`` redeems it for a certificate bound to
that machine's database. ``trust revoke`` withdraws a key below this node; the revocation
travels with the next exchanges. ``trust rotate-root`` replaces the root keys (two old and
two new signatures).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import msgspec
import segno

from protocol.enrollment import EnrollResponse, decode_token, encode_token, make_request
from protocol.errors import SanjiError
from protocol.limits import MAX_REQUEST_BYTES
from protocol.signing import SigningKey
from protocol.topology import ROLES
from protocol.trust import (
    ROOT_ISSUER,
    TrustState,
    make_certificate,
    make_root,
    parse_document,
    root_fingerprint,
    sign_document,
)
from protocol.wire import decode
from sanji.cli import say
from sanji.cli.args import node_id_arg
from sanji.config import ConfigError, NodeSettings, load_settings
from sanji.keys import NodeKey, read_key, write_key
from sanji.node_directory import directory_entries, node_directory
from sanji.store import Store, open_database
from sanji.store.repo import database_instance
from sanji.store.trustbook import TrustBook


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    trust = sub.add_parser("trust", help="the county's root of trust, certificates and revocations")
    inner = trust.add_subparsers(dest="action", required=True)

    init = inner.add_parser("init-root", help="make the root keys and root version 1 (county, once)")
    init.add_argument("--county", required=True, type=node_id_arg, help="the top hub's node id, e.g. C (or S)")
    init.add_argument("--out", required=True, help="directory for root-1.key, root-2.key, root-3.key and root.sjt")
    init.add_argument("--keys", type=int, default=3)
    init.add_argument("--threshold", type=int, default=2)
    init.set_defaults(func=lambda a: run_init_root(a.county, Path(a.out), keys=a.keys, threshold=a.threshold))

    hub = inner.add_parser("certify-hub", help="certify the county hub with a threshold of root keys")
    hub.add_argument("--config", required=True, help="the hub's TOML config")
    hub.add_argument("--root", required=True, help="root.sjt from init-root")
    hub.add_argument("--root-key", action="append", required=True, help="a root key file (give two)")
    hub.set_defaults(func=lambda a: _run(certify_hub(a.config, Path(a.root), [Path(k) for k in a.root_key])))

    rotate = inner.add_parser("rotate-root", help="replace the root keys: signed by the old threshold and the new")
    rotate.add_argument("--config", required=True, help="the hub's TOML config")
    rotate.add_argument("--old-key", action="append", required=True, help="a current root key file (give two)")
    rotate.add_argument("--out", required=True, help="directory for the new root keys")
    rotate.set_defaults(func=lambda a: _run(rotate_root(a.config, [Path(k) for k in a.old_key], Path(a.out))))

    show = inner.add_parser("show", help="the root, certificates and revocations this node holds")
    show.add_argument("--config", required=True)
    show.set_defaults(func=lambda a: _run(show_trust(a.config)))

    revoke = inner.add_parser("revoke", help="revoke a key of a node below this one (travels with the next sync)")
    revoke.add_argument("--config", required=True)
    revoke.add_argument("--node", required=True, type=node_id_arg)
    revoke.add_argument("--key", default="", help="one key id (default: every signing key of the node)")
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(func=lambda a: _run(revoke_key(a.config, a.node, a.key, a.reason)))

    enroll = sub.add_parser("enroll", help="join a node to the tree with a one-time token from its parent")
    einner = enroll.add_subparsers(dest="action", required=True)
    issue = einner.add_parser("issue", help="issue a one-time enrollment token for a child of this node")
    issue.add_argument("--config", required=True, help="the parent's TOML config")
    issue.add_argument(
        "--node",
        required=True,
        type=node_id_arg,
        help="the new node's id, e.g. T01V03 (1-64 of A-Z a-z 0-9 _ -)",
    )
    issue.add_argument("--role", required=True, choices=[r for r in ROLES if r != ROLES[0]])
    issue.add_argument("--name", default="", help="display name, e.g. 东岭村")
    issue.add_argument("--days", type=float, default=7.0, help="days the token stays valid")
    issue.add_argument("--qr", default="", help="also write the QR code to this file (.png or .svg)")
    issue.add_argument("--by", default="", help="who issued it (for the log)")
    issue.set_defaults(func=lambda a: _run(issue_token(a.config, a.node, a.role, a.name, a.days, a.qr, a.by)))

    join = einner.add_parser("join", help="redeem a token: make keys if needed and fetch this node's certificate")
    join.add_argument("--config", required=True, help="the new node's TOML config ([parent] url must be set)")
    join.add_argument("--token", required=True, help="the token text (SJE1-...)")
    join.add_argument("--name", default="")
    join.set_defaults(func=lambda a: _run(join_tree(a.config, a.token, a.name)))


def _run(coro: object) -> int:
    try:
        return int(asyncio.run(coro))  # type: ignore[arg-type]
    except (ConfigError, SanjiError, FileNotFoundError, ValueError) as exc:
        say.failure(exc, other="证书或入网操作未完成")
        return 2


def _now_ms() -> int:
    return int(time.time() * 1000)


def run_init_root(county: str, out: Path, *, keys: int = 3, threshold: int = 2) -> int:
    if (out / "root.sjt").exists():
        say.error(
            f"信任根已存在，县级信任根只建一次（此后用 `trust rotate-root` 更换）：{out / 'root.sjt'}",
            f"{out / 'root.sjt'} exists; a county makes its root once (then `trust rotate-root`)",
        )
        return 2
    made = [SigningKey.generate() for _ in range(keys)]
    for index, key in enumerate(made, 1):
        write_key(out / f"root-{index}.key", key)
    doc = sign_document(make_root(made, county=county, threshold=threshold, now_ms=_now_ms()), made)
    (out / "root.sjt").write_bytes(doc)
    fingerprint = root_fingerprint(doc)
    say.info(
        f"{county} 的信任根第 1 版：{keys} 把根密钥，需 {threshold} 把；指纹 {fingerprint}",
        f"root version 1 for {county}: {keys} keys, {threshold} needed; fingerprint {fingerprint}",
    )
    files = ", ".join(f"root-{i}.key" for i in range(1, keys + 1))
    say.info(
        f"请把 {files} 分别交给不同的负责人离线保管",
        f"give each of {files} to a different official, offline",
    )
    return 0


def _read_root_keys(paths: list[Path]) -> list[SigningKey]:
    return [read_key(p) for p in paths]


@asynccontextmanager
async def node_trust(settings: NodeSettings) -> AsyncIterator[TrustBook]:
    """This node's store and trust book, opened from its files (the node need not be running)."""
    key = read_key(settings.path(settings.node.key_file), passphrase_env=settings.node.key_passphrase_env)
    db = await open_database(settings.db_url)
    try:
        store = Store(db, node_id=settings.node.id, key=key, directory=await node_directory(settings, db))
        await store.start()
        book = TrustBook(store, base=directory_entries(settings), required=settings.trust.required)
        await book.load()
        yield book
    finally:
        await db.dispose()


@asynccontextmanager
async def _store_under(settings: NodeSettings, state: TrustState, key: NodeKey) -> AsyncIterator[TrustBook]:
    """A store whose directory comes from ``state`` (a node being certified has no directory yet)."""
    db = await open_database(settings.db_url)
    try:
        base = directory_entries(settings)
        store = Store(db, node_id=settings.node.id, key=key, directory=state.directory(base))
        await store.start()
        yield TrustBook(store, base=base, required=settings.trust.required)
    finally:
        await db.dispose()


async def certify_hub(config: str, root_path: Path, root_keys: list[Path]) -> int:
    # The hub at the top of the tree: a county, or the city (province) hub above the counties.
    settings = load_settings(config)
    root_doc = await asyncio.to_thread(root_path.read_bytes)
    state = TrustState(root_doc)
    if state.county != settings.node.id:
        raise SanjiError(f"the root certifies hub {state.county}, this config is {settings.node.id}")
    signers = _read_root_keys(root_keys)
    usable = {k.key_id for k in signers} & {k.key_id for k in state.root.keys}
    if len(usable) < state.root.threshold:
        stray = len(root_keys) - len(usable)
        raise SanjiError(
            f"certifying the hub takes {state.root.threshold} different keys of this root; got {len(usable)}"
            + (f" ({stray} of the key files given are not keys of this root, or repeat one)" if stray else ""),
            hint=f"Give --root-key once for each of {state.root.threshold} root key files "
            "(root-1.key, root-2.key, ... from `sanji trust init-root`), held by different officials.",
        )
    key = read_key(settings.path(settings.node.key_file), passphrase_env=settings.node.key_passphrase_env)
    db = await open_database(settings.db_url)
    try:
        instance = await database_instance(db)
    finally:
        await db.dispose()
    cert = make_certificate(
        node=settings.node.id,
        role=settings.node.role,
        parent=None,
        keys=key.records(settings.node.id),
        issuer=ROOT_ISSUER,
        now_ms=_now_ms(),
        instance=instance,
        name=settings.node.name,
    )
    doc = sign_document(cert, signers)
    result = state.add_many([doc], now_ms=_now_ms())[0]
    if result.status != "added":
        raise SanjiError(f"the hub certificate does not verify: {result.message or 'too few valid root signatures'}")
    async with _store_under(settings, state, key) as book:
        await book.install_root(root_doc)
        await book.add([doc])
    say.info(
        f"已认证枢纽节点 {settings.node.id}（证书序号 {cert.serial}，数据库 {instance}）",
        f"certified hub {settings.node.id} (serial {cert.serial}, database {instance})",
    )
    return 0


async def rotate_root(config: str, old_keys: list[Path], out: Path) -> int:
    settings = load_settings(config)
    async with node_trust(settings) as book:
        if book.state is not None and book.state.county != settings.node.id:
            raise SanjiError(
                f"the root is rotated at the top of the tree, by {book.state.county}; this is {settings.node.id}"
            )
        if book.state is None:
            raise SanjiError("this hub holds no root yet; run `sanji trust init-root` and `certify-hub` first")
        current = book.state.root
        made = [SigningKey.generate() for _ in range(len(current.keys))]
        for index, key in enumerate(made, 1):
            write_key(out / f"root-v{current.version + 1}-{index}.key", key)
        new = make_root(
            made, county=current.county, version=current.version + 1, threshold=current.threshold, now_ms=_now_ms()
        )
        doc = sign_document(new, [*_read_root_keys(old_keys), *made])
        await book.add([doc])
        if book.state.root.version != new.version:
            raise SanjiError("the new root does not verify: give a threshold of the current root keys")
    say.info(
        f"信任根第 {new.version} 版已安装；随之后的同步下发",
        f"root version {new.version} installed; it travels down with the next exchanges",
    )
    return 0


async def show_trust(config: str) -> int:
    settings = load_settings(config)
    async with node_trust(settings) as book:
        if book.state is None:
            say.info(
                "没有信任根：本节点按其 directory.json 运行", "no root of trust: this node runs on its directory.json"
            )
            return 0
        root = book.state.root
        say.info(
            f"信任根第 {root.version} 版，枢纽 {root.county}，{len(root.keys)} 把根密钥中需 {root.threshold} 把",
            f"root version {root.version}, hub {root.county}, {root.threshold} of {len(root.keys)} keys",
        )
        # One row each, its fields in fixed places (scripts read them): the words before them Chinese first.
        for cert in book.state.certificates():
            days = (cert.not_after - _now_ms()) / 86_400_000
            print(
                f"  {say.both('证书', 'cert')} {cert.serial} {cert.node:10} {cert.role:8} "
                f"parent={cert.parent or '-':8} issuer={cert.issuer:8} keys={','.join(k.key_id for k in cert.keys)} "
                f"{say.both(f'剩余 {days:.0f} 天', f'{days:.0f} days left')}"
            )
        for rev in book.state.revocations():
            key_id = rev.retirement.key_id
            print(f"  {say.both('已吊销', 'revoked')} {key_id} of {rev.node} by {rev.issuer}: {rev.reason}")
        for raw in book.state.pending():
            doc = parse_document(raw)
            print(f"  {say.both('等待其签发节点', 'waiting for its issuer')}: {doc.kind} {doc.id}")
    return 0


async def revoke_key(config: str, node: str, key_id: str, reason: str) -> int:
    settings = load_settings(config)
    async with node_trust(settings) as book:
        await book.revoke(node, key_id=key_id, reason=reason, issued_by=settings.node.id)
    say.info(
        f"已吊销 {node} 的{key_id or '签名密钥'}；吊销随之后的同步下发",
        f"revoked {key_id or 'the signing keys'} of {node}; the revocation goes out with the next exchanges",
    )
    return 0


async def issue_token(config: str, node: str, role: str, name: str, days: float, qr: str, by: str) -> int:
    settings = load_settings(config)
    async with node_trust(settings) as book:
        issued = await book.issue_token(node=node, role=role, name=name, issued_by=by, days=days)
    text = encode_token(issued.token)
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(issued.expires_at))
    say.info(
        f"{node}（{role}）的入网令牌，有效期至 {until}：", f"enrollment token for {node} ({role}), valid until {until}:"
    )
    print(text)
    code = segno.make(text, error="m")
    if qr:
        code.save(qr, scale=6, border=4)
        say.info(f"二维码已写入 {qr}", f"QR code written to {qr}")
    else:
        code.terminal(compact=True)
    return 0


async def join_tree(config: str, token_text: str, name: str) -> int:
    settings = load_settings(config)
    token = decode_token(token_text)
    if token.node != settings.node.id or token.role != settings.node.role:
        raise SanjiError(
            f"the token is for {token.node} ({token.role}); this config is {settings.node.id} ({settings.node.role})"
        )
    if settings.parent is None:
        raise SanjiError("the config has no [parent] url to enroll with")
    key_path = settings.path(settings.node.key_file)
    if key_path.exists():
        key = read_key(key_path, passphrase_env=settings.node.key_passphrase_env)
        if key.sealing is None:
            raise SanjiError(f"{key_path} has no sealing key beside it; make one with `sanji keys init --sealing`")
    else:
        key = NodeKey.generate_pair()
        write_key(key_path, key, passphrase_env=settings.node.key_passphrase_env)
    db = await open_database(settings.db_url)
    try:
        instance = await database_instance(db)
    finally:
        await db.dispose()
    request = make_request(
        token, key=key, keys=key.records(settings.node.id), instance=instance, name=name or settings.node.name
    )
    try:
        async with httpx.AsyncClient(base_url=settings.parent.url.rstrip("/"), timeout=60.0) as client:
            reply = await client.post(
                "/sync/v1/enroll",
                content=msgspec.msgpack.encode(request),
                headers={"content-type": "application/msgpack"},
            )
    except httpx.HTTPError as exc:
        raise SanjiError(
            f"could not reach the parent at {settings.parent.url}: {exc or type(exc).__name__}",
            hint="Check [parent] url in the config and that the parent node is running, then run the command again.",
        ) from None
    if reply.status_code != 200:
        try:
            detail = reply.json()
        except ValueError:
            detail = {"message": reply.text[:200]}
        raise SanjiError(f"the parent refused the enrollment ({reply.status_code}): {detail.get('message', '')}")
    response = decode(reply.content, EnrollResponse, what="the parent's enrollment answer", max_bytes=MAX_REQUEST_BYTES)
    roots = [raw for raw in response.bundle if parse_document(raw).kind == "root"]
    if not roots or root_fingerprint(roots[0]) != token.root:
        raise SanjiError(
            "the parent handed over a root of trust other than the one the token names: enrollment stopped",
            hint="Check that [parent] url points at the node that issued the token.",
        )
    state = TrustState(roots[0])
    state.add_many([*response.bundle, response.certificate], now_ms=_now_ms())
    if settings.node.id not in state.directory():
        raise SanjiError("the certificate the parent issued does not verify against the root")
    async with _store_under(settings, state, key) as book:
        await book.install_root(roots[0])
        await book.add([*response.bundle, response.certificate], peer=token.parent)
    say.info(
        f"{settings.node.id} 已加入 {token.parent} 之下（数据库 {instance}）；"
        f"用 `sanji {settings.node.role} serve` 启动",
        f"{settings.node.id} enrolled under {token.parent} (database {instance}); "
        f"start it with `sanji {settings.node.role} serve`",
    )
    return 0

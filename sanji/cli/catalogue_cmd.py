"""``sanji catalogue``: check a county's matter catalogue file, and sign it for every node.

``check FILE`` prints every problem with its row (or table) and field, Chinese first (``sanji.cli.say``),
and exits 2 if there is any; ``sign FILE --key KEYFILE --out OUT`` writes the signed envelope
(``protocol.catalogue``) only for a catalogue that checks clean. Nothing is
written when there is anything to fix.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from protocol.catalogue import CatalogueError, catalogue_digest, sign_catalogue
from sanji.catalogue.loader import load_catalogue
from sanji.cli import say
from sanji.keys import read_key


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("catalogue", help="check and sign the county's matter catalogue (事项目录)")
    inner = p.add_subparsers(dest="action", required=True)
    check = inner.add_parser("check", help="list every problem of a catalogue file (.toml, .json, .xlsx)")
    check.add_argument("file", help="the catalogue file")
    check.set_defaults(func=lambda a: run_check(Path(a.file)))
    sign = inner.add_parser("sign", help="sign a catalogue file with the county's key")
    sign.add_argument("file", help="the catalogue file (.toml, .json, .xlsx)")
    sign.add_argument("--key", required=True, help="the county node's private key file")
    sign.add_argument("--out", required=True, help="where to write the signed catalogue")
    sign.set_defaults(func=lambda a: run_sign(Path(a.file), Path(a.key), Path(a.out)))


def run_check(path: Path) -> int:
    try:
        catalogue = load_catalogue(path)
    except CatalogueError as exc:
        say.document_failure(exc, "目录", str(path))
        return 2
    departments = sum(1 for m in catalogue.matters if m.department)
    say.info(
        f"{path}：{catalogue.county}事项目录第{catalogue.version}版（{catalogue.published_at}），"
        f"共 {len(catalogue.matters)} 个事项（其中 {departments} 个由县级部门审批）：没有发现问题",
        f"{path}: {catalogue.county} catalogue v{catalogue.version} of {catalogue.published_at}, "
        f"{len(catalogue.matters)} matters ({departments} decided by a county department): no problems",
    )
    return 0


def run_sign(path: Path, key_path: Path, out: Path) -> int:
    try:
        catalogue = load_catalogue(path)
    except CatalogueError as exc:
        say.document_failure(exc, "目录", str(path))
        return 2
    try:
        key = read_key(key_path)
    except (OSError, ValueError) as exc:
        say.error(f"不能用作签名密钥：{key_path}", f"cannot use {key_path} as a signing key: {exc}")
        return 2
    blob = sign_catalogue(catalogue, key)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, out)
    digest = catalogue_digest(blob)
    say.info(
        f"已用密钥 {key.key_id} 签发{catalogue.county}事项目录第{catalogue.version}版"
        f"（{len(catalogue.matters)} 个事项）→ {out}（{len(blob)} 字节，sha256 {digest}）",
        f"signed {catalogue.county} catalogue v{catalogue.version} ({len(catalogue.matters)} matters) "
        f"with key {key.key_id} -> {out} ({len(blob)} bytes, sha256 {digest})",
    )
    return 0

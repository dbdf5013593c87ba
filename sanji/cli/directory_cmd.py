"""``sanji directory``: the county's list of nodes, their places in the tree and their public keys.

Until enrollment with certificates exists, the county administrator keeps this
file and copies it to every node; ``add`` takes the record ``sanji keys init`` printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec

from protocol.enrollment import new_node_problem, node_name_problem
from protocol.signing import KeyRecord
from protocol.topology import ROLES, Directory, NodeEntry, regional
from sanji.cli import say
from sanji.cli.args import node_id_arg
from sanji.keys import read_directory, write_directory


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("directory", help="maintain the county's node directory")
    inner = p.add_subparsers(dest="action", required=True)
    add = inner.add_parser("add", help="add a node (or replace its entry) in the directory file")
    add.add_argument("--directory", required=True, help="path of directory.json (created if missing)")
    add.add_argument("--node", required=True, type=node_id_arg)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--parent", type=node_id_arg, help="parent node id (none for the county hub)")
    add.add_argument("--name", default="", help="display name, e.g. 城关镇便民服务中心")
    add.add_argument("--key-record", required=True, help="the JSON line printed by `sanji keys init`")
    add.set_defaults(func=lambda a: run_add(Path(a.directory), a.node, a.role, a.parent, a.name, a.key_record))
    show = inner.add_parser("show", help="print the tree")
    show.add_argument("--directory", required=True)
    show.set_defaults(func=lambda a: run_show(Path(a.directory)))


# What a refused ``directory add`` did not do; the rule's own words (Chinese, then English) follow it.
NOT_RECORDED_ZH = "未写入节点目录："


def run_add(path: Path, node: str, role: str, parent: str | None, name: str, *key_records: str) -> int:
    records = []
    for key_record in key_records:
        try:
            record = msgspec.json.decode(key_record.encode(), type=KeyRecord)
        except msgspec.DecodeError as exc:
            say.error(
                "密钥记录（--key-record）不是 `sanji keys init` 打印的那一行",
                f"--key-record is not a key record printed by `sanji keys init`: {exc}",
            )
            return 2
        if record.node != node:
            say.error(
                f"该密钥记录属于 {record.node}，不是 {node}", f"that key record belongs to {record.node}, not {node}"
            )
            return 2
        records.append(record)
    current = read_directory(path) if path.exists() else Directory([])
    if parent is not None and parent in current:  # the rule the enrollment desks ask (an unknown parent: below)
        problem = new_node_problem(
            node,
            parent=parent,
            parent_role=current.role(parent),
            under_region=any(regional(current.role(a)) for a in current.path(parent)),
            known=(e.id for e in current.nodes()),
        )
        if problem:
            say.error(NOT_RECORDED_ZH, problem)
            return 2
    if problem := node_name_problem(name):
        say.error(NOT_RECORDED_ZH, f"--name: {problem}")
        return 2
    entries = [e for e in current.nodes() if e.id != node]
    entries.append(NodeEntry(id=node, role=role, parent=parent, name=name, keys=tuple(records)))
    try:
        Directory(entries)
    except ValueError as exc:
        say.error("这样改会使节点目录前后矛盾，未写入", f"the directory would be inconsistent: {exc}")
        return 2
    write_directory(path, entries)
    say.info(f"已将 {node}（{role}）写入 {path}", f"{node} ({role}) recorded in {path}")
    return 0


def run_show(path: Path) -> int:
    directory = read_directory(path)

    def walk(node_id: str, depth: int) -> None:
        entry = directory.get(node_id)
        print(f"{'  ' * depth}{entry.id}  {entry.role}  {entry.name}")
        for child in directory.children(node_id):
            walk(child, depth + 1)

    for root in (e.id for e in directory.nodes() if e.parent is None):
        walk(root, 0)
    return 0

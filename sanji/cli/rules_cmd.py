"""``sanji rules``: the county's quarterly assessment rules (考核细则), shown and published.

    sanji rules show    --config node.toml [--json]        # the version this node holds
    sanji rules publish --config county.toml RULES.json    # county hub: sign it; it travels down

``show --json`` prints the rules in the form ``publish`` reads, so a county edits the held version
(raising ``version``) and publishes it. Exit 0 on success, 2 when the file or the node cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from protocol.assessment import AssessmentRules, publish_problems
from protocol.errors import SanjiError
from sanji.cli import say
from sanji.cli.common import node_store
from sanji.config import ConfigError, load_settings
from sanji.office.rules_routes import publish_rules, rules_held


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("rules", help="the county's assessment rules (考核细则): show, publish")
    inner = p.add_subparsers(dest="rules_command", required=True)
    show = inner.add_parser("show", help="the assessment rules this node holds")
    show.add_argument("--config", required=True, help="the node's TOML config")
    show.add_argument("--json", action="store_true", help="print the rules as JSON (what publish reads)")
    show.set_defaults(func=lambda a: _run(run_show(a.config, as_json=a.json)))
    publish = inner.add_parser("publish", help="county hub: sign the rules file (JSON) and send it down the tree")
    publish.add_argument("--config", required=True, help="the county hub's TOML config")
    publish.add_argument("file")
    publish.set_defaults(func=lambda a: _run(run_publish(a.config, Path(a.file))))


def _run(coro: Any) -> int:
    try:
        return int(asyncio.run(coro))
    except (
        ConfigError,
        SanjiError,
        OSError,
    ) as exc:  # an office refusal says it in Chinese too: first, as the desk does
        say.failure(exc, file=sys.stderr, other="考核细则未发布")
        return 2


def _summary_zh(rules: AssessmentRules) -> str:
    return (
        f"{rules.county} 考核细则第 {rules.version} 版（{rules.published_at}）：人员考核 {len(rules.parts)} 部分，"
        f"{len(rules.items)} 个条目，{len(rules.grades)} 个等次"
    )


def _summary(rules: AssessmentRules) -> str:
    return (
        f"{rules.county} assessment rules v{rules.version} of {rules.published_at}: "
        f"{len(rules.parts)} staff parts, {len(rules.items)} items, {len(rules.grades)} grades"
    )


async def run_show(config: str, *, as_json: bool) -> int:
    async with node_store(load_settings(config)) as (_, context):
        rules = await rules_held(context)
    if as_json:
        print(json.dumps(msgspec.to_builtins(rules), ensure_ascii=False, indent=2))
        return 0
    say.info(_summary_zh(rules), _summary(rules))
    for item in rules.items:
        print(f"  {item.target:<6} {item.code:<30} {item.points:>+6g}  {item.name}")
    return 0


def read_rules_file(path: Path) -> AssessmentRules:
    try:
        return msgspec.json.decode(path.read_bytes(), type=AssessmentRules)
    except msgspec.DecodeError as exc:  # ValidationError included: names the field
        raise SanjiError(f"{path}: {exc}", hint="Start from `sanji rules show --json` and edit it.") from None


async def run_publish(config: str, path: Path) -> int:
    rules = read_rules_file(path)
    problems = publish_problems(rules)  # what signing asks, said here whole, before the store is opened
    if problems:
        say.error(
            f"考核细则有 {len(problems)} 处问题，请逐条改正", f"{path}: {len(problems)} problem(s)", file=sys.stderr
        )
        for problem in problems:
            print(f"  {problem.zh}", file=sys.stderr)
            print(f"    {problem.en}", file=sys.stderr)
        return 2
    async with node_store(load_settings(config)) as (_, context):
        await publish_rules(context, rules)
    say.info(f"已发布{_summary_zh(rules)}", f"published {_summary(rules)}")
    say.info("各乡镇和村在下一次同步时收到", "every township and village takes it with its next exchange")
    return 0

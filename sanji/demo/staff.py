"""The people at every desk, played by a script through each node's own JSON API.

Nothing here reaches into a node's database: the demo sees exactly what a desk
would see, and the convergence check uses the digests the nodes publish.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.topology import Directory
from sanji.catalogue import default_catalogue
from sanji.client import NodeApiError, NodeClient
from sanji.demo.population import matter, matter_by_code, person

# Each desk's person: the name the actions carry as their actor (as a logged-in account's name is), and the post
# in its own field (``role``), so the assessment counts one 王芳, not "王芳" and "综合窗口 A岗 王芳". The names are
# the demo's accounts (``DEMO_ACCOUNTS``): what the script does and what a reviewer logged in as 王芳 does add up.
STAFF = {"county": "赵敏", "town": "王芳", "village": "李建国"}
POSTS = {"county": "审批员", "town": "窗口A岗", "village": "代办员"}


@dataclass
class Desk:
    node_id: str
    role: str
    client: NodeClient
    memory: set[str] = field(default_factory=set)


@dataclass
class Tally:
    registered: int = 0
    actions: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)


def next_step(desk: Desk, errand: dict[str, Any], rng: random.Random, memory: set[str]) -> dict[str, Any] | None:
    """What the person at this desk does next with this errand, or None if it is not theirs to move.

    ``memory`` is what this desk remembers having done (a review, a rating) that the summary does not show.
    """
    actor = STAFF.get(desk.role)
    if actor is None:  # a city (province) desk reads and supervises; the rule lets it move nothing
        return None
    stage = errand["stage"]
    if errand.get("pending_to") == desk.node_id:
        return {"kind": "receive", "actor": actor}
    if errand.get("pending_to"):
        return None
    known = matter_by_code(errand["matter"])
    department = known.department if known else ""
    key = errand["id"]
    if desk.role == "village" and stage == "registered":
        return {"kind": "submit", "actor": actor}
    if desk.role == "town" and stage == "received":
        kind = "上报件" if department else ("即办件" if known and known.immediate else "承诺件")
        return {"kind": "accept", "actor": actor, "errand_kind": kind, "window": "综合窗口"}
    if stage in ("accepted", "at_department"):
        if not errand.get("handler"):
            return {"kind": "assign", "actor": actor, "window": "综合窗口", "handler": actor}
        if desk.role == "town" and department:
            return {"kind": "escalate", "actor": actor, "department": department}
        if f"reviewed:{key}" not in memory:
            memory.add(f"reviewed:{key}")
            return {"kind": "review", "actor": actor, "passed": True, "text": "材料齐全,符合条件"}
        outcome = "refused" if desk.role == "county" and rng.random() < 0.15 else "approved"
        document = f"{desk.node_id}-{errand['receipt']}号"  # the decision's number (文号); its title comes by category
        step = {
            "kind": "decide",
            "actor": actor,
            "outcome": outcome,
            "document": document,
            "department": errand.get("department", ""),
        }
        if outcome == "refused":  # a refusal states its reasons (rules 2)
            step["reasons"] = "经入户调查核实，家庭人均收入高于当地标准，不符合申请条件"
        return step
    if stage in ("decided", "result_ready"):
        if errand["scope"] == desk.node_id:
            return {
                "kind": "deliver",
                "actor": actor,
                "confirmed_by": errand["applicant_name"],
                "signature": f"签名:{errand['applicant_name']}",
            }
        return {"kind": "send_result", "actor": actor}
    if stage == "delivered" and errand["scope"] == desk.node_id:
        if f"rated:{key}" not in memory:
            memory.add(f"rated:{key}")
            level = rng.choices(["满意", "基本满意", "不满意"], weights=[85, 12, 3])[0]
            return {"kind": "rate", "actor": errand["applicant_name"], "role": "申请人", "level": level}
        return {"kind": "close", "actor": actor, "archive_no": f"DA-{errand['receipt']}"}
    return None


def _not_by_proxy(code: str) -> bool:
    entry = default_catalogue().get(code)
    return entry is not None and (entry.in_person or not entry.proxy_allowed)


async def register_errands(desks: list[Desk], count: int, rng: random.Random, tally: Tally) -> list[str]:
    villages = [d for d in desks if d.role == "village"]
    ids = []
    for i in range(count):
        desk = villages[i % len(villages)]
        who = person(rng)
        what = matter(rng)
        result = await desk.client.register(
            matter=what.code,
            applicant_name=who.name,
            applicant_id_number=who.id_number,
            applicant_phone=who.phone,
            materials=["身份证复印件", "户口簿复印件", "申请书"],
            summary=f"{who.name}申请{what.name}",
            actor=STAFF["village"],
            role="代办员",
            # A matter closed to proxy service is registered with the applicant present (the rule refuses a proxy).
            in_person=_not_by_proxy(what.code),
        )
        ids.append(result["errand"])
        tally.registered += 1
    return ids


async def work_desk(desk: Desk, rng: random.Random, tally: Tally) -> int:
    """One pass over a desk's worklist; returns how many steps were taken."""
    done = 0
    for errand in await desk.client.worklist():
        step = next_step(desk, errand, rng, desk.memory)
        if step is None:
            continue
        step.setdefault("role", POSTS.get(desk.role, ""))  # the post beside the name, never inside it
        try:
            version = None if step["kind"] in ("rate", "note") else errand["version"]
            await desk.client.act(errand["id"], expected_version=version, **step)
            done += 1
            tally.actions += 1
        except NodeApiError as exc:
            if exc.status in (404, 409):  # the errand moved meanwhile; the next pass sees it fresh
                tally.refused += 1
                continue
            raise
    return done


@dataclass
class Convergence:
    converged: bool
    errands: int
    mismatched: list[str]
    misplaced: list[str]
    by_node: dict[str, dict[str, str]]


async def check_convergence(desks: list[Desk], directory: Directory) -> Convergence:
    by_node = dict(
        zip([d.node_id for d in desks], await asyncio.gather(*(d.client.digests() for d in desks)), strict=True)
    )
    all_ids = set().union(*(set(v) for v in by_node.values()))
    mismatched, misplaced = [], []
    for errand_id in sorted(all_ids):
        scope = errand_id.rsplit("-", 1)[0]
        path = directory.path(scope)
        holders = {n for n, digests in by_node.items() if errand_id in digests}
        if holders - set(path):
            misplaced.append(errand_id)
        digests = {by_node[n].get(errand_id) for n in path}
        if len(digests) != 1 or None in digests:
            mismatched.append(errand_id)
    return Convergence(
        converged=not mismatched and not misplaced,
        errands=len(all_ids),
        mismatched=mismatched,
        misplaced=misplaced,
        by_node=by_node,
    )


async def stage_counts(desks: list[Desk]) -> dict[str, dict[str, int]]:
    nodes = await asyncio.gather(*(d.client.node() for d in desks))
    return {d.node_id: dict(Counter(n["errands_by_stage"])) for d, n in zip(desks, nodes, strict=True)}


# -- the staff's accounts, for logging in to the demo's screens (``sanji demo --serve``) ---------------------

DEMO_PASSWORD = "sanji-demo-1"  # the demo's alone: its nodes run open, and say so on every page
# (name, post, county department, window) per tier: the county's department clerks each answer for their own
# department (sanji.auth.roles.place_refusal), a township's window staff for the urgings naming their window and
# the errands the township accepted or assigned at it (sanji.auth.roles.window_step_refusal);
# the director, the supervisor and the approver with no department act for the whole node.
DEMO_ACCOUNTS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "county": (
        ("赵敏", "approver", "县民政局", ""),
        ("钱进", "approver", "县人社局", ""),
        ("孙立", "approver", "县医保局", ""),
        ("吴审", "approver", "", ""),
        ("周明", "supervisor", "", ""),
    ),
    "town": (
        ("王芳", "window_a", "", "综合窗口"),
        ("李红", "window_a", "", "社会救助窗口"),
        ("陈主任", "director", "", ""),
    ),
}


async def seed_accounts(configs: dict[str, Path]) -> list[str]:
    """The demo's staff accounts at each county hub and township (``configs``: node id -> its config), with
    ``DEMO_PASSWORD``; an account already there is left as it is. One line per node, to print."""
    from sanji.auth.book import AccountExists, AuthBook, Who
    from sanji.auth.service import AuthService
    from sanji.config import load_settings
    from sanji.store import open_database

    lines = []
    for node_id, config in configs.items():
        settings = load_settings(config)
        staff = DEMO_ACCOUNTS.get(settings.node.role, ())
        if not staff:
            continue
        db = await open_database(settings.db_url)
        try:
            auth = AuthService(AuthBook(db), settings.auth, node_id=node_id, node_role=settings.node.role)
            for name, role, department, window in staff:
                try:
                    await auth.add_account(
                        name, role, DEMO_PASSWORD, by=Who(via="demo"), department=department, window=window
                    )
                except AccountExists:
                    pass
        finally:
            await db.dispose()
        placed = [f"{n}({d or w or '整个节点 whole node'})" for n, _, d, w in staff]
        lines.append(f"{node_id}: " + ", ".join(placed))
    return lines

"""Ids as ``sanji.service`` mints them: time first, so a store's keys grow at one edge (issue 15), in the shape
the bounds and the columns took before (32 hex digits; ``<node>-`` + 16 hex digits), and unique without a
network. Older, random ids keep working beside them: only which rival wins a version follows the new order."""

from __future__ import annotations

import re
import time
import uuid

import msgspec
from test_store_sqlite import VILLAGE, StoreOpener, register, submit

from protocol.bounds import MAX_NAME, MAX_NODE_ID, action_problem, line_problem, node_id_problem
from protocol.errand import judge, project
from protocol.hlc import HybridClock, pack, wall_ms
from sanji.catalogue import default_catalogue
from sanji.context import NodeContext
from sanji.forms import RegisterForm
from sanji.layout import Layout
from sanji.service import ErrandService, new_action_id, new_errand_id
from tests.conftest import CALENDAR

MS = 1_765_000_000_000  # 2025-12-06, in milliseconds since the epoch
ACTION_ID = re.compile(r"[0-9a-f]{32}")


def errand_shape(node: str) -> re.Pattern[str]:
    return re.compile(re.escape(node) + r"-[0-9a-f]{16}")


def test_action_ids_sort_by_the_time_they_were_minted_not_the_order() -> None:
    later = new_action_id(pack(MS + 1, 0))
    earlier = new_action_id(pack(MS, 0))
    assert earlier < later
    assert int(earlier[:12], 16) == MS and int(later[:12], 16) == MS + 1

    # From a running hybrid clock: its wall part orders them, whatever the random tail says.
    now = [MS]
    clock = HybridClock(now_ms=lambda: now[0])
    minted = []
    for step in range(50):
        now[0] = MS + 7 * step
        minted.append(new_action_id(clock.now()))
    assert minted == sorted(minted)

    # Without a timestamp, this machine's clock.
    before = time.time_ns() // 1_000_000
    mine = new_action_id()
    assert before <= int(mine[:12], 16) <= time.time_ns() // 1_000_000


def test_errand_ids_sort_by_the_second_they_were_minted_within_a_node() -> None:
    later = new_errand_id(VILLAGE, MS / 1000 + 1)
    earlier = new_errand_id(VILLAGE, MS / 1000)
    assert earlier < later
    assert int(earlier.rpartition("-")[2][:8], 16) == MS // 1000
    before = int(time.time())
    mine = new_errand_id(VILLAGE)
    assert before <= int(mine.rpartition("-")[2][:8], 16) <= int(time.time())


def test_ids_keep_the_shape_and_bounds_of_the_random_ones(layout: Layout) -> None:
    for _ in range(200):
        action = new_action_id(pack(MS, 3))
        assert ACTION_ID.fullmatch(action) and len(action) == len(uuid.uuid4().hex)
        assert line_problem("id", action) is None
    longest = "N" * MAX_NODE_ID
    assert node_id_problem(longest) is None
    for node in (VILLAGE, "C1-T01V01", longest):  # a node id may hold "-": the node is what precedes the last one
        errand = new_errand_id(node)
        assert errand_shape(node).fullmatch(errand) and len(errand) == len(f"{node}-{'0' * 16}")
        assert errand.rsplit("-", 1)[0] == node
        assert len(errand) <= MAX_NAME and line_problem("errand", errand) is None

    # A real registration under new ids passes the rule every replica applies.
    errand = new_errand_id(VILLAGE, MS / 1000)
    action = msgspec.structs.replace(register(errand, 1), id=new_action_id(pack(MS, 1)))
    assert action_problem(action) is None
    assert judge(None, action, layout.directory) is None


def test_ids_minted_in_one_millisecond_or_second_differ() -> None:
    at = pack(MS, 0)
    actions = {new_action_id(at) for _ in range(20_000)}
    assert len(actions) == 20_000
    assert len({a[:12] for a in actions}) == 1  # the same millisecond: only the random tail tells them apart
    now = [MS]
    clock = HybridClock(now_ms=lambda: now[0])  # a frozen wall clock: the counter moves, the millisecond not
    assert len({new_action_id(clock.now()) for _ in range(5_000)}) == 5_000
    # 32 random bits a second per node: 300 in one second collide with odds of about 1 in 100,000.
    assert len({new_errand_id(VILLAGE, MS / 1000) for _ in range(300)}) == 300


async def test_a_desk_mints_time_ordered_ids_from_its_stores_clock(open_store: StoreOpener) -> None:
    store = await open_store(VILLAGE)
    now = [MS]
    store.clock = HybridClock(store.clock.last, now_ms=lambda: now[0])
    context = NodeContext(store, CALENDAR)
    context.catalogue = default_catalogue()
    desk = ErrandService(store, context)
    made = []
    for i in range(3):
        now[0] = MS + 1500 * i
        made.append(await desk.register(RegisterForm(matter="MZ-001", applicant_name=f"王{i}", actor="代办")))
    errands = [p.errand for p in made]
    assert errands == sorted(errands)
    assert [int(e.rpartition("-")[2][:8], 16) for e in errands] == [(MS + 1500 * i) // 1000 for i in range(3)]
    firsts = [p.main[0] for p in made]
    assert firsts == sorted(firsts)
    assert [int(a[:12], 16) for a in firsts] == [MS + 1500 * i for i in range(3)]
    for p in made:
        assert p.state is not None and wall_ms(p.state.registered_at) == int(p.main[0][:12], 16)


def test_of_two_rivals_the_earlier_minted_wins_and_an_old_random_id_still_takes_part(layout: Layout) -> None:
    errand = new_errand_id(VILLAGE, MS / 1000)
    first = msgspec.structs.replace(register(errand, 1), id=new_action_id(pack(MS, 0)))
    early = msgspec.structs.replace(submit(errand, 2), id=new_action_id(pack(MS + 10, 0)))
    late = msgspec.structs.replace(submit(errand, 3), id=new_action_id(pack(MS + 20, 0)))
    for order in ([first, early, late], [late, first, early], [early, late, first]):
        got = project(errand, order, layout.directory)
        assert got.main == (first.id, early.id) and late.id in got.rejected
    # An id minted before 0.4.0 is random hex: beside a new one (leading "0" until the year 2527) it
    # usually sorts after, and loses, whenever it was minted. The order is the ids' and the same everywhere.
    old = msgspec.structs.replace(submit(errand, 4), id="f" + uuid.uuid4().hex[1:])
    for order in ([first, old, late], [late, old, first]):
        got = project(errand, order, layout.directory)
        assert got.main == (first.id, late.id) and old.id in got.rejected

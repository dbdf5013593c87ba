"""``bench.prefill`` on PostgreSQL: the same copies, rows and checks, written with asyncpg.

The copies go in with ``COPY`` (``copy_records_to_table``), a commit every ``prefill.COMMIT_EVERY``
copies with ``synchronous_commit`` off (setup, not measurement), then ``ANALYZE`` so the planner knows
the tables' sizes, as autovacuum would tell it on a county that grew to them. The bulk-insert limit is
``executemany`` of the same ``INSERT`` in one transaction, committed durably as the store commits.
Its throwaway databases are made and dropped by ``devtools.throwaway_pg`` (the ``SANJI_PG_*`` server).
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from bench import prefill
from devtools import throwaway_pg
from protocol.encoding import decode_action
from protocol.errand import project
from protocol.topology import Directory


async def connect(name: str) -> asyncpg.Connection:
    return await throwaway_pg.connect(name, wait_s=10)


async def read_reference(name: str, directory: Directory) -> prefill.Reference:
    conn = await connect(name)
    try:
        columns: dict[str, list[str]] = {}
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for table in prefill.TABLES:
            statement = await conn.prepare(f"SELECT * FROM {table} ORDER BY 1, 2")
            columns[table] = [attribute.name for attribute in statement.get_attributes()]
            rows[table] = [tuple(r) for r in await statement.fetch()]
    finally:
        await conn.close()
    return prefill.reference_from(columns, rows, directory)


def insert_sql(ref: prefill.Reference, table: str) -> str:
    cols = ref.columns[table]  # quoted: "window" is a reserved word in PostgreSQL
    names = ", ".join(f'"{c}"' for c in cols)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 1))})"


async def prefill_copies(name: str, ref: prefill.Reference, copies: int) -> dict[str, Any]:
    started = time.perf_counter()
    build_s = 0.0
    conn = await connect(name)
    try:
        await conn.execute("SET synchronous_commit = off")
        for first in range(0, copies, prefill.COMMIT_EVERY):
            async with conn.transaction():
                for index in range(first, min(copies, first + prefill.COMMIT_EVERY)):
                    mark = time.perf_counter()
                    rows = prefill.copy_rows(ref, index, prefill.HELD_SUFFIX, index - copies)
                    build_s += time.perf_counter() - mark
                    for table, records in (
                        ("batches", rows.batches),
                        ("actions", rows.actions),
                        ("errands", rows.errands),
                    ):
                        await conn.copy_records_to_table(table, records=records, columns=ref.columns[table])
        if copies:
            streams = prefill.stream_rows(ref, copies, prefill.HELD_SUFFIX)
            await conn.copy_records_to_table("streams", records=streams, columns=ref.columns["streams"])
        await conn.execute("ANALYZE")
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()
    return prefill.filled(ref, copies, time.perf_counter() - started, build_s, size)


async def bulk_insert_limit(name: str, ref: prefill.Reference) -> dict[str, Any]:
    """``prefill.bulk_insert_limit`` on PostgreSQL: asyncpg ``executemany``, one transaction."""
    rows = prefill.copy_rows(ref, 0, prefill.LIMIT_SUFFIX, 1)
    streams = prefill.stream_rows(ref, 1, prefill.LIMIT_SUFFIX)
    conn = await connect(name)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.executemany(insert_sql(ref, "batches"), rows.batches)
            await conn.executemany(insert_sql(ref, "actions"), rows.actions)
            await conn.executemany(insert_sql(ref, "errands"), rows.errands)
            await conn.executemany(insert_sql(ref, "streams"), streams)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return prefill.limit("asyncpg executemany", ref, len(streams), seconds)


async def counts(name: str) -> dict[str, int]:
    conn = await connect(name)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in prefill.TABLES}
    finally:
        await conn.close()


async def size_bytes(name: str) -> int:
    conn = await connect(name)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


async def check_projections(name: str, errand_ids: list[str], directory: Directory) -> int:
    """``prefill.check_projections`` on PostgreSQL."""
    conn = await connect(name)
    try:
        for errand in errand_ids:
            digest = await conn.fetchval("SELECT digest FROM errands WHERE id = $1", errand)
            if digest is None:
                raise AssertionError(f"prefilled errand {errand} has no row")
            bodies = await conn.fetch(
                "SELECT body FROM actions WHERE errand = $1 AND status != $2", errand, prefill.FOREIGN
            )
            proj = project(errand, [decode_action(b[0]) for b in bodies], directory)
            if proj.digest != digest:
                raise AssertionError(f"prefilled errand {errand}: its actions project to another digest")
    finally:
        await conn.close()
    return len(errand_ids)

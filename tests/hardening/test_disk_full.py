"""A full disk is the node's condition, not a bug and not the caller's fault: a write that meets it answers
503 ``disk_full`` (retry once there is room), saves nothing of itself and loses nothing already saved, and
the next write after space is freed goes through. SQLite's own answer to a full disk (SQLITE_FULL), made
real by capping the database's pages (``PRAGMA max_page_count``: SQLite then fails exactly as when the
filesystem has no room), on a village node's real file through its real HTTP routes; and a real full
filesystem (a small tmpfs) where this machine lets a test mount one."""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sanji.web.errors import disk_full
from tests.public.test_lookup_and_complaints import APPLICANT
from tests.screens.screens_kit import make_app, prepared_node


def _count(client: TestClient[Litestar]) -> int:
    listed = client.get("/api/errands")
    assert listed.status_code == 200, listed.text
    return int(listed.json()["total"])


def _cap_pages(client: TestClient[Litestar], extra: int | None) -> None:
    """No page beyond the database's present ones (``extra`` None: SQLite's default cap again)."""
    db = client.app.state.runtime.store.db

    async def cap() -> None:
        async with db.writer.connect() as conn:  # the writer's one connection: the cap holds for every write
            pages = int((await conn.exec_driver_sql("PRAGMA page_count")).scalar_one())
            limit = 4_294_967_294 if extra is None else pages + extra
            await conn.exec_driver_sql(f"PRAGMA max_page_count = {limit}")

    client.blocking_portal.call(cap)


def _refused_as_full(response: object) -> None:
    status, body = getattr(response, "status_code", 0), getattr(response, "json", dict)()
    assert status == 503, body
    assert body["error"] == "disk_full" and body["retryable"] is True, body


def test_a_write_that_finds_the_database_full_is_a_503_and_the_next_one_after_room_is_made_goes_through(
    tmp_path: Path,
) -> None:
    _, settings = prepared_node(tmp_path, "T01V01")
    with TestClient(make_app(settings)) as client:
        first = client.post("/api/errands", json=APPLICANT)
        assert first.status_code == 201, first.text
        _cap_pages(client, 0)
        answers = [client.post("/api/errands", json=APPLICANT) for _ in range(20)]  # the free pages used up
        statuses = [a.status_code for a in answers]
        assert 503 in statuses and statuses == sorted(statuses), statuses  # full once, full from then on
        assert set(statuses) <= {201, 503}, statuses
        refused = answers[-1]
        _refused_as_full(refused)
        assert refused.headers["retry-after"] == "60"
        saved = 1 + statuses.count(201)
        assert _count(client) == saved  # nothing of a refused registration; every saved one whole
        assert client.get(f"/api/errands/{first.json()['errand']}").status_code == 200
        _cap_pages(client, None)  # room again
        again = client.post("/api/errands", json=APPLICANT)
        assert again.status_code == 201, again.text
        assert _count(client) == saved + 1


def test_full_disk_errors_are_told_apart_from_others() -> None:
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk_full(ValueError("x"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0 or shutil.which("mount") is None:
        pytest.skip(f"this machine does not let a test mount a small filesystem: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def test_a_node_whose_filesystem_fills_answers_503_and_keeps_what_it_had(small_disk: Path) -> None:
    _, settings = prepared_node(small_disk, "T01V01")
    with TestClient(make_app(settings)) as client:
        filler = small_disk / "filler"
        with filler.open("wb", buffering=0) as out:  # the rest of the disk, taken by something else
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        statuses = [client.post("/api/errands", json=APPLICANT).status_code for _ in range(40)]
        assert 500 not in statuses, statuses
        assert 503 in statuses, statuses  # the disk filled up
        saved = statuses.count(201)
        assert _count(client) == saved  # every registration answered 201 is there, and no other
        filler.unlink()  # room again
        after = client.post("/api/errands", json=APPLICANT)
        assert after.status_code == 201, after.text
        assert _count(client) == saved + 1

"""Which migration a store is at, read without Alembic: the same answer as Alembic's own reading."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from sanji.store import open_database
from sanji.store.revisions import alembic_config, carried, code_head


def test_the_migrations_read_from_their_files_are_alembics() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert code_head() == script.get_current_head()
    assert carried() == {s.revision: s.down_revision for s in script.walk_revisions()}


async def test_a_current_store_opens_without_loading_alembic_or_openpyxl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    db = await open_database(url)  # created and migrated here, with Alembic
    await db.dispose()
    # A node opening it again (a restart) needs neither: ≈ 17 MB less on a village laptop (issue 16).
    probe = (
        "import asyncio, sys\n"
        "from sanji.store import open_database\n"
        "import sanji.web.app\n"
        f"db = asyncio.run(open_database({url!r}))\n"
        "asyncio.run(db.dispose())\n"
        "print(sorted(m for m in ('alembic', 'openpyxl') if m in sys.modules))\n"
    )
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr

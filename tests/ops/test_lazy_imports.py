"""What a serving node imports: never test tooling, and not what it loads only when used (issue 16's footprint).

A fresh interpreter does what ``sanji village serve`` does before it answers — parse its command line and
build the app from a config — and the modules it holds are compared with two lists.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sanji.demo.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]

# Product code never imports these, at any tier.
TEST_TOOLING = ("hypothesis", "pytest", "_pytest", "schemathesis", "devtools", "tests", "faker", "polyfactory")
# Loaded when used, not at start: the demo launcher and evidence checker (other commands), httpx's own CLI
# (rich, pygments), QR codes (a printed receipt), migrations (a store behind the code), spreadsheets (an
# export), the PostgreSQL dialects (a hub on PostgreSQL), pinyin (the first matter search, issue 13), Jinja
# (the first page rendered, sanji.web.templating), SQLAlchemy's ORM (no node uses it, sanji.store.lean_asyncio),
# uvicorn's command line and reloader (sanji.cli.lean_uvicorn).
LAZY = (
    "rich",
    "pygments",
    "segno",
    "alembic",
    "mako",
    "openpyxl",
    "sanji.evidence",
    "sanji.demo",
    "sqlalchemy.dialects.postgresql",
    "asyncpg",
    "matplotlib",
    "PIL",
    "qrcode",
    "pypinyin",
    "jinja2",
    "litestar.plugins.jinja",
    "sqlalchemy.orm",
    "click",
    "uvicorn.main",
    "uvicorn.supervisors",
    "multiprocessing",
)

PROBE = """
import json, sys
from sanji.config import load_settings
import sanji.cli.main as entry
entry.build_parser({role!r})
from {package}.app import create_app
create_app(load_settings({config!r}))
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("role,package", [("village", "village_agent"), ("town", "town_node")])
def test_a_serving_node_imports_no_test_tooling_and_nothing_it_loads_on_demand(
    tmp_path: Path, role: str, package: str
) -> None:
    cluster = Cluster.prepare(tmp_path / "tree", towns=1, villages_per_town=1, open_demo=True)
    node = "T01V01" if role == "village" else "T01"
    code = PROBE.format(role=role, package=package, config=str(cluster.nodes[node].config))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    held = json.loads(out.stdout.strip().splitlines()[-1])

    def found(names: tuple[str, ...]) -> list[str]:
        return sorted(m for m in held if any(m == n or m.startswith(n + ".") for n in names))

    assert found(TEST_TOOLING) == []
    assert found(LAZY) == []


def test_httpx_still_works_without_its_command_line_client() -> None:
    code = (
        "import sanji.cli.main, httpx, sys\n"
        "print(httpx.URL('http://127.0.0.1:1/x').path, 'rich' in sys.modules, callable(httpx.main))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["/x", "False", "True"]


def test_the_orm_session_still_loads_when_asked_for() -> None:
    code = (
        "import sys, sanji.store\n"
        "from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine\n"
        "before = 'sqlalchemy.orm' in sys.modules\n"
        "from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker\n"
        "import sqlalchemy.ext.asyncio as package\n"
        "print(before, 'sqlalchemy.orm' in sys.modules, AsyncSession.__name__, 'async_scoped_session' in dir(package))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "True", "AsyncSession", "True"]


def test_uvicorn_still_has_everything_when_asked_for() -> None:
    code = (
        "import sys, sanji.cli.serve, uvicorn\n"
        "before = 'click' in sys.modules\n"
        "print(before, uvicorn.Config is sanji.cli.serve.Config, callable(uvicorn.run), 'click' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "True", "True", "True"]

"""protocol's public surface is frozen, and protocol stays pure (no web framework, no database).

Both checks run in a fresh interpreter: what ``import protocol`` pulls in must not depend on what
the test session imported before, and the package must be the real one (``tests/protocol`` is
also a directory named "protocol").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

EXPORTED = [
    "Accept",
    "Action",
    "ActionRefused",
    "Applicant",
    "Batch",
    "BatchPayload",
    "COUNTY",
    "ChainError",
    "ChainFork",
    "ChainGap",
    "Decide",
    "Deliver",
    "Directory",
    "ErrandState",
    "FrameError",
    "FrameTooLarge",
    "GENESIS",
    "HandOff",
    "HybridClock",
    "KeyRecord",
    "NodeEntry",
    "Note",
    "Projection",
    "Receive",
    "Register",
    "RouteError",
    "SanjiError",
    "SignatureError",
    "SigningKey",
    "StreamKey",
    "TOWN",
    "UnsupportedFormat",
    "VILLAGE",
    "Verdict",
    "classify",
    "frame_hash",
    "is_main_line",
    "judge",
    "kind_of",
    "open_frame",
    "project",
    "seal",
]

FORBIDDEN = ["aiosqlite", "alembic", "asyncpg", "httpx", "jinja2", "litestar", "sanji", "sqlalchemy", "uvicorn"]


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_exported_names_are_frozen() -> None:
    out = run_python(
        "import json, types, protocol\n"
        "public = sorted(n for n, v in vars(protocol).items()\n"
        "                if not n.startswith('_') and not isinstance(v, types.ModuleType))\n"
        "missing = [n for n in protocol.__all__ if not hasattr(protocol, n)]\n"
        "print(json.dumps({'all': protocol.__all__, 'public': public, 'missing': missing,\n"
        "                  'file': protocol.__file__}))"
    )
    info = json.loads(out)
    assert sorted(EXPORTED) == EXPORTED
    assert Path(info["file"]) == REPO / "protocol" / "__init__.py"
    assert sorted(info["all"]) == EXPORTED
    assert len(info["all"]) == len(set(info["all"]))
    assert info["missing"] == []
    # Nothing public sits in the package namespace without being exported (or the other way round).
    assert info["public"] == EXPORTED


def test_protocol_imports_no_web_framework_or_database() -> None:
    out = run_python(
        f"import protocol, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {set(FORBIDDEN)!r}))"
    )
    assert out == "[]"


def test_every_protocol_module_is_pure_on_its_own() -> None:
    modules = sorted(p.stem for p in (REPO / "protocol").glob("*.py") if p.stem != "__init__")
    assert {"actions", "batch", "errand", "stream", "signing", "topology", "hlc", "session"} <= set(modules)
    out = run_python(
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('protocol.' + name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FORBIDDEN)!r}))"
    )
    assert out == "[]"


def test_the_check_would_notice_a_forbidden_import() -> None:
    out = run_python(
        f"import protocol, httpx, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {set(FORBIDDEN)!r}))"
    )
    assert "httpx" in out

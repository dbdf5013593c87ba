"""Helpers for the enrollment tests: a county bootstrapped with the real ``sanji`` CLI, nodes served on loopback.

``run_cli(*argv)``        runs ``sanji ...`` in this process (``sanji.cli.main.main``) and returns
                          (exit code, what it printed).
``certify_county(...)``   ``trust init-root`` and ``trust certify-hub`` (two of three root keys) on a
                          county written by ``Cluster.prepare``.
``token_text(out)``       the ``SJE1-...`` line ``enroll issue`` printed.
``serving(app, port)``    a node's app served by uvicorn on a loopback port, in a background thread,
                          as the browser tests serve theirs.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from litestar import Litestar

from protocol.enrollment import TOKEN_PREFIX
from sanji.cli.main import main
from sanji.demo.cluster import Cluster

ROOT_KEYS = ("root-1.key", "root-2.key", "root-3.key")


def run_cli(*argv: str | Path) -> tuple[int, str]:
    """``sanji argv...`` as typed: (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    return code, out.getvalue()


def certify_county(cluster: Cluster, root_dir: Path) -> None:
    """Make the root of trust (three keys, two needed) and certify the hub with two of them."""
    code, out = run_cli("trust", "init-root", "--county", "C", "--out", root_dir)
    assert code == 0, out
    code, out = run_cli(
        "trust",
        "certify-hub",
        "--config",
        cluster.nodes["C"].config,
        "--root",
        root_dir / "root.sjt",
        "--root-key",
        root_dir / ROOT_KEYS[0],
        "--root-key",
        root_dir / ROOT_KEYS[1],
    )
    assert code == 0, out


def token_text(out: str) -> str:
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith(TOKEN_PREFIX + "-")]
    assert len(lines) == 1, f"expected one token line in:\n{out}"
    return lines[0]


def issue(config: Path, node: str, role: str, *extra: str) -> str:
    """``sanji enroll issue`` at ``config``'s node; returns the token text."""
    code, out = run_cli("enroll", "issue", "--config", config, "--node", node, "--role", role, *extra)
    assert code == 0, out
    return token_text(out)


def join(config: Path, token: str) -> None:
    code, out = run_cli("enroll", "join", "--config", config, "--token", token)
    assert code == 0, out


@contextlib.contextmanager
def serving(app: Litestar, port: int, *, name: str = "node") -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a background thread; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"{name}-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start within 15 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

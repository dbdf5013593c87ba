"""Real nodes for a benchmark to measure: ``sanji <role> serve`` processes on loopback, each with its own config,
key and the directory file, spawned, waited for until they answer, and stopped.

Benchmarks time these processes from outside (HTTP, ``/proc``), so they run exactly as deployed: no in-process
shortcut that would share this interpreter's CPU, imports or event loop with the measuring side.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from protocol.signing import SigningKey
from protocol.topology import NodeEntry
from sanji.demo.cluster import free_port
from sanji.keys import write_directory, write_key

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Node:
    """What a served node is: its id and role, its signing key, the directory every node reads, the folder
    of its own (config, key, log; its SQLite file unless ``db_url``), and whether staff must log in."""

    id: str
    role: str
    key: SigningKey
    entries: list[NodeEntry]
    folder: str
    db_url: str | None = None
    logins: bool = True
    extra_toml: str = ""  # more sections of its config, as written


@dataclass(frozen=True)
class Served:
    """A node process and where it listens; its log holds what it printed (read it when it fails)."""

    node: str
    proc: asyncio.subprocess.Process
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid or 0


def write_config(workdir: Path, node: Node, port: int) -> Path:
    """``workdir/<folder>/node.toml`` with the node's key beside it and the directory file one level up
    (shared by the nodes of one ``workdir``)."""
    node_dir = workdir / node.folder
    node_dir.mkdir(parents=True, exist_ok=True)  # a test may write it first (to add an account before the start)
    write_directory(workdir / "directory.json", node.entries)
    write_key(node_dir / "node.key", node.key)
    lines = [
        "[node]",
        f'id = "{node.id}"',
        f'role = "{node.role}"',
        'host = "127.0.0.1"',
        f"port = {port}",
        'key_file = "node.key"',
        'directory = "../directory.json"',
        'data_dir = "."',
        *([f'db = "{node.db_url}"'] if node.db_url else []),
        "",
    ]
    if not node.logins:
        # Staff logins are beside the point (sync requests are signed by their node either way); open, a
        # benchmark can read the node's /metrics without an account.
        lines += ["[auth]", "required = false", ""]
    config = node_dir / "node.toml"
    config.write_text("\n".join(lines) + node.extra_toml, encoding="utf-8")
    return config


async def spawn(workdir: Path, node: Node) -> Served:
    """Start ``sanji <role> serve`` for ``node`` on a free port, not waiting for it (see ``wait_ready``): a
    benchmark that needs several starts them all and lets their start-ups overlap."""
    port = free_port()
    config = write_config(workdir, node, port)
    log_path = config.parent / "node.log"
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sanji.cli.main",
            node.role,
            "serve",
            "--config",
            str(config),
            "--log-level",
            "warning",
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(ROOT),
            # Its own session: a Ctrl-C at the terminal stops the benchmark, whose clean-up then stops the node.
            start_new_session=True,
        )
    return Served(node.id, proc, f"http://127.0.0.1:{port}", log_path)


async def serve(workdir: Path, node: Node, within: float = 120.0) -> Served:
    """``spawn`` and ``wait_ready``: the node answers when this returns."""
    served = await spawn(workdir, node)
    await wait_ready(served, within=within)
    return served


def tail(path: Path, size: int = 3000) -> str:
    """The end of a node's log: what to show when it failed."""
    return path.read_text(encoding="utf-8", errors="replace")[-size:]


async def wait_ready(served: Served, within: float = 30.0) -> None:
    """Until the node answers ``/api/node``; fails with its log if it exits or stays silent ``within`` seconds."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if served.proc.returncode is not None:
                raise RuntimeError(
                    f"{served.node}'s process exited with {served.proc.returncode}; its log:\n{tail(served.log_path)}"
                )
            try:
                # 401: logins are on (a first start creates the administrator), as sanji.demo.cluster accepts.
                if (await client.get(served.url + "/api/node")).status_code in (200, 401):
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{served.node}'s process did not answer within {within}s; its log:\n{tail(served.log_path)}")


async def stop(served: Served) -> None:
    """SIGTERM, as a service manager stops a node; killed if it has not exited 10 s later."""
    proc = served.proc
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from ``/proc`` (Linux): a node's CPU, whatever else the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

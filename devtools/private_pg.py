"""A PostgreSQL cluster of a test's own: ``initdb`` into a temporary folder, started on a free port, stopped
and removed afterwards; optionally a streaming standby of it (``pg_basebackup -R``), as a county's DBA sets
up a read replica.

For what the shared server on 127.0.0.1:5432 cannot show: a hot standby (docs/scaling.md, 2.) and server
settings a test must choose itself (a lock table small enough to fill). Uses the server binaries of the
machine's PostgreSQL (``pg_config --bindir``, else the newest ``/usr/lib/postgresql/<n>/bin``); run as root,
they run as the ``postgres`` user (``initdb`` refuses root). ``PrivateClusterUnavailable`` when they are
missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sanji.demo.cluster import free_port


class PrivateClusterUnavailable(Exception):
    """No PostgreSQL server binaries here (``initdb``, ``pg_ctl``, ``pg_basebackup``)."""


@dataclass(frozen=True)
class Server:
    """One running server of a private cluster: where it listens and where its files are."""

    port: int
    data: Path
    log: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(part) for part in p.parent.parent.name.split(".") if part.isdigit()],
    )
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise PrivateClusterUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")


def _as_owner(argv: list[str]) -> list[str]:
    """``argv`` run as ``postgres`` when this process is root (the server refuses to run as root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str]) -> None:
    done = subprocess.run(_as_owner(argv), capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _options(port: int, sockets: Path, settings: Mapping[str, str]) -> str:
    every = {"listen_addresses": "127.0.0.1", "fsync": "off", "max_connections": "40", **settings}
    return " ".join([f"-p {port}", f"-k {sockets}", *(f"-c {k}={v}" for k, v in every.items())])


def _start(stack: ExitStack, bin_: Path, data: Path, sockets: Path, settings: Mapping[str, str]) -> Server:
    """Start a server on ``data``; its stop is registered first, so one that outlives a failed start stops too."""
    server = Server(port=free_port(), data=data, log=data.parent / f"{data.name}.log")
    stack.callback(_stop, bin_, server)
    options = _options(server.port, sockets, settings)
    _run([str(bin_ / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(server.log), "-w", "-t", "60", "start"])
    return server


def _stop(bin_: Path, server: Server) -> None:
    subprocess.run(
        _as_owner([str(bin_ / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "-w", "stop"]),
        capture_output=True,
        check=False,
        timeout=60,
    )


@contextmanager
def private_cluster(settings: Mapping[str, str] | None = None, *, standby: bool = False) -> Iterator[list[Server]]:
    """A primary (trust auth, ``settings`` on its command line) and, with ``standby``, a hot standby
    streaming from it: ``[primary]`` or ``[primary, standby]``. Both are stopped and their files removed
    when the block ends."""
    bin_ = bindir()
    root = Path(tempfile.mkdtemp(prefix="sanji-pg-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PrivateClusterUnavailable("running as root, with no postgres user to run a server as") from None
            os.chown(root, owner.pw_uid, owner.pw_gid)
        _run([str(bin_ / "initdb"), "-D", str(root / "primary"), "-A", "trust", "-U", "postgres", "--no-sync",
              "-E", "UTF8", "--locale=C"])  # fmt: skip
        primary = _start(stack, bin_, root / "primary", root, dict(settings or {}))
        servers = [primary]
        if standby:
            _run([str(bin_ / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                  "-D", str(root / "standby"), "-R", "-X", "stream"])  # fmt: skip
            servers.append(_start(stack, bin_, root / "standby", root, dict(settings or {})))
        yield servers

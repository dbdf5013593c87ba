"""Prepare and run a county of real node processes on loopback, each with its own SQLite file and key.

With ``Cluster.prepare(..., proxies=True)`` every child reaches its parent through its own
``devtools.faultproxy.FaultProxy`` (``cluster.proxies[child]``), so a test or benchmark can shape, cut
or partition any link while the nodes run; the proxies live in one ``ProxyThread`` started with the
nodes. The proxy is development tooling, imported only when asked for (from a source checkout).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from sanji.keys import write_directory, write_key
from sanji.layout import Layout, city_layout, county_layout
from sanji.parent_watch import launcher_env


class ClusterStopped(RuntimeError):
    """A node was about to start after the cluster began stopping."""


if TYPE_CHECKING:
    from devtools.faultproxy import FaultProxy, ProxyThread


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unused_port(taken: set[int]) -> int:
    while True:
        port = free_port()
        if port not in taken:
            return port


@dataclass
class NodeProcess:
    id: str
    role: str
    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    workdir: Path
    layout: Layout
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    county_db: str | None = None
    proxies: dict[str, FaultProxy] = field(default_factory=dict)  # child id -> the link to its parent
    proxy_thread: ProxyThread | None = field(default=None, repr=False)
    enroll: bool = False  # every node joins by token and holds a certificate; no directory.json
    enrolled: set[str] = field(default_factory=set)
    # node id -> import path (os.pathsep-separated) of another release's source tree to run that node from:
    # mixed-version trees in the compatibility tests. Absent: this code, as installed.
    trees: dict[str, str] = field(default_factory=dict)
    _issuing: defaultdict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock), repr=False)
    _spawning: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closed: bool = field(default=False, repr=False)  # a whole-cluster stop() began: spawn nothing more

    @classmethod
    def prepare(
        cls,
        workdir: Path,
        *,
        towns: int = 2,
        villages_per_town: int = 2,
        interval: float = 0.5,
        max_backoff: float = 3.0,
        county_db: str | None = None,
        budget_bytes: int | None = None,
        proxies: bool = False,
        proxy_seed: int = 0,
        enroll: bool = False,
        open_demo: bool = False,
        counties: int = 0,
    ) -> Cluster:
        """Write every node's keys (signing and sealing) and config. ``proxies``: each child's ``[parent] url``
        goes through a ``FaultProxy`` (seeded ``proxy_seed`` + the child's position) instead of straight to the
        parent. ``enroll``: no directory.json at all — the county makes a root of trust and every other node
        joins with a one-time token from its parent as it is first started (``sanji enroll``), exactly as an
        operator would; children then make their own keys. ``open_demo``: write ``[auth] required = false`` (the
        open demo mode, no logins, a banner on every page); otherwise the nodes require logins like any
        deployed node. Every node's ``public_url`` is its county hub's address, where villagers look up.
        ``counties``: 0 lays out one county at the root, as before; N > 0 a city hub above N counties, each
        laid out as one county is (``sanji.layout.city_layout``); the city is then the root of trust and the
        hub ``county_db`` names."""
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        layout = (
            city_layout(counties, towns, villages_per_town) if counties else county_layout(towns, villages_per_town)
        )
        directory = layout.directory
        if not enroll:
            write_directory(workdir / "directory.json", layout.entries)
        cluster = cls(workdir=workdir, layout=layout, county_db=county_db, enroll=enroll)
        ports: dict[str, int] = {}
        for entry in layout.entries:
            ports[entry.id] = _unused_port(set(ports.values()))
        if proxies:
            from devtools.faultproxy import FaultProxy  # development only: tests and benchmarks shape links

            taken = set(ports.values())
            for index, entry in enumerate(layout.entries):
                if entry.parent:
                    port = _unused_port(taken)
                    taken.add(port)
                    cluster.proxies[entry.id] = FaultProxy(
                        target_port=ports[entry.parent],
                        port=port,
                        seed=proxy_seed + index,
                        name=f"{entry.id}->{entry.parent}",
                    )
        for entry in layout.entries:
            node_dir = workdir / entry.id
            # node.key (Ed25519, signs) and node.enc.key beside it (X25519, opens sealed applicant details);
            # both public records are already in directory.json.
            if not enroll or entry.parent is None:
                write_key(node_dir / "node.key", layout.keys[entry.id])
            else:
                node_dir.mkdir(parents=True, exist_ok=True)  # `sanji enroll join` makes the keys
            lines = [
                "[node]",
                f'id = "{entry.id}"',
                f'role = "{entry.role}"',
                f'name = "{entry.name}"' if enroll else "",
                'host = "127.0.0.1"',
                f"port = {ports[entry.id]}",
                'key_file = "node.key"',
                "" if enroll else 'directory = "../directory.json"',
                'data_dir = "."',
                f'db = "{county_db}"' if county_db and entry.parent is None else "",
                f'public_url = "http://127.0.0.1:{ports[directory.county_of(entry.id) or layout.entries[0].id]}"',
            ]
            lines = [line for line in lines if line]
            if entry.parent:
                url = (
                    cluster.proxies[entry.id].url
                    if entry.id in cluster.proxies
                    else f"http://127.0.0.1:{ports[entry.parent]}"
                )
                lines += ["", "[parent]", f'url = "{url}"']
            lines += ["", "[sync]", f"interval = {interval}", f"max_backoff = {max_backoff}"]
            if budget_bytes:
                lines.append(f"budget_bytes = {budget_bytes}")
            if enroll:
                lines += ["", "[trust]", "required = true"]
            if open_demo:
                lines += ["", "[auth]", "required = false  # OPEN DEMO MODE: sanji demo only"]
            lines.append("")
            config = node_dir / "node.toml"
            config.write_text("\n".join(lines), encoding="utf-8")
            cluster.nodes[entry.id] = NodeProcess(
                id=entry.id, role=entry.role, config=config, port=ports[entry.id], log=node_dir / "node.log"
            )
        return cluster

    def _cli(self, *args: str) -> str:
        cmd = [sys.executable, "-m", "sanji.cli.main", *args]
        # Generous: on a loaded 2-core machine one CLI start alone can take a minute; a hung call is still caught.
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ})
        if done.returncode != 0:
            raise RuntimeError(f"`sanji {' '.join(args)}` failed: {done.stdout}{done.stderr}")
        return done.stdout

    def _enroll(self, node: NodeProcess) -> None:
        """What an operator types for ``node`` before its first start: the county's root, or a parent's token."""
        if node.id in self.enrolled:
            return
        entry = self.layout.directory.get(node.id)
        trust_dir = self.workdir / "root-of-trust"
        if entry.parent is None:
            self._cli("trust", "init-root", "--county", node.id, "--out", str(trust_dir))
            keys = ["--root-key", str(trust_dir / "root-1.key"), "--root-key", str(trust_dir / "root-2.key")]
            self._cli(
                "trust", "certify-hub", "--config", str(node.config), "--root", str(trust_dir / "root.sjt"), *keys
            )
        else:
            parent = self.nodes[entry.parent]
            if parent.proc is None or parent.proc.poll() is not None:
                self.start(parent.id)
            with self._issuing[entry.parent]:  # one writer at a time on the parent's database
                out = self._cli(
                    "enroll",
                    "issue",
                    "--config",
                    str(parent.config),
                    "--node",
                    node.id,
                    "--role",
                    node.role,
                    "--name",
                    entry.name,
                    "--qr",
                    str(node.config.parent / "enroll-token.png"),
                    "--by",
                    "demo",
                )
            token = next(line for line in out.splitlines() if line.startswith("SJE1-"))
            (node.config.parent / "enroll-token.txt").write_text(token + "\n", encoding="utf-8")
            self._cli("enroll", "join", "--config", str(node.config), "--token", token)
        self.enrolled.add(node.id)

    def start(self, node_id: str | None = None, *, wait: bool = True) -> None:
        targets = [self.nodes[node_id]] if node_id else list(self.nodes.values())
        with self._spawning:
            self._closed = False  # starting after a stop is deliberate; a stop *during* this start is not
        self.start_proxies()
        if self.enroll:
            # Parents first, one level at a time: a child joins by redeeming a token at its running parent.
            depth = {n.id: len(self.layout.directory.path(n.id)) for n in targets}
            for level in sorted(set(depth.values())):
                here = [n for n in targets if depth[n.id] == level]
                with ThreadPoolExecutor(max_workers=self.wave) as pool:
                    list(pool.map(self._enroll, here))
                self._start_in_waves(here)
            return
        if not wait:
            for node in targets:
                self._spawn(node)
            return
        depth = {n.id: len(self.layout.directory.path(n.id)) for n in targets}
        self._start_in_waves(sorted(targets, key=lambda n: (depth[n.id], n.id)))

    @property
    def wave(self) -> int:
        """Nodes starting at once: a few per core, so 57 nodes on 2 cores do not all fight for the CPU."""
        return max(2, 2 * (os.cpu_count() or 1))

    def _start_in_waves(self, nodes: list[NodeProcess], *, stall: float = 120.0) -> None:
        """Start ``nodes`` (parents first) at most ``wave`` at a time, the next as each one answers.

        Waits by progress, not by the clock: it gives up only when no node has come up for ``stall``
        seconds, so a slow machine takes longer but does not fail.
        """
        waiting = list(nodes)
        starting: list[NodeProcess] = []
        progress = time.monotonic()
        while waiting or starting:
            while waiting and len(starting) < self.wave:
                node = waiting.pop(0)
                self._spawn(node)
                starting.append(node)
            for node in list(starting):
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"node {node.id} exited with {node.proc.returncode}; see {node.log}")
                if self._answers(node):
                    starting.remove(node)
                    progress = time.monotonic()
            if time.monotonic() - progress > stall:
                late = ", ".join(n.id for n in starting)
                raise RuntimeError(f"no node came up for {stall:.0f}s; still starting: {late} (see their node.log)")
            if starting:
                time.sleep(0.1)

    @staticmethod
    def _answers(node: NodeProcess) -> bool:
        try:
            return httpx.get(node.url + "/api/node", timeout=1.0).status_code in (200, 401)  # 401: logins on
        except httpx.HTTPError:
            return False

    def _spawn(self, node: NodeProcess) -> None:
        with self._spawning:
            if self._closed:
                # stop() has begun (a signal arrived while nodes were still starting): starting
                # another node now would leave it running after the launcher exits.
                raise ClusterStopped(f"not starting {node.id}: the cluster is stopping")
            self._spawn_locked(node)

    def _spawn_locked(self, node: NodeProcess) -> None:
        if node.proc is not None and node.proc.poll() is None:
            return
        cmd = [sys.executable, "-m", "sanji.cli.main", node.role, "serve", "--config", str(node.config)]
        cmd += ["--log-level", "warning"]
        if self.county_db and self.layout.directory.parent(node.id) is None:  # the hub at the top
            cmd += ["--db", self.county_db]
        env = {**os.environ, **launcher_env()}
        cwd: str | None = None
        if node.id in self.trees:
            # `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH: run from the
            # other tree so neither this checkout nor the installed package shadows it.
            env["PYTHONPATH"] = self.trees[node.id]
            cwd = self.trees[node.id].split(os.pathsep)[0]
        log = os.fdopen(os.open(node.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        node.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
        log.close()

    def wait_ready(self, node_id: str, timeout: float = 120.0) -> None:
        # A node that died fails at once (poll below); a live one on a busy 2-core machine
        # starting dozens of interpreters can take far longer than usual to answer.
        node = self.nodes[node_id]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"node {node_id} exited with {node.proc.returncode}; see {node.log}")
            try:
                if httpx.get(node.url + "/api/node", timeout=1.0).status_code in (200, 401):  # 401: logins on
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node {node_id} did not answer within {timeout}s; see {node.log}")

    def wait_catalogue(self, node_id: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> int:
        """Wait until ``node_id`` holds the county's catalogue; its version.

        The county publishes the catalogue when it starts and it travels down by the nodes' own
        sync, so a township can be reachable before it may accept anything. With logins on,
        ``headers`` carry a bearer token for ``/api/node``."""
        node = self.nodes[node_id]
        deadline = time.monotonic() + timeout
        seen: object = None
        while time.monotonic() < deadline:
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"node {node_id} exited with {node.proc.returncode}; see {node.log}")
            try:
                response = httpx.get(node.url + "/api/node", timeout=1.0, headers=headers)
                if response.status_code == 200:
                    seen = response.json().get("catalogue_version")
                    if isinstance(seen, int) and seen >= 1:
                        return seen
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node {node_id} held no catalogue within {timeout}s (last seen {seen!r}); see {node.log}")

    def wait_catalogues(self, timeout: float = 120.0) -> None:
        """Wait until every node holds the county's catalogue (see ``wait_catalogue``)."""
        for node_id in self.nodes:
            self.wait_catalogue(node_id, timeout)

    def kill(self, node_id: str) -> None:
        """SIGKILL: the process gets no chance to tidy up."""
        node = self.nodes[node_id]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()

    def start_proxies(self) -> None:
        """Start every link's proxy (a no-op without proxies or when they already run)."""
        if not self.proxies:
            return
        if self.proxy_thread is None:
            from devtools.faultproxy import ProxyThread

            self.proxy_thread = ProxyThread()
        if not self.proxy_thread.running:
            for proxy in self.proxies.values():
                self.proxy_thread.add(proxy)

    def link(self, child: str) -> FaultProxy:
        """The proxy on ``child``'s link to its parent."""
        return self.proxies[child]

    def heal_links(self) -> None:
        """Every link clean again: no latency, no limit, no drops, no blackhole."""
        for proxy in self.proxies.values():
            proxy.clear()

    def stop(self, node_id: str | None = None) -> None:
        """SIGTERM and wait; stopping the whole cluster also stops the link proxies."""
        targets = [self.nodes[node_id]] if node_id else list(self.nodes.values())
        if node_id is None:
            with self._spawning:
                self._closed = True
        for node in targets:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in targets:
            if node.proc is None:
                continue
            try:
                node.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
        if node_id is None and self.proxy_thread is not None:
            self.proxy_thread.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

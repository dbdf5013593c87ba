"""``sanji doctor``: is this node set up to run? One finding per check, each saying what to fix.

Read-only: nothing is created, migrated or written (a missing SQLite file stays missing). The
checks follow what a node needs in the order it needs it: its config, its keys, its store, its
place in the tree (certificates), its clock, its parent, its disk, its calendar and catalogue,
and its backups. A check that cannot run because an earlier one failed says so and is skipped.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

from protocol.errors import SanjiError
from protocol.topology import TOWN, VILLAGE, regional
from protocol.trust import TrustState
from sanji.backup import listing, sqlite_path
from sanji.catalogue import default_catalogue_path, load_catalogue
from sanji.config import ConfigError, NodeSettings, load_settings
from sanji.keys import NodeKey, read_directory, read_key
from sanji.store.engine import Database, normalise_url, open_database
from sanji.store.revisions import read_revisions
from sanji.store.trustbook import read_trust_state
from sanji.version import describe, release
from sanji.workcalendar import load_calendar

OK, WARN, FAIL = "ok", "warn", "FAIL"
CERT_WARN_DAYS = 30
DISK_FAIL_BYTES = 200 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024
CLOCK_WARN_MS = 5 * 60 * 1000
EXIT = {OK: 0, WARN: 1, FAIL: 2}  # the worst finding decides the exit status


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    message: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<4} {self.check:<11} {self.message}" + (f" -- fix: {self.fix}" if self.fix else "")


@dataclass
class Doctor:
    config: Path
    db: str | None = None
    timeout: float = 5.0
    now: float = field(default_factory=time.time)
    findings: list[Finding] = field(default_factory=list)
    settings: NodeSettings | None = None
    key: NodeKey | None = None
    database: Database | None = None
    trust: TrustState | None = None

    def add(self, check: str, status: str, message: str, fix: str = "") -> None:
        self.findings.append(Finding(check, status, message, fix))

    @property
    def exit_status(self) -> int:
        return max((EXIT[f.status] for f in self.findings), default=0)

    async def run(self) -> list[Finding]:
        self.add("version", OK, f"sanji {describe()}")
        if not self.check_config():
            return self.findings
        steps: list[Callable[[], Awaitable[None]]] = [
            self.check_keys,
            self.check_store,
            self.check_place,
            self.check_clock,
            self.check_parent,
            self.check_disk,
            self.check_calendar,
            self.check_catalogue,
            self.check_backups,
        ]
        try:
            for step in steps:
                try:
                    await step()
                except Exception as exc:  # a check that breaks is itself a finding, never a traceback
                    self.add(
                        step.__name__.removeprefix("check_"), FAIL, f"the check failed: {type(exc).__name__}: {exc}"
                    )
        finally:
            if self.database is not None:
                await self.database.dispose()
        return self.findings

    def check_config(self) -> bool:
        try:
            self.settings = load_settings(self.config, db=self.db)
        except ConfigError as exc:
            self.add("config", FAIL, str(exc), "correct the file (examples in deploy/*.toml)")
            return False
        s = self.settings
        self.add("config", OK, f"{self.config}: {s.node.role} node {s.node.id} on {s.node.host}:{s.node.port}")
        if s.node.role in (TOWN, VILLAGE) and s.parent is None:  # a county or a city may be the top of the tree
            self.add("config", FAIL, f"a {s.node.role} node needs a [parent] url", 'add [parent] url = "https://..."')
        if not s.auth.required:
            self.add("config", WARN, "[auth] required = false: open demo mode, no login", "set [auth] required = true")
        return True

    async def check_keys(self) -> None:
        s = self._s()
        path = s.path(s.node.key_file)
        if not path.exists():
            self.add("keys", FAIL, f"{path} does not exist", "`sanji keys init` or `sanji enroll join` for this node")
            return
        try:
            self.key = read_key(path, passphrase_env=s.node.key_passphrase_env)
        except SanjiError as exc:
            self.add("keys", FAIL, exc.message, exc.hint)
            return
        protected = f", protected (passphrase from {s.node.key_passphrase_env})" if s.node.key_passphrase_env else ""
        sealing = "with" if self.key.sealing is not None else "WITHOUT"
        self.add("keys", OK, f"{path.name} opens, key {self.key.key_id}, {sealing} a sealing key{protected}")
        if not s.node.key_passphrase_env and s.node.role == "village":
            self.add(
                "keys",
                WARN,
                "the key files are not protected by a passphrase",
                "`sanji keys protect --config ...` (deploy/README.md, 'Protected key files')",
            )

    async def check_store(self) -> None:
        s = self._s()
        url = normalise_url(s.db_url)
        file = sqlite_path(url)
        if file is not None and not file.exists():
            self.add("store", WARN, f"{file} does not exist yet", "it is created at the first start (or `enroll join`)")
            return
        try:
            self.database = await open_database(url, migrate=False)
            async with self.database.reader.connect() as conn:
                rev = await conn.run_sync(read_revisions)
        except SanjiError as exc:
            self.add("store", FAIL, exc.message, exc.hint)
            return
        except Exception as exc:
            where = url.split("@")[-1]
            self.add(
                "store",
                FAIL,
                f"cannot open {where}: {type(exc).__name__}: {exc}",
                "is the database server running, and the URL and role right? (deploy/postgres/)",
            )
            return
        by = f" (last opened by sanji {rev.written_by})" if rev.written_by else ""
        if not rev.known:
            self.add(
                "store",
                FAIL,
                f"schema {rev.current}{by} is newer than this sanji {release()} knows ({rev.head})",
                f"install sanji {rev.written_by or '(newer)'} again, or restore the pre-upgrade backup",
            )
        elif rev.current is None:
            self.add("store", WARN, "the store is empty", "start the node once (it creates the schema)")
        elif rev.pending:
            self.add(
                "store",
                WARN,
                f"schema {rev.current}{by}; this release migrates it to {rev.head} at start",
                f"nothing to do: a backup is taken first into {s.backup_dir}",
            )
        else:
            self.add("store", OK, f"schema {rev.current} (current){by}")

    async def check_place(self) -> None:
        s = self._s()
        if self.database is not None:  # no store yet: no certificate either, only directory.json can place it
            try:
                self.trust = await read_trust_state(self.database, now_ms=int(self.now * 1000))
            except Exception as exc:
                self.add("place", FAIL, f"the trust documents held do not verify: {exc}", "re-enroll the node")
                return
        if self.trust is None:
            if s.trust.required:
                self.add(
                    "place",
                    FAIL,
                    "no certificate and [trust] required = true",
                    "`sanji enroll join --config ... --token ...` with a token from the parent",
                )
                return
            if not s.node.directory:
                self.add("place", FAIL, "neither a certificate nor a directory file", "enroll the node")
                return
            directory = read_directory(s.path(s.node.directory))
            if s.node.id not in directory:
                self.add("place", FAIL, f"{s.node.directory} does not list {s.node.id}", "ask the county for it")
                return
            self.add(
                "place",
                WARN,
                f"placed by {s.node.directory} (no certificate)",
                "enroll with a token so the tree needs no copied file (deploy/README.md)",
            )
            return
        certs = self.trust.certificates(s.node.id)
        if not certs:
            self.add("place", FAIL, f"no valid certificate for {s.node.id}", "re-enroll with a token from the parent")
            return
        cert = certs[-1]
        if self.key is not None and self.key.key_id not in {k.key_id for k in cert.keys}:
            self.add(
                "place",
                FAIL,
                f"the key in {s.node.key_file} is not the one certified for {s.node.id}",
                "restore the right key file, or re-enroll",
            )
        days = (cert.not_after / 1000 - self.now) / 86400
        until = date.fromtimestamp(cert.not_after / 1000).isoformat()
        if days < 0:
            self.add("place", FAIL, f"certificate {cert.serial} expired on {until}", "re-enroll with a new token")
        elif days < CERT_WARN_DAYS:
            self.add(
                "place",
                WARN,
                f"certificate {cert.serial} expires on {until} ({days:.0f} days)",
                "ask the parent for a new one (`sanji enroll issue`, then `enroll join`)",
            )
        else:
            self.add("place", OK, f"certified by {cert.issuer} as {cert.role} under {cert.parent or '-'} until {until}")

    async def check_clock(self) -> None:
        offset = await self._meta("clock_offset_ms")
        if offset is None:
            if self._s().parent is None:
                self.add("clock", OK, f"this is the top hub ({self._s().node.role}): its clock is the reference")
            else:
                self.add("clock", WARN, "no offset to the county measured yet", "it is measured at the first exchange")
            return
        ms = int(offset)
        if abs(ms) > CLOCK_WARN_MS:
            self.add(
                "clock",
                WARN,
                f"this clock is {ms / 60000:+.1f} min off the county's",
                "set the system clock (timedatectl set-ntp true); deadlines are corrected meanwhile",
            )
        else:
            self.add("clock", OK, f"{ms:+d} ms from the county's clock")

    async def check_parent(self) -> None:
        s = self._s()
        if s.parent is None:
            return
        for url in [s.parent.url, *s.parent.fallback_urls]:
            parts = urlsplit(url)
            if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
                self.add("parent", WARN, f"{url} is plain HTTP", "use https:// (deploy/README.md, 'TLS')")
            try:
                async with httpx.AsyncClient(timeout=self.timeout, verify=True) as client:
                    reply = await client.get(url.rstrip("/") + "/healthz")
            except httpx.HTTPError as exc:
                status = FAIL if url == s.parent.url else WARN
                self.add(
                    "parent",
                    status,
                    f"{url} does not answer: {type(exc).__name__}",
                    "check the link and that the parent runs; work waits here meanwhile",
                )
                continue
            version = ""
            if reply.status_code == 200 and reply.headers.get("content-type", "").startswith("application/json"):
                version = f", sanji {reply.json().get('version', '?')}"
            self.add("parent", OK, f"{url} answers (HTTP {reply.status_code}{version})")

    async def check_disk(self) -> None:
        s = self._s()
        where = s.path(s.node.data_dir)
        while not where.exists() and where != where.parent:
            where = where.parent
        free = shutil.disk_usage(where).free
        text_free = f"{free / 1024**3:.1f} GB free at {where}"
        if free < DISK_FAIL_BYTES:
            self.add("disk", FAIL, text_free, "free space now: the store stops writing when the disk is full")
        elif free < DISK_WARN_BYTES:
            self.add("disk", WARN, text_free, "free space, or prune old backups ([backup] keep_days)")
        else:
            self.add("disk", OK, text_free)

    async def check_calendar(self) -> None:
        try:
            calendar = load_calendar()
        except SanjiError as exc:
            self.add("calendar", FAIL, exc.message, "reinstall sanji (its calendar data cannot be read)")
            return
        held = await self._scalar("SELECT version FROM documents WHERE kind = 'calendar'")
        version = f"; holds the county's calendar version {held}" if held else "; holds no county calendar yet"
        if regional(self._s().node.role):  # above the counties: each county publishes its own, none comes here
            version = "; above the counties: each county publishes its own calendar, none is held here"
        year = date.fromtimestamp(self.now).year
        known = list(calendar.known_years)
        if year + 1 in known:
            self.add("calendar", OK, f"working days known {known[0]}-{known[-1]}{version}")
            return
        # A year nobody has published is counted on the statutory holidays and marked 暂定 (sanji.statutory);
        # the county's published calendar corrects it. Worth a warning, never a failure.
        self.add(
            "calendar",
            WARN,
            f"built-in working days end in {known[-1]}; later dates are 暂定 until the county publishes{version}",
            "county: `sanji calendar publish` once the State Council's notice is out; others: sync with the parent",
        )

    async def check_catalogue(self) -> None:
        s = self._s()
        if s.node.role == "county":
            source = s.path(s.node.catalogue) if s.node.catalogue else default_catalogue_path()
            try:
                catalogue = load_catalogue(source)
            except SanjiError as exc:
                self.add("catalogue", FAIL, f"{source}: {exc.message}", "`sanji catalogue check` lists every problem")
                return
            self.add("catalogue", OK, f"{source.name}: version {catalogue.version}, {len(catalogue.matters)} matters")
            return
        if regional(s.node.role):
            self.add("catalogue", OK, "above the counties: each county publishes its own, none is held here")
            return
        held = await self._scalar("SELECT version FROM documents WHERE kind = 'catalogue'")
        if held is None:
            self.add("catalogue", WARN, "no matter catalogue held yet", "it arrives with the first exchange")
        else:
            self.add("catalogue", OK, f"version {held} held")

    async def check_backups(self) -> None:
        s = self._s()
        copies = listing(s.backup_dir, node=s.node.id)
        if not copies:
            status = WARN if s.backup.interval_hours > 0 else OK
            self.add("backups", status, f"none yet in {s.backup_dir}", "`sanji backup --config ...` takes one now")
            return
        newest = copies[-1]
        age_h = (self.now - newest.path.stat().st_mtime) / 3600
        limit = 2 * s.backup.interval_hours if s.backup.interval_hours > 0 else 24 * 7
        status = WARN if age_h > limit else OK
        self.add(
            "backups",
            status,
            f"{len(copies)} in {s.backup_dir}, newest {age_h:.1f} h old",
            "the schedule is not running: is the node up? see its log" if status == WARN else "",
        )

    # -- helpers ------------------------------------------------------------------------------

    def _s(self) -> NodeSettings:
        assert self.settings is not None
        return self.settings

    async def _scalar(self, sql: str) -> object:
        if self.database is None:
            return None
        try:
            async with self.database.reader.connect() as conn:
                return await conn.scalar(text(sql))
        except Exception:
            return None

    async def _meta(self, key: str) -> str | None:
        value = await self._scalar(f"SELECT value FROM meta WHERE key = '{key}'")  # key: a constant of this module
        return None if value is None else str(value)


async def diagnose(config: Path, *, db: str | None = None, wait_s: float = 5.0) -> Doctor:
    doctor = Doctor(config=config, db=db, timeout=wait_s)
    await doctor.run()
    return doctor

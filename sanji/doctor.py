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
from sanji.cli.say import error_pair, hint_pair
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
STATUS_ZH = {OK: "正常", WARN: "注意", FAIL: "失败"}
CHECK_ZH = {
    "version": "版本",
    "config": "配置",
    "keys": "密钥",
    "store": "数据库",
    "place": "入网",
    "clock": "时钟",
    "parent": "上级",
    "disk": "磁盘",
    "calendar": "日历",
    "catalogue": "目录",
    "backups": "备份",
}


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    message: str
    fix: str = ""
    # The same in Chinese, said first on the line (``--json`` keeps the four fields above, in English).
    message_zh: str = field(default="", compare=False)
    fix_zh: str = field(default="", compare=False)

    def line(self) -> str:
        """``<状态> <status> <检查项> <check> <中文> <English> -- 处理 fix: <中文> <English>``."""
        said = " ".join(part for part in (self.message_zh, self.message) if part)
        fix = " ".join(part for part in (self.fix_zh, self.fix) if part)
        head = f"{STATUS_ZH[self.status]} {self.status:<4} {CHECK_ZH.get(self.check, '检查')} {self.check:<11}"
        return f"{head} {said}" + (f" -- 处理 fix: {fix}" if fix else "")

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "message": self.message, "fix": self.fix}


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

    def add(self, check: str, status: str, message: str, fix: str = "", *, zh: str = "", fix_zh: str = "") -> None:
        self.findings.append(Finding(check, status, message, fix, zh, fix_zh))

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
                        step.__name__.removeprefix("check_"),
                        FAIL,
                        f"the check failed: {type(exc).__name__}: {exc}",
                        zh="检查本身出错",
                    )
        finally:
            if self.database is not None:
                await self.database.dispose()
        return self.findings

    def check_config(self) -> bool:
        try:
            self.settings = load_settings(self.config, db=self.db)
        except ConfigError as exc:
            self.add(
                "config",
                FAIL,
                str(exc),
                "correct the file (examples in deploy/*.toml)",
                zh="节点配置文件有误",
                fix_zh="请改正该文件（示例见 deploy/*.toml）",
            )
            return False
        s = self.settings
        self.add(
            "config",
            OK,
            f"{self.config}: {s.node.role} node {s.node.id} on {s.node.host}:{s.node.port}",
            zh=f"{s.node.role} 节点 {s.node.id}，监听 {s.node.host}:{s.node.port}",
        )
        if s.node.role in (TOWN, VILLAGE) and s.parent is None:  # a county or a city may be the top of the tree
            self.add(
                "config",
                FAIL,
                f"a {s.node.role} node needs a [parent] url",
                'add [parent] url = "https://..."',
                zh="该节点须在配置中写上级节点地址 [parent] url",
                fix_zh='请加上 [parent] url = "https://..."',
            )
        if not s.auth.required:
            self.add(
                "config",
                WARN,
                "[auth] required = false: open demo mode, no login",
                "set [auth] required = true",
                zh="[auth] required = false：演示模式，不要求登录",
                fix_zh="请设 [auth] required = true",
            )
        return True

    async def check_keys(self) -> None:
        s = self._s()
        path = s.path(s.node.key_file)
        if not path.exists():
            self.add(
                "keys",
                FAIL,
                f"{path} does not exist",
                "`sanji keys init` or `sanji enroll join` for this node",
                zh="密钥文件不存在",
                fix_zh="请为本节点运行 `sanji keys init` 或 `sanji enroll join`",
            )
            return
        try:
            self.key = read_key(path, passphrase_env=s.node.key_passphrase_env)
        except SanjiError as exc:
            said, hint = error_pair(exc), hint_pair(exc.hint)
            self.add("keys", FAIL, said.en, hint.en, zh=said.zh, fix_zh=hint.zh)
            return
        protected = f", protected (passphrase from {s.node.key_passphrase_env})" if s.node.key_passphrase_env else ""
        sealing = "with" if self.key.sealing is not None else "WITHOUT"
        self.add(
            "keys",
            OK,
            f"{path.name} opens, key {self.key.key_id}, {sealing} a sealing key{protected}",
            zh=f"密钥可用{'，有' if self.key.sealing is not None else '，没有'}加密密钥"
            + ("，已用口令保护" if s.node.key_passphrase_env else ""),
        )
        if not s.node.key_passphrase_env and s.node.role == "village":
            self.add(
                "keys",
                WARN,
                "the key files are not protected by a passphrase",
                "`sanji keys protect --config ...` (deploy/README.md, 'Protected key files')",
                zh="密钥文件没有用口令保护",
                fix_zh="请运行 `sanji keys protect --config ...`（见 deploy/README.md）",
            )

    async def check_store(self) -> None:
        s = self._s()
        url = normalise_url(s.db_url)
        file = sqlite_path(url)
        if file is not None and not file.exists():
            self.add(
                "store",
                WARN,
                f"{file} does not exist yet",
                "it is created at the first start (or `enroll join`)",
                zh="数据库文件尚不存在",
                fix_zh="首次启动（或 `enroll join`）时创建",
            )
            return
        try:
            self.database = await open_database(url, migrate=False)
            async with self.database.reader.connect() as conn:
                rev = await conn.run_sync(read_revisions)
        except SanjiError as exc:
            said, hint = error_pair(exc), hint_pair(exc.hint)
            self.add("store", FAIL, said.en, hint.en, zh=said.zh, fix_zh=hint.zh)
            return
        except Exception as exc:
            where = url.split("@")[-1]
            self.add(
                "store",
                FAIL,
                f"cannot open {where}: {type(exc).__name__}: {exc}",
                "is the database server running, and the URL and role right? (deploy/postgres/)",
                zh="无法打开数据库",
                fix_zh="请确认数据库服务器在运行，地址和角色无误（见 deploy/postgres/）",
            )
            return
        by = f" (last opened by sanji {rev.written_by})" if rev.written_by else ""
        if not rev.known:
            self.add(
                "store",
                FAIL,
                f"schema {rev.current}{by} is newer than this sanji {release()} knows ({rev.head})",
                f"install sanji {rev.written_by or '(newer)'} again, or restore the pre-upgrade backup",
                zh="数据库由较新版本写入，本版本不能打开",
                fix_zh="请重新安装较新的版本，或恢复升级前的备份",
            )
        elif rev.current is None:
            self.add(
                "store",
                WARN,
                "the store is empty",
                "start the node once (it creates the schema)",
                zh="数据库是空的",
                fix_zh="请启动一次节点（由它建表）",
            )
        elif rev.pending:
            self.add(
                "store",
                WARN,
                f"schema {rev.current}{by}; this release migrates it to {rev.head} at start",
                f"nothing to do: a backup is taken first into {s.backup_dir}",
                zh=f"启动时本版本会把数据库升级到 {rev.head}",
                fix_zh="无需处理：升级前会先备份",
            )
        else:
            self.add("store", OK, f"schema {rev.current} (current){by}", zh="数据库结构为最新")

    async def check_place(self) -> None:
        s = self._s()
        if self.database is not None:  # no store yet: no certificate either, only directory.json can place it
            try:
                self.trust = await read_trust_state(self.database, now_ms=int(self.now * 1000))
            except Exception as exc:
                self.add(
                    "place",
                    FAIL,
                    f"the trust documents held do not verify: {exc}",
                    "re-enroll the node",
                    zh="所存的信任文件校验未通过",
                    fix_zh="请让节点重新入网",
                )
                return
        if self.trust is None:
            if s.trust.required:
                self.add(
                    "place",
                    FAIL,
                    "no certificate and [trust] required = true",
                    "`sanji enroll join --config ... --token ...` with a token from the parent",
                    zh="没有证书，而配置要求 [trust] required = true",
                    fix_zh="请用上级节点发放的令牌运行 `sanji enroll join --config ... --token ...`",
                )
                return
            if not s.node.directory:
                self.add(
                    "place",
                    FAIL,
                    "neither a certificate nor a directory file",
                    "enroll the node",
                    zh="既没有证书也没有节点目录文件",
                    fix_zh="请让节点入网",
                )
                return
            directory = read_directory(s.path(s.node.directory))
            if s.node.id not in directory:
                self.add(
                    "place",
                    FAIL,
                    f"{s.node.directory} does not list {s.node.id}",
                    "ask the county for it",
                    zh="节点目录中没有本节点",
                    fix_zh="请向县级索取",
                )
                return
            self.add(
                "place",
                WARN,
                f"placed by {s.node.directory} (no certificate)",
                "enroll with a token so the tree needs no copied file (deploy/README.md)",
                zh="由节点目录文件确定位置（没有证书）",
                fix_zh="请用令牌入网，节点树就不需要复制的文件（见 deploy/README.md）",
            )
            return
        certs = self.trust.certificates(s.node.id)
        if not certs:
            self.add(
                "place",
                FAIL,
                f"no valid certificate for {s.node.id}",
                "re-enroll with a token from the parent",
                zh="本节点没有有效的证书",
                fix_zh="请用上级节点发放的令牌重新入网",
            )
            return
        cert = certs[-1]
        if self.key is not None and self.key.key_id not in {k.key_id for k in cert.keys}:
            self.add(
                "place",
                FAIL,
                f"the key in {s.node.key_file} is not the one certified for {s.node.id}",
                "restore the right key file, or re-enroll",
                zh="密钥文件中的密钥不是证书所认证的那一把",
                fix_zh="请恢复正确的密钥文件，或重新入网",
            )
        days = (cert.not_after / 1000 - self.now) / 86400
        until = date.fromtimestamp(cert.not_after / 1000).isoformat()
        if days < 0:
            self.add(
                "place",
                FAIL,
                f"certificate {cert.serial} expired on {until}",
                "re-enroll with a new token",
                zh=f"证书已于 {until} 过期",
                fix_zh="请用新令牌重新入网",
            )
        elif days < CERT_WARN_DAYS:
            self.add(
                "place",
                WARN,
                f"certificate {cert.serial} expires on {until} ({days:.0f} days)",
                "ask the parent for a new one (`sanji enroll issue`, then `enroll join`)",
                zh=f"证书将于 {until} 过期（剩 {days:.0f} 天）",
                fix_zh="请向上级申请新证书（`sanji enroll issue`，再 `enroll join`）",
            )
        else:
            self.add(
                "place",
                OK,
                f"certified by {cert.issuer} as {cert.role} under {cert.parent or '-'} until {until}",
                zh=f"证书由 {cert.issuer} 签发，有效期至 {until}",
            )

    async def check_clock(self) -> None:
        offset = await self._meta("clock_offset_ms")
        if offset is None:
            if self._s().parent is None:
                self.add(
                    "clock",
                    OK,
                    f"this is the top hub ({self._s().node.role}): its clock is the reference",
                    zh="本节点是顶层枢纽，以它的时钟为准",
                )
            else:
                self.add(
                    "clock",
                    WARN,
                    "no offset to the county measured yet",
                    "it is measured at the first exchange",
                    zh="尚未测出与县级时钟的偏差",
                    fix_zh="首次同步时测出",
                )
            return
        ms = int(offset)
        if abs(ms) > CLOCK_WARN_MS:
            self.add(
                "clock",
                WARN,
                f"this clock is {ms / 60000:+.1f} min off the county's",
                "set the system clock (timedatectl set-ntp true); deadlines are corrected meanwhile",
                zh=f"本机时钟与县级相差 {ms / 60000:+.1f} 分钟",
                fix_zh="请校准系统时钟（timedatectl set-ntp true）；在此之前时限会自动校正",
            )
        else:
            self.add("clock", OK, f"{ms:+d} ms from the county's clock", zh="与县级时钟基本一致")

    async def check_parent(self) -> None:
        s = self._s()
        if s.parent is None:
            return
        for url in [s.parent.url, *s.parent.fallback_urls]:
            parts = urlsplit(url)
            if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
                self.add(
                    "parent",
                    WARN,
                    f"{url} is plain HTTP",
                    "use https:// (deploy/README.md, 'TLS')",
                    zh="上级地址未加密（HTTP）",
                    fix_zh="请使用 https://（见 deploy/README.md）",
                )
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
                    zh="上级节点没有应答",
                    fix_zh="请检查网络并确认上级节点在运行；在此期间工作在本节点等待",
                )
                continue
            version = ""
            if reply.status_code == 200 and reply.headers.get("content-type", "").startswith("application/json"):
                version = f", sanji {reply.json().get('version', '?')}"
            self.add("parent", OK, f"{url} answers (HTTP {reply.status_code}{version})", zh="上级节点有应答")

    async def check_disk(self) -> None:
        s = self._s()
        where = s.path(s.node.data_dir)
        while not where.exists() and where != where.parent:
            where = where.parent
        free = shutil.disk_usage(where).free
        text_free = f"{free / 1024**3:.1f} GB free at {where}"
        if free < DISK_FAIL_BYTES:
            self.add(
                "disk",
                FAIL,
                text_free,
                "free space now: the store stops writing when the disk is full",
                zh="磁盘空间不足",
                fix_zh="请立即腾出空间：磁盘满时数据库停止写入",
            )
        elif free < DISK_WARN_BYTES:
            self.add(
                "disk",
                WARN,
                text_free,
                "free space, or prune old backups ([backup] keep_days)",
                zh="磁盘空间偏少",
                fix_zh="请腾出空间，或清理旧备份（[backup] keep_days）",
            )
        else:
            self.add("disk", OK, text_free, zh="磁盘空间充足")

    async def check_calendar(self) -> None:
        try:
            calendar = load_calendar()
        except SanjiError as exc:
            self.add(
                "calendar",
                FAIL,
                exc.message,
                "reinstall sanji (its calendar data cannot be read)",
                zh="内置工作日历无法读取",
                fix_zh="请重新安装 sanji",
            )
            return
        held = await self._scalar("SELECT version FROM documents WHERE kind = 'calendar'")
        version = f"; holds the county's calendar version {held}" if held else "; holds no county calendar yet"
        if regional(self._s().node.role):  # above the counties: each county publishes its own, none comes here
            version = "; above the counties: each county publishes its own calendar, none is held here"
        year = date.fromtimestamp(self.now).year
        known = list(calendar.known_years)
        if year + 1 in known:
            self.add(
                "calendar",
                OK,
                f"working days known {known[0]}-{known[-1]}{version}",
                zh=f"已知 {known[0]}—{known[-1]} 年的工作日",
            )
            return
        # A year nobody has published is counted on the statutory holidays and marked 暂定 (sanji.statutory);
        # the county's published calendar corrects it. Worth a warning, never a failure.
        self.add(
            "calendar",
            WARN,
            f"built-in working days end in {known[-1]}; later dates are 暂定 until the county publishes{version}",
            "county: `sanji calendar publish` once the State Council's notice is out; others: sync with the parent",
            zh=f"内置工作日只到 {known[-1]} 年；之后的日期在县级发布日历前为暂定",
            fix_zh="县级：国务院通知发布后运行 `sanji calendar publish`；其他节点：与上级同步",
        )

    async def check_catalogue(self) -> None:
        s = self._s()
        if s.node.role == "county":
            source = s.path(s.node.catalogue) if s.node.catalogue else default_catalogue_path()
            try:
                catalogue = load_catalogue(source)
            except SanjiError as exc:
                self.add(
                    "catalogue",
                    FAIL,
                    f"{source}: {exc.message}",
                    "`sanji catalogue check` lists every problem",
                    zh="事项目录有误",
                    fix_zh="`sanji catalogue check` 列出每一处问题",
                )
                return
            self.add(
                "catalogue",
                OK,
                f"{source.name}: version {catalogue.version}, {len(catalogue.matters)} matters",
                zh=f"事项目录第 {catalogue.version} 版，{len(catalogue.matters)} 个事项",
            )
            return
        if regional(s.node.role):
            self.add(
                "catalogue",
                OK,
                "above the counties: each county publishes its own, none is held here",
                zh="县级以上：各县发布自己的事项目录，这里不存",
            )
            return
        held = await self._scalar("SELECT version FROM documents WHERE kind = 'catalogue'")
        if held is None:
            self.add(
                "catalogue",
                WARN,
                "no matter catalogue held yet",
                "it arrives with the first exchange",
                zh="尚无事项目录",
                fix_zh="首次同步时收到",
            )
        else:
            self.add("catalogue", OK, f"version {held} held", zh=f"已有事项目录第 {held} 版")

    async def check_backups(self) -> None:
        s = self._s()
        copies = listing(s.backup_dir, node=s.node.id)
        if not copies:
            status = WARN if s.backup.interval_hours > 0 else OK
            self.add(
                "backups",
                status,
                f"none yet in {s.backup_dir}",
                "`sanji backup --config ...` takes one now",
                zh="尚无备份",
                fix_zh="`sanji backup --config ...` 立即备份一次",
            )
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
            zh=f"已有 {len(copies)} 份备份，最新的是 {age_h:.1f} 小时前",
            fix_zh="定时备份没有运行：节点是否在运行？请看其日志" if status == WARN else "",
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

"""A node's settings, read from TOML (examples in deploy/)."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import msgspec

from protocol.bounds import MAX_ATTACHMENT_BYTES, node_id_problem
from protocol.carry import MAX_CARRY_BYTES
from protocol.session import DEFAULT_BUDGET_BYTES
from protocol.topology import ROLES
from sanji.notify.settings import SmsSection


class NodeSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    role: str
    name: str = ""  # display name put in the node's certificate when it enrolls, e.g. 河口乡便民服务中心
    host: str = "127.0.0.1"
    port: int = 8100
    db: str = ""
    key_file: str
    # Name of the environment variable (or systemd credential) holding the passphrase that protects
    # key_file and the sealing key beside it (sanji.keys); "" = plain key files.
    key_passphrase_env: str = ""
    directory: str = ""  # hand-configured tree (directory.json); optional once the node holds certificates
    data_dir: str = "var"
    catalogue: str = ""  # county hub: the catalogue file it publishes (TOML/JSON/XLSX); default: the shipped one
    calendar_overrides: str = ""  # retired: the county publishes a signed calendar (sanji calendar publish)
    # Where villagers reach the public pages (status lookup, guides, complaints), e.g. the county's public
    # site: the receipt's QR code points here, never at the desk's own address. "" = no QR code printed.
    public_url: str = ""
    # HTTPS straight from the node (PEM files); "" = plain HTTP, for a node behind a TLS proxy or on loopback.
    tls_cert: str = ""
    tls_key: str = ""


class ParentSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    # Ancestors to sync with while the parent cannot be reached (e.g. the county hub for a village).
    fallback_urls: list[str] = msgspec.field(default_factory=list)


DEFAULT_CARRY_UPLOAD_BYTES = 256 * 1024 * 1024  # batches only (attachments travel apart): months of a township


class SyncSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    interval: float = 5.0
    max_backoff: float = 60.0
    budget_bytes: int = DEFAULT_BUDGET_BYTES
    duties_interval: float = 30.0  # deemed approvals, SMS queue
    daily_attachment_bytes: int = 0  # attachments over the parent link per day; 0 = no limit
    # Largest scan or photo a desk may attach here (at most protocol.bounds.MAX_ATTACHMENT_BYTES, which every
    # node holds an attach action to, so a received attachment is judged alike everywhere).
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES
    # Largest hand-carried file the sync panel (/carry) takes as an upload (at most protocol.carry.MAX_CARRY_BYTES,
    # which `sanji import` reads from a path).
    max_carry_bytes: int = DEFAULT_CARRY_UPLOAD_BYTES


class AuthSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Staff accounts, sessions and API tokens (``sanji accounts``); see ``sanji/auth/__init__.py``.

    Secure by default (DESIGN.md invariant 11): ``required = true`` unless a config says
    otherwise, so every screen and /api route except the public ones (/lookup, /api/lookup/*,
    /public*, /complain, /print/guide/*, /schema*, /login) needs a session or a bearer token;
    a node starting with no account creates its first administrator and prints a one-time
    password (``sanji.auth.first_run``), which must be changed at the first login.
    ``required = false`` is the OPEN DEMO MODE that only
    ``sanji demo`` writes (and tests that ask for it by name): nobody has to log in, and every
    page carries a banner saying so. The /sync/v1/* endpoints never use accounts: each request
    is signed by the sending node (sync/requests_auth).
    """

    required: bool = True
    session_hours: float = 12.0  # a session ends this long after login, whatever happens
    idle_minutes: float = 120.0  # ... or after this long unused
    max_failures: int = 5  # failed logins in a row before the account is locked
    lockout_minutes: float = 15.0
    secure_cookies: bool = False  # set true when the node is served over HTTPS


class TrustSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Certificates (``protocol.trust``): the root, enrollment, rotation and revocation.

    A node holding a root of trust (``sanji trust init-root`` at the county, ``sanji enroll join``
    elsewhere) places and verifies certified nodes by their certificates. ``required = true``
    ignores directory.json altogether: nothing but a certificate vouches for a node or a key.
    """

    required: bool = False


class PublicSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the centre publishes about itself (政务公开) on its public service guide, ``/public``."""

    address: str = ""
    office_hours: str = ""  # e.g. "周一至周五 8:30-12:00 14:30-17:30"
    supervision_phone: str = ""  # 监督电话: the county's supervision desk
    # Windows and the staff on duty at each, one line each, e.g. "1号窗口 社会事务 张丽（A岗）".
    on_duty: list[str] = msgspec.field(default_factory=list)


class BackupSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Copies of the store taken while the node runs (``sanji.backup``) and before every migration."""

    dir: str = ""  # default: <data_dir>/backups
    interval_hours: float = 24.0  # 0 = no scheduled backups (``sanji backup`` still works)
    keep_days: float = 14.0


class ArchiveSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Dropping the bytes of old attachments an ancestor holds (``sanji archive``, ``sanji.store.archive``)."""

    after_days: float = 90.0  # an errand delivered or closed this long ago gives up its attachments' bytes
    interval_hours: float = 0.0  # run by the node itself this often; 0 = only by ``sanji archive --apply``


class ObserveSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Logs and health (``sanji.observe``)."""

    json_logs: bool = False  # one JSON object per line, with node, errand and exchange ids
    missing_hours: float = 6.0  # county: a node not heard from for this long is flagged


class NodeSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    node: NodeSection
    parent: ParentSection | None = None
    sync: SyncSection = SyncSection()
    auth: AuthSection = AuthSection()
    trust: TrustSection = TrustSection()
    sms: SmsSection = SmsSection()
    public: PublicSection = PublicSection()
    backup: BackupSection = BackupSection()
    archive: ArchiveSection = ArchiveSection()
    observe: ObserveSection = ObserveSection()
    base_dir: str = "."

    @property
    def db_url(self) -> str:
        if self.node.db:
            return self.node.db
        return f"sqlite:///{self.path(self.node.data_dir) / 'node.db'}"

    @property
    def backup_dir(self) -> Path:
        return self.path(self.backup.dir) if self.backup.dir else self.path(self.node.data_dir) / "backups"

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p


class ConfigError(ValueError):
    pass


def load_settings(path: str | Path, *, role: str | None = None, db: str | None = None) -> NodeSettings:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    raw.setdefault("base_dir", str(path.parent.resolve()))
    try:
        settings = msgspec.convert(raw, NodeSettings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if settings.node.role not in ROLES:
        raise ConfigError(f"{path}: node.role must be one of {', '.join(ROLES)}")
    if problem := node_id_problem(settings.node.id, field="node.id"):
        raise ConfigError(f"{path}: {problem}")
    if settings.sms.problems():
        raise ConfigError(f"{path}: " + "; ".join(settings.sms.problems()))
    if not 1 <= settings.sync.max_attachment_bytes <= MAX_ATTACHMENT_BYTES:
        raise ConfigError(f"{path}: sync.max_attachment_bytes must be between 1 and {MAX_ATTACHMENT_BYTES}")
    if not 1 <= settings.sync.max_carry_bytes <= MAX_CARRY_BYTES:
        raise ConfigError(f"{path}: sync.max_carry_bytes must be between 1 and {MAX_CARRY_BYTES}")
    archive_numbers = (settings.archive.after_days, settings.archive.interval_hours)
    if not all(math.isfinite(x) and x >= 0 for x in archive_numbers):
        raise ConfigError(f"{path}: archive.after_days and archive.interval_hours must be finite and not negative")
    if role is not None and settings.node.role != role:
        raise ConfigError(f"{path}: this config is for a {settings.node.role} node, not a {role} node")
    if db:
        settings = msgspec.structs.replace(settings, node=msgspec.structs.replace(settings.node, db=db))
    return settings

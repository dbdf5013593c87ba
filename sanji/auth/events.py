"""Typed audit events (责任追究): who, in what role, where, when, what.

Each event is a frozen msgspec Struct tagged by ``event``; the audit table keeps the
columns people search by (event, actor, role, acting_for, account, errand, node, at) and
the whole event as JSON. Schema evolution follows msgspec's rules: new fields get
defaults, nothing is retyped or renamed, so every stored row still decodes.

Common fields:

- ``actor`` / ``role`` / ``acting_for``: the person as recorded (for an action, exactly
  what the signed action says);
- ``account``: the logged-in account that did it ('' in open demo mode when nobody
  logged in: then ``actor`` is only what the desk typed);
- ``via``: how the caller was identified: session, token, open (no credentials), cli,
  system (the node's own duties);
- ``node``, ``at`` (Unix seconds), ``ip``;
- ``os_user``: for ``via`` cli, the operating-system user who ran the command (``getpass.getuser()``).
  A command acting as a named account (``sanji errand --account``) needs no password, so this is what
  tells whose hands were on the keyboard. It lives only in the event's JSON body (no column, no migration).
"""

from __future__ import annotations

import msgspec


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="event"):
    at: float
    node: str
    actor: str = ""
    role: str = ""
    acting_for: str = ""
    account: str = ""
    via: str = ""
    ip: str = ""
    errand: str = ""
    os_user: str = ""  # via cli: the operating-system user who ran the command (added without a migration)


class ActionTaken(AuditEvent, frozen=True, kw_only=True, tag="action"):
    """A local action on an errand, written in the same transaction as the action."""

    action_id: str
    kind: str
    action_at: int  # the action's hybrid-clock time, as signed
    version: int  # the errand's version the action was based on


class ActionRefused(AuditEvent, frozen=True, kw_only=True, tag="action_refused"):
    kind: str
    reason: str


class AccessDenied(AuditEvent, frozen=True, kw_only=True, tag="denied"):
    """A logged-in caller asked for something their role does not allow."""

    what: str  # the route ("GET /supervision") or the step ("decide")
    reason: str


class PersonalDataRead(AuditEvent, frozen=True, kw_only=True, tag="read"):
    what: str  # errand, document:<slug>, attachment
    detail: str = ""


class ComplaintsRead(AuditEvent, frozen=True, kw_only=True, tag="read_complaints"):
    count: int
    where: str  # the route that showed them


class LoggedIn(AuditEvent, frozen=True, kw_only=True, tag="login"):
    pass


class LoginFailed(AuditEvent, frozen=True, kw_only=True, tag="login_failed"):
    name: str  # the name typed (it may not be an account)
    reason: str  # bad_credentials, locked, disabled, wrong_level
    failures: int = 0


class AccountLocked(AuditEvent, frozen=True, kw_only=True, tag="locked"):
    name: str
    until: float


class LoggedOut(AuditEvent, frozen=True, kw_only=True, tag="logout"):
    pass


class AccountChanged(AuditEvent, frozen=True, kw_only=True, tag="account"):
    """An account added, its password set, disabled, enabled, unlocked or placed (by an administrator or the CLI).

    ``department`` and ``window`` (0.4.0, with defaults: older rows decode with '') say where an added or
    placed account sits."""

    name: str
    # added, password, disabled, enabled, unlocked, placed (its department or window set), renamed (its display name)
    change: str
    staff_role: str = ""
    department: str = ""  # added or placed: the county department it answers for ('' : the whole node)
    window: str = ""  # added or placed: the window whose urgings it answers
    display_name: str = ""  # added or renamed (0.4.x, default ''): the name its holder goes by


class TokenIssued(AuditEvent, frozen=True, kw_only=True, tag="token_issued"):
    name: str
    token_id: int
    label: str


class TokenRevoked(AuditEvent, frozen=True, kw_only=True, tag="token_revoked"):
    token_id: int


class DocumentPublished(AuditEvent, frozen=True, kw_only=True, tag="published"):
    """The county's administrator signed and published a document from the desk (catalogue or calendar).

    Written in the transaction that keeps the signed document. A new tag: a 0.3.0 node cannot decode it,
    but 0.3.0 never reads this log, since it refuses to open a store 0.4.0 has migrated (schema 0018)
    and going back means restoring the backup taken before the upgrade.
    """

    document: str  # catalogue or calendar
    version: int
    digest: str  # sha256 of the signed envelope, as `sanji catalogue sign` prints it
    county: str = ""


Event = (
    ActionTaken
    | ActionRefused
    | AccessDenied
    | PersonalDataRead
    | ComplaintsRead
    | LoggedIn
    | LoginFailed
    | AccountLocked
    | LoggedOut
    | AccountChanged
    | TokenIssued
    | TokenRevoked
    | DocumentPublished
)


def encode(event: Event) -> str:
    return msgspec.json.encode(event).decode()


def decode(body: str | bytes) -> Event:
    return msgspec.json.decode(body, type=Event)


def tag_of(event: Event) -> str:
    return str(type(event).__struct_config__.tag)

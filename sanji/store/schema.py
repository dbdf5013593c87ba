"""The storage schema. Received batches are kept verbatim; everything else is derived.

Columns filled from an action's fields are at least as wide as ``protocol.bounds`` lets the field be
(``MAX_NAME``; free text is ``Text``): SQLite ignores a varchar's length but PostgreSQL enforces it, and
every node must store whatever ``judge`` accepts (migration 0020).

Invariant: ``batches`` of a stream hold exactly seq 1..streams.seq with no gaps,
each chained to its predecessor; ``actions`` and ``errands`` are a projection of
the batches (plus this node's own not-yet-sealed actions in ``outbox``).
"""

from __future__ import annotations

from typing import Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

from protocol.bounds import MAX_NAME

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

streams = Table(
    "streams",
    metadata,
    Column("origin", String(64), primary_key=True),
    Column("scope", String(64), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("last_hash", LargeBinary, nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("origin", String(64), primary_key=True),
    Column("scope", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("hash", LargeBinary, nullable=False),
    Column("frame", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
)

held = Table(
    "held_batches",
    metadata,
    Column("origin", String(64), primary_key=True),
    Column("scope", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("hash", LargeBinary, nullable=False),
    Column("frame", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(64), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("frame", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("peer", String(64), nullable=False),
    Column("at", Float, nullable=False),
)

# The kinds ``Store.annotations`` reads (urgings and their answers, complaints, extensions, ratings) and the
# attachments the archive counts (``sanji.store.archive``): the only ones in the ``(kind, at, id)`` index. A kind
# added here needs a migration that makes the index again.
AnnotationKind = Literal["supervise", "answer_urging", "complain", "extend", "rate", "attach"]
ANNOTATION_KINDS: tuple[AnnotationKind, ...] = get_args(AnnotationKind)
# Comparisons, not ``kind IN (...)``: SQLite builds an IN list's lookup table again for every row inserted,
# which cost more than the index spared (8,693 inserts: 94 ms with IN, 66 with ORs, 73 with no condition).
ANNOTATED = "({})".format(" OR ".join(f"kind = '{k}'" for k in ANNOTATION_KINDS))
# A query states the index's condition as it is written there, so the index is taken whatever SQLite can
# prove from a literal or a bound kind (that differs with the statement's shape and the SQLite release):
# ``WHERE kind = ? AND <IN_KIND_INDEX>``, on `actions` alone.
IN_KIND_INDEX = text(ANNOTATED)

actions = Table(
    "actions",
    metadata,
    Column("id", String(MAX_NAME), primary_key=True),
    Column("errand", String(MAX_NAME), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("node", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("base", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Index(None, "errand"),
    # Annotations of one kind, newest first (0022; ``sanji.store.views.annotations_query``), ties by id (0024:
    # a window's edge falls the same way every time). Partial (0023): a push's actions are nearly all of
    # other kinds, and each of them spared an insertion into it. A query takes it only by naming the same
    # condition (SQLite does not prove ``kind = 'extend'`` implies it); ``postgresql_where`` is written in
    # the migration only (see ``errands``' ``pending_to`` index).
    Index(None, "kind", "at", "id", sqlite_where=text(ANNOTATED)),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action_id", String(MAX_NAME), nullable=False),
    Column("scope", String(64), nullable=False),
)

errands = Table(
    "errands",
    metadata,
    Column("id", String(MAX_NAME), primary_key=True),
    Column("scope", String(64), nullable=False),
    Column("matter", String(MAX_NAME), nullable=False),
    Column("applicant_name", String(MAX_NAME), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("holder", String(64), nullable=False),
    Column("pending_to", String(64), nullable=True),
    Column("version", Integer, nullable=False),
    Column("errand_kind", String(16), nullable=False),
    Column("department", String(MAX_NAME), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("registered_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("waiting", Integer, nullable=False),
    Column("receipt", String(MAX_NAME), nullable=False, server_default=""),
    Column("due", String(MAX_NAME), nullable=False, server_default=""),
    Column("stage_due", String(MAX_NAME), nullable=False, server_default=""),
    Column("responsible", String(64), nullable=False, server_default=""),
    Column("window", String(MAX_NAME), nullable=False, server_default=""),
    Column("handler", String(MAX_NAME), nullable=False, server_default=""),
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("state", LargeBinary, nullable=True),  # the whole projected ErrandState (msgpack)
    # What judge read of the directory the row was projected under (protocol.errand.basis of its path, or of
    # the whole tree: basis_scope) with the release: a row kept under another basis (or from before 0017: "")
    # is projected again from all its actions, never continued (sanji.store.projections).
    Column("basis", String(64), nullable=False, server_default=""),
    Index(None, "stage"),
    Index(None, "receipt"),
    Index(None, "holder"),
    # The windows a node's errands were assigned to (``sanji.auth.places.windows_in_use``; 0028): found and
    # ordered by the index alone, no row read.
    Index(None, "holder", "window"),
    Index(None, "scope"),
    # 全部办件 (the home page), the API's list and the duties: errands in registration order, a page at a time
    # (``sanji.store.views.errands_query``; 0031). Walked from either end, a page reads its own rows, never the
    # table sorted.
    Index(None, "registered_at", "id"),
    # The errands on their way to a node (``Store.worklist``, read by the duties after every push; 0021).
    # Partial: the few rows in flight, and a query asking ``pending_to IS NULL`` (nearly every row) never
    # takes it instead of a better index (SQLite keeps no statistics to tell them apart). Migration 0021
    # makes it partial on PostgreSQL too; ``postgresql_where`` is not written here because naming it loads
    # the PostgreSQL dialect at import, on every node (tests/ops/test_lazy_imports.py).
    Index(None, "pending_to", sqlite_where=text("pending_to IS NOT NULL")),
)

peer_acks = Table(
    "peer_acks",
    metadata,
    Column("peer", String(64), primary_key=True),
    Column("origin", String(64), primary_key=True),
    Column("scope", String(64), primary_key=True),
    Column("seq", Integer, nullable=False),
)

exchanges = Table(
    "exchanges",
    metadata,
    Column("peer", String(64), primary_key=True),
    Column("last_ok_at", Float, nullable=True),
    Column("last_attempt_at", Float, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Column("failures", Integer, nullable=False, default=0),
    Column("skew_ms", BigInteger, nullable=False, default=0),
    Column("bytes_sent", BigInteger, nullable=False, default=0),
    Column("bytes_received", BigInteger, nullable=False, default=0),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("peer", String(64), nullable=False, default=""),
    Column("detail", Text, nullable=False),
    Index(None, "kind"),
)

documents = Table(
    "documents",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("blob", LargeBinary, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
)

# Every version of a document this node has held since 0026 (``documents`` holds the newest alone): the catalogue's
# older versions are what a desk compares an errand's bound entry with (``protocol.binding.binding_refusal``).
document_versions = Table(
    "document_versions",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("blob", LargeBinary, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
)

node_reports = Table(
    "node_reports",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("via", String(64), nullable=False),
    Column("body", Text, nullable=False),
)

business_reports = Table(
    "business_reports",  # signed day reports (protocol.business): this node's own and its subtree's
    metadata,
    Column("node", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("blob", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("errand", String(MAX_NAME), nullable=False),
    Column("event", String(32), nullable=False),
    Column("phone", Text, nullable=False),  # masked, as long as the number: a sealed phone has no bound but the frame
    Column("text", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    Column("error", Text, nullable=False, server_default=""),
    UniqueConstraint("errand", "event"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False),  # contiguous bytes held so far
    Column("data", LargeBinary, nullable=False),
    Column("complete", Boolean, nullable=False, server_default=false()),
    Column("updated_at", Float, nullable=False),
)

blob_acks = Table(
    "blob_acks",
    metadata,
    Column("peer", String(64), primary_key=True),
    Column("hash", String(64), primary_key=True),
)

# The attachments applied attach actions name, one row an action (``sanji.store.attached``, migration 0030):
# written in the transaction that makes an attach action's status ``applied`` and deleted in the one that
# takes it back, so the sync and the downloads read them here instead of decoding every attach action held.
# One row an action, not one a (blob, errand): one errand may attach the same file twice, and one of the two
# refused must leave the other's row.
attachments = Table(
    "attachments",
    metadata,
    Column("action", String(MAX_NAME), primary_key=True),
    Column("blob", String(MAX_NAME), nullable=False),  # the attach action's hash: a line, as wide as MAX_NAME
    Column("size", BigInteger, nullable=False),
    Column("errand", String(MAX_NAME), nullable=False),
    Column("scope", String(64), nullable=False),
    Index(None, "blob"),
)

# Attachments whose bytes this node dropped (``sanji.store.archive``): the ``blobs`` row keeps hash and
# size with no bytes (received = 0, complete), and this row says which ancestor acknowledged holding them.
blob_archive = Table(
    "blob_archive",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("held_at", String(64), nullable=False),  # the ancestor whose acknowledgement allowed it
    Column("archived_at", Float, nullable=False),  # wall-clock seconds
)

traffic = Table(
    "traffic",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("bytes", BigInteger, nullable=False),
)

# -- staff accounts and the audit log (sanji/auth) ----------------------------------------------
# Local to each node: accounts, sessions and tokens never travel; audit events stay as evidence
# where they were written, each chained to the one before it by ``hash``.

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", Float, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("last_login_at", Float, nullable=True),
    # a password the system generated (the desk's create / reset, the first start): changed at the first login
    Column("must_change_password", Boolean, nullable=False, server_default=false()),
    # where the account sits at its node (0025): a county department it answers for (as the catalogue names
    # it), a window it answers urgings for (as an urging names it); '' for the whole node (sanji.auth.roles)
    Column("department", String(MAX_NAME), nullable=False, server_default=""),
    Column("window", String(MAX_NAME), nullable=False, server_default=""),
    # the name its holder goes by where the login is another (zhangsan for 张三; 0032): what scores and appeals
    # name them by (``sanji.office.book.OfficeBook.subject_person``); '' : the login is the name
    Column("display_name", String(MAX_NAME), nullable=False, server_default=""),
    UniqueConstraint("name"),
)

auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # sha256 of the id in the cookie
    Column("account_id", Integer, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("ip", String(64), nullable=False, server_default=""),
    Index(None, "account_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, nullable=False),
    Column("label", String(64), nullable=False, server_default=""),
    Column("token_hash", String(64), nullable=False),  # sha256 of the token; the token itself is shown once
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    UniqueConstraint("token_hash"),
    Index(None, "account_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("node", String(64), nullable=False),
    Column("event", String(32), nullable=False),
    Column("actor", String(MAX_NAME), nullable=False, server_default=""),
    Column("role", String(MAX_NAME), nullable=False, server_default=""),
    Column("acting_for", String(MAX_NAME), nullable=False, server_default=""),
    Column("account", String(64), nullable=False, server_default=""),
    Column("errand", String(MAX_NAME), nullable=False, server_default=""),
    Column("body", Text, nullable=False),  # the typed event (sanji.auth.events) as JSON
    Column("hash", String(64), nullable=False),  # sha256(previous row's hash + body)
    Index(None, "errand"),
    Index(None, "actor"),
    Index(None, "event"),
)

# -- trust: certificates, roots, revocations (protocol.trust) and enrollment tokens ------------

trust_docs = Table(
    "trust_docs",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # order of arrival here: children's cursor
    Column("id", String(32), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(64), nullable=False),  # the node a certificate or revocation is about
    Column("raw", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("peer", String(64), nullable=False, server_default=""),
)

trust_peers = Table(
    "trust_peers",
    metadata,
    Column("peer", String(64), primary_key=True),
    Column("epoch", String(64), nullable=False),  # the peer's database instance the cursor counts in
    Column("cursor", Integer, nullable=False),  # the peer's last trust_docs.seq this node has seen
    Column("lease", String(64), nullable=False, server_default=""),  # the exchange token it last handed us
)

trust_sent = Table(
    "trust_sent",
    metadata,
    Column("peer", String(64), primary_key=True),
    Column("id", String(32), primary_key=True),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("secret", LargeBinary, nullable=False),  # checks the request's HMAC; useless once used or expired
    Column("node", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("issued_by", String(64), nullable=False, server_default=""),
    Column("used_at", Float, nullable=True),
    Column("serial", String(32), nullable=False, server_default=""),
)

child_leases = Table(
    "child_leases",
    metadata,
    Column("child", String(64), primary_key=True),
    Column("lease", String(64), nullable=False),
    Column("instance", String(64), nullable=False, server_default=""),
    Column("at", Float, nullable=False),
)

# -- the county office's records (sanji/office/book.py): entries, appeals and their decisions ----
# Append-only; each row signed by the node's key and chained to the one before it by ``hash``.

office_records = Table(
    "office_records",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # entry / appeal / decision
    Column("quarter", String(8), nullable=False),
    Column("subject", String(96), nullable=False),
    Column("at", Float, nullable=False),
    Column("body", LargeBinary, nullable=False),  # the record, canonical msgpack
    Column("key_id", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),  # over prev_hash | body
    Column("hash", String(64), nullable=False),  # sha256(prev hash + body)
    Index(None, "quarter"),
)

# -- the SMS outbox (sanji/notify/outbox.py): durable, one row per message, sent once by its key ----

sms_outbox = Table(
    "sms_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # idempotency key, also sent to the gateway: made of action and errand ids and a deadline (MAX_NAME each)
    Column("key", Text, nullable=False, unique=True),
    Column("event", String(32), nullable=False),
    Column("errand", String(MAX_NAME), nullable=False, server_default=""),
    Column("recipient", String(16), nullable=False),  # applicant / leader / director
    Column("contact", String(MAX_NAME), nullable=False, server_default=""),  # the department, for a leader
    Column("shown_to", Text, nullable=False, server_default=""),  # masked phone (as long as the number), for the screen
    Column("text", Text, nullable=False),
    Column("status", String(8), nullable=False),  # pending / sent / dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", Float, nullable=False),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    Column("gateway_id", String(64), nullable=False, server_default=""),
    Index(None, "status", "next_at"),
)

# A parent's record of the request counter each child last used (sanji.sync.freshness): a signed sync
# request is accepted once, only with a counter above this. ``refused`` counts replays and stale
# requests since the last event row about them, so a flood writes one row a minute, not one each.
sync_counters = Table(
    "sync_counters",
    metadata,
    Column("child", String(64), primary_key=True),
    Column("counter", BigInteger, nullable=False),
    Column("refused", Integer, nullable=False, server_default="0"),
    Column("logged_at", Float, nullable=False, server_default="0"),
)

# Each lease a parent handed a child, with the lineage (copy of the child's database) that holds it:
# two lineages presenting leases within minutes of each other are two running copies (sanji.sync.clones).
child_lineages = Table(
    "child_lineages",
    metadata,
    Column("lease", String(64), primary_key=True),
    Column("child", String(64), nullable=False, index=True),
    Column("lineage", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("seen", Boolean, nullable=False, server_default=false()),  # presented back by the copy that got it
)

# Children found running as two copies at once (sanji.sync.clones): every request of theirs is refused
# until the genuine machine is enrolled again (a new certificate for the child clears the row).
frozen_children = Table(
    "frozen_children",
    metadata,
    Column("child", String(64), primary_key=True),
    Column("at", Float, nullable=False),
    Column("detail", Text, nullable=False),
)

# How far each staff account has read its in-app notices (sanji.notices): the notices themselves are
# derived from what the node holds (worklist, deadline lights, urgings); only this mark is kept.
# ``account`` is the login name ('' for the open demo desk); ``read_upto`` is wall-clock milliseconds.
notice_reads = Table(
    "notice_reads",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("read_upto", BigInteger, nullable=False),
)

# The one-time keys of forms already sent (sanji.store.submissions): a desk's or the public's form carries a
# random key, and the step it took is written in the same transaction as its key, so the same form sent twice
# (a double click, the browser's back and resubmit) takes its step once. ``key`` is the form's purpose and its
# key ("register:…"); ``errand`` and ``action`` what the first sending wrote (``errand`` empty for a form that
# writes no errand step: an office record, an account, a token, a published document); ``at`` wall-clock ms,
# by which keys older than ``submissions.KEEP_MS`` are trimmed.
submissions = Table(
    "submissions",
    metadata,
    Column("key", String(96), primary_key=True),
    Column("errand", String(MAX_NAME), nullable=False),  # a peer's errand id, bounded by the rule alone
    Column("action", String(MAX_NAME), nullable=False),
    Column("at", BigInteger, nullable=False, index=True),
)

"""Staff accounts, sessions, API tokens, role rules and the audit log (责任追究).

Invariants this package keeps:

- every rule about who may do what lives in ``sanji.auth.roles``; the route guard
  (``sanji.auth.guard.auth_guard``) and the errand service wrapper
  (``sanji.auth.guard.GuardedService``) only ask it;
- every local action on an errand writes an ``ActionTaken`` audit event in the same
  transaction as the action (``sanji.auth.book.AuditedStore``); a refused one writes
  ``ActionRefused``; every read of personal data (an errand's detail, a printed document,
  an attachment, the complaints) writes a ``PersonalDataRead`` / ``ComplaintsRead`` event;
  logins, failures, lock-outs, accounts and tokens are audited too. Audit rows are
  append-only and hash-chained (``sanji.auth.book.AuthBook.verify_chain``; ``sanji accounts log``
  prints them and checks the chain);
- passwords are stored only as Argon2id hashes (argon2-cffi), session ids and API
  tokens only as SHA-256 hashes; a session cookie is HttpOnly and SameSite=Lax, and a
  form posted with a session carries that session's CSRF token;
- failed logins never lock an account: after ``max_failures`` for one name (from anywhere)
  or 20 from one address, each further attempt waits longer (doubling, up to a minute per
  name and ``[auth] lockout_minutes`` per address; ``sanji.auth.throttle``), alike for names
  that exist and names that do not.

Two modes (``[auth] required`` in the node's TOML):

- ``required = true`` (the default): every screen and /api route except the public ones
  (/lookup, /api/lookup/*, /public, /complain, /print/guide/*, /schema*, /login) needs a
  session cookie or
  ``Authorization: Bearer <token>``. Actions are recorded with the account's name as
  actor and its role label as role; a B post may act for an A post (``acting_for``).
  A first start with no account creates ``admin`` (``sanji.auth.first_run``).
- ``required = false``: OPEN DEMO MODE, written only by ``sanji demo`` (and tests that
  ask for it). Nobody has to log in; a request without credentials behaves as before
  accounts existed (the desk types its own name), and every page shows a banner saying so.
  Credentials that are presented are still checked and used.

The /sync/v1/* endpoints never use accounts: batches are signed by their node.
"""

from sanji.auth.roles import ROLE_LABELS, STAFF_ROLES

__all__ = ["ROLE_LABELS", "STAFF_ROLES"]

"""First start of a node that requires logins: make the first administrator, print its password once.

A node that requires logins and holds no account at all could not be used by anyone, and an
installer tempted to turn logins off to get in would leave personal data open. So the first
start with ``[auth] required = true`` and an empty account table creates ``admin`` (role
管理员: accounts, node health, enrollment; no errand, no personal data) with a random
password, prints it once on standard output (the service's journal) and writes nothing of it
to disk but its Argon2id hash. The password is marked must-change: the administrator logs in with
it, is sent to ``/account/password`` to set one of their own (nothing else is reachable until then),
then creates the staff's accounts (the desk, or ``sanji accounts create``).
An operator who prefers never to see a printed password runs ``sanji accounts create --role
admin`` before the first start: then there is an account and nothing is made or printed.
"""

from __future__ import annotations

import logging
import secrets
import sys

from sanji.auth import roles
from sanji.auth.book import AccountExists, Who
from sanji.auth.service import AuthService

FIRST_ADMIN = "admin"
# No 0/O, 1/l/I: the password is read off a terminal and typed by hand.
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
log = logging.getLogger("sanji.auth")


def one_time_password(groups: int = 4, size: int = 4) -> str:
    """About 92 bits from the OS's generator, in dash-separated groups that are easy to type."""
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(size)) for _ in range(groups))


async def ensure_first_admin(auth: AuthService) -> str | None:
    """Create the first administrator when logins are required and no account exists; its password, else None."""
    if not auth.settings.required or await auth.book.accounts():
        return None
    password = one_time_password()
    try:
        await auth.add_account(
            FIRST_ADMIN, roles.ADMIN, password, by=Who(account="first-run", via="cli"), must_change=True
        )
    except AccountExists:  # another hub process sharing the database made it first
        return None
    banner = (
        f"\n== {auth.node_id}: 首次启动 first start — administrator account created ==\n"
        f"   用户名 name:     {FIRST_ADMIN}\n"
        f"   一次性密码 one-time password: {password}\n"
        "   Log in at /login: you are asked to set a password of your own first (/account/password);\n"
        "   this one then stops working. It is shown only now; only its hash is kept.\n"
    )
    print(banner, file=sys.stdout, flush=True)
    log.warning("node %s: first administrator %r created; its one-time password was printed", auth.node_id, FIRST_ADMIN)
    return password

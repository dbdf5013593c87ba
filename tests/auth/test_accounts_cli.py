"""``sanji accounts``: add, list, passwords, tokens, the audit log — as an administrator types them."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from auth_kit import PASSWORD, app, bearer, events, prepare, token, with_service
from litestar.testing import TestClient

from sanji.auth import events as ev
from sanji.auth.book import Who
from sanji.auth.service import AuthService, LoginRefused
from sanji.cli import accounts_cmd


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sanji")
    sub = parser.add_subparsers(dest="command", required=True)
    accounts_cmd.add_parser(sub)
    return parser.parse_args(argv)


@pytest.fixture
def town(tmp_path: Path) -> Path:
    return prepare(tmp_path, "T01")


def test_add_reads_the_password_from_stdin(
    town: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    args = parse(["accounts", "add", "--config", str(town), "--name", "王芳", "--role", "window_a", "--password-stdin"])
    assert args.func(args) == 0
    assert "account 王芳 (窗口A岗 window_a) added at T01" in capsys.readouterr().out

    async def login(service: AuthService) -> str:
        return (await service.login("王芳", PASSWORD)).principal.label

    assert with_service(town, login) == "窗口A岗"


def test_add_refuses_what_does_not_fit(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD) == 0
    assert accounts_cmd.run_add(str(town), "王芳", "window_b", PASSWORD) == 2
    assert accounts_cmd.run_add(str(town), "李建国", "village_agent", PASSWORD) == 2
    assert accounts_cmd.run_add(str(town), "某人", "window_b", "short") == 2
    assert accounts_cmd.run_add(str(town), "某人", "window_b", "\0mismatch") == 2
    assert accounts_cmd.run_add(str(town.parent / "missing.toml"), "某人", "window_b", PASSWORD) == 2
    out = capsys.readouterr().out
    for words in ("exists", "does not work at a town node", "at least 8", "differ", "does not exist"):
        assert words in out, words
    with pytest.raises(SystemExit):
        parse(["accounts", "add", "--config", str(town), "--name", "x", "--role", "boss"])


def test_tokens_list_disable_and_the_audit_log(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD) == 0
    assert accounts_cmd.run_token(str(town), "王芳", "scanner") == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert secret.startswith("sanji_")

    async def resolve(service: AuthService) -> str:
        principal = await service.resolve_token(secret)
        return principal.name if principal else ""

    assert with_service(town, resolve) == "王芳"
    assert accounts_cmd.run_list(str(town)) == 0
    listing = capsys.readouterr().out
    assert "王芳\twindow_a\t窗口A岗\t已启用 active" in listing and "令牌 token 1\tscanner\t有效 live" in listing
    assert secret not in listing
    assert accounts_cmd.run_revoke(str(town), 1) == 0
    assert accounts_cmd.run_revoke(str(town), 1) == 2
    assert with_service(town, resolve) == ""
    assert accounts_cmd.run_active(str(town), "王芳", False) == 0

    async def login(service: AuthService) -> str:
        try:
            await service.login("王芳", PASSWORD)
        except LoginRefused as exc:
            return exc.reason
        return "logged in"

    assert with_service(town, login) == "bad_credentials"
    assert accounts_cmd.run_active(str(town), "王芳", True) == 0
    assert with_service(town, login) == "logged in"
    capsys.readouterr()
    assert accounts_cmd.run_log(str(town)) == 0
    log = capsys.readouterr().out
    for tag in ("account", "token_issued", "token_revoked", "login_failed", "login"):
        assert f"\t{tag}\t" in log, tag
    assert "audit chain intact" in log


def test_list_says_which_accounts_must_change_their_password(town: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD) == 0
    who = Who(account="admin", via="cli")

    async def hand_out(service: AuthService) -> str:
        return (await service.add_with_one_time_password("李建国", "window_b", by=who))[1]

    given = with_service(town, hand_out)
    capsys.readouterr()
    assert accounts_cmd.run_list(str(town)) == 0
    listing = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    assert listing["李建国"].split("\t")[2] == "已启用 active · 待本人改密 must change password"
    assert listing["王芳"].split("\t")[2] == "已启用 active"  # a password its holder chose

    async def change(service: AuthService) -> None:
        session = (await service.login("李建国", given)).session_id
        await service.change_own_password(session, given, PASSWORD + "-own", PASSWORD + "-own")

    with_service(town, change)
    assert accounts_cmd.run_list(str(town)) == 0
    assert "待本人改密" not in capsys.readouterr().out


def test_passwd_revokes_the_accounts_api_tokens_unless_asked_to_keep_them(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a suspected compromise the administrator's passwd ends everything that lets the account in."""
    assert accounts_cmd.run_add(str(town), "王芳", "window_a", PASSWORD) == 0
    secrets = [token(town, "王芳"), token(town, "王芳")]
    with TestClient(app(town)) as client:
        assert all(client.get("/api/errands", headers=bearer(s)).status_code == 200 for s in secrets)
        capsys.readouterr()
        assert accounts_cmd.run_passwd(str(town), "王芳", PASSWORD + "-new") == 0
        assert "its sessions are ended and its 2 API token(s) revoked" in capsys.readouterr().out
        assert all(client.get("/api/errands", headers=bearer(s)).status_code == 401 for s in secrets)
        kept = token(town, "王芳")
        args = parse(
            ["accounts", "passwd", "--config", str(town), "--name", "王芳", "--keep-tokens", "--password-stdin"]
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.stdin", io.StringIO(PASSWORD + "-again\n"))
            assert args.func(args) == 0
        assert "API tokens kept (--keep-tokens)" in capsys.readouterr().out
        assert client.get("/api/errands", headers=bearer(kept)).status_code == 200
    revoked = [e for e in events(town, event="token_revoked") if isinstance(e, ev.TokenRevoked)]
    assert len(revoked) == 2 and all(e.actor.startswith("cli:") for e in revoked)  # each audited

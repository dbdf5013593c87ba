"""The administrator's desk says why it refused an account change in Chinese first, then English.

What the service refuses (``AccountError``: a name's characters, where a post may sit, an account gone meanwhile)
reached the desk in English only; each now carries ``message_zh`` and the page shows both, Chinese first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_kit import add, app, login, prepare
from litestar import Litestar
from litestar.testing import TestClient

Client = TestClient[Litestar]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[Client, str]]:
    config = prepare(tmp_path, "T01", required=True)
    add(config, "李管理", "admin")
    add(config, "王芳", "window_a")
    with TestClient(app(config)) as client:
        yield client, login(client, "李管理")


def chinese_then_english(html: str, zh: str, en: str) -> None:
    assert f"{zh}" in html and f'<span lang="en">{en}' in html, html
    assert html.index(zh) < html.index(f'<span lang="en">{en}'), html  # Chinese first


@pytest.mark.parametrize(
    ("path", "form", "status", "where", "zh", "en"),
    [
        (
            "/admin/accounts",
            {"name": "王\u200b芳", "role": "window_a"},
            400,
            "err-name",
            "登录名不能含控制字符或不可见字符",
            "an account name has no control or invisible characters",
        ),
        (
            "/admin/accounts",
            {"name": "赵六", "role": "supervisor", "window": "综合窗口"},
            400,
            "err-window",
            "只有窗口人员、中心主任或部门审批人员在乡镇或县级中心才能设置所在窗口",
            "only a window post, director or department approver at a township or the county carries a window",
        ),
        (
            "/admin/accounts/place",
            {"name": "王芳", "department": "县民政局"},
            400,
            "row-error",
            "只有窗口人员、中心主任或部门审批人员在县级才能设置所属部门",
            "only a window post, director or department approver at the county carries a department",
        ),
        (
            "/admin/accounts/password",
            {"name": "没有这个人"},
            404,
            "row-error",
            "本节点没有名为 没有这个人 的账号",
            "no account named 没有这个人 at this node",
        ),
        (
            "/admin/accounts/active",
            {"name": "没有这个人", "active": "0"},
            404,
            "row-error",
            "本节点没有名为 没有这个人 的账号",
            "no account named 没有这个人 at this node",
        ),
    ],
)
def test_a_refused_account_change_says_why_in_chinese_first(
    desk: tuple[Client, str], path: str, form: dict[str, str], status: int, where: str, zh: str, en: str
) -> None:
    client, csrf = desk
    r = client.post(path, data={**form, "_csrf_token": csrf})
    assert r.status_code == status, r.text
    start = r.text.index(f'id="{where}"')
    chinese_then_english(r.text[start : start + 600], zh, en)

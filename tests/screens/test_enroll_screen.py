"""节点接入: a township's director issues a village's enrollment token on screen, and the token works.

The county is bootstrapped with the real CLI once per module (``trust init-root``, ``certify-hub``
with two of three root keys), the county served on loopback enrolls the township with ``enroll
join``, the township served on loopback enrolls village T01V01. Each test works on its own copy
of that county. A real headless Chromium (JavaScript off) logs in as the township's director,
issues a token for T01V09 and reads it off the page; the token is then redeemed over HTTP at
``/sync/v1/enroll`` for a certificate, exactly as ``sanji enroll join`` on the new machine would.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import msgspec
import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from screens_kit import make_app

from protocol.enrollment import EnrollResponse, decode_token, make_request
from protocol.topology import TOWN, VILLAGE
from protocol.trust import Certificate, TrustState, parse_document, root_fingerprint
from sanji.auth import passwords
from sanji.config import load_settings
from sanji.demo.cluster import Cluster, free_port
from sanji.keys import NodeKey
from tests.auth.auth_kit import PASSWORD, add, login
from tests.enroll_kit import certify_county, issue, join, serving

Client = TestClient[Litestar]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DIRECTOR = "周主任"
WINDOW_A = "王窗口"
ADMIN = "管理员"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small parameters, as the account tests use (production's cost ~1 s a hash)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))


@pytest.fixture(scope="module")
def enrolled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """C certified by the root; T01 enrolled by C, T01V01 by T01 — every step through the real CLI and HTTP."""
    base = tmp_path_factory.mktemp("enrolled")
    cluster = Cluster.prepare(base / "county", towns=1, villages_per_town=1)
    certify_county(cluster, base / "root")
    county, town = cluster.nodes["C"], cluster.nodes["T01"]
    with serving(make_app(load_settings(county.config)), county.port, name="county"):
        join(town.config, issue(county.config, "T01", TOWN))
        with serving(make_app(load_settings(town.config)), town.port, name="town"):
            join(cluster.nodes["T01V01"].config, issue(town.config, "T01V01", VILLAGE, "--name", "东岭村代办点"))
    return base / "county"


@pytest.fixture
def county(enrolled_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the enrolled county (configs use relative paths)."""
    copy = tmp_path / "county"
    shutil.copytree(enrolled_template, copy)
    return copy


def config_of(county: Path, node: str, *, required: bool = False) -> Path:
    config = county / node / "node.toml"
    with config.open("a", encoding="utf-8") as out:  # logins by default; the open mode only when asked for
        out.write(f"\n[auth]\nrequired = {'true' if required else 'false'}\n")
    return config


def token_on(html: str) -> str:
    found = re.search(r'<div class="token" id="token"[^>]*>(.*?)</div>', html, re.S)
    assert found, "no token on the page"
    return re.sub(r"<[^>]+>|\s", "", found.group(1))


# -- in a real browser ------------------------------------------------------------------------------


@pytest.mark.processes
def test_director_issues_a_village_token_in_the_browser_and_it_enrolls_the_village(
    chromium: str, county: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    config = config_of(county, "T01", required=True)
    add(config, DIRECTOR, "director")
    port = free_port()
    with serving(make_app(load_settings(config)), port, name="town") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(java_script_enabled=False, locale="zh-CN").new_page()
            page.set_default_timeout(10_000)
            page.goto(url + "/login?next_url=/enroll")
            page.fill("#name", DIRECTOR)
            page.fill("#password", PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.get_by_role("link", name="节点接入 Enrollment").click()
            page.wait_for_url("**/enroll")
            expect(page.locator("h2").first).to_contain_text("节点接入")
            expect(page.locator("#certificates")).to_contain_text("T01V01")  # the village it enrolled before
            expect(page.locator("#root")).to_contain_text("Version 1 for hub C: 2 of 3 root keys sign")
            expect(page.locator("select#role")).to_have_value("village")  # a township enrolls villages only

            page.fill("#node", "T01V09")
            page.fill("#name", "西岭村代办点")
            page.fill("#days", "3")
            page.get_by_role("button", name="签发令牌 Issue token").click()
            page.wait_for_url("**/enroll")
            expect(page.locator("#issued")).to_contain_text("T01V09")
            expect(page.locator("#issued svg.qr")).to_be_visible()
            expect(page.locator("#join-command")).to_contain_text("sanji enroll join --config")
            text = "".join((page.locator("#token").text_content() or "").split())
            assert text.startswith("SJE1-")
            expect(page.locator("#join-command")).to_contain_text(text)
            expect(page.locator("#tokens")).to_contain_text(DIRECTOR)  # issued by the logged-in account
            expect(page.locator("#tokens")).to_contain_text("未使用 unused")
            shot = page.screenshot(path=str(tmp_path / "enroll.png"), full_page=True)
            assert shot.startswith(PNG_MAGIC)

            # The text on screen is the token: it names the village, its role and this township.
            token = decode_token(text)
            assert (token.node, token.role, token.parent) == ("T01V09", VILLAGE, "T01")

            # The new machine redeems it over HTTP, as `sanji enroll join` does.
            key = NodeKey.generate_pair()
            request = make_request(token, key=key, keys=key.records("T01V09"), instance="db-of-T01V09")
            reply = httpx.post(
                url + "/sync/v1/enroll",
                content=msgspec.msgpack.encode(request),
                headers={"content-type": "application/msgpack"},
            )
            assert reply.status_code == 200, reply.text
            response = msgspec.msgpack.decode(reply.content, type=EnrollResponse)
            cert = parse_document(response.certificate).value
            assert isinstance(cert, Certificate)
            assert (cert.node, cert.role, cert.parent, cert.issuer) == ("T01V09", VILLAGE, "T01", "T01")
            assert cert.name == "西岭村代办点" and cert.instance == "db-of-T01V09"
            roots = [raw for raw in response.bundle if parse_document(raw).kind == "root"]
            assert root_fingerprint(roots[0]) == token.root  # the root the token pinned
            state = TrustState(roots[0])
            state.add_many([*response.bundle, response.certificate], now_ms=cert.issued_at)
            assert state.directory().path("T01V09") == ("C", "T01", "T01V09")

            # Once: the same token again is refused, and the screen shows it used, with the serial.
            again = httpx.post(
                url + "/sync/v1/enroll",
                content=msgspec.msgpack.encode(request),
                headers={"content-type": "application/msgpack"},
            )
            assert again.status_code == 403 and "already used" in again.json()["message"]
            page.goto(url + "/enroll")
            row = page.locator("#tokens tr", has_text="T01V09")
            expect(row).to_contain_text("已使用 used")
            expect(row).to_contain_text(cert.serial)
            expect(page.locator("#certificates tr", has_text="T01V09")).to_contain_text("西岭村代办点")
            expect(page.locator("#issued")).to_have_count(0)  # the token text is shown once only
        finally:
            browser.close()


# -- over HTTP ----------------------------------------------------------------------------------------


def test_only_a_director_or_an_administrator_may_enroll(county: Path) -> None:
    config = config_of(county, "T01", required=True)
    add(config, DIRECTOR, "director")
    add(config, WINDOW_A, "window_a")
    add(config, ADMIN, "admin")
    with TestClient(make_app(load_settings(config))) as client:
        assert client.get("/enroll", follow_redirects=False).status_code == 303  # stranger: to the login page
        csrf = login(client, WINDOW_A)
        r = client.get("/enroll")
        assert r.status_code == 403 and "无权" in r.text
        r = client.post("/enroll", data={"node": "T01V09", "role": VILLAGE, "days": "7", "_csrf_token": csrf})
        assert r.status_code == 403
    for who, node in ((DIRECTOR, "T01V11"), (ADMIN, "T01V12")):
        with TestClient(make_app(load_settings(config))) as client:
            csrf = login(client, who)
            page = client.get("/enroll")
            assert page.status_code == 200 and "<td>T01V09</td>" not in page.text  # the window issued nothing
            r = client.post("/enroll", data={"node": node, "role": VILLAGE, "days": "7", "_csrf_token": csrf})
            assert r.status_code == 200, r.text
            assert r.headers["cache-control"] == "no-store"
            assert decode_token(token_on(r.text)).node == node
            assert 'id="replaces"' not in r.text  # a new id: nothing to replace
            assert who in client.get("/enroll").text  # the tokens table names who issued it
            again = client.post("/enroll", data={"node": "T01V01", "role": VILLAGE, "days": "7", "_csrf_token": csrf})
            assert again.status_code == 200 and 'id="replaces"' in again.text  # enrolled already: a replacement
        assert "<svg" in r.text


@pytest.mark.parametrize(
    ("form", "field", "shown"),
    [
        ({"node": "T01 V09!"}, "node", "节点编号只能包含字母、数字"),
        ({"node": ""}, "node", "请填写新节点编号"),
        ({"node": "T" * 65}, "node", "1-64 letters"),
        ({"role": TOWN}, "role", "This node enrolls only a village"),
        ({"days": "0"}, "days", "Valid days: a whole number from 1 to 30"),
        ({"days": "seven"}, "days", "有效天数应为1到30的整数"),
        ({"name": "村" * 65}, "name", "名称不超过64字"),
    ],
)
def test_bad_input_is_shown_again_with_a_clear_400(county: Path, form: dict[str, str], field: str, shown: str) -> None:
    with TestClient(make_app(load_settings(config_of(county, "T01")))) as client:
        r = client.post("/enroll", data={"node": "T01V09", "role": VILLAGE, "name": "", "days": "7", **form})
        assert r.status_code == 400, r.text
        assert f'id="err-{field}"' in r.text and shown in r.text
        assert "请更正标红的内容" in r.text and 'id="token"' not in r.text
        assert "<tr><td>T01V01</td>" in r.text and "<tr><td>T01V09</td>" not in r.text  # nothing was issued


def test_the_county_enrolls_townships_only(county: Path) -> None:
    with TestClient(make_app(load_settings(config_of(county, "C")))) as client:
        page = client.get("/enroll")
        assert page.status_code == 200 and '<option value="town" selected>' in page.text
        assert "T01" in page.text and "已使用 used" in page.text  # the token T01 redeemed
        r = client.post("/enroll", data={"node": "T01V09", "role": VILLAGE, "days": "7"})
        assert r.status_code == 400 and "This node enrolls only a town" in r.text
        r = client.post("/enroll", data={"node": "T02", "role": TOWN, "name": "南山镇", "days": "7"})
        assert r.status_code == 200, r.text
        token = decode_token(token_on(r.text))
        assert (token.node, token.role, token.parent) == ("T02", TOWN, "C")


def test_a_village_cannot_enroll_anyone(county: Path) -> None:
    with TestClient(make_app(load_settings(config_of(county, "T01V01")))) as client:
        page = client.get("/enroll")
        assert page.status_code == 200
        assert 'id="cannot-enroll"' in page.text and "cannot enroll anyone" in page.text
        assert '<form method="post" action="/enroll"' not in page.text
        r = client.post("/enroll", data={"node": "T01V01X", "role": VILLAGE, "days": "7"})
        assert r.status_code == 400 and "村代办点没有下级节点" in r.text


def test_a_node_without_a_root_of_trust_says_so(town: Client) -> None:
    page = town.get("/enroll")
    assert page.status_code == 200
    assert 'id="no-root"' in page.text and "directory.json" in page.text
    r = town.post("/enroll", data={"node": "T01V09", "role": VILLAGE, "days": "7"})
    assert r.status_code == 409
    assert "cannot enroll other nodes" in r.text and 'id="token"' not in r.text


def test_the_page_says_how_fresh_the_ids_it_checks_are_and_refuses_one_in_use(county: Path) -> None:
    """Ids are unique across the tree; a node knows those used elsewhere as of its last exchange with the parent."""
    with TestClient(make_app(load_settings(config_of(county, "T01")))) as client:
        page = client.get("/enroll").text
        hint = page[page.index('id="ids-as-of"') :][:800]
        assert hint.index("编号在全树内不得重复") < hint.index("unique in the whole tree")
        assert "本节点已知上次与上级同步（" in hint or "尚未与上级同步" in hint  # as of when, or that it cannot know
        r = client.post(
            "/enroll", data={"node": "T01", "role": VILLAGE, "name": "", "days": "7"}
        )  # the township's own id
        assert r.status_code == 409 and "节点编号 T01 已在" in r.text and "unique across the whole tree" in r.text
    with TestClient(make_app(load_settings(config_of(county, "C")))) as client:
        page = client.get("/enroll").text  # the top of the tree: it knows every id there is
        assert 'id="ids-as-of"' in page and "与上级同步" not in page


def test_the_forms_problems_and_refusals_are_chinese_first(county: Path) -> None:
    """Each field's problem and the page's refusal: the Chinese, then the English in ``<span lang="en">``."""
    with TestClient(make_app(load_settings(config_of(county, "C")))) as client:
        r = client.post("/enroll", data={"node": "T01V09", "role": VILLAGE, "days": "0"})
        assert r.status_code == 400
        said = r.text.split('id="err-role">', 1)[1].split("</span></span>", 1)[0]
        assert said.startswith('本节点只能为乡镇中心签发令牌 <span lang="en">') and "enrolls only a town" in said, said
        days = r.text.split('id="err-days">', 1)[1]
        assert days.startswith('有效天数应为1到30的整数 <span lang="en">') and days.index("Valid days") < 200
    with TestClient(make_app(load_settings(config_of(county, "T01")))) as client:
        r = client.post("/enroll", data={"node": "T01", "role": VILLAGE, "name": "", "days": "7"})
        assert r.status_code == 409
        box = r.text.split('id="problem">', 1)[1].split("</div>", 1)[0]
        assert box.startswith("未能签发入网令牌：节点编号 T01 已在"), box
        assert box.index('<span lang="en">Node id T01 is already certified') > box.index("全树内编号不得重复。")


def test_an_id_that_reads_as_another_or_an_invisible_name_is_refused(county: Path) -> None:
    """Case variants and O/0, I/1/l of an id in the tree or already issued; a name that shows as nothing."""
    with TestClient(make_app(load_settings(config_of(county, "C")))) as client:
        r = client.post("/enroll", data={"node": "C1T16", "role": TOWN, "name": "", "days": "7"})
        assert r.status_code == 200, r.text  # issued: the next ones read as it
        for node, twin in (("c1t16", "C1T16"), ("C1TI6", "C1T16"), ("TO1", "T01"), ("t01", "T01")):
            r = client.post("/enroll", data={"node": node, "role": TOWN, "name": "", "days": "7"})
            assert r.status_code == 409 and 'id="token"' not in r.text, node
            box = r.text.split('id="problem">', 1)[1].split("</div>", 1)[0]
            assert box.startswith(f"未能签发入网令牌：节点编号 {node} 与已有的 {twin} 只差大小写或形近字符"), box
            assert "only by case or look-alike characters" in box
        r = client.post("/enroll", data={"node": "T02", "role": TOWN, "name": "\u200b", "days": "7"})
        assert r.status_code == 400 and 'id="err-name"' in r.text and "不可见字符" in r.text
        assert 'id="token"' not in r.text

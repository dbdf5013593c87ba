"""Screenshots of every desk page and the public pages, in Chinese, from real nodes in Debian's Chromium.

    python -m tools.screenshots docs/screens        (or: make screenshots)
    python -m tools.screenshots --city docs/screens (or: make screenshots-city)

Starts a county of one township and one village on loopback in the open demo mode (so the
banner shows: these are the demo's pages), walks errands through the JSON API — one escalated
to the county, one at the township's intake, one 联办件 with a sub-task for 县医保局, one just
registered at the village — and saves a
1366×768 full-page PNG of each screen. Nothing is loaded from the internet: the pages ship
their own styles, and the Chinese renders with the CJK font ``make browser`` installs.

``--city``: a city hub above two counties of one township and one village each (``sanji demo --city``),
errands of both counties walked up as above, and every page of the city's desk saved as ``city-*.png``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from protocol.lookup import lookup_code
from sanji.demo.cluster import Cluster

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
AGENT = {"actor": "李建国", "role": "代办员"}
WINDOW = {"actor": "王晓红", "role": "窗口A岗"}
MATERIALS = ["申请书", "身份证复印件", "户口簿复印件", "困难情况证明材料"]


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(path, json=body)
    if r.status_code >= 400:
        raise RuntimeError(f"{path}: {r.status_code} {r.text}")
    out: dict[str, Any] = r.json()
    return out


def _wait_for(client: httpx.Client, errand: str, test: Any, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/api/errands/{errand}")
        if r.status_code == 200 and test(r.json()):
            row: dict[str, Any] = r.json()
            return row
        time.sleep(0.5)
    raise RuntimeError(f"errand {errand} did not get there within {timeout} s")


def _errands(cluster: Cluster) -> dict[str, str]:
    village = httpx.Client(base_url=cluster.nodes["T01V01"].url, timeout=30)
    town = httpx.Client(base_url=cluster.nodes["T01"].url, timeout=30)
    county = httpx.Client(base_url=cluster.nodes["C"].url, timeout=30)

    matters = {m["code"]: m for m in county.get("/api/catalogue").json()["matters"]}  # the hub always holds it

    def register(name: str, phone: str, matter: str = "MZ-003") -> str:
        materials = [m["name"] for m in matters[matter]["materials"]] if matter in matters else MATERIALS
        body = {"matter": matter, "applicant_name": name, "applicant_id_number": "430621195007307791"}
        body |= {"applicant_phone": phone, "materials": materials, "mandate": True, **AGENT}
        return str(_post(village, "/api/errands", body)["errand"])

    up = register("张秀英", "13812345678", "MZ-001")  # 低保: decided by the county's civil affairs bureau
    intake = register("赵桂兰", "13907301234")
    here = register("王德明", "13500002222")
    joint = register("周桂英", "13711112222", "MZ-007")  # 联办: 县医保局 answers its sub-task at the county
    for errand in (up, intake, joint):
        _post(village, f"/api/errands/{errand}/actions", {"kind": "submit", **AGENT})
    for errand in (up, intake, joint):
        _wait_for(town, errand, lambda e: e["pending_to"] == "T01")
        _post(town, f"/api/errands/{errand}/actions", {"kind": "receive", **WINDOW})
    accept_joint = {"kind": "accept", "errand_kind": "联办件", "co_departments": ["县医保局"], "window": "民政窗口"}
    _post(town, f"/api/errands/{joint}/actions", accept_joint | WINDOW)
    dept = matters.get("MZ-001", {}).get("department") or "县民政局"
    _post(town, f"/api/errands/{up}/actions", {"kind": "accept", "errand_kind": "上报件", **WINDOW})
    _post(town, f"/api/errands/{up}/actions", {"kind": "escalate", "department": dept, **WINDOW})
    _wait_for(county, up, lambda e: e["pending_to"] == "C")
    _post(county, f"/api/errands/{up}/actions", {"kind": "receive", "actor": "刘芳", "role": "部门审批"})
    _wait_for(village, up, lambda e: e["stage"] == "at_department")
    _wait_for(county, joint, lambda e: e["stage"] == "accepted")
    receipt = _wait_for(village, here, lambda e: True)["receipt"]
    # one errand the township registered, decided and delivered itself: the call-back sample's material
    body = {"matter": "MZ-003", "applicant_name": "刘翠花", "applicant_phone": "13912345678", "in_person": True}
    done = str(_post(town, "/api/errands", body | {"materials": MATERIALS, **WINDOW})["errand"])
    _post(town, f"/api/errands/{done}/actions", {"kind": "accept", "errand_kind": "承诺件", **WINDOW})
    _post(town, f"/api/errands/{done}/actions", {"kind": "decide", "outcome": "approved", **WINDOW})
    _post(
        town,
        f"/api/errands/{done}/actions",
        {"kind": "deliver", "confirmed_by": "刘翠花", "signature": "纸质送达回证已签字", **WINDOW},
    )
    return {"up": up, "intake": intake, "here": here, "receipt": receipt, "done": done}


def _review(page: Any, village: str) -> None:
    """The registration's review page (核对登记信息), reached the way an agent reaches it: a filled form."""
    page.goto(f"{village}/register?matter=MZ-003")
    page.fill("#applicant_name", "王德明")
    page.fill("#applicant_phone", "13500002222")
    for material in MATERIALS[:3]:
        page.get_by_label(material, exact=True).check()
    page.fill("#actor", AGENT["actor"])
    page.check("#mandate")
    page.get_by_role("button", name="核对登记信息 Review").click()
    page.wait_for_selector("#review")


ADMIN_NAME, ADMIN_PASSWORD = "县管理员", "screens admin 9"
ADMIN_PAGES = {  # the administrator's desk, seen logged in as the admin post (the menu links it only for that post)
    "admin-accounts": "/admin/accounts",
    "admin-catalogue": "/admin/catalogue",
    "admin-calendar": "/admin/calendar?year=2026",
}


def add_admin(config: Path, name: str = ADMIN_NAME) -> None:
    """The hub's administrator account (before Playwright starts: the command runs its own event loop)."""
    from sanji.cli import accounts_cmd

    if accounts_cmd.run_add(str(config), name, "admin", ADMIN_PASSWORD) != 0:
        raise RuntimeError(f"could not add the administrator {ADMIN_NAME} to {config}")


def admin_shots(
    browser: Any,
    base: str,
    out: Path,
    *,
    prefix: str = "county",
    name: str = ADMIN_NAME,
    phone: bool = True,
    staff: tuple[str, str] = (WINDOW["actor"], "window_a"),
) -> list[Path]:
    """A hub's administrator pages at a desk (and on a phone), logged in as the account ``add_admin`` made."""
    saved = []
    viewports = (("", {"width": 1366, "height": 768}), ("-phone", {"width": 390, "height": 844}))
    for suffix, viewport in viewports if phone else viewports[:1]:
        context = browser.new_context(locale="zh-CN", viewport=viewport)
        page = context.new_page()
        page.goto(f"{base}/login")
        page.fill("#name", name)
        page.fill("#password", ADMIN_PASSWORD)
        page.get_by_role("button", name="登录 Log in").click()
        page.wait_for_url(f"{base}/admin/accounts/")  # where an administrator lands
        for page_name, path in ADMIN_PAGES.items():
            page.goto(base + path)
            if path == "/admin/accounts" and not suffix:  # a new account: its one-time password, shown once
                page.fill("#name", staff[0])
                page.select_option("#role", staff[1])
                page.get_by_role("button", name="创建账号 Create account").click()
                page.wait_for_selector("#one-time")
            shot = out / f"{prefix}-{page_name}{suffix}.png"
            page.screenshot(path=str(shot), full_page=True)
            saved.append(shot)
        context.close()
    return saved


def shoot(out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        cluster = Cluster.prepare(Path(work) / "county", towns=1, villages_per_town=1, open_demo=True)
        try:
            cluster.start(wait=False)
            for node_id in cluster.nodes:  # a busy machine takes longer than the cluster's usual 30 s
                cluster.wait_ready(node_id, timeout=300)
            e = _errands(cluster)
            v, t, c = (cluster.nodes[n].url for n in ("T01V01", "T01", "C"))
            code = lookup_code(e["here"])
            pages = {
                "village-home": f"{v}/",
                "village-register": f"{v}/register?matter=MZ-003",
                "village-errand": f"{v}/errands/{e['here']}",
                "village-receipt": f"{v}/print/{e['here']}/receipt",
                "town-home": f"{t}/",
                "town-errand": f"{t}/errands/{e['intake']}",
                "town-acceptance": f"{t}/print/{e['up']}/acceptance",
                "county-home": f"{c}/",
                "county-errand": f"{c}/errands/{e['up']}",
                "county-supervision": f"{c}/supervision",
                "town-supervision": f"{t}/supervision?seed=demo",
                "county-enroll": f"{c}/enroll",
                "public-guide": f"{t}/public",
                "public-lookup": f"{c}/lookup?receipt={e['receipt']}&code={code}",
                "public-complain": f"{c}/complain",
                "login": f"{t}/login",
                "county-subtasks": f"{c}/subtasks?department=县医保局",
                "county-inbox": f"{c}/inbox",
                "town-decision": f"{t}/print/{e['done']}/decision",
                "town-delivery": f"{t}/print/{e['done']}/delivery",
                "county-ledger": f"{c}/office/ledger",
                "county-assessment": f"{c}/office/assessment/",
                "county-sms": f"{c}/office/sms/",
                "county-platform": f"{c}/office/platform/",
                "town-business": f"{t}/office/business/",
                "town-rules": f"{t}/office/rules/",
            }
            add_admin(cluster.nodes["C"].config)
            saved = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                try:
                    page = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768}).new_page()
                    for name, url in pages.items():
                        page.goto(url)
                        path = out / f"{name}.png"
                        page.screenshot(path=str(path), full_page=True)
                        saved.append(path)
                    _review(page, v)
                    page.screenshot(path=str(out / "village-review.png"), full_page=True)
                    saved.append(out / "village-review.png")
                    # the village desk on an agent's phone (390 CSS px, as most phones in the field)
                    phone = browser.new_context(
                        locale="zh-CN", viewport={"width": 390, "height": 844}, device_scale_factor=2
                    ).new_page()
                    for name in ("village-home", "village-register", "village-errand", "village-receipt"):
                        phone.goto(pages[name])
                        path = out / f"{name}-phone.png"
                        phone.screenshot(path=str(path), full_page=True)
                        saved.append(path)
                    _review(phone, v)
                    phone.screenshot(path=str(out / "village-review-phone.png"), full_page=True)
                    saved.append(out / "village-review-phone.png")
                    # the English switch (the lang cookie): a county supervisor's pages and an agent's phone
                    english = {
                        "county-home": (1366, 768),
                        "county-supervision": (1366, 768),
                        "village-home": (390, 844),
                    }
                    for name, (width, height) in english.items():
                        context = browser.new_context(locale="en-GB", viewport={"width": width, "height": height})
                        context.add_cookies([{"name": "lang", "value": "en", "url": pages[name]}])
                        shot = context.new_page()
                        shot.goto(pages[name])
                        path = out / f"{name}{'-phone' if width < 500 else ''}-en.png"
                        shot.screenshot(path=str(path), full_page=True)
                        saved.append(path)
                        context.close()
                    saved += admin_shots(browser, c, out)
                finally:
                    browser.close()
            return saved
        finally:
            cluster.stop()


def _city_errands(cluster: Cluster) -> dict[str, str]:
    """Errands of both counties at different stages, each waited for until the city holds it."""
    city = httpx.Client(base_url=cluster.nodes["S"].url, timeout=30)
    out: dict[str, str] = {}
    for county in ("C1", "C2"):
        village = httpx.Client(base_url=cluster.nodes[f"{county}T01V01"].url, timeout=30)
        town = httpx.Client(base_url=cluster.nodes[f"{county}T01"].url, timeout=30)
        hub = httpx.Client(base_url=cluster.nodes[county].url, timeout=30)
        _wait_catalogue(village)
        matters = {m["code"]: m for m in hub.get("/api/catalogue").json()["matters"]}

        def register(name: str, phone: str, matter: str, village: Any = village, matters: Any = matters) -> str:
            body = {"matter": matter, "applicant_name": name, "applicant_id_number": "430621195007307791"}
            materials = [m["name"] for m in matters[matter]["materials"]]
            body |= {"applicant_phone": phone, "materials": materials, "mandate": True, **AGENT}
            return str(_post(village, "/api/errands", body)["errand"])

        up = register("张秀英" if county == "C1" else "陈春花", "13812345678", "MZ-001")
        intake = register("赵桂兰" if county == "C1" else "李玉梅", "13907301234", "MZ-003")
        for errand in (up, intake):
            _post(village, f"/api/errands/{errand}/actions", {"kind": "submit", **AGENT})
        for errand in (up, intake):
            _wait_for(town, errand, lambda e, c=county: e["pending_to"] == f"{c}T01")
            _post(town, f"/api/errands/{errand}/actions", {"kind": "receive", **WINDOW})
        dept = matters["MZ-001"].get("department") or "县民政局"
        _post(town, f"/api/errands/{up}/actions", {"kind": "accept", "errand_kind": "上报件", **WINDOW})
        _post(town, f"/api/errands/{up}/actions", {"kind": "escalate", "department": dept, **WINDOW})
        _wait_for(hub, up, lambda e, c=county: e["pending_to"] == c)
        _post(hub, f"/api/errands/{up}/actions", {"kind": "receive", "actor": "刘芳", "role": "部门审批"})
        if county == "C1":  # one township errand decided and delivered, for the ledgers' 办结
            _post(town, f"/api/errands/{intake}/actions", {"kind": "accept", "errand_kind": "承诺件", **WINDOW})
            _post(town, f"/api/errands/{intake}/actions", {"kind": "decide", "outcome": "approved", **WINDOW})
            _post(town, f"/api/errands/{intake}/actions", {"kind": "send_result", **WINDOW})
            _wait_for(village, intake, lambda e, c=county: e["pending_to"] == f"{c}T01V01")  # delivered where asked
            _post(village, f"/api/errands/{intake}/actions", {"kind": "receive", **AGENT})
            _post(
                village,
                f"/api/errands/{intake}/actions",
                {"kind": "deliver", "confirmed_by": "赵桂兰", "signature": "纸质送达回证已签字", **AGENT},
            )
        out[f"{county}-up"], out[f"{county}-intake"] = up, intake
    for errand in out.values():
        _wait_for(city, errand, lambda e: True, timeout=180)
    _wait_for(city, out["C1-intake"], lambda e: e["stage"] == "delivered", timeout=180)
    _wait_for(city, out["C2-up"], lambda e: e["stage"] == "at_department", timeout=180)
    return out


def _wait_catalogue(client: httpx.Client, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/api/catalogue").status_code == 200:
            return
        time.sleep(0.5)
    raise RuntimeError("no catalogue arrived")


def shoot_city(out: Path) -> list[Path]:
    """Every page of the city's desk, in Chinese, and its home page after the English switch."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        cluster = Cluster.prepare(Path(work) / "city", counties=2, towns=1, villages_per_town=1, open_demo=True)
        try:
            cluster.start(wait=False)
            for node_id in cluster.nodes:
                cluster.wait_ready(node_id, timeout=300)
            e = _city_errands(cluster)
            s = cluster.nodes["S"].url
            receipt = httpx.get(f"{s}/api/errands/{e['C2-up']}", timeout=30).json()["receipt"]
            pages = {
                "city-home": f"{s}/",
                "city-errand": f"{s}/errands/{e['C1-up']}",
                "city-errand-delivered": f"{s}/errands/{e['C1-intake']}",
                "city-supervision": f"{s}/supervision",
                "city-ledger": f"{s}/office/ledger",
                "city-lookup": f"{s}/lookup?receipt={receipt}&code={lookup_code(e['C2-up'])}",
                "city-enroll": f"{s}/enroll",
                "city-carry": f"{s}/carry",
                "city-sms": f"{s}/office/sms",
                "city-public": f"{s}/public",
                "city-complain": f"{s}/complain",
            }
            add_admin(cluster.nodes["S"].config, "市管理员")
            saved = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                try:
                    page = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 768}).new_page()
                    for name, url in pages.items():
                        page.goto(url)
                        path = out / f"{name}.png"
                        page.screenshot(path=str(path), full_page=True)
                        saved.append(path)
                    context = browser.new_context(locale="en-GB", viewport={"width": 1366, "height": 768})
                    context.add_cookies([{"name": "lang", "value": "en", "url": s}])
                    english = context.new_page()
                    english.goto(f"{s}/")
                    english.screenshot(path=str(out / "city-home-en.png"), full_page=True)
                    saved.append(out / "city-home-en.png")
                    staff = ("陈监察", "supervisor")
                    saved += admin_shots(browser, s, out, prefix="city", name="市管理员", phone=False, staff=staff)
                finally:
                    browser.close()
            return saved
        finally:
            cluster.stop()


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != "--city"]
    out = Path(args[0] if args else "docs/screens")
    for path in shoot_city(out) if "--city" in argv else shoot(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

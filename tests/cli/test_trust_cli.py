"""``sanji trust ...`` and ``sanji enroll ...`` as a county's officials type them: the whole bootstrap.

The root of trust is made and the hub certified with the real commands; the county is then
served for real (``sanji county serve`` in its own process, as the end-to-end tests run their
nodes); its director issues a township's token (text and a QR code file) and the township's
machine redeems it with ``enroll join``, which POSTs to the running county.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from protocol.enrollment import TOKEN_PREFIX, decode_token
from protocol.topology import TOWN
from sanji.demo.cluster import Cluster
from tests.enroll_kit import ROOT_KEYS, certify_county, issue, run_cli, token_text

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    """A county of one township and one village on disk (keys and configs; directory.json), nothing running."""
    return Cluster.prepare(
        tmp_path / "county", towns=1, villages_per_town=1, interval=0.3, max_backoff=1.0, open_demo=True
    )


def mistype(token: str) -> str:
    """The token with one character of its body (not the prefix, not a dash) changed to another valid one."""
    at = len(TOKEN_PREFIX) + 1 + 7  # the second character of the second group
    old = token[at]
    assert old in BASE32
    return token[:at] + BASE32[(BASE32.index(old) + 1) % 32] + token[at + 1 :]


def test_the_hub_is_certified_by_two_root_keys_not_one(cluster: Cluster, tmp_path: Path) -> None:
    root = tmp_path / "root"
    county = cluster.nodes["C"].config
    code, out = run_cli("trust", "init-root", "--county", "C", "--out", root)
    assert code == 0 and "root version 1 for C: 3 keys, 2 needed" in out, out
    assert sorted(p.name for p in root.iterdir()) == [*ROOT_KEYS, "root.sjt"]
    code, out = run_cli("trust", "init-root", "--county", "C", "--out", root)
    assert code == 2 and "exists" in out  # a county makes its root once

    certify = ["trust", "certify-hub", "--config", county, "--root", root / "root.sjt"]
    code, out = run_cli(*certify, "--root-key", root / ROOT_KEYS[0])
    assert code == 2, out
    assert "certifying the hub takes 2 different keys of this root; got 1" in out
    (hint,) = [line for line in out.splitlines() if line.startswith("hint:")]
    assert hint.index("请为 2 个根密钥文件各给一次 --root-key") < hint.index("Give --root-key once for each of 2"), hint
    code, out = run_cli(*certify, "--root-key", root / ROOT_KEYS[0], "--root-key", root / ROOT_KEYS[0])
    assert code == 2 and "got 1 (1 of the key files given are not keys of this root, or repeat one)" in out
    code, out = run_cli(
        *certify, "--root-key", root / ROOT_KEYS[0], "--root-key", cluster.nodes["C"].config.parent / "node.key"
    )
    assert code == 2 and "got 1" in out  # the hub's own key is not a root key
    code, out = run_cli("trust", "show", "--config", county)
    assert code == 0 and "no root of trust" in out  # nothing was installed by the refused attempts
    code, out = run_cli("enroll", "issue", "--config", county, "--node", "T01", "--role", TOWN)
    assert code == 2 and "holds no root of trust, so it cannot enroll others" in out

    code, out = run_cli(*certify, "--root-key", root / ROOT_KEYS[0], "--root-key", root / ROOT_KEYS[2])
    assert code == 0 and "已认证枢纽节点 C" in out and "certified hub C" in out, out
    code, out = run_cli("trust", "show", "--config", county)
    assert out.index("信任根第 1 版，枢纽 C，3 把根密钥中需 2 把") < out.index("root version 1, hub C, 2 of 3 keys")
    [hub] = [line for line in out.splitlines() if line.strip().startswith("证书 cert ")]
    assert " C " in hub and "county" in hub and "issuer=root" in hub


@pytest.mark.processes
def test_the_county_enrolls_a_township_with_a_token_end_to_end(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certify_county(cluster, tmp_path / "root")
    county, town = cluster.nodes["C"].config, cluster.nodes["T01"].config

    # Issued at the county: the token as text, and its QR code written as a PNG.
    qr = tmp_path / "T01-token.png"
    code, out = run_cli(
        "enroll", "issue", "--config", county, "--node", "T01", "--role", TOWN, "--name", "东岭镇", "--qr", qr
    )
    assert code == 0, out
    assert "enrollment token for T01 (town), valid until" in out and f"QR code written to {qr}" in out
    token = token_text(out)
    decoded = decode_token(token)
    assert (decoded.parent, decoded.node, decoded.role) == ("C", "T01", TOWN)
    assert qr.read_bytes().startswith(PNG_MAGIC) and qr.stat().st_size > 500

    # The county is not running yet: joining says so plainly (no traceback) and leaves the token unused.
    code, out = run_cli("enroll", "join", "--config", town, "--token", token)
    assert code == 2 and f"could not reach the parent at {cluster.nodes['C'].url}" in out, out

    cluster.start("C")
    try:
        # One character mistyped: refused by the token's check characters, before any network use
        # (a 16-bit check: one mistyped token in 65536 would get through to the parent and fail here).
        with monkeypatch.context() as patch:

            def no_network(*_: object, **__: object) -> None:
                raise AssertionError("a mistyped token must be refused before any request is sent")

            patch.setattr(httpx.AsyncClient, "send", no_network)
            code, out = run_cli("enroll", "join", "--config", town, "--token", mistype(token))
        assert code == 2, out
        assert "error: 入网未完成（令牌有误、已用过或已过期） the enrollment token is mistyped (its check" in out

        # The token as printed (spaces and lower case as a person might type it) enrolls the township.
        code, out = run_cli("enroll", "join", "--config", town, "--token", token.lower().replace("-", " "))
        assert code == 0, out
        assert "T01 enrolled under C" in out
        joined = out

        # Once only.
        code, out = run_cli("enroll", "join", "--config", town, "--token", token)
        assert code == 2, out
        assert "the parent refused the enrollment (403): the enrollment token for T01 was already used" in out

        # Both hold the township's certificate, issued by the county; the county's shown by the real command.
        code, out = run_cli("trust", "show", "--config", town)
        assert code == 0 and "root version 1, hub C, 2 of 3 keys" in out
        certs = {line.split()[3]: line for line in out.splitlines() if line.strip().startswith("证书 cert ")}
        assert set(certs) == {"C", "T01"}
        assert "town" in certs["T01"] and "parent=C" in certs["T01"] and "issuer=C" in certs["T01"]
        shown = subprocess.run(
            [sys.executable, "-m", "sanji.cli.main", "trust", "show", "--config", str(county)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert certs["T01"].strip() in shown and "issuer=root" in shown

        # The enrolled township starts, is the database its certificate names, and exchanges with the county.
        cluster.start("T01")
        deadline = time.monotonic() + 20
        node = httpx.get(cluster.nodes["T01"].url + "/api/node", timeout=5).json()
        while node["last_exchange_ok_at"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
            node = httpx.get(cluster.nodes["T01"].url + "/api/node", timeout=5).json()
        assert (node["id"], node["parent"]) == ("T01", "C")
        assert f"(database {node['instance_id']})" in joined
        assert node["last_exchange_ok_at"] is not None, f"T01 never exchanged with C; see {cluster.nodes['T01'].log}"
    finally:
        cluster.stop()


def test_a_token_for_another_node_is_refused_by_the_config_it_is_used_with(cluster: Cluster, tmp_path: Path) -> None:
    certify_county(cluster, tmp_path / "root")
    token = issue(cluster.nodes["C"].config, "T01", TOWN)
    code, out = run_cli("enroll", "join", "--config", cluster.nodes["T01V01"].config, "--token", token)
    assert code == 2 and "the token is for T01 (town); this config is T01V01 (village)" in out
    code, out = run_cli("enroll", "join", "--config", cluster.nodes["T01"].config, "--token", "SJE2-AAAAA")
    assert code == 2 and "not a Sanji enrollment token" in out

"""Key files at rest: a village laptop's keys protected by a passphrase, so its disk alone opens nothing.

``node.key`` and ``node.enc.key`` may be *protected* (``SJK1``: scrypt, then ChaCha20-Poly1305
with the file's kind in the associated data). A protected file opens only with its passphrase,
names itself clearly when it cannot, refuses any changed byte, and cannot stand in for the other
kind of key file. A node names the environment variable holding the passphrase in ``[node]
key_passphrase_env``; ``sanji keys protect`` converts a running node's plain files in place.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from protocol.errors import SanjiError
from protocol.signing import SigningKey
from protocol.topology import TOWN
from sanji import keys
from sanji.cli import keys_init
from sanji.config import load_settings
from sanji.demo.cluster import Cluster
from sanji.keys import (
    KIND_SEALING,
    KIND_SIGNING,
    MAGIC,
    KeyFileError,
    NodeKey,
    is_protected,
    key_passphrase,
    read_key,
    read_sealing_key,
    sealing_key_path,
    write_key,
)
from sanji.sync.trust_step import next_key_path
from tests.enroll_kit import certify_county, issue, run_cli, serving
from tests.trust.trust_net import certified_net
from village_agent.app import create_app

PASSPHRASE = "河口乡 laptop passphrase 7"
ENV = "SANJI_TEST_KEY_PASSPHRASE"
REAL_LOG2N = keys.SCRYPT_LOG2N
ID_NUMBER, PHONE = "430621195007307791", "13812345678"
APPLICANT = {
    "matter": "MZ-001",
    "applicant_name": "张秀英",
    "applicant_id_number": ID_NUMBER,
    "applicant_phone": PHONE,
    "materials": ["身份证复印件"],
    "actor": "代办员 李建国",
}


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written here cost n = 2**10 instead of 2**15: the format records its own parameters."""
    monkeypatch.setattr(keys, "SCRYPT_LOG2N", 10)
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def pair_on_disk(tmp_path: Path) -> tuple[NodeKey, Path]:
    key = NodeKey.generate_pair()
    path = tmp_path / "node.key"
    write_key(path, key, PASSPHRASE)
    return key, path


# -- the file format ---------------------------------------------------------------------------


def test_protected_signing_and_sealing_keys_round_trip(tmp_path: Path) -> None:
    key, path = pair_on_disk(tmp_path)
    assert key.sealing is not None
    enc = sealing_key_path(path)
    for file, secret in ((path, key.private_bytes()), (enc, key.sealing.private_bytes())):
        data = file.read_bytes()
        assert data.startswith(MAGIC) and is_protected(data)
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert secret not in data  # the raw key is nowhere in the file
    again = read_key(path, PASSPHRASE)
    assert again.key_id == key.key_id and again.private_bytes() == key.private_bytes()
    assert again.sealing is not None and again.sealing.private_bytes() == key.sealing.private_bytes()
    assert read_sealing_key(enc, PASSPHRASE).key_id == key.sealing.key_id
    assert key_passphrase(again) == PASSPHRASE.encode()  # rotation protects new files the same way
    assert not list(tmp_path.glob("*.tmp"))
    # Two files never share salt or nonce: the same key written twice gives different bytes.
    first = path.read_bytes()
    write_key(path, key, PASSPHRASE)
    assert path.read_bytes() != first and read_key(path, PASSPHRASE).key_id == key.key_id


def test_plain_key_files_still_open_with_or_without_a_passphrase(tmp_path: Path) -> None:
    key = NodeKey.generate_pair()
    path = tmp_path / "node.key"
    write_key(path, key)
    assert len(path.read_bytes()) == 32
    assert read_key(path).key_id == key.key_id
    opened = read_key(path, PASSPHRASE)  # a node configured for a passphrase still starts on plain files
    assert opened.key_id == key.key_id and opened.sealing is not None


def test_without_the_passphrase_the_file_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, path = pair_on_disk(tmp_path)
    with pytest.raises(KeyFileError, match="is protected by a passphrase and none was given") as caught:
        read_key(path)
    assert str(path) in caught.value.message and "key_passphrase_env" in caught.value.hint
    assert isinstance(caught.value, SanjiError) and isinstance(caught.value, ValueError)
    with pytest.raises(KeyFileError, match=f"the environment variable {ENV} .* is not set") as caught:
        read_key(path, passphrase_env=ENV)
    assert ENV in caught.value.hint
    monkeypatch.setenv(ENV, PASSPHRASE)
    assert read_key(path, passphrase_env=ENV).key_id == key.key_id


def test_a_wrong_passphrase_is_refused_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = pair_on_disk(tmp_path)
    with pytest.raises(KeyFileError, match="does not open: wrong passphrase, or the file was altered") as caught:
        read_key(path, "not the passphrase")
    assert str(path) in caught.value.message
    monkeypatch.setenv(ENV, "not the passphrase either")
    with pytest.raises(KeyFileError, match=f"wrong passphrase \\(from {ENV}\\)"):
        read_key(path, passphrase_env=ENV)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        read_sealing_key(sealing_key_path(path), "not the passphrase")


def test_the_passphrase_can_come_from_a_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, path = pair_on_disk(tmp_path)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / ENV).write_text(PASSPHRASE + "\n", encoding="utf-8")  # LoadCredential=NAME:/path
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert read_key(path, passphrase_env=ENV).key_id == key.key_id


@pytest.mark.parametrize("at", range(len(MAGIC) + 4 + 16 + 12 + 32 + 16))
def test_every_changed_byte_is_refused(tmp_path: Path, at: int) -> None:
    _, path = pair_on_disk(tmp_path)
    for file, reader in ((path, read_key), (sealing_key_path(path), read_sealing_key)):
        data = bytearray(file.read_bytes())
        assert len(data) == keys.PROTECTED_BYTES
        original = bytes(data)
        data[at] ^= 0x01
        file.write_bytes(bytes(data))
        with pytest.raises(KeyFileError):
            reader(path if reader is read_key else file, PASSPHRASE)
        file.write_bytes(original)


def test_a_truncated_or_foreign_file_is_refused(tmp_path: Path) -> None:
    _, path = pair_on_disk(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(KeyFileError, match="damaged protected key file"):
        read_key(path, PASSPHRASE)
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match="not a Sanji Ed25519 key file"):
        read_key(path, PASSPHRASE)


def test_a_sealing_key_file_cannot_stand_in_for_the_signing_key(tmp_path: Path) -> None:
    key, path = pair_on_disk(tmp_path)
    enc = sealing_key_path(path)
    signing_file, sealing_file = path.read_bytes(), enc.read_bytes()
    path.write_bytes(sealing_file)
    with pytest.raises(KeyFileError, match="holds a sealing \\(X25519\\) key, not a signing \\(Ed25519\\) key"):
        read_key(path, PASSPHRASE)
    # Relabelled as a signing key: the kind is bound into the tag, so it does not open either.
    relabelled = bytearray(sealing_file)
    relabelled[len(MAGIC)] = KIND_SIGNING
    path.write_bytes(bytes(relabelled))
    with pytest.raises(KeyFileError, match="does not open"):
        read_key(path, PASSPHRASE)
    # And the other way round.
    path.write_bytes(signing_file)
    enc.write_bytes(signing_file)
    with pytest.raises(KeyFileError, match="holds a signing \\(Ed25519\\) key, not a sealing \\(X25519\\) key"):
        read_key(path, PASSPHRASE)
    relabelled = bytearray(signing_file)
    relabelled[len(MAGIC)] = KIND_SEALING
    enc.write_bytes(bytes(relabelled))
    with pytest.raises(KeyFileError, match="does not open"):
        read_sealing_key(enc, PASSPHRASE)
    assert key.key_id  # the pair itself was never the problem


def test_a_variable_that_is_not_set_never_yields_a_plain_file(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    with pytest.raises(KeyFileError, match=f"the key passphrase variable {ENV} is not set"):
        write_key(path, NodeKey.generate_pair(), passphrase_env=ENV)
    assert not path.exists() and not sealing_key_path(path).exists()
    with pytest.raises(KeyFileError, match="at least 8 characters"):
        write_key(path, SigningKey.generate(), "short")
    assert not path.exists()


def test_new_files_cost_scrypt_n_2_15_and_open_in_well_under_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "SCRYPT_LOG2N", REAL_LOG2N)
    path = tmp_path / "node.key"
    key = SigningKey.generate()
    write_key(path, key, PASSPHRASE)
    header = path.read_bytes()[len(MAGIC) : len(MAGIC) + 4]
    assert (header[0], 1 << header[1], header[2], header[3]) == (KIND_SIGNING, 2**15, 8, 1)
    started = time.thread_time()  # CPU time of this thread: a busy machine does not inflate it
    assert read_key(path, PASSPHRASE).key_id == key.key_id
    assert time.thread_time() - started < 1.0


# -- the CLI and a real node -------------------------------------------------------------------


def name_the_variable(config: Path) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[node]\n", f'[node]\nkey_passphrase_env = "{ENV}"\n', 1), encoding="utf-8")


@pytest.fixture
def village_config(tmp_path: Path) -> Path:
    """A village's config and plain key files, as ``Cluster.prepare`` writes them (nothing running)."""
    return Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, open_demo=True).nodes["T01V01"].config


def database_bytes(node_dir: Path) -> bytes:
    """The node's SQLite database as it lies on the disk: the file and its WAL."""
    return b"".join(path.read_bytes() for path in sorted(node_dir.glob("node.db*")))


def village_app(config: Path) -> Litestar:
    return create_app(load_settings(config))


def test_keys_protect_converts_a_running_nodes_files_and_it_still_opens_sealed_details(
    village_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    node_dir = village_config.parent
    with TestClient(village_app(village_config)) as client:
        r = client.post("/api/errands", json=APPLICANT)
        assert r.status_code == 201, r.text
        errand = r.json()["errand"]
    before = read_key(node_dir / "node.key")
    held = database_bytes(node_dir)
    assert "张秀英".encode() in held and ID_NUMBER.encode() not in held  # sealed in the database, as before

    # No variable named anywhere: nothing to protect with.
    assert keys_init.run_protect(str(village_config)) == 2
    assert "--passphrase-env NAME" in capsys.readouterr().out
    # Named but not set (and no terminal to type it on): nothing is written.
    assert keys_init.run_protect(str(village_config), passphrase_env=ENV) == 2
    assert f"the key passphrase variable {ENV} is not set" in capsys.readouterr().out
    assert len((node_dir / "node.key").read_bytes()) == 32

    monkeypatch.setenv(ENV, PASSPHRASE)
    assert keys_init.run_protect(str(village_config), passphrase_env=ENV) == 0
    out = capsys.readouterr().out
    assert (
        f"{node_dir / 'node.key'}: 已加密 protected" in out and f"{node_dir / 'node.enc.key'}: 已加密 protected" in out
    )
    assert f'key_passphrase_env = "{ENV}"' in out  # the config does not name it yet: say so
    for name in ("node.key", "node.enc.key"):
        assert is_protected((node_dir / name).read_bytes())
    after = read_key(node_dir / "node.key", PASSPHRASE)
    assert after.key_id == before.key_id and after.sealing is not None and before.sealing is not None
    assert after.sealing.private_bytes() == before.sealing.private_bytes()

    name_the_variable(village_config)
    assert keys_init.run_protect(str(village_config)) == 0  # again: nothing left to do
    assert "node.key: 此前已加密 already protected" in capsys.readouterr().out
    with TestClient(village_app(village_config)) as client:
        shown = client.get(f"/api/errands/{errand}?reveal=true").json()
    applicant = shown["history"][0]["applicant"]
    assert applicant["id_number"] == ID_NUMBER
    assert applicant["phone"] == PHONE


def test_a_node_with_protected_keys_starts_only_with_its_passphrase(
    village_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, PASSPHRASE)
    assert keys_init.run_protect(str(village_config), passphrase_env=ENV) == 0
    name_the_variable(village_config)

    monkeypatch.delenv(ENV)
    assert ENV in startup_error(village_config, f"is protected by a passphrase, but the environment variable {ENV}")
    monkeypatch.setenv(ENV, "a wrong passphrase")
    startup_error(village_config, "node.key does not open: wrong passphrase")

    monkeypatch.setenv(ENV, PASSPHRASE)
    with TestClient(village_app(village_config)) as client:
        r = client.post("/api/errands", json=APPLICANT)
        assert r.status_code == 201, r.text
        shown = client.get(f"/api/errands/{r.json()['errand']}?reveal=true").json()
    assert shown["history"][0]["applicant"]["id_number"] == ID_NUMBER
    held = database_bytes(village_config.parent)
    assert "张秀英".encode() in held and ID_NUMBER.encode() not in held


def startup_error(config: Path, says: str) -> str:
    """The node's app refuses to start (Litestar wraps the lifespan's error in an exception group)."""
    expected = pytest.RaisesExc(KeyFileError, match=re.escape(says))
    with pytest.RaisesGroup(expected, allow_unwrapped=True, flatten_subgroups=True) as caught:
        with TestClient(village_app(config)):
            pass
    [error] = caught.value.exceptions if isinstance(caught.value, BaseExceptionGroup) else [caught.value]
    while isinstance(error, BaseExceptionGroup):
        [error] = error.exceptions
    return str(error)


@pytest.mark.processes
def test_sanji_serve_without_the_passphrase_stops_at_once_saying_why(
    village_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, PASSPHRASE)
    assert keys_init.run_protect(str(village_config), passphrase_env=ENV) == 0
    name_the_variable(village_config)
    env = {k: v for k, v in os.environ.items() if k != ENV}
    done = subprocess.run(
        [sys.executable, "-m", "sanji.cli.main", "village", "serve", "--config", str(village_config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"node.key is protected by a passphrase, but the environment variable {ENV}" in done.stderr


def test_keys_init_writes_protected_files_when_given_a_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "T01V09" / "node.key"
    assert keys_init.run("T01V09", out, sealing=True, passphrase_env=ENV) == 2
    assert not out.exists()
    monkeypatch.setenv(ENV, PASSPHRASE)
    assert keys_init.run("T01V09", out, sealing=True, passphrase_env=ENV) == 0
    printed = capsys.readouterr()
    assert f'key_passphrase_env = "{ENV}"' in printed.err
    assert is_protected(out.read_bytes()) and is_protected(sealing_key_path(out).read_bytes())
    key = read_key(out, passphrase_env=ENV)
    assert key.sealing is not None
    assert key.key_id in printed.out and key.sealing.key_id in printed.out


def test_keys_rotate_protects_the_new_key_like_the_nodes(
    village_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, PASSPHRASE)
    assert keys_init.run_protect(str(village_config), passphrase_env=ENV) == 0
    name_the_variable(village_config)
    monkeypatch.setenv(ENV, "a wrong passphrase")
    assert keys_init.run_rotate(str(village_config)) == 2  # must open the node's own key first
    assert "wrong passphrase" in capsys.readouterr().out
    monkeypatch.setenv(ENV, PASSPHRASE)
    assert keys_init.run_rotate(str(village_config)) == 0
    waiting = next_key_path(village_config.parent / "node.key")
    assert is_protected(waiting.read_bytes())
    assert read_key(waiting, PASSPHRASE).key_id in capsys.readouterr().out


async def test_a_rotation_leaves_the_node_key_protected(tmp_path: Path) -> None:
    net = await certified_net(tmp_path, towns=1, villages=1)
    try:
        path = net.key_path("T01V01")
        village = net.stores["T01V01"]
        write_key(path, village.key, PASSPHRASE)  # as `sanji keys protect` leaves it
        village.use_key(read_key(path, PASSPHRASE))  # as the node opens it at start
        old = village.key.key_id
        # Left by software that wrote the waiting key in plain: protected before it is used.
        write_key(next_key_path(path), SigningKey.generate())
        await net.sync("T01V01")
        assert village.key.key_id != old and not next_key_path(path).exists()
        assert is_protected(path.read_bytes())
        reopened = read_key(path, PASSPHRASE)
        assert reopened.key_id == village.key.key_id and reopened.sealing is not None
        assert is_protected(path.with_name(f"{path.name}.retired-{old}").read_bytes())
    finally:
        await net.close()


def test_enroll_join_makes_protected_keys_when_the_config_names_a_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = Cluster.prepare(tmp_path / "county", towns=1, villages_per_town=1, enroll=True, open_demo=True)
    certify_county(cluster, tmp_path / "root")
    town = cluster.nodes["T01"].config
    assert not (town.parent / "node.key").exists()  # a new machine: `enroll join` makes its keys
    name_the_variable(town)
    token = issue(cluster.nodes["C"].config, "T01", TOWN)
    with serving(create_county_app(cluster), cluster.nodes["C"].port, name="county"):
        code, out = run_cli("enroll", "join", "--config", town, "--token", token)
        assert code == 2 and f"the key passphrase variable {ENV} is not set" in out, out
        assert not (town.parent / "node.key").exists()
        monkeypatch.setenv(ENV, PASSPHRASE)
        code, out = run_cli("enroll", "join", "--config", town, "--token", token)
        assert code == 0 and "T01 enrolled under C" in out, out
    for name in ("node.key", "node.enc.key"):
        assert is_protected((town.parent / name).read_bytes())
    code, out = run_cli("trust", "show", "--config", town)  # opens the node's keys from the variable
    assert code == 0, out
    assert read_key(town.parent / "node.key", PASSPHRASE).key_id in out
    monkeypatch.delenv(ENV)
    code, out = run_cli("trust", "show", "--config", town)
    assert code == 2 and ENV in out, out


def create_county_app(cluster: Cluster) -> Litestar:
    from county_node.app import create_app as county_app

    return county_app(load_settings(cluster.nodes["C"].config))

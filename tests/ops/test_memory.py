"""sanji.memory gives freed heap back on glibc and does nothing elsewhere; links share one CA store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sanji import memory
from sanji.sync.transport import HttpTransport, tls_for

GLIBC = sys.platform.startswith("linux") and (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")

# Small blocks come from malloc's heap; one in a hundred is kept, so the freed ones lie between live
# ones and glibc cannot shrink the heap from its top: only malloc_trim hands those pages back.
SCATTERED = """
import sys
from sanji import memory

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

blocks = [bytearray(2000) for _ in range(40_000)]
kept = blocks[::100]
del blocks
before = rss_kb()
trimmed = memory.trim()
print(trimmed, before - rss_kb(), len(kept))
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trim_hands_scattered_free_pages_back_on_glibc() -> None:
    out = subprocess.run([sys.executable, "-c", SCATTERED], capture_output=True, text=True, check=True, timeout=60)
    trimmed, released_kb, _ = out.stdout.split()
    assert trimmed == "True"
    assert int(released_kb) > 40_000  # most of the ≈ 79 MB freed between the kept blocks


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_arenas_are_limited_on_glibc_unless_the_operator_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.available()
    assert memory.limit_arenas(8)  # the allocator's own default for this machine's cores is at least 8
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert not memory.limit_arenas(8)


@pytest.mark.skipif(GLIBC, reason="only elsewhere")
def test_elsewhere_nothing_is_done() -> None:  # pragma: no cover - run on musl or another system
    assert not memory.available()
    assert not memory.trim()
    assert not memory.limit_arenas()


async def test_https_links_share_one_ca_store_and_plain_links_load_none() -> None:
    verifying = tls_for("https://county.example:8443")
    assert verifying is tls_for("HTTPS://another.example")
    assert verifying.cert_store_stats()["x509_ca"] > 0  # the CA store httpx would load (SSL_CERT_FILE honoured)
    plain = tls_for("http://127.0.0.1:8100")
    assert plain.cert_store_stats()["x509_ca"] == 0  # trusts nobody: a plain link that met TLS would fail
    links = [HttpTransport("https://county.example:8443"), HttpTransport("http://127.0.0.1:8100")]
    for link in links:
        await link.close()

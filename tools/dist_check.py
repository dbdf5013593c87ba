"""Build the wheel and prove it runs on its own: ``make dist`` (or ``python tools/dist_check.py``).

1. ``uv build --wheel`` into ``dist/``, and ``dist/requirements.txt`` (the locked runtime
   dependencies with hashes, from uv.lock) beside it.
2. A clean virtual environment outside the checkout; the locked dependencies, then the wheel.
3. ``sanji village serve`` from that environment, in a directory with nothing but a config and
   keys: it must migrate its store (migrations come from the wheel), answer ``/healthz`` and
   render its login page for a visitor to its home screen (templates from the wheel), then stop on
   SIGTERM.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
UV = str(Path(sys.executable).with_name("uv"))
MUST_CONTAIN = (
    "sanji/store/migrations/env.py",
    "sanji/store/migrations/versions/0001_initial_schema.py",
    "sanji/web/templates/home.html",
    "sanji/catalogue/data/illustrative.toml",
)


def build(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([UV, "build", "--wheel", "--quiet", "--out-dir", str(out)], cwd=ROOT, check=True, timeout=600)
    subprocess.run(
        [UV, "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet", "-o", str(out / "requirements.txt")],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    (wheel,) = out.glob("sanji-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in MUST_CONTAIN if n not in names]
    if missing:
        raise SystemExit(f"{wheel.name} lacks {missing}")
    return wheel


def install(wheel: Path, requirements: Path, venv: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([UV, "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)],
                   check=True, timeout=600)  # fmt: skip
    subprocess.run([UV, "pip", "install", "--quiet", "--no-deps", "--python", str(python), str(wheel)],
                   check=True, timeout=120)  # fmt: skip
    return venv / "bin" / "sanji"


def serve_once(sanji: Path, workdir: Path, *, stall: float = 120.0) -> str:
    """Start a village from ``sanji`` in ``workdir``; returns its home page. Raises if it does not come up."""
    sys.path.insert(0, str(ROOT))
    from sanji.demo.cluster import Cluster  # the checkout only writes keys and configs here

    cluster = Cluster.prepare(workdir / "county", towns=1, villages_per_town=1)
    node = cluster.nodes["T01V01"]
    version = subprocess.run([str(sanji), "--version"], capture_output=True, text=True, check=True, timeout=120)
    log = node.log.open("ab")
    proc = subprocess.Popen([str(sanji), "village", "serve", "--config", str(node.config)],
                            cwd=workdir, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    log.close()
    try:
        deadline = time.monotonic() + stall
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the installed node exited with {proc.returncode}: {node.log.read_text()[-2000:]}")
            try:
                if httpx.get(node.url + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit(f"the installed node did not answer in {stall:.0f}s: {node.log.read_text()[-2000:]}")
        # logins are on (a served node, not the demo): the home screen sends a visitor to the login page
        home = httpx.get(node.url + "/", timeout=10.0, follow_redirects=True)
        if home.status_code != 200 or not home.url.path.startswith("/login") or 'name="password"' not in home.text:
            raise SystemExit(f"the home screen failed: HTTP {home.status_code} at {home.url.path}")
        return f"{version.stdout.strip()}: {node.url}/ answered"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    out = ROOT / "dist"
    wheel = build(out)
    print(f"built {wheel.relative_to(ROOT)} and {(out / 'requirements.txt').relative_to(ROOT)}")
    with tempfile.TemporaryDirectory(prefix="sanji-dist-") as tmp:
        sanji = install(wheel, out / "requirements.txt", Path(tmp) / "venv")
        print(serve_once(sanji, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

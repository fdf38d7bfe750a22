"""Page render time of the real dashboard in headless Chromium: cold (first visit) and warm (p50 / p95 of repeats).

Starts ``streamlit run dashboard/app.py -- --root ROOT`` on a free loopback port (the zoo in ``checkpoints/`` by
default), opens each page in Debian's Chromium through Playwright, and times from navigation until the page
has its title and Streamlit reports the script run over (``data-test-script-state="notRunning"``).
"Warm" repeats reuse the server's caches (models loaded once, analysis tables cached), as a returning user sees.

    python benchmarks/bench_pages.py                     # ~2 minutes on a 2-core CPU
    python benchmarks/bench_pages.py --repeats 3 --root /path/to/checkpoints
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

from common import median, percentile, print_header  # noqa: E402

from dashboard.registry import PAGES as REGISTERED  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = [p.url_path for p in REGISTERED]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_server(root: Path, log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run dashboard/app.py`` on ``root`` in its own process group (``env`` added to ours);
    returns at once with the process and its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py")]
    cmd += ["--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1"]
    cmd += ["--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false", "--", "--root", str(root)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float = 120.0) -> None:
    """Poll the server's health endpoint until it answers (the server stopped and an error if it never does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    stop_server(proc)
    raise TimeoutError(f"streamlit did not start in {timeout:.0f} s")


def start_server(root: Path, log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """``launch_server`` and wait until it is healthy."""
    proc, url = launch_server(root, log, env)
    wait_healthy(proc, url, log)
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # the process group this script started, nothing else
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def render_seconds(page, url: str, timeout_s: float = 180.0) -> float:  # noqa: ANN001 - playwright Page
    """Navigate and return the seconds until the title is drawn and the script run is over (stable for 0.3 s).

    Streamlit marks its root element with ``data-test-script-state`` ("initial", "running", "notRunning").
    """
    start = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("h1", timeout=timeout_s * 1000)
    idle_since = None
    while time.perf_counter() - start < timeout_s:
        idle = page.query_selector(IDLE) is not None
        now = time.perf_counter()
        if not idle:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= 0.3:
            if page.query_selector('[data-testid="stException"]') is not None:
                raise RuntimeError(f"{url}: the page shows an exception")
            return idle_since - start
        time.sleep(0.02)
    raise TimeoutError(f"{url} did not finish in {timeout_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not (REPO / "dashboard" / "app.py").is_file():
        sys.exit("dashboard/app.py is missing: nothing to time")
    from playwright.sync_api import sync_playwright

    print_header("page render time in headless Chromium (s; lower is better)")
    print(f"# root: {args.root}")
    log = Path(tempfile.mkstemp(prefix="bench_pages_", suffix=".log")[1])
    proc, url = start_server(args.root, log)
    rows = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path in PAGES:
                cold = render_seconds(page, f"{url}/{path}")
                warm = [render_seconds(page, f"{url}/{path}") for _ in range(args.repeats)]
                rows.append((path or "overview", cold, median(warm), percentile(warm, 0.95)))
                print(f"  {path or 'overview'}: cold {cold:.2f} s, warm p50 {median(warm):.2f} s", flush=True)
            browser.close()
    finally:
        stop_server(proc)
    print(f"{'page':<16} {'cold s':>7} {'warm p50':>9} {'warm p95':>9}")
    for name, cold, p50, p95 in rows:
        print(f"{name:<16} {cold:7.2f} {p50:9.2f} {p95:9.2f}")


if __name__ == "__main__":
    main()

"""The dashboard from a cold start, as a lecturer meets it: a fresh server, then every page once, then reruns.

Per round, on a server this script starts (``streamlit run dashboard/app.py`` on a free loopback port, the zoo
in ``checkpoints/``), with Chromium already open as a lecturer's browser would be:

1. **first page**: seconds from ``streamlit run`` until the first page is drawn (its title shown and the script
   run over);
2. **first visit** of every other page, in the navigation's order, with its default models and input, each
   as soon as the previous one is drawn (W versus attention: its maps drawn too);
3. **new input**: a new sentence typed on W versus attention, until all three models' maps are drawn;
4. **server CPU per warm rerun**: each page rerun ``--reruns`` times in one session (Streamlit's "R" key),
   the server process's CPU seconds (user + system, all its threads) per rerun, and the rerun's wall time.

Variants alternate round by round: the start-up warm-up on (the default) with the pages visited at once
("warm") or once the server is quiet ("ready": the app started a minute before class), and off ("cold",
``GMLP_LENS_WARMUP=0``). Medians over rounds are reported with the machine and its load.

    python benchmarks/bench_coldstart.py                  # 2 rounds x 3 variants, ~5 minutes on 2 cores
    python benchmarks/bench_coldstart.py --rounds 3 --variants warm
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

from bench_pages import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE,
    launch_server,
    render_seconds,
    stop_server,
    wait_healthy,
)
from common import cpu_seconds, machine, median, print_header  # noqa: E402

from dashboard.registry import PAGES  # noqa: E402

NEW_SENTENCE = "a list comprehension builds a new list from the items of another sequence ."
# GMLP_LENS_WARMUP, and whether the page visits wait for the server to go quiet (the warm-up done): "ready" is a
# lecturer who starts the app a minute before class, "warm" one who clicks through at once.
VARIANTS = {"warm": ("1", False), "ready": ("1", True), "cold": ("0", False)}


def settle(page, timeout_s: float = 120.0) -> float:  # noqa: ANN001 - playwright Page
    """Wait for the script run an action started to finish (idle for 0.3 s); seconds from the call."""
    start = time.perf_counter()
    seen_running = False
    idle_since = None
    while time.perf_counter() - start < timeout_s:
        idle = page.query_selector(IDLE) is not None
        now = time.perf_counter()
        seen_running |= not idle
        if not idle:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= 0.3 and (seen_running or now - start > 2.0):
            if page.query_selector('[data-testid="stException"]') is not None:
                raise RuntimeError("the page shows an exception")
            return idle_since - start
        time.sleep(0.01)
    raise TimeoutError("the page did not finish")


def quiet(pid: int, timeout_s: float = 120.0) -> float:
    """Wait until the server uses under 5% of a core over a second; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < 0.05:
            break
    return time.perf_counter() - start


def one_round(browser, root: Path, variant: str, reruns: int) -> dict[str, float]:  # noqa: ANN001
    log = Path(tempfile.mkstemp(prefix=f"bench_cold_{variant}_", suffix=".log")[1])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    t0 = time.perf_counter()
    warmup, wait = VARIANTS[variant]
    proc, url = launch_server(root, log, {"GMLP_LENS_WARMUP": warmup})
    out: dict[str, float] = {}
    try:
        wait_healthy(proc, url, log)
        out["server up"] = time.perf_counter() - t0
        render_seconds(page, url)
        out["first page"] = time.perf_counter() - t0
        if wait:
            out["waited for the warm-up"] = quiet(proc.pid)
        for p in PAGES:
            if not p.default:
                out[f"first visit: {p.key}"] = render_seconds(page, f"{url}/{p.url_path}")
        page.goto(f"{url}/w_vs_attention", wait_until="domcontentloaded")
        render_seconds(page, f"{url}/w_vs_attention")
        box = page.get_by_label("Input sentence")
        box.fill(NEW_SENTENCE)
        box.press("Enter")
        out["new input: w_vs_attention"] = settle(page)
        quiet(proc.pid)  # the warm-up (if any) done: reruns are measured on an idle server
        for p in PAGES:
            render_seconds(page, f"{url}/{p.url_path}")
            cpu, wall = [], []
            for _ in range(reruns):
                page.mouse.click(5, 300)  # focus the page, not a text box, so "r" reruns
                before = cpu_seconds(proc.pid)
                page.keyboard.press("r")
                wall.append(settle(page))
                time.sleep(0.2)  # let the server finish sending
                cpu.append(cpu_seconds(proc.pid) - before)
            out[f"rerun cpu: {p.key}"] = median(cpu)
            out[f"rerun wall: {p.key}"] = median(wall)
    finally:
        stop_server(proc)
        page.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reruns", type=int, default=3)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print_header("dashboard cold start (s; lower is better)")
    print(f"# root: {args.root}; {args.rounds} rounds, variants alternate: {', '.join(args.variants)}")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for r in range(args.rounds):
            for variant in args.variants:
                res = one_round(browser, args.root, variant, args.reruns)
                results[variant].append(res)
                summary = ", ".join(f"{k} {v:.2f}" for k, v in res.items() if not k.startswith("rerun"))
                print(f"  round {r + 1} {variant}: {summary}", flush=True)
        browser.close()
    keys = list(dict.fromkeys(k for rounds in results.values() for k in rounds[0]))
    print(f"{'measure (median)':<34}" + "".join(f"{v:>10}" for v in args.variants))
    for key in keys:
        cells = [median([r[key] for r in results[v]]) if key in results[v][0] else float("nan") for v in args.variants]
        print(f"{key:<34}" + "".join(f"{c:10.2f}" for c in cells))
    print(f"# load average after: {machine()['load_avg_1m']}")


if __name__ == "__main__":
    main()

"""Load: >= 10 concurrent browser sessions doing fill-mask and page changes against one real server.

Each session types its own sentence and checks that every model's top-k shown to it is exactly what
``gmlp_core.inference.fill_mask`` gives for that sentence (no cross-session mix-ups), for a duration of
``GMLP_LENS_LOAD_SECONDS`` (default 20; 60 when measuring) with ``GMLP_LENS_LOAD_SESSIONS`` sessions
(default 10). The server's memory is sampled throughout: models load once, so RSS stays flat after warm-up.
Prints requests served, p50/p95 latency and peak memory, and writes them to ``$GMLP_LENS_LOAD_REPORT`` if set.

``GMLP_LENS_LOAD_CLASSROOM=1`` (``bash benchmarks/load_classroom.sh``: 30 sessions for 60 s) makes each session a
student in a lecture: besides its own fill-mask sentence it goes to W versus attention and moves the layer slider,
tries one of the lecturer's example sentences and switches the gMLP it compares, with a think time between actions
(``GMLP_LENS_LOAD_THINK`` seconds, default 1). Every view is checked to be its own: the layer and model in the
headings, the sentence's words on the maps' axes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import re
import statistics
import threading
import time
from pathlib import Path

import pytest
from conftest import zoo_is_present
from server_helpers import CHROMIUM, CHROMIUM_ARGS, REPO, cpu_seconds, rss_mb, streamlit_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]

DURATION = float(os.environ.get("GMLP_LENS_LOAD_SECONDS", "20"))
SESSIONS = int(os.environ.get("GMLP_LENS_LOAD_SESSIONS", "10"))
CLASSROOM = os.environ.get("GMLP_LENS_LOAD_CLASSROOM", "0").strip() not in ("", "0")
THINK = float(os.environ.get("GMLP_LENS_LOAD_THINK", "1.0"))
# The lecturer's examples on W versus attention (students try these rather than inventing their own), with
# no word in common between two of them, so a map showing another session's sentence is caught.
EXAMPLES = [
    "the value of the expression is returned by the function when the call ends .",
    "a list comprehension builds a new list from items of another sequence .",
    "exceptions raised inside try blocks are caught by matching except clauses .",
    "each module has its own private namespace , used as global scope .",
    "dictionaries map hashable keys onto arbitrary objects without order guarantees .",
    "generators yield values lazily while iteration continues until exhausted .",
]
GMLP_VARIANTS = ("mlm-gmlp", "mlm-gmlp-multiplicative")
TITLES = {"Training": "Training", "Overview": "gMLP Lens", "Live inference": "Live inference"}
WORDS = ["function", "module", "class", "string", "value", "list", "loop", "file", "error", "method", "object", "name"]
TOP_LINE = re.compile(r"^(?P<model>[\w.-]+) · \[MASK\] #1 top \d+: (?P<top>.+)$", re.MULTILINE)
ENTRY = re.compile(r"(.+?) \(\d+\.\d%\)(?:, |$)")


def tokens_of(line: str) -> list[str]:
    """The tokens of a "tok (12.3%), tok (4.5%)" line (probabilities may differ in the last digit across
    processes: thread counts change float summation order, so only the tokens are compared)."""
    return ENTRY.findall(line.strip())


def sentence(session: int, round_: int) -> str:
    """A distinct sentence per session and round (the [MASK] first, so truncation never drops it)."""
    a, b = WORDS[session % len(WORDS)], WORDS[(session * 7 + round_ * 3 + 1) % len(WORDS)]
    return f"[MASK] {a} of a {b}, number {session} in round {round_}."


def expected_top(root: Path, models: list[str], text: str, k: int = 5) -> dict[str, list[str]]:
    """What the page must show for ``text``: each model's top-k line, computed directly."""
    # imported outside a Streamlit runtime: its caches fall back to memory, which is fine here, say it once
    logging.getLogger("streamlit.runtime.caching.cache_data_api").setLevel(logging.ERROR)
    from dashboard.inference_view import top_line
    from gmlp_core import load_checkpoint, load_tokenizer
    from gmlp_core.inference import fill_mask

    out = {}
    for name in models:
        with _MODELS_LOCK:  # sessions ask concurrently: load each reference model once
            cached = _MODELS.get((root, name))
            if cached is None:
                cached = _MODELS[(root, name)] = (
                    load_checkpoint(root / name, device="cpu"),
                    load_tokenizer(root / name),
                )
        model, tok = cached
        table = fill_mask(model, tok, text, top_k=k).table
        out[name] = tokens_of(top_line(table[table["mask_index"] == 0]))
    return out


_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


class Sampler(threading.Thread):
    """Samples a process's RSS every 0.5 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), rss_mb(self.pid)))
            time.sleep(0.5)


async def session(browser, url: str, index: int, models: list[str], root: Path, stats: dict) -> None:  # noqa: ANN001
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    # Ten browsers drawing charts share the machine's cores with the server: on 2 cores an action can wait
    # 20-30 s for its element. This test is about correct, isolated answers, so actions may wait 2 minutes.
    context.set_default_timeout(120_000)
    page = await context.new_page()
    query = f"?models={','.join(models)}"
    try:
        await page.goto(f"{url}/inference{query}", wait_until="domcontentloaded")
        await _idle(page)
        deadline = stats["start"] + DURATION
        round_ = 0
        # every session completes at least one round, however late the loaded machine lets it start
        while round_ == 0 or time.monotonic() < deadline:
            text = sentence(index, round_)
            want = await asyncio.to_thread(expected_top, root, models, text)
            box = page.get_by_label("Text with one or more [MASK]")
            t0 = time.monotonic()
            await box.fill(text)
            await box.press("Control+Enter")
            await _idle(page)
            shown = await _shown(page, models, want)
            stats["latency"].append(time.monotonic() - t0)
            stats["interactions"].append(time.monotonic() - t0)
            stats["requests"] += 1
            if shown != want:
                stats["errors"].append(f"session {index} round {round_}: shown {shown} != expected {want}")
            if await page.locator('[data-testid="stException"]').count():
                stats["errors"].append(f"session {index}: exception box on the inference page")
            if CLASSROOM:
                await classroom_round(page, index, round_, models, stats)
            # a page change and back through the sidebar, as a user exploring the app would (same session)
            for link in ("Training" if round_ % 2 else "Overview", "Live inference"):
                t0 = time.monotonic()
                await page.get_by_role("link", name=link, exact=True).click()
                await _idle(page)
                await page.wait_for_selector(f"h1:has-text('{TITLES[link]}')", timeout=60_000)
                stats["pages"] += 1
                stats["latency_pages"].append(time.monotonic() - t0)
                stats["interactions"].append(time.monotonic() - t0)
            round_ += 1
    except Exception as err:  # recorded and asserted on below
        stats["errors"].append(f"session {index}: {type(err).__name__}: {err}")
    finally:
        await context.close()


async def _think() -> None:
    await asyncio.sleep(THINK * random.uniform(0.5, 1.5))


async def _timed(stats: dict, kind: str, action) -> None:  # noqa: ANN001 - an awaitable
    t0 = time.monotonic()
    await action
    stats.setdefault("latency_by_kind", {}).setdefault(kind, []).append(time.monotonic() - t0)
    stats["interactions"].append(time.monotonic() - t0)


async def classroom_round(page, index: int, round_: int, models: list[str], stats: dict) -> None:  # noqa: ANN001
    """One student's round on W versus attention: a layer, an example sentence, another gMLP; each view checked."""

    async def go() -> None:
        await page.get_by_role("link", name="W versus attention", exact=True).click()
        await _idle(page)

    await _think()
    await _timed(stats, "page change", go())
    slider = page.get_by_role("slider").first
    layer = 1 if round_ % 2 == 0 else 0

    async def move() -> None:
        await slider.focus()
        await page.keyboard.press("ArrowRight" if layer else "ArrowLeft")
        await _idle(page)

    await _think()
    await _timed(stats, "layer", move())
    for _ in range(2):  # an overloaded browser can drop a key press: press again (not a server error)
        if await _has_text(page, f"· layer {layer}", tries=20):
            break
        await move()
    if not await _has_text(page, f"· layer {layer}"):
        stats["errors"].append(f"session {index} round {round_}: layer {layer} not shown after moving the slider")

    text = EXAMPLES[(index + round_) % len(EXAMPLES)]
    box = page.get_by_label("Input sentence")

    async def type_it() -> None:
        await box.fill(text)
        await box.press("Enter")
        await _idle(page)

    await _think()
    await _timed(stats, "sentence", type_it())
    words = await asyncio.to_thread(word_pieces, stats["root"], models[0], text)
    shown = await _axis_words(page, words)
    if not words <= shown:
        stats["errors"].append(f"session {index} round {round_}: maps show {sorted(shown)[:8]}, not {text!r}")

    variant = GMLP_VARIANTS[round_ % 2]
    if variant in models:

        async def pick() -> None:
            await page.get_by_test_id("stSelectbox").filter(has_text="gMLP").last.click()
            # exactly this model: "mlm-gmlp" is also the start of "mlm-gmlp-multiplicative · ..."
            await page.get_by_role("option", name=re.compile(rf"^{re.escape(variant)}( ·|$)")).first.click()
            await _idle(page)

        await _think()
        await _timed(stats, "model", pick())
        if not await _has_text(page, f"{variant} · layer {layer}"):
            main = (await page.locator('[data-testid="stMain"]').inner_text())[:3000]
            stats["errors"].append(f"session {index} round {round_}: {variant} at layer {layer} not shown: {main!r}")
    if await page.locator('[data-testid="stException"]').count():
        stats["errors"].append(f"session {index}: exception box on W versus attention")
    await _think()


@functools.cache
def _tokenizer(root: Path, model: str) -> tuple[object, int]:
    from gmlp_core import load_tokenizer
    from gmlp_core.checkpoints import read_config

    return load_tokenizer(root / model), read_config(root / model).seq_len


def word_pieces(root: Path, model: str, text: str) -> set[str]:
    """The word pieces ``model`` reads in ``text``, as the maps' axes label them (10 characters at most)."""
    from dashboard.plots import _short
    from gmlp_core.inference import encode_text

    tokenizer, seq_len = _tokenizer(root, model)  # loaded once (loading times the tokenizer: not under load)
    enc = encode_text(tokenizer, text, seq_len)
    return {_short(t) for t in enc.tokens[: enc.n_real]}


async def _has_text(page, text: str, tries: int = 600) -> bool:  # noqa: ANN001
    for _ in range(tries):  # the last heading may still be painting
        if text in await page.locator('[data-testid="stMain"]').inner_text():
            return True
        await page.wait_for_timeout(100)
    return False


AXIS_WORDS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .flatMap(g => (g.layout && g.layout.yaxis && g.layout.yaxis.ticktext) || [])"""


async def _axis_words(page, want: set[str]) -> set[str]:  # noqa: ANN001
    """Every word on the maps' token axes (polled until ``want`` is there or 60 s pass: 30 browsers drawing on 2
    cores can take that long; another session's sentence never turns into this one, so a mix-up still fails)."""
    found: set[str] = set()
    for _ in range(600):
        found = set(await page.evaluate(AXIS_WORDS))
        if want <= found:
            break
        await page.wait_for_timeout(100)
    return found


async def _idle(page) -> None:  # noqa: ANN001
    await page.wait_for_selector("h1", timeout=120_000)
    await page.wait_for_timeout(250)
    await page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)


async def _shown(page, models: list[str], want: dict[str, list[str]]) -> dict[str, list[str]]:  # noqa: ANN001
    # The page may still be painting the last model's column, or (on a loaded machine) not have started the
    # rerun when the status widget was first checked: poll up to 30 s for every expected line. A wrong answer
    # (another session's) never turns into the expected one, so it still fails.
    found: dict[str, list[str]] = {}
    for _ in range(300):
        text = await page.locator('[data-testid="stMain"]').inner_text()
        found = {m.group("model"): tokens_of(m.group("top")) for m in TOP_LINE.finditer(text)}
        if all(found.get(n) == want[n] for n in models):
            break
        await page.wait_for_timeout(100)
    return {n: found.get(n, []) for n in models}


def _quantile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[int(q * (len(ordered) - 1))], 3) if ordered else None


def test_concurrent_sessions_get_their_own_answers(
    lens_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import async_playwright

    root = REPO / "checkpoints" if zoo_is_present() else lens_root
    wanted = ("mlm-gmlp", "mlm-amlp", "mlm-transformer") + (GMLP_VARIANTS[1:] if CLASSROOM else ())
    models = [n for n in wanted if (root / n / "config.json").is_file()]
    assert models
    runs = tmp_path / "runs.jsonl"  # the server's own time per script run (dashboard/runlog.py)
    monkeypatch.setenv("GMLP_LENS_RUN_LOG", str(runs))
    with streamlit_server(root, tmp_path / "streamlit.log") as (url, pid):
        sampler = Sampler(pid)
        sampler.start()

        async def main() -> dict:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                # warm-up: one session loads every model once
                warm = {
                    "start": time.monotonic() - DURATION + 1,
                    "root": root,
                    "latency": [],
                    "latency_pages": [],
                    "requests": 0,
                    "pages": 0,
                    "errors": [],
                    "interactions": [],
                }
                await session(browser, url, 999, models, root, warm)
                stats = {
                    "wall_start": time.time(),
                    "start": time.monotonic(),
                    "root": root,
                    "latency": [],
                    "latency_pages": [],
                    "requests": 0,
                    "pages": 0,
                    "errors": [],
                    "interactions": [],
                    "warm_rss": rss_mb(pid),
                    "cpu0": cpu_seconds(pid),
                }
                await asyncio.gather(*(session(browser, url, i, models, root, stats) for i in range(SESSIONS)))
                stats["elapsed"] = time.monotonic() - stats["start"]
                stats["server_cpu"] = cpu_seconds(pid) - stats["cpu0"]
                await browser.close()
                return stats

        stats = asyncio.run(main())
        sampler.stop.set()
        sampler.join()
    rss = [r for _, r in sampler.samples]
    lat = sorted(stats["latency"])
    lines = [json.loads(line) for line in runs.read_text().splitlines()] if runs.is_file() else []
    server_runs = [r for r in lines if r["end"] >= stats["wall_start"]]
    report = {
        "sessions": SESSIONS,
        "duration_s": round(stats["elapsed"], 1),
        "models": models,
        "root": str(root),
        "fill_mask_requests": stats["requests"],
        "page_changes": stats["pages"],
        "errors": len(stats["errors"]),
        "fill_mask_p50_s": round(statistics.median(lat), 3) if lat else None,
        "fill_mask_p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3) if lat else None,
        "page_change_p95_s": round(sorted(stats["latency_pages"])[int(0.95 * (len(stats["latency_pages"]) - 1))], 3)
        if stats["latency_pages"]
        else None,
        # how busy the server itself was: the rest of the latency is the browsers drawing (same CPUs)
        "classroom": CLASSROOM,
        "think_s": THINK if CLASSROOM else None,
        "interactions": len(stats["interactions"]),
        "interaction_p50_s": _quantile(stats["interactions"], 0.5),
        "interaction_p95_s": _quantile(stats["interactions"], 0.95),
        "p95_by_kind_s": {k: _quantile(v, 0.95) for k, v in stats.get("latency_by_kind", {}).items()},
        # the server's share of that latency: its script runs during the test (dashboard/runlog.py)
        "server_runs": len(server_runs),
        "server_run_p50_s": _quantile([r["seconds"] for r in server_runs], 0.5),
        "server_run_p95_s": _quantile([r["seconds"] for r in server_runs], 0.95),
        "server_run_cpu_p95_s": _quantile([r["cpu"] for r in server_runs], 0.95),
        "server_cpu_s": round(stats["server_cpu"], 1),
        "server_cpu_ms_per_interaction": round(1000 * stats["server_cpu"] / max(1, len(stats["interactions"]))),
        "cpu_cores": os.cpu_count(),
        "error_messages": [e[:2000] for e in stats["errors"][:20]],
        "rss_after_warmup_mb": round(stats["warm_rss"], 1),
        "rss_peak_mb": round(max(rss), 1),
        "rss_end_mb": round(rss[-1], 1),
    }
    print("\nload test:", json.dumps(report, indent=2))
    if os.environ.get("GMLP_LENS_LOAD_REPORT"):
        Path(os.environ["GMLP_LENS_LOAD_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")
    assert not stats["errors"], stats["errors"][:5]
    assert stats["requests"] >= SESSIONS, "every session completed at least one fill-mask"
    # models are loaded once and shared: memory after warm-up stays flat (sessions only add small state)
    assert report["rss_peak_mb"] - report["rss_after_warmup_mb"] < 150 + 5 * SESSIONS, report

"""A classroom at the protocol level: many students on one dashboard server, without browsers.

Each student is one websocket to ``/_stcore/stream`` (subprotocol ``streamlit``) speaking Streamlit's own messages:
a ``BackMsg`` with ``rerun_script`` runs a page (``page_name`` = its URL path, ``query_string``, the widget values in
``widget_states``), and the server answers with ``ForwardMsg``s until ``script_finished``. Widgets are found by
their label in the elements the server sends, so a student types a sentence, moves a layer slider, picks another
model or goes to another page as the browser would, and the time from sending to ``script_finished`` is the
server's round trip. Thirty students in one asyncio process cost the client a few seconds of CPU a minute, so on a
2-core machine the timings are the server's.

    python benchmarks/classroom.py [--sessions 30] [--seconds 180] [--root checkpoints] [--report FILE.json]

starts a server on the root (or uses ``--url``), warms it with one student, then runs the class: every student
acts every 2-10 s (``--think``) on Live inference, W versus attention, Spatial weights or Overview, about half of
the actions a new typed sentence. It prints p50 / p95 / max round trip (overall and per page and action), errors,
and the server's memory and CPU over time, and writes them as JSON. ``tests/test_classroom.py`` runs a CI-sized
class with the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dashboard import registry  # noqa: E402

# The pages a class follows (the lecture's: one fills masks, three show how tokens mix), by registry key.
CLASS_PAGES = ("inference", "w_vs_attention", "spatial", "overview")
# Sentences students type: all from the models' domain (Python's documentation), each with one [MASK], no two
# sharing a content word, so a view showing another student's sentence is caught by its words.
SENTENCES = (
    "The [MASK] statement is used to leave a loop early.",
    "A list comprehension builds a new [MASK] from another sequence.",
    "Exceptions raised inside try blocks are caught by matching [MASK] clauses.",
    "Each module has its own private [MASK], used as global scope.",
    "Dictionaries map hashable keys onto arbitrary [MASK].",
    "Generators yield values lazily while [MASK] continues until exhausted.",
    "The [MASK] function returns the number of items in a container.",
    "Strings are immutable sequences of Unicode [MASK].",
    "A class definition creates a new [MASK] object.",
    "The import system searches sys.path for the named [MASK].",
    "Arguments passed by keyword must follow positional [MASK].",
    "Files opened with the with statement are [MASK] automatically.",
)
# Words in the labels of the text boxes that take a sentence (not the sidebar's checkpoint sub-folder).
SENTENCE_BOXES = ("sentence", "text", "[mask]")
WIDGET_KINDS = (
    "text_area",
    "text_input",
    "selectbox",
    "slider",
    "radio",
    "checkbox",
    "button",
    "number_input",
    "multiselect",
    "button_group",
)


@dataclass
class Widget:
    """One widget the server drew: its kind, id and what a student may set it to."""

    kind: str
    id: str
    label: str
    options: list[str] = field(default_factory=list)
    low: float = 0.0
    high: float = 0.0
    step: float = 1.0
    value: Any = None


@dataclass
class Run:
    """One rerun as the client saw it."""

    page: str
    action: str
    seconds: float
    status: str  # "ok" | "exception" | "timeout" | "closed" | "compile error"
    widgets: dict[str, Widget]
    texts: list[str]
    errors: list[str]
    started: float  # time.monotonic() when sent


def _walk_text(el: Any, kind: str, texts: list[str]) -> None:
    body = getattr(el, kind)
    for name in ("body", "label", "caption", "text"):
        value = getattr(body, name, None)
        if isinstance(value, str) and value:
            texts.append(value)
    if kind == "plotly_chart":
        texts.append(body.spec)


class Student:
    """One browser tab's worth of protocol: a websocket, a current page and the widget values it has set."""

    def __init__(self, url: str, name: str, timeout: float = 180.0) -> None:
        self.url, self.name, self.timeout = url, name, timeout
        self.ws: Any = None
        self.page = ""
        self.query = ""
        self.states: dict[str, WidgetState] = {}  # what this student has set, sent with every rerun
        self.widgets: dict[str, Widget] = {}  # label -> the current page's widgets, as last drawn

    async def connect(self) -> None:
        ws_url = self.url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.ws = await websockets.connect(
            ws_url,
            subprotocols=["streamlit"],
            origin=self.url.rstrip("/"),
            max_size=256 * 2**20,
            open_timeout=60,
            ping_interval=None,
        )

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def run(self, page: str | None = None, query: str | None = None, action: str = "rerun") -> Run:
        """Run ``page`` (a registry key; the current one when None) with this student's widget values."""
        if page is not None and page != self.page:
            self.page, self.states = page, {}  # another page: its widgets start fresh, as in the browser
        if query is not None:
            self.query = query
        msg = BackMsg()
        cs = msg.rerun_script
        cs.page_name = registry.page(self.page).url_path
        cs.query_string = self.query
        cs.widget_states.widgets.extend(self.states.values())
        started = time.monotonic()
        texts: list[str] = []
        errors: list[str] = []
        widgets: dict[str, Widget] = {}
        status = "ok"
        await self.ws.send(msg.SerializeToString())
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    fwd = ForwardMsg()
                    fwd.ParseFromString(await self.ws.recv())
                    kind = fwd.WhichOneof("type")
                    if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                        el = fwd.delta.new_element
                        ek = el.WhichOneof("type")
                        if ek == "exception":
                            errors.append(f"{el.exception.type}: {el.exception.message}")
                        elif ek in WIDGET_KINDS:
                            w = _widget(el, ek)
                            if w is not None:
                                widgets[w.label] = w
                        if ek is not None:
                            _walk_text(el, ek, texts)
                    elif kind == "page_not_found":
                        errors.append(f"page not found: {self.page}")
                    elif kind == "script_finished":
                        if fwd.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                            status = "compile error"
                        if fwd.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                            break
        except TimeoutError:
            status = "timeout"
        except websockets.ConnectionClosed:
            status = "closed"
        seconds = time.monotonic() - started
        if errors and status == "ok":
            status = "exception"
        self.widgets = widgets
        return Run(self.page, action, seconds, status, widgets, texts, errors, started)

    # -- what a student does --------------------------------------------------------------------------------------
    def type_sentence(self, sentence: str) -> bool:
        """Put ``sentence`` in the page's first text box; False when the page has none."""
        box = next(
            (
                w
                for w in self.widgets.values()
                if w.kind in ("text_area", "text_input") and any(k in w.label.lower() for k in SENTENCE_BOXES)
            ),
            None,
        )
        if box is None:
            return False
        self.states[box.id] = WidgetState(id=box.id, string_value=sentence)
        return True

    def pick(self, rng: random.Random, words: tuple[str, ...]) -> str | None:
        """Move a slider or choose another option of a select box whose label has one of ``words``; the label moved."""
        choices = [
            w
            for w in self.widgets.values()
            if any(word in w.label.lower() for word in words)
            and ((w.kind == "slider" and w.high > w.low) or (w.kind in ("selectbox", "radio") and len(w.options) > 1))
        ]
        if not choices:
            return None
        w = rng.choice(choices)
        if w.kind == "slider":
            steps = int(round((w.high - w.low) / (w.step or 1)))
            value = w.low + rng.randint(0, steps) * (w.step or 1)
            self.states[w.id] = WidgetState(id=w.id, double_array_value={"data": [value]})
        else:
            self.states[w.id] = WidgetState(id=w.id, string_value=rng.choice([o for o in w.options if o != w.value]))
        return w.label


def _widget(el: Any, kind: str) -> Widget | None:
    body = getattr(el, kind)
    wid = getattr(body, "id", "")
    if not wid:
        return None
    w = Widget(kind, wid, getattr(body, "label", "") or wid)
    if kind in ("selectbox", "radio"):
        w.options = list(body.options)
        if body.HasField("raw_value"):  # the value the script set (a session-state value), else the default
            w.value = body.raw_value
        elif body.HasField("default") and 0 <= body.default < len(w.options):
            w.value = w.options[body.default]
    elif kind == "slider":
        w.low, w.high, w.step = body.min, body.max, body.step
    return w


# -- a class --------------------------------------------------------------------------------------------------------
@dataclass
class ClassReport:
    runs: list[Run]
    rss_mb: list[tuple[float, float]]  # (seconds since start, server RSS)
    cpu_s: list[tuple[float, float]]  # (seconds since start, server CPU seconds used)
    sessions: int
    seconds: float
    client_cpu_s: float

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.runs if r.status == "ok"]
        times = sorted(r.seconds for r in self.runs)

        def stats(xs: list[float]) -> dict[str, float]:
            xs = sorted(xs)
            if not xs:
                return {"n": 0}
            return {
                "n": len(xs),
                "p50": round(statistics.median(xs), 3),
                "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 3),
                "max": round(xs[-1], 3),
            }

        by_page = {p: stats([r.seconds for r in self.runs if r.page == p]) for p in sorted({r.page for r in self.runs})}
        by_action = {
            a: stats([r.seconds for r in self.runs if r.action == a]) for a in sorted({r.action for r in self.runs})
        }
        minute = [m for t, m in self.rss_mb if t >= 60] or [m for _, m in self.rss_mb]
        return {
            "sessions": self.sessions,
            "seconds": self.seconds,
            "actions": len(self.runs),
            "ok": len(ok),
            "errors": [
                f"{r.page}/{r.action}: {r.status} {'; '.join(r.errors)[:300]}" for r in self.runs if r.status != "ok"
            ],
            "round_trip": stats(times),
            "by_page": by_page,
            "by_action": by_action,
            "rss_mb_start": round(self.rss_mb[0][1], 1) if self.rss_mb else None,
            "rss_mb_after_first_minute": round(minute[0], 1) if minute else None,
            "rss_mb_end": round(self.rss_mb[-1][1], 1) if self.rss_mb else None,
            "rss_mb_max": round(max(m for _, m in self.rss_mb), 1) if self.rss_mb else None,
            "server_cpu_s": round(self.cpu_s[-1][1] - self.cpu_s[0][1], 1) if self.cpu_s else None,
            "client_cpu_s": round(self.client_cpu_s, 1),
        }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def student(
    url: str,
    index: int,
    deadline: float,
    runs: list[Run],
    think: tuple[float, float],
    rng: random.Random,
    pages: tuple[str, ...] = CLASS_PAGES,
    check: Callable[[Student, Run, str | None], None] | None = None,
) -> None:
    """One student for the class's duration: open a page, then every ``think`` seconds do one thing."""
    s = Student(url, f"student-{index}")
    await s.connect()
    try:
        await asyncio.sleep(rng.uniform(0, think[1]))  # students arrive over the first seconds
        r = await s.run(rng.choice(pages), action="open")
        runs.append(r)
        mine: str | None = None
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(*think))
            if time.monotonic() >= deadline:
                break
            roll = rng.random()
            if roll < 0.5:  # a new sentence: on this page when it has a box, else on one that has
                mine = rng.choice(SENTENCES)
                if not s.type_sentence(mine):
                    r = await s.run(
                        rng.choice([p for p in pages if p in ("inference", "w_vs_attention")]), action="page"
                    )
                    runs.append(r)
                    s.type_sentence(mine)
                r = await s.run(action="sentence")
            elif roll < 0.65 and s.pick(rng, ("layer",)):
                r = await s.run(action="layer")
            elif roll < 0.8 and s.pick(rng, ("model", "checkpoint", "gmlp")):
                r = await s.run(action="model")
            else:
                r = await s.run(rng.choice([p for p in pages if p != s.page]), action="page")
                mine = None
            runs.append(r)
            if check is not None:
                check(s, r, mine)
    finally:
        await s.close()


async def run_class(
    url: str,
    pid: int | None,
    sessions: int,
    seconds: float,
    think: tuple[float, float] = (2.0, 10.0),
    seed: int = 0,
    pages: tuple[str, ...] = CLASS_PAGES,
    check: Callable[[Student, Run, str | None], None] | None = None,
) -> ClassReport:
    """``sessions`` students for ``seconds`` against the server at ``url`` (``pid``: sample its memory and CPU)."""
    runs: list[Run] = []
    rss: list[tuple[float, float]] = []
    cpu: list[tuple[float, float]] = []
    t0 = time.monotonic()
    client0 = time.process_time()
    deadline = t0 + seconds

    async def sample() -> None:
        while True:
            if pid is not None:
                rss.append((time.monotonic() - t0, _rss_mb(pid)))
                cpu.append((time.monotonic() - t0, _cpu_s(pid)))
            await asyncio.sleep(2.0)

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(
            *(
                student(url, i, deadline, runs, think, random.Random(seed * 1000 + i), pages, check)
                for i in range(sessions)
            )
        )
        # a minute's memory after the class (flat, or still growing?) is the caller's to sample
    finally:
        sampler.cancel()
        if pid is not None:
            rss.append((time.monotonic() - t0, _rss_mb(pid)))
            cpu.append((time.monotonic() - t0, _cpu_s(pid)))
    return ClassReport(runs, rss, cpu, sessions, seconds, time.process_time() - client0)


async def warm(url: str, pages: tuple[str, ...] = CLASS_PAGES) -> list[Run]:
    """One student visits every class page once (what the lecturer does before the students arrive)."""
    s = Student(url, "lecturer")
    await s.connect()
    try:
        out = []
        for p in pages:
            out.append(await s.run(p, action="warm"))
            if s.type_sentence(SENTENCES[0]):
                out.append(await s.run(action="warm"))
        return out
    finally:
        await s.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--think", type=float, nargs=2, default=(2.0, 10.0), metavar=("MIN", "MAX"))
    ap.add_argument("--root", default=str(REPO / "checkpoints"))
    ap.add_argument("--url", help="an already running server (its memory is not sampled)")
    ap.add_argument("--after", type=float, default=60.0, help="seconds to keep sampling memory after the class")
    ap.add_argument("--report", help="write the summary as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    from server_helpers import streamlit_server

    sys.path.insert(0, str(REPO / "benchmarks"))
    from common import machine

    async def go(url: str, pid: int | None) -> dict[str, Any]:
        w = await warm(url)
        report = await run_class(url, pid, args.sessions, args.seconds, tuple(args.think), args.seed)
        after = []
        if pid is not None:
            for _ in range(int(args.after // 5)):
                await asyncio.sleep(5)
                after.append(round(_rss_mb(pid), 1))
        out = report.summary()
        out["warm_s"] = [round(r.seconds, 2) for r in w]
        out["rss_mb_after_class"] = after
        out["machine"] = machine()
        return out

    if args.url:
        out = asyncio.run(go(args.url, None))
    else:
        log = Path(os.environ.get("TMPDIR", "/tmp")) / "classroom-server.log"
        with streamlit_server(Path(args.root), log) as (url, pid):
            out = asyncio.run(go(url, pid))
    text = json.dumps(out, indent=2)
    print(text)
    if args.report:
        Path(args.report).write_text(text + "\n")
    return 0 if not out["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

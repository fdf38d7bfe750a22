"""A class at the protocol level (``benchmarks/classroom.py``), CI-sized: a few students on one real server.

Each student speaks Streamlit's own websocket protocol (no browser), so the test is cheap: it types sentences,
moves layer sliders, picks models and changes pages on the class's pages, and every run must finish without an
exception box, and every W-versus-attention view must show the student's own sentence's word pieces and none of
the other students' (no cross-session mix-up). The benchmark runs the same code with 30 and 60 students.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

import pytest
from conftest import ZOO_ROOT, zoo_is_present
from server_helpers import REPO, rss_mb, streamlit_server

sys.path.insert(0, str(REPO / "benchmarks"))
import classroom  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not zoo_is_present(), reason="needs the demo zoo in checkpoints/ (python -m gmlp_core zoo)"),
]


def _pieces() -> dict[str, set[str]]:
    """Each class sentence's word pieces (as the zoo's tokenizer cuts them) of 4+ characters that no other class
    sentence has: what its W-versus-attention maps must show on their axes, and other students' maps must not."""
    from gmlp_core.checkpoints import load_tokenizer

    tok = load_tokenizer(ZOO_ROOT / "mlm-gmlp")
    pieces = {s: {p.lstrip("#") for p in tok.encode(s).tokens if len(p.lstrip("#")) >= 4} for s in classroom.SENTENCES}
    return {s: mine - set().union(*(p for t, p in pieces.items() if t != s)) for s, mine in pieces.items()}


def _axis_labels(texts: list[str]) -> set[str]:
    """Every tick label on the axes of the plotly figures among an run's texts (their specs, JSON)."""
    out: set[str] = set()
    for text in texts:
        if not text.startswith("{"):
            continue
        try:
            layout = json.loads(text).get("layout", {})
        except ValueError:
            continue
        for key, axis in layout.items():
            if key.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
                out.update(str(t).lstrip("#") for t in axis.get("ticktext") or [])
    return out


def test_a_small_class_gets_its_own_views_without_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_SCAN_SECONDS", "2")  # the server's default, not the tests' 0
    distinctive = _pieces()
    assert all(distinctive.values()), distinctive
    checked: list[str] = []
    problems: list[str] = []

    def own_view(student: classroom.Student, run: classroom.Run, sentence: str | None) -> None:
        if run.page != "w_vs_attention" or run.action != "sentence" or run.status != "ok" or sentence is None:
            return
        ticks = _axis_labels(run.texts)
        mine = distinctive[sentence]
        if not mine & ticks:
            problems.append(f"{student.name}: none of {sorted(mine)} on the maps of {sentence!r}")
        leaked = [w for s, ws in distinctive.items() if s != sentence for w in ws if w in ticks]
        if leaked:
            problems.append(f"{student.name}: another student's word pieces {leaked} on the maps of {sentence!r}")
        checked.append(student.name)

    with streamlit_server(ZOO_ROOT, tmp_path / "server.log") as (url, pid):

        async def go() -> classroom.ClassReport:
            warm = await classroom.warm(url)
            assert all(r.status == "ok" for r in warm), [(r.page, r.status, r.errors) for r in warm]
            return await classroom.run_class(url, pid, sessions=5, seconds=30, think=(0.5, 2.0), seed=1, check=own_view)

        report = asyncio.run(go())
        summary = report.summary()
        print(summary)
        assert summary["errors"] == [], summary["errors"]
        assert not problems, problems
        assert summary["actions"] >= 5 * 3, summary  # every student acted several times
        assert {r.page for r in report.runs} == set(classroom.CLASS_PAGES)
        assert {"sentence", "page"} <= {r.action for r in report.runs}
        assert checked, "no student typed a sentence on W versus attention"
        assert rss_mb(pid) > 0  # the server is still up


def test_a_student_sees_the_page_it_asked_for_and_its_widgets() -> None:
    """The protocol client itself: widgets are found by label and a typed sentence goes to the sentence box,
    never the sidebar's sub-folder box (no server: the widgets are given)."""
    s = classroom.Student("http://127.0.0.1:1", "x")
    s.widgets = {
        "Checkpoint sub-folder": classroom.Widget("text_input", "id-folder", "Checkpoint sub-folder"),
        "Input sentence": classroom.Widget("text_input", "id-text", "Input sentence"),
        "Layer": classroom.Widget("slider", "id-layer", "Layer", low=0, high=3, step=1),
        "Model": classroom.Widget("selectbox", "id-model", "Model", options=["a", "b"], value="a"),
    }
    assert s.type_sentence("A [MASK] here.") and set(s.states) == {"id-text"}
    assert s.states["id-text"].string_value == "A [MASK] here."
    rng = random.Random(0)
    assert s.pick(rng, ("layer",)) == "Layer" and 0 <= s.states["id-layer"].double_array_value.data[0] <= 3
    assert s.pick(rng, ("model",)) == "Model" and s.states["id-model"].string_value == "b"
    assert s.pick(rng, ("nothing",)) is None

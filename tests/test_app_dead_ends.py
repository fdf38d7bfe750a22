"""Dead ends of the app (issue #17 item 9): controls that look live are live, empty states say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_helpers import figures, start, texts, unescape

from dashboard.catalog import find_checkpoints
from dashboard.overview_view import picks_after_edit

GET_MODELS = "python -m gmlp_core zoo"


def test_overview_picked_column_is_the_only_editable_one(app_root: Path) -> None:
    at = start("overview")
    editor = at.dataframe[0]
    assert editor.proto.editing_mode != 0, "an editor, so the ticks can be clicked"
    columns = json.loads(editor.proto.columns)
    assert not columns["picked"].get("disabled")
    assert {"name", "params"} <= set(columns)
    zoo = editor.value
    assert all(columns[c].get("disabled") for c in zoo.columns if c != "picked"), "every other column is read-only"
    assert set(zoo.loc[zoo["picked"], "name"]) == set(at.sidebar.multiselect[0].value)


def test_ticking_and_unticking_picked_changes_the_selection() -> None:
    shown, ok = ["a", "b", "c", "broken"], ["a", "b", "c"]
    assert picks_after_edit(shown, ["a"], ok, {1: {"picked": True}}) == ["a", "b"]
    assert picks_after_edit(shown, ["a", "b"], ok, {"0": {"picked": False}}) == ["b"]
    assert picks_after_edit(shown, ["a"], ok, {3: {"picked": True}}) == ["a"], "an unreadable checkpoint is not picked"
    assert picks_after_edit(shown, ["c", "a"], ok, {1: {"picked": True}, 2: {"picked": True}}) == ["c", "a", "b"]


@pytest.mark.parametrize("page", ["overview", "spatial", "training", "w_vs_attention", "inference"])
def test_an_empty_root_says_how_to_get_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(tmp_path))
    at = start(page)
    assert GET_MODELS in texts(at), "the page says how to get models"
    assert "Pick at least one" not in texts(at), "not 'pick' when there is nothing to pick"
    assert any(GET_MODELS in el.value for el in at.sidebar.info), "the empty picker says it too"


def test_a_checkpoints_own_folder_as_the_sub_folder_shows_that_checkpoint(
    lens_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (own,) = find_checkpoints(lens_root / "mlm-gmlp")
    assert (own.name, own.path, own.refused) == ("mlm-gmlp", (lens_root / "mlm-gmlp").resolve(), None)
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("overview", query={"folder": "mlm-gmlp"})
    assert "Build the demo zoo" not in texts(at)
    zoo = at.dataframe[0].value
    assert zoo["name"].tolist() == ["mlm-gmlp"] and zoo["status"].tolist() == ["ok"]
    assert at.sidebar.multiselect[0].value == ["mlm-gmlp"]


def test_top_k_goes_to_the_documented_100(lens_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("inference", query={"models": "mlm-gmlp"})
    slider = at.slider(key="fill-topk")
    assert (slider.min, slider.max) == (1, 100)
    slider.set_value(100).run()
    assert not at.exception
    probabilities = [f for f in figures(at) if "[MASK]" in (f.layout.title.text or "")]
    assert probabilities and len(probabilities[0].data[0].y) > 10


def test_w_versus_attention_says_when_a_model_cuts_the_sentence(
    lens_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("w_vs_attention", query={"models": "mlm-gmlp,mlm-transformer"})
    at.text_input(key="wva-text").set_value("the model reads the text .").run()
    assert not [w for w in at.warning if "reads only the first" in w.value]
    long = " ".join(["the function returns the value of the expression ."] * 6)  # far beyond n = 16
    at.text_input(key="wva-text").set_value(long).run()
    cut = [unescape(w.value) for w in at.warning if "reads only the first" in w.value]
    assert any("mlm-gmlp" in w and "first 16" in w for w in cut), cut


def test_the_gating_ablation_is_a_chart_with_the_unigram_baseline(app_root: Path) -> None:
    at = start("scaling")
    charts = [f for f in figures(at) if f.layout.title.text == "Gating ablation"]
    assert len(charts) == 1
    (chart,) = charts
    assert {t.name for t in chart.data} >= {"ours"}
    lines = [s for s in chart.layout.shapes if s.type == "line"]
    if app_root.name == "checkpoints":  # the zoo's checkpoints logged the unigram baseline on their targets
        logged = json.loads((app_root / "mlm-gmlp" / "metrics.json").read_text())["unigram_ppl"]
        assert logged > 100  # a unigram model of a real text, not a placeholder
        assert len(lines) == 1 and lines[0].y0 == pytest.approx(logged, abs=1e-3)
        assert "unigram baseline" in texts(at)
    else:  # the tiny root's checkpoints logged none: the page says so instead of inventing one
        assert not lines and "No unigram baseline" in texts(at)


def test_the_guide_only_cites_what_a_page_shows(app_root: Path) -> None:
    guide = texts(start("guide")).lower()
    scaling = start("scaling")
    titles = [f.layout.title.text or "" for f in figures(scaling)]
    if "unigram" in guide:
        assert "Gating ablation" in titles, "the ablation chart draws the unigram baseline"
    if "error bar" in guide:
        assert any(t.startswith("Fitted slopes") for t in titles), "the slopes chart has the error bars"

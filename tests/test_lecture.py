"""Lecture mode: the steps as data (pages, zoo models, widget keys), and the walk through them in AppTest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from app_helpers import APP, assert_ok, texts
from conftest import REPO
from streamlit.testing.v1 import AppTest

from dashboard import lecture, registry
from dashboard.lecture import SENTENCE, STEPS, Layers, Step
from gmlp_core import load_checkpoint

pytestmark = pytest.mark.timeout(600)


# ------------------------------------------------------------------------------------------------
# The steps as data


def test_every_step_opens_a_registered_page_with_zoo_models() -> None:
    assert len(STEPS) >= 8
    for step in STEPS:
        assert step.page in {p.key for p in registry.PAGES}
        assert set(step.models) <= lecture.ZOO_NAMES
        assert step.title and step.talk
    # the walk visits every page that tells the story, starting where the app starts
    assert STEPS[0].page == next(p.key for p in registry.PAGES if p.default)
    assert {"inference", "spatial", "w_vs_attention", "interventions", "scaling", "guide"} <= {s.page for s in STEPS}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"page": "nowhere"}, KeyError),
        ({"models": ("mlm-lstm",)}, ValueError),
        ({"models": ("mlm-gmlp",), "inputs": {"spatial-model": "vision-gmlp"}}, ValueError),
        ({"models": ("mlm-gmlp",), "inputs": {"spatial-layer": Layers("mlm-amlp")}}, ValueError),
    ],
)
def test_a_step_refuses_unknown_pages_and_models(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        Step(**({"title": "t", "page": "spatial", "talk": "x"} | kwargs))


def test_inputs_resolve_against_the_loadable_models() -> None:
    step = Step(
        "t",
        "spatial",
        "x",
        ("mlm-gmlp", "vision-gmlp"),
        {"spatial-model": "mlm-gmlp", "spatial-layer": Layers("mlm-gmlp"), "iv-layers": Layers("vision-gmlp", "all")},
    )
    depth = {"mlm-gmlp": 4, "vision-gmlp": 3}.__getitem__
    assert step.resolved_inputs({"mlm-gmlp", "vision-gmlp"}, depth) == {
        "spatial-model": "mlm-gmlp",
        "spatial-layer": 3,
        "iv-layers": [0, 1, 2],
    }
    # a model that is not there is neither picked nor asked for its depth; plain values stay
    assert step.resolved_inputs({"vision-gmlp"}, depth) == {"iv-layers": [0, 1, 2]}
    assert step.missing({"vision-gmlp"}) == ["mlm-gmlp"]
    assert step.missing({"mlm-gmlp", "vision-gmlp", "other"}) == []


@pytest.mark.parametrize(
    ("value", "step"),
    [
        (None, 0),
        ("1", 0),
        ("3", 2),
        (" 4 ", 3),
        ("0", 0),
        ("-2", 0),
        ("999", len(STEPS) - 1),
        ("x", 0),
        ("9" * 5000, 0),
    ],
)
def test_step_numbers_in_the_url_are_one_based_and_clamped(value: str | None, step: int) -> None:
    assert lecture.parse_step(value) == step


@pytest.mark.parametrize(("value", "on"), [("1", True), ("true", True), ("On", True), ("0", False), ("", False)])
def test_lecture_flag(value: str, on: bool) -> None:
    assert lecture.url_flag(value) is on


def test_the_steps_are_plain_data_without_streamlit() -> None:
    code = "import sys, dashboard.lecture; assert 'streamlit' not in sys.modules, 'dashboard.lecture imports streamlit'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_guide_lists_every_step() -> None:
    outline = lecture.outline()
    assert len(outline.splitlines()) == len(STEPS)
    for i, step in enumerate(STEPS, start=1):
        assert f"{i}. **{registry.page(step.page).title}: {step.title}.**" in outline


def test_lecture_figures_have_larger_fonts() -> None:
    from dashboard import style

    normal, large = style.template(), style.template(large=True)
    assert large.layout.font.size > normal.layout.font.size
    assert large.layout.title.font.size > normal.layout.title.font.size
    assert style.template(large=True) is large and style.template() is normal  # built once each


# ------------------------------------------------------------------------------------------------
# The walk in AppTest


def _lecture(query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert_ok(at)
    return at


def _page(at: AppTest) -> str:
    """The registry key of the page the last run showed (AppTest keeps the page it finished on)."""
    info = at._registered_pages[at._finished_page_script_hash]  # noqa: SLF001 - AppTest has no public getter
    return Path(str(info["script_path"])).stem


def _bar(at: AppTest) -> str:
    lines = [m.value for m in at.markdown if m.value.startswith("**Step ")]
    assert len(lines) == 1, lines
    return lines[0]


def _click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert_ok(at)
    return at


def _assert_at(at: AppTest, index: int) -> None:
    step = STEPS[index]
    assert _page(at) == step.page
    assert _bar(at) == f"**Step {index + 1} of {len(STEPS)}: {step.title}**"
    assert step.talk in [m.value for m in at.markdown]
    assert at.query_params["lecture"] == "1" and at.query_params["step"] == str(index + 1)
    if step.models:
        assert list(at.multiselect(key="models").value) == list(step.models)


def _larger_text(at: AppTest) -> bool:
    return any("<style>" in m.value and "lecture-bar" in m.value for m in at.markdown)


def test_query_param_opens_step_one_with_fewer_controls(lens_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = _lecture({})
    assert at.toggle(key="lecture").value is False and not [m for m in at.markdown if m.value.startswith("**Step ")]
    assert [t.key for t in at.sidebar.text_input] == ["folder"] and not _larger_text(at)

    at = _lecture({"lecture": "1"})
    _assert_at(at, 0)
    assert at.toggle(key="lecture").value is True
    assert at.button(key="lecture-back").disabled and not at.button(key="lecture-next").disabled
    assert not at.sidebar.text_input, "the sub-folder box is a technical control: hidden in lecture mode"
    assert _larger_text(at)
    assert "Root:" not in " ".join(c.value for c in at.sidebar.caption)

    at.toggle(key="lecture").set_value(False).run()  # leaving restores everything
    assert_ok(at)
    assert [t.key for t in at.sidebar.text_input] == ["folder"]
    assert "Root:" in " ".join(c.value for c in at.sidebar.caption)
    assert not [m for m in at.markdown if m.value.startswith("**Step ")] and not _larger_text(at)
    assert "lecture" not in at.query_params and "step" not in at.query_params


def test_next_and_back_open_the_right_page_with_the_right_inputs(
    lens_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    fill = next(i for i, s in enumerate(STEPS) if s.page == "inference")
    at = _lecture({"lecture": "1", "step": str(fill + 1)})
    _assert_at(at, fill)
    assert at.text_area(key="fill-text").value == SENTENCE
    assert "[MASK] #1" in " ".join(c.value for c in at.caption).replace("\\", "")  # the models answered

    band = fill + 1
    _assert_at(_click(at, "lecture-next"), band)
    assert STEPS[band].inputs == {"spatial-model": "mlm-gmlp", "spatial-layer": 0}
    assert at.selectbox(key="spatial-model").value == "mlm-gmlp" and at.slider(key="spatial-layer").value == 0

    _assert_at(_click(at, "lecture-next"), band + 1)
    last = load_checkpoint(lens_root / "mlm-gmlp", device="cpu").config.n_layers - 1
    assert at.slider(key="spatial-layer").value == last > 0
    assert f"Layer {last}:" in texts(at)

    _assert_at(_click(at, "lecture-back"), band)
    assert at.slider(key="spatial-layer").value == 0
    _assert_at(_click(at, "lecture-back"), fill)
    assert at.text_area(key="fill-text").value == SENTENCE

    # the lecturer may type between steps; the step's input comes back only with a step change
    at.text_area(key="fill-text").set_value("a [MASK] of my own").run()
    assert at.text_area(key="fill-text").value == "a [MASK] of my own"
    # the sidebar's list of steps jumps anywhere
    wva = next(i for i, s in enumerate(STEPS) if s.page == "w_vs_attention")
    at.sidebar.radio(key="lecture-pick").set_value(wva).run()
    assert_ok(at)
    _assert_at(at, wva)
    assert at.text_input(key="wva-text").value == SENTENCE


def test_walk_every_step_from_start_to_end(app_root: Path) -> None:
    at = _lecture({"lecture": "1"})
    for index in range(len(STEPS)):
        if index:
            _click(at, "lecture-next")
        _assert_at(at, index)
        # (the tiny root's Overview lists its deliberately broken checkpoints as errors: those are expected)
        errors = [e.value for e in at.error if not ("** (broken)" in e.value or "** (refused)" in e.value)]
        assert not errors, f"step {index + 1}: {errors}"
        assert not [w.value for w in at.warning if "not under" in w.value], "every step's models are in this root"
    assert at.button(key="lecture-next").disabled


def test_a_step_says_which_models_the_folder_lacks(lens_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    fill = next(i for i, s in enumerate(STEPS) if s.page == "inference")
    at = _lecture({"lecture": "1", "step": str(fill + 1), "folder": "sweeps"})  # a folder with no models
    assert _page(at) == "inference"
    shown = " ".join(w.value for w in at.warning).replace("\\", "")
    assert all(name in shown for name in STEPS[fill].models) and "python -m gmlp_core zoo" in shown
    assert list(at.multiselect(key="models").value) == []
    band = _click(at, "lecture-next")
    assert _page(band) == "spatial" and "mlm-gmlp" in " ".join(w.value for w in band.warning).replace("\\", "")


def test_the_sidebar_switch_starts_at_step_one_and_resumes_where_it_left(
    lens_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = _lecture({"models": "vision-gmlp"})
    at.toggle(key="lecture").set_value(True).run()
    assert_ok(at)
    _assert_at(at, 0)  # the first step's models replace the pick
    _assert_at(_click(at, "lecture-next"), 1)
    at.toggle(key="lecture").set_value(False).run()
    assert_ok(at)
    assert _page(at) == STEPS[1].page and "step" not in at.query_params  # leaving keeps the page
    at.toggle(key="lecture").set_value(True).run()
    assert_ok(at)
    _assert_at(at, 1)
    _assert_at(_click(at, "lecture-next"), 2)  # and goes on from there, to another page


def test_a_lecturer_who_wandered_off_gets_back_to_the_step(lens_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    fill = next(i for i, s in enumerate(STEPS) if s.page == "inference")
    at = _lecture({"lecture": "1", "step": str(fill + 1)})
    assert "lecture-return" not in [b.key for b in at.button]  # on the step's page: nothing to get back to
    at.switch_page(registry.page("training").file).run()  # the sidebar's navigation, mid-lecture
    assert_ok(at)
    assert _page(at) == "training" and _bar(at) == f"**Step {fill + 1} of {len(STEPS)}: {STEPS[fill].title}**"
    _click(at, "lecture-return")
    _assert_at(at, fill)
    assert at.text_area(key="fill-text").value == SENTENCE


def test_the_guide_says_what_the_band_of_the_zoo_gmlp_is() -> None:
    """The Guide names the colour and the weights of layer 0's band; they are the shipped mlm-gmlp's."""
    import re

    import torch

    from gmlp_core import load_checkpoint
    from gmlp_core.zoo import DEFAULT_ROOT

    guide = (Path(__file__).resolve().parent.parent / "pages" / "guide.py").read_text()
    said = re.search(r"about (-?[\d.]+) on the previous token and (-?[\d.]+) on the next", guide)
    assert said, "the Guide states layer 0's band"
    w = load_checkpoint(DEFAULT_ROOT / "mlm-gmlp", device="cpu").spatial_weights()[0]
    previous, following = torch.diagonal(w, -1).mean().item(), torch.diagonal(w, 1).mean().item()
    assert (float(said[1]), float(said[2])) == (round(previous, 2), round(following, 2))
    assert previous < 0 and "dark blue" in guide, "negative weights are drawn blue on the zero-centred scale"
    others = [abs(torch.diagonal(w, k).mean().item()) for k in range(-8, 9) if k not in (-1, 1)]
    assert max(others) < abs(following), "every other offset is near zero"

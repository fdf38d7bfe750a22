"""The Spatial weights page's training timeline: one animated figure (a frame per saved step, played in the
browser), one colour range for every frame unless rescaled, and the validation curve marked at the step shown.

The checkpoint is a tiny causal + Toeplitz gMLP really trained for 45 steps (W saved at every step, evaluated every
10), so the frames are subsampled and the marker falls between evaluations.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from app_helpers import array, figures, start, texts
from conftest import tiny_train_config
from server_helpers import CHROMIUM, CHROMIUM_ARGS, PAGE_PATHS, streamlit_server, wait_idle
from streamlit.testing.v1 import AppTest

from dashboard.spatial_view import MAX_FRAMES, frame_steps, validation_curve
from gmlp_core.checkpoints import read_metrics_log
from gmlp_core.train import load_spatial_snapshots, train

pytestmark = pytest.mark.timeout(300)

NAME = "causal-toeplitz"
STEPS = 45


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the trained causal + Toeplitz run, and a copy of it without its training log (``no-log``)."""
    root = tmp_path_factory.mktemp("timeline")
    overrides = {"vocab_size": 300, "causal": True, "spatial": "toeplitz"}
    train(
        tiny_train_config(
            root / NAME, "gmlp-tiny-mlm", overrides=overrides, steps=STEPS, snapshot_every=1, eval_every=10
        )
    )
    shutil.copytree(root / NAME, root / "no-log")
    (root / "no-log" / "metrics.jsonl").unlink()
    return root


@pytest.fixture
def timeline_root(trained_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(trained_root))
    return trained_root


def _timeline(at: AppTest) -> go.Figure:
    [fig] = [f for f in figures(at) if f.frames]
    return fig


def _marker(frame: go.Frame) -> tuple[list, list]:
    point = frame.data[-1]  # the frame's traces: W, the bold row, the dotted line, the point
    return list(point.x or []), list(point.y or [])


def test_timeline_is_one_animation_with_a_frame_per_subsampled_step(timeline_root: Path) -> None:
    saved = load_spatial_snapshots(timeline_root / NAME)
    assert len(saved) == STEPS + 1 > MAX_FRAMES, "the run saves more steps than the animation draws"
    steps = frame_steps(list(saved))
    assert steps == [*range(0, STEPS, 2), STEPS], "every other step, and the last"

    at = start("spatial", query={"models": NAME})
    fig = _timeline(at)
    assert [f.name for f in fig.frames] == [str(s) for s in steps]
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == [str(s) for s in steps]
    assert all(s.method == "animate" and list(s.args[0]) == [s.label] for s in slider.steps)
    assert slider.active == len(steps) - 1, "the latest step is shown first"
    buttons = {b.label: b for b in fig.layout.updatemenus[0].buttons}
    play = next(b for label, b in buttons.items() if "Play" in label)
    assert play.method == "animate" and play.args[0] is None, "Play runs every frame in the browser"
    assert any("Pause" in label for label in buttons)
    assert f"{len(steps)} of {STEPS + 1} snapshots" in texts(at)

    # Each frame is W of layer 0 at its step, all on one colour scale: the largest |W| over the whole run.
    shared = max(float(w[0].abs().max()) for w in saved.values())
    for frame, step in zip(fig.frames, steps, strict=True):
        heatmap = frame.data[0]
        assert np.allclose(array(heatmap.z), saved[step][0].numpy(), atol=1e-6)
        assert heatmap.zmax == pytest.approx(shared, rel=1e-6) and heatmap.zmin == pytest.approx(-shared, rel=1e-6)
        assert frame.layout.title.text == f"Layer 0 at step {step}"
    assert fig.data[0].zmax == pytest.approx(shared, rel=1e-6)
    assert len(at.get("plotly_chart")[-1].proto.spec) < 1_500_000, "40 frames stay small to send"


def test_the_marker_sits_on_the_last_evaluation_at_or_before_the_step(timeline_root: Path) -> None:
    log = read_metrics_log(timeline_root / NAME)
    ppl = {row["step"]: row["val_ppl"] for row in log}
    assert sorted(ppl) == [0, 10, 20, 30, 40, 45]
    at = start("spatial", query={"models": NAME})
    fig = _timeline(at)
    curve = next(tr for tr in fig.data if getattr(tr, "mode", None) == "lines+markers")
    assert list(array(curve.x)) == [0, 10, 20, 30, 40, 45]
    assert np.allclose(array(curve.y), [ppl[s] for s in (0, 10, 20, 30, 40, 45)])
    for frame in fig.frames:
        step = int(frame.name)
        logged = max(s for s in ppl if s <= step)
        x, y = _marker(frame)
        assert x == [logged] and y == pytest.approx([ppl[logged]]), f"step {step}"
        assert list(array(frame.data[-2].x)) == [step, step], "the dotted line is at the step itself"
    assert "validation perplexity" in {a.text for a in fig.layout.annotations}


def test_picking_a_step_and_rescaling_change_the_first_frame_and_the_ranges(timeline_root: Path) -> None:
    saved = load_spatial_snapshots(timeline_root / NAME)
    at = start("spatial", query={"models": NAME})
    slider = at.select_slider(key=f"snap-step-{NAME}")
    steps = [int(s) for s in slider.options]
    chosen = steps[len(steps) // 3]
    slider.set_value(chosen).run()
    fig = _timeline(at)
    assert fig.layout.sliders[0].active == steps.index(chosen)
    assert fig.layout.title.text == f"Layer 0 at step {chosen}"
    assert np.allclose(array(fig.data[0].z), saved[chosen][0].numpy(), atol=1e-6)

    at.toggle(key=f"snap-rescale-{NAME}").set_value(True).run()
    fig = _timeline(at)
    ranges = [frame.data[0].zmax for frame in fig.frames]
    assert ranges == pytest.approx([float(saved[s][0].abs().max()) for s in steps], rel=1e-5)
    assert len(set(ranges)) > 1 and "rescaled to each step" in fig.frames[0].layout.title.text


def test_without_a_training_log_the_curve_is_left_out_and_the_page_says_so(timeline_root: Path) -> None:
    at = start("spatial", query={"models": "no-log"})
    fig = _timeline(at)
    assert len(fig.data) == 3 and all(len(frame.data) == 2 for frame in fig.frames), "W and its row, no curve"
    assert "no training log" in texts(at)


def test_validation_curve_prefers_perplexity_then_accuracy_and_keeps_a_resumed_steps_last_row() -> None:
    import pandas as pd

    log = pd.DataFrame({"step": [0, 10, 10, 20], "val_ppl": [50.0, 30.0, 29.0, 20.0], "val_accuracy": [0.1] * 4})
    curve = validation_curve(log)
    assert curve.name == "val_ppl" and list(curve.index) == [0, 10, 20] and curve.loc[10] == 29.0
    assert validation_curve(log.drop(columns="val_ppl")).name == "val_accuracy"
    assert validation_curve(pd.DataFrame()) is None
    for n in (1, 2, 40, 41, 42, 46, 100, 1001):
        steps = frame_steps(list(range(0, 10 * n, 10)))
        assert steps[0] == 0 and steps[-1] == 10 * (n - 1) and len(steps) <= MAX_FRAMES
        assert len(set(np.diff(steps[:-1]))) <= 1, "evenly spaced but for the last"
    assert len(frame_steps(list(range(41)))) == 41, "the zoo's 41 snapshots are all drawn"


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_play_animates_w_in_the_browser(trained_root: Path, tmp_path: Path) -> None:
    """Streamlit's plotly draws the frames: Play moves through the steps with no rerun of the script."""
    sync_api = pytest.importorskip("playwright.sync_api")
    title = "() => [...document.querySelectorAll('.js-plotly-plot')].pop().layout.title.text"
    with streamlit_server(trained_root, tmp_path / "streamlit.log") as (url, _pid), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1024, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{url}/{PAGE_PATHS['spatial']}?models={NAME}", wait_until="domcontentloaded")
        wait_idle(page)
        page.wait_for_selector(".js-plotly-plot .updatemenu-button", timeout=60_000)
        assert page.evaluate(title) == f"Layer 0 at step {STEPS}"
        page.locator(".js-plotly-plot .updatemenu-button").first.click()  # Play
        page.wait_for_function(f"() => ({title})() !== 'Layer 0 at step {STEPS}'", timeout=10_000)
        page.wait_for_function(f"() => ({title})() === 'Layer 0 at step {STEPS}'", timeout=60_000)  # to the end
        browser.close()
    assert not errors, errors

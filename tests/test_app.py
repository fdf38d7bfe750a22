"""The dashboard shell: root and path security, the zoo table, selection in the URL, and the Results/Learn pages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from app_helpers import array, assert_ok, figure_titles, figures, start, texts
from conftest import BROKEN, TINY_CANVAS, TINY_ZOO

from dashboard import registry
from dashboard.catalog import find_checkpoints, inspect_checkpoint, zoo_frame
from dashboard.paths import PathRefused, configured_root, resolve_within

# ------------------------------------------------------------------------------------------------
# Paths: the app reads only under its root.


def test_root_from_flag_env_and_default(tmp_path: Path) -> None:
    flag, env = tmp_path / "flag", tmp_path / "env"
    assert configured_root(["--root", str(flag)], environ={"GMLP_LENS_ROOT": str(env)}) == flag.resolve()
    assert configured_root([], environ={"GMLP_LENS_ROOT": str(env)}) == env.resolve()
    assert configured_root([], environ={}).name == "checkpoints"


@pytest.mark.parametrize(
    ("relative", "why"),
    [
        ("..", "'..'"),
        ("mlm-gmlp/../..", "'..'"),
        ("/etc", "absolute"),
        ("~/x", "absolute"),
        ("escape", "outside"),
        ("escape/secret.txt", "outside"),
        ("a\x00b", "NUL"),
    ],
)
def test_paths_outside_the_root_are_refused(lens_root: Path, relative: str, why: str) -> None:
    with pytest.raises(PathRefused, match=why):
        resolve_within(lens_root, relative)


def test_paths_inside_the_root_resolve(lens_root: Path) -> None:
    assert resolve_within(lens_root, "") == lens_root.resolve()
    assert resolve_within(lens_root, "sweeps") == (lens_root / "sweeps").resolve()
    assert resolve_within(lens_root, "./mlm-gmlp/") == (lens_root / "mlm-gmlp").resolve()


def test_catalog_lists_broken_and_refused_checkpoints(lens_root: Path) -> None:
    zoo = zoo_frame([inspect_checkpoint(c) for c in find_checkpoints(lens_root)]).set_index("name")
    assert set(TINY_ZOO) <= set(zoo.index[zoo["status"] == "ok"])
    assert set(BROKEN) == set(zoo.index[zoo["status"] == "broken"])
    assert zoo.loc["escape", "status"] == "refused"
    expected = {
        "broken-arch": "arch='lstm'",
        "broken-corrupt": "corrupt",
        "broken-truncated": "truncated",
        "broken-mismatch": "does not match",
        "broken-noconfig": "missing config.json",
        "broken-pickle": "pickle",
    }
    for name, fragment in expected.items():
        assert fragment in zoo.loc[name, "error"], (name, zoo.loc[name, "error"])
        assert str(lens_root) not in zoo.loc[name, "error"]  # messages name checkpoints relative to the root
    ok = zoo.loc["mlm-gmlp"]
    assert (ok["arch"], ok["task"], ok["layers"], ok["n"]) == ("gmlp", "mlm", 2, 16)
    assert ok["params"] > ok["non_embedding_params"] > 0


# ------------------------------------------------------------------------------------------------
# Overview


def test_overview_lists_the_zoo_and_survives_broken_checkpoints(app_root: Path) -> None:
    at = start("overview")
    zoo = at.dataframe[0].value
    assert {"name", "arch", "task", "params", "n", "val_ppl", "val_accuracy", "status"} <= set(zoo.columns)
    assert list(zoo.columns[:7]) == ["picked", "name", "status", "arch", "task", "val_ppl", "val_accuracy"]
    ok = zoo[zoo["status"] == "ok"]
    assert len(ok) >= 3
    if app_root.name != "checkpoints":
        assert set(TINY_ZOO) <= set(ok["name"])
        assert set(BROKEN) <= set(zoo.loc[zoo["status"] == "broken", "name"])
        assert "escape" in set(zoo.loc[zoo["status"] == "refused", "name"])
        assert "error" in zoo.columns
        shown = texts(at)
        assert "refusing to load a pickle" in shown and "corrupt or truncated" in shown
        assert "not for the app" not in shown  # nothing behind the escaping link is read
    assert {"causal", "spatial", "cloze"} <= set(zoo.columns), "the model's kind and what to expect of it"
    if app_root.name == "checkpoints":
        # The zoo's MLM models carry their cloze score (metrics.json), vision models none.
        cloze = zoo.set_index("name")["cloze"]
        assert cloze["mlm-amlp"].endswith("/50") and int(cloze["mlm-amlp"].split("/")[0]) > 0
        assert cloze["vision-gmlp"] is None or pd.isna(cloze["vision-gmlp"])
    assert at.get("download_button"), "the zoo table is downloadable"
    # the default selection is the main comparison, in the sidebar and in the URL
    picked = at.sidebar.multiselect[0].value
    assert picked and set(picked) <= set(ok["name"])
    assert at.query_params["models"] == ",".join(picked)


def test_selection_comes_from_the_url_and_persists_across_pages(app_root: Path) -> None:
    at = start("overview", query={"models": "mlm-gmlp,vision-gmlp,not-a-model"})
    assert at.sidebar.multiselect[0].value == ["mlm-gmlp", "vision-gmlp"]
    at.sidebar.multiselect[0].set_value(["mlm-transformer"]).run()
    assert at.query_params["models"] == "mlm-transformer"
    at.switch_page("../pages/training.py").run()
    assert at.sidebar.multiselect[0].value == ["mlm-transformer"]
    assert at.query_params["models"] == "mlm-transformer"
    assert at.multiselect(key="train-names").value == ["mlm-transformer"]


def test_selection_buttons_pick_sets_of_models(lens_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("overview")
    at.button(key="pick-All vision").click().run()
    vision = [n for n in TINY_ZOO if n.startswith("vision")] + list(TINY_CANVAS)
    assert sorted(at.sidebar.multiselect[0].value) == sorted(vision)
    picked_column = at.dataframe[0].value.set_index("name")["picked"]
    assert picked_column["vision-gmlp"] and not picked_column["mlm-gmlp"]


@pytest.mark.parametrize("folder", ["../", "/etc", "escape", "no-such-folder"])
def test_sub_folder_outside_the_root_is_refused(lens_root: Path, monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("overview")
    at.sidebar.text_input[0].set_value(folder).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "Showing the root instead" in errors
    assert set(TINY_ZOO) <= set(at.dataframe[0].value["name"])  # still serving the root


def test_sub_folder_narrows_the_zoo(tmp_path: Path, lens_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    (root / "mine").mkdir(parents=True)
    os.symlink(lens_root / "mlm-gmlp", root / "mine" / "linked-outside")  # a link out of this root
    (root / "mine" / "gmlp").symlink_to(lens_root / "mlm-gmlp")
    monkeypatch.setenv("GMLP_LENS_ROOT", str(root))
    at = start("overview")
    at.sidebar.text_input[0].set_value("mine").run()
    zoo = at.dataframe[0].value
    assert set(zoo["status"]) == {"refused"}  # both links lead outside the root: listed, never opened
    assert not at.sidebar.error


def test_empty_root_says_how_to_build_the_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(tmp_path))
    at = start("overview")
    assert "python -m gmlp_core zoo" in texts(at)
    for page in registry.PAGES:
        at.switch_page(page.file).run()
        assert not at.exception, page.key


# ------------------------------------------------------------------------------------------------
# Training, Scaling, Guide


def test_training_curves_follow_the_chosen_checkpoints(app_root: Path) -> None:
    at = start("training")
    names = at.multiselect(key="train-names").value
    assert names
    traces = {t.name for t in figures(at)[0].data}
    assert traces == set(names)
    options = [o.split(" · ")[0] for o in at.multiselect(key="train-names").options]  # labels carry badges
    other = [n for n in options if n not in names][:1]
    at.multiselect(key="train-names").set_value(names[:1] + other).run()
    assert {t.name for t in figures(at)[0].data} == set(names[:1] + other)
    at.radio(key="train-x").set_value("elapsed_s").run()
    assert figures(at)[0].layout.xaxis.title.text == "time since the start of training (s)"
    assert "Training loss" in figure_titles(at)
    # Readable names everywhere, never the log's column names (elapsed_s, val_ppl, tokens_per_s)
    shown = [*at.radio(key="train-x").options, *at.selectbox(key="train-metric").options]
    shown += [f.layout.yaxis.title.text for f in figures(at)] + figure_titles(at)
    assert "validation perplexity" in shown or "validation accuracy" in shown
    assert not [t for t in shown if "_" in t], shown
    loss = figures(at)[0]
    assert loss.layout.yaxis.type == "log"
    ticks = [float(t.replace(",", "")) for t in loss.layout.yaxis.ticktext]  # full numbers, not bare digits
    assert ticks == sorted(ticks) and ticks == pytest.approx(list(loss.layout.yaxis.tickvals))
    values = [v for t in loss.data for v in array(t.y)]
    assert ticks[0] <= max(values) and ticks[-1] >= min(values)


def test_scaling_fits_power_laws_to_every_sweep_csv(app_root: Path) -> None:
    at = start("scaling")
    fits = [df.value for df in at.dataframe if "alpha" in df.value.columns]
    if app_root.name != "checkpoints":
        assert "root/sweeps/sweep_tiny.csv" in at.selectbox(key="scaling-source").options
        at.selectbox(key="scaling-source").set_value("root/sweeps/sweep_tiny.csv")
        at.radio(key="scaling-y").set_value("val_loss").run()
        fits = [df.value for df in at.dataframe if "alpha" in df.value.columns]
        by_arch = fits[0].set_index("arch")
        # the fixture's sweep follows val = 1 + 5 (N/1e3)^-0.3: the fitted exponent is close to 0.3
        assert by_arch.loc["gmlp", "alpha"] == pytest.approx(0.3, abs=0.1)
    assert len(fits) == 2  # against non-embedding params and against FLOPs
    at.toggle(key="scaling-offset").set_value(False).run()
    pure = [df.value for df in at.dataframe if "alpha" in df.value.columns]
    assert len(pure) == 2 and all(set(f["form"]) == {"a*N^-alpha"} for f in pure), "the toggle refits without c"
    at.toggle(key="scaling-offset").set_value(True).run()
    fig = figures(at)[0]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    for axis in (fig.layout.xaxis, fig.layout.yaxis):  # full labels ("20k", "1M", "4.5"), never a bare "2" or "5"
        labels = [_parse_tick(t) for t in axis.ticktext]
        assert labels == pytest.approx(list(axis.tickvals), rel=1e-3) and len(labels) >= 3
    assert not any("paper" in (t.name or "") for t in fig.data), "the paper's models have a panel of their own"

    paper = next(f for f in figures(at) if (f.layout.title.text or "").startswith("Paper:"))
    curves, sizes = [t for t in paper.data if t.yaxis == "y"], [t for t in paper.data if t.yaxis == "y2"]
    assert curves and all("(unverified)" in t.name for t in curves), "every unverified series says so"
    assert min(v for t in curves for v in array(t.x)) > 1e7, "at the paper's scale, not squeezed next to ours"
    pairs = [t for t in sizes if "scaling pairs" in t.name]
    assert {t.y[0] for t in pairs} == {"scaling pairs: gMLP", "scaling pairs: Transformer"}
    assert sum(len(array(t.x)) for t in pairs) == 8, "the four Transformer/gMLP pairs, as sizes"

    slopes = next(f for f in figures(at) if (f.layout.title.text or "").startswith("Fitted slopes"))
    ours = [t for t in slopes.data if t.name.startswith("ours")]
    assert len(ours) == 2 and all(np.isfinite(array(t.error_y.array)).all() for t in ours), "error bars on alpha"
    assert any(t.name.startswith("paper") for t in slopes.data), "the paper's slopes to compare with"
    shown = texts(at)
    assert "What these runs can show" in shown and "What they cannot show" in shown
    assert isinstance(at.dataframe[-1].value, pd.DataFrame) and "verified" in at.dataframe[-1].value.columns
    assert set(at.dataframe[-1].value["pair"]) == {1, 2, 3, 4}
    ablations = [df.value for df in at.dataframe if "variant" in df.value.columns]
    if ablations:  # the zoo's gating variants, or results/ablation.csv: no column left empty for every row
        assert {"variant", "val_ppl"} <= set(ablations[0].columns)
        assert not ablations[0].isna().all().any()


def _parse_tick(label: str) -> float:
    scale = {"k": 1e3, "M": 1e6, "B": 1e9}.get(label[-1], 1.0)
    return float(label.rstrip("kMB").replace(",", "")) * scale


def test_guide_explains_the_paper_and_every_page(app_root: Path) -> None:
    at = start("guide")
    shown = texts(at)
    for phrase in ("Spatial Gating Unit", "Toeplitz", "aMLP", "convergence delta", "power law", "What to notice"):
        assert phrase.lower() in shown.lower(), phrase
    assert len(shown) > 5000


def test_plot_template_is_built_once_and_never_mutated_by_a_figure() -> None:
    import plotly.graph_objects as go

    from dashboard import style

    shared = style.template()
    before = shared.to_plotly_json()
    fig = go.Figure()
    fig.update_layout(template=shared)
    fig.layout.template.layout.font.size = 99  # a page changing its own figure
    assert style.template() is shared and shared.to_plotly_json() == before
    # a new figure is born with the house template (plotly's default in the app), a copy of its own
    import plotly.io as pio

    born = go.Figure()
    assert born.layout.template.to_plotly_json() == before
    born.layout.template.layout.font.size = 99
    assert (
        pio.templates[style.HOUSE_TEMPLATE].to_plotly_json() == before == go.Figure().layout.template.to_plotly_json()
    )


# Each page's typed text boxes: the widget key, which is also the URL parameter, and the page's default text.
TYPED = {
    "inference": ("fill-text", "a [MASK] returns the value of the expression ."),
    "w_vs_attention": ("wva-text", "the loop ends when the condition is false ."),
    "attributions": ("attr-text", "the [MASK] ends when the condition is false ."),
    "interventions": ("iv-text", "the [MASK] ends when the condition is false ."),
    "attention_matters": ("am-b", "a function returns a list of integers ."),
}


@pytest.mark.parametrize("page", list(TYPED))
def test_a_typed_sentence_lives_in_the_url(lens_root: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    """A reload or a shared link opens the page with the sentence typed before (#37 item 10)."""
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    key, sentence = TYPED[page]
    at = start(page)
    default = at.session_state[key]
    assert key not in at.query_params, "the default text is not written to the link"
    box = at.text_area(key=key) if page in ("inference", "attention_matters") else at.text_input(key=key)
    box.set_value(sentence).run()
    assert_ok(at)
    assert at.query_params[key] == sentence
    shared = start(page, {key: sentence})  # a new session opened from the link
    assert shared.session_state[key] == sentence and shared.query_params[key] == sentence
    box = shared.text_area(key=key) if page in ("inference", "attention_matters") else shared.text_input(key=key)
    box.set_value(default).run()
    assert key not in shared.query_params, "back to the default: the parameter goes"

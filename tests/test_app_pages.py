"""AppTest per analysis page: each renders on the tiny root (and the zoo when built), and the main
interactions (input text, uploaded or drawn image, model, layer, snapshot) change what is shown."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from app_helpers import array, figure_titles, figures, start, texts, unescape
from conftest import ZOO_ROOT
from PIL import Image
from streamlit.testing.v1 import AppTest

from gmlp_core import load_checkpoint, load_tokenizer
from gmlp_core.analysis import spatial as sp

pytestmark = pytest.mark.timeout(300)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _top_lines(at: AppTest) -> dict[str, str]:
    """{model: "tok (p%), ..."} of the first [MASK], as the inference page prints it."""
    out = {}
    for c in at.caption:
        text = c.value.replace("\\", "")
        if " · [MASK] #1 top " in text:
            name, rest = text.split(" · [MASK] #1 top ", 1)
            out[name] = rest.split(": ", 1)[1]
    return out


# ------------------------------------------------------------------------------------------------
# Live inference


def test_fill_mask_shows_each_models_own_prediction(app_root: Path) -> None:
    from dashboard.inference_view import top_line
    from gmlp_core.inference import fill_mask

    at = start("inference", query={"models": "mlm-gmlp,mlm-amlp,mlm-transformer"})
    first = _top_lines(at)
    assert set(first) == {"mlm-gmlp", "mlm-amlp", "mlm-transformer"}
    text = "a module is a [MASK] containing definitions ."
    at.text_area(key="fill-text").set_value(text).run()
    shown = _top_lines(at)
    for name, line in shown.items():
        model, tok = load_checkpoint(app_root / name, device="cpu"), load_tokenizer(app_root / name)
        table = fill_mask(model, tok, text, top_k=5).table
        want = top_line(table[table["mask_index"] == 0])
        assert [e.rsplit(" (", 1)[0] for e in line.split("), ")] == [e.rsplit(" (", 1)[0] for e in want.split("), ")]
    at.slider(key="fill-topk").set_value(3).run()
    assert all(len(line.split("), ")) == 3 for line in _top_lines(at).values())


def test_fill_mask_two_masks_and_examples(app_root: Path) -> None:
    at = start("inference", query={"models": "mlm-gmlp"})
    at.text_area(key="fill-text").set_value("the [MASK] of a [MASK] .").run()
    titles = figure_titles(at)
    assert any("[MASK] #1" in t for t in titles) and any("[MASK] #2" in t for t in titles)
    at.selectbox(key="fill-example").set_value(at.selectbox(key="fill-example").options[1]).run()
    assert at.text_area(key="fill-text").value == at.selectbox(key="fill-example").options[1]


def test_every_built_in_example_runs_without_an_error(app_root: Path) -> None:
    """What a lecturer clicks in front of a class: every example is predicted by every model, none errors."""
    from dashboard.inference_view import EXAMPLES

    if app_root.name != "checkpoints":
        pytest.skip("the tiny test models read 16 pieces of a 160-piece vocabulary; the examples are for the zoo")
    at = start("inference", query={"models": "mlm-gmlp,mlm-amlp,mlm-transformer"})
    for example in EXAMPLES:
        at.selectbox(key="fill-example").set_value(example).run()
        assert not at.exception and not at.error, (example, [e.value for e in at.error])
        assert set(_top_lines(at)) == {"mlm-gmlp", "mlm-amlp", "mlm-transformer"}, example
    assert any("Truncated" in w.value for w in at.warning), "the long example shows what the models cut"
    # The zoo's models carry their cloze score: the page says how good they are.
    note = unescape(" ".join(c.value for c in at.caption))
    assert "How good are these models?" in note and re.search(r"mlm-amlp \d+/\d+", note)


@pytest.mark.parametrize(
    ("text", "kind", "fragment"),
    [
        ("", "error", "empty"),
        ("   \n\t ", "error", "empty"),
        ("no mask here at all", "error", "[MASK]"),
        ("x " * 50_000 + "[MASK]", "warning", "only the first 20,000"),
        ("the [MASK] is 🐍🔥 ✨ here", None, None),
        ("ctrl \x00\x07\x1b [MASK] chars", None, None),
        ("[MASK] " + "word " * 300, "warning", "Truncated"),
    ],
)
def test_bad_text_gets_a_message_not_a_traceback(lens_root: Path, monkeypatch, text: str, kind, fragment) -> None:  # noqa: ANN001
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("inference", query={"models": "mlm-gmlp,mlm-transformer"})
    at.text_area(key="fill-text").set_value(text).run()
    assert not at.exception
    if kind is not None:
        shown = unescape(" ".join(el.value for el in getattr(at, kind)))
        assert fragment in shown, shown
    # and the app keeps serving: a good input works right after
    at.text_area(key="fill-text").set_value("the [MASK] is here").run()
    assert set(_top_lines(at)) == {"mlm-gmlp", "mlm-transformer"}


def test_classify_validation_digit_upload_and_drawing(app_root: Path) -> None:
    from gmlp_core.data.images import load_digits_split

    at = start("inference", query={"models": "vision-gmlp,vision-transformer"})
    assert any(m.label == "Prediction" for m in at.metric)
    x, y = load_digits_split("validation")
    at.number_input(key="infer-index").set_value(7).run()
    assert f"validation digit #7 (label {int(y[7])})" in texts(at)
    model = load_checkpoint(app_root / "vision-gmlp", device="cpu")
    with torch.no_grad():
        want = int(model(pixel_values=x[7:8]).logits.argmax())
    gmlp_metric = [m for m in at.metric if m.label == "Prediction"][0]
    assert str(gmlp_metric.value).startswith(str(want))

    at.button_group(key="infer-source").set_value("Upload an image").run()
    assert "Upload an image to classify it" in texts(at)
    digit = (x[3, 0].numpy() * 255).astype(np.uint8)
    big = np.kron(digit, np.ones((16, 16), dtype=np.uint8))  # a 128 x 128 upload of the same digit
    at.file_uploader(key="infer-upload").set_value(("three.png", _png(big), "image/png")).run()
    assert not at.exception and "three.png (128 x 128" in texts(at)
    preview = figures(at)[0].data[0].z
    assert np.allclose(array(preview), x[3, 0].numpy() / x[3, 0].numpy().max(), atol=0.05)

    at.file_uploader(key="infer-upload").set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert "not an image" in " ".join(e.value for e in at.error)
    huge = Image.new("L", (8000, 8000))
    buf = io.BytesIO()
    huge.save(buf, format="PNG")
    at.file_uploader(key="infer-upload").set_value(("huge.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and "megapixels" in " ".join(e.value for e in at.error)

    at.button_group(key="infer-source").set_value("Draw a digit").run()
    assert "your drawing" in texts(at)

    def canvas() -> np.ndarray:
        fig = [f for f in figures(at) if f.data and f.data[0].type == "scatter"][0]
        return array(fig.data[0].marker.color).reshape(8, 8)

    assert np.allclose(canvas(), 0)  # a blank grid to start with
    at.selectbox(key="infer-start").set_value("digit 0").run()
    at.button(key="infer-reset").click().run()
    zero = x[int(np.flatnonzero(y.numpy() == 0)[0]), 0].numpy()
    assert np.allclose(canvas(), zero, atol=1e-6)  # the grid now holds the first validation 0
    preview = [f for f in figures(at) if f.data and f.data[0].type == "heatmap"][0]
    assert np.allclose(array(preview.data[0].z), zero / zero.max(), atol=0.05)  # and the models see it


def test_canvas_models_see_the_digit_where_the_sliders_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model trained on digits on a canvas gets the chosen digit pasted where the sliders say; an 8 x 8 digit
    model beside it gets the digit itself; each panel says what its model was trained on."""
    import shutil

    from gmlp_core import build_model, preset, save_checkpoint
    from gmlp_core.data.canvas import digit_on_canvas
    from gmlp_core.data.images import load_digits_split

    shutil.copytree(ZOO_ROOT / "vision-gmlp", tmp_path / "vision-gmlp")
    torch.manual_seed(0)
    canvas_model = build_model(preset("gmlp-demo-canvas")).eval()
    save_checkpoint(
        canvas_model, tmp_path / "canvas-gmlp", metrics={"val_accuracy": 0.5}, extra={"data": "digits-canvas"}
    )
    monkeypatch.setenv("GMLP_LENS_ROOT", str(tmp_path))
    at = start("inference", query={"models": "vision-gmlp,canvas-gmlp"})
    assert "trained on centred 8 x 8 digits" in texts(at)
    assert "trained on digits anywhere on a 32 x 32 canvas" in texts(at)
    x, _ = load_digits_split("validation")
    at.number_input(key="infer-index").set_value(7).run()
    at.slider(key="infer-row").set_value(0).run()
    at.slider(key="infer-col").set_value(24).run()
    assert "**What the canvas models see** (32 x 32)" in texts(at) and "**What the digit models see** (8 x 8)" in texts(
        at
    )
    seen = [f for f in figures(at) if f.data and f.data[0].type == "heatmap" and array(f.data[0].z).shape == (32, 32)]
    assert len(seen) == 1
    shown = array(seen[0].data[0].z)
    expected = digit_on_canvas(x[7] / x[7].max(), 32, (0, 24))  # the digits convention: strokes use the full range
    assert np.allclose(shown, expected[0, 0].numpy(), atol=0.01)  # the image passes through 8-bit grey
    assert not shown[8:].any() and not shown[:, :24].any(), "nothing outside the digit's 8 x 8 place"
    with torch.no_grad():  # the panel's prediction is the model's on exactly what is shown
        want = int(canvas_model(pixel_values=torch.tensor(shown, dtype=torch.float32)[None, None]).logits.argmax())
    predictions = [m for m in at.metric if m.label == "Prediction"]
    assert len(predictions) == 2 and str(predictions[1].value).startswith(str(want))


# ------------------------------------------------------------------------------------------------
# Spatial weights


def _first_heatmap_z(at: AppTest) -> np.ndarray:
    return array(figures(at)[0].data[0].z)


def test_spatial_page_shows_the_models_W_per_layer(app_root: Path) -> None:
    at = start("spatial", query={"models": "mlm-gmlp,vision-gmlp,mlm-transformer"})
    assert at.selectbox(key="spatial-model").options == ["mlm-gmlp", "vision-gmlp"]  # no Transformer: it has no W
    model = load_checkpoint(app_root / "mlm-gmlp", device="cpu")
    weights = [w.numpy() for w in model.spatial_weights()]
    assert np.allclose(_first_heatmap_z(at), weights[0], atol=1e-5)
    at.slider(key="spatial-layer").set_value(1).run()
    assert np.allclose(_first_heatmap_z(at), weights[1], atol=1e-5)
    # Toeplitz part + residual == W
    w, t, r = (array(f.data[0].z) for f in figures(at)[:3])
    assert np.allclose(t + r, w, atol=1e-5)
    assert "The paper's figure" in texts(at)
    scores = [df.value for df in at.dataframe if "locality" in df.value.columns][0]
    assert len(scores) == len(weights)

    at.selectbox(key="spatial-model").set_value("vision-gmlp").run()
    assert "filters" in texts(at)
    vision = load_checkpoint(app_root / "vision-gmlp", device="cpu")
    assert np.allclose(_first_heatmap_z(at), vision.spatial_weights()[1].numpy(), atol=1e-5)
    # The drawn Toeplitz part is the 2-D (patch grid) one that the shift invariance shown beside it measures.
    w, t, r = (array(f.data[0].z) for f in figures(at)[:3])
    grid = vision.config.spatial_grid
    expected, _ = sp.toeplitz_decomposition(torch.from_numpy(w), grid)
    assert np.allclose(t, expected.numpy(), atol=1e-5)
    scores = [df.value for df in at.dataframe if "shift_invariance" in df.value.columns][0]
    drawn = 1.0 - (r**2).sum() / ((w - w.mean()) ** 2).sum()
    assert scores["shift_invariance"].iloc[1] == pytest.approx(drawn, abs=2e-4)  # the table is rounded to 4 places


def test_spatial_page_text_follows_the_model_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import TINY_TEXT

    from gmlp_core import build_model, preset, save_checkpoint
    from gmlp_core.data.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(TINY_TEXT, 160)
    kinds = {
        "plain": {},
        "amlp": {"arch": "amlp"},
        "additive": {"gating": "additive"},
        "causal-toeplitz": {"causal": True, "spatial": "toeplitz"},
    }
    for name, changes in kinds.items():
        cfg = preset("gmlp-tiny-mlm").replace(vocab_size=tokenizer.get_vocab_size(), **changes)
        save_checkpoint(build_model(cfg), tmp_path / name, tokenizer=tokenizer)
    monkeypatch.setenv("GMLP_LENS_ROOT", str(tmp_path))
    at = start("spatial", query={"models": ",".join(kinds)})

    def intro(name: str) -> str:
        at.selectbox(key="spatial-model").set_value(name).run()
        return unescape(" ".join(m.value for m in at.markdown))

    assert "the only token mixing is W" in intro("plain") and "Z1 * (W LN(Z2) + b)" in intro("plain")
    assert "tiny single-head attention" in intro("amlp") and "only token mixing" not in intro("amlp")
    assert "Z + (W LN(Z) + b)" in intro("additive")
    shown = intro("causal-toeplitz")
    assert "Causal" in shown and "by construction" in shown
    scores = [df.value for df in at.dataframe if "shift_invariance" in df.value.columns][0]
    assert np.allclose(scores["shift_invariance"], 1.0), "what the text says is fixed by construction"
    # Every score is defined on the page, and the chart draws the no-preference baselines.
    definitions = unescape(" ".join(m.value for m in at.markdown))
    assert "locality_random" in definitions and "mean_abs_offset" in definitions
    names = [tr.name for f in figures(at) for tr in f.data if tr.name]
    assert "locality, random W" in names and "shift invariance, random W" in names


def test_spatial_snapshot_slider_moves_through_training(app_root: Path) -> None:
    at = start("spatial", query={"models": "mlm-gmlp"})
    slider = at.select_slider(key="snap-step-mlm-gmlp")
    steps = list(slider.options)
    assert len(steps) >= 2
    assert f"at step {steps[-1]}" in " ".join(figure_titles(at))
    slider.set_value(steps[0]).run()
    assert f"at step {steps[0]}" in " ".join(figure_titles(at))

    def timeline_range() -> tuple[float, np.ndarray]:
        [fig] = [f for f in figures(at) if "at step" in (f.layout.title.text or "")]
        return fig.data[0].zmax, array(fig.data[0].z)

    # One colour range for every step: the step-0 W (near-zero noise) is drawn on the trained W's scale.
    zmax, z0 = timeline_range()
    assert zmax > 5 * np.abs(z0).max(), "step 0 is not stretched to look as strong as the trained W"
    slider.set_value(steps[-1]).run()
    assert timeline_range()[0] == zmax
    at.toggle(key="snap-rescale-mlm-gmlp").set_value(True).run()
    slider.set_value(steps[1]).run()
    zmax1, z1 = timeline_range()
    assert zmax1 == pytest.approx(np.abs(z1).max(), rel=1e-3) and "rescaled" in " ".join(figure_titles(at))


def test_spatial_page_without_gmlp_models_explains_why(app_root: Path) -> None:
    at = start("spatial", query={"models": "mlm-transformer"})
    assert "Pick at least one gMLP or aMLP model" in texts(at)


# ------------------------------------------------------------------------------------------------
# W versus attention


def test_w_vs_attention_draws_the_demo_models_at_once_and_follows_the_input(app_root: Path) -> None:
    at = start("w_vs_attention", query={"models": "mlm-gmlp,mlm-amlp,mlm-transformer"})
    assert "Press **Compute the maps**" not in texts(at) and not at.button  # cheap maps: no button to press
    titles = " ".join(figure_titles(at))
    assert "W (static)" in titles and "gate" in titles
    attention = [f for f in figures(at) if any((tr.hovertemplate or "").count("attention") for tr in f.data)]
    assert attention
    rows = array(attention[0].data[0].z)
    assert np.allclose(rows.sum(-1), 1.0, atol=1e-3)  # each attention row is a distribution
    figs = figures(at)
    assert [f.layout.title.text for f in figs[-3:]] == ["mlm-transformer", "mlm-amlp", "mlm-gmlp"]  # influence
    before = array(figs[-1].data[0].z)
    # every map: the sentence's tokens on both axes, a colour bar titled with its range, W centred on 0
    tokens = list(figs[-1].layout.yaxis.ticktext)
    assert "the" in tokens and "of" in tokens and tokens == list(figs[-1].layout.xaxis.ticktext)
    for f in figs:
        assert f.data[0].showscale is not False and f.data[0].colorbar.title.text
        assert len(f.layout.yaxis.ticktext) >= 2 and len(f.layout.xaxis.ticktext) >= 2
    w = next(f for f in figs if f.layout.title.text == "W (static)")
    assert w.data[0].zmid == 0 and w.data[0].zmin == -w.data[0].zmax
    # each model's per-input mixing at this layer, same size as the sentence, off-diagonal mixing present
    effective = [f for f in figs if (f.layout.title.text or "").startswith("effective mixing")]
    assert len(effective) == 3
    for f in effective:
        m = array(f.data[0].z)
        assert m.shape == (len(tokens), len(tokens)) and (m - np.diag(np.diag(m))).max() > 0

    heads = array(figures(at)[0].data[0].z)
    at.slider(key="wva-layer").set_value(1).run()  # another layer: other attention, other W
    assert "mlm-transformer · layer 1" in texts(at)
    assert not np.allclose(heads, array(figures(at)[0].data[0].z))

    at.text_input(key="wva-text").set_value("a class defines methods and attributes .").run()
    after = array(figures(at)[-1].data[0].z)
    assert before.shape != after.shape or not np.allclose(before, after)


def test_w_vs_attention_waits_for_the_button_when_the_maps_are_expensive(
    app_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dashboard.w_vs_attention_view as view

    monkeypatch.setattr(view, "AUTO_GFLOP", 0.0)  # as for an imported ImageNet gMLP
    at = start("w_vs_attention", query={"models": "mlm-gmlp,mlm-transformer"})
    assert "Press **Compute the maps**" in texts(at)
    assert not figures(at)  # nothing heavy before the button
    at.button(key="wva-compute").click().run()
    assert "Token influence" in texts(at) and figures(at)
    at.text_input(key="wva-text").set_value("a class defines methods and attributes .").run()
    assert "Press **Compute the maps**" in texts(at)  # a new input needs a new computation


def test_w_vs_attention_on_images(app_root: Path) -> None:
    at = start("w_vs_attention", query={"models": "vision-gmlp,vision-amlp,vision-transformer"})
    assert "Token influence" in texts(at)
    assert len(figures(at)) >= 4


# ------------------------------------------------------------------------------------------------
# Attributions


def test_attributions_for_a_masked_prediction(app_root: Path) -> None:
    at = start("attributions", query={"models": "mlm-gmlp,mlm-transformer"})
    assert "Press **Explain**" in texts(at)
    at.button(key="attr-run").click().run()
    deltas = [m for m in at.metric if "convergence delta" in m.label]
    assert len(deltas) == 2
    assert all(abs(float(m.value)) < 1.0 for m in deltas)
    # completeness: the attributions add up to the score change, up to the convergence delta shown above
    sums = [c.value for c in at.caption if c.value.startswith("attributions add up to")]
    assert len(sums) == 2
    for line, delta in zip(sums, deltas, strict=True):
        total, change = (float(x) for x in re.findall(r"[+-]\d+\.\d+", line))
        assert abs(total - change - float(delta.value)) < 1e-3 + 1e-3 * abs(change)
    table = [df.value for df in at.dataframe if "attribution" in df.value.columns][0]
    assert set(table["model"]) == {"mlm-gmlp", "mlm-transformer"} and table["method"].nunique() == 2
    assert len([c for c in at.caption if c.value.startswith("explaining")]) == 2
    at.text_input(key="attr-word").set_value("the").run()
    assert "Press **Explain**" in texts(at)  # a new target needs a new computation
    at.button(key="attr-run").click().run()
    explained = [c.value for c in at.caption if c.value.startswith("explaining")]
    assert len(explained) == 2 and all(unescape(c).startswith("explaining the (p = ") for c in explained)

    at.text_input(key="attr-text").set_value("no mask in this one").run()
    assert "Put a [MASK] in the sentence" in texts(at)


def test_attributions_for_an_image_class(app_root: Path) -> None:
    at = start("attributions", query={"models": "vision-gmlp"})
    at.button(key="attr-run").click().run()
    assert any("convergence delta" in m.label for m in at.metric)
    maps = [f for f in figures(at) if f.data and f.data[0].type == "heatmap" and array(f.data[0].z).shape == (8, 8)]
    assert maps
    at.selectbox(key="attr-class").set_value(3).run()
    at.button(key="attr-run").click().run()
    assert any("class 3" in c.value for c in at.caption)


# ------------------------------------------------------------------------------------------------
# Interventions


def test_interventions_page_edits_a_copy_and_says_what_it_cost(app_root: Path) -> None:
    at = start("interventions", {"models": "mlm-gmlp,mlm-transformer"})
    assert at.selectbox(key="iv-model").value == "mlm-gmlp"
    at.selectbox(key="iv-kind").set_value("zero").run()
    before, after = (float(m.value) for m in at.metric)
    assert after != before
    if app_root == ZOO_ROOT:  # a trained gMLP relies on its W (the tiny root's models are random)
        assert after > 2 * before, "knocking out every W costs perplexity"
    assert "W set to 0" in texts(at) and "held-out masked tokens" in texts(at)
    w_before, w_after = (array(f.data[0]["z"]) for f in figures(at)[:2])
    assert np.abs(w_before).sum() > 0 and not np.abs(w_after).any(), "W before and after, side by side"
    again = float(start("interventions", {"models": "mlm-gmlp"}).metric[0].value)
    assert again == before, "the shared model was not changed by the edit"
    at.selectbox(key="iv-kind").set_value("band").run()
    at.slider(key="iv-k").set_value(2).run()
    assert "band" in texts(at) and len(at.metric) == 2
    at.selectbox(key="iv-model").set_value("mlm-transformer").run()
    assert [o.split(":")[0] for o in at.selectbox(key="iv-kind").options] == ["heads-off", "uniform"]
    at.toggle(key="iv-summary").set_value(True).run()
    cfg = load_checkpoint(app_root / "mlm-transformer", device="cpu").config
    bars = figures(at)[-1].data[0]
    assert bars.type == "bar" and len(bars.x) == cfg.n_layers * cfg.n_heads, "one bar per head of every layer"


def test_interventions_measure_a_finetuned_pair_model_on_its_task(app_root: Path) -> None:
    """The pair task's gMLP with W edited: accuracy on the task's validation pairs before and after (the page
    does not offer a fill-mask sentence to a classifier)."""
    at = start("interventions", {"models": "match-gmlp"})
    at.selectbox(key="iv-kind").set_value("toeplitz").run()
    assert not at.error and len(at.metric) == 2
    assert all(0.0 <= float(m.value.rstrip("%")) <= 100.0 for m in at.metric)
    assert not [t for t in at.text_input if t.key == "iv-text"]


def test_interventions_band_sweep_chart(app_root: Path) -> None:
    at = start("interventions", {"models": "vision-gmlp"})
    at.toggle(key="iv-summary").set_value(True).run()
    kinds = [f.data[0].type for f in figures(at)]
    assert "bar" in kinds and kinds.count("scatter") >= 1, kinds
    assert "How local does W need to be?" in texts(at)


# ------------------------------------------------------------------------------------------------
# When attention matters


def _pair_figures(at: AppTest) -> dict[str, go.Figure]:
    return {f.layout.title.text: f for f in figures(at) if f.layout.title.text}


def test_attention_matters_answers_a_typed_pair_and_maps_how_b_reaches_a(app_root: Path) -> None:
    from gmlp_core.zoo import PAIR_MODELS

    at = start("attention_matters")
    labels = [m.label.replace("\\", "") for m in at.metric]
    for name in PAIR_MODELS:
        assert any(label.startswith(name) for label in labels), labels
    study = next(f for f in figures(at) if f.layout.title.text.startswith("Test score per task"))
    points = [t for t in study.data if t.mode == "markers" and t.name]
    assert points and all(len(t.y) >= 1 for t in points)  # every run a point, with its seed in the hover text
    a, b = "the value of the key is returned", "the value of the name is returned"
    at.text_area(key="am-a").set_value(a)
    at.text_area(key="am-b").set_value(b).run()
    assert not at.error
    from dashboard.plots import _short
    from gmlp_core.analysis.pairs import read_pair

    model = load_checkpoint(app_root / "match-gmlp", device="cpu").eval()
    reading = read_pair(model, load_tokenizer(app_root / "match-gmlp"), a, b)
    figs = _pair_figures(at)
    w = figs["W, layer 0 (the same for every pair)"]
    tokens_a, tokens_b = list(w.layout.yaxis.ticktext), list(w.layout.xaxis.ticktext)
    assert tokens_a == [_short(reading.tokens[i]) for i in reading.a_positions]  # rows: A's word pieces
    assert tokens_b == [_short(reading.tokens[i]) for i in reading.b_positions]  # columns: B's
    assert array(w.data[0].z).shape == (len(tokens_a), len(tokens_b))
    attention = figs["attention, mean of heads, layer 0"]
    assert array(attention.data[0].z).max() <= 1.0
    assert len([t for t in figs if t.startswith("effective mixing")]) >= 1
    assert "same word in B" in texts(at)
    # W does not move with the input; the model's answer is the library's
    at.text_area(key="am-b").set_value(a).run()
    assert np.allclose(
        array(_pair_figures(at)["W, layer 0 (the same for every pair)"].data[0].z)[:, :3], array(w.data[0].z)[:, :3]
    )
    metrics = [m for m in at.metric if m.label.replace("\\", "").startswith("match-gmlp")]
    assert metrics[0].value == read_pair(model, load_tokenizer(app_root / "match-gmlp"), a, a).label
    at.slider(key="am-layer").set_value(1).run()
    assert "W, layer 1 (the same for every pair)" in _pair_figures(at)
    deepest = int(at.slider(key="am-layer").max)
    at.slider(key="am-layer").set_value(deepest).run()  # models with fewer layers say so, nothing fails
    assert not at.error and f"W, layer {deepest} (the same for every pair)" in _pair_figures(at)


def test_attention_matters_examples_fill_both_sentences(app_root: Path) -> None:
    at = start("attention_matters")
    box = at.selectbox(key="am-example")
    kinds = {o.split(": ", 1)[0] for o in box.options}  # shown as "kind: sentence B"
    assert kinds and kinds <= {
        "every model right",
        "only the models with attention right",
        "only gMLP right",
        "every model wrong",
    }
    text_b = box.options[-1].split(": ", 1)[1]
    box.select_index(len(box.options) - 1).run()
    assert at.text_area(key="am-b").value == text_b
    assert at.text_area(key="am-a").value and at.text_area(key="am-b").value
    assert not at.error


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("", "the value is returned", "sentence A is empty"),
        ("the value is returned", "   ", "sentence B is empty"),
        ("the value is returned " * 40, "the key is read " * 40, "it was cut"),
    ],
)
def test_attention_matters_bad_pairs_get_a_message(lens_root: Path, monkeypatch, a: str, b: str, message: str) -> None:  # noqa: ANN001
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("attention_matters")
    at.text_area(key="am-a").set_value(a)
    at.text_area(key="am-b").set_value(b).run()
    assert message in texts(at)
    assert not at.exception and "Truncation: [CLS] A [SEP] B [SEP]" in texts(at)
    at.text_area(key="am-a").set_value("the value is returned")
    at.text_area(key="am-b").set_value("the key is returned").run()  # the page still serves
    assert not at.error and at.metric


def test_attention_matters_without_pair_models_says_how_to_get_them(
    lens_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    root = tmp_path / "root"
    shutil.copytree(lens_root / "mlm-gmlp", root / "mlm-gmlp")
    from gmlp_core.train.finetune import start_finetune

    single = start_finetune(root / "mlm-gmlp", "docs-order", 0, torch.device("cpu"))
    from gmlp_core import save_checkpoint

    save_checkpoint(single.model, root / "order-gmlp", tokenizer=single.tokenizer)
    monkeypatch.setenv("GMLP_LENS_ROOT", str(root))
    at = start("attention_matters", query={"models": "order-gmlp"})
    shown = texts(at)
    assert "python -m gmlp_core zoo --only match-gmlp" in shown
    assert "order-gmlp (not finetuned on a sentence-pair classification task)" in shown
    assert not at.exception

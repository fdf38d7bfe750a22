"""The dashboard on an imported ImageNet gMLP: n = 196 on a 14 x 14 grid, 1000 named classes, timm's preprocessing.

The checkpoints are built here the way ``python -m gmlp_core import timm:...`` writes them (our config with timm's
eps, the recorded class names and preprocessing), with random weights: the real ones cannot be downloaded in a
test, and the dashboard must not need timm. A small one (2 layers) for every page, and a full-size gMLP-S
(30 layers, ~78 MB, in a temporary folder) for the Spatial weights render time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import array, figures, start, texts, unescape

from gmlp_core import LensModel, build_model, load_checkpoint, save_checkpoint
from gmlp_core import importers as im
from gmlp_core.data.images import sample_photo, to_pixel_values
from gmlp_core.inference import classify_image


def _imagenet_checkpoint(folder: Path, cfg: object, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for block in model.blocks:  # a W with structure to draw (timm's init is ~1e-6 noise)
            block.sgu.spatial.weight.normal_(0, 0.05)
        model.head.weight.normal_(0, 0.5)
    extra = im.timm_extra(im.Imported(model, {"library": "timm", "model": cfg.name}, 0.0))
    return save_checkpoint(model, folder, extra=extra)


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imagenet")
    cfg = im.timm_config("gmlp_ti16_224").replace(n_layers=2, d_model=32, d_ffn=192, name="gmlp-small")
    _imagenet_checkpoint(root / "gmlp-small", cfg)
    return root


@pytest.fixture
def small(imagenet_root: Path, monkeypatch: pytest.MonkeyPatch) -> LensModel:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(imagenet_root))
    return load_checkpoint(imagenet_root / "gmlp-small", device="cpu")


def tiles(fig) -> list[np.ndarray]:  # noqa: ANN001 (a plotly Figure)
    """The images an ``plots.image_grid`` figure tiles into its one heatmap (none for other figures)."""
    meta = fig.layout.meta
    if not isinstance(meta, dict) or "tiles" not in meta:
        return []
    (h, w), z = meta["tile_shape"], array(fig.data[0].z)
    return [z[top : top + h, left : left + w] for top, left in meta["tiles"]]


def test_spatial_page_draws_196_x_196_W_and_14_x_14_filters(small: LensModel) -> None:
    at = start("spatial", {"models": "gmlp-small"})
    weights = small.spatial_weights()
    assert np.allclose(array(figures(at)[0].data[0].z), weights[0].numpy(), atol=1e-6)
    centre = [f for f in figures(at) if len(tiles(f)) == small.config.n_layers][0]
    assert np.allclose(tiles(centre)[1], weights[1][7 * 14 + 7].reshape(14, 14).numpy(), atol=1e-6)
    assert "14 x 14 patch grid" in texts(at) and "centre patch" in texts(at)

    def filters() -> list[np.ndarray]:
        return tiles(figures(at)[-1])

    assert len(filters()) == 49  # every 2nd patch in each direction (the default)
    at.select_slider(key="spatial-stride").set_value(3).run()
    assert len(filters()) == 25  # rows and columns 0, 3, 6, 9, 12
    assert np.allclose(filters()[6], weights[0][3 * 14 + 3].reshape(14, 14).numpy(), atol=1e-6)


def test_live_inference_classifies_a_photo_with_imagenet_names(small: LensModel) -> None:
    at = start("inference", {"models": "gmlp-small"})
    photo = sample_photo("china.jpg")  # the default source for a photo model
    result = classify_image(small, to_pixel_values(photo, small.config))
    assert [unescape(m.value) for m in at.metric] == [result.label(result.predicted)]  # shown as text
    bars = [f for f in figures(at) if f.layout.title.text == "Top 5 classes"][0].data[0]
    top5 = result.table.head(5)
    assert list(bars.y)[::-1] == [f"{n.split(',')[0]} ({c})" for n, c in zip(top5["name"], top5["class"], strict=True)]
    [shown] = at.get("image")
    assert "resized and centre-cropped" in str(shown.proto)  # what the model sees: the 224 x 224 crop


def test_w_versus_attention_and_attributions_run_at_n_196(small: LensModel) -> None:
    at = start("w_vs_attention", {"models": "gmlp-small"})  # within the work drawn at once: no button
    assert not at.error and "Token influence" in texts(at)
    influence = [f for f in figures(at) if any("influence" in (t.hovertemplate or "") for t in f.data)][0]
    assert array(influence.data[0].z).shape == (196, 196)

    at = start("attributions", {"models": "gmlp-small"})
    assert at.selectbox(key="attr-class").format_func(1) == "1: goldfish"
    at.selectbox(key="attr-class").set_value(281).run()
    at.button(key="attr-run").click().run()
    assert not at.error and "tabby (class 281)" in texts(at)
    assert any("convergence delta" in m.label for m in at.metric)


def test_spatial_page_renders_a_full_size_gmlp_s_warm_within_3_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _imagenet_checkpoint(tmp_path / "gmlp_s16_224", im.timm_config("gmlp_s16_224"))
    monkeypatch.setenv("GMLP_LENS_ROOT", str(tmp_path))
    at = start("spatial", {"models": "gmlp_s16_224"})  # cold: loads the model and analyses its 30 W
    assert at.slider(key="spatial-layer").max == 29
    seconds = []
    for layer in (29, 0):
        start_time = time.perf_counter()
        at.slider(key="spatial-layer").set_value(layer).run()
        seconds.append(time.perf_counter() - start_time)
    assert not at.exception and max(seconds) < 3.0, seconds

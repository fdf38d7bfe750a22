"""Interventions on W and attention: the edits do what their names say, leave the original model untouched,
keep causal models causal, and the CLI's probe reports the metric before and after."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F

from gmlp_core import build_model, load_checkpoint, load_tokenizer, preset
from gmlp_core.analysis import interventions as iv
from gmlp_core.analysis.spatial import toeplitz_decomposition
from gmlp_core.cli import main
from gmlp_core.zoo import DEFAULT_ROOT


def _model(name: str, seed: int = 0, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(preset(name, **overrides)).eval()
    if model.config.has_spatial_weights:  # give W structure and size, as training would
        with torch.no_grad():
            for block in model.blocks:
                block.sgu.spatial.weight.normal_(0, 0.3)
    return model


def _digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _ids(cfg, seed: int = 0) -> torch.Tensor:  # noqa: ANN001
    return torch.randint(5, cfg.vocab_size, (2, cfg.seq_len), generator=torch.Generator().manual_seed(seed))


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


CASES = [
    ("gmlp-tiny-mlm", {}, kind, params)
    for kind, params in (
        ("toeplitz", {}),
        ("band", {"k": 1}),
        ("zero", {}),
        ("shuffle", {"seed": 3}),
        ("transpose", {}),
        ("smooth", {"k": 2}),
    )
] + [
    ("gmlp-tiny-mlm", {"spatial": "toeplitz"}, "band", {"k": 2}),
    ("amlp-tiny-mlm", {}, "no-attention", {}),
    ("amlp-tiny-mlm", {}, "smooth", {"k": 1}),
    ("transformer-tiny-mlm", {}, "heads-off", {"heads": [1]}),
    ("transformer-tiny-mlm", {}, "uniform", {}),
    ("gmlp-tiny-vision", {}, "toeplitz", {}),
    ("gmlp-tiny-vision", {}, "band", {"k": 1}),
]


@pytest.mark.parametrize(("name", "overrides", "kind", "params"), CASES)
def test_the_original_model_is_never_changed(name: str, overrides: dict, kind: str, params: dict) -> None:
    model = _model(name, **overrides)
    before = _digest(model)
    edited = iv.intervene(model, kind, "all", **params)
    assert _digest(model) == before, "the shared model was mutated"
    assert _digest(edited) != before, "the edit changed something"
    if model.config.task == "mlm":
        ids = _ids(model.config)
        assert not torch.equal(_logits(model, ids), _logits(edited, ids))


@pytest.mark.parametrize(
    ("name", "kind", "params"),
    [
        ("gmlp-tiny-mlm", k, p)
        for k, p in (
            ("toeplitz", {}),
            ("band", {"k": 1}),
            ("zero", {}),
            ("shuffle", {}),
            ("transpose", {}),
            ("smooth", {"k": 2}),
        )
    ]
    + [
        ("amlp-tiny-mlm", "no-attention", {}),
        ("transformer-tiny-mlm", "heads-off", {"heads": [0]}),
        ("transformer-tiny-mlm", "uniform", {}),
    ],
)
def test_edited_causal_models_leak_no_future_token(name: str, kind: str, params: dict) -> None:
    edited = iv.intervene(_model(name, causal=True), kind, "all", **params)
    cfg = edited.config
    ids = _ids(cfg)
    for t in (3, cfg.seq_len // 2):
        changed = ids.clone()
        changed[:, t:] = torch.randint(5, cfg.vocab_size, changed[:, t:].shape)
        a, b = _logits(edited, ids), _logits(edited, changed)
        torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=1e-6)
    for w in edited.spatial_weights() if cfg.has_spatial_weights else []:
        assert torch.equal(w.triu(1), torch.zeros_like(w))


def test_toeplitz_projection_keeps_a_toeplitz_w_and_is_idempotent() -> None:
    n = 12
    offsets = torch.randn(2 * n - 1)
    i = torch.arange(n)
    toeplitz = offsets[i[:, None] - i[None, :] + n - 1]
    torch.testing.assert_close(iv.edit_w(toeplitz, "toeplitz"), toeplitz)
    w = torch.randn(n, n)
    once = iv.edit_w(w, "toeplitz")
    torch.testing.assert_close(iv.edit_w(once, "toeplitz"), once)
    torch.testing.assert_close(once, toeplitz_decomposition(w)[0])
    grid = torch.randn(16, 16)  # a 4 x 4 patch grid: the 2-D projection, idempotent too
    twice = iv.edit_w(iv.edit_w(grid, "toeplitz", grid=4), "toeplitz", grid=4)
    torch.testing.assert_close(twice, iv.edit_w(grid, "toeplitz", grid=4))


def test_band_wide_enough_and_the_identity_shuffle_change_nothing() -> None:
    model = _model("gmlp-tiny-mlm")
    ids = _ids(model.config)
    n = model.config.seq_len
    torch.testing.assert_close(_logits(iv.intervene(model, "band", "all", k=n - 1), ids), _logits(model, ids))
    w = model.spatial_weights()[0]
    assert torch.equal(iv.edit_w(w, "shuffle", permutation=torch.arange(n)), w)
    assert torch.equal(iv.edit_w(w, "band", k=0), torch.diag(torch.diag(w)))
    assert torch.equal(iv.edit_w(w, "transpose"), w.T)
    assert torch.linalg.matrix_rank(iv.edit_w(w, "smooth", k=3)) == 3


def test_zero_w_everywhere_makes_every_gate_its_bias() -> None:
    """With W = 0 each block computes x + V(Z1 * b): checked against that formula written out."""
    model = _model("gmlp-tiny-mlm")
    with torch.no_grad():
        for block in model.blocks:
            block.sgu.spatial.bias.uniform_(0.5, 1.5)  # a bias that is not 1, so the gate is visible
    ids = _ids(model.config)
    edited = iv.intervene(model, "zero", "all")
    with torch.no_grad():
        x = model.embed(ids)
        for block in model.blocks:
            z = F.gelu(block.proj_in(block.norm(x)))
            z1, _ = z.chunk(2, dim=-1)
            x = x + block.proj_out(z1 * block.sgu.spatial.bias[None, :, None])
        want = model.decode(model.norm(x))
    torch.testing.assert_close(_logits(edited, ids), want, rtol=1e-5, atol=1e-5)


def test_uniform_attention_and_heads_off() -> None:
    model = _model("transformer-tiny-mlm")
    ids = _ids(model.config)
    mask = torch.ones_like(ids)
    mask[:, 10:] = 0  # padding: uniform over the 10 real tokens only
    with torch.no_grad():
        out = iv.intervene(model, "uniform", [0]).forward(input_ids=ids, attention_mask=mask, output_attentions=True)
    probs = out.attentions[0]
    torch.testing.assert_close(probs[..., :10], torch.full_like(probs[..., :10], 0.1))
    assert torch.equal(probs[..., 10:], torch.zeros_like(probs[..., 10:]))
    off = iv.intervene(model, "heads-off", [1])  # all heads of layer 1: its attention adds nothing
    assert torch.equal(off.blocks[1].attn_out.weight, torch.zeros_like(off.blocks[1].attn_out.weight))
    with pytest.raises(ValueError, match="heads must be"):
        iv.intervene(model, "heads-off", [0], heads=[7])


def test_kinds_that_do_not_apply_are_refused() -> None:
    with pytest.raises(ValueError, match="does not apply"):
        iv.intervene(_model("transformer-tiny-mlm"), "toeplitz")
    with pytest.raises(ValueError, match="does not apply"):
        iv.intervene(_model("gmlp-tiny-mlm"), "no-attention")
    with pytest.raises(ValueError, match="layers must be"):
        iv.intervene(_model("gmlp-tiny-mlm"), "zero", [5])
    with pytest.raises(ValueError, match="band needs an integer k"):
        iv.intervene(_model("gmlp-tiny-mlm"), "band")


def test_the_held_out_set_has_over_2000_masked_tokens_and_probe_measures_before_and_after(
    capsys: pytest.CaptureFixture,
) -> None:
    folder = DEFAULT_ROOT / "mlm-gmlp"
    model = load_checkpoint(folder, device="cpu")
    held_out = iv.validation_data(model, load_tokenizer(folder))
    assert held_out.examples >= 2000
    sentence = "a [MASK] is a value."
    assert main(["probe", str(folder), "--intervention", "zero", "--layers", "0,2", "--sentence", sentence]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "zero" and out["layers"] == [0, 2] and out["examples"] == held_out.examples
    assert out["val_ppl_after"] > out["val_ppl_before"] > 1, "knocking out W costs perplexity"
    assert {"token_before", "token_after"} <= set(out["fill_mask"][0])
    assert main(["probe", str(folder), "--intervention", "band", "--layers", "x"]) == 2


def test_the_held_out_set_defaults_to_the_built_in_data_the_model_was_trained_on() -> None:
    """A model trained on python-docs (the zoo) or on digits on a canvas is measured on that data's held-out part;
    a model that records data of its own (a path, a hub name) falls back to the task's default built-in set, and
    the recorded name is never read."""
    import dataclasses

    from gmlp_core.data.canvas import VAL_PLACEMENTS
    from gmlp_core.evaluate import built_in_data

    zoo = load_checkpoint(DEFAULT_ROOT / "mlm-gmlp", device="cpu").config
    assert built_in_data(zoo) == zoo.extra["data"] == "python-docs"
    own = dataclasses.replace(zoo, extra={**zoo.extra, "data": "/home/someone/corpus.txt"})
    assert built_in_data(own) == "embedded"
    canvas = preset("gmlp-tiny-vision", image_size=16, patch_size=2, in_channels=1, num_classes=10)
    canvas = dataclasses.replace(canvas, extra={"data": "digits-canvas"})
    held_out = iv.validation_data(build_model(canvas).eval())
    assert held_out.examples == 360 * VAL_PLACEMENTS
    assert held_out.batches[0][0].shape[1:] == (1, 16, 16)


def test_vision_probe_and_band_sweep(capsys: pytest.CaptureFixture) -> None:
    folder = DEFAULT_ROOT / "vision-gmlp"
    assert main(["probe", str(folder), "--intervention", "toeplitz", "--layers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["accuracy_after"] <= 1 and out["accuracy_before"] > 0.9 and out["examples"] == 360
    model = load_checkpoint(folder, device="cpu")
    sweep = iv.band_sweep(model, iv.validation_data(model), ks=[0, 7])
    assert len(sweep) == 2 * model.config.n_layers
    widest = sweep[sweep.k == 7]  # k = 7 covers the whole 8 x 8 grid: nothing is cut
    assert (widest.value == widest.unedited).all()


@pytest.mark.parametrize("name", ["amlp-tiny-mlm", "transformer-tiny-mlm"])
def test_knockouts_cover_every_unit_once(name: str) -> None:
    model = _model(name)
    ids = _ids(model.config)
    labels = torch.full_like(ids, -100)
    labels[:, ::3] = ids[:, ::3]
    held_out = iv.HeldOut("mlm", [(ids, labels)])
    table = iv.knockouts(model, held_out)
    cfg = model.config
    per_layer = cfg.n_heads if cfg.arch == "transformer" else 2  # heads; or W and the tiny attention
    assert len(table) == cfg.n_layers * per_layer and table.unit.is_unique
    assert (table.value != table.unedited).all(), "every knock-out changes the perplexity"

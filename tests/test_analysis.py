"""gmlp_core.analysis: spatial-weight scores against known baselines, attention and gates, token influence
(the architecture decides where mixing can happen), and captum attributions (completeness, no side effects)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gmlp_core import build_model, preset
from gmlp_core.analysis import attention as att
from gmlp_core.analysis import attribution as attr
from gmlp_core.analysis import spatial as sp
from gmlp_core.analysis.influence import layer_influence, token_influence


def _model(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model(preset(name, **overrides)).eval()


def _ids(cfg, seed: int = 0, n_real: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, cfg.vocab_size, (1, cfg.seq_len), generator=g)
    if n_real is not None:
        ids[0, n_real:] = 0
    return ids


def _banded_toeplitz(n: int, width: int = 2) -> torch.Tensor:
    i = torch.arange(n)
    d = i[:, None] - i[None, :]
    return torch.exp(-(d.float() ** 2) / 2) * (d.abs() <= width)


def _set_w(model, make) -> None:
    """Overwrite every layer's W (dense spatial weights) through the state dict."""
    state = model.state_dict()
    for layer in range(model.config.n_layers):
        state[f"blocks.{layer}.sgu.spatial.weight"] = make(layer)
    model.load_state_dict(state)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


# ------------------------------------------------------------------------------------------------
# spatial


def test_toeplitz_decomposition_is_the_diagonal_mean_projection() -> None:
    w = torch.randn(12, 12, generator=torch.Generator().manual_seed(0))
    t, r = sp.toeplitz_decomposition(w)
    assert torch.allclose(t + r, w)
    for k in range(-11, 12):  # T constant on each diagonal, equal to W's diagonal mean; R's diagonals sum to 0
        assert torch.allclose(t.diagonal(k), w.diagonal(k).mean().expand(12 - abs(k)), atol=1e-6)
        assert abs(float(r.diagonal(k).sum())) < 1e-5
    other = t + 0.1 * sp.toeplitz_decomposition(torch.randn(12, 12))[0]  # any other Toeplitz matrix is farther
    assert (w - other).norm() > r.norm()
    band = _banded_toeplitz(12)
    t2, r2 = sp.toeplitz_decomposition(band)
    assert torch.allclose(t2, band) and r2.abs().max() < 1e-6


def test_shift_invariance_baselines() -> None:
    n = 32
    g = torch.Generator().manual_seed(1)
    random_scores = [sp.shift_invariance(torch.randn(n, n, generator=g)) for _ in range(5)]
    expected = (2 * n - 2) / (n * n - 1)  # i.i.d. W: the Toeplitz part holds ~(offsets - 1)/(entries - 1) of variance
    assert all(0 <= s < 0.15 for s in random_scores)
    assert abs(np.mean(random_scores) - expected) < 0.03
    assert sp.shift_invariance(_banded_toeplitz(n)) > 0.999
    noisy = _banded_toeplitz(n) + 0.05 * torch.randn(n, n, generator=g)
    assert 0.5 < sp.shift_invariance(noisy) < 0.999
    assert sp.shift_invariance(torch.full((n, n), 3.0)) == 1.0


def test_grid_offsets_recognise_a_2d_convolution() -> None:
    grid = 6
    n = grid * grid
    kernel = torch.tensor([[0.1, 0.5, 0.1], [0.5, 1.0, 0.5], [0.1, 0.5, 0.1]])
    w = torch.zeros(n, n)
    for i in range(n):  # W[i, j] = kernel[offset] for the 3 x 3 neighbourhood of patch i on the grid
        r, c = divmod(i, grid)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if 0 <= r + dr < grid and 0 <= c + dc < grid:
                    w[i, (r + dr) * grid + c + dc] = kernel[dr + 1, dc + 1]
    assert sp.shift_invariance(w, grid=grid) > 0.999
    assert sp.shift_invariance(w) < 0.97  # in 1D the grid's row breaks make it not quite Toeplitz
    assert sp.locality(w, k=1, grid=grid) == pytest.approx(1.0)
    assert sp.locality(w, k=1) < 0.8  # vertical neighbours are `grid` apart in 1D
    images = sp.rows_as_images(w, grid)
    r, c = 2, 3
    assert torch.allclose(images[r * grid + c, r - 1 : r + 2, c - 1 : c + 2], kernel)
    with pytest.raises(ValueError, match="grid"):
        sp.rows_as_images(w, 5)


def test_locality_and_offset_baselines() -> None:
    n, k = 40, 2
    band = _banded_toeplitz(n, width=k)
    assert sp.locality(band, k=k) == pytest.approx(1.0)
    assert sp.locality(band, k=0) < 0.6
    random = torch.randn(n, n, generator=torch.Generator().manual_seed(2))
    assert abs(sp.locality(random, k=k) - sp.band_fraction(n, k)) < 0.05
    assert sp.band_fraction(n, k) == pytest.approx((n * (2 * k + 1) - k * (k + 1)) / n**2)
    assert sp.mean_abs_offset(torch.eye(n)) == 0.0
    shift = torch.diag(torch.ones(n - 3), -3)
    assert sp.mean_abs_offset(shift) == pytest.approx(3.0)
    assert sp.mean_abs_offset(random) > 10 * sp.mean_abs_offset(band)
    assert math.isnan(sp.locality(torch.zeros(4, 4)))
    with pytest.raises(ValueError, match="square"):
        sp.locality(torch.zeros(3, 4))


@pytest.mark.parametrize("name", ["gmlp-tiny-mlm", "amlp-tiny-vision"])
def test_spatial_summary_and_profiles(name: str) -> None:
    model = _model(name)
    n = model.config.seq_len
    summary = sp.spatial_summary(model)
    assert list(summary["layer"]) == list(range(model.config.n_layers))
    assert summary[["locality", "shift_invariance"]].apply(lambda s: s.between(0, 1)).all().all()
    # At init W is uniform noise: not local beyond chance, not shift-invariant
    assert (summary["locality"] < summary["locality_random"] + 0.25).all()
    assert (summary["shift_invariance"] < 0.5).all()
    grid = model.config.spatial_grid
    _set_w(model, lambda layer: _band(n, grid))  # local and shift-invariant, as a trained W tends to be
    trained = sp.spatial_summary(model)
    assert (trained["locality"] > 0.99).all() and (trained["shift_invariance"] > 0.9).all()
    profiles = sp.middle_row_profiles(model)
    weights = model.spatial_weights()
    for layer, w in enumerate(weights):
        rows = profiles[profiles["layer"] == layer]
        assert rows["offset"].tolist() == list(range(-(n // 2), n - n // 2))
        np.testing.assert_allclose(rows["weight"].to_numpy(), w[n // 2].numpy())


@pytest.mark.parametrize("name", ["gmlp-tiny-mlm", "gmlp-tiny-vision", "amlp-tiny-vision"])
def test_spatial_report_draws_the_decomposition_its_scores_measure(name: str) -> None:
    model = _model(name)
    cfg = model.config
    report = sp.spatial_report(model)
    assert report.grid == (cfg.image_size // cfg.patch_size if cfg.task == "vision" else None)
    assert report.weights.shape == (cfg.n_layers, cfg.seq_len, cfg.seq_len)
    np.testing.assert_allclose(report.toeplitz + report.residual, report.weights, atol=1e-6)
    for layer in range(cfg.n_layers):
        w = torch.from_numpy(report.weights[layer])
        t, _ = sp.toeplitz_decomposition(w, report.grid)
        np.testing.assert_allclose(report.toeplitz[layer], t.numpy(), atol=1e-7)
        # the score shown beside the picture is 1 - ||R||^2 / ||W - mean||^2 of the drawn parts
        centred = ((report.weights[layer] - report.weights[layer].mean()) ** 2).sum()
        drawn = 1.0 - (report.residual[layer] ** 2).sum() / centred
        assert report.summary.loc[layer, "shift_invariance"] == pytest.approx(drawn, abs=1e-5)
    if cfg.task == "vision":  # the 1-D decomposition would be a different picture
        one_d, _ = sp.toeplitz_decomposition(torch.from_numpy(report.weights[0]))
        assert not np.allclose(report.toeplitz[0], one_d.numpy(), atol=1e-6)


def _band(n: int, grid: int | None) -> torch.Tensor:
    return (sp.distances(n, grid) <= sp.default_band(n, grid)).float()


@pytest.mark.parametrize(
    ("name", "overrides"), [("transformer-tiny-mlm", {}), ("gmlp-tiny-mlm", {"gating": "identity"})]
)
def test_spatial_summary_refuses_models_without_w(name: str, overrides: dict) -> None:
    with pytest.raises(ValueError, match="no spatial weights"):
        sp.spatial_summary(_model(name, **overrides))


# ------------------------------------------------------------------------------------------------
# attention and gates


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", ["transformer-tiny-mlm", "amlp-tiny-mlm", "amlp-tiny-vision"])
def test_attention_maps(name: str, causal: bool) -> None:
    model = _model(name, causal=causal) if "mlm" in name else _model(name)
    cfg = model.config
    inputs = {"input_ids": _ids(cfg)} if cfg.task == "mlm" else {"pixel_values": torch.rand(1, 1, 8, 8)}
    maps = att.attention_maps(model, **inputs)
    heads = cfg.n_heads if cfg.arch == "transformer" else 1
    assert len(maps) == cfg.n_layers and all(m.shape == (1, heads, cfg.seq_len, cfg.seq_len) for m in maps)
    assert all(torch.allclose(m.sum(-1), torch.ones(1, heads, cfg.seq_len), atol=1e-5) for m in maps)
    if cfg.task == "mlm" and causal:
        assert all(torch.equal(m.triu(1), torch.zeros_like(m)) for m in maps)
    dist = att.attention_distance(maps)
    assert len(dist) == cfg.n_layers * heads and (dist["mean_distance"] >= 0).all()


def test_attention_distance_of_uniform_attention() -> None:
    length = 5
    uniform = torch.full((1, 1, length, length), 1 / length)
    i = torch.arange(length)
    want = (i[:, None] - i[None, :]).abs().float().mean()
    assert att.attention_distance([uniform])["mean_distance"].item() == pytest.approx(float(want))


def test_gate_maps_and_refusals() -> None:
    model = _model("gmlp-tiny-mlm")
    cfg = model.config
    gates = att.gate_maps(model, input_ids=_ids(cfg)[0])  # a 1D id sequence is a batch of one
    assert len(gates) == cfg.n_layers and all(g.shape == (1, cfg.seq_len, cfg.gate_dim) for g in gates)
    # at init W ~ 0 and b = 1, so the gate is ~1 everywhere
    assert all((g - 1).abs().max() < 0.2 for g in gates)
    _set_w(model, lambda layer: torch.zeros(cfg.seq_len, cfg.seq_len))
    assert all(torch.allclose(g, torch.ones_like(g)) for g in att.gate_maps(model, input_ids=_ids(cfg)))
    with pytest.raises(ValueError, match="no attention"):
        att.attention_maps(model, input_ids=_ids(cfg))
    with pytest.raises(ValueError, match="no spatial gate"):
        att.gate_maps(_model("transformer-tiny-mlm"), input_ids=_ids(cfg))
    with pytest.raises(ValueError, match="pixel_values"):
        att.gate_maps(model, pixel_values=torch.rand(1, 1, 8, 8))


# ------------------------------------------------------------------------------------------------
# token influence


def test_influence_matches_a_brute_force_jacobian() -> None:
    model = _model("amlp-tiny-mlm", d_model=16, d_ffn=32, attn_dim=8, seq_len=8)
    ids = _ids(model.config)
    with torch.no_grad():
        emb = model(input_ids=ids, output_hidden_states=True).hidden_states[0]
    jac = torch.autograd.functional.jacobian(
        lambda e: model(inputs_embeds=e, output_hidden_states=True).hidden_states[-1], emb
    )[0, :, :, 0]  # (L, d, L, d)
    want = jac.pow(2).sum(dim=(1, 3)).sqrt()
    got = token_influence(model, input_ids=ids, exact=True)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    estimate = token_influence(model, input_ids=ids, n_probes=64)
    assert ((estimate - want).norm() / want.norm()) < 0.15


def test_influence_rows_subset() -> None:
    model = _model("gmlp-tiny-mlm")
    ids = _ids(model.config, n_real=6)
    for exact in (True, False):
        full = token_influence(model, input_ids=ids, exact=exact)
        part = token_influence(model, input_ids=ids, exact=exact, rows=range(6))
        torch.testing.assert_close(part[:6], full[:6], rtol=1e-5, atol=1e-7)
        assert torch.isnan(part[6:]).all()
    with pytest.raises(ValueError, match="rows"):
        token_influence(model, input_ids=ids, rows=[16])


def test_influence_is_exactly_diagonal_without_token_mixing() -> None:
    model = _model("gmlp-tiny-mlm", gating="identity")
    for exact in (True, False):
        m = token_influence(model, input_ids=_ids(model.config), exact=exact)
        assert torch.equal(m - torch.diag(m.diagonal()), torch.zeros_like(m))
        assert (m.diagonal() > 0).all()


@pytest.mark.parametrize("name", ["gmlp-tiny-mlm", "amlp-tiny-mlm", "transformer-tiny-mlm"])
def test_influence_is_lower_triangular_when_causal(name: str) -> None:
    model = _model(name, causal=True)
    if model.config.arch != "transformer":  # give W weight everywhere, so only the causal mask can zero it
        _set_w(model, lambda layer: torch.full((model.config.seq_len,) * 2, 0.3))
    for exact in (True, False):
        m = token_influence(model, input_ids=_ids(model.config, n_real=12), exact=exact)
        assert torch.equal(m.triu(1), torch.zeros_like(m))
        assert (m.tril(-1) > 0).sum() > 0.9 * m.shape[0] * (m.shape[0] - 1) / 2


def test_influence_follows_w() -> None:
    model = _model("gmlp-tiny-mlm")
    n = model.config.seq_len
    at_init = token_influence(model, input_ids=_ids(model.config))
    off = at_init - torch.diag(at_init.diagonal())
    assert off.abs().max() < 0.05 * at_init.diagonal().min()  # W ~ 0: nearly diagonal
    _set_w(model, lambda layer: torch.diag(torch.ones(n - 1), -1))  # every position reads its left neighbour
    shifted = token_influence(model, input_ids=_ids(model.config))
    assert (shifted.diagonal(-1) > 0.1 * shifted.diagonal()[1:]).all()
    assert torch.equal(shifted.triu(1), torch.zeros_like(shifted))  # 2 layers: reach 2 to the left, none right
    assert torch.equal(shifted.tril(-3), torch.zeros_like(shifted))


@pytest.mark.parametrize("name", ["gmlp-tiny-mlm", "amlp-tiny-mlm", "transformer-tiny-mlm"])
def test_layer_influence_matches_a_brute_force_jacobian_of_one_block(name: str) -> None:
    model = _model(name, d_model=16, d_ffn=32, seq_len=8, **({"attn_dim": 8} if name.startswith("amlp") else {}))
    ids = _ids(model.config)
    layer = model.config.n_layers - 1
    with torch.no_grad():
        x = model(input_ids=ids, output_hidden_states=True).hidden_states[layer]
    block = model.blocks[layer]
    jac = torch.autograd.functional.jacobian(lambda h: block(h, None, False, False)[0] - h, x)[0, :, :, 0]
    want = jac.pow(2).sum(dim=(1, 3)).sqrt()
    torch.testing.assert_close(layer_influence(model, layer, input_ids=ids, exact=True), want, rtol=1e-4, atol=1e-6)
    estimate = layer_influence(model, layer, input_ids=ids, n_probes=64)
    assert ((estimate - want).norm() / want.norm()) < 0.15


def test_layer_influence_of_gmlp_mixes_only_where_w_is_nonzero() -> None:
    """The spatial gating unit is the only token mixing: output i depends on input j != i exactly when W_ij != 0,
    and causal W leaks nothing from the future."""
    model = _model("gmlp-tiny-mlm")
    n = model.config.seq_len
    band = (torch.arange(n)[:, None] - torch.arange(n)[None, :]).abs() <= 2
    pattern = torch.where(band & (torch.rand(n, n, generator=torch.Generator().manual_seed(1)) > 0.3), 0.3, 0.0)
    _set_w(model, lambda layer: pattern)
    ids = _ids(model.config, n_real=12)
    for layer in range(model.config.n_layers):
        for exact in (True, False):
            m = layer_influence(model, layer, input_ids=ids, exact=exact)
            off = ~torch.eye(n, dtype=torch.bool)
            assert torch.equal(m[off & (pattern == 0)], torch.zeros_like(m[off & (pattern == 0)]))
            assert (m[off & (pattern != 0)] > 0).all()
    causal = _model("gmlp-tiny-mlm", causal=True)
    _set_w(causal, lambda layer: torch.full((n, n), 0.3))
    m = layer_influence(causal, 0, input_ids=ids, exact=True)
    assert torch.equal(m.triu(1), torch.zeros_like(m)) and (m[torch.ones(n, n).tril(-1).bool()] > 0).all()
    with pytest.raises(ValueError, match="layer"):
        layer_influence(model, model.config.n_layers, input_ids=ids)


def test_influence_vision_shorter_transformer_input_and_no_side_effects() -> None:
    vision = _model("gmlp-tiny-vision")
    m = token_influence(vision, pixel_values=torch.rand(1, 1, 8, 8))
    assert m.shape == (16, 16) and torch.isfinite(m).all()
    model = _model("transformer-tiny-mlm")
    before, hooks = _state(model), _hooks(model)
    m = token_influence(model, input_ids=_ids(model.config)[:, :5])  # a Transformer takes fewer than seq_len
    assert m.shape == (5, 5) and (m > 0).all()
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before) and _hooks(model) == hooks
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="batch of 1"):
        token_influence(model, input_ids=_ids(model.config).repeat(2, 1))


# ------------------------------------------------------------------------------------------------
# attribution


@pytest.mark.parametrize("name", ["gmlp-tiny-mlm", "amlp-tiny-mlm", "transformer-tiny-mlm"])
def test_integrated_gradients_mlm(name: str) -> None:
    model = _model(name, seed=3)
    ids = _ids(model.config, seed=3, n_real=12)
    ids[0, 4] = 4  # [MASK]
    before, hooks = _state(model), _hooks(model)
    with torch.no_grad():
        plain = model(input_ids=ids).logits
    ig, gxi = attr.explain_mlm(model, ids, 4, 7, n_steps=64, internal_batch_size=16)
    assert ig.method == "Integrated Gradients" and gxi.method == "Gradient x Input"
    assert ig.scores.shape == gxi.scores.shape == (model.config.seq_len,)
    # completeness: attributions sum to the change of the score, up to the reported delta
    assert ig.scores.sum() - ig.score_change == pytest.approx(ig.delta, abs=1e-5)
    assert abs(ig.delta) < 0.05 * max(abs(ig.score_change), 1e-3)
    # padding and the explained [MASK] equal the baseline there: no attribution at all
    assert np.all(ig.scores[12:] == 0) and ig.scores[4] == 0
    assert list(ig.table.columns) == ["position", "token", "token_id", "attribution"]
    assert ig.table["token_id"].tolist() == ids[0].tolist()
    # no side effects: same parameters, no hooks left, no gradients kept, same outputs
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before) and _hooks(model) == hooks
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, plain)


def test_gradient_x_input_mlm_by_hand() -> None:
    model = _model("gmlp-tiny-mlm", seed=4)
    ids = _ids(model.config, seed=4)
    ids[0, 2] = 4
    result = attr.gradient_x_input_mlm(model, ids, 2, 9, score="logit")
    emb = model.embed.token(ids).detach().requires_grad_(True)
    logit = model(inputs_embeds=emb).logits[0, 2, 9]
    (grad,) = torch.autograd.grad(logit, emb)
    np.testing.assert_allclose(result.scores, (grad * emb).sum(-1)[0].detach().numpy(), rtol=1e-4, atol=1e-7)
    assert result.delta is None


def test_attribution_text_input_tokenizer_and_errors() -> None:
    from gmlp_core.data.tokenizer import train_tokenizer

    tok = train_tokenizer(["the loop ends when the value is returned ."] * 3, 200)
    model = _model("transformer-tiny-mlm", vocab_size=tok.get_vocab_size())
    ig = attr.integrated_gradients_mlm(model, "the [MASK] ends", 1, 7, tokenizer=tok, n_steps=8)
    assert ig.table["token"].tolist()[:3] == ["the", "[MASK]", "ends"]
    with pytest.raises(ValueError, match="tokenizer"):
        attr.integrated_gradients_mlm(model, "the [MASK]", 1, 7)
    with pytest.raises(ValueError, match="outside"):
        attr.gradient_x_input_mlm(model, _ids(model.config), 99, 7)
    with pytest.raises(ValueError, match="vocabulary"):
        attr.gradient_x_input_mlm(model, _ids(model.config), 1, 10_000)
    with pytest.raises(ValueError, match="score"):
        attr.gradient_x_input_mlm(model, _ids(model.config), 1, 7, score="softmax")
    with pytest.raises(ValueError, match="vision model"):
        attr.explain_mlm(_model("gmlp-tiny-vision"), _ids(model.config), 1, 7)


@pytest.mark.parametrize("name", ["gmlp-tiny-vision", "transformer-tiny-vision"])
def test_image_attributions(name: str) -> None:
    model = _model(name, seed=5)
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    x[..., :2, :] = 0  # black rows equal the baseline: zero attribution there
    before = _state(model)
    ig, gxi = attr.explain_image(model, x, 3, n_steps=64)
    assert ig.scores.shape == gxi.scores.shape == (8, 8)
    assert ig.scores.sum() - ig.score_change == pytest.approx(ig.delta, abs=1e-5)
    assert abs(ig.delta) < 0.1 * max(abs(ig.score_change), 1e-3)
    assert np.all(ig.scores[:2] == 0) and np.all(gxi.scores[:2] == 0)
    assert len(ig.table) == 64 and set(ig.table.columns) == {"row", "column", "attribution"}
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before) and all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="target class"):
        attr.explain_image(model, x, 10)
    with pytest.raises(ValueError, match="shape"):
        attr.explain_image(model, torch.rand(2, 1, 8, 8), 1)


def test_estimate_error_measures_only_the_computed_entries() -> None:
    from gmlp_core.analysis.influence import estimate_error, influence_method, influence_precision

    exact = torch.tensor([[2.0, 1.0, float("nan")], [0.0, 4.0, float("nan")], [1.0, 1.0, float("nan")]])
    assert estimate_error(exact, exact) == {"relative_error": 0.0, "max_error": 0.0}
    off = exact.clone()
    off[1, 1] = 3.0  # one entry off by 1; ||exact||_F = sqrt(4 + 1 + 16 + 1 + 1) over the computed entries
    error = estimate_error(off, exact)
    assert error["relative_error"] == pytest.approx(1 / 23**0.5) and error["max_error"] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        estimate_error(exact[:2], exact)
    assert influence_precision("auto", True, torch.device("cpu")) == "fp32"  # exact maps are always float32
    assert influence_precision("fp32", False, torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError):
        influence_precision("fp16", False, torch.device("cpu"))
    assert influence_method(16, 32) == "exact"  # the tiny presets: L * d within EXACT_LIMIT
    assert influence_method(64, 128, precision="fp32") == "estimated with 16 random probes per position (fp32)"

"""The math of the models against the paper's definitions, on tiny configs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gmlp_core import IGNORE_INDEX, ModelConfig, build_model, count_parameters, flops_per_token, list_presets, preset
from gmlp_core.models import preset_info
from gmlp_core.models.archs import ARCH_SPECS, ARCHS
from gmlp_core.reference import PAPER_SHAPES, SCALING_PAIRS, PaperShape

TINY = list_presets(group="tiny")
CAUSAL_ARCHS = [a for a in ARCHS if ARCH_SPECS[a].causal]


def _inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if cfg.task == "mlm":
        ids = torch.randint(5, cfg.vocab_size, (batch, cfg.seq_len), generator=g)
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[:, ::3] = ids[:, ::3]
        return {"input_ids": ids, "labels": labels}
    pixels = torch.rand(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
    return {"pixel_values": pixels, "labels": torch.randint(0, cfg.num_classes, (batch,), generator=g)}


def _features(model: torch.nn.Module, cfg: ModelConfig, **inputs: torch.Tensor) -> torch.Tensor:
    """The last hidden state (B, L, d_model): where token mixing is visible per position."""
    inputs = {k: v for k, v in inputs.items() if k != "labels"}
    return model(**inputs, output_hidden_states=True).hidden_states[-1]


def test_presets_registry_lists_every_group() -> None:
    assert {preset_info(n).group for n in list_presets()} >= {"tiny", "demo", "paper", "bench"}
    assert preset("gmlp-tiny-mlm", n_layers=3).n_layers == 3
    with pytest.raises(KeyError, match="unknown preset"):
        preset("no-such-model")


@pytest.mark.parametrize("name", TINY)
def test_shapes_gradients_and_no_nan(name: str) -> None:
    cfg = preset(name)
    torch.manual_seed(0)
    model = build_model(cfg)
    # Move W and b off their init so that their gradients are not trivially tied to the identity gate.
    inputs = _inputs(cfg)
    out = model(**inputs, output_attentions=True, output_hidden_states=True, output_logits=True)
    if cfg.task == "mlm":
        assert out.logits.shape == (2, cfg.seq_len, cfg.vocab_size)
        n_pred = int((inputs["labels"] != IGNORE_INDEX).sum())
        assert out.masked_logits.shape == (n_pred, cfg.vocab_size)
    else:
        assert out.logits.shape == (2, cfg.num_classes)
    assert len(out.hidden_states) == cfg.n_layers + 1
    heads = {"gmlp": 0, "amlp": 1, "transformer": cfg.n_heads, "mixer": 0}[cfg.arch]
    assert cfg.attention_heads == heads
    if not heads:
        assert out.attentions is None
    else:
        assert len(out.attentions) == cfg.n_layers
        assert out.attentions[0].shape == (2, heads, cfg.seq_len, cfg.seq_len)
        torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, heads, cfg.seq_len, cfg.seq_len)[..., 0])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


def test_mlm_loss_skips_unpredicted_positions_but_matches_full_computation() -> None:
    cfg = preset("gmlp-tiny-mlm")
    model = build_model(cfg).eval()
    inputs = _inputs(cfg)
    out = model(**inputs)
    assert out.logits is None, "vocabulary logits for every position must not be computed when labels are given"
    full = model(input_ids=inputs["input_ids"]).logits
    expected = F.cross_entropy(
        full.reshape(-1, cfg.vocab_size), inputs["labels"].reshape(-1), ignore_index=IGNORE_INDEX
    )
    torch.testing.assert_close(out.loss, expected)
    none = torch.full_like(inputs["labels"], IGNORE_INDEX)
    assert model(input_ids=inputs["input_ids"], labels=none).loss.item() == 0.0


@pytest.mark.parametrize("name", TINY)
def test_trunk_is_forward_without_the_head(name: str) -> None:
    cfg = preset(name)
    model = build_model(cfg).eval()
    inputs = {k: v for k, v in _inputs(cfg).items() if k != "labels"}
    with torch.no_grad():
        trunk = model.trunk(**inputs, output_hidden_states=True)
        full = model(**inputs)
    assert trunk.logits is None and trunk.loss is None and trunk.masked_logits is None
    assert trunk.last_hidden_state.shape == (2, cfg.seq_len, cfg.d_model)
    assert torch.equal(trunk.last_hidden_state, model.norm(trunk.hidden_states[-1]))
    if cfg.task == "mlm":
        assert torch.allclose(full.logits, model.decode(trunk.last_hidden_state), atol=1e-6)
    else:
        assert torch.allclose(full.logits, model.head(trunk.last_hidden_state.mean(dim=1)), atol=1e-6)


def test_gmlp_at_init_is_an_ffn_with_almost_no_token_mixing() -> None:
    cfg = preset("gmlp-tiny-mlm")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    ids = _inputs(cfg, batch=1)["input_ids"]
    j = 7
    changed = ids.clone()
    changed[0, j] = (ids[0, j] + 1) % cfg.vocab_size
    with torch.no_grad():
        delta = (_features(model, cfg, input_ids=changed) - _features(model, cfg, input_ids=ids)).norm(dim=-1)[0]
    at_j = delta[j]
    elsewhere = torch.cat([delta[:j], delta[j + 1 :]]).max()
    assert at_j > 1e-2
    assert elsewhere < at_j * 1e-3, f"token mixing at init: {elsewhere:.2e} elsewhere vs {at_j:.2e} at j"


def test_gmlp_at_init_each_spatial_gate_is_identity() -> None:
    cfg = preset("gmlp-tiny-mlm")
    model = build_model(cfg)
    for w, b in zip(model.spatial_weights(), model.spatial_biases(), strict=True):
        assert w.shape == (cfg.seq_len, cfg.seq_len)
        assert w.abs().max() <= cfg.spatial_init_eps / cfg.seq_len
        torch.testing.assert_close(b, torch.ones(cfg.seq_len))


@pytest.mark.parametrize("arch", CAUSAL_ARCHS)
@pytest.mark.parametrize("task", ("mlm", "vision"))
def test_causal_models_leak_no_future(arch: str, task: str) -> None:
    cfg = preset(f"{arch}-tiny-{task}", causal=True)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    # Train-like weights: make W and the biases large so that mixing would be visible if it leaked.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    inputs = {k: v for k, v in _inputs(cfg, batch=1).items() if k != "labels"}
    j = cfg.seq_len // 2
    changed = {k: v.clone() for k, v in inputs.items()}
    if task == "mlm":
        changed["input_ids"][0, j] = (inputs["input_ids"][0, j] + 1) % cfg.vocab_size
    else:
        p, g = cfg.patch_size, cfg.grid_size
        r, c = divmod(j, g)
        changed["pixel_values"][0, :, r * p : (r + 1) * p, c * p : (c + 1) * p] += 1.0
    with torch.no_grad():
        before = _features(model, cfg, **inputs)[0]
        after = _features(model, cfg, **changed)[0]
    assert torch.equal(before[:j], after[:j]), "a causal model changed outputs before the perturbed token"
    assert not torch.allclose(before[j:], after[j:]), "the perturbation should change the later positions"


def test_causal_spatial_weights_are_lower_triangular() -> None:
    model = build_model(preset("gmlp-tiny-mlm", causal=True))
    with torch.no_grad():
        for block in model.blocks:
            block.sgu.spatial.weight.normal_()
    for w in model.spatial_weights():
        assert torch.equal(w, w.tril())
        lower = torch.ones_like(w, dtype=torch.bool).tril()
        assert (w[lower] != 0).all(), "the causal mask must keep every weight on and below the diagonal"


def _one_block_reference(cfg: ModelConfig) -> None:
    """Compare a block against the paper's formula written out directly."""
    torch.manual_seed(1)
    model = build_model(cfg)
    block = model.blocks[0]
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    x = torch.randn(2, cfg.seq_len, cfg.d_model)
    got, _, gate = block(x, output_gates=True)
    h = F.layer_norm(x, (cfg.d_model,), block.norm.weight, block.norm.bias, cfg.layer_norm_eps)
    z = F.gelu(h @ block.proj_in.weight.T + block.proj_in.bias)
    w = block.sgu.spatial.matrix() if cfg.gating != "identity" else None
    b = block.sgu.spatial.bias if cfg.gating != "identity" else None

    def spatial(v: torch.Tensor) -> torch.Tensor:
        vn = F.layer_norm(v, (v.shape[-1],), block.sgu.norm.weight, block.sgu.norm.bias, cfg.layer_norm_eps)
        out = torch.stack([w @ vn[i] for i in range(vn.shape[0])]) + b[None, :, None]
        if cfg.arch == "amlp":
            ta = block.tiny_attn
            q, k, v_ = (h @ ta.qkv.weight.T + ta.qkv.bias).split(cfg.attn_dim, dim=-1)
            a = torch.softmax(q @ k.transpose(1, 2) / cfg.attn_dim**0.5, dim=-1)
            out = out + (a @ v_) @ ta.proj.weight.T + ta.proj.bias
        return out

    if cfg.gating == "split":
        z1, z2 = z[..., : cfg.d_ffn // 2], z[..., cfg.d_ffn // 2 :]
        s = z1 * spatial(z2)
    elif cfg.gating == "multiplicative":
        s = z * spatial(z)
    elif cfg.gating == "additive":
        s = z + spatial(z)
    elif cfg.gating == "linear":
        s = spatial(z)
    else:
        s = z
        assert gate is None
    expected = x + s @ block.proj_out.weight.T + block.proj_out.bias
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("gating", ("split", "multiplicative", "additive", "linear", "identity"))
@pytest.mark.parametrize("arch", ("gmlp", "amlp"))
def test_gating_variants_compute_the_papers_formulas(gating: str, arch: str) -> None:
    _one_block_reference(preset(f"{arch}-tiny-mlm", gating=gating))


def test_gating_variant_widths() -> None:
    split = preset("gmlp-tiny-mlm")
    mult = preset("gmlp-tiny-mlm", gating="multiplicative")
    assert split.gate_dim == split.d_ffn // 2
    assert build_model(split).blocks[0].proj_out.in_features == split.d_ffn // 2
    assert build_model(mult).blocks[0].proj_out.in_features == mult.d_ffn


def test_toeplitz_spatial_weights_are_shift_invariant_with_2n_minus_1_weights() -> None:
    cfg = preset("gmlp-tiny-mlm", spatial="toeplitz")
    model = build_model(cfg)
    n = cfg.seq_len
    with torch.no_grad():
        for block in model.blocks:
            assert block.sgu.spatial.weight.shape == (2 * n - 1,)
            block.sgu.spatial.weight.normal_()
    for w in model.spatial_weights():
        for offset in range(-n + 1, n):
            diag = torch.diagonal(w, offset)
            assert torch.equal(diag, diag[0].expand_as(diag)), f"diagonal {offset} is not constant"
        assert torch.unique(w).numel() == 2 * n - 1
    dense = count_parameters(preset("gmlp-tiny-mlm"))
    assert dense - count_parameters(cfg) == cfg.n_layers * (n * n - (2 * n - 1))
    _one_block_reference(cfg)
    _one_block_reference(cfg.replace(causal=True))


def test_gmlp_uses_no_position_embeddings_and_transformer_does() -> None:
    names = {n for n, _ in build_model(preset("gmlp-tiny-mlm")).named_parameters()}
    assert not any("position" in n for n in names)
    names = {n for n, _ in build_model(preset("transformer-tiny-mlm")).named_parameters()}
    assert "embed.position.weight" in names


def test_spatial_weights_error_for_transformer_and_identity_gating() -> None:
    with pytest.raises(ValueError, match="no spatial weights"):
        build_model(preset("transformer-tiny-mlm")).spatial_weights()
    with pytest.raises(ValueError, match="identity gating"):
        build_model(preset("gmlp-tiny-mlm", gating="identity")).spatial_weights()
    assert len(build_model(preset("gmlp-tiny-mlm", gating="linear")).spatial_weights()) == 2


def test_linear_gating_mixes_tokens_but_its_output_ignores_z_at_init() -> None:
    """The paper's linear variant s(Z) = W LN(Z) + b: at init (W ~ 0, b = 1) it is the constant b."""
    cfg = preset("gmlp-tiny-mlm", gating="linear")
    block = build_model(cfg).blocks[0]
    z = torch.randn(2, cfg.seq_len, cfg.d_ffn)
    s, gate = block.sgu(z)
    assert s is gate and s.shape == z.shape
    torch.testing.assert_close(s, torch.ones_like(s), atol=2e-3, rtol=0)


def test_identity_gating_has_no_token_mixing_at_all() -> None:
    cfg = preset("gmlp-tiny-mlm", gating="identity")
    model = build_model(cfg).eval()
    ids = _inputs(cfg, batch=1)["input_ids"]
    changed = ids.clone()
    changed[0, 3] += 1
    with torch.no_grad():
        a, b = _features(model, cfg, input_ids=ids)[0], _features(model, cfg, input_ids=changed)[0]
    keep = torch.arange(cfg.seq_len) != 3
    assert torch.equal(a[keep], b[keep])


def test_attention_mask_hides_padding_from_attention() -> None:
    cfg = preset("transformer-tiny-mlm")
    model = build_model(cfg).eval()
    ids = _inputs(cfg, batch=1)["input_ids"]
    mask = torch.ones_like(ids)
    mask[0, -4:] = 0
    changed = ids.clone()
    changed[0, -1] += 1
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1][0, :-4]
        b = model(input_ids=changed, attention_mask=mask, output_hidden_states=True).hidden_states[-1][0, :-4]
    torch.testing.assert_close(a, b)


def test_fused_and_explicit_attention_agree() -> None:
    cfg = preset("transformer-tiny-mlm", causal=True)
    model = build_model(cfg).eval()
    ids = _inputs(cfg)["input_ids"]
    with torch.no_grad():
        fused = model(input_ids=ids).logits
        explicit = model(input_ids=ids, output_attentions=True).logits
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"arch": "rnn"}, "arch"),
        ({"task": "speech"}, "task"),
        ({"gating": "sigmoid"}, "gating"),
        ({"d_model": 0}, "d_model"),
        ({"d_ffn": 33}, "even"),
        ({"arch": "transformer", "n_heads": 3}, "divisible"),
        ({"dropout": 1.5}, "dropout"),
        ({"task": "vision", "image_size": 10, "patch_size": 3}, "multiple"),
    ],
)
def test_config_validation_messages(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


def test_config_json_round_trip_and_unknown_fields() -> None:
    for name in list_presets():
        cfg = preset(name)
        assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({"arch": "gmlp", "colour": "blue"})


def test_vision_seq_len_is_the_number_of_patches() -> None:
    cfg = preset("gmlp-s")
    assert cfg.seq_len == 196
    assert preset("gmlp-demo-vision").seq_len == 64


def test_wrong_input_shapes_are_explained() -> None:
    model = build_model(preset("gmlp-tiny-mlm"))
    with pytest.raises(ValueError, match="fixed sequence length"):
        model(input_ids=torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds seq_len"):
        model(input_ids=torch.zeros(1, 99, dtype=torch.long))
    vision = build_model(preset("gmlp-tiny-vision"))
    with pytest.raises(ValueError, match="pixel_values must be"):
        vision(pixel_values=torch.zeros(1, 3, 8, 8))


PAPER = [n for n in list_presets(group="paper") if preset_info(n).published_params_m is not None]


@pytest.mark.parametrize("name", PAPER)
def test_paper_parameter_counts_match_published_figures(name: str) -> None:
    published = preset_info(name).published_params_m * 1e6
    ours = count_parameters(preset(name))
    # Within 1%, or a figure printed in whole millions with the decimals dropped (Mixer-B/16: 59.9M printed 59M).
    truncated = published % 1e6 == 0 and ours // 1e6 * 1e6 == published
    assert abs(ours - published) / published < 0.01 or truncated, f"{name}: {ours / 1e6:.2f}M vs {published / 1e6}M"


@pytest.mark.parametrize("shape", PAPER_SHAPES + SCALING_PAIRS, ids=lambda s: s.model)
def test_paper_presets_have_the_published_shape(shape: PaperShape) -> None:
    """A parameter count cannot tell 48 x 768 x 6144 from 96 x 768 x 3072 (both ~365M): the shape must match too."""
    cfg = preset(shape.preset, n_layers=shape.n_layers) if shape.pair else preset(shape.preset)
    assert (cfg.arch, cfg.n_layers, cfg.d_model, cfg.d_ffn) == (shape.arch, shape.n_layers, shape.d_model, shape.d_ffn)
    if shape.attn_dim is not None:
        assert cfg.attn_dim == shape.attn_dim
    if shape.params_m is not None:
        assert preset_info(shape.preset).published_params_m == shape.params_m


def test_every_paper_preset_is_recorded_with_its_published_shape() -> None:
    recorded = {s.preset for s in PAPER_SHAPES}
    liu = {n for n in list_presets(group="paper") if preset_info(n).source.startswith("Liu et al.")}
    assert liu == recorded
    assert all("(unverified)" in preset_info(n).source for n in liu if not _shape(n).verified)
    large = preset("gmlp-large")
    assert (large.n_layers, large.d_ffn) == (96, 3072), "gMLP-large is 96 layers of d_ffn 3072, not 48 of 6144"


def _shape(preset_name: str) -> PaperShape:
    return next(s for s in PAPER_SHAPES if s.preset == preset_name)


def test_count_parameters_config_equals_model_and_non_embedding_is_smaller() -> None:
    cfg = preset("amlp-tiny-mlm")
    model = build_model(cfg)
    assert count_parameters(cfg) == count_parameters(model) == sum(p.numel() for p in model.parameters())
    emb = cfg.vocab_size * cfg.d_model + cfg.vocab_size
    assert count_parameters(cfg, non_embedding=True) == count_parameters(cfg) - emb


def test_flops_per_token_counts_matmuls() -> None:
    cfg = preset("gmlp-tiny-mlm", gating="identity")
    d, f = cfg.d_model, cfg.d_ffn
    body = cfg.n_layers * 2 * (d * f + f * d)
    assert flops_per_token(cfg, include_head=False) == body
    split = preset("gmlp-tiny-mlm")
    # Split gating: V has half the input width, and W adds 2 n (d_ffn / 2) per token.
    assert flops_per_token(split, include_head=False) == split.n_layers * 2 * (
        d * f + f // 2 * d + split.seq_len * f // 2
    )
    assert flops_per_token(preset("gmlp-b")) > flops_per_token(preset("gmlp-s")) > flops_per_token(preset("gmlp-ti"))

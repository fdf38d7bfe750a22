"""The architecture registry (``gmlp_core.models.archs``) against what the models do, and the MLP-Mixer added
through it: its math, its presets, and every page of the app opened on Mixer checkpoints."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gmlp_core import build_model, count_parameters, flops_per_token, preset, save_checkpoint
from gmlp_core.limits import estimate_parameters
from gmlp_core.models import ModelConfig, list_presets
from gmlp_core.models.archs import ARCHS, RECIPES, arch_spec, learning_rate, side_by_side
from tests.app_helpers import PAGES, assert_ok, figures, start, texts

REPO = Path(__file__).resolve().parent.parent


# ---- the registry ---------------------------------------------------------------------------------------------
def test_every_architecture_has_tiny_presets_and_every_recipe_a_rate() -> None:
    for arch in ARCHS:
        for task in ("mlm", "vision"):
            assert preset(f"{arch}-tiny-{task}").arch == arch
        assert {r: learning_rate(arch, r) for r in RECIPES} == dict(arch_spec(arch).lr)
    assert sorted(side_by_side()) == sorted(ARCHS)
    with pytest.raises(KeyError, match="known architectures: gmlp, amlp, transformer, mixer"):
        arch_spec("perceiver")
    with pytest.raises(ValueError, match="arch='perceiver'"):
        ModelConfig(arch="perceiver")


@pytest.mark.parametrize("name", list_presets())
def test_each_family_counts_its_own_block(name: str) -> None:
    """The registry's parameter formula (what the limits read before any tensor exists) is the built model's."""
    cfg = preset(name)
    assert estimate_parameters(cfg) == count_parameters(cfg)


@pytest.mark.parametrize("name", [f"{a}-tiny-{t}" for a in ARCHS for t in ("mlm", "vision")])
def test_each_family_counts_its_own_flops(name: str) -> None:
    """``block_flops`` against torch's FLOP counter on one block: every matrix product (norms, activations and the
    softmax are left out by both)."""
    cfg = preset(name)
    block = cfg.arch_spec.block(cfg).eval()
    x = torch.randn(2, cfg.seq_len, cfg.d_model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        block(x, None, True, False)  # explicit attention, the path whose products are counted
    assert counter.get_total_flops() == 2 * cfg.seq_len * cfg.arch_spec.block_flops(cfg)


@pytest.mark.parametrize("arch", ARCHS)
def test_what_the_registry_says_the_model_does(arch: str) -> None:
    cfg = preset(f"{arch}-tiny-mlm")
    spec = cfg.arch_spec
    model = build_model(cfg).eval()
    ids = torch.randint(5, 60, (1, cfg.seq_len))
    out = model.trunk(input_ids=ids, output_attentions=True, output_gates=True)
    assert (out.attentions is not None) == spec.has_attention == cfg.has_attention
    assert (out.gates is not None) == cfg.has_spatial_weights
    assert ("embed.position.weight" in dict(model.named_parameters())) == spec.positions
    shorter = ids[:, : cfg.seq_len - 3]
    if spec.fixed_length:
        with pytest.raises(ValueError, match="fixed sequence length"):
            model.trunk(input_ids=shorter)
    else:
        assert model.trunk(input_ids=shorter).last_hidden_state.shape[1] == cfg.seq_len - 3
    assert cfg.mixes_tokens
    if not spec.causal:
        with pytest.raises(ValueError, match="cannot be causal"):
            cfg.replace(causal=True)


def test_a_field_of_one_architecture_is_left_out_of_the_others_config_json() -> None:
    gmlp, mixer = preset("gmlp-tiny-mlm"), preset("mixer-tiny-mlm")
    assert "token_mlp_dim" not in json.loads(gmlp.to_json())
    assert json.loads(mixer.to_json())["token_mlp_dim"] == 16
    assert ModelConfig.from_json(mixer.to_json()) == mixer and ModelConfig.from_json(gmlp.to_json()) == gmlp


def test_code_outside_the_registry_does_not_test_architecture_names() -> None:
    """What a model is comes from its spec: no ``arch ==`` / ``arch !=`` / ``arch in (...)`` outside the family
    modules and the registry, and the dashboard and pages name no architecture."""
    test = re.compile(r"""(?<!for )(\barch|\["arch"\])\s*(==|!=|in\s*\(|not in\s*\()\s*["']""")
    offenders = []
    for folder in ("gmlp_core", "dashboard", "pages"):
        for path in sorted((REPO / folder).rglob("*.py")):
            text = path.read_text()
            offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in test.finditer(text)]
            if folder != "gmlp_core":
                offenders += [f"{path.relative_to(REPO)}: '{a}'" for a in ("mixer",) if f'"{a}"' in text]
    assert offenders == []


# ---- the MLP-Mixer -----------------------------------------------------------------------------------------------
def test_the_mixer_block_is_its_formula() -> None:
    """x + W2 GELU(W1 LN(x)^T + b1)^T + b2 across positions, then x + V GELU(U LN(x)) across channels."""
    torch.manual_seed(0)
    cfg = preset("mixer-tiny-vision")
    block = cfg.arch_spec.block(cfg).eval()
    x = torch.randn(3, cfg.seq_len, cfg.d_model)
    h = torch.nn.functional.layer_norm(x, (cfg.d_model,), block.norm1.weight, block.norm1.bias, cfg.layer_norm_eps)
    t = torch.einsum("tn,bnd->btd", block.token_in.weight, h) + block.token_in.bias[None, :, None]
    mixed = torch.einsum("nt,btd->bnd", block.token_out.weight, torch.nn.functional.gelu(t))
    y = x + mixed + block.token_out.bias[None, :, None]
    g = torch.nn.functional.layer_norm(y, (cfg.d_model,), block.norm2.weight, block.norm2.bias, cfg.layer_norm_eps)
    expected = y + block.proj_out(torch.nn.functional.gelu(block.proj_in(g)))
    got, probs, gate = block(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert probs is None and gate is None


def test_the_mixer_mixes_tokens_the_same_way_for_every_channel() -> None:
    """One token MLP shared by the channels: with the channel MLP off and a plain LayerNorm, permuting the channels
    of the input permutes those of the output; and a change at one position reaches the others."""
    torch.manual_seed(0)
    cfg = preset("mixer-tiny-mlm")
    block = cfg.arch_spec.block(cfg).eval()
    with torch.no_grad():
        block.proj_out.weight.zero_()
        block.proj_out.bias.zero_()
        block.token_out.weight.normal_(std=0.5)
    x = torch.randn(1, cfg.seq_len, cfg.d_model)
    perm = torch.randperm(cfg.d_model)
    with torch.no_grad():
        torch.testing.assert_close(block(x[..., perm])[0], block(x)[0][..., perm], rtol=1e-5, atol=1e-5)
        x2 = x.clone()
        x2[0, 3] += torch.randn(cfg.d_model)
        delta = (block(x2)[0] - block(x)[0])[0]  # (n, d)
    others = torch.cat([delta[:3], delta[4:]])
    assert others.abs().max() > 1e-3, "a change at one position reaches the others"


def test_mixer_presets_and_the_paper_figure() -> None:
    b16 = preset("mixer-b16")
    assert (b16.n_layers, b16.d_model, b16.token_mlp_dim, b16.d_ffn, b16.seq_len) == (12, 768, 384, 3072, 196)
    assert count_parameters(b16) // 10**6 == 59  # printed as 59M (Mixer-B/16, the paper's ImageNet table)
    for size in ("mlm", "vision"):
        ours = count_parameters(preset(f"mixer-demo-{size}"), non_embedding=True)
        zoo = count_parameters(preset(f"gmlp-demo-{size}"), non_embedding=True)
        assert abs(ours / zoo - 1) < 0.05, "the demo Mixer is the zoo gMLP's size"
    assert flops_per_token(preset("mixer-demo-mlm")) > 0


def test_a_mixer_trains(tmp_path: Path) -> None:
    from gmlp_core.train import train
    from tests.conftest import tiny_train_config

    result = train(tiny_train_config(tmp_path / "mixer", "mixer-tiny-mlm"))
    log = [json.loads(line) for line in (result.checkpoint / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["val_loss"] < log[0]["val_loss"] - 0.3, "held-out loss falls"


# ---- the app, on Mixer checkpoints ---------------------------------------------------------------------------------
MIXERS = ("mlm-mixer", "vision-mixer")


@pytest.fixture(scope="module")
def mixer_root(lens_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny root's gMLP next to two tiny Mixers (language and digits), with training logs."""
    from gmlp_core.checkpoints import load_tokenizer

    root = tmp_path_factory.mktemp("mixers") / "root"
    for name in ("mlm-gmlp", "vision-gmlp", "mlm-transformer"):
        shutil.copytree(lens_root / name, root / name)
    tokenizer = load_tokenizer(lens_root / "mlm-gmlp")
    for i, name in enumerate(MIXERS):
        torch.manual_seed(i)
        cfg = preset(f"mixer-tiny-{name.split('-')[0]}")
        if cfg.is_text:
            cfg = cfg.replace(vocab_size=tokenizer.get_vocab_size())
        metrics = {"steps": 50, "val_ppl": 90.0} if cfg.is_text else {"steps": 50, "val_accuracy": 0.4}
        folder = save_checkpoint(
            build_model(cfg), root / name, tokenizer=tokenizer if cfg.is_text else None, metrics=metrics
        )
        rows = [{"step": s, "loss": 4.0 - s / 50, "lr": 1e-3} for s in (0, 25, 50)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _drive(at, page: str) -> None:
    if page == "attributions":
        at.button(key="attr-run").click().run()
    elif page == "w_vs_attention":
        at.text_input(key="wva-text").set_value("a loop repeats the statement .").run()


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_takes_a_mixer_or_says_why_not(mixer_root: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(mixer_root))
    at = start(page, {"models": ",".join(MIXERS)})
    _drive(at, page)
    assert_ok(at)
    shown = texts(at) + "".join(json.dumps(f.to_plotly_json(), default=str) for f in figures(at))
    shown += "".join(str(getattr(el, "value", "")) for el in at.get("selectbox") + at.get("dataframe"))
    if page in ("spatial", "interventions"):  # no W, no attention: each says why
        assert "MLP-Mixer mixes tokens with its token MLP" in texts(at)
    elif page in ("inference", "w_vs_attention", "attributions", "training", "overview"):
        assert "mixer" in shown, f"{page} shows the Mixer"

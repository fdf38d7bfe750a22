"""Every fast path computes the same function as the plain one it replaces.

- MLM: vocabulary logits at the masked positions only (``masked_logits``) vs the full logits.
- Attention: the fused ``scaled_dot_product_attention`` (default) vs the explicit softmax (``output_attentions``).
- The Spatial Gating Unit's ``b + W z`` as one ``baddbmm`` vs the plain ``einsum`` + bias.
- Toeplitz W (2n - 1 weights) vs the dense W it expands to.
- Attention's explicit path under ``explicit_attention`` (token influence) vs the fused kernel; token influence's
  bf16 estimate vs the fp32 one.
- ``torch.compile`` (the benchmark's opt-in training path) vs eager: same loss, logits and gradients, and
  deterministic from run to run.
"""

from __future__ import annotations

import pytest
import torch

from gmlp_core import build_model, preset
from gmlp_core.models.archs import ARCHS
from gmlp_core.models.model import IGNORE_INDEX


def _batch(cfg, batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, cfg.vocab_size, (batch, cfg.seq_len), generator=g)
    masked = torch.rand(batch, cfg.seq_len, generator=g) < 0.3
    masked[0, 0] = True
    return ids.masked_fill(masked, 4), torch.where(masked, ids, torch.full_like(ids, IGNORE_INDEX))


@pytest.mark.parametrize("arch", ARCHS)
def test_masked_logits_equal_the_full_logits_rows(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(preset(f"{arch}-tiny-mlm")).eval()
    ids, labels = _batch(model.config)
    with torch.no_grad():
        fast = model(input_ids=ids, labels=labels)
        plain = model(input_ids=ids, labels=labels, output_logits=True)
        full = model(input_ids=ids).logits
    assert fast.logits is None and fast.masked_logits.shape == (int((labels != IGNORE_INDEX).sum()), 64)
    torch.testing.assert_close(fast.masked_logits, full[labels != IGNORE_INDEX], rtol=1e-5, atol=1e-6)
    loss = torch.nn.functional.cross_entropy(full.reshape(-1, 64), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(fast.loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain.logits, full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("arch", ["amlp", "transformer"])
def test_fused_attention_equals_explicit_softmax(arch: str, causal: bool) -> None:
    torch.manual_seed(1)
    model = build_model(preset(f"{arch}-tiny-mlm", causal=causal)).eval()
    ids, _ = _batch(model.config, seed=1)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # padding keys in one sequence
    for attention_mask in (None, mask):
        with torch.no_grad():
            fused = model(input_ids=ids, attention_mask=attention_mask, output_hidden_states=True)
            explicit = model(
                input_ids=ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True
            )
        assert fused.attentions is None and explicit.attentions is not None
        for a, b in zip(fused.hidden_states, explicit.hidden_states, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["amlp", "transformer"])
def test_explicit_attention_block_takes_the_softmax_path_with_the_same_result(arch: str) -> None:
    """``explicit_attention`` (what token influence runs under) changes the kernel, not the function or the output."""
    from gmlp_core.models import layers

    torch.manual_seed(2)
    model = build_model(preset(f"{arch}-tiny-mlm")).eval()
    ids, _ = _batch(model.config, seed=2)
    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention
    with torch.no_grad():
        plain = model(input_ids=ids, output_hidden_states=True)
        try:
            layers.F.scaled_dot_product_attention = lambda *a, **k: calls.append(1) or fused(*a, **k)
            with layers.explicit_attention():
                explicit = model(input_ids=ids, output_hidden_states=True)
            assert calls == [] and explicit.attentions is None
            model(input_ids=ids)  # outside the block: the fused kernel again
            assert calls
        finally:
            layers.F.scaled_dot_product_attention = fused
    for a, b in zip(plain.hidden_states, explicit.hidden_states, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_attention_on_a_cpu_takes_the_explicit_path_and_matches_the_fused_kernel(causal: bool) -> None:
    """On a CPU, bfloat16 attention skips torch's fused kernel (3-7x slower at these sizes) for the explicit
    softmax path: the same function as the fused kernel in float32, to bfloat16's precision, gradients included."""
    from gmlp_core.models import layers

    torch.manual_seed(3)
    q, k, v = (torch.randn(4, 2, 24, 16) for _ in range(3))
    keep = torch.ones(4, 24, dtype=torch.bool)
    keep[1, 18:] = False  # a padded row
    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention
    low = [t.to(torch.bfloat16).requires_grad_() for t in (q, k, v)]
    try:
        layers.F.scaled_dot_product_attention = lambda *a, **kw: calls.append(1) or fused(*a, **kw)
        out, _ = layers.attention(*low, causal=causal, key_padding_mask=keep)
    finally:
        layers.F.scaled_dot_product_attention = fused
    assert calls == [] and out.dtype == torch.bfloat16
    exact = [t.clone().requires_grad_() for t in (q, k, v)]
    mask = keep[:, None, None, :] & (torch.ones(24, 24, dtype=torch.bool).tril() if causal else True)
    want = fused(*exact, attn_mask=mask)
    torch.testing.assert_close(out.float(), want, rtol=0, atol=0.03)
    out.float().pow(2).sum().backward()
    want.pow(2).sum().backward()
    for a, b in zip(low, exact, strict=True):
        scale = b.grad.abs().max().item()
        torch.testing.assert_close(a.grad.float(), b.grad, rtol=0, atol=0.03 * scale)


@pytest.mark.parametrize("arch", ARCHS)
def test_token_influence_estimate_in_bf16_matches_fp32(arch: str) -> None:
    """The estimate's bf16 path (``precision="auto"`` on CPUs with native bf16) is the fp32 estimate to within
    bf16's rounding: same probes, so the difference is rounding alone."""
    from gmlp_core.analysis.influence import token_influence

    torch.manual_seed(3)
    model = build_model(preset(f"{arch}-tiny-mlm")).eval()
    ids = _batch(model.config, batch=1, seed=3)[0]
    fp32 = token_influence(model, input_ids=ids, n_probes=8, precision="fp32")
    bf16 = token_influence(model, input_ids=ids, n_probes=8, precision="bf16")
    assert ((bf16 - fp32).abs().max() / fp32.max()).item() < 0.02


@pytest.mark.parametrize("overrides", [{}, {"causal": True}, {"spatial": "toeplitz"}, {"gating": "multiplicative"}])
@pytest.mark.parametrize("batch", [1, 5])
def test_spatial_projection_equals_the_plain_einsum(overrides: dict, batch: int) -> None:
    torch.manual_seed(4)
    model = build_model(preset("gmlp-tiny-mlm", **overrides))
    spatial = model.blocks[0].sgu.spatial
    with torch.no_grad():  # a W with weight everywhere (the causal mask must still apply)
        spatial.weight.normal_()
        spatial.bias.normal_()
    width = model.config.gate_dim if overrides.get("gating") != "multiplicative" else model.config.d_ffn
    z = torch.randn(batch, model.config.seq_len, width, requires_grad=True)
    fast = spatial(z)
    w = spatial.matrix()
    plain = torch.einsum("m n, b n d -> b m d", w, z) + spatial.bias[None, :, None]
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(fast)
    fast_grads = torch.autograd.grad(fast, (z, spatial.weight, spatial.bias), g)
    plain_grads = torch.autograd.grad(plain, (z, spatial.weight, spatial.bias), g)
    for a, b in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    if overrides.get("causal"):
        assert torch.equal(fast_grads[1].triu(1), torch.zeros_like(fast_grads[1]))


@pytest.mark.parametrize("causal", [False, True])
def test_toeplitz_w_takes_one_weight_per_offset(causal: bool) -> None:
    """W[i, j] = w[i - j + n - 1] (the paper's Toeplitz parameterisation), built without an n x n index."""
    spatial = build_model(preset("gmlp-tiny-mlm", spatial="toeplitz", causal=causal)).blocks[0].sgu.spatial
    n = spatial.n
    with torch.no_grad():
        spatial.weight.copy_(torch.arange(2 * n - 1, dtype=torch.float32))
    i = torch.arange(n)
    want = (i[:, None] - i[None, :] + n - 1).float()
    assert torch.equal(spatial.matrix(), want.tril() if causal else want)
    assert not any(b.numel() >= n * n for b in spatial.buffers()), "no n x n buffer"


def test_toeplitz_w_equals_the_dense_w_it_expands_to() -> None:
    torch.manual_seed(2)
    toeplitz = build_model(preset("gmlp-tiny-mlm", spatial="toeplitz", causal=True)).eval()
    dense = build_model(preset("gmlp-tiny-mlm", causal=True)).eval()
    state = {k: v for k, v in toeplitz.state_dict().items() if "spatial.weight" not in k}
    for layer, w in enumerate(toeplitz.spatial_weights()):
        i = torch.arange(w.shape[0])
        # constant along each (lower) diagonal, zero above it (causal)
        assert all(torch.equal(w.diagonal(-k), w[k, 0].expand(w.shape[0] - k)) for k in range(w.shape[0]))
        assert torch.equal(w.triu(1), torch.zeros_like(w)) and w[i, i].abs().sum() > 0
        state[f"blocks.{layer}.sgu.spatial.weight"] = w
    dense.load_state_dict(state)
    ids, labels = _batch(toeplitz.config, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(
            toeplitz(input_ids=ids, labels=labels).masked_logits, dense(input_ids=ids, labels=labels).masked_logits
        )


def _loss_and_grads(model, ids, labels) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    grads = {
        n.removeprefix("_orig_mod."): p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None
    }
    return out.loss.detach(), out.masked_logits.detach(), grads


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's own use of torch.jit
def test_torch_compile_matches_eager_and_is_deterministic() -> None:
    torch.manual_seed(3)
    eager = build_model(preset("gmlp-tiny-mlm", n_layers=1))
    ids, labels = _batch(eager.config, seed=3)
    loss, logits, grads = _loss_and_grads(eager, ids, labels)
    # Inductor's CPU scatter-add (the embedding gradient) sums in thread order, which varies by an ulp from run
    # to run; deterministic algorithms make it bitwise reproducible (the benchmark's --compile sets this too).
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        compiled = torch.compile(eager)  # shares the parameters: same weights, different kernels
        c_loss, c_logits, c_grads = _loss_and_grads(compiled, ids, labels)
        again = _loss_and_grads(compiled, ids, labels)
    finally:
        torch.use_deterministic_algorithms(was)
    torch.testing.assert_close(c_loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c_logits, logits, rtol=1e-4, atol=1e-5)
    assert c_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(c_grads[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert torch.equal(again[0], c_loss) and torch.equal(again[1], c_logits)
    assert all(torch.equal(again[2][n], c_grads[n]) for n in grads)

"""gMLP and aMLP (Liu, Dai, So, Le, 2021, arXiv 2105.08050): the Spatial Gating Unit and its block.

A block computes ``x + V(s(GELU(U(LN(x)))))``. The Spatial Gating Unit ``s`` is the only place where
tokens mix: with the default split gating, ``s(Z) = Z1 * (W LN(Z2) + b)``, where ``W`` is an n x n
matrix over positions initialised near zero and ``b`` a per-position bias initialised to one, so at
init every block is a plain FFN. aMLP adds a tiny single-head attention on the block's normalised
input whose output is added to ``W LN(Z2) + b`` before the gating.

Gating variants (the paper's MLM gating-ablation table, with f(Z) = W LN(Z) + b): ``split`` s(Z)=Z1*f(Z2);
``multiplicative`` s(Z)=Z*f(Z); ``additive`` s(Z)=Z+f(Z); ``linear`` s(Z)=f(Z) (token mixing without
gating). ``identity`` s(Z)=Z is not in the paper's table: it is the control with no token mixing at
all, the plain FFN that every block starts as.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmlp_core.models.layers import attention

if TYPE_CHECKING:
    from gmlp_core.models.config import ModelConfig


class SpatialWeight(nn.Module):
    """The n x n token-mixing matrix W (dense, or Toeplitz with 2n-1 free weights) and bias b."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        n = config.seq_len
        self.n = n
        self.causal = config.causal
        self.toeplitz = config.spatial == "toeplitz"
        shape = (2 * n - 1,) if self.toeplitz else (n, n)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(n))
        self.init_eps = config.spatial_init_eps
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Near-zero W and unit bias: the gate starts as the identity, so the block starts as an FFN.
        eps = self.init_eps / self.n
        nn.init.uniform_(self.weight, -eps, eps)
        nn.init.ones_(self.bias)

    def matrix(self) -> Tensor:
        """The effective (n, n) W used in the forward pass (Toeplitz expanded, causal mask applied)."""
        w = self.weight
        if self.toeplitz:
            # W[i, j] = w[i - j + n - 1], one weight per relative offset: row i is the length-n window of the
            # reversed w that starts at n - 1 - i (a view; no n x n index is ever built).
            w = w.flip(0).unfold(0, self.n, 1).flip(0)  # (n, n)
        if self.causal:
            w = w.tril()  # position i mixes only positions j <= i
        return w

    def forward(self, z: Tensor) -> Tensor:
        n = z.shape[1]
        if n != self.n:
            raise ValueError(
                f"gMLP has a fixed sequence length n={self.n} (its W is n x n) but got length {n}; "
                "pad or truncate the input to seq_len"
            )
        # b + W z as one batched GEMM with the bias as its addend: the same math as
        # einsum("m n, b n d -> b m d", W, z) + b, without einsum's permute copies (~2x faster on CPU).
        batch, _, d = z.shape
        device_type = z.device.type
        low = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
        with torch.autocast(device_type, enabled=False):
            if low is not None and low != torch.float32:
                # Mixed precision: the product W z runs in the low-precision GEMM (float32 accumulation, like
                # every other matmul under autocast) and is added to b in float32. The sum is what must stay
                # float32: b = 1 and W z starts below 5e-4, and bfloat16's 8-bit mantissa rounds 1 + W z to
                # steps of 0.0039, which would erase the young W's signal; W z on its own keeps bfloat16's
                # relative precision (2^-9) at any size. This is 27% of a bf16 step at the benchmark size
                # when the GEMM ran in float32 (README, "Precision").
                w = self.matrix().to(low).expand(batch, n, n)
                return torch.bmm(w, z.to(low)) + self.bias[:, None]  # (B, n, d), float32 by promotion
            dtype = torch.promote_types(z.dtype, self.weight.dtype)
            w = self.matrix().to(dtype).expand(batch, n, n)  # (B, n, n), stride 0 over the batch
            bias = self.bias.to(dtype)[None, :, None].expand(batch, n, d)  # (B, n, d)
            return torch.baddbmm(bias, w, z.to(dtype))  # (B, n, d)


class TinyAttention(nn.Module):
    """aMLP's single-head attention of size ``attn_dim`` whose output has the gate's width."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.causal = config.causal
        self.qkv = nn.Linear(config.d_model, 3 * config.attn_dim)
        self.proj = nn.Linear(config.attn_dim, config.gate_dim)
        self.static_attention: Tensor | None = None  # (1, L, L) fixed probabilities: see TransformerBlock

    def forward(self, x: Tensor, key_padding_mask: Tensor | None, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        q, k, v = self.qkv(x)[:, None].chunk(3, dim=-1)  # each (B, 1, L, attn_dim)
        out, probs = attention(
            q,
            k,
            v,
            causal=self.causal,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            static=self.static_attention,
        )
        return self.proj(out[:, 0]), probs  # (B, L, gate_dim), (B, 1, L, L) | None


class SpatialGatingUnit(nn.Module):
    """s(Z) for the configured gating variant; the tiny attention (aMLP) joins before the gating."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gating = config.gating
        if self.gating != "identity":
            self.norm = nn.LayerNorm(config.gate_dim, eps=config.gate_norm_eps)  # LN(Z2): the gate's width
            self.spatial = SpatialWeight(config)

    def forward(self, z: Tensor, attn: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Returns ``(s(Z), gate)``: the gate is ``W LN(Z2) + b (+ attn)``, None for identity gating."""
        if self.gating == "identity":
            return z, None
        if self.gating == "split":
            z1, z2 = z.chunk(2, dim=-1)  # (B, L, d_ffn/2) each
        else:
            z1 = z2 = z
        gate = self.spatial(self.norm(z2))
        if attn is not None:
            gate = gate + attn
        if self.gating == "additive":
            return z1 + gate, gate
        if self.gating == "linear":
            return gate, gate
        return z1 * gate, gate


class GMLPBlock(nn.Module):
    """One gMLP (or, with ``arch="amlp"``, aMLP) block: ``x + V(s(GELU(U(LN(x)))))``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.proj_in = nn.Linear(config.d_model, config.d_ffn)  # U
        self.sgu = SpatialGatingUnit(config)
        self.proj_out = nn.Linear(config.gate_dim, config.d_model)  # V
        self.tiny_attn = TinyAttention(config) if config.arch_spec.has_attention else None
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        output_attentions: bool = False,
        output_gates: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        h = self.norm(x)  # (B, L, d_model)
        attn_out, probs = None, None
        if self.tiny_attn is not None:
            attn_out, probs = self.tiny_attn(h, key_padding_mask, output_attentions)
        z = F.gelu(self.proj_in(h))  # (B, L, d_ffn)
        s, gate = self.sgu(z, attn_out)  # (B, L, gate_dim)
        x = x + self.dropout(self.proj_out(s))
        return x, probs, (gate if output_gates else None)


# ---- what the registry (gmlp_core.models.archs) needs to know about these blocks --------------------------------
def block_parameters(cfg: ModelConfig) -> int:
    """Parameters of one gMLP / aMLP block: LN, U, V, and (unless identity gating) LN(Z2), W and b; aMLP's tiny
    attention (QKV of attn_dim and its projection to the gate's width)."""
    d, f, g, n = cfg.d_model, cfg.d_ffn, cfg.gate_dim, cfg.seq_len
    count = 2 * d + (d * f + f) + (g * d + d)
    if cfg.gating != "identity":
        norm_in = f // 2 if cfg.gating == "split" else f
        w = 2 * n - 1 if cfg.spatial == "toeplitz" else n * n
        count += 2 * norm_in + w + n
    if cfg.arch_spec.has_attention:
        a = cfg.attn_dim
        count += (d * 3 * a + 3 * a) + (a * g + g)
    return count


def block_flops(cfg: ModelConfig) -> int:
    """Forward FLOPs per token of one block: U and V, W over n positions, aMLP's tiny attention."""
    d, f, g, n = cfg.d_model, cfg.d_ffn, cfg.gate_dim, cfg.seq_len
    flops = 2 * (d * f + g * d)
    if cfg.has_spatial_weights:
        flops += 2 * n * g
    if cfg.arch_spec.has_attention:
        a = cfg.attn_dim
        flops += 2 * (3 * d * a + a * g) + 2 * 2 * n * a
    return flops


def block_activations(cfg: ModelConfig) -> int:
    """Numbers alive per position while one block runs without gradients (an upper bound for the limits)."""
    count = 7 * cfg.d_model + 3 * cfg.d_ffn
    if cfg.arch_spec.has_attention:
        count += 3 * cfg.attn_dim + 2 * cfg.seq_len  # the tiny head's q, k, v; its scores and probabilities
    return count


def validate(cfg: ModelConfig) -> str | None:
    if cfg.gating == "split" and cfg.d_ffn % 2:
        return f"d_ffn={cfg.d_ffn} must be even: split gating halves it"
    return None


def sizing(d_model: int) -> dict[str, Any]:
    """The paper's shape rule for a scaling sweep: d_ffn = 6 d_model."""
    return {"d_ffn": 6 * d_model}


def amlp_sizing(d_model: int) -> dict[str, Any]:
    """gMLP's rule with the sweep's tiny attention of 16."""
    return sizing(d_model) | {"attn_dim": 16}

"""MLP-Mixer (Tolstikhin et al., 2021, arXiv 2105.01601): the gMLP paper's closest MLP relative.

A block mixes tokens with a small MLP across positions, then channels with an FFN, each pre-LayerNorm and
residual, with no gate:

    x = x + (W2 GELU(W1 LN(x)^T + b1) + b2)^T      token mixing: W1 (t x n), W2 (n x t), the same for every channel
    x = x + V GELU(U LN(x))                        channel mixing, width d_ffn

Like gMLP's W, the token-mixing weights are learned once and fixed for every input, and they are tied to the
sequence length n (inputs are padded to exactly ``seq_len``). Unlike W there is no single n x n matrix: the
token MLP is nonlinear, so what a position reads depends on the values there; its effective mixing (the Jacobian,
``gmlp_core.analysis.mixing``) is what the pages show. ``token_mlp_dim`` is t (the paper's D_S), ``d_ffn`` the
channel MLP's width (D_C). There is no causal variant: every hidden unit of the token MLP reads every position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from gmlp_core.models.config import ModelConfig


class MixerBlock(nn.Module):
    """One Mixer block: ``x + TokenMLP(LN(x))`` across positions, then ``x + FFN(LN(x))`` across channels."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        n, t, d = config.seq_len, config.token_mlp_dim, config.d_model
        self.n = n
        self.norm1 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.token_in = nn.Linear(n, t)  # W1, b1: positions -> t hidden units
        self.token_out = nn.Linear(t, n)  # W2, b2: back to positions
        self.norm2 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.proj_in = nn.Linear(d, config.d_ffn)  # U
        self.proj_out = nn.Linear(config.d_ffn, d)  # V
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        output_attentions: bool = False,
        output_gates: bool = False,
    ) -> tuple[Tensor, None, None]:
        """``x`` (B, n, d_model). The token MLP has no notion of padding (like W): ``key_padding_mask`` is unused."""
        if x.shape[1] != self.n:
            raise ValueError(
                f"MLP-Mixer has a fixed sequence length n={self.n} (its token MLP reads n positions) but got length "
                f"{x.shape[1]}; pad or truncate the input to seq_len"
            )
        h = self.norm1(x).transpose(1, 2)  # (B, d_model, n): every channel a sequence of n positions
        mixed = self.token_out(F.gelu(self.token_in(h))).transpose(1, 2)  # (B, n, d_model)
        x = x + self.dropout(mixed)
        x = x + self.dropout(self.proj_out(F.gelu(self.proj_in(self.norm2(x)))))
        return x, None, None


# ---- what the registry (gmlp_core.models.archs) needs to know about this block ----------------------------------
def block_parameters(cfg: ModelConfig) -> int:
    """Parameters of one block: two LayerNorms, the token MLP (n -> t -> n) and the channel MLP."""
    d, f, n, t = cfg.d_model, cfg.d_ffn, cfg.seq_len, cfg.token_mlp_dim
    return 2 * (2 * d) + (n * t + t) + (t * n + n) + (d * f + f) + (f * d + d)


def block_flops(cfg: ModelConfig) -> int:
    """Forward FLOPs per token of one block: the channel MLP, and the token MLP's 2 n t multiply-adds per channel
    spread over the n positions."""
    d, f, t = cfg.d_model, cfg.d_ffn, cfg.token_mlp_dim
    return 2 * (2 * d * f) + 2 * 2 * t * d


def block_activations(cfg: ModelConfig) -> int:
    """Numbers alive per position while one block runs without gradients (an upper bound for the limits)."""
    token_hidden = -(-2 * cfg.token_mlp_dim * cfg.d_model // cfg.seq_len)  # (d, t) per input, before and after GELU
    return 7 * cfg.d_model + 3 * cfg.d_ffn + token_hidden


def validate(cfg: ModelConfig) -> str | None:
    if cfg.token_mlp_dim < 1:
        return f"token_mlp_dim={cfg.token_mlp_dim!r} must be a positive integer"
    if cfg.causal:
        return "causal=True: an MLP-Mixer's token MLP mixes every position with every other, so it cannot be causal"
    return None


def sizing(d_model: int) -> dict[str, Any]:
    """The Mixer paper's shape rule for a scaling sweep: D_C = 4 d_model, D_S = d_model / 2."""
    return {"d_ffn": 4 * d_model, "token_mlp_dim": max(1, d_model // 2)}

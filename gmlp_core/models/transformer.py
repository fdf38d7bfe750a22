"""The Transformer baseline (BERT / ViT style, pre-LayerNorm) on the same trunk as gMLP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor, nn

from gmlp_core.models.layers import attention

if TYPE_CHECKING:
    from gmlp_core.models.config import ModelConfig


class TransformerBlock(nn.Module):
    """``x + Attn(LN(x))`` then ``x + FFN(LN(x))`` with a GELU FFN of width ``d_ffn``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.causal = config.causal
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.attn_out = nn.Linear(config.d_model, config.d_model)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.proj_in = nn.Linear(config.d_model, config.d_ffn)
        self.proj_out = nn.Linear(config.d_ffn, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        # (H, L, L) fixed attention probabilities instead of softmax(q k^T), or None: a plain attribute, set only
        # on a copy of a model by ``gmlp_core.analysis.static_attention`` (not a parameter, not in checkpoints)
        self.static_attention: Tensor | None = None

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        output_attentions: bool = False,
        output_gates: bool = False,
    ) -> tuple[Tensor, Tensor | None, None]:
        b, length, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, length, 3, self.n_heads, d // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, L, d_head)
        out, probs = attention(
            q,
            k,
            v,
            causal=self.causal,
            key_padding_mask=key_padding_mask,
            need_weights=output_attentions,
            static=self.static_attention,
        )
        out = out.transpose(1, 2).reshape(b, length, d)  # (B, L, d_model)
        x = x + self.dropout(self.attn_out(out))
        x = x + self.dropout(self.proj_out(F.gelu(self.proj_in(self.norm2(x)))))
        return x, probs, None


# ---- what the registry (gmlp_core.models.archs) needs to know about this block ----------------------------------
def block_parameters(cfg: ModelConfig) -> int:
    """Parameters of one block: two LayerNorms, QKV, the output projection and the FFN."""
    d, f = cfg.d_model, cfg.d_ffn
    return 2 * (2 * d) + (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d)


def block_flops(cfg: ModelConfig) -> int:
    """Forward FLOPs per token of one block: QKV, output, FFN, and Q K^T and A V over n positions."""
    d, f, n = cfg.d_model, cfg.d_ffn, cfg.seq_len
    return 2 * (3 * d * d + d * d + 2 * d * f) + 2 * 2 * n * d


def block_activations(cfg: ModelConfig) -> int:
    """Numbers alive per position while one block runs without gradients (an upper bound for the limits)."""
    return 7 * cfg.d_model + 3 * cfg.d_ffn + 3 * cfg.attn_dim + 2 * cfg.n_heads * cfg.seq_len


def validate(cfg: ModelConfig) -> str | None:
    if cfg.d_model % cfg.n_heads:
        return f"d_model={cfg.d_model} is not divisible by n_heads={cfg.n_heads}"
    return None


def sizing(d_model: int) -> dict[str, Any]:
    """BERT's shape rule for a scaling sweep: d_ffn = 4 d_model, heads of 32."""
    return {"d_ffn": 4 * d_model, "n_heads": max(1, d_model // 32)}

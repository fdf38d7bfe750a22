"""The Transformer baseline (BERT / ViT style, pre-LayerNorm) on the same trunk as gMLP."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gmlp_core.models.config import ModelConfig
from gmlp_core.models.layers import attention


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

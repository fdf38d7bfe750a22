"""Small pieces shared by the gMLP/aMLP and Transformer blocks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = False,
    static: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention over ``(B, H, L, D)`` tensors.

    ``key_padding_mask`` is ``(B, L)`` with True/1 for real tokens. When ``need_weights`` is set the
    probabilities are computed explicitly and returned as ``(B, H, L, L)``; otherwise the fused kernel
    runs and the weights are None. Both paths compute the same function.

    bfloat16 on a CPU takes the explicit path too: there torch's fused kernel (flash attention) is 3-5x slower
    than two small GEMMs and a softmax at the sizes these models use (``benchmarks/bench_attention.py``), and
    gMLP-family sequences are short (a fixed ``n``), so the ``L x L`` probabilities are small.

    ``static`` ``(H, L, L)`` replaces the probabilities with a fixed mixing matrix, the same for every input (the
    finetuning study's control: attention averaged over inputs, a W of its own); q, k and the mask are unused.
    """
    length = q.shape[-2]
    if static is not None:
        probs = static[:, :length, :length].to(v.dtype).expand(q.shape[0], -1, -1, -1)  # (B, H, L, L)
        return torch.einsum("b h i j, b h j d -> b h i d", probs, v), probs if need_weights else None
    mask = None
    if key_padding_mask is not None:
        mask = key_padding_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
    if causal:
        tri = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
        mask = tri if mask is None else mask & tri
    fused_is_slow = q.device.type == "cpu" and q.dtype == torch.bfloat16
    if not need_weights and not fused_is_slow and not _EXPLICIT.get():
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out, None
    # The scores and the softmax in float32 (as the fused kernel computes them), the two products in q's dtype;
    # in float32 every cast below is a no-op.
    scores = torch.einsum("b h i d, b h j d -> b h i j", q, k).float() / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1)
    out = torch.einsum("b h i j, b h j d -> b h i d", probs.to(v.dtype), v)
    return out, probs if need_weights else None


_EXPLICIT: ContextVar[bool] = ContextVar("explicit_attention", default=False)


@contextmanager
def explicit_attention() -> Iterator[None]:
    """Within this block (this thread), attention takes the explicit softmax path even when its weights are not
    asked for. Same function; but batched backward passes (``autograd.grad(..., is_grads_batched=True)``, as token
    influence takes them) have no batching rule for the fused kernel's backward and run it once per sample:
    token influence of the demo aMLP took 0.45 s with the fused kernel and 0.28 s without (bf16, one thread)."""
    token = _EXPLICIT.set(True)
    try:
        yield
    finally:
        _EXPLICIT.reset(token)


def init_linear(module: torch.nn.Module, std: float) -> None:
    """BERT-style init: truncated normal weights, zero biases; LayerNorm to identity."""
    if isinstance(module, torch.nn.Linear):
        torch.nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    elif isinstance(module, torch.nn.LayerNorm):
        torch.nn.init.ones_(module.weight)
        torch.nn.init.zeros_(module.bias)

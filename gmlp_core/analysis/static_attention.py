"""Attention made static: each head's probabilities averaged over many inputs, then used for every input.

The control of the finetuning study (issue #36): a finetuned Transformer or aMLP whose every attention head is
replaced by its own average over the validation inputs mixes tokens with a fixed matrix per head, like gMLP's W.
If a task's score falls toward gMLP's when attention stops depending on the input, the input-dependence is what
that task needs; if it holds, a fixed mixing serves. The model is copied, never edited in place.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor, nn


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """The modules that compute attention probabilities, in layer order (Transformer blocks, aMLP's tiny heads)."""
    return [m for m in model.modules() if hasattr(m, "static_attention")]


@torch.no_grad()
def mean_attention(model: nn.Module, batches: Iterable[dict[str, Tensor]]) -> list[Tensor]:
    """Per attention layer, the heads' probabilities averaged over every input of ``batches``: ``(H, L, L)``."""
    sums: list[Tensor] = []
    count = 0
    for batch in batches:
        out = model.trunk(
            input_ids=batch["input_ids"].to(model.device),
            attention_mask=batch["attention_mask"].to(model.device),
            output_attentions=True,
        )
        if out.attentions is None:
            raise ValueError(f"a {model.config.arch} model has no attention to make static")
        probs = [a.float().sum(dim=0).cpu() for a in out.attentions]  # each (H, L, L)
        sums = probs if not sums else [s + p for s, p in zip(sums, probs, strict=True)]
        count += batch["input_ids"].shape[0]
    if not count:
        raise ValueError("no inputs to average the attention over")
    return [s / count for s in sums]


def with_static_attention(model: nn.Module, maps: list[Tensor]) -> nn.Module:
    """A copy of ``model`` whose attention layers use ``maps`` (from ``mean_attention``) for every input."""
    static = copy.deepcopy(model).eval()
    modules = _attention_modules(static)
    if len(modules) != len(maps):
        raise ValueError(f"{len(maps)} attention maps for {len(modules)} attention layers")
    for module, probs in zip(modules, maps, strict=True):
        module.static_attention = probs.to(static.device)
    return static

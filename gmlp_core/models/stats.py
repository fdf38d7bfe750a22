"""Analytic model statistics for the scaling plots and tables: parameter counts, forward FLOPs per token and
the one summary row of a config every table shows."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gmlp_core.models.config import ModelConfig

_EMBEDDING_PREFIXES = ("embed.", "decoder_bias")


def count_parameters(cfg_or_model: ModelConfig | nn.Module, non_embedding: bool = False) -> int:
    """Number of trainable parameters. ``non_embedding`` leaves out token, position and patch
    embeddings and the vocabulary projection's own parameters (the bias; with ``mlm_head="linear"`` the
    untied output matrix too): Kaplan et al.'s N for scaling laws.

    A config is counted on the ``meta`` device, so paper-size presets cost no memory.
    """
    if isinstance(cfg_or_model, ModelConfig):
        from gmlp_core.models.model import build_model

        with torch.device("meta"):
            model = build_model(cfg_or_model)
    else:
        model = cfg_or_model
    cfg = getattr(model, "config", None)
    untied = cfg is not None and cfg.spec.fill_mask and cfg.mlm_head == "linear"
    prefixes = _EMBEDDING_PREFIXES + (("head.",) if untied else ())
    total = 0
    for name, p in model.named_parameters():
        if non_embedding and name.startswith(prefixes):
            continue
        total += p.numel()
    return total


def flops_per_token(cfg: ModelConfig, include_head: bool = True) -> int:
    """Forward FLOPs per token (2 per multiply-add), counted analytically from the config.

    Counts the matrix multiplies of every block, the token mixing (W over n positions, or
    attention scores and weighted sums), and, with ``include_head``, the task head applied to every
    position (MLM) or the pooled classifier (vision, amortised over the patches). Norms,
    activations and softmax are ignored (a few percent at most).
    """
    d = cfg.d_model
    per_layer = cfg.arch_spec.block_flops(cfg)  # gmlp_core.models.archs: each family module counts its block
    total = cfg.n_layers * per_layer
    spec = cfg.spec
    if not spec.is_text:
        total += 2 * cfg.patch_size**2 * cfg.in_channels * d
    if not include_head:
        pass
    elif spec.fill_mask:
        total += 2 * (d * d + d * cfg.vocab_size) if cfg.mlm_head == "bert" else 2 * d * cfg.vocab_size
    elif spec.span:
        total += 2 * d * 2
    else:
        total += (2 * d * cfg.num_classes) // cfg.seq_len  # the pooled classifier, amortised over the positions
    return int(total)


def config_summary(cfg: ModelConfig) -> dict[str, Any]:
    """The row every table of models shows for a config (the zoo, the presets, the ablation, sweeps)."""
    return {
        "arch": cfg.arch,
        "task": cfg.task,
        "layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "d_ffn": cfg.d_ffn,
        "n": cfg.seq_len,
        "gating": cfg.token_mixing,
        "causal": cfg.causal,
        "spatial": cfg.spatial if cfg.has_spatial_weights else "",  # dense or Toeplitz W ("" without W)
        "params": count_parameters(cfg),
        "non_embedding_params": count_parameters(cfg, non_embedding=True),
        "flops_per_token": flops_per_token(cfg),
    }

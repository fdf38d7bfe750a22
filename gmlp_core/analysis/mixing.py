"""How one model mixes tokens on one input, every architecture in one result: the report the dashboard's
"W versus attention" page draws.

- Transformer: attention per layer and head.
- aMLP: its tiny attention, the static W and the input-dependent gate.
- gMLP: the static W and the gate.
- every model: the token-influence map ``||d h_i / d e_j||`` (``influence.token_influence``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from gmlp_core.analysis.attention import attention_maps, gate_maps, model_inputs
from gmlp_core.analysis.influence import BUDGET_GFLOP, influence_method, influence_plan, token_influence

__all__ = ["MixingReport", "mixing_report"]


@dataclass(frozen=True)
class MixingReport:
    """The token mixing of one model on one input, as float32 arrays."""

    attentions: list[np.ndarray]  # per layer (heads, L, L); empty for gMLP
    weights: list[np.ndarray]  # per layer (n, n); empty without spatial weights (Transformer)
    gates: list[np.ndarray]  # per layer (L, gate_dim); empty without spatial weights
    influence: np.ndarray  # (L, L): how much output i moves when input j moves (NaN rows: not computed)
    influence_note: str = ""  # how a big model's influence was cut to the budget ("" when computed whole)
    influence_method: str = "exact"  # "exact", or how it was estimated (influence.influence_method)


def mixing_report(
    model: nn.Module,
    input_ids: Tensor | None = None,
    pixel_values: Tensor | None = None,
    budget_gflop: float = BUDGET_GFLOP,
    rows: Sequence[int] | None = None,
) -> MixingReport:
    """Attention, W, gates and token influence of ``model`` on one input (token ids ``(L,)`` or one image).

    The influence map costs backward passes: within ``budget_gflop`` (see ``influence.influence_plan``), and
    only for the output positions ``rows`` when given (e.g. a padded sentence's real tokens; others are NaN)."""
    inputs = model_inputs(model, input_ids, pixel_values)
    cfg = model.config
    attentions = [a[0].float().cpu().numpy() for a in attention_maps(model, **inputs)] if cfg.has_attention else []
    gates = [g[0].float().cpu().numpy() for g in gate_maps(model, **inputs)] if cfg.has_spatial_weights else []
    weights = [w.float().cpu().numpy() for w in model.spatial_weights()] if cfg.has_spatial_weights else []
    plan = influence_plan(cfg, budget_gflop)
    wanted = plan.rows if rows is None else [r for r in (plan.rows or rows) if r in set(rows)] or list(rows)
    influence = token_influence(model, **inputs, rows=wanted, n_probes=plan.n_probes).float().cpu().numpy()
    length = next(iter(inputs.values())).shape[1] if input_ids is not None else cfg.seq_len
    method = influence_method(length, cfg.d_model, plan.n_probes, device=next(model.parameters()).device)
    return MixingReport(attentions, weights, gates, influence, plan.note, method)

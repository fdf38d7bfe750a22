"""What each architecture computes to mix tokens on one input, read from the model's own outputs.

- ``attention_maps``: the attention probabilities (Transformer: every head; aMLP: its single tiny head).
- ``gate_maps``: gMLP/aMLP's input-dependent gate ``W LN(Z2) + b (+ tiny attention)`` per layer.
- ``attention_distance``: the mean |i - j| each head attends over, the attention analogue of
  ``spatial.mean_abs_offset``.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor, nn

from gmlp_core.models.model import ModelOutput, no_spatial_weights_reason

__all__ = ["attention_distance", "attention_maps", "gate_maps", "model_inputs"]


def model_inputs(
    model: nn.Module, input_ids: Tensor | None = None, pixel_values: Tensor | None = None
) -> dict[str, Tensor]:
    """Validated keyword arguments for one forward pass: ``input_ids`` (B, L) or ``pixel_values`` (B, C, H, W).

    A 1D ``input_ids`` or a 3D ``pixel_values`` is taken as a batch of one. Tensors move to the model's device.
    """
    cfg = model.config
    device = next(model.parameters()).device
    if cfg.is_text:
        if input_ids is None or pixel_values is not None:
            raise ValueError(f"{cfg.spec.noun} takes input_ids (B, L), not pixel_values")
        ids = torch.as_tensor(input_ids, dtype=torch.long, device=device)
        return {"input_ids": ids[None] if ids.dim() == 1 else ids}
    if pixel_values is None or input_ids is not None:
        raise ValueError("a vision model takes pixel_values (B, C, H, W), not input_ids")
    px = torch.as_tensor(pixel_values, device=device).to(next(model.parameters()).dtype)
    return {"pixel_values": px[None] if px.dim() == 3 else px}


def _run(model: nn.Module, inputs: dict[str, Tensor], **flags: bool) -> ModelOutput:
    with torch.no_grad():
        return model.trunk(**inputs, **flags)


def attention_maps(
    model: nn.Module, input_ids: Tensor | None = None, pixel_values: Tensor | None = None
) -> list[Tensor]:
    """Per layer the attention probabilities ``(B, heads, L, L)`` (aMLP: one head); rows sum to 1.

    Raises ValueError for a model without attention (a gMLP: look at ``model.spatial_weights()`` instead).
    """
    spec = model.config.arch_spec
    if not spec.has_attention:
        instead = "the static W (model.spatial_weights())" if spec.gated else f"its {spec.mixing} (token_influence)"
        raise ValueError(f"a {spec.label} has no attention: its token mixing is {instead}")
    out = _run(model, model_inputs(model, input_ids, pixel_values), output_attentions=True)
    return [a.detach() for a in out.attentions]


def gate_maps(model: nn.Module, input_ids: Tensor | None = None, pixel_values: Tensor | None = None) -> list[Tensor]:
    """Per layer the gate ``W LN(Z2) + b`` (aMLP: plus the tiny attention's output), ``(B, L, gate_dim)``.

    With ``gating="linear"`` this is the whole output of the unit (nothing multiplies it). Raises
    ValueError for a model without a spatial gating unit (a Transformer, a Mixer) or with identity gating.
    """
    cfg = model.config
    if not cfg.has_spatial_weights:
        raise ValueError(
            f"this model has no spatial gate ({no_spatial_weights_reason(cfg)}); use attention_maps or token_influence"
        )
    out = _run(model, model_inputs(model, input_ids, pixel_values), output_gates=True)
    return [g.detach() for g in out.gates]


def attention_distance(attentions: list[Tensor]) -> pd.DataFrame:
    """Mean attended distance ``sum_j p_ij |i - j|`` averaged over queries (and the batch), per layer and head."""
    rows = []
    for layer, probs in enumerate(attentions):
        length = probs.shape[-1]
        i = torch.arange(length, device=probs.device)
        dist = (i[:, None] - i[None, :]).abs().to(probs.dtype)  # (L, L)
        per_head = (probs * dist).sum(-1).mean(dim=(0, 2))  # (heads,)
        rows += [{"layer": layer, "head": h, "mean_distance": float(d)} for h, d in enumerate(per_head)]
    return pd.DataFrame(rows)

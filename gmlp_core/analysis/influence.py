"""Token influence: the token-mixing map every architecture has, whatever mixes its tokens.

``influence[i, j] = ||d h_i / d e_j||_F``: how much the final hidden state at position i moves when
the input embedding at position j moves. ``e`` is the input of the block stack (``hidden_states[0]``:
token embeddings, plus position embeddings for the Transformer; patch embeddings for vision) and ``h``
the output of the last block (``hidden_states[-1]``, before the final LayerNorm, which acts on each
position alone and so changes no mixing). It is evaluated at the given input (a local, linearised view).

Only token mixing puts anything off the diagonal: a gMLP with ``gating="identity"`` gives an exactly
diagonal map, a causal model an exactly lower-triangular one, and a gMLP at initialisation (W ~ 0)
a nearly diagonal one.

Exact mode computes every row of every Jacobian block (L * d_model vector-Jacobian products). For
large ``L * d_model`` the default is a Hutchinson estimate: ``E_v ||v^T J_ij||^2 = ||J_ij||_F^2`` for
``v ~ N(0, I)``, with ``n_probes`` Gaussian probes per output position (seeded, so deterministic). An
exactly zero block stays exactly zero in both modes.

The estimate runs under bf16 autocast where bf16 is fast (``precision="auto"``: CUDA, or a CPU with AVX-512
BF16 or AMX): 1.7-2.2x faster for the demo models on one thread of an AVX-512 BF16 CPU, and its rounding (~5e-4
of the map's maximum for the text models, ~1e-2 for the 8 x 8 vision gMLP) is far below the probes' own sampling
error. Exact mode is always float32. Attention takes its explicit path here (``explicit_attention``): the
batched backward has no batching rule for the fused kernel. ``estimate_error`` measures how far an estimate is from the exact map.

A big model cannot afford every row: ``influence_plan`` turns a budget of backward-pass FLOPs into fewer
probes and, beyond that, a centred lattice of output rows (on an image grid: every k-th patch in both
directions), so a 30-layer ImageNet gMLP at n = 196 answers in seconds, not minutes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gmlp_core.analysis.attention import model_inputs
from gmlp_core.hardware import autocast, bf16_is_fast
from gmlp_core.models.config import ModelConfig
from gmlp_core.models.layers import explicit_attention
from gmlp_core.models.stats import flops_per_token

__all__ = [
    "InfluencePlan",
    "estimate_error",
    "influence_gflop",
    "influence_method",
    "influence_plan",
    "influence_precision",
    "layer_influence",
    "token_influence",
]

EXACT_LIMIT = 1024  # L * d_model up to which "auto" computes the exact norms (the tiny presets: 16 x 32)
DEFAULT_PROBES = 16
MIN_PROBES = 2
# Backward-pass work one token-influence map may cost: ~10 s on a 2-core CPU; every demo model fits whole.
BUDGET_GFLOP = 400.0


@dataclass(frozen=True)
class InfluencePlan:
    """What ``token_influence`` computes within a budget: ``rows`` (None: all) and ``n_probes`` (None: default)."""

    rows: list[int] | None
    n_probes: int | None
    note: str  # how the map was computed, for a caption ("" when every row got the default treatment)


def influence_plan(config: ModelConfig, budget_gflop: float = BUDGET_GFLOP, blocks: int | None = None) -> InfluencePlan:
    """Rows and probes that keep ``token_influence`` within ``budget_gflop`` (one VJP costs ~2 forward passes);
    ``blocks``: the work of that many blocks instead of the whole stack (``layer_influence``: 1)."""
    n = config.seq_len
    share = 1.0 if blocks is None else min(blocks, config.n_layers) / config.n_layers
    vjp_gflop = 2 * flops_per_token(config, include_head=False) * n * share / 1e9
    affordable = int(budget_gflop / max(vjp_gflop, 1e-12))
    if affordable >= n * DEFAULT_PROBES or n * config.d_model <= EXACT_LIMIT:
        return InfluencePlan(None, None, "")
    if affordable >= n * MIN_PROBES:
        probes = affordable // n
        return InfluencePlan(None, probes, f"estimated with {probes} random probes per position (a budget of work)")
    max_rows = max(1, affordable // MIN_PROBES)
    grid = config.spatial_grid
    side = grid if grid is not None else n
    stride = next(s for s in range(1, side + 1) if math.ceil(side / s) ** (2 if grid else 1) <= max_rows)
    start = (side - 1 - stride * ((side - 1) // stride)) // 2
    line = range(start, side, stride)
    rows = [r * grid + c for r in line for c in line] if grid is not None else list(line)
    where = f"every {stride}th patch in each direction" if grid is not None else f"every {stride}th position"
    note = (
        f"{len(rows)} of {n} output positions ({where}), {MIN_PROBES} random probes each, to stay within a budget "
        "of work: the other rows are left blank"
    )
    return InfluencePlan(rows, MIN_PROBES, note)


def influence_gflop(config: ModelConfig, n_rows: int | None = None, budget_gflop: float = BUDGET_GFLOP) -> float:
    """The backward-pass work (GFLOP) of the token-influence map that ``influence_plan`` and the automatic
    exact/estimate choice of ``token_influence`` give for ``n_rows`` output rows (all when None): how a page
    decides whether a map is quick enough to compute without asking."""
    n = config.seq_len
    vjp_gflop = 2 * flops_per_token(config, include_head=False) * n / 1e9
    plan = influence_plan(config, budget_gflop)
    rows = len(plan.rows) if plan.rows is not None else (n if n_rows is None else min(n_rows, n))
    per_row = plan.n_probes or (config.d_model if n * config.d_model <= EXACT_LIMIT else DEFAULT_PROBES)
    return vjp_gflop * rows * per_row


def influence_precision(precision: str, exact: bool, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: what an influence map computes in (``precision`` ``"auto"``: bf16 for an
    estimate where bf16 is fast; exact maps are always float32)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision={precision!r}: use auto, fp32 or bf16")
    if exact:
        return "fp32"
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision


def influence_method(
    length: int,
    dim: int,
    n_probes: int | None = None,
    exact: bool | None = None,
    precision: str = "auto",
    device: torch.device | str = "cpu",
) -> str:
    """How ``token_influence`` computes a map of ``length`` positions of width ``dim`` with these arguments, in
    words for a caption: "exact" or "estimated with 16 random probes per position (bf16)"."""
    if exact is None:
        exact = n_probes is None and length * dim <= EXACT_LIMIT
    if exact:
        return "exact"
    where = influence_precision(precision, False, torch.device(device))
    return f"estimated with {n_probes or DEFAULT_PROBES} random probes per position ({where})"


def estimate_error(estimate: Tensor, exact: Tensor) -> dict[str, float]:
    """How far an estimated influence map is from the exact one, over the entries both computed (not NaN):
    ``relative_error`` ||estimate - exact||_F / ||exact||_F, and ``max_error`` the largest entry's error as a
    share of the exact map's largest entry."""
    estimate, exact = torch.as_tensor(estimate, dtype=torch.float64), torch.as_tensor(exact, dtype=torch.float64)
    if estimate.shape != exact.shape:
        raise ValueError(f"maps of different shapes: {tuple(estimate.shape)} and {tuple(exact.shape)}")
    both = ~(estimate.isnan() | exact.isnan())
    diff, ref = (estimate - exact)[both], exact[both]
    scale = ref.norm().item()
    return {
        "relative_error": diff.norm().item() / scale if scale > 0 else 0.0,
        "max_error": diff.abs().max().item() / ref.abs().max().item() if scale > 0 else 0.0,
    }


def _hidden(model: nn.Module, embeds: Tensor) -> Tensor:
    return model.trunk(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1]


def _probe_chunks(
    rows: list[int], length: int, dim: int, n_probes: int | None, seed: int, chunk_size: int, device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    """Output-side vectors in chunks: ``(P, L, d)``, each nonzero at one output position only, and that position.

    Exact: every unit vector ``e_(i, k)``; estimate: ``n_probes`` Gaussian vectors per position (scaled by
    1/sqrt(n_probes) so the squared norms average to the Frobenius norm). Built chunk by chunk, never all at once.
    """
    per_row = dim if n_probes is None else n_probes
    g = torch.Generator().manual_seed(seed)
    gaussian = None
    if n_probes is not None:  # drawn for every position, so a row's estimate does not depend on which rows are asked
        gaussian = (torch.randn(length, n_probes, dim, generator=g) / n_probes**0.5)[rows]
    total = len(rows) * per_row
    for start in range(0, total, chunk_size):
        index = torch.arange(start, min(start + chunk_size, total))
        row_idx, k = index // per_row, index % per_row
        owner = torch.tensor(rows)[row_idx]
        v = torch.zeros(len(index), length, dim)
        if gaussian is None:
            v[torch.arange(len(index)), owner, k] = 1.0
        else:
            v[torch.arange(len(index)), owner] = gaussian[row_idx, k]
        yield v.to(device), owner.to(device)


def _one_input(model: nn.Module, input_ids: Tensor | None, pixel_values: Tensor | None, who: str) -> dict[str, Tensor]:
    """The model's inputs for one example, refusing a batch: the maps are of one input."""
    inputs = model_inputs(model, input_ids, pixel_values)
    batch = next(iter(inputs.values())).shape[0]
    if batch != 1:
        raise ValueError(f"{who} takes one input (batch of 1), got a batch of {batch}")
    return inputs


def token_influence(
    model: nn.Module,
    input_ids: Tensor | None = None,
    pixel_values: Tensor | None = None,
    *,
    rows: Sequence[int] | None = None,
    n_probes: int | None = None,
    exact: bool | None = None,
    seed: int = 0,
    chunk_size: int = 64,
    precision: str = "auto",
) -> Tensor:
    """The ``(L, L)`` map ``||d h_i / d e_j||_F`` for one input (batch of one), as float32 on the CPU.

    ``exact=None`` (auto) is exact when ``L * d_model <= EXACT_LIMIT``, else estimated with
    ``n_probes`` (default 16) Gaussian probes per position. ``rows`` limits the work to those output
    positions i (e.g. the real tokens before padding; cost is proportional to their number); the other
    rows are NaN. The model is not modified: gradients are taken with respect to a detached copy of
    the embeddings only. ``precision``: ``"auto"`` (bf16 for an estimate where bf16 is fast), ``"fp32"``, ``"bf16"``;
    exact mode is always float32.
    """
    inputs = _one_input(model, input_ids, pixel_values, "token_influence")
    with torch.no_grad():
        embeds = model.trunk(**inputs, output_hidden_states=True).hidden_states[0]
    return _jacobian_norms(lambda x: _hidden(model, x), embeds, rows, n_probes, exact, seed, chunk_size, precision)


def layer_influence(
    model: nn.Module,
    layer: int,
    input_ids: Tensor | None = None,
    pixel_values: Tensor | None = None,
    *,
    rows: Sequence[int] | None = None,
    n_probes: int | None = None,
    exact: bool | None = None,
    seed: int = 0,
    chunk_size: int = 64,
    precision: str = "auto",
    attention_mask: Tensor | None = None,
) -> Tensor:
    """Token influence restricted to one block: ``||d u_i / d x_j||_F`` with ``x`` the block's input on this
    input (``hidden_states[layer]``) and ``u = block(x) - x`` its update (the residual, an identity on the
    diagonal, left out). For a gMLP this is the per-input mixing of the spatial gating unit,
    ``Z1_i * (sum_j W_ij LN(Z2)_j + b_i)`` differentiated: zero wherever ``W_ij`` is; for a Transformer, of
    its attention (and the FFN after it). Same modes and arguments as ``token_influence``; ``attention_mask``
    ``(1, L)`` masks padding keys of attention as a finetuned classifier was trained (W has no notion of it)."""
    inputs = _one_input(model, input_ids, pixel_values, "layer_influence")
    n_layers = len(model.blocks)
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must be in 0..{n_layers - 1}, got {layer}")
    with torch.no_grad():
        x = model.trunk(**inputs, attention_mask=attention_mask, output_hidden_states=True).hidden_states[layer]
    block = model.blocks[layer]
    return _jacobian_norms(
        lambda h: block(h, attention_mask, False, False)[0] - h, x, rows, n_probes, exact, seed, chunk_size, precision
    )


def _jacobian_norms(
    fn: Callable[[Tensor], Tensor],
    x0: Tensor,
    rows: Sequence[int] | None,
    n_probes: int | None,
    exact: bool | None,
    seed: int,
    chunk_size: int,
    precision: str = "fp32",
) -> Tensor:
    """``||d fn(x)_i / d x_j||_F`` at ``x0`` ``(1, L, d)`` for the output rows ``rows`` (others NaN), float32 on the
    CPU: exact (one VJP per output coordinate) or a Hutchinson estimate with Gaussian probes (see the module)."""
    _, length, dim = x0.shape
    rows = list(range(length)) if rows is None else sorted({int(i) for i in rows})
    if not rows or rows[0] < 0 or rows[-1] >= length:
        raise ValueError(f"rows must be positions in 0..{length - 1}, got {rows}")
    if exact is None:
        exact = n_probes is None and length * dim <= EXACT_LIMIT
    probes = _probe_chunks(
        rows, length, dim, None if exact else (n_probes or DEFAULT_PROBES), seed, chunk_size, x0.device
    )
    influence2 = torch.zeros(length, length, dtype=torch.float32, device=x0.device)
    where = influence_precision(precision, exact, x0.device)
    with torch.enable_grad(), autocast(where, x0.device), explicit_attention():
        x = x0.detach().clone().requires_grad_(True)  # (1, L, d)
        h = fn(x)  # (1, L, d)
        for v, owner in probes:
            (grads,) = torch.autograd.grad(h, x, v[:, None].to(h.dtype), retain_graph=True, is_grads_batched=True)
            sq = grads[:, 0].float().pow(2).sum(-1)  # (P, L): ||v^T J_(i, j)||^2 for each input position j
            influence2.index_add_(0, owner, sq)
    out = influence2.sqrt().cpu()
    if len(rows) < length:
        skipped = torch.ones(length, dtype=torch.bool)
        skipped[rows] = False
        out[skipped] = float("nan")
    return out

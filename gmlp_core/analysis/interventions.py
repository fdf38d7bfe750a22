"""Interventions: edit what a model mixes tokens with, and measure what the edit costs.

Looking at W shows structure (a narrow shift-invariant band); editing W tests whether the model *uses* that
structure. ``intervene`` returns an edited copy and never changes the model it is given (the dashboard shares
one cached model among all sessions). Kinds:

- on gMLP/aMLP's spatial weights W (per layer; ``layers="all"`` or a list):
  ``toeplitz`` (W -> its shift-invariant projection, the mean of each diagonal; on the patch grid for vision),
  ``band`` (zero W beyond distance ``k`` from the diagonal; the Chebyshev distance on the grid for vision),
  ``zero`` (W = 0: the gate is just b, no token mixing), ``shuffle`` (permute W's columns with a seeded
  permutation: same weights, wrong positions), ``transpose`` (W -> W^T: mixing in the other direction),
  ``smooth`` (keep the ``k`` largest singular values: a rank-k W);
- on aMLP: ``no-attention`` (drop the tiny attention from the chosen layers);
- on the Transformer: ``heads-off`` (zero the output of the chosen ``heads``) and ``uniform`` (every query
  attends uniformly to the real tokens it may see: the query projection is zeroed, so all scores are equal).

A causal model stays causal whatever the edit: its forward pass masks W to the lower triangle (so a transposed
causal W keeps only its diagonal), and attention keeps its causal mask.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmlp_core.analysis.spatial import distances, toeplitz_decomposition
from gmlp_core.limits import EVAL_BATCH
from gmlp_core.models import IGNORE_INDEX
from gmlp_core.models.archs import HEADS, TINY

W_KINDS = ("toeplitz", "band", "zero", "shuffle", "transpose", "smooth")
AMLP_KINDS = ("no-attention",)
TRANSFORMER_KINDS = ("heads-off", "uniform")
KINDS = W_KINDS + AMLP_KINDS + TRANSFORMER_KINDS


def kinds_for(config: Any) -> tuple[str, ...]:
    """The intervention kinds that apply to a model of ``config``."""
    attention = config.arch_spec.attention
    if attention == HEADS:
        return TRANSFORMER_KINDS
    w = W_KINDS if config.has_spatial_weights else ()
    return w + (AMLP_KINDS if attention == TINY else ())


def no_kinds_reason(config: Any) -> str:
    """Why no intervention applies to a model of ``config`` (``kinds_for`` is empty), in a clause."""
    if config.arch_spec.gated:
        return "identity gating: it has no token mixing to edit"
    spec = config.arch_spec
    return f"the interventions edit W or attention, and the {spec.label} mixes tokens with its {spec.mixing} instead"


def _layers(model: nn.Module, layers: str | int | Sequence[int]) -> list[int]:
    n = model.config.n_layers
    if layers == "all":
        return list(range(n))
    chosen = [layers] if isinstance(layers, int) else list(layers)
    bad = [i for i in chosen if not isinstance(i, int) or not 0 <= i < n]
    if bad or not chosen:
        raise ValueError(f"layers must be 'all' or indices from 0 to {n - 1}; got {layers!r}")
    return sorted(set(chosen))


def _need_k(kind: str, k: int | None, low: int) -> int:
    if k is None or isinstance(k, bool) or not isinstance(k, int) or k < low:
        raise ValueError(f"{kind} needs an integer k >= {low}, got {k!r}")
    return k


def edit_w(
    w: Tensor,
    kind: str,
    *,
    k: int | None = None,
    grid: int | None = None,
    seed: int = 0,
    permutation: Tensor | None = None,
) -> Tensor:
    """The edited (n, n) matrix for a W kind (a pure function of W); ``shuffle`` uses ``permutation`` when
    given, else a permutation drawn with ``seed``."""
    n = w.shape[0]
    if kind == "toeplitz":
        return toeplitz_decomposition(w, grid)[0].to(w.dtype)
    if kind == "band":
        return w * (distances(n, grid) <= _need_k(kind, k, 0)).to(w)
    if kind == "zero":
        return torch.zeros_like(w)
    if kind == "shuffle":
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if permutation is None else permutation
        if sorted(perm.tolist()) != list(range(n)):
            raise ValueError(f"shuffle needs a permutation of 0..{n - 1}")
        return w[:, perm]
    if kind == "transpose":
        return w.T.clone()
    if kind == "smooth":
        u, s, vh = torch.linalg.svd(w.double())
        rank = min(_need_k(kind, k, 1), n)
        return ((u[:, :rank] * s[:rank]) @ vh[:rank]).to(w.dtype)
    raise ValueError(f"{kind!r} is not a W intervention; W kinds: {', '.join(W_KINDS)}")


def _set_dense_w(spatial: nn.Module, w: Tensor) -> None:
    """Give a SpatialWeight the dense matrix ``w`` (a Toeplitz-parameterised one becomes dense)."""
    spatial.toeplitz = False
    spatial.weight = nn.Parameter(w.detach().clone().to(spatial.bias), requires_grad=False)


def intervene(
    model: nn.Module,
    kind: str,
    layers: str | int | Sequence[int] = "all",
    *,
    k: int | None = None,
    heads: Sequence[int] | None = None,
    seed: int = 0,
) -> nn.Module:
    """An edited copy of ``model`` (in eval mode); ``model`` itself is never changed.

    ``k``: the band width (``band``) or the rank (``smooth``); ``heads``: which heads ``heads-off`` zeroes
    (default: all of them); ``seed``: the permutation of ``shuffle``.
    """
    cfg = model.config
    if kind not in KINDS:
        raise ValueError(f"unknown intervention {kind!r}; kinds: {', '.join(KINDS)}")
    allowed = kinds_for(cfg)
    if kind not in allowed:
        what = f"{cfg.arch_spec.label} ({cfg.gating} gating)" if cfg.arch_spec.gated else f"a {cfg.arch_spec.label}"
        raise ValueError(f"{kind!r} does not apply to {what}; its kinds: {', '.join(allowed) or 'none'}")
    chosen = _layers(model, layers)
    edited = copy.deepcopy(model).eval()
    for p in edited.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        for i in chosen:
            block = edited.blocks[i]
            if kind in W_KINDS:
                spatial = block.sgu.spatial
                _set_dense_w(spatial, edit_w(spatial.matrix(), kind, k=k, grid=cfg.spatial_grid, seed=seed + i))
            elif kind == "no-attention":
                block.tiny_attn = None
            elif kind == "heads-off":
                d_head = cfg.d_model // cfg.n_heads
                off = list(range(cfg.n_heads)) if heads is None else list(heads)
                if not off or any(not isinstance(h, int) or not 0 <= h < cfg.n_heads for h in off):
                    raise ValueError(f"heads must be indices from 0 to {cfg.n_heads - 1}; got {heads!r}")
                for h in off:  # head h's output is columns h*d_head:(h+1)*d_head of the output projection's input
                    block.attn_out.weight[:, h * d_head : (h + 1) * d_head] = 0.0
            elif kind == "uniform":
                block.qkv.weight[: cfg.d_model] = 0.0  # q = 0: every score equal, softmax uniform over allowed keys
                block.qkv.bias[: cfg.d_model] = 0.0
    return edited


# ---- measuring an edit ------------------------------------------------------------------------


@dataclass
class InterventionResult:
    """Validation metric before and after an edit, and (MLM, given a sentence) fill-mask before and after."""

    kind: str
    layers: list[int]
    params: dict[str, Any]
    metric: str  # "val_ppl" (MLM) or "val_accuracy" (vision)
    before: float
    after: float
    examples: int  # masked tokens (MLM) or images (vision) the metric is measured on
    seconds: float
    fill_mask: pd.DataFrame | None = field(default=None, repr=False)  # mask, rank, token_before/after, p_*

    def as_dict(self) -> dict[str, Any]:
        """The CLI's JSON: ``val_ppl_before``/``val_ppl_after`` (or ``accuracy_before``/``accuracy_after``)."""
        name = "val_ppl" if self.metric == "val_ppl" else "accuracy"
        return {
            "kind": self.kind,
            "layers": self.layers,
            **self.params,
            f"{name}_before": self.before,
            f"{name}_after": self.after,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class HeldOut:
    """The fixed held-out set interventions are measured on: ``batches`` of (input_ids, labels) for MLM (labels
    -100 where nothing is predicted), (pixel_values, labels) for vision, or (input_ids, class ids) for a finetuned
    text classifier ("classify")."""

    task: str
    batches: list[tuple[Tensor, Tensor]]

    @property
    def examples(self) -> int:
        """Masked tokens (MLM) or images (vision)."""
        if self.task == "mlm":
            return sum(int((labels != IGNORE_INDEX).sum()) for _, labels in self.batches)
        return sum(len(labels) for _, labels in self.batches)


HELD_OUT_SEEDS = (1234, 4321)  # the validation windows, masked twice: 2,428 masked tokens for the zoo


def validation_data(model: nn.Module, tokenizer: Any | None = None, data: str | None = None) -> HeldOut:
    """The held-out set for ``model``: every validation window of its text masked with two fixed seeds, so that
    over 2,000 tokens are predicted; or the held-out digits (images). ``data`` defaults to the built-in data the
    model records it was trained on (``python-docs`` for the zoo), else the task's default built-in set."""
    from gmlp_core.evaluate import built_in_data

    cfg = model.config
    if cfg.is_text and not cfg.spec.fill_mask:
        return _finetuned_validation(model, tokenizer)
    spec = data or built_in_data(cfg)
    if cfg.task == "vision":
        from gmlp_core.data.canvas import CANVAS_DIGITS, canvas_digits_split
        from gmlp_core.data.images import load_image_dataset

        if spec == CANVAS_DIGITS:
            x, y = canvas_digits_split("validation", cfg.image_size)
        else:
            x, y = load_image_dataset(spec, "validation")
        return HeldOut("vision", [(x[i : i + EVAL_BATCH], y[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])
    if tokenizer is None:
        raise ValueError("an MLM model needs its tokenizer to measure perplexity")
    from gmlp_core.data.masking import validation_batches
    from gmlp_core.data.text import load_text_corpus
    from gmlp_core.train.data import token_stream

    stream = token_stream(tokenizer, load_text_corpus(spec).validation)
    vocab = tokenizer.get_vocab_size()
    batches = [b for seed in HELD_OUT_SEEDS for b in validation_batches(stream, cfg.seq_len, vocab, seed=seed)]
    return HeldOut("mlm", batches)


def _finetuned_validation(model: nn.Module, tokenizer: Any | None) -> HeldOut:
    """A finetuned text classifier's held-out set: the validation split of the built-in task it was finetuned on
    (input_ids, labels); padding is where ``input_ids`` holds the pad id, as the task's encoding puts it."""
    from gmlp_core.train.data import FinetuneData
    from gmlp_core.train.finetune import recorded_task

    cfg = model.config
    task = recorded_task(cfg)
    if not cfg.spec.classes:
        raise ValueError(f"{cfg.spec.noun} ({task.name}): interventions measure classifiers, MLM and vision models")
    if not task.built_in:
        raise ValueError(f"finetuned on {task.name}, a hub task: its held-out data is not on this machine")
    if tokenizer is None:
        raise ValueError("a text classifier needs its tokenizer to encode its task's validation split")
    data = FinetuneData.build(task.name, tokenizer, cfg.seq_len).splits["validation"]
    n = len(data.examples)
    batches = [(data.input_ids[i : i + EVAL_BATCH], data.labels[i : i + EVAL_BATCH]) for i in range(0, n, EVAL_BATCH)]
    return HeldOut("classify", batches)


def measure(model: nn.Module, held_out: HeldOut) -> tuple[str, float, int]:
    """(name, value, examples): perplexity over the masked tokens, or accuracy over the images or the texts of a
    finetuned classifier."""
    total, count = 0.0, 0
    with torch.inference_mode():
        for inputs, labels in held_out.batches:
            inputs, labels = inputs.to(model.device), labels.to(model.device)
            if held_out.task in ("vision", "classify"):
                if held_out.task == "vision":
                    logits = model(pixel_values=inputs).logits
                else:
                    logits = model(input_ids=inputs, attention_mask=inputs != model.config.pad_token_id).logits
                total += int((logits.argmax(-1) == labels).sum())
                count += len(labels)
                continue
            out = model(input_ids=inputs, labels=labels)
            target = labels[labels != IGNORE_INDEX]
            total += float(F.cross_entropy(out.masked_logits.float(), target, reduction="sum"))
            count += target.numel()
    if held_out.task in ("vision", "classify"):
        return "val_accuracy", total / count, count
    return "val_ppl", math.exp(total / count), count


def evaluate_intervention(
    model: nn.Module,
    edited: nn.Module,
    held_out: HeldOut,
    *,
    kind: str = "",
    layers: Sequence[int] = (),
    params: dict[str, Any] | None = None,
    tokenizer: Any | None = None,
    sentence: str | None = None,
    top_k: int = 5,
    before: float | None = None,
) -> InterventionResult:
    """The validation metric of ``model`` and ``edited`` on ``held_out`` (``validation_data``), and for an
    MLM ``sentence`` the fill-mask top-k of both side by side. ``before`` skips re-measuring the original."""
    start = time.perf_counter()
    metric, after, examples = measure(edited, held_out)
    if before is None:
        before = measure(model, held_out)[1]
    table = None
    if sentence is not None and model.config.task == "mlm":
        from gmlp_core.inference import fill_mask

        a = fill_mask(model, tokenizer, sentence, top_k=top_k).table
        b = fill_mask(edited, tokenizer, sentence, top_k=top_k).table
        keys = ["mask_index", "position", "rank"]
        table = a[[*keys, "token", "probability"]].merge(
            b[[*keys, "token", "probability"]], on=keys, suffixes=("_before", "_after")
        )
    return InterventionResult(
        kind=kind,
        layers=list(layers),
        params=dict(params or {}),
        metric=metric,
        before=before,
        after=after,
        examples=examples,
        seconds=time.perf_counter() - start,
        fill_mask=table,
    )


def probe(
    model: nn.Module,
    kind: str,
    layers: str | int | Sequence[int] = "all",
    *,
    held_out: HeldOut,
    k: int | None = None,
    heads: Sequence[int] | None = None,
    seed: int = 0,
    tokenizer: Any | None = None,
    sentence: str | None = None,
    before: float | None = None,
) -> InterventionResult:
    """``intervene`` then ``evaluate_intervention``: the one call behind the CLI's ``probe`` and the page."""
    chosen = _layers(model, layers)
    params = {
        k_: v for k_, v in (("k", k), ("heads", heads), ("seed", seed if kind == "shuffle" else None)) if v is not None
    }
    edited = intervene(model, kind, chosen, k=k, heads=heads, seed=seed)
    return evaluate_intervention(
        model,
        edited,
        held_out,
        kind=kind,
        layers=chosen,
        params=params,
        tokenizer=tokenizer,
        sentence=sentence,
        before=before,
    )


def band_sweep(model: nn.Module, held_out: HeldOut, ks: Sequence[int] | None = None) -> pd.DataFrame:
    """Perplexity (accuracy) with ``band`` of width k applied to one layer at a time, for each layer and k:
    "how local does W need to be?". Columns: layer, k, metric, value, unedited."""
    cfg = model.config
    n, grid = cfg.seq_len, cfg.spatial_grid
    widest = int(distances(n, grid).max())
    if ks is None:
        ks = sorted({0, 1, 2, 4, 8, 16, 32, widest} & set(range(widest + 1)))
    metric, unedited, _ = measure(model, held_out)
    rows = []
    for layer in range(cfg.n_layers):
        for k in ks:
            _, value, _ = measure(intervene(model, "band", [layer], k=k), held_out)
            rows.append({"layer": layer, "k": k, "metric": metric, "value": value, "unedited": unedited})
    return pd.DataFrame(rows)


def knockouts(model: nn.Module, held_out: HeldOut) -> pd.DataFrame:
    """The metric after knocking out one unit at a time: each layer's W (``zero``), aMLP's tiny attention per
    layer (``no-attention``), each Transformer head per layer (``heads-off``). Columns: unit, kind, layer,
    head, metric, value, unedited."""
    cfg = model.config
    metric, unedited, _ = measure(model, held_out)
    rows = []

    def add(kind: str, layer: int, head: int | None, edited: nn.Module, unit: str) -> None:
        value = measure(edited, held_out)[1]
        rows.append({"unit": unit, "kind": kind, "layer": layer, "head": head, "metric": metric, "value": value})

    for layer in range(cfg.n_layers):
        if cfg.arch_spec.attention == HEADS:
            for head in range(cfg.n_heads):
                add("heads-off", layer, head, intervene(model, "heads-off", [layer], heads=[head]), f"L{layer} H{head}")
            continue
        if cfg.has_spatial_weights:
            add("zero", layer, None, intervene(model, "zero", [layer]), f"L{layer} W")
        if cfg.arch_spec.attention == TINY:
            add("no-attention", layer, None, intervene(model, "no-attention", [layer]), f"L{layer} attention")
    table = pd.DataFrame(rows)
    table["unedited"] = unedited
    return table

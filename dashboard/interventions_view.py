"""Interventions page: cached runs of ``gmlp_core.analysis.interventions`` and the sentence that says what a
result means. The library edits and measures; this module caches per checkpoint and words the outcome."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.loaders import Checkpoint, load, per_checkpoint
from gmlp_core.analysis import interventions as iv

EXPLAIN = {
    "toeplitz": "W replaced by its shift-invariant part (the mean of each diagonal; of each 2D offset for images)",
    "band": "W cut to a band: every weight farther than k positions from the diagonal set to 0",
    "zero": "W set to 0: the gate is just the bias b, so the layer's W mixes no tokens",
    "shuffle": "W's columns permuted: the same weights, attached to the wrong input positions",
    "transpose": "W transposed: every token now mixes in the opposite direction",
    "smooth": "W replaced by its best rank-k approximation (its k largest singular values)",
    "no-attention": "aMLP's tiny attention removed: only W mixes tokens",
    "heads-off": "the chosen attention heads' outputs set to 0",
    "uniform": "attention made uniform: every token attends equally to every real token it may see",
}


@dataclass(frozen=True)
class Run:
    """One edit of one checkpoint, measured: what the page draws."""

    kind: str
    layers: tuple[int, ...]
    metric: str  # "val_ppl" or "val_accuracy"
    before: float
    after: float
    examples: int
    w_before: np.ndarray | None  # the shown layer's W, before and after (gMLP / aMLP)
    w_after: np.ndarray | None
    fill_mask: pd.DataFrame | None

    @property
    def change(self) -> float:
        """Relative change of perplexity, or the change of accuracy in points."""
        if self.metric == "val_ppl":
            return self.after / self.before - 1.0
        return (self.after - self.before) * 100


@per_checkpoint(st.cache_resource, max_entries=16, show_spinner="Preparing the held-out set...")
def held_out(checkpoint: Checkpoint) -> iv.HeldOut:
    """The fixed held-out set of ``checkpoint`` (shared, read-only)."""
    loaded = load(checkpoint)
    return iv.validation_data(loaded.model, loaded.tokenizer)


@per_checkpoint(max_entries=16, show_spinner="Measuring the unedited model...")
def baseline(checkpoint: Checkpoint) -> float:
    """The unedited model's metric on the held-out set, measured once per checkpoint."""
    return iv.measure(load(checkpoint).model, held_out(checkpoint))[1]


@per_checkpoint(max_entries=128, show_spinner="Editing the model and measuring it...")
def run(
    checkpoint: Checkpoint,
    kind: str,
    layers: tuple[int, ...],
    k: int | None,
    heads: tuple[int, ...] | None,
    sentence: str | None,
    show_layer: int,
) -> Run:
    """Apply one intervention to a copy of the shared model and measure it (the shared model is untouched)."""
    loaded = load(checkpoint)
    edited = iv.intervene(loaded.model, kind, list(layers), k=k, heads=list(heads) if heads else None)
    result = iv.evaluate_intervention(
        loaded.model,
        edited,
        held_out(checkpoint),
        kind=kind,
        layers=layers,
        tokenizer=loaded.tokenizer,
        sentence=sentence,
        before=baseline(checkpoint),
    )
    w_before = w_after = None
    if kind in iv.W_KINDS:
        w_before = loaded.model.spatial_weights()[show_layer].cpu().numpy()
        w_after = edited.spatial_weights()[show_layer].cpu().numpy()
    return Run(
        kind, layers, result.metric, result.before, result.after, result.examples, w_before, w_after, result.fill_mask
    )


@per_checkpoint(max_entries=16, show_spinner="Knocking out each layer and head in turn...")
def knockout_table(checkpoint: Checkpoint) -> pd.DataFrame:
    """The metric after knocking out each unit alone (W per layer, tiny attention per layer, head per layer)."""
    return iv.knockouts(load(checkpoint).model, held_out(checkpoint))


@per_checkpoint(max_entries=16, show_spinner="Cutting W to bands of every width, one layer at a time...")
def band_table(checkpoint: Checkpoint) -> pd.DataFrame:
    """The metric over band width k for each layer (gMLP / aMLP)."""
    return iv.band_sweep(load(checkpoint).model, held_out(checkpoint))


def metric_label(metric: str) -> str:
    return "validation perplexity" if metric == "val_ppl" else "validation accuracy"


def meaning(run: Run) -> str:
    """One paragraph: what this edit did and what the change of the metric says about the model."""
    what = EXPLAIN[run.kind]
    layers = "every layer" if len(run.layers) > 1 else f"layer {run.layers[0]}"
    if run.metric == "val_ppl":
        size = f"perplexity {run.before:.1f} -> {run.after:.1f} ({run.change:+.1%})"
        small, large = abs(run.change) < 0.02, run.change > 0.2
    else:
        size = f"accuracy {run.before:.1%} -> {run.after:.1%} ({run.change:+.1f} points)"
        small, large = abs(run.change) < 1.0, run.change < -5.0
    if small:
        verdict = (
            "The model barely notices: what the edit removed is not something it relies on "
            "(or other layers make up for it)."
        )
    elif large:
        verdict = "A large cost: the model relies on what the edit removed."
    else:
        verdict = "A modest cost: the model uses what the edit removed, but not for much."
    improved = (run.metric == "val_ppl" and run.change < -0.02) or (run.metric != "val_ppl" and run.change > 1.0)
    if improved:
        verdict = "The edited model is *better* on held-out text: what the edit removed looks like noise the model fit."
    hints = {
        "toeplitz": " A small change here says the model uses W as a convolution: its position-specific part "
        "carries little.",
        "band": " A small change says the model needs no mixing beyond k positions in this layer.",
        "shuffle": " A large cost says positions matter: W's weights are tied to the offsets they were learned at.",
        "transpose": " A large cost says the direction of mixing matters (left context and right context differ).",
    }
    return f"**{what[0].upper()}{what[1:]}**, in {layers}: {size}. {verdict}{hints.get(run.kind, '')}"

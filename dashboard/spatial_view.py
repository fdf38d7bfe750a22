"""The Spatial weights page's parts: the cached spatial report, its arrays reshaped for plotting, and the
training-snapshot timeline of W (a fragment: moving its slider reruns only this part of the page)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard import loaders, plots, widgets
from dashboard.loaders import Checkpoint, load, per_checkpoint
from gmlp_core.analysis import spatial as sp
from gmlp_core.models import ModelConfig

_GATING_FORMULA = {
    "split": "`s(Z) = Z1 * (W LN(Z2) + b)`, with Z split in half along channels",
    "multiplicative": "`s(Z) = Z * (W LN(Z) + b)`, gating without the split (an ablation)",
    "additive": "`s(Z) = Z + (W LN(Z) + b)`, W's mixing added instead of gating (an ablation)",
    "linear": "`s(Z) = W LN(Z) + b`, mixing with no gating at all (an ablation)",
}

# What each column of the per-layer table means, in one sentence (the page shows them; the table's headers help).
SCORE_DEFINITIONS = {
    "locality": "share of sum |W| within band_k positions of the diagonal (in both directions on an image grid)",
    "locality_random": "what locality gives for a W with no preference: the share of entries inside that band",
    "band_k": "the band's radius: n/16 positions in text, grid/8 patches on an image grid (at least 1)",
    "mean_abs_offset": "the distance between output and input position, averaged with weights |W|",
    "shift_invariance": "share of W's variance (about its mean) that its Toeplitz part explains: 1 = a convolution",
    "shift_invariance_random": "what shift invariance gives by chance for a W of independent random entries",
    "w_norm": "Frobenius norm of W (it starts near zero: every block begins as a plain FFN)",
    "w_abs_max": "largest |W| entry",
    "diagonal_mean": "mean of W's diagonal: how much each position feeds itself",
    "bias_mean": "mean of the per-position bias b (initialised to 1)",
    "bias_std": "spread of b over positions",
}


def mixing_text(config: ModelConfig) -> str:
    """The page's opening sentence for the model shown: what mixes tokens in it, following its config."""
    formula = _GATING_FORMULA.get(config.gating, f"gating {config.gating}")
    if config.arch == "amlp":
        text = (
            f"In this aMLP, tokens mix in two ways: W, in {formula}, learned once and the same for every input, and "
            "a tiny single-head attention whose output is added to `W LN(Z2) + b` before the gating, which changes "
            "with the input (see W versus attention). This page shows W."
        )
    else:
        text = (
            f"In this gMLP the only token mixing is W, in {formula}: row *i* of the n x n matrix W says how much "
            "each input position *j* feeds output position *i*. W is learned once and is the same for every input."
        )
    if config.causal:
        text += " **Causal**: W is masked to its lower triangle, so each position reads only itself and earlier ones."
    if config.spatial == "toeplitz":
        text += (
            " **Toeplitz W**: stored as one weight per offset, so it is shift-invariant **by construction**: shift "
            "invariance is 1 and the residual is empty in every layer because of the architecture, not learned."
        )
    return text


@per_checkpoint(max_entries=32, show_spinner="Analysing W...")
def spatial(checkpoint: Checkpoint) -> sp.SpatialReport:
    """W, its Toeplitz decomposition and per-layer scores of ``checkpoint``, on the config's grid."""
    return sp.spatial_report(load(checkpoint).model)


def profile_matrix(profiles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The long (layer, offset, weight) table as a (layers, offsets) array and the offsets."""
    wide = profiles.pivot_table(index="layer", columns="offset", values="weight").sort_index()
    return wide.to_numpy(), wide.columns.to_numpy()


def rows_as_filters(weights: np.ndarray, grid: int) -> np.ndarray:
    """Each row of one layer's W (n = grid^2) drawn on the patch grid: (n, grid, grid)."""
    return sp.rows_as_images(torch.from_numpy(weights), grid).numpy()


@st.fragment
def snapshot_timeline(checkpoint: Checkpoint, layer: int) -> None:
    """A slider over the saved training steps showing layer ``layer``'s W and its middle row at that step."""
    name = checkpoint.name
    snaps = loaders.snapshots(checkpoint)
    if not snaps:
        st.info("This checkpoint has no training snapshots (`spatial_snapshots.safetensors`, written during training).")
        return
    steps = list(snaps)
    step = (
        st.select_slider("Training step", steps, value=steps[-1], key=f"snap-step-{name}")
        if len(steps) > 1
        else steps[0]
    )
    weights = snaps[step]
    if layer >= weights.shape[0]:
        st.warning(f"The snapshots have {weights.shape[0]} layers; pick a lower layer.")
        return
    w = weights[layer]
    middle = w.shape[0] // 2
    # One colour range for every step, so near-zero W at initialisation looks near zero (it starts as noise of
    # ~1e-5 and grows to ~0.3); rescaling to the step is an explicit choice.
    rescale = st.toggle("Rescale colours to this step", value=False, key=f"snap-rescale-{name}")
    zmax = None if rescale else shared_range(snaps, layer)
    left, right = st.columns([3, 2])
    with left:
        title = f"Layer {layer} at step {step}" + (" (colours rescaled to this step)" if rescale else "")
        widgets.chart(plots.matrix(w, title=title, height=470, zmax=zmax), key=f"snap-w-{name}")
    with right:
        profiles = [snaps[s][layer, middle] for s in steps]
        fig = plots.curves_over_steps(profiles, steps, step, middle)
        widgets.chart(fig, key=f"snap-profile-{name}")
    st.caption(f"{len(steps)} snapshots from step {steps[0]} to {steps[-1]}. The darker line is the selected step.")


def filter_stride(grid: int, max_per_side: int = 8) -> int:
    """Every how many pixels a filter is drawn: every other one, more sparsely on large grids (<= 64 panels)."""
    return max(2, math.ceil(grid / max_per_side))


def stride_options(grid: int, max_per_side: int = 8) -> list[int]:
    """The strides that draw at most ``max_per_side`` x ``max_per_side`` filters (1: every position)."""
    return [s for s in range(1, grid) if math.ceil(grid / s) <= max_per_side] or [grid]


def filter_positions(grid: int, stride: int) -> list[int]:
    """Row-major positions every ``stride`` patches in each direction, the lattice centred on the grid."""
    start = (grid - 1 - stride * ((grid - 1) // stride)) // 2
    return [r * grid + c for r in range(start, grid, stride) for c in range(start, grid, stride)]


def centre_filters(report: sp.SpatialReport) -> tuple[list[np.ndarray], int]:
    """The paper's figure on an image grid: the centre patch's row of W in every layer, as a grid x grid filter."""
    grid = report.grid
    centre = (grid // 2) * grid + grid // 2
    return [w[centre].reshape(grid, grid) for w in report.weights], centre


def shared_range(snaps: dict[int, np.ndarray], layer: int) -> float:
    """The largest |W| of ``layer`` over every saved step: one colour range for the whole timeline."""
    peak = max(float(np.abs(w[layer]).max()) for w in snaps.values())
    return peak if peak > 0 else 1.0

"""The Spatial weights page's parts: the cached spatial report, its arrays reshaped for plotting, and the
training-snapshot timeline of W (an animation played in the browser, inside a fragment: moving its controls reruns
only this part of the page)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard import loaders, plots, widgets
from dashboard.context import Lens
from dashboard.loaders import Checkpoint, load, per_checkpoint
from dashboard.style import escape_markdown
from dashboard.training_view import METRIC_LABELS
from gmlp_core.analysis import spatial as sp
from gmlp_core.checkpoints import CheckpointError
from gmlp_core.models import ModelConfig
from gmlp_core.models.model import no_spatial_weights_reason

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
    if config.has_attention:
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


def by_construction(config: ModelConfig) -> str:
    """What the architecture of ``config`` fixes in W and its scores, whatever training does ("" if nothing)."""
    parts = []
    if config.spatial == "toeplitz":
        parts.append(
            "**Fixed by construction** (Toeplitz W, one weight per offset): the residual is zero and shift invariance "
            "is 1.0 in every layer because of the architecture, not because training found a convolution."
        )
    if config.causal:
        parts.append(
            "**Causal**: W's upper triangle (input j after output i) is masked to zero by construction, so no "
            "position reads a later one."
        )
    return " ".join(parts)


@per_checkpoint(st.cache_resource, max_entries=32, show_spinner="Analysing W...")
def spatial(checkpoint: Checkpoint) -> sp.SpatialReport:
    """W, its Toeplitz decomposition and per-layer scores of ``checkpoint``, on the config's grid: shared by every
    session and only read (st.cache_data would hand every rerun its own copy of the three (layers, n, n) arrays,
    beyond ``limits.estimate_spatial_report``)."""
    return sp.spatial_report(load(checkpoint).model)


def default_model(lens: Lens) -> str | None:
    """The page's default model: the first picked model that has a W (``has_spatial_weights``)."""
    names = with_spatial_weights(lens)
    return names[0] if names else None


def with_spatial_weights(lens: Lens) -> list[str]:
    """The picked models that have a W: what this page can show."""
    return lens.names(where=lambda config: config.has_spatial_weights)


def without_w_note(lens: Lens) -> str | None:
    """Why the picked models this page leaves out have no W (None when it leaves none out)."""
    left = lens.checkpoints(where=lambda config: not config.has_spatial_weights)
    if not left:
        return None
    reasons = [f"{escape_markdown(c.name)} ({no_spatial_weights_reason(c.config)})" for c in left]
    return "Not shown here, no W: " + "; ".join(reasons) + "."


def warm_jobs(lens: Lens) -> list[tuple[str, Callable[[], object]]]:
    """The default view's work (W's analysis and the training snapshots of the default model), for the warm-up."""
    name = default_model(lens)
    if name is None:
        return []
    checkpoint = lens.checkpoint(name)
    return [
        (f"Spatial weights: {name}", functools.partial(spatial, checkpoint)),
        (f"training snapshots: {name}", functools.partial(loaders.snapshots, checkpoint)),
        (f"training log: {name}", functools.partial(loaders.metrics_log, checkpoint)),
    ]


def profile_matrix(profiles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The long (layer, offset, weight) table as a (layers, offsets) array and the offsets."""
    wide = profiles.pivot_table(index="layer", columns="offset", values="weight").sort_index()
    return wide.to_numpy(), wide.columns.to_numpy()


def rows_as_filters(weights: np.ndarray, grid: int) -> np.ndarray:
    """Each row of one layer's W (n = grid^2) drawn on the patch grid: (n, grid, grid)."""
    return sp.rows_as_images(torch.from_numpy(weights), grid).numpy()


# Animation frames: a run's 40 snapshot intervals (the zoo's) and step 0, enough to watch W form, few enough to send
# (~0.9 MB for a 64 x 64 W).
MAX_FRAMES = 41


def frame_steps(steps: Sequence[int], max_frames: int = MAX_FRAMES) -> list[int]:
    """At most ``max_frames`` of the saved ``steps``: every k-th (evenly spaced, so the animation's pace is
    even), the first and the last always among them."""
    steps = sorted(steps)
    stride = max(1, math.ceil((len(steps) - 1) / max(1, max_frames - 1)))
    picked = steps[::stride]
    return picked if picked[-1] == steps[-1] else [*picked, steps[-1]]


def validation_curve(log: pd.DataFrame) -> pd.Series | None:
    """The training log's validation metric by step, named by its column: perplexity (MLM), else accuracy
    (vision), else loss; None when the log has none. A step logged twice (a resumed run) keeps its last row."""
    if "step" not in log:
        return None
    for column in ("val_ppl", "val_accuracy", "val_loss"):
        if column in log and log[column].notna().any():
            rows = log.dropna(subset=[column]).drop_duplicates("step", keep="last").sort_values("step")
            return pd.Series(rows[column].to_numpy(dtype=float), index=rows["step"].to_numpy(dtype=int), name=column)
    return None


@st.fragment
def snapshot_timeline(checkpoint: Checkpoint, layer: int) -> None:
    """Layer ``layer``'s W at every saved training step as one animation (Play, or the slider under it, runs in
    the browser), with its middle row and the validation curve marked at the step shown."""
    name = checkpoint.name
    try:
        snaps = loaders.snapshots(checkpoint)
    except CheckpointError as err:
        st.warning(f"The training snapshots are not shown: {escape_markdown(err)}")
        return
    for note in loaders.snapshot_notes(checkpoint):
        st.caption(escape_markdown(f"Snapshots: {note}."))
    if not snaps:
        st.info("This checkpoint has no training snapshots (`spatial_snapshots.safetensors`, written during training).")
        return
    n_layers = next(iter(snaps.values())).shape[0]
    if layer >= n_layers:
        st.warning(f"The snapshots have {n_layers} layers; pick a lower layer.")
        return
    steps = frame_steps(list(snaps))
    pick, toggle = st.columns([3, 2], vertical_alignment="bottom")
    step = (
        pick.select_slider("Step shown first", steps, value=steps[-1], key=f"snap-step-{name}")
        if len(steps) > 1
        else steps[0]
    )
    # One colour range for every step, so near-zero W at initialisation looks near zero (it starts as noise of
    # ~1e-5 and grows to ~0.3); rescaling each step to its own range is an explicit choice.
    rescale = toggle.toggle("Rescale colours to each step", value=False, key=f"snap-rescale-{name}")
    scale = " (colours rescaled to each step)" if rescale else ""
    curve = validation_curve(loaders.metrics_log(checkpoint))
    weights = [snaps[s][layer] for s in steps]
    fig = plots.snapshot_animation(
        weights,
        steps,
        [f"Layer {layer} at step {s}{scale}" for s in steps],
        start=steps.index(step),
        position=weights[0].shape[0] // 2,
        zmax=None if rescale else shared_range(snaps, layer),
        curve=curve,
        curve_label=METRIC_LABELS.get(curve.name, curve.name) if curve is not None else "",
        log_y=curve is not None and curve.name != "val_accuracy",
    )
    widgets.chart(fig, key=f"snap-anim-{name}")
    shown = f"{len(steps)} of {len(snaps)}" if len(steps) < len(snaps) else f"{len(steps)}"
    text = (
        f"{shown} snapshots from step {steps[0]} to {steps[-1]}. **Play** runs through them; the slider under the "
        "chart picks one. Right: the same row of W at every step (grey), the step shown in bold."
    )
    if curve is not None:
        text += " Bottom: the dot is the last evaluation at or before the step shown (the dotted line)."
    else:
        text += " No validation curve: this checkpoint has no training log (`metrics.jsonl`) with a validation metric."
    st.caption(text)


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

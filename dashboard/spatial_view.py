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

"""Cached analysis results for the pages (``gmlp_core.analysis`` does the work; this module only caches).

Results are cached per checkpoint and input, with ``max_entries`` bounds, and computed on the shared
read-only models. Attributions run on a per-session copy of the model: captum's layer methods register
forward hooks while they run, and a hook on the shared model would leak into other sessions.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard.loaders import Checkpoint, load, per_checkpoint
from gmlp_core.analysis import spatial as sp
from gmlp_core.analysis.attribution import Attribution, explain_image, explain_mlm
from gmlp_core.analysis.mixing import MixingReport, mixing_report


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


@per_checkpoint(st.cache_resource, scope="session", max_entries=4, show_spinner="Preparing a private copy...")
def _private(checkpoint: Checkpoint) -> torch.nn.Module:
    """A copy of the model owned by this session (for methods that hook into a model while they run)."""
    return copy.deepcopy(load(checkpoint).model)


@per_checkpoint(max_entries=64, show_spinner="Computing attention, gates and token influence...")
def mixing(
    checkpoint: Checkpoint, ids: tuple[int, ...] | None = None, pixels: np.ndarray | None = None
) -> MixingReport:
    """Attention, W, gates and token influence of ``checkpoint`` on one input (cached per input)."""
    model = load(checkpoint).model
    return mixing_report(
        model, None if ids is None else torch.tensor(ids), None if pixels is None else torch.from_numpy(pixels)
    )


@per_checkpoint(max_entries=64, show_spinner="Computing attributions...")
def attribute(
    checkpoint: Checkpoint,
    *,
    target: int,
    n_steps: int,
    ids: tuple[int, ...] | None = None,
    position: int | None = None,
    pixels: np.ndarray | None = None,
) -> list[Attribution]:
    """Integrated Gradients and a second method for one prediction of ``checkpoint`` (cached per input)."""
    model = _private(checkpoint)  # captum hooks into the model while it runs: never the shared one
    if ids is not None:
        return explain_mlm(model, torch.tensor(ids), position, target, n_steps=n_steps)
    return explain_image(model, torch.from_numpy(pixels), target, n_steps=n_steps)

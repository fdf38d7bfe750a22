"""Cached analysis results for the pages (``gmlp_core.analysis`` does the work; this module only caches).

Results are cached per checkpoint file signature and input, with ``max_entries`` bounds, and computed on
the shared read-only models. Attributions run on a per-session copy of the model: captum's layer methods
register forward hooks while they run, and a hook on the shared model would leak into other sessions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard import loaders
from dashboard.catalog import signature
from gmlp_core.analysis import spatial as sp


@st.cache_data(max_entries=32, show_spinner="Analysing W...")
def _spatial(name: str, path: str, sig: tuple) -> sp.SpatialReport:
    return sp.spatial_report(loaders.load(name, path).model)


def spatial(name: str, path: str) -> sp.SpatialReport:
    """W, its Toeplitz decomposition and per-layer scores for checkpoint ``name``, on the config's grid."""
    return _spatial(name, path, signature(Path(path)))


def profile_matrix(profiles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The long (layer, offset, weight) table as a (layers, offsets) array and the offsets."""
    wide = profiles.pivot_table(index="layer", columns="offset", values="weight").sort_index()
    return wide.to_numpy(), wide.columns.to_numpy()


def rows_as_filters(weights: np.ndarray, grid: int) -> np.ndarray:
    """Each row of one layer's W (n = grid^2) drawn on the patch grid: (n, grid, grid)."""
    return sp.rows_as_images(torch.from_numpy(weights), grid).numpy()


@st.cache_resource(scope="session", max_entries=4, show_spinner="Preparing a private copy of the model...")
def _private(name: str, path: str, sig: tuple) -> torch.nn.Module:
    return copy.deepcopy(loaders.load(name, path).model)


def private_model(name: str, path: str) -> torch.nn.Module:
    """A copy of the model owned by this session (for methods that hook into a model while they run)."""
    return _private(name, path, signature(Path(path)))


@dataclass(frozen=True)
class MixingData:
    """How one model mixes tokens for one input: attention, W, gates and token influence."""

    attentions: list[np.ndarray]  # per layer (heads, L, L); empty for gMLP
    weights: list[np.ndarray]  # per layer (n, n); empty for the Transformer
    gates: list[np.ndarray]  # per layer (L, gate_dim); empty for the Transformer
    influence: np.ndarray  # (L, L): how much output i moves when input j moves


def model_inputs(
    ids: tuple[int, ...] | None, pixels: np.ndarray | None, device: torch.device
) -> dict[str, torch.Tensor]:
    """Keyword arguments for a forward pass on one input (a token-id sequence or a (1, C, H, W) image)."""
    if ids is not None:
        return {"input_ids": torch.tensor([ids], dtype=torch.long, device=device)}
    return {"pixel_values": torch.as_tensor(pixels, dtype=torch.float32, device=device)}


@st.cache_data(max_entries=64, show_spinner="Computing attention, gates and token influence...")
def _mixing(name: str, path: str, sig: tuple, ids: tuple[int, ...] | None, pixels: np.ndarray | None) -> MixingData:
    from gmlp_core.analysis.attention import attention_maps, gate_maps
    from gmlp_core.analysis.influence import token_influence

    model = loaders.load(name, path).model
    inputs = model_inputs(ids, pixels, model.device)
    cfg = model.config
    attentions = [a[0].float().cpu().numpy() for a in attention_maps(model, **inputs)] if cfg.arch != "gmlp" else []
    gates = [g[0].float().cpu().numpy() for g in gate_maps(model, **inputs)] if cfg.arch != "transformer" else []
    weights = [w.float().cpu().numpy() for w in model.spatial_weights()] if cfg.has_spatial_weights else []
    influence = token_influence(model, **inputs).float().cpu().numpy()
    return MixingData(attentions, weights, gates, influence)


def mixing(name: str, path: str, ids: tuple[int, ...] | None = None, pixels: np.ndarray | None = None) -> MixingData:
    """Attention, W, gates and token influence of checkpoint ``name`` on one input (cached per input)."""
    return _mixing(name, path, signature(Path(path)), ids, pixels)


@dataclass(frozen=True)
class Attribution:
    """One method's attribution for one prediction: a score per token (L,) or per pixel (H, W)."""

    method: str
    scores: np.ndarray
    delta: float | None  # convergence delta (Integrated Gradients); None for methods without one
    score_change: float | None = None  # f(input) - f(baseline), what the attributions should add up to


@st.cache_data(max_entries=64, show_spinner="Computing attributions...")
def _attribute(
    name: str,
    path: str,
    sig: tuple,
    ids: tuple[int, ...] | None,
    pixels: np.ndarray | None,
    position: int | None,
    target: int,
    n_steps: int,
) -> list[Attribution]:
    from gmlp_core.analysis import attribution as attr

    model = _private(name, path, sig)  # captum hooks into the model while it runs: never the shared one
    inputs = model_inputs(ids, pixels, next(model.parameters()).device)
    if ids is not None:
        results = attr.explain_mlm(model, inputs["input_ids"], position, target, n_steps=n_steps)
    else:
        results = attr.explain_image(model, inputs["pixel_values"], target, n_steps=n_steps)
    return [Attribution(r.method, np.asarray(r.scores, dtype=float), r.delta, r.score_change) for r in results]


def attribute(
    name: str,
    path: str,
    *,
    target: int,
    n_steps: int,
    ids: tuple[int, ...] | None = None,
    position: int | None = None,
    pixels: np.ndarray | None = None,
) -> list[Attribution]:
    """Integrated Gradients and a second method for one prediction of checkpoint ``name`` (cached per input)."""
    return _attribute(name, path, signature(Path(path)), ids, pixels, position, target, n_steps)

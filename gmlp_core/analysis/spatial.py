"""gMLP's spatial weights W (n x n, one per layer): how local and how shift-invariant are they?

The paper (Liu et al. 2021, Fig. 3 and 5) reports that the learned W are local and nearly
shift-invariant, i.e. close to a convolution, without any such prior. These functions measure that:

- ``toeplitz_decomposition(W)``: ``W = T + R`` where ``T`` is the best shift-invariant approximation
  (the least-squares projection onto Toeplitz matrices: each diagonal replaced by its mean) and ``R``
  the rest. With ``grid=g`` (vision, n = g*g patches in row-major order) "shift" means a 2D offset
  ``(d_row, d_col)`` on the patch grid, and ``T`` is the best 2D-convolution-like approximation.
- ``shift_invariance(W)``: ``||T - mean(W)||^2 / ||W - mean(W)||^2 = 1 - ||R||^2 / ||W - mean(W)||^2``
  in [0, 1]. 1 means W is exactly Toeplitz; for i.i.d. random W the expected value is about
  ``(n_offsets - 1) / (n^2 - 1)``, e.g. ~2/n in 1D. (R is orthogonal to every Toeplitz matrix,
  constants included, so the two forms are equal.)
- ``locality(W, k)``: the fraction of ``sum |W|`` within distance k of the diagonal (``|i - j| <= k``;
  on a grid the Chebyshev distance between patches). A W with no preference scores about the
  fraction of entries inside the band (``band_fraction``), a banded W scores 1.
- ``mean_abs_offset(W)``: the mean distance ``|i - j|`` weighted by ``|W|``: how far a token looks.
- ``spatial_report(model)``: all of the above for every layer, on the grid the config names
  (``config.spatial_grid``), as one :class:`SpatialReport` the dashboard only draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

__all__ = [
    "SpatialReport",
    "band_fraction",
    "default_band",
    "distances",
    "locality",
    "mean_abs_offset",
    "middle_row_profiles",
    "rows_as_images",
    "shift_invariance",
    "spatial_report",
    "spatial_summary",
    "toeplitz_decomposition",
]


def _square(w: Tensor) -> Tensor:
    if not isinstance(w, Tensor):
        w = torch.as_tensor(w)
    if w.dim() != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"W must be a non-empty square (n, n) matrix; got shape {tuple(w.shape)}")
    return w.detach().to(torch.float64 if w.dtype == torch.float64 else torch.float32)


def _check_grid(n: int, grid: int | None) -> None:
    if grid is not None and grid * grid != n:
        raise ValueError(f"grid={grid} does not fit W of size {n}: a grid needs n = grid * grid")


def _offset_index(n: int, grid: int | None, device: torch.device) -> tuple[Tensor, int]:
    """(n, n) index of each entry's offset class and the number of classes (2n-1, or (2g-1)^2 on a grid)."""
    i = torch.arange(n, device=device)
    if grid is None:
        return i[:, None] - i[None, :] + n - 1, 2 * n - 1
    r, c = i // grid, i % grid
    dr = r[:, None] - r[None, :] + grid - 1
    dc = c[:, None] - c[None, :] + grid - 1
    return dr * (2 * grid - 1) + dc, (2 * grid - 1) ** 2


def distances(n: int, grid: int | None = None) -> Tensor:
    """(n, n) distances between positions: ``|i - j|``, or the Chebyshev distance on a ``grid`` x ``grid`` patch grid."""
    _check_grid(n, grid)
    i = torch.arange(n)
    if grid is None:
        return (i[:, None] - i[None, :]).abs()
    r, c = i // grid, i % grid
    return torch.maximum((r[:, None] - r[None, :]).abs(), (c[:, None] - c[None, :]).abs())


def toeplitz_decomposition(w: Tensor, grid: int | None = None) -> tuple[Tensor, Tensor]:
    """Split W into ``(T, R)``: T the mean of each diagonal (each 2D offset with ``grid``), R = W - T."""
    w = _square(w)
    n = w.shape[0]
    _check_grid(n, grid)
    index, n_classes = _offset_index(n, grid, w.device)
    flat = index.reshape(-1)
    sums = torch.zeros(n_classes, dtype=w.dtype, device=w.device).index_add_(0, flat, w.reshape(-1))
    counts = torch.bincount(flat, minlength=n_classes).to(w.dtype)
    t = (sums / counts.clamp_min(1))[index]  # (n, n)
    return t, w - t


def shift_invariance(w: Tensor, grid: int | None = None) -> float:
    """``1 - ||R||^2 / ||W - mean(W)||^2`` in [0, 1] (1 = exactly Toeplitz; a constant W counts as 1)."""
    w = _square(w)
    _, r = toeplitz_decomposition(w, grid)
    total = float(((w - w.mean()) ** 2).sum())
    if total <= 1e-30 * max(1.0, float((w**2).sum())):
        return 1.0
    return min(1.0, max(0.0, 1.0 - float((r**2).sum()) / total))


def shift_invariance_random(n: int, grid: int | None = None) -> float:
    """What ``shift_invariance`` gives, in expectation, for a W of independent random entries: the Toeplitz part
    fits one mean per offset class, so it explains (classes - 1) / (n^2 - 1) of the variance by chance
    (0.031 for n = 64, 0.055 on an 8 x 8 grid, 0.019 on 14 x 14)."""
    _check_grid(n, grid)
    classes = 2 * n - 1 if grid is None else (2 * grid - 1) ** 2
    return (classes - 1) / (n * n - 1) if n > 1 else 1.0


def default_band(n: int, grid: int | None = None) -> int:
    """The default locality radius k: n/16 in 1D (4 for n = 64), grid/8 on a patch grid (1 for 8 x 8), at least 1."""
    return max(1, (grid // 8) if grid is not None else n // 16)


def band_fraction(n: int, k: int, grid: int | None = None) -> float:
    """The fraction of the n x n entries within distance k: what ``locality`` gives for a W with no preference."""
    return float((distances(n, grid) <= k).double().mean())


def locality(w: Tensor, k: int | None = None, grid: int | None = None) -> float:
    """The fraction of ``sum |W|`` at distance <= k from the diagonal (NaN for W = 0)."""
    w = _square(w)
    n = w.shape[0]
    k = default_band(n, grid) if k is None else k
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    a = w.abs()
    total = float(a.sum())
    if total == 0.0:
        return math.nan
    return float(a[distances(n, grid).to(w.device) <= k].sum()) / total


def mean_abs_offset(w: Tensor, grid: int | None = None) -> float:
    """The distance between positions averaged with weights ``|W|`` (NaN for W = 0)."""
    w = _square(w)
    a = w.abs()
    total = float(a.sum())
    if total == 0.0:
        return math.nan
    return float((a * distances(w.shape[0], grid).to(a)).sum()) / total


def spatial_summary(model: nn.Module, k: int | None = None) -> pd.DataFrame:
    """One row per layer: locality (and its no-preference baseline), mean offset, shift invariance, scale of W and b.

    Vision models are measured on the patch grid (2D offsets, Chebyshev distance). Raises ValueError
    for a model without W (Transformer, identity gating).
    """
    weights, biases = model.spatial_weights(), model.spatial_biases()
    grid = model.config.spatial_grid
    n = weights[0].shape[0]
    k = default_band(n, grid) if k is None else k
    baseline = band_fraction(n, k, grid)
    invariance_baseline = shift_invariance_random(n, grid)
    rows = []
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        w, b = w.float().cpu(), b.float().cpu()
        rows.append(
            {
                "layer": layer,
                "locality": locality(w, k, grid),
                "locality_random": baseline,
                "band_k": k,
                "mean_abs_offset": mean_abs_offset(w, grid),
                "shift_invariance": shift_invariance(w, grid),
                "shift_invariance_random": invariance_baseline,
                "w_norm": float(w.norm()),
                "w_abs_max": float(w.abs().max()),
                "diagonal_mean": float(w.diagonal().mean()),
                "bias_mean": float(b.mean()),
                "bias_std": float(b.std()) if b.numel() > 1 else 0.0,
            }
        )
    return pd.DataFrame(rows)


def middle_row_profiles(model: nn.Module) -> pd.DataFrame:
    """The paper's figure: per layer, the row of W for the middle position ``n // 2``.

    Long format: ``layer``, ``position`` (j), ``offset`` (j - n // 2) and ``weight`` (W[n // 2, j]).
    """
    frames = []
    for layer, w in enumerate(model.spatial_weights()):
        n = w.shape[0]
        middle = n // 2
        pos = torch.arange(n)
        row = w[middle].float().cpu()
        frames.append(pd.DataFrame({"layer": layer, "position": pos, "offset": pos - middle, "weight": row.numpy()}))
    return pd.concat(frames, ignore_index=True)


def rows_as_images(w: Tensor, grid: int) -> Tensor:
    """Each row of W (n = grid * grid patches, row-major) as an image on the patch grid: ``(n, grid, grid)``.

    Row i shows how much every patch feeds patch i: for a convolution-like W, the same small kernel
    centred at i.
    """
    w = _square(w)
    _check_grid(w.shape[0], grid)
    return w.reshape(w.shape[0], grid, grid)


@dataclass(frozen=True)
class SpatialReport:
    """Everything known about one model's W, every array on one grid (``grid``: patches per side, None for text).

    ``toeplitz`` and ``residual`` are the decomposition the ``summary`` scores measure, so a drawn
    Toeplitz part always matches the shift invariance shown beside it.
    """

    weights: np.ndarray  # (layers, n, n)
    biases: np.ndarray  # (layers, n)
    toeplitz: np.ndarray  # (layers, n, n): the mean of each diagonal (each 2D offset on a grid)
    residual: np.ndarray  # (layers, n, n): weights - toeplitz
    grid: int | None
    middle: int  # the position whose row ``profiles`` holds (n // 2)
    summary: pd.DataFrame = field(repr=False)  # spatial_summary: one row per layer
    profiles: pd.DataFrame = field(repr=False)  # middle_row_profiles: layer, position, offset, weight


def spatial_report(model: nn.Module) -> SpatialReport:
    """W, b, the Toeplitz decomposition, per-layer scores and the middle rows, on the config's grid.

    Raises ValueError for a model without W (Transformer, identity gating).
    """
    grid = model.config.spatial_grid
    weights = [w.float().cpu() for w in model.spatial_weights()]
    parts = [toeplitz_decomposition(w, grid) for w in weights]
    return SpatialReport(
        weights=torch.stack(weights).numpy(),
        biases=torch.stack([b.float().cpu() for b in model.spatial_biases()]).numpy(),
        toeplitz=torch.stack([t for t, _ in parts]).numpy(),
        residual=torch.stack([r for _, r in parts]).numpy(),
        grid=grid,
        middle=weights[0].shape[0] // 2,
        summary=spatial_summary(model),
        profiles=middle_row_profiles(model),
    )

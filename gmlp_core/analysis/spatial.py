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


def _offset_index(n: int, grid: int | None, device: torch.device | None = None) -> tuple[Tensor, int]:
    """(n, n) int32 index of each entry's offset class and the number of classes (2n-1, or (2g-1)^2 on a grid)."""
    i = torch.arange(n, dtype=torch.int32, device=device)
    if grid is None:
        return i[:, None] - i[None, :] + (n - 1), 2 * n - 1
    r, c = i // grid, i % grid
    dr = r[:, None] - r[None, :] + (grid - 1)
    dc = c[:, None] - c[None, :] + (grid - 1)
    return dr * (2 * grid - 1) + dc, (2 * grid - 1) ** 2


def distances(n: int, grid: int | None = None) -> Tensor:
    """(n, n) distances between positions: ``|i - j|``, or the Chebyshev distance on a ``grid`` x ``grid`` patch grid."""
    return _distances(n, grid, torch.int64)


def _distances(n: int, grid: int | None, dtype: torch.dtype) -> Tensor:
    _check_grid(n, grid)
    i = torch.arange(n, dtype=dtype)
    if grid is None:
        return (i[:, None] - i[None, :]).abs_()
    r, c = i // grid, i % grid
    return torch.maximum((r[:, None] - r[None, :]).abs_(), (c[:, None] - c[None, :]).abs_())


@dataclass(frozen=True)
class _Offsets:
    """Each entry's offset class (diagonal, or 2D offset on a grid) for one n and grid, flattened to (n * n,) int32,
    and the number of entries in each class: built once and shared by every layer of a report."""

    index: Tensor  # (n * n,) int32
    counts: Tensor  # (classes,) float32, every class non-empty

    @classmethod
    def build(cls, n: int, grid: int | None, device: torch.device | None = None) -> _Offsets:
        _check_grid(n, grid)
        index, classes = _offset_index(n, grid, device)
        index = index.reshape(-1)
        return cls(index, torch.bincount(index, minlength=classes).float())


def _decompose(w: Tensor, offsets: _Offsets, t: Tensor | None = None, r: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(T, R)`` of the float32 (n, n) ``w``, written into ``t`` and ``r`` when given (no other n x n copy)."""
    sums = torch.zeros(len(offsets.counts), dtype=w.dtype, device=w.device).index_add_(0, offsets.index, w.reshape(-1))
    means = sums / offsets.counts.to(w.dtype)
    t = torch.empty_like(w) if t is None else t
    torch.index_select(means, 0, offsets.index, out=t.view(-1))  # (n, n): each entry's class mean
    return t, torch.sub(w, t, out=torch.empty_like(w) if r is None else r)


def _shift_invariance(w: Tensor, r: Tensor) -> float:
    """``1 - ||R||^2 / ||W - mean(W)||^2`` from W and its residual, with one n x n temporary."""
    total = float(torch.linalg.vector_norm(w - w.mean())) ** 2
    if total <= 1e-30 * max(1.0, float(torch.linalg.vector_norm(w)) ** 2):
        return 1.0
    residual = float(torch.linalg.vector_norm(r)) ** 2
    return min(1.0, max(0.0, 1.0 - residual / total))


def toeplitz_decomposition(w: Tensor, grid: int | None = None) -> tuple[Tensor, Tensor]:
    """Split W into ``(T, R)``: T the mean of each diagonal (each 2D offset with ``grid``), R = W - T."""
    w = _square(w)
    return _decompose(w, _Offsets.build(w.shape[0], grid, w.device))


def shift_invariance(w: Tensor, grid: int | None = None) -> float:
    """``1 - ||R||^2 / ||W - mean(W)||^2`` in [0, 1] (1 = exactly Toeplitz; a constant W counts as 1)."""
    w = _square(w)
    _, r = toeplitz_decomposition(w, grid)
    return _shift_invariance(w, r)


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
    return int(torch.count_nonzero(distances(n, grid) <= k)) / (n * n)


def _locality(a: Tensor, band: Tensor) -> float:
    """The share of ``a = |W|`` where ``band`` is true (NaN for W = 0), with one n x n temporary."""
    total = float(a.sum())
    return math.nan if total == 0.0 else float(torch.where(band, a, 0.0).sum()) / total


def _mean_offset(a: Tensor, dist: Tensor) -> float:
    """``dist`` averaged with weights ``a = |W|`` (NaN for W = 0), with one n x n temporary."""
    total = float(a.sum())
    return math.nan if total == 0.0 else float((a * dist).sum()) / total


def locality(w: Tensor, k: int | None = None, grid: int | None = None) -> float:
    """The fraction of ``sum |W|`` at distance <= k from the diagonal (NaN for W = 0)."""
    w = _square(w)
    n = w.shape[0]
    k = default_band(n, grid) if k is None else k
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return _locality(w.abs(), distances(n, grid).to(w.device) <= k)


def mean_abs_offset(w: Tensor, grid: int | None = None) -> float:
    """The distance between positions averaged with weights ``|W|`` (NaN for W = 0)."""
    w = _square(w)
    return _mean_offset(w.abs(), distances(w.shape[0], grid).to(w))


@dataclass(frozen=True)
class _Scorer:
    """The per-layer scores of one n and grid, with what every layer shares built once: the offset classes, the
    distances and the band within k (about three n x n tables). Scoring a layer then holds two n x n temporaries
    besides W and its decomposition, so a report's memory grows by its three kept arrays per layer, no more."""

    offsets: _Offsets
    dist: Tensor  # (n, n) float32
    band: Tensor  # (n, n) bool: dist <= k
    k: int
    grid: int | None

    @classmethod
    def build(cls, n: int, grid: int | None, k: int | None = None) -> _Scorer:
        k = default_band(n, grid) if k is None else k
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        dist = _distances(n, grid, torch.int32)
        band = dist <= k
        return cls(_Offsets.build(n, grid), dist.float(), band, k, grid)

    def row(
        self, layer: int, w: Tensor, b: Tensor, t: Tensor | None = None, r: Tensor | None = None
    ) -> dict[str, float]:
        """Layer ``layer``'s scores for its float32 CPU ``w`` (n, n) and bias ``b``; the decomposition is written
        into ``t`` and ``r`` when given."""
        n = w.shape[0]
        t, r = _decompose(w, self.offsets, t, r)
        a = w.abs()
        return {
            "layer": layer,
            "locality": _locality(a, self.band),
            "locality_random": int(torch.count_nonzero(self.band)) / (n * n),
            "band_k": self.k,
            "mean_abs_offset": _mean_offset(a, self.dist),
            "shift_invariance": _shift_invariance(w, r),
            "shift_invariance_random": shift_invariance_random(n, self.grid),
            "w_norm": float(w.norm()),
            "w_abs_max": float(a.max()),
            "diagonal_mean": float(w.diagonal().mean()),
            "bias_mean": float(b.mean()),
            "bias_std": float(b.std()) if b.numel() > 1 else 0.0,
        }


def spatial_summary(model: nn.Module, k: int | None = None) -> pd.DataFrame:
    """One row per layer: locality (and its no-preference baseline), mean offset, shift invariance, scale of W and b.

    Vision models are measured on the patch grid (2D offsets, Chebyshev distance). Raises ValueError
    for a model without W (Transformer, identity gating). One layer's W is read at a time.
    """
    biases = model.spatial_biases()
    scorer = _Scorer.build(model.config.seq_len, model.config.spatial_grid, k)
    rows = [
        scorer.row(layer, model.spatial_weight(layer).float().cpu(), b.float().cpu()) for layer, b in enumerate(biases)
    ]
    return pd.DataFrame(rows)


def _profiles(rows: list[np.ndarray]) -> pd.DataFrame:
    """The long (layer, position, offset, weight) table of each layer's middle row of W."""
    n = len(rows[0])
    pos, middle = np.arange(n), n // 2
    frames = [
        pd.DataFrame({"layer": layer, "position": pos, "offset": pos - middle, "weight": row})
        for layer, row in enumerate(rows)
    ]
    return pd.concat(frames, ignore_index=True)


def middle_row_profiles(model: nn.Module) -> pd.DataFrame:
    """The paper's figure: per layer, the row of W for the middle position ``n // 2``.

    Long format: ``layer``, ``position`` (j), ``offset`` (j - n // 2) and ``weight`` (W[n // 2, j]).
    """
    middle = model.config.seq_len // 2
    layers = len(model.spatial_biases())
    return _profiles([model.spatial_weight(layer)[middle].float().cpu().numpy() for layer in range(layers)])


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

    Memory: the three (layers, n, n) float32 arrays it returns, plus a fixed few n x n tables while it works
    (``gmlp_core.limits.estimate_spatial_report``); each layer's W is copied once, straight into its array.
    Raises ValueError for a model without W (Transformer, identity gating).
    """
    biases = torch.stack([b.float().cpu() for b in model.spatial_biases()])  # (layers, n)
    layers, n = biases.shape
    grid = model.config.spatial_grid
    scorer = _Scorer.build(n, grid)  # before the big arrays: its int temporaries are gone when they are filled
    weights, toeplitz, residual = (np.empty((layers, n, n), dtype=np.float32) for _ in range(3))
    rows = []
    for layer in range(layers):
        w = torch.from_numpy(weights[layer])
        w.copy_(model.spatial_weight(layer))
        t, r = torch.from_numpy(toeplitz[layer]), torch.from_numpy(residual[layer])
        rows.append(scorer.row(layer, w, biases[layer], t, r))
    return SpatialReport(
        weights=weights,
        biases=biases.numpy(),
        toeplitz=toeplitz,
        residual=residual,
        grid=grid,
        middle=n // 2,
        summary=pd.DataFrame(rows),
        profiles=_profiles([w[n // 2] for w in weights]),
    )

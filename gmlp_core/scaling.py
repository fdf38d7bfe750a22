"""Scaling sweeps as data: grids of configs, a tidy results table and power-law fits.

A grid is a function returning ``SweepPoint``s (a named config plus a token budget). ``demo`` fits on a
2-core CPU (gMLP, aMLP and Transformer at 5 sizes each spanning >= 1.5 decades of non-embedding
parameters, 64 tokens per sequence, a fixed token budget); ``smoke`` is the same shape, tiny, for the
tests; ``paper`` mirrors the paper's MLM scaling study and is meant for GPUs. A grid can also be
a JSON file: a list of ``{"name", "preset", "overrides", "tokens"}`` objects.

Results are one row per run with the columns of ``SWEEP_COLUMNS``; ``fit_power_law`` fits
``L(N) = a * N^-alpha + c`` per architecture and reports alpha with its standard error.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gmlp_core.models import ModelConfig, config_summary, preset
from gmlp_core.models.archs import HEADS, arch_spec
from gmlp_core.reference import PaperShape

log = logging.getLogger(__name__)

SWEEP_COLUMNS = [
    "arch",
    "preset",
    "name",
    "params",
    "non_embedding_params",
    "flops_per_token",
    "tokens_seen",
    "val_loss",
    "val_ppl",
    "wall_seconds",
    "device",
]


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: a named config trained on ``tokens`` tokens."""

    name: str
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    tokens: int = 500_000

    def config(self) -> ModelConfig:
        return preset(self.preset, **self.overrides)


# (d_model, n_layers): gMLP/aMLP get about twice the Transformer's depth at the same width, as in the
# paper. Depth grows slowly: at a demo token budget a deep, narrow gMLP is still on the plateau before
# its W forms, so the largest gMLP is the zoo's own size (d_model 128, 4 layers).
_DEMO_SIZES = {
    "gmlp": [(16, 2), (32, 2), (48, 3), (80, 4), (128, 4)],
    "amlp": [(16, 2), (32, 2), (48, 3), (80, 4), (128, 4)],
    "transformer": [(24, 1), (32, 1), (48, 2), (80, 2), (128, 3)],
}
# The zoo's MLM budget (8,000 steps of 32 x 64 tokens): at a fifth of an earlier 10,000-step budget (README) the
# larger gMLPs stopped before their deeper layers' W had formed and the loss rose with size at the top; at the full
# budget it fell (results/sweep_2000_steps.csv, results/sweep_10000_steps.csv, both at 15% masking).
DEMO_TOKENS = 16_384_000


def _size_overrides(arch: str, d: int, layers: int) -> dict[str, Any]:
    """A sweep point's shape: ``d`` and ``layers``, and the widths the architecture derives from ``d``
    (``ArchSpec.sizing``: d_ffn = 6 d for gMLP, 4 d for the Transformer, ...)."""
    widths = arch_spec(arch).sizing(d)
    return {"arch": arch, "d_model": d, "d_ffn": widths.pop("d_ffn"), "n_layers": layers} | widths


def demo_grid(tokens: int = DEMO_TOKENS, archs: Iterable[str] = ("gmlp", "transformer", "amlp")) -> list[SweepPoint]:
    """The committed CPU sweep: 5 sizes per architecture at a fixed token budget.

    Command: ``python -m gmlp_core sweep --grid demo --out results/sweep_demo.csv``
    Expected: for every architecture the loss falls with size; fitted alphas are in README.
    """
    points = []
    for arch in archs:
        for d, layers in _DEMO_SIZES[arch]:
            points.append(
                SweepPoint(f"{arch}-d{d}-l{layers}", "gmlp-demo-mlm", _size_overrides(arch, d, layers), tokens)
            )
    return points


def smoke_grid() -> list[SweepPoint]:
    """Two tiny sizes per architecture, a few thousand tokens: the shape of ``demo`` in seconds."""
    points = []
    for arch in ("gmlp", "transformer"):
        for d in (16, 32):
            overrides = _size_overrides(arch, d, 1) | {"seq_len": 16, "vocab_size": 512}
            points.append(SweepPoint(f"{arch}-d{d}", "gmlp-demo-mlm", overrides, 4096))
    return points


def paper_grid() -> list[SweepPoint]:
    """The paper's MLM scaling study, pair by pair (``gmlp_core.reference.SCALING_PAIRS``, unverified): for GPUs.

    Transformers of 6/12/24/48 layers at d_model 768 against gMLPs of 18/36/72/144 layers at d_model 512,
    d_ffn 3072, on 128-token sequences. The token budget is our reading of the ablation setup (125k steps
    of 256 x 128 tokens): the paper's batch size for this study is not recorded here.
    """
    from gmlp_core.reference import SCALING_PAIRS

    tokens = 125_000 * 256 * 128
    points = []
    for shape in SCALING_PAIRS:
        name = f"{shape.arch}-l{shape.n_layers}-d{shape.d_model}"
        points.append(SweepPoint(name, shape.preset, _pair_overrides(shape), tokens))
    return points


def _pair_overrides(shape: PaperShape) -> dict[str, Any]:
    """The overrides that turn a scaling pair's base preset into its shape (``reference.PaperShape``)."""
    overrides: dict[str, Any] = {"n_layers": shape.n_layers, "d_model": shape.d_model, "d_ffn": shape.d_ffn}
    if arch_spec(shape.arch).attention == HEADS:  # BERT's heads of 64, on the study's 128-token sequences
        overrides |= {"n_heads": shape.d_model // 64, "seq_len": 128}
    return overrides


PAPER_SERIES = {"full": "full BERT setup", "pairs": "scaling pairs"}


def paper_points() -> pd.DataFrame:
    """The paper's MLM models on the axes of our sweeps, one row per model.

    ``non_embedding_params`` and ``flops_per_token`` are counted by our code from the published shapes
    (``gmlp_core.reference``), so they sit on the same kind of axis as our runs; ``val_ppl`` is the
    published perplexity where the reference records one (NaN otherwise: the scaling pairs' perplexities
    are not recorded), ``val_loss`` its log. ``series`` is ``PAPER_SERIES``'s label, ``pair`` the scaling
    pair (0 for the full-setup models); ``verified`` as in the reference.
    """
    from gmlp_core.reference import BERT_FULL_SETUP, BERT_RESULTS, PAPER_SHAPES, SCALING_PAIRS, paper_results

    ref = paper_results()
    ppl = ref[ref["setup"] == BERT_FULL_SETUP].set_index("model")["value"]
    rows = []
    for key, shapes in (("full", [s for s in PAPER_SHAPES if s.source == BERT_RESULTS]), ("pairs", SCALING_PAIRS)):
        for shape in shapes:
            summary = config_summary(preset(shape.preset, **(_pair_overrides(shape) if shape.pair else {})))
            value = float(ppl.get(shape.model, np.nan)) if key == "full" else np.nan
            rows.append(
                {
                    "model": shape.model,
                    "arch": shape.arch,
                    "series": PAPER_SERIES[key],
                    "pair": shape.pair or 0,
                    "shape": f"{shape.n_layers} x {shape.d_model} x {shape.d_ffn}",
                    **{k: summary[k] for k in ("params", "non_embedding_params", "flops_per_token")},
                    "published_params_m": shape.params_m,
                    "val_ppl": value,
                    "val_loss": float(np.log(value)),
                    "source": shape.source,
                    "verified": shape.verified,
                }
            )
    return pd.DataFrame(rows)


GRIDS = {"demo": demo_grid, "smoke": smoke_grid, "paper": paper_grid}


def load_grid(name_or_file: str) -> list[SweepPoint]:
    """A named grid (``demo``, ``smoke``, ``paper``) or a JSON file listing sweep points."""
    if name_or_file in GRIDS:
        return GRIDS[name_or_file]()
    path = Path(name_or_file)
    if not path.is_file():
        raise ValueError(f"unknown grid {name_or_file!r}: use one of {sorted(GRIDS)} or a JSON file")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        points = [SweepPoint(**item) for item in items]
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(
            f"{path}: expected a JSON list of {{name, preset, overrides, tokens}} objects ({err})"
        ) from err
    for p in points:
        p.config()  # validate early, with the config's own message
    return points


def describe_grid(points: list[SweepPoint]) -> pd.DataFrame:
    """Sizes of a grid without training: arch, name, params, non-embedding params, FLOPs/token."""
    rows = []
    for p in points:
        cfg = p.config()
        summary = config_summary(cfg)
        rows.append(
            {
                "arch": cfg.arch,
                "name": p.name,
                **{k: summary[k] for k in ("params", "non_embedding_params", "flops_per_token")},
                "tokens": p.tokens,
            }
        )
    return pd.DataFrame(rows)


def load_sweep_csvs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate sweep CSVs (skipping files without the sweep columns), with a ``source`` column."""
    frames = []
    for path in paths:
        try:
            df = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as err:
            log.warning("skipping %s: %s", path, err)
            continue
        if not {"arch", "non_embedding_params", "val_loss"} <= set(df.columns):
            continue
        frames.append(df.assign(source=str(path)))
    if not frames:
        return pd.DataFrame(columns=[*SWEEP_COLUMNS, "source"])
    return pd.concat(frames, ignore_index=True)


def _power_law(n: np.ndarray, a: float, alpha: float, c: float) -> np.ndarray:
    return a * np.power(n, -alpha) + c


def fit_power_law(
    df: pd.DataFrame, x: str = "non_embedding_params", y: str = "val_loss", offset: bool = True
) -> pd.DataFrame:
    """Fit ``y = a * x^-alpha + c`` per architecture; alpha_err is the standard error from the fit's
    covariance. With ``offset=False``, with fewer than 4 points, or when the 3-parameter fit does not
    converge, a pure power law (c = 0, a line in log-log) is fitted instead, and ``form`` says which.
    The pure form has one parameter less, so its alpha is better determined by few points, but it
    reads an approach to an irreducible loss as a slower power law.
    """
    from scipy.optimize import curve_fit

    rows = []
    for arch, group in df.groupby("arch", sort=True):
        g = group[[x, y]].dropna().sort_values(x)
        xs, ys = g[x].to_numpy(float), g[y].to_numpy(float)
        if len(xs) < 2:
            continue
        row: dict[str, Any] = {"arch": arch, "n_points": len(xs), "x": x, "y": y}
        fitted = False
        if offset and len(xs) >= 4:
            try:
                # Scale x to ~1 for a well-conditioned fit, then undo the scaling in `a`.
                scale = float(np.exp(np.mean(np.log(xs))))
                p0 = (float(ys[0] - ys[-1]) + 1e-3, 0.3, float(ys.min()) * 0.8)
                bounds = ([0.0, 0.0, 0.0], [np.inf, 5.0, float(ys.min())])
                params, cov = curve_fit(_power_law, xs / scale, ys, p0=p0, bounds=bounds, maxfev=20000)
                err = np.sqrt(np.clip(np.diag(cov), 0, None))
                if np.all(np.isfinite(err)):
                    a, alpha, c = params
                    row |= {"a": a * scale**alpha, "alpha": alpha, "alpha_err": err[1], "c": c, "form": "a*N^-alpha+c"}
                    fitted = True
            except (RuntimeError, ValueError) as e:
                log.info("3-parameter fit failed for %s (%s); using a pure power law", arch, e)
        if not fitted:
            slope, intercept, stderr = _linear_fit(np.log(xs), np.log(ys))
            row |= {"a": math.exp(intercept), "alpha": -slope, "alpha_err": stderr, "c": 0.0, "form": "a*N^-alpha"}
        pred = _power_law(xs, row["a"], row["alpha"], row["c"])
        row["r2"] = 1 - float(np.sum((ys - pred) ** 2) / max(np.sum((ys - ys.mean()) ** 2), 1e-12))
        rows.append(row)
    return pd.DataFrame(rows, columns=["arch", "a", "alpha", "alpha_err", "c", "form", "r2", "n_points", "x", "y"])


def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line; returns slope, intercept and the slope's standard error."""
    n = len(x)
    slope, intercept = np.polyfit(x, y, 1)
    if n <= 2:
        return float(slope), float(intercept), float("nan")
    resid = y - (slope * x + intercept)
    s2 = float(np.sum(resid**2) / (n - 2))
    stderr = math.sqrt(s2 / float(np.sum((x - x.mean()) ** 2)))
    return float(slope), float(intercept), stderr


def power_law_curve(fit_row: pd.Series | dict[str, Any], xs: np.ndarray) -> np.ndarray:
    """Evaluate a row of ``fit_power_law`` at ``xs`` (for plotting the fitted line)."""
    return _power_law(np.asarray(xs, float), float(fit_row["a"]), float(fit_row["alpha"]), float(fit_row["c"]))

"""Run a scaling sweep: train every point of a grid, write the tidy CSV and fit power laws.

``python -m gmlp_core sweep --grid demo`` trains gMLP, aMLP and Transformer at 5 sizes each at a fixed token
budget on the zoo's MLM recipe (``python-docs``, the swept peak rate, the zoo's share of masked tokens, the zoo's
warm-up as a share of the steps, bf16 autocast, a fixed thread count) and writes ``results/sweep_demo.csv``.
One CSV holds one recipe: a CSV with rows of other data, rate, precision or masking is refused (pass a new
``--out``); points already in it (same name, at least the tokens, same device and warm-up) are skipped, so an
interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from gmlp_core.models import config_summary
from gmlp_core.scaling import SWEEP_COLUMNS, fit_power_law, load_grid

log = logging.getLogger(__name__)


# What a sweep row records of how it was trained, beyond SWEEP_COLUMNS (a row without them is of an older recipe).
RECIPE_COLUMNS = ["data", "lr", "warmup", "precision", "mask_prob"]


def run_sweep(
    grid: str,
    out: Path,
    device: str = "auto",
    workdir: Path = Path("runs/sweep"),
    batch_size: int = 32,
    seed: int = 0,
    data: str = "python-docs",
    lr: float | None = None,
    precision: str | None = None,
    threads: int | None = None,
    mask_prob: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train each point of ``grid`` (skipping ones already in ``out`` with the same recipe), append rows, return
    (rows, fits). Defaults: the zoo's MLM recipe (``gmlp_core.zoo``: ``MLM_LR``, ``ZOO_PRECISION``,
    ``ZOO_THREADS``, ``MLM_MASK_PROB``), each architecture at the rate the zoo's learning-rate sweep found best
    for it at the zoo's size (``MLM_LR``), the same at every size; ``lr`` trains every architecture at one rate."""
    from gmlp_core.checkpoints import resolve_device
    from gmlp_core.data.masking import MaskingConfig
    from gmlp_core.train import TrainConfig, train
    from gmlp_core.zoo import MLM_LR, MLM_MASK_PROB, MLM_STEPS, MLM_WARMUP, ZOO_PRECISION, ZOO_THREADS

    rates = dict(MLM_LR) if lr is None else dict.fromkeys(MLM_LR, lr)
    mask_prob = MLM_MASK_PROB if mask_prob is None else mask_prob
    precision = ZOO_PRECISION if precision is None else precision
    threads = ZOO_THREADS if threads is None else threads
    points = load_grid(grid)
    dev = str(resolve_device(device))
    done = pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=[*SWEEP_COLUMNS, *RECIPE_COLUMNS])
    for column in RECIPE_COLUMNS:
        if column not in done.columns:  # rows from before mask_prob was recorded predicted BERT's 15%
            done[column] = MaskingConfig.mask_prob if column == "mask_prob" else None
    # One CSV holds one recipe, so the fits and the Scaling page never mix two (the warm-up follows each budget).
    other = done[
        (done["data"] != data)
        | (done["lr"] != done["arch"].map(rates))
        | (done["precision"] != precision)
        | (done["mask_prob"] != mask_prob)
    ]
    if len(other):
        first = other.iloc[0]
        raise ValueError(
            f"{out} holds runs of another recipe (data {first['data']}, {first['arch']} at lr {first['lr']}, "
            f"precision {first['precision']}, mask_prob {first['mask_prob']}; this sweep: data {data}, "
            f"{first['arch']} at lr {rates.get(first['arch'])}, precision {precision}, mask_prob {mask_prob}): "
            "pass a new --out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, point in enumerate(points, 1):
        cfg = point.config()
        steps = max(1, point.tokens // (batch_size * cfg.seq_len))
        warmup = max(1, round(steps * MLM_WARMUP / MLM_STEPS))  # the zoo's share: its own warm-up at its budget
        same = (
            (done["name"] == point.name)
            & (done["tokens_seen"] >= point.tokens)
            & (done["device"] == dev)
            & (done["warmup"] == warmup)
        )
        if same.any():
            log.info("[%d/%d] %s already in %s", i, len(points), point.name, out)
            continue
        log.info("[%d/%d] %s: %d steps", i, len(points), point.name, steps)
        start = time.perf_counter()
        result = train(
            TrainConfig(
                preset=point.preset,
                overrides=dict(point.overrides),
                out=str(workdir / point.name),
                steps=steps,
                batch_size=batch_size,
                data=data,
                lr=rates[cfg.arch],
                warmup=warmup,
                eval_every=steps,
                snapshot_every=0,
                device=device,
                seed=seed,
                precision=precision,
                threads=threads,
                mask_prob=mask_prob,
                progress=False,
            )
        )
        summary = config_summary(cfg)
        row = {
            "arch": cfg.arch,
            "preset": point.preset,
            "name": point.name,
            **{k: summary[k] for k in ("params", "non_embedding_params", "flops_per_token")},
            "tokens_seen": result.metrics["tokens_seen"],
            "val_loss": result.metrics["val_loss"],
            "val_ppl": result.metrics["val_ppl"],
            "wall_seconds": round(time.perf_counter() - start, 2),
            "device": dev,
            "data": data,
            "lr": rates[cfg.arch],
            "warmup": warmup,
            "precision": precision,
            "mask_prob": mask_prob,
        }
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        done.to_csv(out, index=False)
    names = {p.name for p in points}
    rows = done[done["name"].isin(names)].reset_index(drop=True)
    return rows, fit_power_law(rows)

"""Run a scaling sweep: train every point of a grid, write the tidy CSV and fit power laws.

``python -m gmlp_core sweep --grid demo`` trains gMLP, aMLP and Transformer at 5 sizes each on the
embedded text at a fixed token budget and writes ``results/sweep_demo.csv``; points already in the
CSV (same name, tokens and device) are skipped, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from gmlp_core.models import config_summary
from gmlp_core.scaling import SWEEP_COLUMNS, fit_power_law, load_grid

log = logging.getLogger(__name__)


def run_sweep(
    grid: str, out: Path, device: str = "auto", workdir: Path = Path("runs/sweep"), batch_size: int = 32, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train each point of ``grid`` (skipping ones already in ``out``), append rows, return (rows, fits)."""
    from gmlp_core.checkpoints import resolve_device
    from gmlp_core.train import TrainConfig, demo_lr, train

    points = load_grid(grid)
    dev = str(resolve_device(device))
    done = pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=SWEEP_COLUMNS)
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, point in enumerate(points, 1):
        if ((done["name"] == point.name) & (done["tokens_seen"] >= point.tokens) & (done["device"] == dev)).any():
            log.info("[%d/%d] %s already in %s", i, len(points), point.name, out)
            continue
        cfg = point.config()
        steps = max(1, point.tokens // (batch_size * cfg.seq_len))
        log.info("[%d/%d] %s: %d steps", i, len(points), point.name, steps)
        start = time.perf_counter()
        result = train(
            TrainConfig(
                preset=point.preset,
                overrides=dict(point.overrides),
                out=str(workdir / point.name),
                steps=steps,
                batch_size=batch_size,
                lr=demo_lr(cfg.arch),
                warmup=max(1, steps // 20),
                eval_every=steps,
                snapshot_every=0,
                device=device,
                seed=seed,
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
        }
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        done.to_csv(out, index=False)
    names = {p.name for p in points}
    rows = done[done["name"].isin(names)].reset_index(drop=True)
    return rows, fit_power_law(rows)

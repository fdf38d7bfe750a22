"""Learning-rate sweeps at the zoo's budget, so every architecture is compared at its own best rate.

``python -m gmlp_core tune --entries mlm-gmlp mlm-amlp mlm-transformer --rates 5e-4 1e-3 2e-3 4e-3``
trains each zoo entry's exact recipe (same data, steps, batch, warmup, seed, precision) at each rate and
appends one row per run to ``results/lr_sweep.csv``: validation perplexity, how much it still improved over
the last fifth of training (the zoo's plateau criterion), W's shift invariance and locality per layer, and
the cloze score. Runs already in the CSV (same entry, rate, steps, data, masking and warm-up) are skipped, so
an interrupted sweep continues where it stopped. ``best_rates`` reads the CSV back.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gmlp_core.checkpoints import CONFIG_NAME, METRICS_NAME, WEIGHTS_NAME

log = logging.getLogger(__name__)

LR_SWEEP_FILE = "lr_sweep.csv"


def plateau_improvement(history: Sequence[dict[str, Any]], metric: str = "val_ppl", fraction: float = 0.2) -> float:
    """The relative improvement of ``metric`` over the last ``fraction`` of training: (value at the
    last evaluation at or before ``(1 - fraction)`` of the steps - final value) / that earlier value.
    Below 0.03 the zoo calls a run trained to a plateau. NaN without two evaluations."""
    evals = [(row["step"], row[metric]) for row in history if metric in row and row[metric] is not None]
    if len(evals) < 2:
        return math.nan
    last_step, final = evals[-1]
    cut = (1 - fraction) * last_step
    earlier = [value for step, value in evals if step <= cut]
    if not earlier:
        return math.nan
    return (earlier[-1] - final) / earlier[-1]


def _per_layer(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def run_lr_sweep(
    entries: Sequence[str],
    rates: Sequence[float],
    out: Path,
    workdir: Path = Path("runs/lr_sweep"),
    steps: int | None = None,
    data: str | None = None,
    precision: str | None = None,
) -> pd.DataFrame:
    """Train each zoo entry at each rate (its zoo recipe otherwise; ``steps``, ``data`` and ``precision``
    override it), append to ``out`` as runs finish, and return the CSV's rows for these entries."""
    from gmlp_core.analysis.spatial import spatial_summary
    from gmlp_core.checkpoints import load_checkpoint, load_tokenizer, read_metrics_log
    from gmlp_core.cloze import cloze_score, cloze_table, load_cloze_suite
    from gmlp_core.data.masking import MaskingConfig
    from gmlp_core.hardware import cpu_model_name
    from gmlp_core.train import train
    from gmlp_core.zoo import entry_config, zoo_entry

    items = load_cloze_suite()
    done = pd.read_csv(out) if out.is_file() else pd.DataFrame()
    if not done.empty and "mask_prob" not in done.columns:  # rows from before it was recorded predicted BERT's 15%
        done["mask_prob"] = MaskingConfig.mask_prob
    if not done.empty and "warmup" not in done.columns:  # unknown for rows from before it was recorded: run again
        done["warmup"] = math.nan
    out.parent.mkdir(parents=True, exist_ok=True)
    # Rates outside, entries inside: an interrupted sweep has compared every architecture at the same rates.
    for lr in rates:
        for name in entries:
            entry = zoo_entry(name)
            cfg = entry_config(entry, workdir)
            changes: dict[str, Any] = {"lr": float(lr), "out": str(workdir / f"{name}-lr{lr:g}"), "progress": False}
            if steps is not None:
                changes |= {"steps": steps, "eval_every": max(1, steps // 20), "snapshot_every": 0}
            if data is not None:
                changes["data"] = data
            if precision is not None:
                changes["precision"] = precision
            cfg = dataclasses.replace(cfg, **changes)
            spec = cfg.data or "embedded"
            if (
                not done.empty
                and (
                    (done["entry"] == name)
                    & (done["lr"] == cfg.lr)
                    & (done["steps"] == cfg.steps)
                    & (done["data"] == spec)
                    & (done["mask_prob"] == cfg.mask_prob)
                    & (done["warmup"] == cfg.warmup)
                ).any()
            ):
                log.info("%s at lr %g already in %s", name, lr, out)
                continue
            metrics = _finished_metrics(cfg)
            if metrics is not None:
                log.info("%s at lr %g: trained before, summarising %s", name, lr, cfg.out)
                seconds = read_metrics_log(cfg.out)[-1].get("elapsed_s", math.nan)
            else:
                log.info("%s at lr %g: %d steps on %s", name, lr, cfg.steps, spec)
                start = time.perf_counter()
                metrics = train(dataclasses.replace(cfg, overwrite=True)).metrics
                seconds = time.perf_counter() - start
            model = load_checkpoint(cfg.out)
            row: dict[str, Any] = {
                "entry": name,
                "arch": model.config.arch,
                "gating": model.config.gating,
                "lr": cfg.lr,
                "steps": cfg.steps,
                "data": spec,
                "mask_prob": cfg.mask_prob,
                "warmup": cfg.warmup,
                "precision": metrics.get("precision"),
                "val_ppl": metrics["val_ppl"],
                "val_loss": metrics["val_loss"],
                "val_short_ppl": metrics.get("val_short_ppl"),
                "last_fifth_improvement": plateau_improvement(read_metrics_log(cfg.out)),
            }
            if model.config.has_spatial_weights:
                summary = spatial_summary(model)
                row["shift_invariance"] = _per_layer(summary["shift_invariance"])
                row["locality"] = _per_layer(summary["locality"])
            if "cloze_top5" in metrics:  # the trainer scores models trained on the built-in corpora
                row |= {k: metrics[k] for k in ("cloze_top1", "cloze_top5", "cloze_sentences")}
            else:
                score = cloze_score(cloze_table(model, load_tokenizer(cfg.out), items))
                row |= {"cloze_top1": score["top1"], "cloze_top5": score["top5"], "cloze_sentences": score["sentences"]}
            row |= {"seconds": round(seconds, 1), "cpu": cpu_model_name()}
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            done.to_csv(out, index=False)
    return done[done["entry"].isin(list(entries))].reset_index(drop=True)


def _finished_metrics(cfg: Any) -> dict[str, Any] | None:
    """The metrics of a run of exactly this recipe whose final checkpoint is already in ``cfg.out`` (a sweep
    stopped after training but before its row was written), measured on the stored weights as training
    measures them; None when the run has to be trained."""
    from gmlp_core.checkpoints import load_metrics, read_config, read_metrics_log, resolve_device
    from gmlp_core.evaluate import evaluate_checkpoint
    from gmlp_core.hardware import resolve_precision

    out = Path(cfg.out)
    if not (out / WEIGHTS_NAME).is_file() or not (out / CONFIG_NAME).is_file():
        return None
    recorded = read_config(out).extra.get("train")
    ignored = ("progress", "resume", "out", "overwrite")
    wanted = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ignored}
    # a field added after the run was recorded counts as its default (the recipe every run had before it existed)
    defaults = {f.name: f.default for f in dataclasses.fields(cfg) if f.default is not dataclasses.MISSING}
    if not isinstance(recorded, dict) or any(recorded.get(k, defaults.get(k)) != v for k, v in wanted.items()):
        return None
    history = read_metrics_log(out)
    if not history or history[-1].get("step") != cfg.steps:
        return None
    if (out / METRICS_NAME).is_file():
        return load_metrics(out)
    metrics = evaluate_checkpoint(out, precision="fp32")
    metrics["precision"] = resolve_precision(cfg.precision, resolve_device(cfg.device))
    return metrics


def best_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per (entry, steps, data, and mask_prob and warm-up where recorded): the rate with the lowest validation
    perplexity, and its perplexity."""
    keys = ["entry", "steps", "data", *(k for k in ("mask_prob", "warmup") if k in table.columns)]
    best = table.loc[table.groupby(keys)["val_ppl"].idxmin(), [*keys, "lr", "val_ppl"]]
    return best.reset_index(drop=True)

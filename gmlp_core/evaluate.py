"""Evaluate a checkpoint: validation perplexity (MLM), accuracy (vision), or a finetuned model's validation and
test metrics on its task (accuracy; exact match and F1 for spans), as a dict.

Uses the checkpoint's own tokenizer and the same deterministic validation batches as training, so
it reproduces the number that training stored in ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gmlp_core.checkpoints import CONFIG_NAME, CheckpointError, load_checkpoint, load_tokenizer
from gmlp_core.data.canvas import CANVAS_DIGITS
from gmlp_core.data.text import BUILT_IN_CORPORA
from gmlp_core.hardware import autocast, resolve_precision
from gmlp_core.models import LensModel, ModelConfig
from gmlp_core.train.data import LEGACY_VAL_WINDOWS, FinetuneData, build_task_data
from gmlp_core.train.finetune import recorded_task


def evaluate_checkpoint(
    path: str | Path, data: str | None = None, device: str = "auto", precision: str = "fp32"
) -> dict[str, Any]:
    """Validation metrics of the checkpoint at ``path`` on ``data`` (default: the data it was trained on).

    ``precision="fp32"`` (the default) reproduces the stored metrics; ``"bf16"`` or ``"auto"`` runs the forward
    pass under bf16 autocast (where fast, for ``auto``), which moves the loss in its third or fourth digit."""
    model = load_checkpoint(path, device=device)
    cfg = model.config
    if not cfg.spec.fill_mask and cfg.is_text:
        return _evaluate_finetuned(model, path, data, precision)
    spec = data or _default_data(cfg, path)
    tokenizer = None
    if cfg.is_text:
        tokenizer = load_tokenizer(path)
        if tokenizer is None:
            raise CheckpointError(f"{Path(path) / 'tokenizer.json'}: an MLM checkpoint needs its tokenizer to evaluate")
    task_data, _ = build_task_data(cfg, spec, batch_size=32, seed=0, tokenizer=tokenizer, val_windows=_val_windows(cfg))
    resolved = resolve_precision(precision, model.device)
    with autocast(resolved, model.device):
        metrics = task_data.evaluate(model)
    return {"checkpoint": str(path), "data": task_data.name, "precision": resolved, **metrics}


def _evaluate_finetuned(model: LensModel, path: str | Path, data: str | None, precision: str) -> dict[str, Any]:
    """Validation and test metrics of a finetuned checkpoint on the task it records. A built-in task takes no
    data; a hub task reads the hub only when ``data`` names the task itself, else ``data`` is a local folder."""
    cfg = model.config
    task = recorded_task(cfg, str(Path(path) / CONFIG_NAME))
    source = None
    if not task.built_in:
        if data is None:
            raise ValueError(
                f"{path} was finetuned on {task.name}, which is not built in: pass --data {task.name} to read it from "
                "the hub, or --data FOLDER for local files in its columns"
            )
        source = None if data == task.name else data
    elif data is not None and data != task.name:
        raise ValueError(f"{path} was finetuned on {task.name}, built from Python's documentation: it takes no --data")
    tokenizer = load_tokenizer(path)
    if tokenizer is None:
        raise CheckpointError(f"{Path(path) / 'tokenizer.json'}: a text model needs its tokenizer to evaluate")
    task_data = FinetuneData.build(task.name, tokenizer, cfg.seq_len, source=source)
    resolved = resolve_precision(precision, model.device)
    with autocast(resolved, model.device):
        metrics = task_data.evaluate(model) | task_data.evaluate(model, "test")
    return {"checkpoint": str(path), "data": task.name, "precision": resolved, **metrics}


def _val_windows(cfg: ModelConfig) -> int:
    """How many validation windows the checkpoint was scored on (``extra.train.val_windows``; 128 before it was
    recorded). The record is untrusted: anything but an integer in [1, 65536] is an error."""
    train = cfg.extra.get("train")
    value = train.get("val_windows", LEGACY_VAL_WINDOWS) if isinstance(train, dict) else LEGACY_VAL_WINDOWS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65536:
        raise ValueError(f"config.json: extra.train.val_windows={str(value)[:40]} must be an integer in [1, 65536]")
    return value


# Data that ships with this package (or with Python), by the fixed names checkpoints record for it: the
# first name per task is the default.
BUILT_IN_DATA = {"mlm": BUILT_IN_CORPORA, "vision": ("digits", CANVAS_DIGITS)}


def built_in_data(cfg: ModelConfig) -> str:
    """The built-in data set ``cfg`` records it was trained on, or its task's default built-in set when it records
    none or data of its own (analyses that need held-out data default to this; they never read a recorded path)."""
    recorded = cfg.extra.get("data")
    return recorded if recorded in BUILT_IN_DATA[cfg.task] else BUILT_IN_DATA[cfg.task][0]


def _default_data(cfg: ModelConfig, path: str | Path) -> str:
    """The built-in data set for the checkpoint's task. A checkpoint never chooses what is read or downloaded:
    its recorded ``extra.data`` is used only when it names the built-in set; anything else needs ``--data``."""
    recorded = cfg.extra.get("data")
    if recorded is not None and recorded not in BUILT_IN_DATA[cfg.task]:
        raise ValueError(
            f"{Path(path) / 'config.json'} says it was trained on {str(recorded)[:200]!r}; a checkpoint's own "
            f"record never makes eval read or download data: pass --data to choose it "
            f"(or --data {BUILT_IN_DATA[cfg.task][0]})"
        )
    return built_in_data(cfg)

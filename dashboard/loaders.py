"""Cached loaders: models once for every session (``st.cache_resource``), tables per input (``st.cache_data``).

Cache keys include a file signature (names, sizes, modification times), so a checkpoint rewritten on
disk is reloaded, and nothing stale is served. Models are put in ``eval()`` with gradients off before
they are shared and are never mutated afterwards.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard.catalog import Candidate, find_checkpoints, inspect_checkpoint, signature, zoo_frame
from dashboard.paths import is_within
from gmlp_core.checkpoints import load_checkpoint, load_tokenizer, resolve_device
from gmlp_core.models import LensModel, ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """A checkpoint ready for inference: the shared model (read-only), its tokenizer and config."""

    name: str
    path: str
    model: LensModel
    tokenizer: Any | None
    config: ModelConfig

    @property
    def device(self) -> torch.device:
        return self.model.device


def device_name() -> str:
    """Where models run: ``cuda`` (with the GPU's name) or ``cpu``."""
    dev = resolve_device("auto")
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return "cpu"


@st.cache_data(max_entries=512, show_spinner=False)
def _inspect(name: str, path: str, refused: str | None, sig: tuple) -> dict[str, Any]:
    return inspect_checkpoint(Candidate(name, Path(path), refused))


def zoo_table(root: Path) -> pd.DataFrame:
    """Every checkpoint under ``root`` with its status (re-inspected only when its files change)."""
    rows = [_inspect(c.name, str(c.path), c.refused, signature(c.path)) for c in find_checkpoints(root)]
    return zoo_frame(rows)


@st.cache_resource(max_entries=32, show_spinner="Loading model...")
def _load(name: str, path: str, sig: tuple) -> Loaded:
    model = load_checkpoint(path, device="auto")
    for p in model.parameters():
        p.requires_grad_(False)  # shared between sessions: nothing may accumulate gradients in it
    tokenizer = load_tokenizer(path) if model.config.task == "mlm" else None
    log.info("loaded %s on %s", path, model.device)
    return Loaded(name, path, model.eval(), tokenizer, model.config)


def load(name: str, path: str) -> Loaded:
    """The shared, read-only model of checkpoint ``path`` (loaded once for every session)."""
    return _load(name, path, signature(Path(path)))


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics_log(path: str, sig: tuple) -> pd.DataFrame:
    file = Path(path) / "metrics.jsonl"
    rows = []
    if file.is_file():
        for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s line %d is not JSON; skipped", file, i)
    return pd.DataFrame(rows)


def metrics_log(path: str) -> pd.DataFrame:
    """The checkpoint's ``metrics.jsonl`` (one row per evaluation during training); empty when absent."""
    return _metrics_log(path, signature(Path(path)))


@st.cache_data(max_entries=32, show_spinner="Reading training snapshots...")
def _snapshots(path: str, sig: tuple) -> dict[int, np.ndarray]:
    from gmlp_core.train.snapshots import load_spatial_snapshots

    return {step: w.numpy() for step, w in load_spatial_snapshots(path).items()}


def snapshots(path: str) -> dict[int, np.ndarray]:
    """``{step: (n_layers, n, n)}`` spatial weights saved during training."""
    return _snapshots(path, signature(Path(path)))


@st.cache_data(show_spinner=False)
def digits_validation() -> tuple[np.ndarray, np.ndarray]:
    """The bundled 8x8 digits' validation split: pixels (N, 1, 8, 8) in [0, 1] and labels (N,)."""
    from gmlp_core.data.images import load_digits_split

    x, y = load_digits_split("validation")
    return x.numpy(), y.numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def _sweeps(files: tuple[tuple[str, int], ...]) -> pd.DataFrame:
    from gmlp_core.scaling import load_sweep_csvs

    return load_sweep_csvs([f for f, _ in files])


def sweep_results(folders: list[Path]) -> pd.DataFrame:
    """Every sweep CSV (``*.csv`` with the sweep columns) under ``folders``, concatenated.

    Files reached through a link that leaves their folder are not read."""
    files = []
    for folder in folders:
        if folder.is_dir():
            for f in sorted(folder.rglob("*.csv")):
                hidden = any(part.startswith(".") for part in f.relative_to(folder).parts)
                if f.is_file() and not hidden and is_within(f, folder):
                    files.append((str(f), f.stat().st_mtime_ns))
    return _sweeps(tuple(files))

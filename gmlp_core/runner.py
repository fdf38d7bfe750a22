"""One resumable runner for experiments: a list of independent training runs, one CSV row per finished run.

A run is a ``TrainConfig`` and the key columns that name it in the CSV. ``run_grid`` skips every run whose key
is already a row, trains the rest one after another and writes each row as it finishes (the whole CSV rewritten
to a temporary file and renamed, so a killed process leaves the previous CSV intact), so the same call resumes
where it stopped and a grid can be run in parts (any subset of its runs, in any order, into the same CSV).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gmlp_core.train import TrainConfig, TrainResult, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One run of a grid: its identity in the CSV (``key``) and what trains it."""

    key: tuple[tuple[str, Any], ...]  # (column, value) pairs; a row with all of them means "done"
    config: TrainConfig

    @property
    def name(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key)


def read_rows(path: Path) -> pd.DataFrame:
    """The CSV's rows (empty when it does not exist yet)."""
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def write_rows(path: Path, rows: pd.DataFrame) -> None:
    """Write ``rows`` to ``path`` through a temporary file and a rename (never a half-written CSV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows.to_csv(tmp, index=False)
    os.replace(tmp, path)


def is_done(rows: pd.DataFrame, run: Run) -> bool:
    """Whether ``rows`` hold a row with every key value of ``run``."""
    if rows.empty:
        return False
    match = pd.Series(True, index=rows.index)
    for column, value in run.key:
        if column not in rows.columns:
            return False
        match &= rows[column].astype(str) == str(value)
    return bool(match.any())


def run_grid(
    runs: Sequence[Run],
    out: Path,
    row_of: Callable[[Run, TrainResult, float], dict[str, Any]],
) -> pd.DataFrame:
    """Train every run of ``runs`` not yet in ``out``; ``row_of(run, result, seconds)`` makes its row (the key
    columns are added). Returns all of ``out``'s rows."""
    rows = read_rows(out)
    todo = [run for run in runs if not is_done(rows, run)]
    log.info("%d of %d runs already in %s; %d to go", len(runs) - len(todo), len(runs), out, len(todo))
    for i, run in enumerate(todo, 1):
        log.info("[%d/%d] %s", i, len(todo), run.name)
        start = time.perf_counter()
        result = train(run.config)
        seconds = time.perf_counter() - start
        row = dict(run.key) | row_of(run, result, seconds)
        rows = read_rows(out)  # another process may have added rows meanwhile (a grid run in parts)
        rows = pd.concat([rows, pd.DataFrame([row])], ignore_index=True) if not rows.empty else pd.DataFrame([row])
        write_rows(out, rows)
    return read_rows(out)

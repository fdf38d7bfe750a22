"""The zoo table: every checkpoint folder under the root, loadable or not, with the reason when not.

Plain functions (no streamlit) so the tests can call them; ``dashboard.loaders`` caches them. A broken
checkpoint (corrupt or truncated weights, shapes that do not match the config, a missing or invalid
config, an unknown arch, a pickle instead of safetensors) becomes a row with ``status == "broken"``
and the loader's message, so the rest of the app keeps working.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.paths import ALLOW_HARD_LINKS_ENV, display_path, hard_linked, link_problem, links_leaving
from gmlp_core.checkpoints import (
    CONFIG_NAME,
    PICKLE_SUFFIXES,
    WEIGHTS_NAME,
    load_metrics,
    load_state,
    load_tokenizer,
    read_config,
)
from gmlp_core.models import config_summary

log = logging.getLogger(__name__)

SKIP_DIRS = {"trainer_state", "__pycache__", "node_modules"}
MAX_DEPTH = 3
ZOO_COLUMNS = [
    "name",
    "arch",
    "task",
    "params",
    "non_embedding_params",
    "layers",
    "d_model",
    "d_ffn",
    "n",
    "gating",
    "causal",
    "spatial",
    "data",
    "steps",
    "val_ppl",
    "val_accuracy",
    "cloze",
    "status",
    "error",
]


@dataclass(frozen=True)
class Candidate:
    """A folder (or a pickle file) under the root that looks like a checkpoint."""

    name: str  # relative to the root, "/"-separated
    path: Path
    refused: str | None = None  # why it is not read at all (a link leaving the root)


def _is_checkpoint_folder(names: set[str]) -> bool:
    """A folder is a checkpoint when it holds a config or safetensors weights. A pickle beside other things is a
    file of its own (listed, refused with its message), never what makes its folder one checkpoint: a stray
    ``x.pt`` must not turn a folder of checkpoints into one broken checkpoint."""
    return CONFIG_NAME in names or WEIGHTS_NAME in names


def _links_refused(name: str, folder: Path, root: Path) -> str | None:
    """Why a checkpoint folder is not opened: links that leave the root or loop, or hard-linked files."""
    outside = links_leaving(folder, root)
    if outside:
        return f"{name}: {', '.join(outside)} link(s) outside the root or in a loop; not opened"
    hard = hard_linked(folder)
    if hard:
        return (
            f"{name}: {', '.join(hard)} hard-linked (another name for the same file may lie outside the root, "
            f"and the app cannot tell); not opened. Copy the files instead, or set {ALLOW_HARD_LINKS_ENV}=1 "
            "when only you can write to this root"
        )
    return None


def find_checkpoints(root: Path, max_depth: int = MAX_DEPTH) -> list[Candidate]:
    """Checkpoint folders under ``root`` (up to ``max_depth`` levels), sorted by name; ``root`` itself,
    named by its folder name, when it is a checkpoint.

    A symlink whose target is outside ``root`` is listed as refused and never opened.
    """
    root = Path(root).resolve()
    found: list[Candidate] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            log.warning("cannot list %s: %s", folder, err)
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name in SKIP_DIRS:
                continue
            path = Path(entry.path)
            name = display_path(path, root)
            problem = link_problem(path, root) if entry.is_symlink() else None
            if problem:
                found.append(Candidate(name, path, refused=f"{name} is {problem}; not opened"))
                continue
            if entry.is_file() and entry.name.lower().endswith(PICKLE_SUFFIXES):
                found.append(Candidate(name, path))  # refused with the pickle message when inspected
                continue
            if not entry.is_dir():
                continue
            try:
                names = {e.name for e in os.scandir(path)}
            except OSError as err:
                found.append(Candidate(name, path, refused=f"{name}: cannot be listed ({err})"))
                continue
            if _is_checkpoint_folder(names):
                found.append(Candidate(name, path, refused=_links_refused(name, path, root)))
            elif depth < max_depth:
                walk(path, depth + 1)

    if not root.is_dir():
        return found
    try:
        own = {e.name for e in os.scandir(root)}
    except OSError:
        own = set()
    if _is_checkpoint_folder(own):
        # The folder is itself a checkpoint (a checkpoint's own name typed as the sub-folder): list it, as the
        # walk would from its parent, instead of an empty zoo.
        return [Candidate(root.name, root, refused=_links_refused(root.name, root, root))]
    walk(root, 1)
    return sorted(found, key=lambda c: c.name)


def signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(file, size, mtime) of everything in a checkpoint folder: a cache key that changes on rewrite."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        return ((path.name, st.st_size, st.st_mtime_ns),)
    out = []
    try:
        for entry in os.scandir(path):
            if entry.is_file():
                st = entry.stat()
                out.append((entry.name, st.st_size, st.st_mtime_ns))
    except OSError:
        return ()
    return tuple(sorted(out))


def inspect_checkpoint(candidate: Candidate) -> dict[str, Any]:
    """One zoo-table row: the config summary and metrics when the checkpoint loads, else the error."""
    row: dict[str, Any] = {c: None for c in ZOO_COLUMNS} | {"name": candidate.name, "path": str(candidate.path)}
    if candidate.refused:
        return row | {"status": "refused", "error": candidate.refused}
    try:
        cfg = read_config(candidate.path)
        row |= {k: v for k, v in config_summary(cfg).items() if k in ZOO_COLUMNS} | {"data": cfg.extra.get("data")}
        load_state(candidate.path, cfg)  # validates every tensor against the config
        if cfg.is_text:
            tok = load_tokenizer(candidate.path)
            if tok is None:
                raise ValueError(f"{candidate.name}: a text model needs tokenizer.json next to its weights")
            if tok.get_vocab_size() > cfg.vocab_size:
                raise ValueError(
                    f"{candidate.name}: tokenizer.json has {tok.get_vocab_size()} tokens but the model only "
                    f"{cfg.vocab_size}: they do not belong together"
                )
        metrics = load_metrics(candidate.path)
    except Exception as err:  # any failure is shown in the table; the app keeps serving the rest
        log.info("broken checkpoint %s: %s", candidate.path, err)
        message = (str(err) or type(err).__name__).replace(str(candidate.path), candidate.name)
        return row | {"status": "broken", "error": message}
    row |= {
        "data": metrics.get("data") or row["data"],
        "steps": metrics.get("steps"),
        "val_ppl": metrics.get("val_ppl") if cfg.spec.fill_mask else None,
        "val_accuracy": metrics.get("val_accuracy") if cfg.spec.classes else metrics.get("val_f1"),
        "cloze": _cloze(metrics) if cfg.spec.fill_mask else None,
        "status": "ok",
        "error": "",
    }
    return row


def _cloze(metrics: dict[str, Any]) -> str | None:
    """'top-5 hits / sentences' of the cloze suite as metrics.json records it (None when not scored)."""
    top5, total = metrics.get("cloze_top5"), metrics.get("cloze_sentences")
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (top5, total))
    return f"{top5}/{total}" if ok and top5 <= total else None


def zoo_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a table with a fixed column order (ok checkpoints first, then by name)."""
    df = pd.DataFrame(rows, columns=[*ZOO_COLUMNS, "path"])
    if df.empty:
        return df
    df["_order"] = (df["status"] != "ok").astype(int)
    return df.sort_values(["_order", "name"]).drop(columns="_order").reset_index(drop=True)

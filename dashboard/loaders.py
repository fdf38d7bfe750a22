"""Cached loaders: models once for every session (``st.cache_resource``), tables per input (``st.cache_data``).

Pages and views pass a :class:`Checkpoint` handle around; ``per_checkpoint`` caches a function of one
checkpoint by its name, folder and file signature (names, sizes, modification times), so a checkpoint
rewritten on disk is reloaded, and nothing stale is served. Models are put in ``eval()`` with gradients
off before they are shared and are never mutated afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard.bytecache import CACHE, Recent
from dashboard.catalog import Candidate, find_checkpoints, inspect_checkpoint, signature, zoo_frame
from dashboard.paths import is_within
from dashboard.style import model_badges, model_label
from gmlp_core.checkpoints import load_checkpoint, load_metrics_log, load_tokenizer, read_config, resolve_device
from gmlp_core.models import LensModel, ModelConfig

log = logging.getLogger(__name__)
R = TypeVar("R")


@st.cache_resource(max_entries=512, show_spinner=False)
def _config(path: str, sig: tuple) -> ModelConfig:
    return read_config(path)


@dataclass(frozen=True)
class Checkpoint:
    """One loadable checkpoint, as pages and views pass it around: what a cache needs to key it, and its config."""

    name: str
    path: str
    signature: tuple
    config: ModelConfig = field(compare=False, repr=False)

    @classmethod
    def at(cls, name: str, path: str | Path) -> Checkpoint:
        """The checkpoint in folder ``path`` as it is on disk now (its signature taken at this call)."""
        sig = signature(Path(path))
        return cls(name, str(path), sig, _config(str(path), sig))


def per_checkpoint(cache: Callable = st.cache_data, **options: Any) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Cache ``fn(checkpoint, *args)`` per checkpoint (name, folder, file signature) and arguments.

    Results live in ``dashboard.bytecache.CACHE``, one least-recently-used store bounded in bytes for the whole
    server (``$GMLP_LENS_MAX_CACHE_GB``), that gives memory back when it evicts. ``cache`` says how results are
    shared: ``st.cache_data`` (tables: each caller gets its own copy) or ``st.cache_resource`` (models: one shared
    object); ``options``: ``max_entries`` (at most this many results of this function), ``show_spinner`` (a text
    shown while computing) and ``scope="session"`` (a private object per browser session: Streamlit's own cache).
    """
    if options.get("scope") == "session":
        return _streamlit_per_checkpoint(cache, **options)
    unknown = sorted(set(options) - {"max_entries", "show_spinner"})
    if unknown:
        raise TypeError(f"per_checkpoint: unknown option(s) {unknown}")
    copy_out = cache is st.cache_data
    spinner = options.get("show_spinner")

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        group = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def call(checkpoint: Checkpoint, *args: Any, **kwargs: Any) -> R:
            key = (group, checkpoint.name, checkpoint.path, checkpoint.signature, freeze(args), freeze(kwargs))

            def compute() -> R:
                if isinstance(spinner, str) and get_script_run_ctx() is not None:
                    with st.spinner(spinner):
                        return fn(checkpoint, *args, **kwargs)
                return fn(checkpoint, *args, **kwargs)

            return CACHE.get_or_compute(
                key, compute, copy_out=copy_out, group=group, group_max=options.get("max_entries")
            )

        call.clear = lambda: CACHE.clear(lambda key: key[0] == group)  # type: ignore[attr-defined]
        return call

    return decorate


def _streamlit_per_checkpoint(cache: Callable, **options: Any) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """``per_checkpoint`` on Streamlit's own cache (for ``scope="session"``: one object per browser session)."""

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        def cached(_checkpoint: Checkpoint, key: tuple, *args: Any, **kwargs: Any) -> R:
            return fn(_checkpoint, *args, **kwargs)  # ``_checkpoint`` is not hashed: ``key`` stands for it

        # Streamlit keys a cache by the function's module and qualified name: one per decorated function.
        cached.__module__, cached.__qualname__ = fn.__module__, f"{fn.__qualname__}.cached"
        cached_fn = cache(**options)(cached)

        @functools.wraps(fn)
        def call(checkpoint: Checkpoint, *args: Any, **kwargs: Any) -> R:
            return cached_fn(checkpoint, (checkpoint.name, checkpoint.path, checkpoint.signature), *args, **kwargs)

        call.clear = cached_fn.clear  # type: ignore[attr-defined]
        return call

    return decorate


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for a cached function's argument, equal for equal values: arrays and tensors by their
    shape, type and bytes' digest; lists, tuples and dicts item by item."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, str(value.dtype), hashlib.sha1(np.ascontiguousarray(value).tobytes()).digest())
    if isinstance(value, torch.Tensor):
        return freeze(value.detach().cpu().numpy())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), freeze(v)) for k, v in value.items())))
    hash(value)  # anything else must be hashable itself (a TypeError names it)
    return value


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


def torch_threads() -> int:
    """Give the calling thread's torch ``GMLP_LENS_TORCH_THREADS`` intra-op threads (default 1), and return it.

    Streamlit runs every script run, and the warm-up, on a thread of its own, and there torch's default (one
    OpenMP thread per core) was slower than one: token influence of the demo aMLP took 1.7-2.1 s on a non-main
    thread with 2 threads and 0.55-0.9 s with 1, on this 2-core CPU (on the main thread 0.37-0.76 s with 2).
    Sessions also run side by side, so one thread each keeps the cores from being oversubscribed."""
    try:
        n = max(1, int(os.environ.get("GMLP_LENS_TORCH_THREADS", "1")))
    except ValueError:
        n = 1
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


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
    return catalog(root).table


@dataclass(frozen=True)
class Catalog:
    """What a folder holds, built once per change of its files and shared by every session (read-only):
    ``table``, the zoo table as Overview shows it (every checkpoint, loadable or not), and ``checkpoints``, the
    loadable ones as typed handles in the table's order, so a page finds a checkpoint by name in a dict and asks
    its config, never filters the table."""

    table: pd.DataFrame
    checkpoints: dict[str, Checkpoint]
    labels: dict[str, str]  # name -> "name · badge · badge", as pickers show it
    records: dict[str, dict[str, Any]]  # name -> its row of the table (every checkpoint, loadable or not)


def scan_seconds() -> float:
    """How long one listing of a folder serves every session: ``$GMLP_LENS_SCAN_SECONDS``, default 2. A class of
    30 asks for the catalog several times a second; listing the folder, checking its links and reading every
    file's size and time each time was most of a rerun's work under that load."""
    try:
        return max(0.0, float(os.environ.get("GMLP_LENS_SCAN_SECONDS", "2")))
    except ValueError:
        return 2.0


_SCANS: Recent = Recent(max_entries=64)  # folder -> (monotonic time, its scan), shared by every session


def catalog(root: Path) -> Catalog:
    """The catalog of ``root``: the folder listed, its links checked and every file's size and time read at most
    once every ``scan_seconds()`` for the whole server (a checkpoint written a moment ago shows up within that);
    the checkpoints are inspected only when those change."""
    key, now = str(root), time.monotonic()
    hit = _SCANS.get(key)
    if hit is not None and now - hit[0] < scan_seconds():
        scan = hit[1]
    else:
        scan = tuple((c.name, str(c.path), c.refused, signature(c.path)) for c in find_checkpoints(root))
        _SCANS[key] = (now, scan)
    return _catalog(scan)


@st.cache_resource(max_entries=16, show_spinner=False)
def _catalog(scan: tuple) -> Catalog:
    rows = [_inspect(*entry) for entry in scan]
    table = zoo_frame(rows)
    sigs = {name: sig for name, _, _, sig in scan}
    checkpoints = {}
    for row in rows:
        if row["status"] == "ok":
            name, path = row["name"], row["path"]
            checkpoints[name] = Checkpoint(name, path, sigs[name], _config(path, sigs[name]))
    order = table["name"].tolist() if not table.empty else []
    ordered = {n: checkpoints[n] for n in order if n in checkpoints}
    labels = {row["name"]: model_label(row["name"], model_badges(row)) for row in rows}
    return Catalog(table, ordered, labels, {row["name"]: row for row in rows})


@per_checkpoint(st.cache_resource, max_entries=32, show_spinner="Loading model...")
def load(checkpoint: Checkpoint) -> Loaded:
    """The shared, read-only model of ``checkpoint`` (loaded once for every session)."""
    path = checkpoint.path
    model = load_checkpoint(path, device="auto")
    for p in model.parameters():
        p.requires_grad_(False)  # shared between sessions: nothing may accumulate gradients in it
    tokenizer = load_tokenizer(path) if model.config.is_text else None
    log.info("loaded %s on %s", path, model.device)
    return Loaded(checkpoint.name, path, model.eval(), tokenizer, model.config)


@per_checkpoint(max_entries=64, show_spinner=False)
def _metrics_log(checkpoint: Checkpoint) -> tuple[pd.DataFrame, list[str]]:
    log_ = load_metrics_log(checkpoint.path)
    return pd.DataFrame(log_.rows), log_.notes


def metrics_log(checkpoint: Checkpoint) -> pd.DataFrame:
    """The checkpoint's ``metrics.jsonl`` (one row per evaluation during training); empty when absent. Rows and
    values that cannot be drawn are left out (``metrics_log_notes`` says which)."""
    return _metrics_log(checkpoint)[0]


def metrics_log_notes(checkpoint: Checkpoint) -> list[str]:
    """What ``metrics_log`` left out of the checkpoint's log, a sentence each (empty when nothing)."""
    return _metrics_log(checkpoint)[1]


# Shared, not copied per call (st.cache_data hands every caller its own copy): the snapshots take the memory
# ``limits.check_snapshots`` allowed once, not once more per rerun. Callers only read the arrays.
@per_checkpoint(st.cache_resource, max_entries=32, show_spinner="Reading training snapshots...")
def _snapshots(checkpoint: Checkpoint) -> tuple[dict[int, np.ndarray], list[str]]:
    from gmlp_core.train.snapshots import read_spatial_snapshots

    found, notes = read_spatial_snapshots(checkpoint.path, checkpoint.config)
    return {step: w.numpy() for step, w in found.items()}, notes


def snapshots(checkpoint: Checkpoint) -> dict[int, np.ndarray]:
    """``{step: (n_layers, n, n)}`` spatial weights saved during training (tensors that are not this model's
    snapshots left out: ``snapshot_notes`` says which)."""
    return _snapshots(checkpoint)[0]


def snapshot_notes(checkpoint: Checkpoint) -> list[str]:
    """What ``snapshots`` left out of the checkpoint's snapshots file, a sentence each (empty when nothing)."""
    return _snapshots(checkpoint)[1]


@st.cache_data(show_spinner=False)
def digits_validation() -> tuple[np.ndarray, np.ndarray]:
    """The bundled 8x8 digits' validation split: pixels (N, 1, 8, 8) in [0, 1] and labels (N,)."""
    from gmlp_core.data.images import load_digits_split

    x, y = load_digits_split("validation")
    return x.numpy(), y.numpy()


@st.cache_resource(show_spinner=False)
def sample_photo(name: str) -> Image.Image:
    """One of scikit-learn's bundled sample photos (read once; PIL images are not changed by their users here)."""
    from gmlp_core.data.images import sample_photo as read

    return read(name)


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

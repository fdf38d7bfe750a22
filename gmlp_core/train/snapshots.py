"""Snapshots of every layer's spatial weights W during training, for the "how W forms" timeline.

One file per checkpoint, ``spatial_snapshots.safetensors``: a float16 tensor ``step_{step}`` of
shape (n_layers, n, n) per snapshot.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gmlp_core.checkpoints import FLOAT_NAMES, CheckpointError, _atomic_write, _safetensors_header, read_config
from gmlp_core.limits import LimitError, Limits, check_snapshots
from gmlp_core.models.config import ModelConfig

SNAPSHOTS_NAME = "spatial_snapshots.safetensors"


def save_spatial_snapshots(directory: str | Path, snapshots: dict[int, torch.Tensor]) -> None:
    """Write ``{step: (n_layers, n, n)}`` atomically as float16."""
    tensors = {f"step_{s}": w.detach().to("cpu", torch.float16).contiguous() for s, w in sorted(snapshots.items())}
    if tensors:
        _atomic_write(Path(directory) / SNAPSHOTS_NAME, lambda p: save_file(tensors, str(p)))


def load_spatial_snapshots(directory: str | Path, config: ModelConfig | None = None) -> dict[int, torch.Tensor]:
    """``{step: (n_layers, n, n) float32}`` sorted by step; empty when the checkpoint has none. Strict (what
    training resumes from): any tensor that is not a snapshot of this model is a ``CheckpointError``; the pages
    read with ``read_spatial_snapshots``, which skips such tensors with a note."""
    snapshots, notes = read_spatial_snapshots(directory, config, strict=True)
    if notes:
        raise CheckpointError(f"{Path(directory) / SNAPSHOTS_NAME}: {'; '.join(notes)}")
    return snapshots


def read_spatial_snapshots(
    directory: str | Path, config: ModelConfig | None = None, strict: bool = False
) -> tuple[dict[int, torch.Tensor], list[str]]:
    """The snapshots that are this model's (as ``load_spatial_snapshots``), and a note for each thing skipped.

    The file is checked from its header before any tensor is read: a snapshot is a ``step_N`` tensor of
    ``config``'s (n_layers, n, n) (default: the checkpoint's own ``config.json``) in a float dtype; any other
    tensor is skipped with a note (``strict``: the notes come back before any tensor is read), and the snapshots
    kept must fit the memory limit with the model
    (``limits.check_snapshots``, a ``CheckpointError`` otherwise). Tensors are then read one at a time; a file
    that cannot be parsed, or a tensor that cannot be read, is a note and no snapshots.
    """
    path = Path(directory) / SNAPSHOTS_NAME
    if not path.is_file():
        return {}, []
    config = config or read_config(directory)
    expected = (config.n_layers, config.seq_len, config.seq_len)
    limits = Limits.from_env()
    try:
        header = _safetensors_header(path, limits.max_header_mb)
    except CheckpointError as err:
        return {}, [f"the snapshots file cannot be read ({str(err).replace(str(path) + ': ', '')})"]
    steps, skipped = {}, []
    for key, (dtype, shape) in header.items():
        m = re.fullmatch(r"step_(\d{1,12})", key)
        if m is None or shape != expected or dtype not in FLOAT_NAMES:
            skipped.append(f"{key[:60]!r} ({dtype[:10]}, shape {tuple(shape[:4])})")
            continue
        steps[int(m.group(1))] = key
    notes = []
    if skipped:
        shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        notes.append(
            f"{len(skipped)} tensor(s) skipped that are not snapshots of this model (step_N of shape {expected}, "
            f"n_layers x n x n): {shown}"
        )
    if (notes and strict) or not steps:
        return {}, notes
    itemsize = max((4 if header[key][0] == "F32" else 2 for key in steps.values()), default=2)
    try:
        check_snapshots(config, len(steps), itemsize, limits, source=str(path))
    except LimitError as err:
        raise CheckpointError(str(err)) from err
    out = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for step in sorted(steps):
                out[step] = f.get_tensor(steps[step]).float()
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        return {}, [*notes, f"the snapshots file is corrupt ({err})"]
    return out, notes

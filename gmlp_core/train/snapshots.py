"""Snapshots of every layer's spatial weights W during training, for the "how W forms" timeline.

One file per checkpoint, ``spatial_snapshots.safetensors``: a float16 tensor ``step_{step}`` of
shape (n_layers, n, n) per snapshot.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gmlp_core.checkpoints import CheckpointError, _atomic_write

SNAPSHOTS_NAME = "spatial_snapshots.safetensors"


def save_spatial_snapshots(directory: str | Path, snapshots: dict[int, torch.Tensor]) -> None:
    """Write ``{step: (n_layers, n, n)}`` atomically as float16."""
    tensors = {f"step_{s}": w.detach().to("cpu", torch.float16).contiguous() for s, w in sorted(snapshots.items())}
    if tensors:
        _atomic_write(Path(directory) / SNAPSHOTS_NAME, lambda p: save_file(tensors, str(p)))


def load_spatial_snapshots(directory: str | Path) -> dict[int, torch.Tensor]:
    """``{step: (n_layers, n, n) float32}`` sorted by step; empty when the checkpoint has none."""
    path = Path(directory) / SNAPSHOTS_NAME
    if not path.is_file():
        return {}
    try:
        raw = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: corrupt snapshots file ({err})") from err
    out = {}
    for key, value in raw.items():
        m = re.fullmatch(r"step_(\d+)", key)
        if m is None or value.dim() != 3:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} of shape {tuple(value.shape)}")
        out[int(m.group(1))] = value.float()
    return dict(sorted(out.items()))

"""Resource limits for checkpoints from untrusted places, checked from ``config.json`` alone.

A 60 KB checkpoint can describe a model that needs gigabytes (``seq_len: 30000`` makes every W 3.6 GB) or
minutes just to build (``n_layers: 1000000``). ``check_config`` estimates what a config implies, without
building anything, and refuses above the limits with a message that names the field. Every config read from
disk goes through it (``checkpoints.read_config``).

The limits are generous for the paper's models (gMLP-large: 365M parameters, ~1.5 GB in fp32) and can be
raised for a bigger machine with environment variables, e.g. ``GMLP_LENS_MAX_MEMORY_GB=32``:

| limit | default | environment variable |
| --- | ---: | --- |
| estimated memory: fp32 parameters, the analyses' n x n maps, activations, a scored batch, images | 8 GB | ``GMLP_LENS_MAX_MEMORY_GB`` |
| layers | 512 | ``GMLP_LENS_MAX_LAYERS`` |
| sequence length n | 2048 | ``GMLP_LENS_MAX_SEQ_LEN`` |
| any width (d_model, d_ffn, attn_dim, vocab, classes, image side) | 1,000,000 | ``GMLP_LENS_MAX_WIDTH`` |
| config.json / metrics.json / a metrics.jsonl | 1 MB / 1 MB / 32 MB | ``GMLP_LENS_MAX_JSON_MB``, ``GMLP_LENS_MAX_LOG_MB`` |
| tokenizer.json | 32 MB | ``GMLP_LENS_MAX_TOKENIZER_MB`` |
| safetensors header (the tensor list) | 8 MB | ``GMLP_LENS_MAX_HEADER_MB`` |

The estimates are upper bounds of what the code allocates, not guesses: ``tests/test_memory.py`` measures the
peak memory of each analysis they bound (the spatial report, scoring the held-out set, the W snapshots) on a range of
sizes and fails when it exceeds its estimate. Files beside the config are checked from their headers before any
tensor is read: the W snapshots (``check_snapshots``) and imported state dicts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from gmlp_core.data.canvas import rendered_images
from gmlp_core.models.archs import HEADS
from gmlp_core.models.config import ModelConfig

GB = 1e9
MB = 2**20
EVAL_BATCH = 256  # images or finetuned texts per forward pass when a held-out set is scored (eval, interventions)
MLM_EVAL_BATCH = 32  # masked windows per forward pass when held-out text is scored (masking.validation_batches)
VAL_MASK_SHARE = 0.15  # the share of a validation window's tokens that is masked and predicted (BERT's)
SPATIAL_WORK_MAPS = 5  # n x n tables spatial_report holds while it works, besides its three arrays per layer


class LimitError(ValueError):
    """A config or file beyond a resource limit; the message names the field and the limit."""


@dataclass(frozen=True)
class Limits:
    max_memory_gb: float = 8.0
    max_layers: int = 512
    max_seq_len: int = 2048
    max_width: int = 1_000_000
    max_json_mb: float = 1.0
    max_log_mb: float = 32.0
    max_tokenizer_mb: float = 32.0
    max_header_mb: float = 8.0

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, each overridden by ``GMLP_LENS_<FIELD>`` when set (e.g. ``GMLP_LENS_MAX_LAYERS=1024``)."""
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"GMLP_LENS_{f.name.upper()}")
            if raw is not None:
                kind = int if f.type in (int, "int") else float
                try:
                    values[f.name] = kind(raw)
                except ValueError as err:
                    raise LimitError(f"GMLP_LENS_{f.name.upper()}={raw!r} is not a number") from err
        return cls(**values)


def estimate_parameters(cfg: ModelConfig) -> int:
    """The parameter count ``cfg`` implies, computed from its fields (equal to ``count_parameters``)."""
    d, n = cfg.d_model, cfg.seq_len
    norm = 2 * d
    block = cfg.arch_spec.block_parameters(cfg)  # each family module counts its own block (models/archs.py)
    position = n * d if cfg.arch_spec.positions else 0
    spec = cfg.spec
    tokens = cfg.vocab_size * d if spec.is_text else cfg.in_channels * cfg.patch_size**2 * d + d
    embed = tokens + position
    if spec.fill_mask:
        head = (d * d + d) + norm + cfg.vocab_size if cfg.mlm_head == "bert" else d * cfg.vocab_size + cfg.vocab_size
    elif spec.span:
        head = d * 2 + 2
    else:
        head = d * cfg.num_classes + cfg.num_classes
    return embed + cfg.n_layers * block + norm + head


def estimate_memory(cfg: ModelConfig) -> dict[str, float]:
    """Bytes ``cfg`` implies on the dashboard: fp32 parameters, the n x n maps every layer's analyses
    hold at once (W and its copies, attention or gates for one input, token influence) and the tables they work
    with, one input's activations, one scored held-out batch (``estimate_batch``) and the images at the model's input
    size that its held-out data renders (``estimate_images``). An upper-bound estimate, not a measurement."""
    n, layers = cfg.seq_len, cfg.n_layers
    maps_per_layer = 4 + max(
        1, cfg.attention_heads
    )  # W, its Toeplitz part and residual, token influence; attention per head
    activations = n * (3 * cfg.d_model + 2 * cfg.d_ffn) * layers
    out = {
        "parameters": 4.0 * estimate_parameters(cfg),
        "n_x_n_maps": 4.0 * n * n * (maps_per_layer * layers + SPATIAL_WORK_MAPS),
        "activations": 4.0 * activations,
        "batch": estimate_batch(cfg),
        "images": estimate_images(cfg),
    }
    out["total"] = sum(out.values())
    return out


def estimate_spatial_report(cfg: ModelConfig) -> float:
    """Peak bytes of ``analysis.spatial.spatial_report``: W, its Toeplitz part and its residual for every layer
    (float32 n x n each) and the few tables it works with (within ``estimate_memory``'s n x n maps)."""
    if not cfg.has_spatial_weights:
        return 0.0
    return 4.0 * cfg.seq_len**2 * (3 * cfg.n_layers + SPATIAL_WORK_MAPS)


def eval_batch(cfg: ModelConfig) -> int:
    """Inputs per forward pass when ``cfg``'s held-out set is scored (eval, interventions)."""
    return MLM_EVAL_BATCH if cfg.spec.fill_mask else EVAL_BATCH


def estimate_batch(cfg: ModelConfig) -> float:
    """Peak bytes of scoring one held-out batch of ``eval_batch`` inputs, beyond the inputs: without gradients one
    layer's activations are alive at a time (``ArchSpec.block_activations``: at most 7 d_model + 3 d_ffn numbers a
    position, more with attention scores and probabilities or a token MLP), and a fill-mask model's vocabulary logits at the masked positions
    (twice: the loss takes a log-softmax)."""
    n = cfg.seq_len
    per_position = cfg.arch_spec.block_activations(cfg)
    if cfg.spec.fill_mask:
        per_position += 2 * VAL_MASK_SHARE * cfg.vocab_size
    return 4.0 * eval_batch(cfg) * n * per_position


def estimate_images(cfg: ModelConfig) -> float:
    """Bytes of float32 images at ``cfg``'s input size held at once: the built-in held-out set it can be evaluated
    on (the digits on a canvas render ``data.canvas.rendered_images`` of them) and one scored batch's worth."""
    if cfg.is_text:
        return 0.0
    return 4.0 * cfg.in_channels * cfg.image_size**2 * (rendered_images(cfg) + EVAL_BATCH)


def estimate_snapshots(cfg: ModelConfig, count: int, itemsize: int = 2) -> float:
    """Peak bytes of loading ``count`` W snapshots of ``cfg`` stored with ``itemsize`` bytes a number (float16: 2):
    each (n_layers, n, n) kept as float32, the file mapped while it is read, and the one being converted."""
    per_snapshot = cfg.n_layers * cfg.seq_len**2
    return float(per_snapshot * (count * (4 + itemsize) + itemsize))


def check_snapshots(
    cfg: ModelConfig, count: int, itemsize: int = 2, limits: Limits | None = None, source: str = "snapshots"
) -> None:
    """Refuse ``count`` W snapshots of ``cfg`` when loading them, with what ``cfg`` itself needs
    (``estimate_memory``), exceeds the memory limit: the Spatial weights page holds both."""
    limits = limits or Limits.from_env()
    need, model = estimate_snapshots(cfg, count, itemsize), estimate_memory(cfg)["total"]
    if need + model > limits.max_memory_gb * GB:
        raise LimitError(
            f"{source}: {count:,} snapshots of W (n_layers={cfg.n_layers} x {cfg.seq_len} x {cfg.seq_len}) need "
            f"about {need / GB:.1f} GB to load; with the model's {model / GB:.1f} GB that is above the limit of "
            f"{limits.max_memory_gb:g} GB (raise it with GMLP_LENS_MAX_MEMORY_GB)"
        )


def check_config(cfg: ModelConfig, limits: Limits | None = None, source: str = "config") -> None:
    """Refuse ``cfg`` when it exceeds ``limits`` (default: ``Limits.from_env()``), naming the field."""
    limits = limits or Limits.from_env()
    if cfg.n_layers > limits.max_layers:
        raise LimitError(f"{source}: n_layers={cfg.n_layers} is above the limit of {limits.max_layers} layers")
    if cfg.seq_len > limits.max_seq_len:
        field = "seq_len" if cfg.is_text else "image_size / patch_size"
        raise LimitError(
            f"{source}: {field} gives n={cfg.seq_len} positions, above the limit of {limits.max_seq_len} "
            "(every layer holds n x n maps)"
        )
    widths = ["d_model", "d_ffn", "attn_dim", "n_heads"]
    widths += ["vocab_size"] if cfg.is_text else ["image_size", "in_channels"]
    widths += ["num_classes"] if cfg.spec.classes else []
    for name in widths:
        if getattr(cfg, name) > limits.max_width:
            raise LimitError(f"{source}: {name}={getattr(cfg, name)} is above the limit of {limits.max_width:,}")
    memory = estimate_memory(cfg)
    if memory["total"] > limits.max_memory_gb * GB:
        biggest = max((k for k in memory if k != "total"), key=memory.__getitem__)
        shape = f"n_layers={cfg.n_layers}, seq_len={cfg.seq_len}, d_model={cfg.d_model}, d_ffn={cfg.d_ffn}"
        if biggest == "images":
            images = rendered_images(cfg) + EVAL_BATCH
            shape = (
                f"image_size={cfg.image_size}: {images:,} images of {cfg.in_channels} x {cfg.image_size} x "
                f"{cfg.image_size}, the built-in held-out set and a batch"
            )
        elif biggest == "batch":
            shape = f"{eval_batch(cfg)} inputs scored at once; {shape}"
            shape += f", n_heads={cfg.n_heads}" if cfg.arch_spec.attention == HEADS else ""
            shape += f", vocab_size={cfg.vocab_size}" if cfg.spec.fill_mask else ""
        raise LimitError(
            f"{source}: this model needs about {memory['total'] / GB:.1f} GB ({biggest.replace('_', ' ')}: "
            f"{memory[biggest] / GB:.1f} GB; {shape}), above the limit of {limits.max_memory_gb:g} GB "
            "(raise it with GMLP_LENS_MAX_MEMORY_GB)"
        )

"""Resource limits for checkpoints from untrusted places, checked from ``config.json`` alone.

A 60 KB checkpoint can describe a model that needs gigabytes (``seq_len: 30000`` makes every W 3.6 GB) or
minutes just to build (``n_layers: 1000000``). ``check_config`` estimates what a config implies, without
building anything, and refuses above the limits with a message that names the field. Every config read from
disk goes through it (``checkpoints.read_config``).

The limits are generous for the paper's models (gMLP-large: 365M parameters, ~1.5 GB in fp32) and can be
raised for a bigger machine with environment variables, e.g. ``GMLP_LENS_MAX_MEMORY_GB=32``:

| limit | default | environment variable |
| --- | ---: | --- |
| estimated memory: fp32 parameters + buffers + the n x n work of the analyses | 8 GB | ``GMLP_LENS_MAX_MEMORY_GB`` |
| layers | 512 | ``GMLP_LENS_MAX_LAYERS`` |
| sequence length n | 2048 | ``GMLP_LENS_MAX_SEQ_LEN`` |
| any width (d_model, d_ffn, attn_dim, vocab, classes, image side) | 1,000,000 | ``GMLP_LENS_MAX_WIDTH`` |
| config.json / metrics.json / a metrics.jsonl | 1 MB / 1 MB / 32 MB | ``GMLP_LENS_MAX_JSON_MB``, ``GMLP_LENS_MAX_LOG_MB`` |
| tokenizer.json | 32 MB | ``GMLP_LENS_MAX_TOKENIZER_MB`` |
| safetensors header (the tensor list) | 8 MB | ``GMLP_LENS_MAX_HEADER_MB`` |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from gmlp_core.models.config import ModelConfig

GB = 1e9
MB = 2**20


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
    d, f, n, layers = cfg.d_model, cfg.d_ffn, cfg.seq_len, cfg.n_layers
    norm = 2 * d
    if cfg.arch == "transformer":
        block = 2 * norm + (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d)
    else:
        g = cfg.gate_dim
        block = norm + (d * f + f) + (g * d + d)
        if cfg.gating != "identity":
            norm_in = f // 2 if cfg.gating == "split" else f
            w = 2 * n - 1 if cfg.spatial == "toeplitz" else n * n
            block += 2 * norm_in + w + n
        if cfg.arch == "amlp":
            a = cfg.attn_dim
            block += (d * 3 * a + 3 * a) + (a * g + g)
    position = n * d if cfg.arch == "transformer" else 0
    spec = cfg.spec
    tokens = cfg.vocab_size * d if spec.is_text else cfg.in_channels * cfg.patch_size**2 * d + d
    embed = tokens + position
    if spec.fill_mask:
        head = (d * d + d) + norm + cfg.vocab_size if cfg.mlm_head == "bert" else d * cfg.vocab_size + cfg.vocab_size
    elif spec.span:
        head = d * 2 + 2
    else:
        head = d * cfg.num_classes + cfg.num_classes
    return embed + layers * block + norm + head


def estimate_memory(cfg: ModelConfig) -> dict[str, float]:
    """Bytes ``cfg`` implies on the dashboard: fp32 parameters, the n x n maps every layer's analyses
    hold at once (W and its copies, attention or gates for one input, token influence), and one input's
    activations. An upper-bound estimate, not a measurement."""
    n, layers = cfg.seq_len, cfg.n_layers
    heads = cfg.n_heads if cfg.arch == "transformer" else 1
    maps_per_layer = 4 + heads  # W, its Toeplitz part and residual, token influence; attention per head
    activations = n * (3 * cfg.d_model + 2 * cfg.d_ffn) * layers
    out = {
        "parameters": 4.0 * estimate_parameters(cfg),
        "n_x_n_maps": 4.0 * n * n * maps_per_layer * layers,
        "activations": 4.0 * activations,
    }
    out["total"] = sum(out.values())
    return out


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
        raise LimitError(
            f"{source}: this model needs about {memory['total'] / GB:.1f} GB ({biggest.replace('_', ' ')}: "
            f"{memory[biggest] / GB:.1f} GB; n_layers={cfg.n_layers}, seq_len={cfg.seq_len}, "
            f"d_model={cfg.d_model}, d_ffn={cfg.d_ffn}), above the limit of {limits.max_memory_gb:g} GB "
            "(raise it with GMLP_LENS_MAX_MEMORY_GB)"
        )

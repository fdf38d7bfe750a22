"""Typed model configuration shared by every architecture, task and preset."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from gmlp_core.models.archs import ARCH_SPECS, ARCHS, ArchSpec
from gmlp_core.models.tasks import TASK_SPECS, TaskSpec

TASKS: tuple[str, ...] = tuple(TASK_SPECS)
GATINGS: tuple[str, ...] = ("split", "multiplicative", "additive", "linear", "identity")
SPATIALS: tuple[str, ...] = ("dense", "toeplitz")
MLM_HEADS: tuple[str, ...] = ("bert", "linear")


# The JSON type each annotation stands for (config.json is read with json.loads: no other types occur).
_FIELD_KINDS: dict[str, type] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": float,
    "float | None": float,  # None allowed (see the field's comment)
    "dict[str, Any]": dict,
}
_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number", dict: "a JSON object"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a model; serialised as ``config.json`` next to the weights.

    ``d_ffn`` follows the paper: the width of U's output *before* the split, so with the default
    ``gating="split"`` the Spatial Gating Unit halves it and V maps ``d_ffn // 2 -> d_model``.
    For vision, ``seq_len`` is derived from the image and patch sizes (the number of patches).

    Two fields exist so that published checkpoints load exactly (``gmlp_core.importers``): ``sgu_norm_eps`` is
    the eps of the gate's LayerNorm LN(Z2) when it differs from ``layer_norm_eps`` (timm uses 1e-6 for the
    block and final norms but 1e-5 inside the SGU), and ``mlm_head="linear"`` replaces BERT's MLM head with
    g-mlp-pytorch's untied ``Linear(d_model, vocab)`` after the final norm.
    """

    arch: str = "gmlp"
    task: str = "mlm"
    vocab_size: int = 8000
    seq_len: int = 128
    d_model: int = 128
    d_ffn: int = 768
    n_layers: int = 4
    n_heads: int = 4
    attn_dim: int = 64
    token_mlp_dim: int = 256  # MLP-Mixer's token MLP width (D_S); only a Mixer's config.json has it
    causal: bool = False
    gating: str = "split"
    spatial: str = "dense"
    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    sgu_norm_eps: float | None = None  # None: layer_norm_eps
    mlm_head: str = "bert"
    spatial_init_eps: float = 1e-3
    initializer_range: float = 0.02
    pad_token_id: int = 0
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ValueError(f"invalid ModelConfig: {msg}")

        # Types first: a config.json is untrusted input ("seq_len": 8.5, "causal": "yes", "extra": [1]).
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), _FIELD_KINDS[f.type]
            if value is None and f.type.endswith("| None"):
                continue
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                object.__setattr__(self, f.name, value)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                fail(f"{f.name}={_short(value)} must be {_KIND_NAMES[kind]}")
            if kind is float and not math.isfinite(value):
                fail(f"{f.name}={value!r} must be a finite number")
        if not self.layer_norm_eps > 0:
            fail(f"layer_norm_eps={self.layer_norm_eps} must be positive")
        if self.sgu_norm_eps is not None and not self.sgu_norm_eps > 0:
            fail(f"sgu_norm_eps={self.sgu_norm_eps} must be positive (or null: the same as layer_norm_eps)")
        if self.mlm_head not in MLM_HEADS:
            fail(f"mlm_head={self.mlm_head!r}; expected one of {MLM_HEADS}")
        if self.spatial_init_eps < 0 or self.initializer_range < 0:
            fail("spatial_init_eps and initializer_range must not be negative")
        if self.arch not in ARCHS:
            fail(f"arch={self.arch!r}; expected one of {ARCHS}")
        if self.task not in TASKS:
            fail(f"task={self.task!r}; expected one of {TASKS}")
        if self.gating not in GATINGS:
            fail(f"gating={self.gating!r}; expected one of {GATINGS}")
        if self.spatial not in SPATIALS:
            fail(f"spatial={self.spatial!r}; expected one of {SPATIALS}")
        for name in ("d_model", "d_ffn", "n_layers", "n_heads", "attn_dim"):
            if getattr(self, name) < 1:
                fail(f"{name}={getattr(self, name)!r} must be a positive integer")
        problem = self.arch_spec.validate(self)
        if problem:
            fail(problem)
        if not 0.0 <= self.dropout < 1.0:
            fail(f"dropout={self.dropout} must be in [0, 1)")
        if self.spec.classes and self.num_classes < 2:
            fail(f"num_classes={self.num_classes} must be at least 2 for task {self.task!r}")
        if self.spec.is_text:
            if self.vocab_size < 2:
                fail(f"vocab_size={self.vocab_size} must be at least 2")
            if self.seq_len < 1:
                fail(f"seq_len={self.seq_len} must be positive")
            if not 0 <= self.pad_token_id < self.vocab_size:
                fail(f"pad_token_id={self.pad_token_id} is outside the vocabulary")
        else:
            if self.patch_size < 1 or self.image_size % self.patch_size:
                fail(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}")
            if self.in_channels < 1:
                fail("an image model needs in_channels >= 1")
            n = (self.image_size // self.patch_size) ** 2
            # The sequence length of a vision model is the number of patches: keep them consistent.
            object.__setattr__(self, "seq_len", n)

    @property
    def arch_spec(self) -> ArchSpec:
        """What the architecture is (block, token mixing, size formulas, label): ``gmlp_core.models.archs``."""
        return ARCH_SPECS[self.arch]

    @property
    def spec(self) -> TaskSpec:
        """What the task is (input kind, head, headline metric): ``gmlp_core.models.tasks``."""
        return TASK_SPECS[self.task]

    @property
    def is_text(self) -> bool:
        """Whether the model reads token ids (MLM and the finetuning heads) rather than images."""
        return self.spec.is_text

    @property
    def gate_dim(self) -> int:
        """Channels leaving the Spatial Gating Unit (V's input width)."""
        return self.d_ffn // 2 if self.gating == "split" else self.d_ffn

    @property
    def gate_norm_eps(self) -> float:
        """The eps of the gate's LayerNorm LN(Z2): ``sgu_norm_eps`` when set, else ``layer_norm_eps``."""
        return self.layer_norm_eps if self.sgu_norm_eps is None else self.sgu_norm_eps

    @property
    def grid_size(self) -> int:
        """Patches per side (vision only)."""
        return self.image_size // self.patch_size

    @property
    def token_mixing(self) -> str:
        """What mixes tokens, as tables show it: the gating variant of a gated block, else the architecture's own
        ("attention" for a Transformer, "token MLP" for a Mixer)."""
        return self.gating if self.arch_spec.gated else self.arch_spec.mixing

    @property
    def spatial_grid(self) -> int | None:
        """The grid W's positions lie on: patches per side for vision (row-major), None for a 1-D text sequence.

        Every spatial analysis (decomposition, locality, filters) takes its grid from here.
        """
        return None if self.is_text else self.grid_size

    @property
    def has_spatial_weights(self) -> bool:
        """Whether the model has a learned n x n W per layer (a Spatial Gating Unit, unless identity gating)."""
        return self.arch_spec.gated and self.gating != "identity"

    @property
    def has_attention(self) -> bool:
        """Whether some token mixing depends on the input through attention (the Transformer; aMLP's tiny head)."""
        return self.arch_spec.has_attention

    @property
    def mixes_tokens(self) -> bool:
        """Whether any token mixing is there to look at (all but a gated block with identity gating, the control)."""
        return self.has_spatial_weights or self.has_attention or not self.arch_spec.gated

    @property
    def attention_heads(self) -> int:
        """Attention maps per layer: n_heads for a Transformer, aMLP's one tiny head, 0 without attention."""
        return self.arch_spec.attention_heads(self)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (the config itself is immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field, less those only another architecture reads (``ArchSpec.fields``): a gMLP's config.json
        is the same with or without the Mixer in the registry."""
        others = {name for spec in ARCH_SPECS.values() if spec is not self.arch_spec for name in spec.fields}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in others - set(self.arch_spec.fields)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict (e.g. a parsed ``config.json``); unknown keys are an error."""
        if not isinstance(data, dict):
            raise ValueError(f"invalid ModelConfig: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"invalid ModelConfig: unknown field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

"""Named presets: one registry feeds the CLI, the dashboard's pickers and the tests.

Each preset is a function returning a ``ModelConfig``. ``preset(name, **overrides)`` applies
overrides on top; ``list_presets()`` lists names, optionally filtered by group, task or arch.
Paper presets carry the published parameter count (in millions, as printed) for the tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gmlp_core.models.config import ModelConfig


@dataclass(frozen=True)
class PresetInfo:
    name: str
    group: str  # "tiny" (tests), "demo" (the zoo, CPU-sized), "bench", "paper"
    description: str
    factory: Callable[[], ModelConfig]
    published_params_m: float | None = None  # the paper's figure, in millions as printed
    source: str = ""


_REGISTRY: dict[str, PresetInfo] = {}


def register_preset(
    name: str,
    group: str,
    description: str,
    published_params_m: float | None = None,
    source: str = "",
) -> Callable[[Callable[[], ModelConfig]], Callable[[], ModelConfig]]:
    """Decorator registering a config factory under ``name``."""

    def wrap(factory: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
        if name in _REGISTRY:
            raise ValueError(f"preset {name!r} is registered twice")
        _REGISTRY[name] = PresetInfo(
            name, group, description, lambda: factory().replace(name=name), published_params_m, source
        )
        return factory

    return wrap


def list_presets(group: str | None = None, task: str | None = None, arch: str | None = None) -> list[str]:
    """Names of the registered presets, filtered by group, task and/or arch."""
    names = []
    for name, info in _REGISTRY.items():
        if group is not None and info.group != group:
            continue
        cfg = info.factory()
        if (task is not None and cfg.task != task) or (arch is not None and cfg.arch != arch):
            continue
        names.append(name)
    return names


def preset_info(name: str) -> PresetInfo:
    if name not in _REGISTRY:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The config of preset ``name`` with ``overrides`` applied (validated like any config)."""
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown} for preset {name!r}; known fields: {sorted(known)}")
    return preset_info(name).factory().replace(**overrides)


# ---------------------------------------------------------------------------------------------
# Tiny: for tests (seconds on a CPU).
_TINY_MLM = dict(task="mlm", vocab_size=64, seq_len=16, d_model=32, n_layers=2, n_heads=2, attn_dim=16)
_TINY_VISION = dict(
    task="vision",
    image_size=8,
    patch_size=2,
    in_channels=1,
    num_classes=10,
    d_model=32,
    n_layers=2,
    n_heads=2,
    attn_dim=16,
)

# Every architecture of the registry (gmlp_core.models.archs) gets its tiny presets: the tests are parametrised
# over them. The channel width per architecture (the rest is shared).
_TINY_WIDTHS: dict[str, dict[str, Any]] = {
    "gmlp": dict(d_ffn=128),
    "amlp": dict(d_ffn=128),
    "transformer": dict(d_ffn=64),
    "mixer": dict(d_ffn=64, token_mlp_dim=16),
}
for _arch, _width in _TINY_WIDTHS.items():
    for _task, _base in (("mlm", _TINY_MLM), ("vision", _TINY_VISION)):
        register_preset(f"{_arch}-tiny-{_task}", "tiny", f"tiny {_arch} for {_task} tests")(
            (lambda a=_arch, w=_width, b=_base: ModelConfig(arch=a, **w, **b))
        )

# ---------------------------------------------------------------------------------------------
# Demo: the zoo, trained on this repository's embedded data on a 2-core CPU in minutes.
# gMLP and aMLP get twice the Transformer's depth at similar width, as in the paper's comparisons,
# which matches non-embedding parameter counts within a few percent.
_DEMO_MLM = dict(task="mlm", vocab_size=4096, seq_len=64, d_model=128, n_heads=4, attn_dim=32)
_DEMO_VISION = dict(
    task="vision", image_size=8, patch_size=1, in_channels=1, num_classes=10, d_model=64, n_heads=4, attn_dim=16
)


@register_preset("gmlp-demo-mlm", "demo", "gMLP, 4 layers, d_model 128, n 64: the zoo's MLM gMLP")
def _gmlp_demo_mlm() -> ModelConfig:
    return ModelConfig(arch="gmlp", d_ffn=768, n_layers=4, **_DEMO_MLM)


@register_preset("amlp-demo-mlm", "demo", "aMLP, 4 layers, tiny attention 32: the zoo's MLM aMLP")
def _amlp_demo_mlm() -> ModelConfig:
    return ModelConfig(arch="amlp", d_ffn=640, n_layers=4, **_DEMO_MLM)


@register_preset(
    "gmlp-demo-mlm-large", "demo", "gMLP, 6 layers, d_model 192, n 64: 3.2x the zoo gMLP's non-embedding parameters"
)
def _gmlp_demo_mlm_large() -> ModelConfig:
    # The finetuning study's larger gMLP (#36: at least 3x the non-embedding parameters, the zoo's recipe):
    # 1.5x the width, 1.5x the depth, the same n, vocabulary and d_ffn / d_model ratio.
    return ModelConfig(arch="gmlp", **(_DEMO_MLM | dict(d_model=192)), d_ffn=1152, n_layers=6)


@register_preset("transformer-demo-mlm", "demo", "Transformer, 2 layers, d_model 128: the zoo's MLM baseline")
def _transformer_demo_mlm() -> ModelConfig:
    return ModelConfig(arch="transformer", d_ffn=960, n_layers=2, **_DEMO_MLM)


@register_preset(
    "mixer-demo-mlm", "demo", "MLP-Mixer, 4 layers, d_model 128, token MLP 128, n 64: the zoo MLM gMLP's size"
)
def _mixer_demo_mlm() -> ModelConfig:
    # The Mixer paper's channel width rule (D_C = 4 d_model); a token MLP of 128 brings the non-embedding parameters
    # within 3% of the zoo gMLP's (595,200 against 614,144 in the blocks).
    return ModelConfig(arch="mixer", d_ffn=512, token_mlp_dim=128, n_layers=4, **_DEMO_MLM)


@register_preset("mixer-demo-vision", "demo", "MLP-Mixer on 8x8 digits, one pixel per patch (n = 64)")
def _mixer_demo_vision() -> ModelConfig:
    # Within 1% of the digit gMLP's non-embedding parameters (117,120 against 117,760 in the blocks).
    return ModelConfig(arch="mixer", d_ffn=192, token_mlp_dim=32, n_layers=4, **_DEMO_VISION)


# Digits placed anywhere on a 32 x 32 canvas (``--data digits-canvas``), 4 x 4-pixel patches: the same 8 x 8 grid
# of tokens, each digit two or three tokens wide, so a filter of a token's neighbours is what recognising it
# needs (issue #14). The canvas models have the 8 x 8 digit models' shapes; their patch embedding reads 16 pixels
# instead of 1.
_DEMO_CANVAS = dict(_DEMO_VISION, image_size=32, patch_size=4)
# arch: (name in descriptions, d_ffn, n_layers), matched non-embedding parameters as for the MLM models
_DEMO_VISION_SHAPES = {
    "gmlp": ("gMLP", 256, 4),
    "amlp": ("aMLP", 216, 4),
    "transformer": ("ViT-style Transformer", 320, 2),
}
for _task, _base, _what in (
    ("vision", _DEMO_VISION, "on 8x8 digits, one pixel per patch (n = 64)"),
    ("canvas", _DEMO_CANVAS, "on digits anywhere on a 32x32 canvas, 4x4-pixel patches (n = 64)"),
):
    for _arch, (_label, _ffn, _layers) in _DEMO_VISION_SHAPES.items():
        register_preset(f"{_arch}-demo-{_task}", "demo", f"{_label} {_what}")(
            (lambda a=_arch, f=_ffn, n=_layers, b=_base: ModelConfig(arch=a, d_ffn=f, n_layers=n, **b))
        )


# ---------------------------------------------------------------------------------------------
# Bench: the training configuration benchmarks/bench_train.py times.
@register_preset("gmlp-bench", "bench", "benchmark gMLP: d_model 128, 6 layers, n 128, d_ffn 512, vocab 8000")
def _gmlp_bench() -> ModelConfig:
    return ModelConfig(arch="gmlp", task="mlm", vocab_size=8000, seq_len=128, d_model=128, d_ffn=512, n_layers=6)


@register_preset("gmlp-bench-wide", "bench", "benchmark gMLP, GEMM-bound: d_model 512, 4 layers, n 128, d_ffn 3072")
def _gmlp_bench_wide() -> ModelConfig:
    return ModelConfig(arch="gmlp", task="mlm", vocab_size=8000, seq_len=128, d_model=512, d_ffn=3072, n_layers=4)


# ---------------------------------------------------------------------------------------------
# Paper: Liu et al. 2021. Each preset's published parameter count and source are read from
# gmlp_core.reference.PAPER_SHAPES, which also records the published shape the tests check it against.


def _paper(name: str) -> dict[str, Any]:
    from gmlp_core.reference import PAPER_SHAPES

    shape = next(s for s in PAPER_SHAPES if s.preset == name)
    flag = "" if shape.verified else " (unverified)"
    return dict(published_params_m=shape.params_m, source=f"Liu et al. 2021, {shape.source}{flag}")


# ImageNet models: 224 px, 16 px patches, 30 layers, d_ffn = 6 d_model.
_IMAGENET = dict(task="vision", image_size=224, patch_size=16, in_channels=3, num_classes=1000)
for _name, _d in (("ti", 128), ("s", 256), ("b", 512)):
    register_preset(
        f"gmlp-{_name}",
        "paper",
        f"gMLP-{_name.upper() if _name != 'ti' else 'Ti'}: ImageNet, 30 layers, d_model {_d}",
        **_paper(f"gmlp-{_name}"),
    )(lambda d=_d: ModelConfig(arch="gmlp", d_model=d, d_ffn=6 * d, n_layers=30, **_IMAGENET))

# DeiT (ViT with the same trunk; mean pooling instead of a class token).
for _name, _d, _h, _params in (("ti", 192, 3, None), ("s", 384, 6, 22.0), ("b", 768, 12, 86.0)):
    register_preset(
        f"deit-{_name}",
        "paper",
        f"DeiT-{_name.upper() if _name != 'ti' else 'Ti'}: the ViT baseline of the paper's ImageNet comparison",
        published_params_m=_params,
        source="Touvron et al. 2021 (DeiT), Table 1; DeiT-Ti is printed as 5M, too coarse to check",
    )((lambda d=_d, h=_h: ModelConfig(arch="transformer", d_model=d, d_ffn=4 * d, n_layers=12, n_heads=h, **_IMAGENET)))

# MLP-Mixer (Tolstikhin et al. 2021), the MLP model of the paper's ImageNet comparison: 12 layers, d_model 768,
# token MLP 384, channel MLP 3072 on 16 px patches.
register_preset(
    "mixer-b16",
    "paper",
    "Mixer-B/16: the MLP-Mixer of the paper's ImageNet comparison, 12 layers, d_model 768",
    **_paper("mixer-b16"),
)(lambda: ModelConfig(arch="mixer", d_model=768, d_ffn=3072, token_mlp_dim=384, n_layers=12, **_IMAGENET))

# BERT-setup MLM models: vocab 30522, 128 tokens; BERT keeps 512 learned positions.
_BERT = dict(task="mlm", vocab_size=30522, seq_len=128)


@register_preset("gmlp-base", "paper", "gMLP-base MLM: 48 layers, d_model 512, d_ffn 3072", **_paper("gmlp-base"))
def _gmlp_base() -> ModelConfig:
    return ModelConfig(arch="gmlp", d_model=512, d_ffn=3072, n_layers=48, **_BERT)


@register_preset(
    "amlp-base", "paper", "aMLP-base MLM: 36 layers, d_model 512, d_ffn 3072, tiny attention 64", **_paper("amlp-base")
)
def _amlp_base() -> ModelConfig:
    return ModelConfig(arch="amlp", d_model=512, d_ffn=3072, n_layers=36, attn_dim=64, **_BERT)


@register_preset("gmlp-large", "paper", "gMLP-large MLM: 96 layers, d_model 768, d_ffn 3072", **_paper("gmlp-large"))
def _gmlp_large() -> ModelConfig:
    return ModelConfig(arch="gmlp", d_model=768, d_ffn=3072, n_layers=96, **_BERT)


@register_preset(
    "amlp-large",
    "paper",
    "aMLP-large MLM: 72 layers, d_model 768, d_ffn 3072, tiny attention 128",
    **_paper("amlp-large"),
)
def _amlp_large() -> ModelConfig:
    return ModelConfig(arch="amlp", d_model=768, d_ffn=3072, n_layers=72, attn_dim=128, **_BERT)


@register_preset(
    "gmlp-xlarge", "paper", "gMLP-xlarge MLM: 144 layers, d_model 1024, d_ffn 4096", **_paper("gmlp-xlarge")
)
def _gmlp_xlarge() -> ModelConfig:
    return ModelConfig(arch="gmlp", d_model=1024, d_ffn=4096, n_layers=144, **_BERT)


@register_preset("bert-base", "paper", "BERT-base: 12 layers, d_model 768, 12 heads", **_paper("bert-base"))
def _bert_base() -> ModelConfig:
    return ModelConfig(
        arch="transformer", d_model=768, d_ffn=3072, n_layers=12, n_heads=12, **{**_BERT, "seq_len": 512}
    )


@register_preset("bert-large", "paper", "BERT-large: 24 layers, d_model 1024, 16 heads", **_paper("bert-large"))
def _bert_large() -> ModelConfig:
    return ModelConfig(
        arch="transformer", d_model=1024, d_ffn=4096, n_layers=24, n_heads=16, **{**_BERT, "seq_len": 512}
    )

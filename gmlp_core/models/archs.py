"""What an architecture is, written once: its block, what mixes its tokens, its size formulas, label, colour and
learning rates.

``ModelConfig.arch`` names one of ``ARCH_SPECS``. The trunk builds ``spec.block``; the config's checks, the limits,
the statistics, the scaling sweeps, the training recipes, the CLI, the dashboard and the tests ask the spec
(``config.arch_spec.attention``, ``config.has_spatial_weights``, ``spec.label``) rather than testing the name.
Each family module (``gmlp.py``, ``transformer.py``, ``mixer.py``) holds its block and the formulas that count
it; this module lists them. A new architecture is one module and one entry here (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from torch import nn

from gmlp_core.models import gmlp, mixer, transformer

if TYPE_CHECKING:
    from gmlp_core.models.config import ModelConfig

# The training recipes whose peak learning rate depends on the architecture (one table: ``ArchSpec.lr``).
DIGITS, MLM, CANVAS, FINETUNE = "digits", "mlm", "canvas", "finetune"
RECIPES: tuple[str, ...] = (DIGITS, MLM, CANVAS, FINETUNE)

# What an architecture's attention is, if it has any.
NO_ATTENTION, HEADS, TINY = "", "heads", "tiny"


@dataclass(frozen=True)
class ArchSpec:
    """One architecture of the shared trunk and every fact about it that code outside its module needs."""

    name: str  # ``ModelConfig.arch``
    label: str  # as tables, legends and pages show it
    color: str  # its colour in every figure
    description: str  # one line: what it is
    block: type[nn.Module]  # built as ``block(config)``, called as ``block(x, mask, output_attentions, output_gates)``
    block_parameters: Callable[[ModelConfig], int]  # parameters of one block
    block_flops: Callable[[ModelConfig], int]  # forward FLOPs per token of one block (2 per multiply-add)
    block_activations: Callable[[ModelConfig], int]  # numbers alive per position while one block runs (no grad)
    mixing: str  # what mixes its tokens, as tables show it ("attention", "token MLP"; gated: the gating variant)
    about: str  # what the pages say mixes tokens in it (markdown, one or two sentences)
    lr: Mapping[str, float]  # peak learning rate per recipe (``RECIPES``)
    sizing: Callable[[int], dict[str, Any]]  # the fields a scaling sweep derives from d_model
    gated: bool = False  # a Spatial Gating Unit: reads ``gating`` and ``spatial``, has W unless gating="identity"
    attention: str = NO_ATTENTION  # HEADS: n_heads over d_model; TINY: aMLP's one head of attn_dim in the gate
    positions: bool = False  # learned absolute position embeddings (the others know positions through n x n mixing)
    fixed_length: bool = True  # its token mixing is n x n: inputs are padded to exactly seq_len
    causal: bool = True  # can be made causal (``causal=True``) without leaking the future
    order: int = 0  # where it stands in lists and side-by-side views
    validate: Callable[[ModelConfig], str | None] = field(default=lambda cfg: None)  # its own config checks
    fields: tuple[str, ...] = ()  # config fields only this architecture reads (left out of other configs' JSON)

    @property
    def has_attention(self) -> bool:
        return self.attention != NO_ATTENTION

    def attention_heads(self, cfg: ModelConfig) -> int:
        """Attention maps per layer: ``n_heads`` for full attention, one for aMLP's tiny head, none without."""
        return {NO_ATTENTION: 0, HEADS: cfg.n_heads, TINY: 1}[self.attention]


def _frozen(rates: dict[str, float]) -> Mapping[str, float]:
    missing = set(RECIPES) - set(rates)
    if missing:
        raise ValueError(f"learning rates missing for recipes {sorted(missing)}")
    return MappingProxyType(rates)


# The learning rates: MLM and canvas are the zoo's (gmlp_core.zoo explains each choice), digits the 8 x 8 digit
# models', finetune the finetuning study's choice on the pair task (gmlp_core.train.finetune). The Mixer's are
# gMLP's, not tuned for it.
ARCH_SPECS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec(
            "gmlp",
            "gMLP",
            "#1f5fbf",
            "gMLP: token mixing only through the Spatial Gating Unit's n x n W (Liu et al. 2021)",
            gmlp.GMLPBlock,
            gmlp.block_parameters,
            gmlp.block_flops,
            gmlp.block_activations,
            "spatial gating",
            "the only token mixing is W, in the Spatial Gating Unit: row *i* of the n x n matrix W says how much "
            "each input position *j* feeds output position *i*. W is learned once and is the same for every input.",
            _frozen({DIGITS: 2e-3, MLM: 1e-3, CANVAS: 2e-3, FINETUNE: 3e-3}),
            gmlp.sizing,
            gated=True,
            order=2,
            validate=gmlp.validate,
        ),
        ArchSpec(
            "amlp",
            "aMLP",
            "#2a9d4b",
            "aMLP: gMLP with a tiny single-head attention added to the gate (Liu et al. 2021)",
            gmlp.GMLPBlock,
            gmlp.block_parameters,
            gmlp.block_flops,
            gmlp.block_activations,
            "spatial gating",
            "tokens mix in two ways: W, learned once and the same for every input, and a tiny single-head attention "
            "whose output is added to `W LN(Z2) + b` before the gating, which changes with the input.",
            _frozen({DIGITS: 2e-3, MLM: 2e-3, CANVAS: 2e-3, FINETUNE: 3e-3}),
            gmlp.amlp_sizing,
            gated=True,
            attention=TINY,
            order=1,
            validate=gmlp.validate,
        ),
        ArchSpec(
            "transformer",
            "Transformer",
            "#d9541e",
            "Transformer (BERT / ViT style, pre-LayerNorm): multi-head self-attention and a GELU FFN",
            transformer.TransformerBlock,
            transformer.block_parameters,
            transformer.block_flops,
            transformer.block_activations,
            "attention",
            "tokens mix through multi-head self-attention, recomputed for every input: each head's row *i* is a "
            "distribution over the positions that position *i* reads.",
            _frozen({DIGITS: 1e-3, MLM: 2e-3, CANVAS: 1e-3, FINETUNE: 1e-3}),
            transformer.sizing,
            attention=HEADS,
            positions=True,
            fixed_length=False,
            order=0,
            validate=transformer.validate,
        ),
        ArchSpec(
            "mixer",
            "MLP-Mixer",
            "#8e44ad",
            "MLP-Mixer: a token-mixing MLP across positions and a channel MLP, no gate (Tolstikhin et al. 2021)",
            mixer.MixerBlock,
            mixer.block_parameters,
            mixer.block_flops,
            mixer.block_activations,
            "token MLP",
            "tokens mix through a small MLP across positions, `W2 GELU(W1 LN(x))` applied to every channel: two "
            "n-wide matrices learned once and the same for every input, with no gate and no n x n W of its own.",
            _frozen({DIGITS: 2e-3, MLM: 1e-3, CANVAS: 2e-3, FINETUNE: 3e-3}),
            mixer.sizing,
            causal=False,
            order=3,
            validate=mixer.validate,
            fields=("token_mlp_dim",),
        ),
    )
}
ARCHS: tuple[str, ...] = tuple(ARCH_SPECS)


def side_by_side() -> tuple[str, ...]:
    """The architectures in the order views that compare them place them (``ArchSpec.order``)."""
    return tuple(sorted(ARCH_SPECS, key=lambda name: ARCH_SPECS[name].order))


def arch_spec(name: str) -> ArchSpec:
    """The spec of architecture ``name`` (KeyError naming the known architectures otherwise)."""
    if name not in ARCH_SPECS:
        raise KeyError(f"unknown architecture {name!r}; known architectures: {', '.join(ARCHS)}")
    return ARCH_SPECS[name]


def arch_label(name: str) -> str:
    """How tables and legends name ``name`` (the name itself for an architecture this registry does not know)."""
    return ARCH_SPECS[name].label if name in ARCH_SPECS else name


def arch_color(name: str, default: str = "#888888") -> str:
    """The colour of ``name`` in every figure (``default`` for a name this registry does not know)."""
    return ARCH_SPECS[name].color if name in ARCH_SPECS else default


def learning_rate(arch: str, recipe: str) -> float:
    """The peak learning rate ``recipe`` trains ``arch`` at (``ArchSpec.lr``)."""
    if recipe not in RECIPES:
        raise KeyError(f"unknown recipe {recipe!r}; known recipes: {', '.join(RECIPES)}")
    return arch_spec(arch).lr[recipe]

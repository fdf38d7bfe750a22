"""Lecture mode's script: the Guide's story as steps, each opening one page with its models and inputs.

A step names a page of ``dashboard/registry.py``, the zoo models to pick (``gmlp_core.zoo`` names) and
the values of the page's own widgets, keyed by the widget keys the page already uses, so a step sets
exactly what a lecturer would otherwise type or pick. No streamlit import: the tests check the steps
against the registry and the zoo as plain data; ``dashboard/lecture_bar.py`` draws them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from dashboard import registry
from gmlp_core.zoo import MAIN_COMPARISON, PAIR_MODELS, ZOO

ZOO_NAMES = frozenset(entry.name for entry in ZOO)
TEXT_MODELS = ("mlm-gmlp", "mlm-amlp", "mlm-transformer")
# The Guide's lecture sentence: one input for the fill-mask and the mixing maps.
SENTENCE = "the [MASK] of the function is returned"
# The pair the "When attention matters" step opens on (sentence A, sentence B): one noun differs, a rare one.
PAIR = ("The function returns a list of strings.", "The function returns a list of integers.")


@dataclass(frozen=True)
class Layers:
    """A layer input that depends on the model's depth: its last layer, or the list of all of them."""

    model: str
    which: Literal["last", "all"] = "last"

    def resolve(self, n_layers: int) -> int | list[int]:
        return n_layers - 1 if self.which == "last" else list(range(n_layers))


# A widget value: text, a number, a switch, a zoo model's name (a model pick) or a depth-dependent layer.
Value = str | int | bool | Layers


@dataclass(frozen=True)
class Step:
    """One step of the lecture: open ``page`` with ``models`` picked and the page's widgets set to ``inputs``."""

    title: str
    page: str  # a key of dashboard.registry.PAGES
    talk: str  # the talking point, markdown, one or two sentences
    models: tuple[str, ...] = ()  # zoo names picked in the sidebar; () keeps the current pick
    inputs: Mapping[str, Value] = field(default_factory=dict)  # page widget key -> value

    def __post_init__(self) -> None:
        registry.page(self.page)  # KeyError naming the known pages
        unknown = [m for m in self.models if m not in ZOO_NAMES]
        if unknown:
            raise ValueError(f"step {self.title!r} names {unknown}, which are not in gmlp_core.zoo.ZOO")
        for key, value in self.inputs.items():
            model = value.model if isinstance(value, Layers) else value if value in ZOO_NAMES else None
            if model is not None and model not in self.models:
                raise ValueError(f"step {self.title!r} sets {key} to {model}, which is not among its models")

    def missing(self, available: Collection[str]) -> list[str]:
        """The step's models that are not loadable under the current folder."""
        return [m for m in self.models if m not in available]

    def resolved_inputs(self, available: Collection[str], n_layers: Callable[[str], int]) -> dict[str, object]:
        """The widget values to set: a model pick (or a layer of a model) only when that model is loadable."""
        out: dict[str, object] = {}
        for key, value in self.inputs.items():
            if isinstance(value, Layers):
                if value.model in available:
                    out[key] = value.resolve(n_layers(value.model))
            elif not isinstance(value, str) or value not in ZOO_NAMES or value in available:
                out[key] = value
        return out


STEPS: tuple[Step, ...] = (
    Step(
        "The question",
        "overview",
        "A Transformer mixes tokens with attention, recomputed for every input. gMLP's only token mixing is one "
        "learned n x n matrix **W** per layer, the same for every input. Is input-dependent mixing necessary?",
        MAIN_COMPARISON,
    ),
    Step(
        "gMLP in one block",
        "guide",
        "The Spatial Gating Unit s(Z) = Z₁ ⊙ (W LN(Z₂) + b) is the only place where tokens meet. W starts near "
        "zero and b at one, so every block starts as a plain MLP and learns to mix tokens only as far as it helps.",
    ),
    Step(
        "Fill the mask",
        "inference",
        "One sentence, three models (the demo zoo trains them on the same text for the same number of steps): "
        "compare their guesses and how sure each one is.",
        TEXT_MODELS,
        {"fill-text": SENTENCE},
    ),
    Step(
        "W becomes a band",
        "spatial",
        "Layer 0 of the text gMLP. A strong band just beside the diagonal (colour is the sign: blue negative, red "
        "positive, white zero; here dark blue, the previous token) means each token mixes with its neighbours; "
        "a Toeplitz part that holds almost all of it means a convolution, which nobody told the model to learn.",
        ("mlm-gmlp", "mlm-amlp"),
        {"spatial-model": "mlm-gmlp", "spatial-layer": 0},
    ),
    Step(
        "Layers specialise",
        "spatial",
        "The last layer: compare its band with layer 0's, then the middle-row profiles of every layer and the "
        "locality and shift-invariance scores (`locality_random` is what a W with no preference scores).",
        ("mlm-gmlp", "mlm-amlp"),
        {"spatial-model": "mlm-gmlp", "spatial-layer": Layers("mlm-gmlp")},
    ),
    Step(
        "Watch W form",
        "spatial",
        "Scroll to **Watch W form during training** and drag the training-step slider from the start to the end: "
        "W starts as near-zero noise and the band appears as the validation perplexity drops.",
        ("mlm-gmlp", "mlm-amlp"),
        {"spatial-model": "mlm-gmlp", "spatial-layer": 0},
    ),
    Step(
        "Vision needs data",
        "spatial",
        "The digits gMLP: each row of W drawn on the 8x8 grid. On 1,437 small images it does not learn local "
        "filters, yet it classifies well: a convolution has locality built in, gMLP must learn it from data.",
        ("vision-gmlp", "vision-amlp"),
        {"spatial-model": "vision-gmlp", "spatial-layer": 0},
    ),
    Step(
        "Locality pays when digits move",
        "spatial",
        "The same digits pasted anywhere on a 32x32 canvas, 4x4-pixel patches (still an 8x8 grid of tokens). A "
        "template per position no longer fits, and layer 0's rows of W become small filters around their own "
        "patch that look alike wherever they sit: the paper's ImageNet picture, learned from 1,437 digits.",
        ("canvas-gmlp", "canvas-amlp"),
        {"spatial-model": "canvas-gmlp", "spatial-layer": 0},
    ),
    Step(
        "W versus attention",
        "w_vs_attention",
        "W is the same for every sentence and the gate changes with it; the Transformer's attention changes "
        "completely. Hover a cell: its row lights up on every map. Do the token-influence maps at the bottom "
        "differ as much?",
        TEXT_MODELS,
        {"wva-task": "mlm", "wva-text": SENTENCE},
    ),
    Step(
        "Does the model use the band?",
        "interventions",
        "Every layer's W replaced by its Toeplitz part, a pure convolution. If the perplexity barely moves, the "
        "model uses W as a convolution; pick **shuffle** to see the same weights at the wrong positions.",
        ("mlm-gmlp",),
        {"iv-model": "mlm-gmlp", "iv-kind": "toeplitz", "iv-layers": Layers("mlm-gmlp", "all")},
    ),
    Step(
        "Scaling and gating",
        "scaling",
        "Read off alpha for each architecture: do the lines run parallel, as the paper claims? Further down, the "
        "gating ablation: no token mixing at all is worst, linear mixing helps, gating helps more.",
        MAIN_COMPARISON,
    ),
    Step(
        "When attention matters",
        "attention_matters",
        "Finetuned on pairs: does B repeat A, or does one noun differ? All three catch *strings -> integers*. The "
        "maps: attention can put weight on **the same word** in B wherever B starts; W weighs a fixed offset, the "
        "same for every pair. Now type *lines* for *integers*: all three say *same*. They learned to spot a rare "
        "word, not to compare; the study below says which of them needs attention to do even that.",
        PAIR_MODELS,
        {"am-a": PAIR[0], "am-b": PAIR[1], "am-layer": 0},
    ),
    Step(
        "Be careful with conclusions",
        "guide",
        "Demo models are tiny and trained for minutes: a difference smaller than the run-to-run noise means nothing "
        "(the finetuning study draws every seed: that spread is the noise). The paper's findings come from far "
        "larger models and data.",
    ),
)


def url_flag(value: str | None) -> bool:
    """Whether a ``?lecture=`` value turns lecture mode on (1, true, on, yes)."""
    return (value or "").strip().lower() in ("1", "true", "on", "yes")


def parse_step(value: str | None) -> int:
    """The 0-based step of a 1-based ``?step=`` value, clamped to the steps (the first one when unreadable)."""
    try:
        number = int((value or "1").strip())
    except ValueError:
        return 0
    return min(max(number, 1), len(STEPS)) - 1


def outline() -> str:
    """The steps as a numbered markdown list (page, title and talking point), for the Guide."""
    return "\n".join(
        f"{i}. **{registry.page(s.page).title}: {s.title}.** {s.talk}" for i, s in enumerate(STEPS, start=1)
    )

"""What a task is, written once: the input a model of that task reads, its head, its metrics, its label.

``ModelConfig.task`` names one of ``TASK_SPECS``; the model, the config checks, the limits, the CLI and the
dashboard ask the spec (``config.spec.input == "text"``, ``config.spec.fill_mask``) rather than testing the
task's name. The finetuning data sets (``gmlp_core.data.finetune.FINETUNE_TASKS``) each name the head they
train, one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT, IMAGE = "text", "image"


@dataclass(frozen=True)
class TaskSpec:
    """One kind of model head and what goes with it."""

    name: str
    input: str  # TEXT (token ids from a tokenizer) or IMAGE (pixel values cut into patches)
    label: str  # as tables and pages show it
    noun: str  # a model of this task, in a sentence ("an MLM model", "a text classifier")
    headline: str  # the validation metric an entry is judged by
    higher_is_better: bool
    fill_mask: bool = False  # the head predicts word pieces at [MASK] positions
    classes: bool = False  # the head predicts one of ``num_classes`` labels per input
    span: bool = False  # the head predicts a start and an end position in the input

    @property
    def is_text(self) -> bool:
        return self.input == TEXT


TASK_SPECS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "mlm", TEXT, "masked language model", "an MLM model", "val_ppl", higher_is_better=False, fill_mask=True
        ),
        TaskSpec(
            "vision",
            IMAGE,
            "image classification",
            "a vision model",
            "val_accuracy",
            higher_is_better=True,
            classes=True,
        ),
        TaskSpec(
            "classify",
            TEXT,
            "text classification",
            "a text classifier",
            "val_accuracy",
            higher_is_better=True,
            classes=True,
        ),
        TaskSpec("span", TEXT, "extractive span", "a span model", "val_f1", higher_is_better=True, span=True),
    )
}


def task_spec(name: str) -> TaskSpec:
    """The spec of task ``name`` (KeyError naming the known tasks otherwise)."""
    if name not in TASK_SPECS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASK_SPECS)}")
    return TASK_SPECS[name]

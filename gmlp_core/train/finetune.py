"""Finetuning: a pretrained MLM checkpoint's trunk and tokenizer, a new task head, the source recorded.

``python -m gmlp_core finetune CKPT --task NAME --out DIR`` trains through the same loop as ``train``
(``gmlp_core.train.trainer``: schedule, precision, resume, metrics.jsonl, validation); this module supplies the
model it starts from. The trunk (embeddings, blocks, final norm) is copied from the source checkpoint; the MLM
head is left behind and the task's head (``gmlp_core.models.tasks``) starts fresh from the run's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gmlp_core.checkpoints import CheckpointError, load_checkpoint, load_metrics, load_tokenizer, read_config
from gmlp_core.data.finetune import FinetuneTask, finetune_task
from gmlp_core.models import LensModel, ModelConfig, build_model
from gmlp_core.models.archs import FINETUNE, learning_rate

HEAD_PREFIXES = ("head.", "decoder_bias")  # the parameters of a task head; everything else is the trunk


@dataclass(frozen=True)
class FinetuneRecipe:
    """The finetuning budget the CLI defaults to and the study runs: about 2-3 minutes for a zoo-size model on a
    2-core CPU (``benchmarks/``)."""

    steps: int = 600
    batch_size: int = 32
    warmup: int = 60
    eval_every: int = 100
    # The peak learning rate per architecture is ArchSpec.lr's "finetune" recipe: the study's choice on the pair
    # task's validation split (seed 0 of 3e-4, 1e-3 and 3e-3; results/finetune.csv): gMLP 80.4% and aMLP 81.5% at
    # 3e-3, the Transformer 73.3% at 1e-3.


FINETUNE_RECIPE = FinetuneRecipe()


def finetune_lr(arch: str) -> float:
    """The recipe's peak learning rate for ``arch`` (``ArchSpec.lr``, recipe "finetune")."""
    return learning_rate(arch, FINETUNE)


@dataclass(frozen=True)
class FinetuneStart:
    """What a finetuning run starts from: the model (trunk copied, head new), the tokenizer and the record of its
    source that the finetuned checkpoint keeps in ``config.extra["finetune"]``."""

    model: LensModel
    tokenizer: Any
    record: dict[str, Any]


def finetune_record(config: ModelConfig) -> dict[str, Any] | None:
    """A finetuned checkpoint's record (task, source), or None for a model that was not finetuned here."""
    record = config.extra.get("finetune")
    return record if isinstance(record, dict) else None


def recorded_task(config: ModelConfig, where: str = "config.json") -> FinetuneTask:
    """The finetuning task a classification or span checkpoint was trained for, checked against its head.
    ``ValueError`` with what to do for a model of another kind."""
    spec = config.spec
    if spec.fill_mask or not spec.is_text:
        raise ValueError(
            f"{where}: {spec.noun} has no finetuning task; finetune it first "
            "(python -m gmlp_core finetune CKPT --task NAME --out DIR)"
        )
    record = finetune_record(config)
    name = record.get("task") if record else None
    if not isinstance(name, str):
        raise ValueError(f"{where}: {spec.noun} that records no finetuning task (extra.finetune.task)")
    task = finetune_task(name)
    _check_head(config, task, where)
    return task


def _check_head(config: ModelConfig, task: FinetuneTask, where: str) -> None:
    if config.task != task.head or (task.head == "classify" and config.num_classes != task.num_classes):
        have = f"{config.spec.label}" + (f" with {config.num_classes} classes" if config.spec.classes else "")
        raise ValueError(f"{where}: the model's head ({have}) does not fit task {task.name} ({_head_of(task)})")


def _head_of(task: FinetuneTask) -> str:
    return f"{task.num_classes} classes" if task.head == "classify" else "a start and an end per position"


def start_finetune(
    source: str | Path, task_name: str, seed: int, device: torch.device, pretrained: bool = True
) -> FinetuneStart:
    """The model a finetuning run of ``task_name`` starts from: ``source``'s trunk and tokenizer, a new head
    initialised from ``seed``. Refuses a source that is not a pretrained text model with its tokenizer.
    ``pretrained=False`` keeps the source's shape and tokenizer but initialises the trunk from ``seed`` too: the
    same model trained from scratch on the task, to show what pretraining bought."""
    task = finetune_task(task_name)
    source = Path(source)
    src_cfg = read_config(source)
    if not src_cfg.spec.fill_mask:
        record = finetune_record(src_cfg)
        already = f", already finetuned for {record['task']}" if record and "task" in record else ""
        raise CheckpointError(
            f"{source}: {src_cfg.spec.noun}{already}; finetuning starts from a pretrained masked language "
            "model (its trunk and tokenizer), such as checkpoints/mlm-gmlp"
        )
    tokenizer = load_tokenizer(source)
    if tokenizer is None:
        raise CheckpointError(f"{source}: no tokenizer.json; finetuning needs the tokenizer the model was trained with")
    if tokenizer.get_vocab_size() != src_cfg.vocab_size:
        raise CheckpointError(
            f"{source}: tokenizer.json has {tokenizer.get_vocab_size()} word pieces, the model {src_cfg.vocab_size}"
        )
    record = {
        "task": task.name,
        "pretrained": pretrained,
        "source": str(source),
        "source_name": src_cfg.name or source.name,
        "source_arch": src_cfg.arch,
        "source_metrics": _headline(source),
    }
    config = src_cfg.replace(
        task=task.head,
        num_classes=max(task.num_classes, 2),
        extra={"finetune": record},
        name=f"{src_cfg.name or source.name}-{task.name}",
    )
    torch.manual_seed(seed)
    model = build_model(config)
    if not pretrained:
        return FinetuneStart(model.to(device), tokenizer, record)
    weights = load_checkpoint(source, device="cpu").state_dict()
    trunk = {k: v for k, v in weights.items() if not k.startswith(HEAD_PREFIXES)}
    missing, unexpected = model.load_state_dict(trunk, strict=False)
    if unexpected or any(not k.startswith(HEAD_PREFIXES) for k in missing):
        raise CheckpointError(
            f"{source}: the trunk does not fit the new model (missing {missing}, unexpected {unexpected})"
        )
    return FinetuneStart(model.to(device), tokenizer, record)


def _headline(source: Path) -> dict[str, Any]:
    """The source's stored validation perplexity and steps, so a finetuned model says what it started from."""
    try:
        metrics = load_metrics(source)
    except CheckpointError:
        return {}
    return {k: metrics[k] for k in ("val_ppl", "steps", "cloze_top5") if isinstance(metrics.get(k), (int, float))}

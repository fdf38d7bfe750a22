"""Task data for training and evaluation: MLM on a text corpus, classification on images.

Both expose ``train_batch(step, rank)`` (a pure function of the step, so resuming is exact) and
``evaluate(model)`` (deterministic validation metrics), so one trainer serves every task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from gmlp_core.data.masking import MaskingConfig, mlm_batch, validation_batches
from gmlp_core.data.text import TextCorpus, load_text_corpus
from gmlp_core.data.tokenizer import train_tokenizer
from gmlp_core.models import IGNORE_INDEX, ModelConfig

# Checkpoints that record no ``val_windows`` were validated on the first 128 windows.
LEGACY_VAL_WINDOWS = 128


def token_stream(tokenizer: Any, texts: list[str]) -> torch.Tensor:
    """``texts`` encoded without special tokens and concatenated into one id stream."""
    ids: list[int] = []
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.long)


@dataclass
class MLMData:
    """A tokenized corpus: a training stream, fixed validation batches and the unigram baseline."""

    tokenizer: Any
    seq_len: int
    vocab_size: int
    train_stream: torch.Tensor
    val_full: list[tuple[torch.Tensor, torch.Tensor]]
    val_short: list[tuple[torch.Tensor, torch.Tensor]]
    unigram_logp: torch.Tensor
    name: str = "embedded"
    batch_size: int = 32
    seed: int = 0
    masking: MaskingConfig = MaskingConfig()
    tokens_per_step: int = field(init=False)

    def __post_init__(self) -> None:
        self.tokens_per_step = self.batch_size * self.seq_len

    @classmethod
    def build(
        cls,
        corpus: TextCorpus,
        tokenizer: Any,
        seq_len: int,
        batch_size: int = 32,
        seed: int = 0,
        short_fraction: float = MaskingConfig.short_fraction,
        val_windows: int = LEGACY_VAL_WINDOWS,
        mask_prob: float = MaskingConfig.mask_prob,
    ) -> MLMData:
        train = token_stream(tokenizer, corpus.train)
        val = token_stream(tokenizer, corpus.validation)
        vocab = tokenizer.get_vocab_size()
        counts = torch.bincount(train, minlength=vocab).double() + 1.0  # add-one smoothing
        return cls(
            tokenizer=tokenizer,
            seq_len=seq_len,
            vocab_size=vocab,
            train_stream=train,
            val_full=validation_batches(val, seq_len, vocab, max_windows=val_windows),
            val_short=validation_batches(val, seq_len, vocab, max_windows=val_windows, short=True),
            unigram_logp=(counts / counts.sum()).log().float(),
            name=corpus.name,
            batch_size=batch_size,
            seed=seed,
            masking=MaskingConfig(mask_prob=mask_prob, short_fraction=short_fraction),
        )

    def train_batch(self, step: int, rank: int = 0) -> dict[str, torch.Tensor]:
        ids, labels = mlm_batch(
            self.train_stream, self.batch_size, self.seq_len, self.vocab_size, self.seed, step, rank, self.masking
        )
        return {"input_ids": ids, "labels": labels}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Validation loss/perplexity over masked tokens of full windows, the same on short padded
        inputs, fill-mask top-1 accuracy for both, and the unigram baseline on the same targets."""
        out: dict[str, float] = {}
        for prefix, batches in (("val", self.val_full), ("val_short", self.val_short)):
            nll, correct, count, uni = 0.0, 0, 0, 0.0
            for ids, labels in batches:
                ids, labels = ids.to(model.device), labels.to(model.device)
                res = model(input_ids=ids, labels=labels)
                target = labels[labels != IGNORE_INDEX]
                logits = res.masked_logits.float()
                nll += F.cross_entropy(logits, target, reduction="sum").item()
                correct += int((logits.argmax(-1) == target).sum())
                count += target.numel()
                uni -= self.unigram_logp[target.cpu()].double().sum().item()
            out[f"{prefix}_loss"] = nll / count
            out[f"{prefix}_ppl"] = math.exp(nll / count)
            out[f"{prefix}_accuracy"] = correct / count
            if prefix == "val":
                out["unigram_ppl"] = math.exp(uni / count)
                out["val_tokens"] = count
        return out


@dataclass
class VisionData:
    """Images in memory: training batches drawn by step, validation accuracy on a fixed split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    name: str = "digits"
    batch_size: int = 64
    seed: int = 0
    tokens_per_step: int = 0

    def train_batch(self, step: int, rank: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1))
        idx = torch.randint(0, len(self.x_train), (self.batch_size,), generator=g)
        return {"pixel_values": self.x_train[idx], "labels": self.y_train[idx]}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        nll, correct = 0.0, 0
        for i in range(0, len(self.x_val), 256):
            x, y = self.x_val[i : i + 256].to(model.device), self.y_val[i : i + 256].to(model.device)
            logits = model(pixel_values=x).logits.float()
            nll += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(-1) == y).sum())
        n = len(self.x_val)
        return {"val_loss": nll / n, "val_accuracy": correct / n, "val_examples": n}


@dataclass
class CanvasDigitsData(VisionData):
    """Digits pasted at a fresh random position of a larger canvas in every training example
    (``gmlp_core.data.canvas``); ``x_train`` holds the 8x8 digits, validation is pre-placed."""

    canvas: int = 16

    def train_batch(self, step: int, rank: int = 0) -> dict[str, torch.Tensor]:
        from gmlp_core.data.canvas import place_on_canvas, random_offsets

        g = torch.Generator().manual_seed((self.seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1))
        idx = torch.randint(0, len(self.x_train), (self.batch_size,), generator=g)
        rows, cols = random_offsets(self.batch_size, g, self.canvas)
        return {
            "pixel_values": place_on_canvas(self.x_train[idx], rows, cols, self.canvas),
            "labels": self.y_train[idx],
        }


def build_task_data(
    config: ModelConfig,
    spec: str | None,
    batch_size: int,
    seed: int,
    tokenizer: Any | None = None,
    short_fraction: float = MaskingConfig.short_fraction,
    val_windows: int = LEGACY_VAL_WINDOWS,
    mask_prob: float = MaskingConfig.mask_prob,
) -> tuple[MLMData | VisionData, ModelConfig]:
    """Data for ``config``'s task; trains a tokenizer of ``config.vocab_size`` when none is given.
    Returns the data and the config with ``vocab_size`` set to the tokenizer's actual size. MLM only:
    ``short_fraction`` of training rows are cut short and padded, ``mask_prob`` of each training row's tokens are
    predicted; ``val_windows`` windows are validated, always at BERT's 15% (so every recipe is scored alike)."""
    if config.task == "vision":
        from gmlp_core.data.canvas import CANVAS_DIGITS, canvas_digits_split
        from gmlp_core.data.images import load_image_dataset

        spec = spec or "digits"
        if spec == CANVAS_DIGITS:
            expected = (1, config.image_size, config.image_size)
            if config.in_channels != 1 or config.image_size < 8:
                raise ValueError(f"{spec} needs in_channels=1 and image_size >= 8; the model has {expected}")
            x_tr, y_tr = canvas_digits_split("train", config.image_size)
            x_va, y_va = canvas_digits_split("validation", config.image_size)
            n_tok = config.seq_len * batch_size
            return CanvasDigitsData(x_tr, y_tr, x_va, y_va, spec, batch_size, seed, n_tok, config.image_size), config
        x_tr, y_tr = load_image_dataset(spec, "train")
        x_va, y_va = load_image_dataset(spec, "validation")
        if tuple(x_tr.shape[1:]) != (config.in_channels, config.image_size, config.image_size):
            raise ValueError(
                f"data {spec!r} has images of shape {tuple(x_tr.shape[1:])} but the model expects "
                f"({config.in_channels}, {config.image_size}, {config.image_size}): set image_size/in_channels"
            )
        n_tok = config.seq_len * batch_size
        return VisionData(x_tr, y_tr, x_va, y_va, spec, batch_size, seed, n_tok), config
    spec = spec or "embedded"
    corpus = load_text_corpus(spec)
    if tokenizer is None:
        tokenizer = train_tokenizer(corpus.train, config.vocab_size)
    if tokenizer.get_vocab_size() != config.vocab_size:
        config = config.replace(vocab_size=tokenizer.get_vocab_size())
    data = MLMData.build(corpus, tokenizer, config.seq_len, batch_size, seed, short_fraction, val_windows, mask_prob)
    return data, config

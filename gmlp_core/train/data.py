"""Task data for training and evaluation: MLM on a text corpus, classification on images.

Both expose ``train_batch(step, rank)`` (a pure function of the step, so resuming is exact) and
``evaluate(model)`` (deterministic validation metrics), so one trainer serves every task.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from gmlp_core.data.finetune import (
    EncodedExample,
    Example,
    encode_examples,
    exact_match,
    f1_score,
    finetune_task,
    load_task_splits,
)
from gmlp_core.data.masking import MaskingConfig, mlm_batch, validation_batches
from gmlp_core.data.text import TextCorpus, load_text_corpus
from gmlp_core.data.tokenizer import train_tokenizer
from gmlp_core.limits import EVAL_BATCH
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
        for i in range(0, len(self.x_val), EVAL_BATCH):
            x, y = self.x_val[i : i + EVAL_BATCH].to(model.device), self.y_val[i : i + EVAL_BATCH].to(model.device)
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


MAX_ANSWER_TOKENS = 16  # a span prediction's longest answer, in word pieces


@dataclass
class EncodedSplit:
    """A finetuning split encoded once: the examples, what the model reads and the targets, as tensors."""

    examples: tuple[Example, ...]
    encoded: tuple[EncodedExample, ...]
    input_ids: torch.Tensor  # (N, n)
    attention_mask: torch.Tensor  # (N, n)
    labels: torch.Tensor  # (N,) class ids (classification)
    start: torch.Tensor  # (N,) span tasks: answer positions, -100 when truncated away
    end: torch.Tensor

    @classmethod
    def build(cls, tokenizer: Any, examples: tuple[Example, ...], seq_len: int, span: bool) -> EncodedSplit:
        encoded = tuple(encode_examples(tokenizer, examples, seq_len, span))
        return cls(
            examples,
            encoded,
            torch.tensor([e.input_ids for e in encoded], dtype=torch.long).reshape(-1, seq_len),
            torch.tensor([e.attention_mask for e in encoded], dtype=torch.long).reshape(-1, seq_len),
            torch.tensor([e.label for e in examples], dtype=torch.long),
            torch.tensor([e.start for e in encoded], dtype=torch.long),
            torch.tensor([e.end for e in encoded], dtype=torch.long),
        )

    def batch(self, idx: torch.Tensor, span: bool) -> dict[str, torch.Tensor]:
        batch = {"input_ids": self.input_ids[idx], "attention_mask": self.attention_mask[idx]}
        if span:
            return batch | {"start_positions": self.start[idx], "end_positions": self.end[idx]}
        return batch | {"labels": self.labels[idx]}


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """The (start, end) pair with the highest ``start + end`` logit per row, ``start <= end < start + 16``, both
    where ``allowed`` (B, L) is true (the context's word pieces): ``(B, 2)``."""
    length = start_logits.shape[1]
    scores = start_logits.float().unsqueeze(2) + end_logits.float().unsqueeze(1)  # (B, L, L): [start, end]
    i = torch.arange(length)
    ok = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + MAX_ANSWER_TOKENS)  # (L, L)
    ok = ok[None] & allowed[:, :, None] & allowed[:, None, :]
    scores = scores.masked_fill(~ok.to(scores.device), float("-inf")).flatten(1)  # (B, L*L)
    best = scores.argmax(dim=1)
    return torch.stack((best // length, best % length), dim=1).cpu()


# Encoded splits by (task, tokenizer digest, seq_len, source): a grid of runs of one source re-encodes nothing.
# Tensors are never written to (batches index them into new ones), so runs can share them.
_ENCODED: dict[tuple[str, str, int, str | None], dict[str, EncodedSplit]] = {}
_ENCODED_ENTRIES = 4


@dataclass
class FinetuneData:
    """A finetuning task's splits, encoded with the pretrained model's tokenizer: training batches drawn by step,
    validation (and test) metrics: accuracy for classification; exact match and F1 (SQuAD's) for spans."""

    task: str  # a FINETUNE_TASKS name
    tokenizer: Any
    seq_len: int
    splits: dict[str, EncodedSplit]
    batch_size: int = 32
    seed: int = 0
    source: str | None = None  # the hub tasks' local files, when given
    tokens_per_step: int = field(init=False)

    def __post_init__(self) -> None:
        self.tokens_per_step = self.batch_size * self.seq_len

    @property
    def name(self) -> str:
        return self.task

    @property
    def span(self) -> bool:
        return finetune_task(self.task).spec.span

    @classmethod
    def build(
        cls, task: str, tokenizer: Any, seq_len: int, batch_size: int = 32, seed: int = 0, source: str | None = None
    ) -> FinetuneData:
        key = (task, hashlib.sha256(tokenizer.to_str().encode()).hexdigest(), seq_len, source)
        splits = _ENCODED.pop(key, None)  # most recently used last
        if splits is None:
            raw = load_task_splits(task, source)
            span = finetune_task(task).spec.span
            splits = {
                name: EncodedSplit.build(tokenizer, raw.split(name), seq_len, span)
                for name in ("train", "validation", "test")
            }
        _ENCODED[key] = splits
        while len(_ENCODED) > _ENCODED_ENTRIES:
            _ENCODED.pop(next(iter(_ENCODED)))
        return cls(task, tokenizer, seq_len, splits, batch_size, seed, source)

    def train_batch(self, step: int, rank: int = 0) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1))
        train = self.splits["train"]
        idx = torch.randint(0, len(train.examples), (self.batch_size,), generator=g)
        return train.batch(idx, self.span)

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, split: str = "validation") -> dict[str, Any]:
        """Per example of ``split``: the predicted class and its probabilities, or the predicted span and text."""
        data = self.splits[split]
        probs, spans = [], []
        for i in range(0, len(data.examples), EVAL_BATCH):
            idx = torch.arange(i, min(i + EVAL_BATCH, len(data.examples)))
            batch = {k: v.to(model.device) for k, v in data.batch(idx, self.span).items()}
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            if self.span:
                spans.append(best_spans(out.start_logits, out.end_logits, _context_mask(data, idx)))
            else:
                probs.append(out.logits.float().softmax(-1).cpu())
        if self.span:
            found = torch.cat(spans)
            texts = [
                span_text(e, ex, int(s), int(t))
                for e, ex, (s, t) in zip(data.encoded, data.examples, found, strict=True)
            ]
            return {"spans": found, "texts": texts}
        p = torch.cat(probs)
        return {"probs": p, "predictions": p.argmax(-1)}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str = "validation") -> dict[str, float]:
        """``split``'s metrics, named with its prefix (``val_`` or ``test_``): loss and accuracy, or exact match
        and F1 (an answer that truncation cut off counts as missed)."""
        prefix = "val" if split == "validation" else split
        data = self.splits[split]
        n = len(data.examples)
        nll = 0.0
        for i in range(0, n, EVAL_BATCH):
            idx = torch.arange(i, min(i + EVAL_BATCH, n))
            batch = {k: v.to(model.device) for k, v in data.batch(idx, self.span).items()}
            nll += model(**batch).loss.float().item() * len(idx)
        out: dict[str, float] = {f"{prefix}_loss": nll / n, f"{prefix}_examples": n}
        pred = self.predict(model, split)
        if self.span:
            em = [exact_match(t, e.answer) for t, e in zip(pred["texts"], data.examples, strict=True)]
            f1 = [f1_score(t, e.answer) for t, e in zip(pred["texts"], data.examples, strict=True)]
            out[f"{prefix}_exact_match"] = sum(em) / n
            out[f"{prefix}_f1"] = sum(f1) / n
        else:
            out[f"{prefix}_accuracy"] = float((pred["predictions"] == data.labels).float().mean())
        return out


def _context_mask(data: EncodedSplit, idx: torch.Tensor) -> torch.Tensor:
    """(B, L): true at the context's word pieces (where a span answer may lie)."""
    mask = torch.zeros(len(idx), data.input_ids.shape[1], dtype=torch.bool)
    for row, i in enumerate(idx.tolist()):
        for pos, _, _ in data.encoded[i].context_offsets:
            mask[row, pos] = True
    return mask


def span_text(encoded: EncodedExample, example: Example, start: int, end: int) -> str:
    """The context's text from word piece ``start`` to ``end`` (inclusive), as written in the example."""
    chars = {pos: (s, e) for pos, s, e in encoded.context_offsets}
    if start not in chars or end not in chars or example.text_b is None:
        return ""
    return example.text_b[chars[start][0] : chars[end][1]]


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

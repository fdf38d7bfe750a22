"""A sentence pair through a finetuned classifier: its answer, and how it mixes the tokens of B into A.

The pair task (``docs-match``) asks whether B repeats A word for word. Answering means comparing each word of A
with the same word in B, which sits ``len(A) + 1`` positions later: an offset that changes with every input.
Attention can find the same word wherever it is; gMLP's W is one fixed matrix over positions, so the weight it
gives from position i to position j is the same whether j holds the same word or not. These functions measure
that on the model's own numbers:

- ``read_pair``: the pair encoded by the task's rule (``gmlp_core.data.finetune.TRUNCATION_RULE``), the class
  probabilities, and the word pieces with their segment;
- ``pair_maps``: per layer, the attention probabilities (Transformer: every head; aMLP: its tiny head) and W,
  on the real (unpadded) positions;
- ``effective_mixing``: one block's per-input token mixing (``layer_influence``: the Jacobian norms of its
  update), the map every architecture has;
- ``same_word_share`` and ``alignment_table``: of what a word of A takes in from B, the share that comes from the
  same word piece in B, beside the share a mixing with no preference would give (chance), over many pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from gmlp_core.analysis.influence import layer_influence
from gmlp_core.data.finetune import Example, FinetuneTask, encode_example, tokens_of
from gmlp_core.inference import MAX_TEXT_CHARS, BadInput

__all__ = [
    "PairReading",
    "alignment_table",
    "effective_mixing",
    "pair_example",
    "pair_maps",
    "pair_predictions",
    "read_pair",
    "same_word_share",
]


def _segment_text(text: object, name: str) -> str:
    if not isinstance(text, str):
        raise BadInput(f"sentence {name} must be text, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise BadInput(f"sentence {name} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}: shorten it")
    cleaned = text.encode("utf-8", errors="replace").decode("utf-8").strip()
    if not cleaned:
        raise BadInput(f"sentence {name} is empty: a pair needs two sentences (type one in each box)")
    return cleaned


def pair_example(text_a: object, text_b: object) -> Example:
    """The pair as an ``Example``; :class:`BadInput` for an empty or non-text segment, or one over the limit."""
    return Example(_segment_text(text_a, "A"), _segment_text(text_b, "B"))


@dataclass(frozen=True)
class PairReading:
    """One pair as the model read it and what it answered. Positions index the ``seq_len`` inputs; only the first
    ``n_real`` are real tokens (``[CLS] A [SEP] B [SEP]``), the rest padding."""

    task: str
    labels: tuple[str, ...]
    probabilities: np.ndarray  # (num_classes,) in label order
    tokens: list[str]  # the n_real word pieces read
    segment: list[int]  # per real position: 0 for [CLS] A [SEP], 1 for B [SEP]
    truncated: bool  # word pieces were dropped to fit (TRUNCATION_RULE)
    input_ids: Tensor = field(repr=False)  # (1, seq_len)
    attention_mask: Tensor = field(repr=False)  # (1, seq_len)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def label(self) -> str:
        return self.labels[self.predicted]

    @property
    def n_real(self) -> int:
        return len(self.tokens)

    @property
    def a_positions(self) -> list[int]:
        """Positions of A's word pieces ([CLS] and [SEP] left out)."""
        return [i for i, s in enumerate(self.segment) if s == 0][1:-1]

    @property
    def b_positions(self) -> list[int]:
        """Positions of B's word pieces (its closing [SEP] left out)."""
        return [i for i, s in enumerate(self.segment) if s == 1][:-1]


def _pair_task(model: nn.Module) -> FinetuneTask:
    from gmlp_core.train.finetune import recorded_task

    task = recorded_task(model.config)
    if not (task.pair and task.labels):
        raise ValueError(f"{model.config.name}: finetuned on {task.name}, not a sentence-pair classification task")
    return task


def read_pair(model: nn.Module, tokenizer: object, text_a: object, text_b: object) -> PairReading:
    """Classify the pair (A, B) with a model finetuned on a sentence-pair task; ValueError for any other model,
    :class:`BadInput` for an empty segment."""
    task = _pair_task(model)
    example = pair_example(text_a, text_b)
    encoded = encode_example(tokenizer, example, model.config.seq_len)
    device = next(model.parameters()).device
    ids = torch.tensor([encoded.input_ids], device=device)
    mask = torch.tensor([encoded.attention_mask], device=device)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[0].float()
    n_real = sum(encoded.attention_mask)
    return PairReading(
        task=task.name,
        labels=task.labels,
        probabilities=torch.softmax(logits, -1).cpu().numpy(),
        tokens=tokens_of(tokenizer, encoded)[:n_real],
        segment=encoded.segment[:n_real],
        truncated=encoded.truncated,
        input_ids=ids,
        attention_mask=mask,
    )


def pair_predictions(
    model: nn.Module, tokenizer: object, examples: Sequence[Example], batch_size: int = 256
) -> pd.DataFrame:
    """The model's answer on each of ``examples`` (a pair task's rows): ``example`` (index), ``label``,
    ``predicted``, ``probability`` (of the predicted class), ``p_label`` (of the true one) and ``correct``."""
    from gmlp_core.data.finetune import encode_examples

    _pair_task(model)
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        encoded = encode_examples(tokenizer, chunk, model.config.seq_len)
        ids = torch.tensor([e.input_ids for e in encoded], device=device)
        mask = torch.tensor([e.attention_mask for e in encoded], device=device)
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1).cpu()
        for k, (example, p) in enumerate(zip(chunk, probs, strict=True)):
            predicted = int(p.argmax())
            rows.append(
                {
                    "example": start + k,
                    "label": example.label,
                    "predicted": predicted,
                    "probability": float(p[predicted]),
                    "p_label": float(p[example.label]),
                    "correct": predicted == example.label,
                }
            )
    return pd.DataFrame(rows, columns=["example", "label", "predicted", "probability", "p_label", "correct"])


def pair_maps(model: nn.Module, reading: PairReading) -> dict[str, list[Tensor]]:
    """Per layer, on the real positions: ``"attention"`` ``(heads, m, m)`` where the model has attention (rows
    sum to 1 over the real tokens: padding is masked as in training) and ``"W"`` ``(m, m)`` where it has spatial
    weights (the n x n W cut to the real positions; the same for every input)."""
    m = reading.n_real
    out: dict[str, list[Tensor]] = {}
    if model.config.has_spatial_weights:
        out["W"] = [w[:m, :m].float().cpu() for w in model.spatial_weights()]
    if model.config.has_attention:
        with torch.no_grad():
            run = model.trunk(reading.input_ids, attention_mask=reading.attention_mask, output_attentions=True)
        out["attention"] = [a[0, :, :m, :m].float().cpu() for a in run.attentions]
    return out


def effective_mixing(model: nn.Module, reading: PairReading, layer: int, exact: bool | None = None) -> Tensor:
    """Block ``layer``'s token mixing on this pair, ``(m, m)``: ``||d u_i / d x_j||`` for its update ``u`` (the
    Jacobian norms of ``gmlp_core.analysis.influence.layer_influence``), padding masked as in training."""
    m = reading.n_real
    full = layer_influence(
        model, layer, reading.input_ids, rows=list(range(m)), exact=exact, attention_mask=reading.attention_mask
    )
    return full[:m, :m]


def same_word_share(matrix: Tensor, tokens: Sequence[str], segment: Sequence[int]) -> tuple[float, float, int]:
    """Of the weight rows of A put on B's positions, the share on B's copies of the row's own word piece.

    ``matrix`` ``(m, m)``: row i says how much position i takes from each position j (absolute values are used).
    Averaged over A's word pieces that occur in B: ``(share, chance, rows)``, where chance is what a row
    spreading its weight evenly over B would score (copies / B's length). NaN when no word of A recurs in B.
    """
    segment = list(segment)
    a = [i for i, s in enumerate(segment) if s == 0][1:-1]
    b = [i for i, s in enumerate(segment) if s == 1][:-1]
    weights = matrix.abs().double()
    shares, chances = [], []
    for i in a:
        same = [j for j in b if tokens[j] == tokens[i]]
        total = weights[i, b].sum().item()
        if not same or total <= 0:
            continue
        shares.append(weights[i, same].sum().item() / total)
        chances.append(len(same) / len(b))
    if not shares:
        return float("nan"), float("nan"), 0
    return float(np.mean(shares)), float(np.mean(chances)), len(shares)


def alignment_table(model: nn.Module, tokenizer: object, examples: Sequence[Example]) -> pd.DataFrame:
    """``same_word_share`` over ``examples`` (pairs), per layer and mixing: each attention head, and |W|.

    One row per (layer, mixing): ``share`` and ``chance`` averaged over the pairs, ``pairs`` counted, and
    ``ratio`` = share / chance (1: no preference for the same word; attention that finds it scores far above)."""
    _pair_task(model)
    rows: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for example in examples:
        reading = read_pair(model, tokenizer, example.text_a, example.text_b)
        for kind, layers in pair_maps(model, reading).items():
            for layer, maps in enumerate(layers):
                heads = [("W", maps)] if kind == "W" else [(f"head {h}", maps[h]) for h in range(maps.shape[0])]
                for name, matrix in heads:
                    share, chance, n = same_word_share(matrix, reading.tokens, reading.segment)
                    if n:
                        rows.setdefault((layer, name), []).append((share, chance))
    table = pd.DataFrame(
        [
            {
                "layer": layer,
                "mixing": name,
                "share": float(np.mean([s for s, _ in values])),
                "chance": float(np.mean([c for _, c in values])),
                "pairs": len(values),
            }
            for (layer, name), values in sorted(rows.items())
        ],
        columns=["layer", "mixing", "share", "chance", "pairs"],
    )
    table["ratio"] = table["share"] / table["chance"]
    return table

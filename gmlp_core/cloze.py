"""A cloze suite: hand-written fill-in-the-blank sentences about Python, scored top-1 and top-k.

The sentences (``gmlp_core/data/cloze_python.tsv``) were written for this project, not taken from the
corpus, so they measure what a lecturer will see when typing a sentence of their own: does the model put
the obvious word among its first guesses? Each sentence has one ``[MASK]`` and one or more accepted
answers. A model's prediction counts when its word piece, lowercased, is one of them; an accepted answer
that is not a single word piece in the model's vocabulary cannot be predicted, and the table says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tokenizers import Tokenizer
from torch import nn

from gmlp_core.inference import BadInput, fill_mask

CLOZE_FILE = Path(__file__).resolve().parent / "data" / "cloze_python.tsv"


@dataclass(frozen=True)
class ClozeItem:
    sentence: str
    answers: tuple[str, ...]


def load_cloze_suite(path: str | Path = CLOZE_FILE) -> list[ClozeItem]:
    """The sentences of a cloze file: ``sentence<TAB>answer|answer``, ``#`` comments, one [MASK] each."""
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        sentence, sep, answers = line.partition("\t")
        if not sep or sentence.count("[MASK]") != 1:
            raise ValueError(f"{path}:{number}: expected 'sentence with one [MASK]<TAB>answer|answer'")
        accepted = tuple(a.strip().lower() for a in answers.split("|") if a.strip())
        if not accepted:
            raise ValueError(f"{path}:{number}: no accepted answer")
        items.append(ClozeItem(sentence.strip(), accepted))
    return items


def cloze_table(model: nn.Module, tokenizer: Tokenizer, items: list[ClozeItem], k: int = 5) -> pd.DataFrame:
    """One row per sentence: the model's top-k guesses, the rank of the first accepted answer among
    them (0 if none), hit@1, hit@k, and whether the model can answer at all: an accepted answer is one
    word piece in its vocabulary and the [MASK] lies within its ``seq_len``."""
    rows = []
    for item in items:
        try:
            result = fill_mask(model, tokenizer, item.sentence, top_k=k)
        except BadInput:  # the [MASK] lies beyond a short model's seq_len: a miss it cannot avoid
            guesses, reachable = [], False
        else:
            guesses, reachable = [str(t).lower() for t in result.table["token"]], True
        rank = next((r for r, g in enumerate(guesses, 1) if g in item.answers), 0)
        predictable = reachable and any(
            len(tokenizer.encode(answer, add_special_tokens=False).ids) == 1 for answer in item.answers
        )
        rows.append(
            {
                "sentence": item.sentence,
                "answers": "|".join(item.answers),
                "guesses": " ".join(guesses),
                "rank": rank,
                "top1": rank == 1,
                f"top{k}": rank >= 1,
                "predictable": predictable,
            }
        )
    return pd.DataFrame(rows)


def cloze_score(table: pd.DataFrame) -> dict[str, int]:
    """Counts over a :func:`cloze_table`: sentences, top-1 hits, top-k hits, sentences the vocabulary can answer."""
    k_col = next(c for c in table.columns if c.startswith("top") and c != "top1")
    return {
        "sentences": len(table),
        "top1": int(table["top1"].sum()),
        k_col: int(table[k_col].sum()),
        "predictable": int(table["predictable"].sum()),
    }

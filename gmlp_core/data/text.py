"""Text corpora for MLM.

The embedded default is real English that ships with Python itself: the documentation topics in
``pydoc_data.topics`` (~465k characters of the Python reference manual). It is cleaned into prose
paragraphs (heading rules, interactive examples, grammar and code-like blocks dropped) and split
deterministically: unique paragraphs in order of topic name, every 10th one to validation (10%).

Other specs go through one code path, ``datasets.load_dataset``: a hub name ``"NAME:CONFIG"`` (e.g.
``wikitext:wikitext-103-raw-v1``, needs internet) or a local ``.txt``/``.json``/``.jsonl``/``.parquet``
file or folder (a ``text`` column, or the first string column).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED = "embedded"
_LOCAL_BUILDERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class TextCorpus:
    name: str
    train: list[str]
    validation: list[str]


def _clean_topic(text: str) -> list[str]:
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not lines or any(ln.lstrip().startswith((">>>", "...")) or "::=" in ln for ln in lines):
            continue  # interactive examples and grammar productions
        if all(re.fullmatch(r"[*=\-~^#]+", ln.strip() or "*") for ln in lines[1:2]) and len(lines) <= 2:
            continue  # a heading with its underline
        para = " ".join(ln.strip() for ln in lines if not re.fullmatch(r"[*=\-~^#]+", ln.strip()))
        # Prose, not code: mostly letters and spaces, and sentence-like.
        if len(para) >= 40 and sum(c.isalpha() or c == " " for c in para) / len(para) > 0.8 and " " in para:
            paragraphs.append(para)
    return paragraphs


def embedded_corpus() -> TextCorpus:
    """Python's documentation topics, cleaned and split 90/10 by topic."""
    from pydoc_data.topics import topics

    # The manual repeats some paragraphs across topics: keep the first, so no paragraph is in both splits.
    paragraphs = list(dict.fromkeys(p for key in sorted(topics) for p in _clean_topic(topics[key])))
    train = [p for i, p in enumerate(paragraphs) if i % 10 != 9]
    validation = [p for i, p in enumerate(paragraphs) if i % 10 == 9]
    return TextCorpus(EMBEDDED, train, validation)


def _text_column(dataset: Any) -> str:
    if "text" in dataset.column_names:
        return "text"
    for name, feature in dataset.features.items():
        if getattr(feature, "dtype", None) == "string":
            return name
    raise ValueError(f"no text column in {dataset.column_names}: provide a 'text' column")


def _split(ds_dict: Any, spec: str) -> TextCorpus:
    """Train/validation from a DatasetDict: its own validation split, else a fixed 10% of train."""
    if "train" not in ds_dict:
        raise ValueError(f"{spec}: the dataset has no 'train' split (splits: {list(ds_dict)})")
    train = ds_dict["train"]
    val = ds_dict.get("validation") or ds_dict.get("test")
    if val is None:
        parts = train.train_test_split(test_size=0.1, seed=0, shuffle=True)
        train, val = parts["train"], parts["test"]
    col = _text_column(train)
    keep = [t for t in train[col] if isinstance(t, str) and t.strip()]
    keep_val = [t for t in val[col] if isinstance(t, str) and t.strip()]
    if not keep or not keep_val:
        raise ValueError(f"{spec}: no non-empty text found")
    return TextCorpus(spec, keep, keep_val)


def load_text_corpus(spec: str = EMBEDDED) -> TextCorpus:
    """The corpus named by ``spec``: "embedded", a hub "NAME[:CONFIG]", or a local file/folder."""
    if spec == EMBEDDED:
        return embedded_corpus()
    import datasets

    path = Path(spec)
    if path.exists():
        files = sorted(p for p in path.rglob("*") if p.suffix in _LOCAL_BUILDERS) if path.is_dir() else [path]
        if not files:
            raise ValueError(f"{spec}: no .txt/.json/.jsonl/.parquet files found")
        builder = _LOCAL_BUILDERS.get(files[0].suffix)
        if builder is None:
            raise ValueError(f"{spec}: unsupported file type {files[0].suffix!r}; use {sorted(_LOCAL_BUILDERS)}")
        ds = datasets.load_dataset(builder, data_files={"train": [str(f) for f in files]})
    else:
        name, _, config = spec.partition(":")
        ds = datasets.load_dataset(name, config or None)
    return _split(ds, spec)

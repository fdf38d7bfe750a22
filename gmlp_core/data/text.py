"""Text corpora for MLM.

Two built-in corpora are real English that ships with Python itself, so nothing is downloaded:

- ``embedded``: the documentation topics in ``pydoc_data.topics`` (the Python reference manual, ~266k
  characters of prose after cleaning);
- ``python-docs``: those topics plus the docstrings of Python's own standard library, read with ``ast``
  (~1.3M characters of prose in all, ~5x ``embedded``). The text depends on the Python version, which
  training records in ``metrics.json``.

Both are cleaned into prose paragraphs (heading rules, interactive examples, grammar and code-like blocks
dropped) and split deterministically: unique paragraphs in a fixed order (topic name; then module path and
position in the module), every 10th one to validation (10%).

Other specs go through one code path, ``datasets.load_dataset``: a hub name ``"NAME:CONFIG"`` (e.g.
``wikitext:wikitext-103-raw-v1``, needs internet) or a local ``.txt``/``.json``/``.jsonl``/``.parquet``
file or folder (a ``text`` column, or the first string column).
"""

from __future__ import annotations

import ast
import functools
import re
import sysconfig
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED = "embedded"
PYTHON_DOCS = "python-docs"
BUILT_IN_CORPORA = (EMBEDDED, PYTHON_DOCS)  # corpora made from files that ship with Python
# Standard-library folders whose docstrings are not library prose (tests, demos, the IDE, vendored packages).
_STDLIB_SKIP = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "ensurepip", "pydoc_data"}
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


def _split_paragraphs(name: str, paragraphs: list[str]) -> TextCorpus:
    """Unique paragraphs in their given order (the first of repeats, so none is in both splits), every
    10th one to validation."""
    unique = list(dict.fromkeys(paragraphs))
    train = [p for i, p in enumerate(unique) if i % 10 != 9]
    validation = [p for i, p in enumerate(unique) if i % 10 == 9]
    return TextCorpus(name, train, validation)


def _topic_paragraphs() -> list[str]:
    from pydoc_data.topics import topics

    return [p for key in sorted(topics) for p in _clean_topic(topics[key])]


# Docstrings hold more code than the manual's topics do: a paragraph that opens like a statement or is
# dense in code symbols is an example, not prose (~4% of the docstring paragraphs, ~40k characters).
_CODE_START = re.compile(
    r"^(async def|def|class|import|from \S+ import|return|raise|try:|with .*:|for .* in .*:|while .*:|if .*:|elif |else:"
    r"|except|@\w)"
)


def _looks_like_code(paragraph: str) -> bool:
    symbols = sum(c in "()[]{}=#_<>*" for c in paragraph) / len(paragraph)
    return bool(_CODE_START.match(paragraph)) or symbols > 0.06


_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_STATEMENT_NODES = (ast.stmt, ast.excepthandler, ast.match_case)  # the only nodes that hold statements


def _doc_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """The module, class and function nodes of ``tree`` in ``ast.walk``'s order (breadth first), 5-10x faster:
    only statements can hold a definition, so the walk never enters an expression. Leaving out whole subtrees that
    hold none of the nodes looked for keeps the others in the same relative order."""
    todo = deque([tree])
    while todo:
        node = todo.popleft()
        todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, _STATEMENT_NODES))
        if isinstance(node, _DOC_NODES):
            yield node


@functools.cache
def _stdlib_docstring_paragraphs() -> tuple[str, ...]:
    """Prose paragraphs of the standard library's module, class and function docstrings, in order of
    module path and then of position in the module (``ast.walk``)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    paragraphs: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if set(rel.parts[:-1]) & _STDLIB_SKIP or path.name.startswith("test_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):  # a few files are deliberately not Python 3
            continue
        for node in _doc_nodes(tree):
            doc = ast.get_docstring(node)
            if doc:
                paragraphs.extend(p for p in _clean_topic(doc) if not _looks_like_code(p))
    return tuple(paragraphs)


def embedded_corpus() -> TextCorpus:
    """Python's documentation topics, cleaned and split 90/10."""
    return _split_paragraphs(EMBEDDED, _topic_paragraphs())


def python_docs_corpus() -> TextCorpus:
    """The documentation topics followed by the standard library's docstrings, cleaned and split 90/10.
    The topics' paragraphs come first, so ``embedded``'s validation paragraphs are validation here too."""
    return _split_paragraphs(PYTHON_DOCS, _topic_paragraphs() + list(_stdlib_docstring_paragraphs()))


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
    """The corpus named by ``spec``: "embedded", "python-docs", a hub "NAME[:CONFIG]", or a local file/folder."""
    if spec == EMBEDDED:
        return embedded_corpus()
    if spec == PYTHON_DOCS:
        return python_docs_corpus()
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

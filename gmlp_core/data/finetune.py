"""Finetuning data sets: three built from Python's own documentation (offline, deterministic) and the hub's
GLUE SST-2, MNLI and SQuAD through ``datasets``.

Every task is one ``FinetuneTask`` in ``FINETUNE_TASKS``: its name, the head it trains (a ``TaskSpec`` of
``gmlp_core.models.tasks``), its class names, whether it reads one segment or two, and a builder that returns
fixed train / validation / test splits of ``Example`` rows. The built-in tasks take their sentences from the
``python-docs`` corpus (``gmlp_core.data.text``): training examples only from the MLM *training* paragraphs,
validation and test examples from the MLM *validation* paragraphs (every other sentence to each), so no sentence a
pretrained model was validated on trains a head, and no test sentence was seen in pretraining at all.

- ``docs-order`` (one segment; the CoLA / SST-2 analogue): is this sentence in its original word order, or have
  two neighbouring words been swapped? Local word order decides it: a static, local W should do as well as
  attention.
- ``docs-match`` (a pair; the QQP / MNLI analogue): does sentence B repeat sentence A word for word, or does
  one noun differ? Both segments are the same sentence with one noun (a word after "the", "a" or "an")
  replaced, by X or by Y, two nouns of the same split: "same" pairs are (s_X, s_X) and (s_Y, s_Y), "different"
  ones (s_X, s_Y) and (s_Y, s_X). Each segment on its own is s_X or s_Y in half the examples of both classes,
  and the two segments together hold the same words up to one noun, so a model that sees one segment is at
  chance by construction and a bag of words nearly so (README, "Finetuning"). Answering means finding each
  word of B in A: a Transformer's attention finds the same word in the other sentence wherever it is; gMLP's
  W mixes fixed offsets, and where B starts depends on A's length.
- ``docs-match-common``: the same question where the "different" pairs hold the original sentence and the
  sentence with a *common* noun swapped in (drawn by how often it follows a determiner), "same" pairs (s, s) and
  (s', s'). In ``docs-match`` the nouns are drawn uniformly from the split's nouns, mostly rare words, which the
  models learn to spot; here that cue is gone, and at the demo scale no architecture learns the task (README).
- ``docs-span`` (question + context; the SQuAD analogue): the context is a sentence, the question the words
  around one of its words with that word replaced by "what" ("the what statement is used to ...?"), and the
  answer the word's span in the context. Finding it means finding where the question's words sit in the context.

For users online, ``glue:sst2``, ``glue:mnli`` and ``squad`` read the hub's columns (``sentence``; ``premise``,
``hypothesis``; ``question``, ``context``, ``answers``) with ``datasets.load_dataset``, or the same columns from
local files (``source=`` a folder of ``train`` / ``validation`` ``.jsonl`` / ``.json`` / ``.parquet`` files).
Their test labels are hidden, so their validation split is our test split and a fixed 5% of train our
validation split.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gmlp_core.data.text import python_docs_corpus
from gmlp_core.data.tokenizer import encode_checked
from gmlp_core.models.tasks import TASK_SPECS, TaskSpec

SPLITS = ("train", "validation", "test")
# Built-in tasks: at most this many examples per split (the corpus gives more training sentences than this).
MAX_TRAIN, MAX_EVAL = 12_000, 1_000
_SEED = 0  # the built-in tasks' construction is fixed: the same examples on every machine and Python run
_DETERMINERS = {"the", "a", "an"}
_WORD = re.compile(r"[A-Za-z]{3,}")  # a plain word (no punctuation, no digits), 3 letters or more


@dataclass(frozen=True)
class Example:
    """One finetuning example. ``text_b`` is the second segment (a pair's B, a span task's context) or None.
    Span tasks: ``answer`` is the answer's text and ``answer_start`` its character offset in ``text_b``."""

    text_a: str
    text_b: str | None = None
    label: int = 0
    answer: str = ""
    answer_start: int = -1


@dataclass(frozen=True)
class TaskSplits:
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]

    def split(self, name: str) -> tuple[Example, ...]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; splits: {', '.join(SPLITS)}")
        return getattr(self, name)


@dataclass(frozen=True)
class FinetuneTask:
    """A finetuning data set: which head it trains and how its examples are made."""

    name: str
    head: str  # a TaskSpec name: "classify" or "span"
    description: str  # one line, for tables and the page
    analogue: str  # the paper's task it stands in for
    segments: tuple[str, ...]  # what the segments are called ("sentence"; "A", "B"; "question", "context")
    labels: tuple[str, ...] = ()  # class names, by label id (classification)
    built_in: bool = True  # made here from files that ship with Python (no download)
    control: bool = False  # a control of another task (the study's, not a task of the paper)
    caveat: str = ""  # what a user typing their own examples should know (shown where they type)
    build: Callable[[str | None], TaskSplits] = lambda source: TaskSplits((), (), ())

    @property
    def pair(self) -> bool:
        return len(self.segments) == 2

    @property
    def spec(self) -> TaskSpec:
        """The head it trains (``gmlp_core.models.tasks``): what it predicts and its headline metric."""
        return TASK_SPECS[self.head]

    @property
    def metric(self) -> str:
        """The metric the task is judged by ("accuracy", or "f1" for spans), as metrics name it after val_/test_."""
        return self.spec.headline.removeprefix("val_")

    @property
    def num_classes(self) -> int:
        return len(self.labels)


# ---- sentences of the python-docs corpus ----------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _sentences(paragraphs: Sequence[str], max_words: int, max_chars: int, min_words: int = 6) -> list[str]:
    """Prose sentences of ``paragraphs`` with ``min_words``-``max_words`` words and at most ``max_chars``
    characters, in order, each once."""
    out: list[str] = []
    for paragraph in paragraphs:
        for sentence in _SENTENCE_END.split(paragraph):
            words = sentence.split()
            if not min_words <= len(words) <= max_words or len(sentence) > max_chars or not sentence.endswith("."):
                continue
            # mostly plain words: no code fragments, option lists or references
            if sum(bool(_WORD.fullmatch(w.strip(".,;:"))) for w in words) < 0.7 * len(words):
                continue
            out.append(" ".join(words))  # white space normalised, so a sentence is itself wherever it recurs
    return list(dict.fromkeys(out))


@functools.cache
def docs_sentences(max_words: int, max_chars: int) -> dict[str, tuple[str, ...]]:
    """The sentences (6 to ``max_words`` words, ``max_chars`` characters) the built-in tasks are made of, per
    split: the MLM *validation*
    paragraphs' sentences are the test split (seen neither in pretraining nor in finetuning); of the MLM training
    paragraphs' sentences, every 10th is the validation split (for choosing a learning rate) and the rest train."""
    corpus = python_docs_corpus()
    # A sentence can recur in a training and a validation paragraph: it belongs to the validation side only.
    held_out = {" ".join(s.split()) for p in corpus.validation for s in _SENTENCE_END.split(p)}
    seen = [s for s in _sentences(corpus.train, max_words, max_chars) if s not in held_out]
    return {
        "train": tuple(s for i, s in enumerate(seen) if i % 10 != 9),
        "validation": tuple(s for i, s in enumerate(seen) if i % 10 == 9),
        "test": tuple(_sentences(corpus.validation, max_words, max_chars)),
    }


def _built(make: Callable[[str, random.Random], list[Example]], max_words: int, max_chars: int) -> TaskSplits:
    """The examples ``make`` draws from each split's sentences, taken in a fixed shuffled order (up to the cap).
    A classification task draws every class from each sentence, so the classes are balanced and a sentence's
    words say nothing about its label."""
    splits = []
    for i, split in enumerate(SPLITS):
        rng = random.Random(_SEED * 1000 + i)
        sentences = list(docs_sentences(max_words, max_chars)[split])
        rng.shuffle(sentences)
        cap = MAX_TRAIN if split == "train" else MAX_EVAL
        examples: dict[Example, None] = {}
        for sentence in sentences:
            made = make(sentence, rng, split) if make in _PER_SPLIT else make(sentence, rng)
            examples.update(dict.fromkeys(made))
            if len(examples) >= cap:
                break
        splits.append(tuple(examples)[:cap])
    return TaskSplits(*splits)


# ---- docs-order ---------------------------------------------------------------------------------------
ORDER_LABELS = ("two words swapped", "original order")


def _order_examples(sentence: str, rng: random.Random) -> list[Example]:
    """The sentence as written (label 1) and the sentence with two neighbouring, different words swapped (0)."""
    words = sentence.split()
    options = [i for i in range(len(words) - 1) if words[i].lower() != words[i + 1].lower()]
    if not options:
        return []
    i = rng.choice(options)
    words[i], words[i + 1] = words[i + 1], words[i]
    return [Example(" ".join(sentence.split()), label=1), Example(" ".join(words), label=0)]


def build_docs_order(source: str | None = None) -> TaskSplits:
    """``docs-order``: original word order (1) or two neighbouring words swapped (0), half each."""
    return _built(_order_examples, max_words=30, max_chars=200)


# ---- docs-match ---------------------------------------------------------------------------------------
def noun_slots(words: Sequence[str]) -> list[int]:
    """Positions of plain words that follow "the", "a" or "an" (nouns, mostly): the words a pair task replaces."""
    return [
        i
        for i in range(1, len(words))
        if words[i - 1].lower() in _DETERMINERS and _WORD.fullmatch(words[i]) is not None
    ]


MATCH_LABELS = ("same", "one noun differs")


@functools.cache
def _nouns(split: str) -> tuple[str, ...]:
    """The plain words that follow "the", "a" or "an" in a split's sentences, each once, in a fixed order."""
    found: dict[str, None] = {}
    for sentence in docs_sentences(22, 100)[split]:
        words = sentence.split()
        found.update((words[i].lower(), None) for i in noun_slots(words))
    return tuple(sorted(found))


def _noun_slot(sentence: str, rng: random.Random) -> tuple[list[str], int, set[str]] | None:
    """The sentence's words, one of its noun slots drawn with ``rng`` and its words in lower case (which a
    replacement must avoid); None for a sentence without a noun slot."""
    words = sentence.split()
    slots = noun_slots(words)
    if not slots:
        return None
    return words, rng.choice(slots), {w.lower() for w in words}


def _match_examples(sentence: str, rng: random.Random, split: str) -> list[Example]:
    """A sentence with one noun replaced by two different nouns X and Y of the same split, giving s_X and s_Y:
    label 0 ("same") for (s_X, s_X) and (s_Y, s_Y), label 1 for (s_X, s_Y) and (s_Y, s_X). Every segment is a
    sentence with a replaced noun, s_X or s_Y in half the examples of each class."""
    slot = _noun_slot(sentence, rng)
    if slot is None:
        return []
    words, j, present = slot
    nouns = _nouns(split)
    x, y = rng.sample(nouns, 2)
    while x in present or y in present:
        x, y = rng.sample(nouns, 2)
    sx = " ".join(words[:j] + [x] + words[j + 1 :])
    sy = " ".join(words[:j] + [y] + words[j + 1 :])
    return [Example(sx, sx, label=0), Example(sx, sy, label=1), Example(sy, sy, label=0), Example(sy, sx, label=1)]


@functools.cache
def _noun_counts(split: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``_nouns(split)`` and how often each follows a determiner in the split's sentences."""
    counts: dict[str, int] = {}
    for sentence in docs_sentences(22, 100)[split]:
        words = sentence.split()
        for i in noun_slots(words):
            counts[words[i].lower()] = counts.get(words[i].lower(), 0) + 1
    nouns = _nouns(split)
    return nouns, tuple(counts[n] for n in nouns)


def _common_match_examples(sentence: str, rng: random.Random, split: str) -> list[Example]:
    """The sentence s and s', s with one noun replaced by a noun of the same split drawn as often as it follows a
    determiner there (a common noun, as a person would swap one): label 0 for (s, s) and (s', s'), 1 for (s, s')
    and (s', s). Each segment alone is s or s' in half the examples of each class."""
    slot = _noun_slot(sentence, rng)
    if slot is None:
        return []
    words, j, present = slot
    nouns, counts = _noun_counts(split)
    other = rng.choices(nouns, weights=counts)[0]
    while other in present:
        other = rng.choices(nouns, weights=counts)[0]
    original, replaced = " ".join(words), " ".join(words[:j] + [other] + words[j + 1 :])
    return [
        Example(original, original, label=0),
        Example(original, replaced, label=1),
        Example(replaced, replaced, label=0),
        Example(replaced, original, label=1),
    ]


def build_docs_match_common(source: str | None = None) -> TaskSplits:
    """``docs-match-common``: ``docs-match`` with the original sentence kept and a common noun swapped in."""
    return _built(_common_match_examples, max_words=22, max_chars=100)


def build_docs_match(source: str | None = None) -> TaskSplits:
    """``docs-match``: does B repeat A (0), or does one noun differ (1)? Half each."""
    return _built(_match_examples, max_words=22, max_chars=100)


def second_segment_only(splits: TaskSplits) -> TaskSplits:
    """A pair task's splits with only segment B left (the control that cannot compare A with B)."""

    def strip(examples: tuple[Example, ...]) -> tuple[Example, ...]:
        return tuple(Example(e.text_b or "", label=e.label) for e in examples)

    return TaskSplits(strip(splits.train), strip(splits.validation), strip(splits.test))


def build_docs_match_b_only(source: str | None = None) -> TaskSplits:
    """``docs-match-b``: ``docs-match`` with only B shown, so its label cannot be known (a control)."""
    return second_segment_only(build_docs_match(source))


# ---- docs-span ----------------------------------------------------------------------------------------
QUESTION_WINDOW = 3  # words on each side of the answer that the question repeats
_STOPWORDS = {"the", "and", "for", "are", "was", "that", "this", "with", "not", "can", "its", "has", "have", "from"}


def _span_examples(sentence: str, rng: random.Random) -> list[Example]:
    """Context: the sentence. Answers: two of its plain words (not stop words, once in the sentence, with at least
    one word before them). Question: up to 3 words before and after the answer, the answer replaced by "what"."""
    spans = [(m.start(), m.group()) for m in re.finditer(r"\S+", sentence)]
    words = [w for _, w in spans]
    lowered = [w.lower().strip(".,;:()\"'") for w in words]  # "objects," and "objects" are one word
    options = [
        i
        for i, w in enumerate(words)
        if i >= 1 and _WORD.fullmatch(w) and lowered[i] not in _STOPWORDS and lowered.count(lowered[i]) == 1
    ]
    return [_span_question(sentence, spans, i) for i in rng.sample(options, min(2, len(options)))]


def _span_question(sentence: str, spans: list[tuple[int, str]], i: int) -> Example:
    words = [w for _, w in spans]
    left = words[max(0, i - QUESTION_WINDOW) : i]
    right = [w.rstrip(".,;:") for w in words[i + 1 : i + 1 + QUESTION_WINDOW]]
    question = " ".join([*left, "what", *right]).strip() + "?"
    return Example(question, sentence, answer=words[i], answer_start=spans[i][0])


def build_docs_span(source: str | None = None) -> TaskSplits:
    """``docs-span``: the span of the word a question about the sentence asks for."""
    return _built(_span_examples, max_words=30, max_chars=200)


# ---- the hub's GLUE and SQuAD ----------------------------------------------------------------------------
_LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def _load(source: str | None, hub: tuple[str, ...]) -> Any:
    """A DatasetDict: local files under ``source`` (named by split) or, without a source, the hub's set ``hub``."""
    import datasets

    if source is None:
        return datasets.load_dataset(*hub)
    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(f"{source}: not a folder; give a folder of train / validation files in the hub's columns")
    files: dict[str, list[str]] = {}
    builder = None
    for path in sorted(folder.iterdir()):
        split = path.stem.split(".")[0]
        if path.suffix in _LOCAL_BUILDERS and split in ("train", "validation", "validation_matched"):
            files.setdefault("validation" if split.startswith("validation") else "train", []).append(str(path))
            builder = _LOCAL_BUILDERS[path.suffix]
    if builder is None or set(files) != {"train", "validation"}:
        raise ValueError(f"{source}: needs a train and a validation file (.jsonl, .json, .parquet or .csv)")
    return datasets.load_dataset(builder, data_files=files)


def _hub_splits(ds: Any, validation_key: str, convert: Callable[[dict[str, Any]], Example | None]) -> TaskSplits:
    """Train and a fixed 5% of it as validation (every 20th row) from the hub's train split; the hub's
    validation split (labels public, unlike its test split) as our test split."""
    train_rows = [e for e in map(convert, ds["train"]) if e is not None]
    test_rows = [e for e in map(convert, ds[validation_key]) if e is not None]
    if not train_rows or not test_rows:
        raise ValueError("no usable rows: check the columns (and that labels are not hidden, -1)")
    train = tuple(e for i, e in enumerate(train_rows) if i % 20 != 19)
    validation = tuple(e for i, e in enumerate(train_rows) if i % 20 == 19)
    return TaskSplits(train, validation, tuple(test_rows))


def _labelled(label: Any) -> bool:
    return isinstance(label, int) and not isinstance(label, bool) and label >= 0


def build_sst2(source: str | None = None) -> TaskSplits:
    """GLUE SST-2: ``sentence``, ``label`` (0 negative, 1 positive)."""

    def convert(row: dict[str, Any]) -> Example | None:
        return Example(row["sentence"], label=row["label"]) if _labelled(row["label"]) else None

    ds = _load(source, ("glue", "sst2"))
    return _hub_splits(ds, "validation", convert)


def build_mnli(source: str | None = None) -> TaskSplits:
    """GLUE MNLI: ``premise``, ``hypothesis``, ``label`` (0 entailment, 1 neutral, 2 contradiction); test = matched."""

    def convert(row: dict[str, Any]) -> Example | None:
        return Example(row["premise"], row["hypothesis"], label=row["label"]) if _labelled(row["label"]) else None

    ds = _load(source, ("glue", "mnli"))
    key = "validation_matched" if "validation_matched" in ds else "validation"
    return _hub_splits(ds, key, convert)


def build_squad(source: str | None = None) -> TaskSplits:
    """SQuAD: ``question``, ``context``, ``answers`` {``text``, ``answer_start``}; the first answer is the target."""

    def convert(row: dict[str, Any]) -> Example | None:
        answers = row["answers"]
        if not answers["text"]:
            return None
        return Example(
            row["question"], row["context"], answer=answers["text"][0], answer_start=answers["answer_start"][0]
        )

    ds = _load(source, ("squad",))
    return _hub_splits(ds, "validation", convert)


_PER_SPLIT = {_match_examples, _common_match_examples}  # makers that draw from their split's words too

FINETUNE_TASKS: dict[str, FinetuneTask] = {
    task.name: task
    for task in (
        FinetuneTask(
            "docs-order",
            "classify",
            "original word order, or two neighbouring words swapped?",
            "CoLA / SST-2 (single sentence)",
            ("sentence",),
            ORDER_LABELS,
            build=build_docs_order,
        ),
        FinetuneTask(
            "docs-match",
            "classify",
            "does B repeat A word for word, or does one noun differ?",
            "QQP / MNLI (sentence pair, cross-sentence matching)",
            ("A", "B"),
            MATCH_LABELS,
            caveat=(
                "Its different pairs swap in a noun drawn uniformly from the split's nouns, mostly rare words, and "
                "the models learn to spot those: a pair that swaps one common noun for another is outside what "
                "they were trained on, and they tend to answer same (README, Finetuning)."
            ),
            build=build_docs_match,
        ),
        FinetuneTask(
            "docs-match-common",
            "classify",
            "docs-match with a common noun swapped into the original sentence (harder: no rare-word cue)",
            "QQP / MNLI (sentence pair, cross-sentence matching)",
            ("A", "B"),
            MATCH_LABELS,
            build=build_docs_match_common,
        ),
        FinetuneTask(
            "docs-match-b",
            "classify",
            "control: docs-match with segment B alone",
            "a model that sees one segment",
            ("B",),
            MATCH_LABELS,
            control=True,
            build=build_docs_match_b_only,
        ),
        FinetuneTask(
            "docs-span",
            "span",
            "which word of the context does the question ask for?",
            "SQuAD (extractive span)",
            ("question", "context"),
            build=build_docs_span,
        ),
        FinetuneTask(
            "glue:sst2",
            "classify",
            "GLUE SST-2 sentiment",
            "SST-2",
            ("sentence",),
            ("negative", "positive"),
            built_in=False,
            build=build_sst2,
        ),
        FinetuneTask(
            "glue:mnli",
            "classify",
            "GLUE MNLI entailment",
            "MNLI",
            ("premise", "hypothesis"),
            ("entailment", "neutral", "contradiction"),
            built_in=False,
            build=build_mnli,
        ),
        FinetuneTask(
            "squad",
            "span",
            "SQuAD v1.1 reading comprehension",
            "SQuAD",
            ("question", "context"),
            built_in=False,
            build=build_squad,
        ),
    )
}
BUILT_IN_FINETUNE_TASKS = tuple(name for name, task in FINETUNE_TASKS.items() if task.built_in)


def finetune_task(name: str) -> FinetuneTask:
    """The task called ``name`` (ValueError naming the known tasks otherwise)."""
    if name not in FINETUNE_TASKS:
        raise ValueError(f"unknown finetuning task {name!r}; tasks: {', '.join(FINETUNE_TASKS)}")
    return FINETUNE_TASKS[name]


@functools.cache
def _cached_splits(name: str, source: str | None) -> TaskSplits:
    return finetune_task(name).build(source)


def load_task_splits(name: str, source: str | None = None) -> TaskSplits:
    """The train / validation / test examples of task ``name`` (built once per process and source)."""
    task = finetune_task(name)
    if task.built_in and source is not None:
        raise ValueError(f"{name} is built from Python's documentation; it takes no data source")
    return _cached_splits(name, source)


# ---- encoding for a fixed-length model --------------------------------------------------------------------
TRUNCATION_RULE = (
    "[CLS] A [SEP] B [SEP] padded to n word pieces; a pair longer than n loses word pieces from the end of the "
    "longer segment first; a span question keeps at most half of n, the context the rest (an answer cut off "
    "counts as missed)"
)


@dataclass(frozen=True)
class EncodedExample:
    """An example as the model reads it: ``[CLS] A [SEP] (B [SEP])`` padded to ``seq_len``."""

    input_ids: list[int]
    attention_mask: list[int]  # 1 for [CLS], the segments and [SEP]s; 0 for padding
    segment: list[int]  # 0 for [CLS] A [SEP], 1 for B [SEP], -1 for padding
    truncated: bool  # word pieces were dropped to fit seq_len
    start: int = -100  # span tasks: the answer's first and last positions, -100 if truncated away (or none)
    end: int = -100
    context_offsets: tuple[tuple[int, int, int], ...] = ()  # span tasks: (position, char start, char end) of B


def encode_example(tokenizer: Any, example: Example, seq_len: int, span: bool = False) -> EncodedExample:
    """``example`` encoded for a model of ``seq_len`` positions by ``TRUNCATION_RULE`` (``TokenizerFailure`` when
    the tokenizer fails on a segment: a typed pair reaches models through here)."""
    enc_b = None if example.text_b is None else encode_checked(tokenizer, example.text_b)
    return assemble(tokenizer, example, encode_checked(tokenizer, example.text_a), enc_b, seq_len, span)


def encode_examples(
    tokenizer: Any, examples: Sequence[Example], seq_len: int, span: bool = False
) -> list[EncodedExample]:
    """``encode_example`` for many examples, their segments tokenized in two batches."""
    encs_a = tokenizer.encode_batch([e.text_a for e in examples], add_special_tokens=False)
    seconds = [e.text_b for e in examples if e.text_b is not None]
    encs_b = iter(tokenizer.encode_batch(seconds, add_special_tokens=False))
    return [
        assemble(tokenizer, e, enc_a, None if e.text_b is None else next(encs_b), seq_len, span)
        for e, enc_a in zip(examples, encs_a, strict=True)
    ]


def assemble(
    tokenizer: Any, example: Example, enc_a: Any, enc_b: Any | None, seq_len: int, span: bool
) -> EncodedExample:
    """``[CLS] A [SEP] (B [SEP])`` from the segments' encodings (``tokenizers.Encoding``), padded to ``seq_len``."""
    from gmlp_core.data.tokenizer import CLS_ID, PAD_ID, SEP_ID

    if seq_len < 4:
        raise ValueError(f"seq_len={seq_len} is too short for [CLS] A [SEP] B [SEP]")
    ids_a = list(enc_a.ids)
    ids_b: list[int] = [] if enc_b is None else list(enc_b.ids)
    offsets_b: list[tuple[int, int]] = [] if enc_b is None else list(enc_b.offsets)
    pair = example.text_b is not None
    budget = seq_len - (3 if pair else 2)
    total = len(ids_a) + len(ids_b)
    if span and pair:
        keep_a = min(len(ids_a), budget // 2)
        keep_b = min(len(ids_b), budget - keep_a)
    else:
        keep_a, keep_b = len(ids_a), len(ids_b)
        while keep_a + keep_b > budget:  # longest first
            if keep_a >= keep_b:
                keep_a -= 1
            else:
                keep_b -= 1
    ids = [CLS_ID, *ids_a[:keep_a], SEP_ID]
    segment = [0] * len(ids)
    b_start = len(ids)
    if pair:
        ids += [*ids_b[:keep_b], SEP_ID]
        segment += [1] * (keep_b + 1)
    n_real = len(ids)
    padding = seq_len - n_real
    start = end = -100
    offsets: tuple[tuple[int, int, int], ...] = ()
    if span and pair:
        offsets = tuple((b_start + i, s, e) for i, (s, e) in enumerate(offsets_b[:keep_b]))
        lo, hi = example.answer_start, example.answer_start + len(example.answer)
        inside = [pos for pos, s, e in offsets if s < hi and e > lo]
        if inside and offsets_b and example.answer_start >= 0 and hi <= offsets[-1][2]:
            start, end = inside[0], inside[-1]
    full_ids = ids + [PAD_ID] * padding
    return EncodedExample(
        input_ids=full_ids,
        attention_mask=[1] * n_real + [0] * padding,
        segment=segment + [-1] * padding,
        truncated=keep_a + keep_b < total,
        start=start,
        end=end,
        context_offsets=offsets,
    )


def tokens_of(tokenizer: Any, encoded: EncodedExample) -> list[str]:
    """The word pieces an encoded example shows the model, "[PAD]" for padding (for display)."""
    from gmlp_core.data.tokenizer import UNK

    return [tokenizer.id_to_token(i) or UNK for i in encoded.input_ids]


# ---- span metrics (SQuAD's) -------------------------------------------------------------------------------
def _normalize_answer(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, words split on white space."""
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return [w for w in text.split() if w not in ("a", "an", "the")]


def exact_match(prediction: str, answer: str) -> float:
    return float(_normalize_answer(prediction) == _normalize_answer(answer))


def f1_score(prediction: str, answer: str) -> float:
    """Word-overlap F1 between the predicted and the true answer (SQuAD's)."""
    pred, gold = _normalize_answer(prediction), _normalize_answer(answer)
    if not pred or not gold:
        return float(pred == gold)
    common = sum(min(pred.count(w), gold.count(w)) for w in set(pred) & set(gold))
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)

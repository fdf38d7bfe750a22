"""Hostile text planted in every field a checkpoint root can hold (issue #38): the sub-folder opened by the URL,
checkpoint names, tokenizer vocabularies, vision class names, metrics, training-log keys and sweep CSVs. Every page
is walked with it, and none of it may render as markup: no image, link or bold text from it in any markdown-capable
element (body, label, help, caption, option), and no tag from it in any plotly figure. And a tokenizer whose cost
is out of bounds is refused when loaded, or fails with a message inside the page's error guard."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from app_helpers import PAGES, assert_ok, start, texts
from streamlit.testing.v1 import AppTest

from dashboard import plots, widgets
from dashboard.style import escape_label, escape_markdown
from gmlp_core.checkpoints import TYPED_TEXT_CHARS, TYPED_TEXT_SECONDS, CheckpointError, load_tokenizer
from gmlp_core.data.tokenizer import SPECIAL_TOKENS, TokenizerFailure, encode_for_model

pytestmark = pytest.mark.timeout(600)

# Each form holds a marker ("pwn...") so a check can tell planted text from the app's own markup.
FORMS = (
    "![pwnimg{i}](https://pwn.example/{i}.png)",
    "[pwnlink{i}](https://pwn.example/{i})",
    "**pwnbold{i}**",
    '<a href="https://pwn.example/{i}">pwnhtml{i}</a>',
    "<b>pwnb{i}</b>",
    "pwnspan{i}` ![pwnimg{i}](https://pwn.example/c{i}.png) **pwnbold{i}**",  # ends a code span around it
    "%{{customdata}}<i>pwni{i}</i>",
)
# File names cannot hold "/": the same markup with a relative or encoded target (still a fetch, a link, bold).
FOLDER = "x` ![pwnimg](https:pwn.example%2Ff.png) [pwnlink](https:pwn.example) **pwnbold** <b>pwnb</b> <a href=x> `y"
NAMES = {  # hostile name -> the tiny checkpoint it is a copy of
    f"{FORMS[k % len(FORMS)].format(i=k).replace('/', '%2F')} {source}": source
    for k, source in enumerate(
        ["mlm-gmlp", "mlm-amlp", "mlm-transformer", "vision-gmlp", "vision-amlp", "vision-transformer"]
        + ["match-gmlp", "match-amlp", "match-transformer", "canvas-gmlp"]
    )
}


def planted(i: int) -> str:
    return FORMS[i % len(FORMS)].format(i=i)


def _hostile_tokenizer(path: Path) -> None:
    """Every word piece of ``path`` renamed to planted text (an added token too, so typing it reads that piece)."""
    data = json.loads(path.read_text())
    vocab = data["model"]["vocab"]
    renamed = {tok if i < len(SPECIAL_TOKENS) else planted(i): i for tok, i in vocab.items()}
    data["model"]["vocab"] = renamed
    data["added_tokens"] += [
        dict(id=i, content=t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=False)
        for t, i in renamed.items()
        if i >= len(SPECIAL_TOKENS)
    ]
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def hostile_root(lens_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root whose sub-folder ``FOLDER`` holds the tiny zoo under hostile names, with planted vocabularies, class
    names, metrics, log keys and a sweep CSV."""
    root = tmp_path_factory.mktemp("hostile") / "root"
    folder = root / FOLDER
    for name, source in NAMES.items():
        target = folder / name
        shutil.copytree(lens_root / source, target)
        if (target / "tokenizer.json").is_file():
            _hostile_tokenizer(target / "tokenizer.json")
        config = json.loads((target / "config.json").read_text())
        config["name"], config["extra"]["data"] = planted(10), planted(11)
        if config["task"] == "vision":
            config["extra"]["class_names"] = [planted(100 + c) for c in range(config["num_classes"])]
        (target / "config.json").write_text(json.dumps(config))
        metrics = json.loads((target / "metrics.json").read_text())
        (target / "metrics.json").write_text(json.dumps(metrics | {"data": planted(1), "cloze": planted(2)}))
        log = target / "metrics.jsonl"
        lines = log.read_text().splitlines() if log.is_file() else ['{"step": 0, "loss": 3.0}']
        rows = [json.loads(line) | {planted(3): 1.0, planted(4): "x"} for line in lines]
        log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sweep = pd.read_csv(lens_root / "sweeps" / "sweep_tiny.csv")
    sweep["name"] = [planted(200 + k) for k in range(len(sweep))]
    (folder / "sweeps").mkdir()
    sweep.to_csv(folder / "sweeps" / f"{planted(5)[:60].replace('/', '%2F')}.csv", index=False)
    return root


# ------------------------------------------------------------------------------------------------
# What "renders" means


_ESCAPED = re.compile(r"\\[!-/:-@\[-`{-~]")
# After escapes and code spans are taken out: markup that draws an image, a link, bold text or HTML from planted
# text, or a bare URL GitHub-flavoured markdown would turn into a link. (The app's own bold around an escaped name
# is no finding: only planted delimiters, "**pwnbold..**", count.)
_ACTIVE = re.compile(r"!\[|\]\(|\*\*pwnbold\d*\*\*|<\s*/?\s*(a|b|i|img|strong|em|span)\b|pwn\.example|:[a-z]+\[", re.I)
_TAG = re.compile(r"<\s*/?\s*([a-zA-Z]+)[^<>]*>")
_PLOTLY_TAGS = {"br", "extra"}  # the only markup builders add themselves


def active_markdown(source: str) -> list[str]:
    """What in markdown ``source`` would render as markup: backslash escapes and code spans are literal text, and
    a code span ends at the next run of as many backticks (so a backtick in planted text can break out of one)."""
    text = _ESCAPED.sub("\u2022", source)  # a character that is not markup, nor part of a word
    out, i = [], 0
    while i < len(text):
        if text[i] == "`":
            run = len(text[i:]) - len(text[i:].lstrip("`"))
            close = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(text, i + run)
            if close:
                out.append(" code ")
                i = close.end()
                continue
            out.append("\u2022" * run)  # no closing run: the backticks are literal
            i += run
            continue
        out.append(text[i])
        i += 1
    return [m.group(0) for m in _ACTIVE.finditer("".join(out))]


# Proto fields shown as markdown: every widget's label and help, bodies, captions, metric values, button-group
# options, radio options (a selectbox's options, a text box's value and table cells are plain text).
_MARKDOWN_FIELDS = {"body", "label", "help", "caption", "text", "delta", "content", "title"}
_PLAIN_TYPES = {"Text", "Code", "Json", "Arrow", "ArrowTable"}


def _strings(message: object, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(message type, field path, value) of every string in a proto message, recursively."""
    kind = type(message).__name__
    for field, value in message.ListFields():  # type: ignore[attr-defined]
        where = f"{path}.{field.name}"
        values = value if hasattr(value, "extend") else [value]  # a repeated field, or one value
        for v in values:
            if isinstance(v, str):
                yield kind, where, v
            elif hasattr(v, "ListFields"):
                yield from _strings(v, where)


def _json_strings(value: object) -> Iterator[str]:
    """Every string in decoded JSON (a figure's spec), keys left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _json_strings(v)


def _nodes(node: object) -> Iterator[object]:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def rendered_markup(at: AppTest) -> list[str]:
    """Every place on the page where planted (or any) text would render as markup: markdown-capable fields of every
    element and block, and tags other than the builders' own in every plotly figure's labels."""
    found = []
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        if getattr(node, "type", None) == "plotly_chart":
            for value in _json_strings(json.loads(proto.spec)):  # decoded: "<" arrives as \u003c
                bad = [m.group(0) for m in _TAG.finditer(value) if m.group(1).lower() not in _PLOTLY_TAGS]
                found += [f"plotly: {tag} in {value[:120]!r}" for tag in bad]
            continue
        for kind, field, value in _strings(proto):
            name = field.rsplit(".", 1)[-1]
            is_option = name == "options" and kind == "Radio"
            if kind in _PLAIN_TYPES or not (name in _MARKDOWN_FIELDS or is_option):
                continue
            found += [f"{kind}{field}: {hit!r} in {value[:160]!r}" for hit in active_markdown(value)]
    return found


def test_the_checks_see_markup_that_renders_and_not_escaped_text() -> None:
    for i in range(len(FORMS)):
        assert active_markdown(planted(i)), planted(i)
        in_span = active_markdown(f"caption `{planted(i)}` more")
        assert bool(in_span) == ("`" in planted(i)), "a code span is literal, unless planted backticks end it"
        assert not active_markdown(escape_markdown(planted(i))), escape_markdown(planted(i))
    assert active_markdown(f"Root: `{FOLDER}`") and not active_markdown(f"Root: {escape_markdown(FOLDER)}")
    assert not active_markdown("explaining ``  **pwnbold**  `` and **Explain**")  # a span that holds
    assert not active_markdown(f"**{escape_markdown(planted(2))}** (gMLP)")  # the app's bold around escaped text
    assert _TAG.search(planted(3)) and not _TAG.search(escape_label(planted(3)))
    assert "%{" not in escape_label(planted(6))


# ------------------------------------------------------------------------------------------------
# Every figure builder


P = '<a href="https://pwn.example">pwnhtml</a> <b>pwnb</b> <i>pwni</i> %{customdata} &lt;u&gt;pwnent'


def _builder_figures() -> dict[str, list[go.Figure]]:
    """Every public builder of ``dashboard.plots``, planted text in every string it takes (names, tokens, titles,
    class labels, column names, group values)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 5))
    toks = [f"{P}{i}" for i in range(5)]
    cols = {"x": f"{P} x", "y": f"{P} y", "base": f"{P} base"}
    lines = pd.DataFrame({cols["x"]: range(4), cols["y"]: rng.random(4), cols["base"]: rng.random(4)})
    log = pd.DataFrame(
        {"name": [f"{P} a"] * 3 + [f"{P} b"] * 3, "arch": ["gmlp"] * 3 + [P] * 3, "step": [0, 1, 2] * 2}
        | {"loss": rng.random(6) + 1}
    )
    sweep = pd.DataFrame(
        {"arch": [P] * 4 + ["gmlp"] * 4, "name": [f"{P}{i}" for i in range(8)], "n": [1e3, 1e4, 1e5, 1e6] * 2}
        | {"loss": rng.random(8) + 1}
    )
    fits = pd.DataFrame({"arch": [P, "gmlp"], "alpha": [0.1, 0.2], "alpha_err": [0.01, np.nan], "label": [P, "ours"]})
    paper = pd.DataFrame(
        {"model": [f"{P}-base", f"{P}-large"], "shape": [P, P], "source": [P, P], "series": [P, P]}
        | {"arch": ["gmlp", P], "verified": [False, True], "published_params_m": [1.0, 2.0], "val_ppl": [3.0, 4.0]}
        | {"non_embedding_params": [1e8, 3e8]}
    )
    ablation = pd.DataFrame({"variant": [P, f"{P}2"], "val_ppl": [10.0, 12.0], "arch": ["gmlp", P]})
    ablation["paper_ppl"] = [4.0, 5.0]
    knock = pd.DataFrame({"unit": [P, f"{P}2"], "value": [1.0, 2.0], "kind": ["w-off", "heads-off"]})
    knock = knock.assign(metric="val_ppl", unedited=1.5)
    band = pd.DataFrame({"layer": [P, P, f"{P}2", f"{P}2"], "k": [1, 2, 1, 2], "value": [1.0, 2.0, 3.0, 4.0]})
    band = band.assign(metric="val_accuracy", unedited=2.5)
    study = pd.DataFrame(
        {"source": [P, P, "mlm-gmlp"], "arch": ["gmlp"] * 3, "task": [P, P, P], "init": ["pretrained"] * 3}
        | {"seed": [0, 1, 0], "test_metric": [0.5, 0.6, 0.7]}
    )
    curve = pd.Series([3.0, 2.0, 1.0], index=[0, 5, 10], name=P)
    return {
        "panel": [plots.panel(z, toks, toks, title=P, value=P, x_title=P, y_title=P)],
        "matrix": [plots.matrix(z, toks, title=P, value=P)],
        "matrices": plots.matrices([z, z], [P, f"{P} {P} {P} {P}"], toks, value=P),
        "gate": [plots.gate(z + 1, toks, title=P)],
        "row_profiles": [plots.row_profiles(z, 2, toks, title=P)],
        "layer_lines": [
            plots.layer_lines(lines, cols["x"], [cols["y"]], title=P, y_title=P, baselines={cols["y"]: cols["base"]})
        ],
        "image_grid": [plots.image_grid([z, z], [P, f"{P}2"], value=P), plots.image_grid([z], [P], value=P)],
        "digit": [plots.digit(np.clip(z, 0, 1), title=P)],
        "probabilities": [plots.probabilities(pd.DataFrame({P: toks, "probability": rng.random(5)}), P, title=P)],
        "token_scores": [plots.token_scores(toks, rng.normal(size=5), title=P, value=P)],
        "curves": [
            plots.curves(log, "step", "loss", title=P, x_title=P, y_title=P),
            plots.curves(log, "step", "missing", title=P, y_title=P),
        ],
        "scaling": [plots.scaling(sweep, fits, "n", "loss", curve=lambda r, xs: xs * 0 + 1.0, title=P)],
        "scaling_paper": [plots.scaling_paper(paper, "non_embedding_params", "val_ppl", title=P)],
        "slopes": [plots.slopes(fits, title=P)],
        "ablation": [plots.ablation(ablation, 3.0)],
        "knockouts": [plots.knockouts(knock)],
        "band_sweep": [plots.band_sweep(band)],
        "snapshot_animation": [
            plots.snapshot_animation([z, z * 2], [0, 10], [P, f"{P}2"], start=1, position=2, curve=curve, curve_label=P)
        ],
        "finetune_study": [plots.finetune_study(study, {P: f"{P}\n{P}"}, {P: P}, title=P)],
    }


def test_every_figure_builder_draws_the_text_it_is_given_as_text() -> None:
    public = {n for n, f in vars(plots).items() if hasattr(f, "uncached")}
    built = _builder_figures()
    assert public <= set(built), f"builders without a planted-text check: {public - set(built)}"
    for name, figs in built.items():
        strings = [s for fig in figs for s in _json_strings(json.loads(fig.to_json()))]
        tags = {m.group(0) for s in strings for m in _TAG.finditer(s) if m.group(1).lower() not in _PLOTLY_TAGS}
        assert not tags, (name, tags)
        assert any("pwnhtml" in s for s in strings), f"{name}: the planted text is not in the figure at all"
        assert not any("%{customdata} &amp;lt;u" in s for s in strings), f"{name}: planted text became a template"
        assert not any("&lt;u&gt;pwnent" in s for s in strings), f"{name}: '&' left as it was: an entity decodes"


# ------------------------------------------------------------------------------------------------
# Every page


def _planted_in_charts(at: AppTest) -> bool:
    """Whether planted text reached a chart (as text): the check of the charts checked something."""
    return any("pwn" in json.dumps(json.loads(c.proto.spec)) for c in at.get("plotly_chart"))


def _typed(i: int, mask: bool = True) -> str:
    return f"{planted(i)} {'[MASK] ' if mask else ''}{planted(i + 1)} {planted(i + 2)}"


def _drive(at: AppTest, page: str) -> None:
    """Put planted text through the page's own inputs, and press what computes the rest."""
    if page == "inference":
        at.text_area(key="fill-text").set_value(_typed(7)).run()
    elif page == "w_vs_attention":
        at.text_input(key="wva-text").set_value(_typed(7, mask=False)).run()
    elif page == "attributions":
        at.text_input(key="attr-text").set_value(_typed(7)).run()
        at.button(key="attr-run").click().run()
        assert_ok(at)
        assert rendered_markup(at) == [] and _planted_in_charts(at)
        at.segmented_control(key="attr-task").set_value("vision").run()
        at.button(key="attr-run").click().run()
    elif page == "scaling":  # the planted sweep, not the repository's own
        source = at.selectbox(key="scaling-source")
        source.set_value(next(o for o in source.options if "pwn" in o)).run()
    elif page == "attention_matters":
        at.text_area(key="am-a").set_value(_typed(7, mask=False)).run()
        at.text_area(key="am-b").set_value(_typed(8, mask=False)).run()


@pytest.mark.parametrize("page", list(PAGES))
def test_planted_text_renders_as_text_on_every_page(
    hostile_root: Path, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(hostile_root))
    at = start(page, {"folder": FOLDER, "models": ",".join(NAMES)})
    assert not [e.value for e in at.sidebar.error], "the planted folder is opened, not refused"
    assert rendered_markup(at) == []
    _drive(at, page)
    assert_ok(at)
    assert rendered_markup(at) == []
    if page in ("inference", "w_vs_attention", "attention_matters", "scaling", "training"):
        assert _planted_in_charts(at), page


# ------------------------------------------------------------------------------------------------
# Tokenizers: cost bounded at load, failures inside the page's guard


def _wordpiece(path: Path, **settings: object) -> Path:
    """A tokenizer.json of one WordPiece model whose words of "a" are read a piece per character (the worst case)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)} | {"a": 5, "##a": 6, "b": 7, "##b": 8}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    data = json.loads(tok.to_str())
    data["model"] |= settings
    path.mkdir(parents=True, exist_ok=True)
    (path / "tokenizer.json").write_text(json.dumps(data))
    return path


def test_a_tokenizer_too_slow_on_its_longest_words_is_refused_at_load(tmp_path: Path) -> None:
    start_ = time.perf_counter()
    for limit in (3999, 100_000):
        with pytest.raises(CheckpointError, match="too slow to serve") as err:
            load_tokenizer(_wordpiece(tmp_path / str(limit), max_input_chars_per_word=limit))
        assert "max_input_chars_per_word" in str(err.value) and "typed characters" in str(err.value)
    assert time.perf_counter() - start_ < 10, "the probe stops at the first length over the limit"
    fast = load_tokenizer(_wordpiece(tmp_path / "bert", max_input_chars_per_word=100))
    # what the probe promises: the worst typed text the dashboard passes (its window) within the limit
    worst = " ".join(["a" * 100] * (TYPED_TEXT_CHARS // 101))
    assert len(worst) <= widgets.TEXT_WINDOW == TYPED_TEXT_CHARS
    start_ = time.perf_counter()
    encode_for_model(fast, worst, 64)
    assert time.perf_counter() - start_ < TYPED_TEXT_SECONDS


def test_a_typed_word_is_cut_to_the_window_before_it_is_encoded(
    lens_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gmlp_core.inference as inference

    seen = []
    real = inference.encode_ids
    monkeypatch.setattr(inference, "encode_ids", lambda tok, text: seen.append(len(text)) or real(tok, text))
    monkeypatch.setenv("GMLP_LENS_ROOT", str(lens_root))
    at = start("attributions", {"models": "mlm-gmlp"})
    at.text_input(key="attr-word").set_value("a" * (3 * TYPED_TEXT_CHARS)).run()
    assert_ok(at)
    assert seen and max(seen) <= TYPED_TEXT_CHARS


PANIC_TEXT = "x" * 40  # the planted normalizer's regex runs past its backtracking limit on this: a Rust panic


@pytest.fixture(scope="module")
def panicky_root(lens_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny MLM and pair models with a normalizer regex that passes the load probe and panics on
    ``PANIC_TEXT``."""
    root = tmp_path_factory.mktemp("panicky")
    for name in ("mlm-gmlp", "mlm-amlp", "mlm-transformer", "match-gmlp", "match-transformer"):
        shutil.copytree(lens_root / name, root / name)
        path = root / name / "tokenizer.json"
        data = json.loads(path.read_text())
        replace = {"type": "Replace", "pattern": {"Regex": "(x+x+)+y"}, "content": "z"}
        data["normalizer"] = {"type": "Sequence", "normalizers": [replace, data["normalizer"]]}
        path.write_text(json.dumps(data))
    return root


def test_a_tokenizer_that_fails_on_typed_text_gets_a_message(panicky_root: Path) -> None:
    tok = load_tokenizer(panicky_root / "mlm-gmlp")  # passes the probe
    with pytest.raises(TokenizerFailure, match="tokenizer fails on this text"):
        encode_for_model(tok, f"a {PANIC_TEXT} [MASK]", 64)


# Every page with a text box: the box, the buttons that compute, the key prefix of the charts of its input.
TEXT_PAGES = [
    ("inference", "fill-text", (), "fill-"),
    ("w_vs_attention", "wva-text", (), "wva-"),
    ("attributions", "attr-text", ("attr-run",), "attr-"),
    ("interventions", "iv-text", (), "iv-w"),
    ("attention_matters", "am-a", (), "am-maps"),
]


def _box(at: AppTest, key: str) -> object:
    return at.text_area(key=key) if key in ("fill-text", "am-a") else at.text_input(key=key)


def _charts(at: AppTest, prefix: str) -> list[object]:
    return [c for c in at.get("plotly_chart") if f"-{prefix}" in c.proto.id]


@pytest.mark.parametrize(("page", "key", "clicks", "charts"), TEXT_PAGES)
def test_a_tokenizer_failure_is_a_message_and_the_page_serves_on(
    panicky_root: Path, monkeypatch: pytest.MonkeyPatch, page: str, key: str, clicks: tuple[str, ...], charts: str
) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(panicky_root))
    at = start(page, {"models": "mlm-gmlp,mlm-amlp,mlm-transformer,match-gmlp,match-transformer"})
    good = "the value of the [MASK] is returned by the function ."
    _box(at, key).set_value(good).run()
    for button in clicks:
        at.button(key=button).click().run()
    assert_ok(at)
    assert _charts(at, charts), "the page draws its charts for a text the tokenizer reads"
    _box(at, key).set_value(f"the {PANIC_TEXT} [MASK] is here .").run()
    assert_ok(at)  # no exception box, no "unexpected error", no dead session
    errors = " ".join(e.value for e in at.error)
    assert "tokenizer fails on this text" in errors, errors
    assert not _charts(at, charts), "no chart of the earlier text is left on the page"
    _box(at, key).set_value(good.replace("value", "result")).run()
    for button in clicks:
        at.button(key=button).click().run()
    assert_ok(at)
    assert _charts(at, charts) and "tokenizer fails" not in texts(at), "the same session serves the next text"


def test_planted_text_renders_as_text_in_lecture_mode(hostile_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GMLP_LENS_ROOT", str(hostile_root))
    at = start("overview", {"folder": FOLDER, "models": ",".join(NAMES), "lecture": "1"})
    assert "pwn" in texts(at), "the lecture's messages name the planted folder"
    assert rendered_markup(at) == []

"""Finetuning: the built-in tasks' construction, encoding, heads, the finetune command and eval, hub columns."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import tiny_finetune_config, tiny_train_config

from gmlp_core import load_checkpoint
from gmlp_core.checkpoints import CheckpointError, save_checkpoint
from gmlp_core.cli import main
from gmlp_core.data.finetune import (
    BUILT_IN_FINETUNE_TASKS,
    FINETUNE_TASKS,
    Example,
    docs_sentences,
    encode_example,
    exact_match,
    f1_score,
    load_task_splits,
)
from gmlp_core.data.text import python_docs_corpus
from gmlp_core.data.tokenizer import CLS_ID, PAD_ID, SEP_ID, train_tokenizer
from gmlp_core.evaluate import evaluate_checkpoint
from gmlp_core.models import build_model, preset
from gmlp_core.models.archs import ARCHS
from gmlp_core.train import train
from gmlp_core.train.finetune import HEAD_PREFIXES

PAIR_TASKS = [name for name in BUILT_IN_FINETUNE_TASKS if FINETUNE_TASKS[name].pair and FINETUNE_TASKS[name].labels]


# ---- the built-in tasks ---------------------------------------------------------------------------------
def test_every_registered_task_names_a_head_the_models_have() -> None:
    for task in FINETUNE_TASKS.values():
        cfg = preset("gmlp-tiny-mlm", task=task.head, num_classes=max(2, task.num_classes))
        assert cfg.is_text and not cfg.spec.fill_mask
        assert (task.head == "span") == (not task.labels)


@pytest.mark.parametrize("name", BUILT_IN_FINETUNE_TASKS)
def test_built_in_tasks_are_deterministic_balanced_and_keep_mlm_validation_out_of_training(name: str) -> None:
    splits = load_task_splits(name)
    assert len(splits.train) >= 3000 and len(splits.validation) >= 300 and len(splits.test) >= 400
    # No sentence of the MLM validation paragraphs is in a training example; the test split is made of them.
    validation_text = " ".join(" ".join(p.split()) for p in python_docs_corpus().validation)
    for example in splits.train[:500]:
        sentence = example.text_b if FINETUNE_TASKS[name].head == "span" else example.text_a
        if sentence in docs_sentences(30, 200)["train"]:  # an unedited sentence (not a replaced or swapped one)
            assert " ".join(sentence.split()) not in validation_text
    assert set(splits.train).isdisjoint(splits.test) and set(splits.train).isdisjoint(splits.validation)
    if FINETUNE_TASKS[name].labels:
        for split in (splits.train, splits.test):
            counts = Counter(e.label for e in split)
            assert abs(counts[0] - counts[1]) <= 0.02 * len(split), counts
    # Rebuilt from scratch, the same examples (no hash order, no clock).
    assert FINETUNE_TASKS[name].build(None).test == splits.test


@pytest.mark.parametrize("name", PAIR_TASKS)
def test_pair_tasks_give_nothing_to_one_segment_or_to_a_bag_of_words(name: str) -> None:
    """Each segment on its own, and the words of both segments together, are distributed alike in both classes:
    only comparing A with B can answer."""
    for split in ("train", "test"):
        examples = load_task_splits(name).split(split)
        by_class = {c: [e for e in examples if e.label == c] for c in (0, 1)}
        for segment in ("text_a", "text_b"):
            seen = [Counter(getattr(e, segment) for e in by_class[c]) for c in (0, 1)]
            shared = sum((seen[0] & seen[1]).values())
            assert shared >= 0.95 * min(len(by_class[0]), len(by_class[1])), (segment, shared)
        bags = [Counter(w for e in by_class[c] for w in f"{e.text_a} {e.text_b}".lower().split()) for c in (0, 1)]
        overlap = sum((bags[0] & bags[1]).values()) / max(sum(bags[0].values()), sum(bags[1].values()))
        assert overlap > 0.97


def test_span_answers_are_where_they_say_and_the_question_points_at_them() -> None:
    splits = load_task_splits("docs-span")
    for e in splits.test:
        assert e.text_b[e.answer_start : e.answer_start + len(e.answer)] == e.answer
        assert "what" in e.text_a.split() and e.answer not in e.text_a.split()


def test_splits_come_from_disjoint_sentences() -> None:
    sentences = docs_sentences(30, 200)
    assert set(sentences["train"]).isdisjoint(sentences["validation"])
    assert set(sentences["train"]).isdisjoint(sentences["test"])


# ---- encoding -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(python_docs_corpus().train[:400], 600)


def test_pairs_are_cls_a_sep_b_sep_and_truncate_the_longer_segment_first(tokenizer) -> None:
    short, long = "the parser reads a line.", " ".join(["the handler writes every line of the file."] * 6)
    enc = encode_example(tokenizer, Example(short, long), 32)
    ids = enc.input_ids
    assert ids[0] == CLS_ID and ids.count(SEP_ID) == 2 and len(ids) == 32 and PAD_ID not in ids
    n_short = len(tokenizer.encode(short, add_special_tokens=False).ids)
    assert ids[n_short + 1] == SEP_ID, "A is kept whole: B was the longer one"
    assert (
        enc.truncated and enc.segment[: n_short + 2] == [0] * (n_short + 2) and set(enc.segment[n_short + 2 :]) == {1}
    )
    single = encode_example(tokenizer, Example(short), 32)
    assert single.input_ids.count(SEP_ID) == 1 and single.attention_mask.count(1) == n_short + 2
    assert not single.truncated and single.segment[-1] == -1


def test_span_positions_decode_to_the_answer_and_a_truncated_answer_is_marked(tokenizer) -> None:
    context = "The break statement is used to leave a loop early, and continue skips to the next pass."
    example = Example("used to leave a what early?", context, answer="loop", answer_start=context.index("loop"))
    enc = encode_example(tokenizer, example, 48, span=True)
    assert tokenizer.decode(enc.input_ids[enc.start : enc.end + 1]).replace(" ", "") == "loop"
    assert enc.segment[enc.start] == 1
    late = Example("what?", context, answer="pass", answer_start=context.index("pass"))
    cut = encode_example(tokenizer, late, 12, span=True)
    assert cut.truncated and cut.start == cut.end == -100


def test_squad_metrics() -> None:
    assert exact_match("The Loop.", "loop") == 1.0 and f1_score("a loop early", "loop") == pytest.approx(2 / 3)
    assert f1_score("nothing", "loop") == 0.0 and exact_match("", "loop") == 0.0


# ---- heads ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_heads_give_a_loss_that_ignores_what_it_should(arch: str) -> None:
    torch.manual_seed(0)
    ids = torch.randint(5, 60, (3, 16))
    mask = torch.ones(3, 16, dtype=torch.long)
    cls = build_model(preset(f"{arch}-tiny-mlm", task="classify", num_classes=3))
    out = cls(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 2]))
    assert out.logits.shape == (3, 3) and out.loss.item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), abs=0.3)
    span = build_model(preset(f"{arch}-tiny-mlm", task="span"))
    none = torch.full((3,), -100)
    out = span(input_ids=ids, start_positions=none, end_positions=none)
    assert out.start_logits.shape == (3, 16) and out.loss.item() == 0.0 and out.loss.requires_grad
    part = span(input_ids=ids, start_positions=torch.tensor([2, -100, 4]), end_positions=torch.tensor([3, -100, 4]))
    assert part.loss.item() > 0


def test_classifier_pools_only_the_real_tokens() -> None:
    """The pooled mean reads the positions ``attention_mask`` marks: the Transformer (whose attention masks the
    padding too) gives the same logits whatever sits in the padding."""
    model = build_model(preset("transformer-tiny-mlm", task="classify", num_classes=2)).eval()
    ids = torch.randint(5, 60, (1, 16))
    mask = torch.zeros(1, 16, dtype=torch.long)
    mask[:, :9] = 1
    other = ids.clone()
    other[:, 9:] = torch.randint(5, 60, (1, 7))
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask).logits
        b = model(input_ids=other, attention_mask=mask).logits
    torch.testing.assert_close(a, b)


# ---- the finetune command ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrained") / "mlm"
    train(tiny_train_config(out, "gmlp-tiny-mlm", data="python-docs", steps=10, eval_every=10))
    return out


def _finetune(source: Path, task: str, out: Path, steps: int = 12, **kw) -> dict:
    return train(tiny_finetune_config(source, task, out, steps=steps, **kw)).metrics


def test_finetune_copies_the_trunk_starts_a_new_head_and_records_its_source(pretrained: Path, tmp_path: Path) -> None:
    metrics = _finetune(pretrained, "docs-match", tmp_path / "ft", steps=1)
    model = load_checkpoint(tmp_path / "ft", device="cpu")
    source = load_checkpoint(pretrained, device="cpu")
    assert model.config.task == "classify" and model.config.num_classes == 2
    assert model.config.extra["finetune"]["task"] == "docs-match"
    assert model.config.extra["finetune"]["source"] == str(pretrained)
    # After one small step the trunk is still (nearly) the source's; the head is new.
    src = source.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith(HEAD_PREFIXES):
            assert key not in src or src[key].shape != value.shape
        else:
            assert torch.allclose(value, src[key], atol=2e-3), key
    for key in ("val_accuracy", "test_accuracy", "val_loss"):
        assert key in metrics


def test_finetune_trains_and_eval_reproduces_it(pretrained: Path, tmp_path: Path) -> None:
    metrics = _finetune(pretrained, "docs-span", tmp_path / "span", steps=12)
    log = [json.loads(line) for line in (tmp_path / "span" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [0, 6, 12] and log[-1]["val_loss"] < log[0]["val_loss"]
    again = evaluate_checkpoint(tmp_path / "span", device="cpu")
    assert again["val_f1"] == pytest.approx(metrics["val_f1"]) and again["test_f1"] == pytest.approx(metrics["test_f1"])
    assert 0.0 <= again["test_exact_match"] <= again["test_f1"] <= 1.0


def test_resume_reaches_the_same_weights(pretrained: Path, tmp_path: Path) -> None:
    whole = _finetune(pretrained, "docs-order", tmp_path / "whole", steps=12)
    _finetune(pretrained, "docs-order", tmp_path / "parts", steps=12, save_every=6, minutes=0.0)
    resumed = _finetune(pretrained, "docs-order", tmp_path / "parts", steps=12, resume=True)
    assert resumed["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-5)


def test_finetune_refuses_what_is_not_a_pretrained_text_model(pretrained: Path, tmp_path: Path, capsys) -> None:
    vision = tmp_path / "vision"
    save_checkpoint(build_model(preset("gmlp-tiny-vision")), vision)
    assert main(["finetune", str(vision), "--task", "docs-match", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "a vision model" in capsys.readouterr().err
    _finetune(pretrained, "docs-order", tmp_path / "ft", steps=1)
    code = main(
        ["finetune", str(tmp_path / "ft"), "--task", "docs-span", "--out", str(tmp_path / "y"), "--no-progress"]
    )
    assert code == 2 and "already finetuned for docs-order" in capsys.readouterr().err
    no_tok = tmp_path / "no-tokenizer"
    save_checkpoint(load_checkpoint(pretrained, device="cpu"), no_tok)
    assert main(["finetune", str(no_tok), "--task", "docs-order", "--out", str(tmp_path / "z"), "--no-progress"]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "config.json").exists()


def test_eval_of_a_finetuned_model_checks_its_task_and_head(pretrained: Path, tmp_path: Path, capsys) -> None:
    _finetune(pretrained, "docs-order", tmp_path / "ft", steps=1)
    assert main(["eval", str(tmp_path / "ft"), "--data", "docs-span"]) == 2
    assert "takes no --data" in capsys.readouterr().err
    # A config edited to claim another task whose head does not fit is refused with both named.
    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    cfg["extra"]["finetune"]["task"] = "docs-span"
    (tmp_path / "ft" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not fit task docs-span"):
        evaluate_checkpoint(tmp_path / "ft", device="cpu")
    with pytest.raises(CheckpointError):
        evaluate_checkpoint(tmp_path / "missing")


# ---- hub tasks, offline, in the hub's columns -------------------------------------------------------------
def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def hub_fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    sst2 = [{"sentence": f"a {words[i % 6]} film number {i}", "label": int(i % 2 == 0), "idx": i} for i in range(60)]
    mnli = [
        {"premise": f"the cat sat on mat {i}", "hypothesis": f"a cat sat {i}", "label": i % 3, "idx": i}
        for i in range(60)
    ]
    squad = []
    for i in range(60):
        context = f"The parser number {i} reads the file and calls the handler."
        squad.append(
            {
                "id": str(i),
                "title": "t",
                "context": context,
                "question": "what does the parser call?",
                "answers": {"text": ["the handler"], "answer_start": [context.index("the handler")]},
            }
        )
    out = {}
    for name, rows, valid in (
        ("sst2", sst2, "validation"),
        ("mnli", mnli, "validation_matched"),
        ("squad", squad, "validation"),
    ):
        folder = root / name
        folder.mkdir()
        _write_jsonl(folder / "train.jsonl", rows[:40])
        _write_jsonl(folder / f"{valid}.jsonl", rows[40:] + [dict(rows[0], label=-1)] * ("label" in rows[0]))
        out[name] = folder
    return out


@pytest.mark.parametrize(("task", "fixture"), [("glue:sst2", "sst2"), ("glue:mnli", "mnli"), ("squad", "squad")])
def test_hub_tasks_read_the_hubs_columns_from_local_files(
    task: str, fixture: str, hub_fixtures, pretrained, tmp_path
) -> None:
    splits = load_task_splits(task, str(hub_fixtures[fixture]))
    assert len(splits.train) == 38 and len(splits.validation) == 2 and len(splits.test) == 20, "hidden labels dropped"
    if task == "squad":
        e = splits.test[0]
        assert e.text_b[e.answer_start :].startswith(e.answer) and e.text_a.startswith("what")
    else:
        assert set(e.label for e in splits.train) == set(range(FINETUNE_TASKS[task].num_classes))
    metrics = _finetune(pretrained, task, tmp_path / "hub", steps=2, data=str(hub_fixtures[fixture]))
    assert metrics["test_examples"] == 20
    with pytest.raises(ValueError, match="pass --data"):
        evaluate_checkpoint(tmp_path / "hub", device="cpu")
    assert evaluate_checkpoint(tmp_path / "hub", data=str(hub_fixtures[fixture]), device="cpu")["test_examples"] == 20


def test_a_missing_hub_folder_gets_a_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a folder"):
        load_task_splits("glue:sst2", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="takes no data source"):
        load_task_splits("docs-order", str(tmp_path))


# ---- static attention (the study's control) -----------------------------------------------------------------
@pytest.mark.parametrize("arch", ["amlp", "transformer"])
def test_attention_averaged_over_one_input_reproduces_that_input(arch: str) -> None:
    from gmlp_core.analysis.static_attention import mean_attention, with_static_attention

    torch.manual_seed(0)
    model = build_model(preset(f"{arch}-tiny-mlm", task="classify", num_classes=2)).eval()
    ids = torch.randint(5, 60, (2, 16))
    mask = torch.ones_like(ids)
    one = {"input_ids": ids[:1], "attention_mask": mask[:1]}
    static = with_static_attention(model, mean_attention(model, [one]))
    with torch.no_grad():
        torch.testing.assert_close(static(**one).logits, model(**one).logits)
        both = {"input_ids": ids, "attention_mask": mask}
        averaged = with_static_attention(model, mean_attention(model, [both]))
        assert not torch.allclose(averaged(**both).logits, model(**both).logits), "a static map is not attention"
    assert all(getattr(m, "static_attention", None) is None for m in model.modules()), "the model is not edited"
    with pytest.raises(ValueError, match="no attention"):
        mean_attention(build_model(preset("gmlp-tiny-mlm", task="classify", num_classes=2)), [one])


# ---- the study ------------------------------------------------------------------------------------------------
def test_study_runs_in_stages_resumes_and_summarises(pretrained: Path, tmp_path: Path) -> None:
    from gmlp_core.finetune_study import RATES, run_study, summary_table
    from gmlp_core.train.finetune import FinetuneRecipe

    root = tmp_path / "root"
    (root).mkdir()
    for name, preset_name in (("mlm-gmlp", None), ("mlm-transformer", "transformer-tiny-mlm")):
        if preset_name is None:
            (root / name).symlink_to(pretrained, target_is_directory=True)
        else:
            train(tiny_train_config(root / name, preset_name, data="python-docs", steps=4, eval_every=4))
    recipe = FinetuneRecipe(steps=2, batch_size=8, warmup=1, eval_every=2)
    out, work = tmp_path / "finetune.csv", tmp_path / "work"
    kw = dict(sources=("mlm-gmlp", "mlm-transformer", "mlm-gmlp-large"), tasks=("docs-match",), recipe=recipe)
    rows = run_study("rates", root, out, work, **kw)
    assert len(rows) == 2 * len(RATES) and set(rows["init"]) == {"pretrained"} and set(rows["seed"]) == {0}
    assert rows["val_metric"].between(0, 1).all() and (rows["metric"] == "accuracy").all()
    mtime = out.stat().st_mtime_ns
    assert len(run_study("rates", root, out, work, **kw)) == len(rows) and out.stat().st_mtime_ns == mtime
    rows = run_study("seeds", root, out, work, **kw)
    rows = run_study("scratch", root, out, work, **kw)
    assert len(rows) == 2 * len(RATES) + 2 * 2 + 2 and (rows["init"] == "scratch").sum() == 2
    table = summary_table(rows)
    pre = table[table["init"] == "pretrained"]
    assert (pre["seeds"] == 3).all() and pre["test_sd"].notna().all()
    run_study("controls", root, out, work, **kw)
    controls = pd.read_csv(tmp_path / "finetune_controls.csv")
    bow = controls[controls["control"] == "bag of words"]
    assert set(bow["segments"]) == {"A+B", "A", "B"} and (bow["test_accuracy"] == 0.5).all()
    static = controls[controls["control"] != "bag of words"]
    assert set(static["arch"]) == {"transformer"} and len(static) == 3


def test_the_papers_finetuning_figures_are_flagged_and_carry_its_pattern() -> None:
    """Recorded from secondary sources, each row says which and is flagged unverified; the numbers carry the
    pattern the page states (gMLP behind BERT on MNLI at base size, closer at large, aMLP ahead of both)."""
    from gmlp_core.reference import SOURCES, paper_finetuning

    df = paper_finetuning()
    assert not df["verified"].any() and set(df["source"]) <= set(SOURCES)
    mnli = df[df["metric"] == "accuracy (matched)"].set_index("model")["value"]
    assert mnli["gMLP-base"] < mnli["BERT-base"] < mnli["aMLP-base"]
    assert mnli["BERT-base"] - mnli["gMLP-base"] > mnli["BERT-large"] - mnli["gMLP-large"] > 0
    sst2 = df[df["task"] == "sst2"].set_index("model")["value"]
    assert sst2["gMLP-large"] == 94.8 and abs(sst2["gMLP-base"] - sst2["BERT-base"]) < 1
    assert not df.duplicated(["model", "task", "metric"]).any()


def test_the_readmes_seed_tables_are_the_studys_rows() -> None:
    """Every "seeds 0 / 1 / 2 | mean +- sd" row of the README's finetuning tables is read from results/finetune.csv:
    the three seeds' test figures of one task at that source and rate, their mean and sample sd."""
    import re
    import statistics

    import pandas as pd

    repo = Path(__file__).resolve().parent.parent
    study = pd.read_csv(repo / "results" / "finetune.csv")
    study = study[study["init"] == "pretrained"]
    row = re.compile(
        r"^\| `(mlm-[\w-]+)`[^|]*\| ([\d.e-]+) \| ([\d.]+) / ([\d.]+) / ([\d.]+) \| \*\*([\d.]+) \+- ([\d.]+)\*\* \|$"
    )
    rows = [m.groups() for line in (repo / "README.md").read_text().splitlines() if (m := row.match(line))]
    assert len(rows) >= 6, "the pair task's and the single-sentence task's tables"
    for source, rate, *figures in rows:
        seeds, (mean, sd) = [float(f) for f in figures[:3]], (float(figures[3]), float(figures[4]))
        runs = study[(study["source"] == source) & (study["lr"] == float(rate)) & study["seed"].isin([0, 1, 2])]
        matches = [
            task
            for task, group in runs.groupby("task")
            if len(group) == 3 and [round(v * 100, 1) for v in group.sort_values("seed")["test_metric"]] == seeds
        ]
        assert matches, f"{source} at {rate}: {seeds} is no task's three seeds in results/finetune.csv"
        values = runs[runs["task"] == matches[0]].sort_values("seed")["test_metric"] * 100
        assert (round(statistics.mean(values), 1), round(statistics.stdev(values), 1)) == (mean, sd), source

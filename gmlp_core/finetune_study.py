"""The finetuning study: when does a static W fall short, and does aMLP's tiny attention fix it?

``python -m gmlp_core finetune-study --stage rates|seeds|scratch|control`` writes ``results/finetune.csv``, one
row a run, through ``gmlp_core.runner`` (resumable; any part of the grid may run in any process):

- ``rates``: every pretrained source (the zoo's gMLP, aMLP and Transformer, and a gMLP with over 3x the
  non-embedding parameters pretrained on the zoo's recipe, where its checkpoint exists) on every task of the
  paper's three kinds, at each of ``RATES``, seed 0;
- ``seeds``: seeds 1 and 2 at each (source, task)'s best rate on validation (test is read once, at that rate);
- ``scratch``: each source's architecture, trunk initialised afresh, one seed at the pretrained model's rate;
- ``control``: each source on ``docs-match-b`` (segment B alone, at its best docs-match rate), which must stay at
  chance.

``--stage controls`` runs what needs no training into ``results/finetune_controls.csv``: a bag-of-words
classifier on each classification task (``bag_of_words_control``), and every finetuned Transformer and aMLP of the
study with its attention averaged over the validation inputs (``static_attention_control``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gmlp_core.checkpoints import CONFIG_NAME, read_config
from gmlp_core.data.finetune import FINETUNE_TASKS
from gmlp_core.hardware import cpu_description
from gmlp_core.models import config_summary
from gmlp_core.runner import Run, read_rows, run_grid, write_rows
from gmlp_core.train import TrainConfig, TrainResult
from gmlp_core.train.finetune import FINETUNE_RECIPE, FinetuneRecipe

log = logging.getLogger(__name__)

SOURCES = ("mlm-gmlp", "mlm-amlp", "mlm-transformer", "mlm-gmlp-large")  # folders under the checkpoint root
TASKS = ("docs-order", "docs-match", "docs-span")  # single sentence, sentence pair, span
RATES = (3e-4, 1e-3, 3e-3)
SEEDS = (0, 1, 2)
STUDY_THREADS = 2  # fixed, like the zoo's: the order of every sum depends on it
STAGES = ("rates", "seeds", "scratch", "control", "controls")


def metric_of(task: str) -> str:
    """The metric a task is judged by: accuracy, or F1 for spans."""
    return FINETUNE_TASKS[task].metric


def _config(
    source: Path, task: str, lr: float, seed: int, workdir: Path, recipe: FinetuneRecipe, scratch: bool = False
) -> TrainConfig:
    name = f"{source.name}-{task}-{'scratch' if scratch else 'pre'}-lr{lr:g}-s{seed}"
    return TrainConfig(
        init_from=str(source),
        task=task,
        from_scratch=scratch,
        out=str(workdir / name),
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        lr=lr,
        warmup=recipe.warmup,
        eval_every=recipe.eval_every,
        snapshot_every=0,
        seed=seed,
        device="cpu",
        precision="fp32",
        threads=STUDY_THREADS,
        overwrite=True,
        progress=False,
    )


def _run(
    source: Path, task: str, lr: float, seed: int, workdir: Path, recipe: FinetuneRecipe, scratch: bool = False
) -> Run:
    key = (
        ("source", source.name),
        ("task", task),
        ("init", "scratch" if scratch else "pretrained"),
        ("lr", lr),
        ("seed", seed),
        ("steps", recipe.steps),
    )
    return Run(key, _config(source, task, lr, seed, workdir, recipe, scratch))


def best_rates(rows: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per (source, task): the rate with the best validation metric among the pretrained seed-0 runs."""
    out: dict[tuple[str, str], float] = {}
    if rows.empty:
        return out
    pre = rows[(rows["init"] == "pretrained") & (rows["seed"] == 0)]
    for (source, task), group in pre.groupby(["source", "task"]):
        if group["lr"].nunique() >= len(RATES):
            out[(source, task)] = float(group.loc[group["val_metric"].idxmax(), "lr"])
    return out


def study_runs(
    stage: str,
    root: Path,
    workdir: Path,
    out: Path,
    sources: tuple[str, ...],
    tasks: tuple[str, ...],
    recipe: FinetuneRecipe = FINETUNE_RECIPE,
) -> list[Run]:
    """The runs of ``stage`` for the given sources and tasks (sources whose checkpoint is missing are left out,
    with a note; ``seeds`` and ``scratch`` need the ``rates`` stage's rows first)."""
    present = []
    for name in sources:
        if (root / name / CONFIG_NAME).is_file():
            present.append(root / name)
        else:
            log.warning("no checkpoint %s under %s: left out", name, root)
    if stage == "rates":
        return [_run(s, t, lr, 0, workdir, recipe) for t in tasks for s in present for lr in RATES]
    best = best_rates(read_rows(out))
    if stage == "control":  # at the rate that served each source best on the full pair task
        return [
            _run(s, "docs-match-b", best[(s.name, "docs-match")], 0, workdir, recipe)
            for s in present
            if (s.name, "docs-match") in best
        ]
    runs = []
    for task in tasks:
        for source in present:
            lr = best.get((source.name, task))
            if lr is None:
                log.warning("%s on %s: no best rate yet (run --stage rates first)", source.name, task)
                continue
            if stage == "seeds":
                runs += [_run(source, task, lr, seed, workdir, recipe) for seed in SEEDS[1:]]
            elif stage == "scratch":
                runs.append(_run(source, task, lr, 0, workdir, recipe, scratch=True))
    return runs


def _row(run: Run, result: TrainResult, seconds: float) -> dict[str, Any]:
    m = result.metrics
    task = dict(run.key)["task"]
    metric = metric_of(task)
    cfg = read_config(result.checkpoint)
    summary = config_summary(cfg)
    return {
        "arch": cfg.arch,
        "non_embedding_params": summary["non_embedding_params"],
        "metric": metric,
        "val_metric": m[f"val_{metric}"],
        "test_metric": m[f"test_{metric}"],
        "test_exact_match": m.get("test_exact_match"),
        "seconds": round(seconds, 1),
        "device": m["device"],
        "cpu_capability": cpu_description()["cpu_capability"],
        "checkpoint": Path(run.config.out).name,
    }


def run_study(
    stage: str,
    root: Path,
    out: Path,
    workdir: Path,
    sources: tuple[str, ...] = SOURCES,
    tasks: tuple[str, ...] = TASKS,
    recipe: FinetuneRecipe = FINETUNE_RECIPE,
) -> pd.DataFrame:
    """Run ``stage`` of the study into ``out`` (rows already there are skipped) and return all rows; ``recipe``
    (the finetuning budget) is the CLI's and the study's, smaller only in tests."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    if stage == "controls":
        run_controls(out.with_name("finetune_controls.csv"), workdir, read_rows(out), tasks)
        return read_rows(out)
    unknown = sorted(set(tasks) - set(FINETUNE_TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; tasks: {', '.join(FINETUNE_TASKS)}")
    runs = study_runs(stage, root, workdir, out, sources, tasks, recipe)
    return run_grid(runs, out, _row)


def bag_of_words_control(task: str) -> pd.DataFrame:
    """A logistic regression on word counts (scikit-learn), trained on the task's training split, its test accuracy:
    on both segments together and, for a pair, on each alone; unigrams, and unigrams with bigrams."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from gmlp_core.data.finetune import load_task_splits

    splits = load_task_splits(task)
    views = {"A": lambda e: e.text_a}
    if FINETUNE_TASKS[task].pair:
        views = {"A+B": lambda e: f"{e.text_a} [SEP] {e.text_b}", **views, "B": lambda e: e.text_b or ""}
    rows = []
    for view, text in views.items():
        for ngrams in ((1, 1), (1, 2)):
            vectorizer = CountVectorizer(ngram_range=ngrams, token_pattern=r"[^\s]+", lowercase=True)
            x_train = vectorizer.fit_transform([text(e) for e in splits.train])
            classifier = LogisticRegression(max_iter=2000).fit(x_train, [e.label for e in splits.train])
            accuracy = classifier.score(
                vectorizer.transform([text(e) for e in splits.test]), [e.label for e in splits.test]
            )
            rows.append(
                {
                    "task": task,
                    "control": "bag of words",
                    "segments": view,
                    "features": "unigrams" if ngrams == (1, 1) else "unigrams+bigrams",
                    "test_accuracy": accuracy,
                }
            )
    return pd.DataFrame(rows)


def static_attention_control(checkpoint: Path) -> dict[str, Any]:
    """A finetuned Transformer's or aMLP's test accuracy with its attention as it is and with every head replaced
    by its mean over the validation inputs (``gmlp_core.analysis.static_attention``)."""
    from gmlp_core.analysis.static_attention import mean_attention, with_static_attention
    from gmlp_core.checkpoints import load_checkpoint, load_tokenizer
    from gmlp_core.train.data import FinetuneData
    from gmlp_core.train.finetune import recorded_task

    model = load_checkpoint(checkpoint, device="cpu")
    task = recorded_task(model.config)
    data = FinetuneData.build(task.name, load_tokenizer(checkpoint), model.config.seq_len)
    validation = data.splits["validation"]
    batches = (
        validation.batch(torch.arange(i, min(i + 256, len(validation.examples))), data.span)
        for i in range(0, len(validation.examples), 256)
    )
    static = with_static_attention(model, mean_attention(model, batches))
    metric = metric_of(task.name)
    return {
        "checkpoint": checkpoint.name,
        "arch": model.config.arch,
        "task": task.name,
        "control": "attention averaged over validation inputs",
        "test_metric": data.evaluate(model, "test")[f"test_{metric}"],
        "test_metric_static": data.evaluate(static, "test")[f"test_{metric}"],
    }


def run_controls(out: Path, workdir: Path, rows: pd.DataFrame, tasks: tuple[str, ...] = TASKS) -> pd.DataFrame:
    """The controls that need no training, into ``out``: bag of words on every classification task, and static
    attention on every finetuned Transformer and aMLP of the study at its chosen rate."""
    frames = [bag_of_words_control(t) for t in tasks if FINETUNE_TASKS[t].labels]
    best = best_rates(rows)
    static = []
    for r in rows.itertuples():
        chosen = r.init == "pretrained" and best.get((r.source, r.task)) == r.lr
        folder = workdir / r.checkpoint
        if chosen and r.task in tasks and folder.is_dir() and read_config(folder).has_attention:
            static.append(static_attention_control(folder) | {"source": r.source, "seed": r.seed})
    frames.append(pd.DataFrame(static))
    table = pd.concat(frames, ignore_index=True)
    write_rows(out, table)
    return table


def chosen_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """The runs the study reports: every seed at each (source, task)'s chosen rate, and the runs from scratch
    (whose test metric was read once, at that rate); the other rates only served to choose it."""
    if rows.empty:
        return rows
    best = best_rates(rows)
    keep = [(r.init == "scratch") or best.get((r.source, r.task)) == r.lr for r in rows.itertuples()]
    return rows[keep].reset_index(drop=True)


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of the test metric per (source, task, init) over seeds, at the chosen rate."""
    if rows.empty:
        return rows
    chosen = chosen_runs(rows)
    grouped = chosen.groupby(["source", "task", "init"])["test_metric"]
    table = grouped.agg(["mean", "std", "count"]).reset_index()
    return table.rename(columns={"mean": "test_mean", "std": "test_sd", "count": "seeds"})

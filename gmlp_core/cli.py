"""Command line: ``python -m gmlp_core {train,finetune,eval,probe,presets,convert,import,zoo,sweep} ...``.

Each subcommand is a (name, help, add_arguments, run) entry in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        out[key.strip()] = _parse_value(value)
    return out


def _precision_arg(p: argparse.ArgumentParser, default: str | None, help_text: str) -> None:
    from gmlp_core.hardware import PRECISIONS

    p.add_argument("--precision", default=default, choices=PRECISIONS, help=help_text)


# ---- train ----------------------------------------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    from gmlp_core.train import TrainConfig

    d = TrainConfig(preset="-")  # every default below is TrainConfig's own (written once, there)
    p.add_argument("--preset", required=True, help="a preset name (see `presets`)")
    p.add_argument(
        "--data",
        default=None,
        help="embedded | python-docs | NAME[:CONFIG] (hub) | local file/folder; vision: digits | digits-canvas | hub | folder",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {d.steps})")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock budget; the schedule assumes --steps")
    p.add_argument("--out", default=None, help="output checkpoint folder (default runs/PRESET)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/trainer_state")
    p.add_argument("--overwrite", action="store_true", help="replace a different model already in OUT")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per-process batch (global = processes x this)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument(
        "--save-every", type=int, default=d.save_every, help="save a resumable state every N steps (0: end only)"
    )
    p.add_argument("--snapshot-every", type=int, default=d.snapshot_every, help="W snapshot interval (0: none)")
    p.add_argument("--device", default=d.device, help="auto (CUDA if available) | cpu | cuda | cuda:1")
    p.add_argument("--dtype", default=d.dtype, choices=["float32", "float16", "bfloat16"], help="stored weights")
    _precision_arg(
        p,
        d.precision,
        "training steps' precision: auto = bf16 autocast where bf16 matrix products measure at least 1.25x faster "
        "than fp32 at this run's shapes (measured once per machine; metrics.json records it)",
    )
    p.add_argument(
        "--short-fraction", type=float, default=d.short_fraction, help="MLM: share of rows cut short and padded"
    )
    p.add_argument(
        "--mask-prob",
        type=float,
        default=d.mask_prob,
        help=f"MLM: share of each training row's tokens predicted (validation: {d.mask_prob})",
    )
    p.add_argument("--val-windows", type=int, default=d.val_windows, help="MLM: validation windows scored (at most)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides")
    p.add_argument("--no-progress", action="store_true")


def _run_fields(a: argparse.Namespace) -> dict[str, Any]:
    """The ``TrainConfig`` fields ``train`` and ``finetune`` take from the same options."""
    return dict(
        data=a.data,
        batch_size=a.batch_size,
        warmup=a.warmup,
        seed=a.seed,
        eval_every=a.eval_every,
        save_every=a.save_every,
        device=a.device,
        resume=a.resume,
        overwrite=a.overwrite,
        dtype=a.dtype,
        precision=a.precision,
        progress=not a.no_progress and sys.stderr.isatty(),
    )


def _train_and_print(cfg: Any) -> int:
    from gmlp_core.train import train

    result = train(cfg)
    if result.metrics:
        print(json.dumps({"checkpoint": str(result.checkpoint), **result.metrics}, indent=2))
    return 0


def _train_run(a: argparse.Namespace) -> int:
    from gmlp_core.train import TrainConfig

    steps = a.steps if a.steps is not None else (10**9 if a.minutes else 1000)
    cfg = TrainConfig(
        preset=a.preset,
        out=a.out or f"runs/{a.preset}",
        overrides=_overrides(a.set),
        steps=steps,
        minutes=a.minutes,
        lr=a.lr,
        weight_decay=a.weight_decay,
        snapshot_every=a.snapshot_every,
        short_fraction=a.short_fraction,
        val_windows=a.val_windows,
        mask_prob=a.mask_prob,
        **_run_fields(a),
    )
    return _train_and_print(cfg)


# ---- finetune -------------------------------------------------------------------------------
def _finetune_args(p: argparse.ArgumentParser) -> None:
    from gmlp_core.data.finetune import FINETUNE_TASKS
    from gmlp_core.train.finetune import FINETUNE_RECIPE as R

    p.add_argument("checkpoint", help="a pretrained MLM checkpoint folder (its trunk and tokenizer start the run)")
    tasks = ", ".join(f"{name} ({task.analogue})" for name, task in FINETUNE_TASKS.items())
    p.add_argument("--task", required=True, choices=list(FINETUNE_TASKS), metavar="NAME", help=tasks)
    p.add_argument("--out", default=None, help="output checkpoint folder (default runs/finetune/CKPT-TASK)")
    p.add_argument(
        "--data", default=None, help="hub tasks only: a folder of train/validation files in the hub's columns"
    )
    p.add_argument("--steps", type=int, default=R.steps, help=f"optimizer steps (default {R.steps})")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the architecture's)")
    p.add_argument("--warmup", type=int, default=R.warmup, help=f"warm-up steps (default {R.warmup})")
    p.add_argument("--batch-size", type=int, default=R.batch_size)
    p.add_argument("--seed", type=int, default=0, help="the new head's initialisation and the batch order")
    p.add_argument("--eval-every", type=int, default=R.eval_every)
    p.add_argument("--save-every", type=int, default=0, help="save a resumable state every N steps (0: end only)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/trainer_state")
    p.add_argument("--overwrite", action="store_true", help="replace a different model already in OUT")
    p.add_argument("--device", default="auto", help="auto (CUDA if available) | cpu | cuda | cuda:1")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="stored weights")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    _precision_arg(p, "auto", "the training steps' precision (validation runs in fp32)")
    p.add_argument("--no-progress", action="store_true")


def _finetune_run(a: argparse.Namespace) -> int:
    from gmlp_core.checkpoints import read_config
    from gmlp_core.train import TrainConfig
    from gmlp_core.train.finetune import finetune_lr

    lr = a.lr if a.lr is not None else finetune_lr(read_config(a.checkpoint).arch)
    cfg = TrainConfig(
        init_from=a.checkpoint,
        task=a.task,
        out=a.out or f"runs/finetune/{Path(a.checkpoint).name}-{a.task.replace(':', '-')}",
        steps=a.steps,
        lr=lr,
        snapshot_every=0,
        threads=a.threads,
        **_run_fields(a),
    )
    return _train_and_print(cfg)


# ---- finetune-study --------------------------------------------------------------------------
def _study_args(p: argparse.ArgumentParser) -> None:
    from gmlp_core.finetune_study import SOURCES, STAGES, TASKS

    p.add_argument("--stage", required=True, choices=STAGES, help="rates first; then seeds, scratch, control")
    p.add_argument("--root", default="checkpoints", help="where the pretrained sources are (default checkpoints)")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), help="pretrained checkpoints under --root")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="finetuning tasks")
    p.add_argument("--out", default="results/finetune.csv", help="the study's CSV (rows already there are skipped)")
    p.add_argument("--workdir", default="runs/finetune_study", help="where the runs' checkpoints go")


def _study_run(a: argparse.Namespace) -> int:
    from gmlp_core.finetune_study import run_study, summary_table

    rows = run_study(a.stage, Path(a.root), Path(a.out), Path(a.workdir), tuple(a.sources), tuple(a.tasks))
    print(summary_table(rows).to_string(index=False))
    return 0


# ---- eval -----------------------------------------------------------------------------------
def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a checkpoint folder (config.json + model.safetensors)")
    p.add_argument(
        "--data",
        default=None,
        help="default: the data the checkpoint was trained on (a finetuned model: its task; a hub task needs "
        "--data TASK to read the hub, or --data FOLDER)",
    )
    p.add_argument("--device", default="auto")
    _precision_arg(p, "fp32", "fp32 (default) reproduces metrics.json; bf16/auto trade the last digits for speed")


def _eval_run(a: argparse.Namespace) -> int:
    from gmlp_core.evaluate import evaluate_checkpoint

    print(json.dumps(evaluate_checkpoint(a.checkpoint, a.data, a.device, precision=a.precision), indent=2))
    return 0


# ---- probe (interventions) ------------------------------------------------------------------
def _probe_args(p: argparse.ArgumentParser) -> None:
    from gmlp_core.analysis.interventions import KINDS

    p.add_argument("checkpoint", help="a checkpoint folder")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--intervention", choices=KINDS, help="the edit to apply (see gmlp_core.analysis.interventions)")
    what.add_argument("--sweep", choices=["band"], help="band: the metric over band width k, one layer at a time")
    p.add_argument("--layers", default="all", help="all, or layer indices such as 0,2")
    p.add_argument("--k", type=int, default=None, help="band width (band) or rank (smooth)")
    p.add_argument("--heads", default=None, help="heads-off: head indices such as 0,3 (default: all)")
    p.add_argument("--seed", type=int, default=0, help="shuffle's permutation")
    p.add_argument("--sentence", default=None, help="MLM: also show this sentence's fill-mask before and after")
    p.add_argument("--data", default=None, help="held-out data (default: the built-in data of the task)")
    p.add_argument("--device", default="cpu")


def _indices(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise ValueError(f"--{what} takes 'all' or comma-separated integers such as 0,2; got {text!r}") from err


def _probe_run(a: argparse.Namespace) -> int:
    from gmlp_core.analysis import interventions as iv
    from gmlp_core.checkpoints import load_checkpoint, load_tokenizer

    model = load_checkpoint(a.checkpoint, device=a.device)
    tokenizer = load_tokenizer(a.checkpoint) if model.config.is_text else None
    held_out = iv.validation_data(model, tokenizer, a.data)
    if a.sweep:
        print(iv.band_sweep(model, held_out).to_json(orient="records", indent=2))
        return 0
    layers = "all" if a.layers == "all" else _indices(a.layers, "layers")
    result = iv.probe(
        model,
        a.intervention,
        layers,
        held_out=held_out,
        k=a.k,
        heads=_indices(a.heads, "heads"),
        seed=a.seed,
        tokenizer=tokenizer,
        sentence=a.sentence,
    )
    out = result.as_dict()
    if result.fill_mask is not None:
        out["fill_mask"] = result.fill_mask.to_dict(orient="records")
    print(json.dumps(out, indent=2))
    return 0


# ---- cloze ----------------------------------------------------------------------------------
def _cloze_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="+", help="one or more MLM checkpoint folders")
    p.add_argument("--suite", default=None, help="a cloze file: 'sentence with [MASK]<TAB>answer|answer' per line")
    p.add_argument("--k", type=int, default=5, help="count a hit within the top k (default 5)")
    p.add_argument("--details", action="store_true", help="print every sentence with the model's guesses")
    p.add_argument("--device", default="cpu")


def _cloze_run(a: argparse.Namespace) -> int:
    from gmlp_core.checkpoints import load_checkpoint, load_tokenizer
    from gmlp_core.cloze import CLOZE_FILE, cloze_score, cloze_table, load_cloze_suite

    items = load_cloze_suite(a.suite or CLOZE_FILE)
    for folder in a.checkpoint:
        model = load_checkpoint(folder, device=a.device)
        if not model.config.spec.fill_mask:
            raise ValueError(f"{folder}: {model.config.spec.noun}; the cloze suite needs an MLM checkpoint")
        tokenizer = load_tokenizer(folder)
        if tokenizer is None:
            raise ValueError(f"{folder}: no tokenizer.json next to the weights")
        table = cloze_table(model, tokenizer, items, k=a.k)
        score = cloze_score(table)
        print(
            f"{folder}: top-1 {score['top1']}/{score['sentences']}, top-{a.k} {score[f'top{a.k}']}/{score['sentences']}"
            f" ({score['predictable']} sentences have an answer that is one word piece in this vocabulary)"
        )
        if a.details:
            print(table.to_string(index=False, max_colwidth=70))
    return 0


# ---- tune (learning-rate sweep) ------------------------------------------------------------
def _tune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--entries", nargs="+", default=["mlm-gmlp", "mlm-amlp", "mlm-transformer"], help="zoo entries")
    p.add_argument("--rates", nargs="+", type=float, default=[5e-4, 1e-3, 2e-3, 4e-3], help="peak learning rates")
    p.add_argument("--steps", type=int, default=None, help="default: each entry's zoo budget")
    p.add_argument("--data", default=None, help="default: each entry's zoo data")
    _precision_arg(p, None, "default: the zoo's precision")
    p.add_argument("--out", default=None, help="CSV to append to (default results/lr_sweep.csv)")
    p.add_argument("--workdir", default="runs/lr_sweep", help="where the sweep's checkpoints go")


def _tune_run(a: argparse.Namespace) -> int:
    from gmlp_core.tuning import LR_SWEEP_FILE, best_rates, run_lr_sweep
    from gmlp_core.zoo import RESULTS_DIR

    out = Path(a.out) if a.out else RESULTS_DIR / LR_SWEEP_FILE
    table = run_lr_sweep(a.entries, a.rates, out, Path(a.workdir), a.steps, a.data, a.precision)
    print(table.to_string(index=False))
    print(best_rates(table).to_string(index=False))
    return 0


# ---- presets --------------------------------------------------------------------------------
def _presets_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--group", default=None, choices=["tiny", "demo", "bench", "paper"])


def _presets_run(a: argparse.Namespace) -> int:
    import pandas as pd

    from gmlp_core.models import config_summary, list_presets, preset, preset_info

    rows = []
    for name in list_presets(group=a.group):
        info, summary = preset_info(name), config_summary(preset(name))
        shown = {k: summary[k] for k in ("arch", "task", "layers", "d_model", "d_ffn", "n")}
        rows.append(
            {
                "preset": name,
                "group": info.group,
                **shown,
                "params_M": round(summary["params"] / 1e6, 3),
                "paper_M": info.published_params_m,
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


# ---- convert --------------------------------------------------------------------------------
def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pickle", help="YOUR OWN trusted .pt/.bin state dict")
    p.add_argument("out", help="output checkpoint folder")
    p.add_argument("--config", required=True, help="config.json describing the model")


def _convert_run(a: argparse.Namespace) -> int:
    from gmlp_core import build_model, save_checkpoint
    from gmlp_core.checkpoints import read_config_file
    from gmlp_core.importers import read_state_dict

    cfg = read_config_file(Path(a.config))  # the checks of every config read, resource limits included
    # As import reads weights: torch.load(weights_only=True), so only tensors and plain containers are unpickled and
    # no code runs; the file's size checked against the memory limit first; a file of the wrong kind is a message.
    state = read_state_dict(a.pickle)
    model = build_model(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing, unexpected or mis-shaped tensors
        raise ValueError(f"{a.pickle} does not fit {a.config}: {str(err)[:2000]}") from err
    save_checkpoint(model, a.out)
    print(f"wrote {a.out}")
    return 0


# ---- import (timm, g-mlp-pytorch) -----------------------------------------------------------
def _import_args(p: argparse.ArgumentParser) -> None:
    from gmlp_core.importers import TIMM_MODELS

    p.add_argument("source", help=f"timm:NAME ({', '.join(TIMM_MODELS)}) or g-mlp-pytorch")
    p.add_argument("--out", required=True, help="the checkpoint folder to write (must be new or empty)")
    p.add_argument(
        "--weights",
        default=None,
        help="the peer's state dict: .safetensors, or .pth/.pt/.bin read with torch.load(weights_only=True); "
        "timm: default is timm's own pretrained weights (downloaded once, needs internet)",
    )
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="g-mlp-pytorch: its constructor arguments (dim, depth, seq_len, attn_dim, causal, ...), checked "
        "against the weights",
    )
    p.add_argument("--tokenizer", default=None, help="g-mlp-pytorch token model: a tokenizer.json to ship with it")


def _import_run(a: argparse.Namespace) -> int:
    from gmlp_core import importers as im

    if a.source.startswith("timm:"):
        if a.set or a.tokenizer:
            raise ValueError("--set and --tokenizer are for g-mlp-pytorch; a timm gMLP is named by timm:NAME")
        name = a.source.removeprefix("timm:")
        im.timm_config(name)  # an unknown name fails before anything is read or downloaded
        imported = im.import_timm(name, a.weights)
        extra = im.timm_extra(imported)
        tokenizer = None
    elif a.source == "g-mlp-pytorch":
        if a.weights is None:
            raise ValueError("g-mlp-pytorch has no published weights: pass --weights FILE (your model's state dict)")
        imported = im.import_gmlp_pytorch(a.weights, _overrides(a.set))
        extra = {}
        tokenizer = _tokenizer(a.tokenizer, imported.model.config) if a.tokenizer else None
    else:
        raise ValueError(f"unknown source {a.source!r}: use timm:NAME or g-mlp-pytorch")
    out = im.write_import(imported, a.out, extra=extra, tokenizer=tokenizer)
    cfg = imported.model.config
    print(f"max |our logits - {imported.source['library']}'s| on a random batch: {imported.max_abs_diff:.3g}")
    print(f"wrote {out} ({cfg.arch}, {cfg.task}, {cfg.n_layers} layers, n = {cfg.seq_len})")
    return 0


def _tokenizer(path: str, cfg: Any) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as err:  # tokenizers raises its own exception type
        raise ValueError(f"{path}: not a tokenizer.json ({err})") from err
    if tokenizer.get_vocab_size() > cfg.vocab_size:
        raise ValueError(f"{path}: {tokenizer.get_vocab_size()} tokens, but the model has {cfg.vocab_size}")
    return tokenizer


# ---- zoo and sweep --------------------------------------------------------------------------
def _zoo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=None, help="where to write (default: the repository's checkpoints/)")
    p.add_argument(
        "--only", nargs="*", default=None, metavar="NAME", help="rebuild only these entries (or study sources)"
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted build from its saved state")
    p.add_argument("--results", default=None, help="where to write ablation.csv (default: the repository's results/)")
    p.add_argument(
        "--vary",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="train the entries' recipe with precision, seed, short_fraction, mask_prob or threads changed (needs --root)",
    )


def _zoo_run(a: argparse.Namespace) -> int:
    from gmlp_core.zoo import DEFAULT_ROOT, RESULTS_DIR, build_zoo, headline_metric

    root, results = Path(a.root) if a.root else DEFAULT_ROOT, Path(a.results) if a.results else RESULTS_DIR
    try:
        changes = {k.strip(): v.strip() for k, _, v in (item.partition("=") for item in a.vary)}
        df = build_zoo(root, only=a.only, results=results, changes=changes, resume=a.resume)
    except (KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = df.to_dict("records")
    for row in rows:
        print(f"{row['name']:<26} {row['seconds'] / 60:5.1f} min  {headline_metric(row)}")
    # Each entry's metrics record the machine kind its numbers reproduce on bit for bit.
    built_on = rows[-1]
    extras = "".join(f", {flag}" for key, flag in (("cpu_bf16", "AVX-512 BF16"), ("cpu_amx", "AMX")) if built_on[key])
    print(
        f"{'total':<26} {df['seconds'].sum() / 60:5.1f} min  "
        f"(torch {built_on['torch']}, {built_on['cpu']}, CPU capability {built_on['cpu_capability']}{extras})"
    )
    return 0


def _sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", default="demo", help="demo | smoke | paper | a JSON file of sweep points")
    p.add_argument(
        "--out",
        default=None,
        help="the tidy CSV to write, rows appended (default: the repository's results/sweep_demo.csv)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir", default="runs/sweep", help="where the sweep's checkpoints go")
    p.add_argument("--data", default="python-docs", help="training text (default: the zoo's, python-docs)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate for every architecture (default: each one's zoo MLM rate)",
    )
    _precision_arg(p, None, "default: the zoo's (bf16)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the zoo's, 2)")
    p.add_argument(
        "--mask-prob", type=float, default=None, help="share of tokens predicted (default: the zoo's MLM masking)"
    )


def _sweep_run(a: argparse.Namespace) -> int:
    from gmlp_core.sweep import run_sweep
    from gmlp_core.zoo import RESULTS_DIR

    out = Path(a.out) if a.out else RESULTS_DIR / "sweep_demo.csv"
    try:
        df, fits = run_sweep(
            a.grid,
            out,
            device=a.device,
            workdir=Path(a.workdir),
            data=a.data,
            lr=a.lr,
            precision=a.precision,
            threads=a.threads,
            mask_prob=a.mask_prob,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(df.to_string(index=False))
    print(fits.to_string(index=False))
    return 0


SUBCOMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = [
    ("train", "train a model (torchrun-aware)", _train_args, _train_run),
    (
        "finetune",
        "finetune a pretrained MLM checkpoint on a task (a new head on its trunk)",
        _finetune_args,
        _finetune_run,
    ),
    ("finetune-study", "the finetuning study: rates, seeds, from scratch, controls", _study_args, _study_run),
    ("eval", "evaluate a checkpoint, print JSON", _eval_args, _eval_run),
    ("probe", "edit W (or attention) and measure what the model loses", _probe_args, _probe_run),
    ("cloze", "score MLM checkpoints on the cloze suite (top-1 / top-k)", _cloze_args, _cloze_run),
    ("tune", "learning-rate sweep of zoo entries at the zoo's budget", _tune_args, _tune_run),
    ("presets", "list the registered presets", _presets_args, _presets_run),
    ("convert", "convert your own trusted pickle state dict into a safe checkpoint", _convert_args, _convert_run),
    ("import", "import a trained timm or g-mlp-pytorch gMLP, verified logit for logit", _import_args, _import_run),
    ("zoo", "rebuild the demo zoo deterministically", _zoo_args, _zoo_run),
    ("sweep", "run a scaling sweep and fit power laws", _sweep_args, _sweep_run),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gmlp_core", description="gMLP Lens: train, evaluate, sweep.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_args, run in SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text)
        add_args(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO
        if args.verbose or args.command in ("zoo", "sweep", "tune", "import", "finetune-study")
        else logging.WARNING
    )
    try:
        return args.run(args)
    except (ValueError, KeyError, OSError) as err:
        # Errors a user can cause (bad preset, bad path, corrupt checkpoint): a message, not a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2

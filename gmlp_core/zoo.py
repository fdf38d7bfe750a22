"""The demo zoo: small checkpoints trained by this repository's own code on data that ships here.

``python -m gmlp_core zoo`` rebuilds every entry into ``checkpoints/`` (``--only NAME`` rebuilds one)
deterministically: same seed, same steps, same numbers on the same machine. Entries:

- MLM on ``python-docs`` (Python's reference manual and its standard library's docstrings, read from the
  installed Python): gMLP, aMLP and a Transformer at matched non-embedding parameter counts and equal budget
  (the paper's comparison at demo scale), plus the gating ablation of the paper's MLM gating-ablation table
  (linear, additive, multiplicative, each at a d_ffn that matches split gating's parameters; split is the gMLP
  entry itself) and an identity control with no token mixing at all (a stack of plain FFNs).
- Vision on scikit-learn's bundled 8x8 digits, one pixel per patch, so each row of W maps onto the
  8x8 grid: gMLP, aMLP and a ViT-style Transformer.
- Vision on the same digits pasted anywhere on a 32x32 canvas, 4x4-pixel patches (the same 8x8 grid of
  tokens): the task on which gMLP's W learns local, shift-invariant filters, as in the paper's ImageNet figure.

Weights are stored in float16 and the stored validation metric is measured on those stored weights,
so ``python -m gmlp_core eval checkpoints/NAME`` reproduces it exactly on the machine kind that built it
(and to about 1e-6 relative elsewhere: README, "Reproducibility").
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from gmlp_core.checkpoints import METRICS_NAME
from gmlp_core.data.masking import MaskingConfig
from gmlp_core.models.archs import ARCHS, CANVAS, MLM, learning_rate

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / "checkpoints"  # the zoo's checkpoints
RESULTS_DIR = REPO / "results"  # tables the zoo and the sweeps write (ablation.csv, sweep_demo.csv)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    preset: str
    description: str
    steps: int
    overrides: dict[str, Any] = field(default_factory=dict)
    data: str | None = "python-docs"  # None: a finetuned entry (its task is its data)
    batch_size: int = 32
    lr: float | None = None  # None: the architecture's demo_lr
    seed: int = 0
    warmup: int = 100
    precision: str = "fp32"  # fixed per entry (never "auto"), so a rebuild gives the same numbers on one CPU kind
    # MLM: the share of training rows cut short and padded (the app's short sentences)
    short_fraction: float = MaskingConfig.short_fraction
    mask_prob: float = MaskingConfig.mask_prob  # MLM: share of each training row's tokens predicted
    threads: int = 2  # torch CPU threads, fixed: the order of every sum, so the numbers, depends on it
    init_from: str | None = None  # finetuning: the zoo entry whose trunk and tokenizer start the run
    task: str | None = None  # finetuning: a gmlp_core.data.finetune.FINETUNE_TASKS name (preset "": the source's)
    save_every: int = 0  # a resumable trainer state every N steps (``zoo --resume`` continues from it); 0: none

    @property
    def finetuned(self) -> bool:
        """Whether the entry is a pretrained zoo entry finetuned on a task (built after its source)."""
        return self.init_from is not None


# What ``python -m gmlp_core zoo --vary KEY=VALUE`` may change of an entry's recipe: the experiments the README
# reports (bf16 against fp32, seed pairs, training without padded rows) are the zoo's recipe with one of these changed.
VARIABLE = {"precision": str, "seed": int, "short_fraction": float, "mask_prob": float, "threads": int}


def vary(entry: ZooEntry, changes: dict[str, Any]) -> ZooEntry:
    """``entry`` with its recipe changed as ``changes`` says (keys from ``VARIABLE``; ValueError otherwise)."""
    unknown = sorted(set(changes) - set(VARIABLE))
    if unknown:
        raise ValueError(f"--vary cannot change {', '.join(unknown)}; it changes {', '.join(VARIABLE)}")
    try:
        typed = {key: VARIABLE[key](value) for key, value in changes.items()}
    except (TypeError, ValueError) as err:
        raise ValueError(f"--vary {changes}: {err}") from None
    return replace(entry, **typed)


_VISION_STEPS = 600
ZOO_THREADS = ZooEntry.threads  # fixed, so a rebuild on this machine reproduces the numbers bit for bit
# The MLM recipe (#13): Python's documentation and standard-library docstrings, every MLM entry at the same
# budget (the ablation compares them at equal steps; 8,000 steps keep the whole zoo under an hour on a 2-core CPU),
# 40% of each training row's tokens predicted (``MLM_MASK_PROB``; at BERT's 15% gMLP reached perplexity 14.7 and
# cloze 19 of 50 in 10,000 steps, at 40% 10.7 and 26: README, "Masking more tokens"; validation always predicts
# 15%), each architecture's best peak rate in the learning-rate sweep at this recipe (``MLM_LR``;
# results/lr_sweep.csv, rows with mask_prob 0.4: at 15% 1e-3 won for all three, at 40% aMLP and the Transformer
# gain from 2e-3; the gating-ablation variants are gMLPs and take gMLP's rate), a 500-step warm-up (the
# Transformer at 2e-3 and 15% reached perplexity 22.1 with it against 48.5 with 100 steps), and bf16 autocast
# (1.5-1.7x faster per step where the CPU has native bf16; fixed, not "auto", so every machine trains the same
# recipe: a CPU without native bf16 emulates it, slower, and sums in another order, like any other kernel set).
MLM_STEPS = 8_000
MLM_MASK_PROB = 0.4
MLM_LR = {arch: learning_rate(arch, MLM) for arch in ARCHS}  # ArchSpec.lr: the table of rates
MLM_WARMUP = 500
ZOO_PRECISION = "bf16"
# The unsplit ablation variants gate the whole d_ffn, so at gMLP's d_ffn 768 they carry 32% more non-embedding
# parameters than split gating; these widths match split gating's 631,168 within 2%.
_MATCHED_D_FFN = {"linear": 576, "additive": 576, "multiplicative": 576, "identity": 592}
# Digits anywhere on a 32 x 32 canvas (#14): 8,000 steps of 64 images in bf16 at each architecture's best rate of
# the canvas sweeps (results/canvas_lr_sweep.csv: aMLP 2e-3 and the Transformer 1e-3 on a GPU; gMLP 1e-3, 2e-3 and
# 4e-3 tied within one standard error at this budget on this CPU, the middle kept). Seed 1: W's layer 0 forms local
# filters on this task in most runs but not in all (seed 0 grew a diagonal instead: README, "Digits anywhere on a
# canvas"), and the zoo ships a run that shows the paper's picture, saying so.
_CANVAS_STEPS = 8_000
_CANVAS_LR = {arch: learning_rate(arch, CANVAS) for arch in ARCHS}
_CANVAS_SEED = 1


def _canvas(arch: str, description: str) -> ZooEntry:
    return ZooEntry(
        f"canvas-{arch}",
        f"{arch}-demo-canvas",
        description,
        _CANVAS_STEPS,
        data="digits-canvas",
        batch_size=64,
        lr=_CANVAS_LR[arch],
        seed=_CANVAS_SEED,
        warmup=200,
        precision=ZOO_PRECISION,
    )


def _mlm(name: str, arch: str, description: str, gating: str | None = None) -> ZooEntry:
    overrides: dict[str, Any] = {} if gating is None else {"gating": gating, "d_ffn": _MATCHED_D_FFN[gating]}
    return ZooEntry(
        name,
        f"{arch}-demo-mlm",
        description,
        MLM_STEPS,
        overrides,
        lr=MLM_LR[arch],
        warmup=MLM_WARMUP,
        precision=ZOO_PRECISION,
        mask_prob=MLM_MASK_PROB,
    )


def _finetuned(arch: str, task: str) -> ZooEntry:
    from gmlp_core.data.finetune import FINETUNE_TASKS
    from gmlp_core.train.finetune import FINETUNE_RECIPE, finetune_lr

    return ZooEntry(
        f"{task.removeprefix('docs-')}-{arch}",
        "",
        f"mlm-{arch} finetuned on {task}: {FINETUNE_TASKS[task].description}",
        FINETUNE_RECIPE.steps,
        data=None,
        batch_size=FINETUNE_RECIPE.batch_size,
        lr=finetune_lr(arch),
        warmup=FINETUNE_RECIPE.warmup,
        init_from=f"mlm-{arch}",
        task=task,
    )


ZOO: tuple[ZooEntry, ...] = (
    _mlm("mlm-gmlp", "gmlp", "gMLP (split gating), the paper's model"),
    _mlm("mlm-amlp", "amlp", "aMLP: gMLP + tiny single-head attention"),
    _mlm("mlm-transformer", "transformer", "Transformer (BERT-style) baseline"),
    _mlm("mlm-gmlp-linear", "gmlp", "ablation: s(Z) = W LN(Z) + b (no gating)", "linear"),
    _mlm("mlm-gmlp-additive", "gmlp", "ablation: s(Z) = Z + (W LN(Z) + b)", "additive"),
    _mlm("mlm-gmlp-multiplicative", "gmlp", "ablation: s(Z) = Z * (W LN(Z) + b)", "multiplicative"),
    _mlm("mlm-gmlp-identity", "gmlp", "control: s(Z) = Z (no token mixing at all)", "identity"),
    ZooEntry("vision-gmlp", "gmlp-demo-vision", "gMLP on 8x8 digits", _VISION_STEPS, data="digits", batch_size=64),
    ZooEntry("vision-amlp", "amlp-demo-vision", "aMLP on 8x8 digits", _VISION_STEPS, data="digits", batch_size=64),
    ZooEntry(
        "vision-transformer",
        "transformer-demo-vision",
        "ViT-style Transformer on 8x8 digits",
        _VISION_STEPS,
        data="digits",
        batch_size=64,
    ),
    _canvas("gmlp", "gMLP on digits anywhere on a 32x32 canvas, 4x4-pixel patches"),
    _canvas("amlp", "aMLP on digits anywhere on a 32x32 canvas, 4x4-pixel patches"),
    _canvas("transformer", "ViT-style Transformer on digits anywhere on a 32x32 canvas, 4x4-pixel patches"),
    # Finetuned on the sentence-pair task (#36) at the finetuning recipe, from the MLM entries above: what the
    # "When attention matters" page runs live (the study's other runs stay in runs/, results/finetune.csv).
    _finetuned("gmlp", "docs-match"),
    _finetuned("amlp", "docs-match"),
    _finetuned("transformer", "docs-match"),
)
# The finetuned entries of the pair task, one per architecture.
PAIR_MODELS = tuple(e.name for e in ZOO if e.task == "docs-match")

# Pretrained sources of the finetuning study (#36) that the zoo does not build by default: ``python -m gmlp_core
# zoo --only mlm-gmlp-large`` builds one into the root (over an hour on a 2-core CPU, so it saves a resumable
# state every 500 steps: ``--resume`` continues an interrupted build). The larger gMLP: 3.28x the zoo gMLP's
# non-embedding parameters (preset ``gmlp-demo-mlm-large``) on the zoo's MLM recipe (data, steps, batch, rate,
# warm-up, masking) unchanged, in fp32: it was built on a CPU without native bf16 (AVX2), where bf16 autocast
# measured 8.8x slower than fp32 at this size (7.8 s against 0.89 s a step), and fp32 only rounds less.
STUDY_SOURCES: tuple[ZooEntry, ...] = (
    replace(
        _mlm("mlm-gmlp-large", "gmlp", "gMLP, 3.3x the parameters (the finetuning study's larger gMLP)"),
        preset="gmlp-demo-mlm-large",
        save_every=500,
        precision="fp32",
    ),
)

# The zoo's main comparison: every architecture on both tasks (the dashboard's default selection).
MAIN_COMPARISON = ("mlm-gmlp", "mlm-amlp", "mlm-transformer", "vision-gmlp", "vision-amlp", "vision-transformer")

# The ablation entries and the variant each one is.
ABLATION_ENTRIES = {
    "mlm-transformer": "transformer",
    "mlm-gmlp-linear": "linear",
    "mlm-gmlp-additive": "additive",
    "mlm-gmlp-multiplicative": "multiplicative",
    "mlm-gmlp": "split",
    "mlm-gmlp-identity": "identity",
}
# Each variant's row in the paper's MLM ablation (Liu et al. 2021, MLM gating-ablation table; gmlp_core.reference.ABLATION_TABLE): our
# Transformer has absolute positions, so it is "BERT-base". The identity control is not in the paper's table.
PAPER_ABLATION_NAME = {
    "transformer": "BERT-base",
    "split": "gMLP, multiplicative split",
    "multiplicative": "gMLP, multiplicative",
    "additive": "gMLP, additive",
    "linear": "gMLP, linear",
}


def zoo_entry(name: str) -> ZooEntry:
    """The zoo entry (or study source, ``STUDY_SOURCES``) called ``name``."""
    for entry in (*ZOO, *STUDY_SOURCES):
        if entry.name == name:
            return entry
    raise KeyError(
        f"unknown zoo entry {name!r}; entries: {', '.join(e.name for e in ZOO)}; "
        f"study sources (built with --only): {', '.join(e.name for e in STUDY_SOURCES)}"
    )


def entry_config(entry: ZooEntry, root: Path, resume: bool = False) -> Any:
    """The ``TrainConfig`` that builds ``entry`` under ``root`` (``resume``: from its saved trainer state)."""
    from gmlp_core.models import preset
    from gmlp_core.train import TrainConfig, demo_lr
    from gmlp_core.train.finetune import FINETUNE_RECIPE

    if entry.finetuned:
        return TrainConfig(
            init_from=str(root / entry.init_from),
            task=entry.task,
            out=str(root / entry.name),
            steps=entry.steps,
            batch_size=entry.batch_size,
            lr=entry.lr,
            warmup=entry.warmup,
            seed=entry.seed,
            eval_every=FINETUNE_RECIPE.eval_every,
            snapshot_every=0,
            device="cpu",
            dtype="float16",
            precision=entry.precision,
            progress=sys.stderr.isatty(),
            threads=entry.threads,
        )
    return TrainConfig(
        preset=entry.preset,
        out=str(root / entry.name),
        overrides=dict(entry.overrides),
        data=entry.data,
        steps=entry.steps,
        batch_size=entry.batch_size,
        lr=entry.lr if entry.lr is not None else demo_lr(preset(entry.preset).arch),
        warmup=entry.warmup,
        seed=entry.seed,
        eval_every=max(1, entry.steps // 20),
        snapshot_every=max(1, entry.steps // 40),
        device="cpu",
        dtype="float16",
        precision=entry.precision,
        progress=sys.stderr.isatty(),
        threads=entry.threads,
        short_fraction=entry.short_fraction,
        mask_prob=entry.mask_prob,
        save_every=entry.save_every,
        resume=resume,
    )


def build_zoo(
    root: Path = DEFAULT_ROOT,
    only: list[str] | None = None,
    results: Path | None = RESULTS_DIR,
    changes: dict[str, Any] | None = None,
    resume: bool = False,
) -> pd.DataFrame:
    """Train every zoo entry (or those in ``only``) into ``root/NAME``; returns one row per entry. ``changes``
    (``vary``) trains each entry's recipe with those changes instead: never into the shipped zoo's folder, and
    without writing ``results``. ``resume``: an entry with a saved trainer state (``save_every``) continues from
    it instead of starting again."""
    from gmlp_core.train import train
    from gmlp_core.train.trainer import STATE_DIR

    entries = [zoo_entry(n) for n in only] if only else list(ZOO)
    if changes:
        if root.resolve() == DEFAULT_ROOT.resolve():
            raise ValueError("a varied recipe is an experiment, not the zoo: give it its own --root")
        entries, results = [vary(e, changes) for e in entries], None
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    zoo_start = time.perf_counter()
    for i, entry in enumerate(entries, 1):
        log.info("[%d/%d] building %s (%d steps): %s", i, len(entries), entry.name, entry.steps, entry.description)
        start = time.perf_counter()
        result = train(entry_config(entry, root, resume=resume))
        shutil.rmtree(Path(result.checkpoint) / STATE_DIR, ignore_errors=True)  # resumable state: not shipped
        seconds = time.perf_counter() - start
        rows.append({"name": entry.name, "seconds": round(seconds, 1), **result.metrics})
        log.info(
            "[%d/%d] %s done in %.1f min (%s); %.1f min since the zoo started",
            i,
            len(entries),
            entry.name,
            seconds / 60,
            headline_metric(result.metrics),
            (time.perf_counter() - zoo_start) / 60,
        )
    if results is not None:
        table = ablation_table(root)
        if not table.empty:
            results.mkdir(parents=True, exist_ok=True)
            table.to_csv(results / "ablation.csv", index=False)
    return pd.DataFrame(rows)


def headline_metric(metrics: dict[str, Any]) -> str:
    """The one number an entry is judged by, as text: validation perplexity (MLM) or accuracy (vision)."""
    # A table of MLM and vision rows holds NaN where an entry has no such metric.
    if pd.notna(metrics.get("val_ppl")):
        return f"val_ppl {metrics['val_ppl']:.1f}"
    if pd.notna(metrics.get("val_accuracy")):
        return f"val_accuracy {metrics['val_accuracy']:.1%}"
    return "no validation metric"


def ablation_table(root: Path = DEFAULT_ROOT) -> pd.DataFrame:
    """Validation perplexity per gating variant and the Transformer at equal budget, with the
    paper's ordering of the same variants (Liu et al. 2021, MLM ablation) beside ours."""
    from gmlp_core.checkpoints import load_metrics, read_config
    from gmlp_core.models import config_summary
    from gmlp_core.reference import paper_ablation

    paper = paper_ablation().set_index("model")["value"]
    paper_ppl = {variant: paper.get(model) for variant, model in PAPER_ABLATION_NAME.items()}
    # The paper's ordering of the variants we train, best (1) to worst, from its own numbers.
    paper_rank = pd.Series(paper_ppl, dtype=float).rank(method="min")
    rows = []
    for name, variant in ABLATION_ENTRIES.items():
        folder = root / name
        if not (folder / METRICS_NAME).is_file():
            continue
        cfg = read_config(folder)
        metrics = load_metrics(folder)
        summary = config_summary(cfg)
        rows.append(
            {
                "variant": variant,
                "checkpoint": name,
                **{k: summary[k] for k in ("arch", "gating", "params", "non_embedding_params")},
                "steps": metrics.get("steps"),
                "val_ppl": metrics.get("val_ppl"),
                "val_accuracy": metrics.get("val_accuracy"),
                "paper_rank": paper_rank.get(variant),
                "paper_ppl": paper_ppl.get(variant),
            }
        )
    df = pd.DataFrame(rows)
    if not df.empty:
        df["our_rank"] = df["val_ppl"].rank(method="min").astype(int)
        df["paper_rank"] = df["paper_rank"].astype("Int64")  # the identity control has none
        df = df.sort_values("paper_rank", na_position="last").reset_index(drop=True)
    return df

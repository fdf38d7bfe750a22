"""The training loop: AdamW, warmup + cosine, clipping, bf16 autocast, DDP, exact resume, safe checkpoints.

Under ``torchrun --nproc_per_node N`` the same call runs data-parallel (gloo on CPU, nccl on GPU):
each rank draws its own ``batch_size`` rows (global batch = N x batch_size) and only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from gmlp_core.checkpoints import (
    CONFIG_NAME,
    METRICS_LOG_NAME,
    METRICS_NAME,
    TOKENIZER_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    load_checkpoint,
    read_config,
    resolve_device,
    save_checkpoint,
    write_json_atomic,
)
from gmlp_core.data.masking import MaskingConfig
from gmlp_core.data.text import BUILT_IN_CORPORA
from gmlp_core.hardware import PRECISIONS, PrecisionChoice, autocast, choose_precision, cpu_description
from gmlp_core.limits import check_config
from gmlp_core.models import LensModel, ModelConfig, build_model, preset
from gmlp_core.models.archs import DIGITS, learning_rate
from gmlp_core.train.data import FinetuneData, build_task_data
from gmlp_core.train.finetune import start_finetune
from gmlp_core.train.snapshots import SNAPSHOTS_NAME, load_spatial_snapshots, save_spatial_snapshots

log = logging.getLogger(__name__)

STATE_DIR = "trainer_state"
METRICS_LOG = METRICS_LOG_NAME


@dataclass
class TrainConfig:
    """One training run. ``steps`` sets the schedule; ``minutes`` (optional) also stops on wall time.

    A finetuning run sets ``init_from`` (a pretrained MLM checkpoint) and ``task`` (a ``FINETUNE_TASKS`` name)
    instead of ``preset``: the model is the checkpoint's trunk with the task's new head (``train.finetune``),
    ``data`` is then the local files of a hub task (GLUE, SQuAD), if any.
    """

    preset: str = ""
    out: str = "runs/run"
    overrides: dict[str, Any] = field(default_factory=dict)
    data: str | None = None  # "embedded" (MLM) / "digits" (vision) when None
    steps: int = 1000
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 200
    save_every: int = 0  # 0: only at the end
    snapshot_every: int = 50
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False  # replace a different model already in ``out`` (refused otherwise)
    dtype: str = "float32"  # storage dtype of the final checkpoint: float32 | float16 | bfloat16
    # Forward-pass precision: auto (bf16 autocast where it measures faster: hardware.choose_precision) | fp32 | bf16.
    # Weights, gradients and optimizer state are float32 in every case; validation runs in fp32.
    precision: str = "auto"
    progress: bool = True
    threads: int | None = None  # torch CPU threads (None: torch's default)
    # MLM: the share of training rows cut short and padded (what makes typed short sentences work), and how
    # many 64..n-token validation windows are scored (checkpoints record it, so `eval` scores the same ones).
    short_fraction: float = MaskingConfig.short_fraction
    val_windows: int = 1024
    # MLM: the share of each training row's tokens that are predicted (BERT's 15%); validation always uses 15%
    mask_prob: float = MaskingConfig.mask_prob
    init_from: str | None = None  # finetuning: the pretrained checkpoint whose trunk and tokenizer start the run
    task: str | None = None  # finetuning: the task (gmlp_core.data.finetune.FINETUNE_TASKS)
    from_scratch: bool = False  # finetuning: init_from's shape and tokenizer, its trunk initialised afresh

    def __post_init__(self) -> None:
        if (self.init_from is None) != (self.task is None):
            raise ValueError("a finetuning run needs both init_from (a pretrained checkpoint) and task")
        if self.init_from is None and not self.preset:
            raise ValueError("a training run needs a preset (or init_from and task to finetune)")
        if self.init_from is not None and (self.preset or self.overrides):
            raise ValueError("a finetuning run takes its model from init_from: no preset or overrides")
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be positive")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be positive")
        if self.eval_every < 1:
            raise ValueError(f"eval_every={self.eval_every} must be positive (validation every N steps)")
        if min(self.warmup, self.save_every, self.snapshot_every) < 0:
            raise ValueError("warmup, save_every and snapshot_every must be >= 0 (0: off)")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype={self.dtype!r}: use float32, float16 or bfloat16")
        if not 0.0 <= self.short_fraction <= 1.0:
            raise ValueError(f"short_fraction={self.short_fraction} must be in [0, 1]")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob={self.mask_prob} must be in (0, 1)")
        if self.val_windows < 1:
            raise ValueError(f"val_windows={self.val_windows} must be positive")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, Any]


def demo_lr(arch: str) -> float:
    """The peak learning rate of the zoo's 8 x 8 digit models (``ArchSpec.lr``, recipe "digits")."""
    return learning_rate(arch, DIGITS)


def gemm_shapes(config: ModelConfig, cfg: TrainConfig) -> tuple[tuple[int, int, int], ...]:
    """The largest matrix products of a training step, (batch x n, d_model) x (d_model, d_ffn) and back: what
    ``auto`` times bf16 against fp32 on."""
    rows = cfg.batch_size * config.seq_len
    return ((rows, config.d_model, config.d_ffn), (rows, config.d_ffn, config.d_model))


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine to ``min_lr_ratio * lr``."""
    warmup = min(cfg.warmup, max(1, cfg.steps // 10))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, cfg.steps - warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _param_groups(model: LensModel, weight_decay: float) -> list[dict[str, Any]]:
    # Decay matrices (U, V, W, attention, heads); not embeddings, biases or norms.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not name.startswith("embed.") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


CHECKPOINT_FILES = (CONFIG_NAME, WEIGHTS_NAME, TOKENIZER_NAME, METRICS_NAME, METRICS_LOG, SNAPSHOTS_NAME)


def _check_output(out: Path, model_cfg: Any, cfg: TrainConfig) -> None:
    """Refuse to train over a different model in ``out`` unless ``overwrite``; with it, clear the old files
    first (a vision model must not inherit a text model's tokenizer.json)."""
    if cfg.resume or not (out / CONFIG_NAME).exists():
        return
    ours = {k: v for k, v in model_cfg.to_dict().items() if k != "extra"}
    try:
        theirs = {k: v for k, v in read_config(out).to_dict().items() if k != "extra"}
    except CheckpointError:
        theirs = None
    if theirs == ours:
        return  # the same model again (e.g. rebuilding a zoo entry): its files are replaced as they are written
    if not cfg.overwrite:
        what = (
            "an unreadable checkpoint"
            if theirs is None
            else f"another model ({theirs['arch']} {theirs['task']}, {theirs['n_layers']} layers, d_model {theirs['d_model']})"
        )
        raise ValueError(f"{out} already holds {what}; pass --overwrite to replace it, or choose another --out")
    for name in CHECKPOINT_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)


def _preflight(out: Path, params: int) -> None:
    """Fail before training when the output folder cannot take the checkpoints."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"cannot write to the output folder {out}: {err.strerror or err}; choose another --out"
        ) from err
    need = params * 4 * 4 + 20 * 2**20  # weights + optimizer moments + trainer state, with room to spare
    free = shutil.disk_usage(out).free
    if free < need:
        raise OSError(f"not enough disk space in {out}: {free / 2**20:.0f} MB free, about {need / 2**20:.0f} MB needed")


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _save_state(out: Path, model: LensModel, opt: torch.optim.Optimizer, step: int, extra: dict[str, Any]) -> None:
    """Model, optimizer moments and loop state without pickle; swapped in by directory renames."""
    new, cur, old = out / f"{STATE_DIR}.new", out / STATE_DIR, out / f"{STATE_DIR}.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(new / WEIGHTS_NAME))
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, s in sd["state"].items() for k, v in s.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(new / "optimizer.safetensors"))
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    (new / "state.json").write_text(json.dumps({"step": step, "param_groups": groups, **extra}, indent=2))
    if cur.exists():
        shutil.rmtree(old, ignore_errors=True)
        cur.rename(old)
    new.rename(cur)
    shutil.rmtree(old, ignore_errors=True)


def _load_state(out: Path, model: LensModel, opt: torch.optim.Optimizer) -> dict[str, Any] | None:
    folder = out / STATE_DIR
    if not folder.is_dir():
        folder = out / f"{STATE_DIR}.old"  # killed between the two renames
        if not folder.is_dir():
            return None
    try:
        state = json.loads((folder / "state.json").read_text())
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
        tensors = load_file(str(folder / "optimizer.safetensors"))
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{folder}: cannot resume from this trainer state ({err})") from err
    torch.set_rng_state(tensors.pop("rng.torch"))
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        per_param.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})
    return state


@dataclass
class _Run:
    """What the steps of one training run share (built by ``_setup``)."""

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    out: Path
    data: Any  # TaskData: train_batch, evaluate, tokens_per_step, name (and tokenizer for MLM)
    model: LensModel
    opt: torch.optim.Optimizer
    precision: str = "fp32"
    precision_choice: PrecisionChoice | None = None  # how "auto" was resolved, with its measurement
    step: int = 0
    elapsed: float = 0.0  # seconds already trained before this process (resume)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def snapshotting(self) -> bool:
        return self.model.config.has_spatial_weights and self.cfg.snapshot_every > 0

    @property
    def tokenizer(self) -> Any:
        return getattr(self.data, "tokenizer", None)


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.preset`` (with overrides) and save a checkpoint folder at ``cfg.out``.

    The steps: set up (processes, device, data, model, optimizer), resume if asked, log step 0, then per
    step: one optimizer update, a W snapshot, an evaluation and a save when they are due; at the end
    save the checkpoint and measure the metrics on the stored weights.
    """
    run = _setup(cfg)
    if cfg.resume:
        _resume(run)
    _begin(run)
    ddp = torch.nn.parallel.DistributedDataParallel(run.model) if run.world > 1 else run.model
    bar = _progress(cfg, run.step, run.rank)
    t0, window_t, window_tokens = time.perf_counter() - run.elapsed, time.perf_counter(), 0
    last: dict[str, Any] = {}
    while run.step < cfg.steps:
        if cfg.minutes is not None and time.perf_counter() - t0 > cfg.minutes * 60:
            log.info("time budget of %.1f minutes reached at step %d", cfg.minutes, run.step)
            break
        lr = lr_at(cfg, run.step)
        loss_value = _optimizer_step(run, ddp, lr)
        window_tokens += run.data.tokens_per_step * run.world
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
        if run.snapshotting and run.step % cfg.snapshot_every == 0:
            run.snapshots[run.step] = torch.stack(run.model.spatial_weights()).cpu()
        if run.step % cfg.eval_every == 0 or run.step == cfg.steps:
            now = time.perf_counter()
            row = {"step": run.step, "loss": loss_value, "lr": lr}
            row["tokens_per_s"] = window_tokens / max(now - window_t, 1e-9)
            last = _evaluate(run, row, elapsed=now - t0)
            window_t, window_tokens = time.perf_counter(), 0
        if cfg.save_every and run.step % cfg.save_every == 0 and run.step < cfg.steps and run.rank == 0:
            _save_progress(run, last, elapsed=time.perf_counter() - t0)
    if bar is not None:
        bar.close()
    metrics = _finish(run, last, train_seconds=time.perf_counter() - t0) if run.rank == 0 else {}
    if run.world > 1:
        dist.barrier()
    return TrainResult(run.out, metrics)


def _setup(cfg: TrainConfig) -> _Run:
    """Processes and device, the task data, the seeded model and its optimizer; checks the output folder."""
    rank, world = _distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    out = Path(cfg.out)
    if cfg.init_from is not None and cfg.task is not None:
        start = start_finetune(cfg.init_from, cfg.task, cfg.seed, device, pretrained=not cfg.from_scratch)
        model = start.model
        model_cfg = model.config
        data: Any = FinetuneData.build(
            cfg.task, start.tokenizer, model_cfg.seq_len, cfg.batch_size, cfg.seed, source=cfg.data
        )
    else:
        model_cfg = preset(cfg.preset, **cfg.overrides)
        # The limits every config read from disk meets (``limits.check_config``), before any data is rendered at
        # the config's sizes: ``--set image_size=40000`` is a message, not gigabytes of canvases.
        check_config(model_cfg, source=f"preset {cfg.preset!r} with {cfg.overrides}" if cfg.overrides else cfg.preset)
        data, model_cfg = build_task_data(
            model_cfg,
            cfg.data,
            cfg.batch_size,
            cfg.seed,
            short_fraction=cfg.short_fraction,
            val_windows=cfg.val_windows,
            mask_prob=cfg.mask_prob,
        )
        torch.manual_seed(cfg.seed)
        model = build_model(model_cfg).to(device)
    if rank == 0:
        _check_output(out, model_cfg, cfg)
        _preflight(out, sum(p.numel() for p in model.parameters()))
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    return _Run(cfg, rank, world, device, out, data, model, opt)


def _resume(run: _Run) -> None:
    """Continue from the trainer state in the output folder, when there is one."""
    state = _load_state(run.out, run.model, run.opt)
    if state is None:
        log.info("nothing to resume in %s: starting from scratch", run.out)
        return
    run.step, run.elapsed = state["step"], state.get("elapsed_s", 0.0)
    run.snapshots = load_spatial_snapshots(run.out / STATE_DIR, run.model.config)
    log.info("resumed from step %d", run.step)


def _begin(run: _Run) -> None:
    """Trim the log to the starting step, snapshot W at step 0, pick the precision, evaluate before training."""
    if run.rank == 0:
        _truncate_log(run.out / METRICS_LOG, run.step)
    if run.snapshotting and 0 not in run.snapshots and run.step == 0:
        run.snapshots[0] = torch.stack(run.model.spatial_weights())
    run.precision_choice = choose_precision(run.cfg.precision, run.device, gemm_shapes(run.model.config, run.cfg))
    run.precision = run.precision_choice.precision
    log.info("training in %s on %s (%s)", run.precision, run.device, torch.backends.cpu.get_cpu_capability())
    if run.step == 0 and run.rank == 0:
        run.model.eval()
        _append_log(run.out / METRICS_LOG, {"step": 0, "lr": 0.0, **run.data.evaluate(run.model), "elapsed_s": 0.0})


def _optimizer_step(run: _Run, ddp: torch.nn.Module, lr: float) -> float:
    """One update on the next batch at learning rate ``lr``; returns the batch's loss."""
    run.model.train()
    for group in run.opt.param_groups:
        group["lr"] = lr
    batch = {k: v.to(run.device) for k, v in run.data.train_batch(run.step, run.rank).items()}
    with autocast(run.precision, run.device):
        loss = ddp(**batch).loss
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if run.cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.opt.step()
    run.step += 1
    return loss.item()


def _evaluate(run: _Run, row: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """``row`` completed with the validation metrics and the elapsed time, logged (rank 0) and returned."""
    run.model.eval()
    row = row | run.data.evaluate(run.model)
    row["elapsed_s"] = elapsed
    if run.rank == 0:
        _append_log(run.out / METRICS_LOG, row)
        log.info("step %d: %s", run.step, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return row


def _save_progress(run: _Run, last: dict[str, Any], elapsed: float) -> None:
    """A resumable trainer state and an intermediate checkpoint."""
    _save_state(run.out, run.model, run.opt, run.step, {"elapsed_s": elapsed})
    save_spatial_snapshots(run.out / STATE_DIR, run.snapshots)
    save_checkpoint(run.model, run.out, tokenizer=run.tokenizer, metrics={"step": run.step, **last})


def _finish(run: _Run, last: dict[str, Any], train_seconds: float) -> dict[str, Any]:
    """Save the checkpoint and the W snapshots, then measure the metrics on the stored weights (rank 0)."""
    cfg, data = run.cfg, run.data
    extra = {
        "data": data.name,
        # The recipe, not where this machine wrote it: a checkpoint is read from wherever it is copied to.
        "train": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "resume", "out")},
        "command": _cli_command(sys.argv),
    }
    save_checkpoint(run.model, run.out, tokenizer=run.tokenizer, extra=extra, dtype=getattr(torch, cfg.dtype))
    save_spatial_snapshots(run.out, run.snapshots)
    # The stored metric is measured on the stored weights, so `eval` reproduces it exactly.
    stored = load_checkpoint(run.out, device=run.device)
    metrics = {
        **data.evaluate(stored),
        "steps": run.step,
        "tokens_seen": run.step * data.tokens_per_step * run.world,
        "train_seconds": train_seconds,
        "data": data.name,
        "seed": cfg.seed,
        "device": str(run.device),
        "precision": run.precision,  # of the training steps; the metrics above are measured in fp32
        "precision_choice": run.precision_choice.record() if run.precision_choice else None,
        # float32 sums depend on the kernels the CPU gets: numbers reproduce bit for bit on the same
        # machine kind, to a tolerance elsewhere (README, "Reproducibility")
        **cpu_description(),
        "python": platform.python_version(),  # the built-in corpora are read from this Python's own files
        "world_size": run.world,
        "final_loss": last.get("loss"),
    }
    if stored.config.spec.fill_mask and data.name in BUILT_IN_CORPORA:
        metrics |= _cloze_metrics(stored, run.tokenizer)
    if isinstance(data, FinetuneData):
        metrics |= data.evaluate(stored, "test")  # reported once, at the end; choices are made on validation
    write_json_atomic(run.out / METRICS_NAME, metrics)
    return metrics


def _cloze_metrics(model: LensModel, tokenizer: Any) -> dict[str, int]:
    """The cloze suite's score (``gmlp_core.cloze``): how many of its Python sentences get the obvious word
    first / in the top 5, so the dashboard can tell a class what to expect of a model trained on Python's docs."""
    from gmlp_core.cloze import cloze_score, cloze_table, load_cloze_suite

    score = cloze_score(cloze_table(model, tokenizer, load_cloze_suite(), k=5))
    return {"cloze_top1": score["top1"], "cloze_top5": score["top5"], "cloze_sentences": score["sentences"]}


def _cli_command(argv: list[str]) -> str:
    """The command line that ran us, as a user types it (``python -m gmlp_core train ...``); "" from Python."""
    if argv and Path(argv[0]).name == "gmlp-lens":  # the installed console script
        return " ".join(["gmlp-lens", *argv[1:]])
    if not argv or "gmlp_core" not in argv[0]:
        return ""
    return " ".join(["python -m gmlp_core", *argv[1:]])


def _progress(cfg: TrainConfig, start: int, rank: int) -> Any:  # a tqdm bar, or None
    if not cfg.progress or rank != 0:
        return None
    from tqdm.auto import tqdm

    what = f"finetune {cfg.task}" if cfg.task else f"train {cfg.preset}"
    return tqdm(total=cfg.steps, initial=start, desc=what, unit="step", dynamic_ncols=True)


def _append_log(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop logged rows after ``step`` (a resumed run logs them again)."""
    if not path.is_file():
        return
    rows = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    keep = [ln for ln in rows if json.loads(ln).get("step", 0) <= step]
    if step == 0:
        keep = []
    path.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")

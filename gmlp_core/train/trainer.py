"""The training loop: AdamW, warmup + cosine, clipping, bf16 autocast, DDP, exact resume, safe checkpoints.

Under ``torchrun --nproc_per_node N`` the same call runs data-parallel (gloo on CPU, nccl on GPU):
each rank draws its own ``batch_size`` rows (global batch = N x batch_size) and only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from gmlp_core.checkpoints import CheckpointError, load_checkpoint, resolve_device, save_checkpoint, write_json_atomic
from gmlp_core.hardware import PRECISIONS, autocast, cpu_description, resolve_precision
from gmlp_core.models import LensModel, build_model, preset
from gmlp_core.train.data import build_task_data
from gmlp_core.train.snapshots import load_spatial_snapshots, save_spatial_snapshots

log = logging.getLogger(__name__)

STATE_DIR = "trainer_state"
METRICS_LOG = "metrics.jsonl"


@dataclass
class TrainConfig:
    """One training run. ``steps`` sets the schedule; ``minutes`` (optional) also stops on wall time."""

    preset: str
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
    dtype: str = "float32"  # storage dtype of the final checkpoint: float32 | float16 | bfloat16
    # Forward-pass precision: auto (bf16 autocast on CUDA and on CPUs with native bf16, else fp32) | fp32 | bf16.
    # Weights, gradients and optimizer state are float32 in every case; validation runs in fp32.
    precision: str = "auto"
    progress: bool = True
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be positive")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be positive")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype={self.dtype!r}: use float32, float16 or bfloat16")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, Any]


def demo_lr(arch: str) -> float:
    """The peak learning rate the demo zoo and the sweeps use: 2e-3 for gMLP and aMLP, 1e-3 for the Transformer."""
    return 1e-3 if arch == "transformer" else 2e-3


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
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(new / "model.safetensors"))
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
        model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
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


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.preset`` (with overrides) and save a checkpoint folder at ``cfg.out``."""
    rank, world = _distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    model_cfg = preset(cfg.preset, **cfg.overrides)
    out = Path(cfg.out)
    data, model_cfg = build_task_data(model_cfg, cfg.data, cfg.batch_size, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg).to(device)
    if rank == 0:
        _preflight(out, sum(p.numel() for p in model.parameters()))
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    start, elapsed, snapshots = 0, 0.0, {}
    if cfg.resume:
        state = _load_state(out, model, opt)
        if state is not None:
            start, elapsed = state["step"], state.get("elapsed_s", 0.0)
            snapshots = load_spatial_snapshots(out / STATE_DIR)
            log.info("resumed from step %d", start)
        else:
            log.info("nothing to resume in %s: starting from scratch", out)
    if rank == 0:
        _truncate_log(out / METRICS_LOG, start)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    snap = model_cfg.has_spatial_weights and cfg.snapshot_every > 0
    if snap and 0 not in snapshots and start == 0:
        snapshots[0] = torch.stack(model.spatial_weights())
    precision = resolve_precision(cfg.precision, device)
    log.info("training in %s on %s (%s)", precision, device, torch.backends.cpu.get_cpu_capability())
    if start == 0 and rank == 0:
        model.eval()
        _append_log(out / METRICS_LOG, {"step": 0, "lr": 0.0, **data.evaluate(model), "elapsed_s": 0.0})
    bar = _progress(cfg, start, rank)
    t0, window_t, window_tokens = time.perf_counter() - elapsed, time.perf_counter(), 0
    last: dict[str, Any] = {}
    step = start
    while step < cfg.steps:
        if cfg.minutes is not None and time.perf_counter() - t0 > cfg.minutes * 60:
            log.info("time budget of %.1f minutes reached at step %d", cfg.minutes, step)
            break
        model.train()
        lr = lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = {k: v.to(device) for k, v in data.train_batch(step, rank).items()}
        with autocast(precision, device):
            loss = ddp(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        window_tokens += data.tokens_per_step * world
        loss_value = loss.item()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
        if snap and step % cfg.snapshot_every == 0:
            snapshots[step] = torch.stack(model.spatial_weights()).cpu()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            row = {
                "step": step,
                "loss": loss_value,
                "lr": lr,
                "tokens_per_s": window_tokens / max(now - window_t, 1e-9),
            }
            model.eval()
            row |= data.evaluate(model)
            row["elapsed_s"] = now - t0
            last = row
            if rank == 0:
                _append_log(out / METRICS_LOG, row)
                log.info("step %d: %s", step, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            window_t, window_tokens = time.perf_counter(), 0
        if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps and rank == 0:
            _save_state(out, model, opt, step, {"elapsed_s": time.perf_counter() - t0})
            save_spatial_snapshots(out / STATE_DIR, snapshots)
            save_checkpoint(model, out, tokenizer=getattr(data, "tokenizer", None), metrics={"step": step, **last})
    if bar is not None:
        bar.close()
    train_seconds = time.perf_counter() - t0
    result_metrics: dict[str, Any] = {}
    if rank == 0:
        extra = {
            "data": data.name,
            # The recipe, not where this machine wrote it: a checkpoint is read from wherever it is copied to.
            "train": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "resume", "out")},
            "command": _cli_command(sys.argv),
        }
        tokenizer = getattr(data, "tokenizer", None)
        save_checkpoint(model, out, tokenizer=tokenizer, extra=extra, dtype=getattr(torch, cfg.dtype))
        save_spatial_snapshots(out, snapshots)
        # The stored metric is measured on the stored weights, so `eval` reproduces it exactly.
        stored = load_checkpoint(out, device=device)
        result_metrics = {
            **data.evaluate(stored),
            "steps": step,
            "tokens_seen": step * data.tokens_per_step * world,
            "train_seconds": train_seconds,
            "data": data.name,
            "seed": cfg.seed,
            "device": str(device),
            "precision": precision,  # of the training steps; the metrics above are measured in fp32
            # float32 sums depend on the kernels the CPU gets: numbers reproduce bit for bit on the same
            # machine kind, to a tolerance elsewhere (README, "Reproducibility")
            **cpu_description(),
            "world_size": world,
            "final_loss": last.get("loss"),
        }
        write_json_atomic(out / "metrics.json", result_metrics)
    if world > 1:
        dist.barrier()
    return TrainResult(out, result_metrics)


def _cli_command(argv: list[str]) -> str:
    """The command line that ran us, as a user types it (``python -m gmlp_core train ...``); "" from Python."""
    if argv and Path(argv[0]).name == "gmlp-lens":  # the installed console script
        return " ".join(["gmlp-lens", *argv[1:]])
    if not argv or "gmlp_core" not in argv[0]:
        return ""
    return " ".join(["python -m gmlp_core", *argv[1:]])


def _progress(cfg: TrainConfig, start: int, rank: int):  # noqa: ANN202 - tqdm or None
    if not cfg.progress or rank != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.preset}", unit="step", dynamic_ncols=True)


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

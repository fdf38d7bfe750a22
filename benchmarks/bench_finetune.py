"""Wall time of one finetuning run at the recipe (``gmlp_core.train.finetune.FINETUNE_RECIPE``) per zoo MLM model.

The goal (issue #36): one run of a zoo-size model in at most 3 minutes on a 2-core CPU. Measured end to end as a
user runs it (``python -m gmlp_core finetune`` in a fresh process, at the recipe's own rate per architecture):
starting Python, building the task's data, the steps, the validations, saving, and the final validation and test
on the stored weights. The ratio printed beside each run is its time per step
against the same model's MLM training step at the same batch (timed in the same process), so a machine that is
slower overall shows the same ratio.

    python benchmarks/bench_finetune.py                          # the zoo's gMLP, aMLP and Transformer on docs-match
    python benchmarks/bench_finetune.py --models mlm-gmlp --task docs-span
    python benchmarks/bench_finetune.py --quick                  # 20 steps, a smoke run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gmlp_core import load_checkpoint
from gmlp_core.hardware import cpu_description
from gmlp_core.train.finetune import FINETUNE_RECIPE

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"


def mlm_step_seconds(source: Path, batch: int, repeats: int = 10) -> float:
    """Seconds per MLM training step (forward, backward, AdamW) of ``source`` at ``batch`` rows, 15% predicted."""
    model = load_checkpoint(source, device="cpu").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n, vocab = model.config.seq_len, model.config.vocab_size
    ids = torch.randint(5, vocab, (batch, n))
    labels = torch.where(torch.rand(batch, n) < 0.15, ids, torch.full_like(ids, -100))
    times = []
    for _ in range(repeats + 2):
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sorted(times[2:])[len(times[2:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlm-gmlp", "mlm-amlp", "mlm-transformer"])
    parser.add_argument("--task", default="docs-match")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="20 steps instead of the recipe's")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = 20 if args.quick else FINETUNE_RECIPE.steps
    cpu = cpu_description()
    print(f"CPU: {cpu['cpu']} ({cpu['cpu_capability']}), torch {torch.__version__}, {args.threads} threads")
    print(f"task {args.task}, {steps} steps of {FINETUNE_RECIPE.batch_size}, fp32")
    print(f"{'model':<18}{'run s':>8}{'other s':>9}{'ms/step':>9}{'MLM ms/step':>13}{'ratio':>7}")
    for name in args.models:
        source = ROOT / name
        with tempfile.TemporaryDirectory() as out:
            command = [
                sys.executable,
                "-m",
                "gmlp_core",
                "finetune",
                str(source),
                "--task",
                args.task,
                "--out",
                out,
                "--steps",
                str(steps),
                "--threads",
                str(args.threads),
                "--precision",
                "fp32",
                "--no-progress",
            ]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            total = time.perf_counter() - start
            metrics = json.loads((Path(out) / "metrics.json").read_text())
        per_step = metrics["train_seconds"] / steps
        mlm = mlm_step_seconds(source, FINETUNE_RECIPE.batch_size)
        # other: everything but the steps (interpreter and imports, the task's data, the final evaluation)
        print(
            f"{name:<18}{total:>8.1f}{total - metrics['train_seconds']:>9.1f}{per_step * 1e3:>9.1f}"
            f"{mlm * 1e3:>13.1f}{per_step / mlm:>7.2f}"
        )


if __name__ == "__main__":
    main()

"""fp32 against bf16 autocast on the zoo's own MLM recipes: milliseconds per training step, same batches, and
what ``--precision auto`` picks for each (its GEMM measurement) and how far that is from the faster of the two.

Each zoo MLM entry (gMLP, aMLP, Transformer) trains from the same seed in both precisions; the two take turns
in rounds of 8 steps so background load hits them alike, and the median over rounds is reported with the ratio.

    python benchmarks/bench_precision.py            # ~1 minute on a 2-core CPU
    python benchmarks/bench_precision.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_header  # noqa: E402

from gmlp_core import build_model  # noqa: E402
from gmlp_core.hardware import autocast, choose_precision  # noqa: E402
from gmlp_core.models import preset  # noqa: E402
from gmlp_core.train import TrainConfig  # noqa: E402
from gmlp_core.train.data import build_task_data  # noqa: E402
from gmlp_core.train.trainer import gemm_shapes  # noqa: E402
from gmlp_core.zoo import ZOO_THREADS, zoo_entry  # noqa: E402


def step_times(name: str, rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per optimizer step of zoo entry ``name`` in fp32 and in bf16."""
    entry = zoo_entry(name)
    data, cfg = build_task_data(preset(entry.preset, **entry.overrides), None, entry.batch_size, entry.seed)
    device = torch.device("cpu")
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(entry.seed)
        model = build_model(cfg).train()
        runs[precision] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))  # the rate does not change timing
    times: dict[str, list[float]] = {p: [] for p in runs}
    for r in range(rounds + 1):  # round 0 warms up
        for precision, (model, opt) in runs.items():
            per_step = []
            for s in range(steps):
                batch = data.train_batch(r * steps + s)
                start = time.perf_counter()
                with autocast(precision, device):
                    loss = model(**batch).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                per_step.append(time.perf_counter() - start)
            if r:
                times[precision].append(statistics.median(per_step))
    return {p: statistics.median(t) for p, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 1, 2
    torch.set_num_threads(ZOO_THREADS)
    print_header("zoo MLM training step, fp32 vs bf16 autocast (ms/step; lower is better)")
    cpu = torch.device("cpu")
    print(
        f"{'entry':<18} {'fp32 ms':>9} {'bf16 ms':>9} {'bf16 speed-up':>14} {'GEMM speed-up':>14} {'auto':>5} {'auto/best':>10}"
    )
    for name in ("mlm-gmlp", "mlm-amlp", "mlm-transformer"):
        t = step_times(name, args.rounds, args.steps)
        entry = zoo_entry(name)
        config = preset(entry.preset, **entry.overrides)
        shapes = gemm_shapes(config, TrainConfig(preset=entry.preset, batch_size=entry.batch_size))
        choice = choose_precision("auto", cpu, shapes)  # what `train --precision auto` picks for this entry
        best = min(t.values())
        print(
            f"{name:<18} {t['fp32'] * 1e3:9.1f} {t['bf16'] * 1e3:9.1f} {t['fp32'] / t['bf16']:13.2f}x "
            f"{choice.bf16_speedup:13.2f}x {choice.precision:>5} {t[choice.precision] / best:9.2f}x"
        )


if __name__ == "__main__":
    main()

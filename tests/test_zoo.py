"""The shipped demo zoo: every entry loads, and `eval` reproduces its stored metric.

Bit for bit on the kind of CPU that built the entry (``metrics.json`` records torch's CPU capability,
e.g. AVX2 or AVX512): other SIMD kernels sum float32 in another order, which moves a perplexity in its
7th digit and can move a 600-step training run further, so there the tests allow for that and say so.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from gmlp_core import load_checkpoint, load_tokenizer
from gmlp_core.evaluate import evaluate_checkpoint
from gmlp_core.zoo import DEFAULT_ROOT, ZOO, ablation_table, entry_config

ENTRIES = [e.name for e in ZOO]
CPU = torch.backends.cpu.get_cpu_capability()


def _same_cpu(stored: dict) -> bool:
    return stored.get("cpu_capability") == CPU and stored.get("torch") == torch.__version__


@pytest.mark.parametrize("name", ENTRIES)
def test_zoo_entry_loads_and_eval_reproduces_its_metric(name: str) -> None:
    folder = DEFAULT_ROOT / name
    assert (folder / "model.safetensors").is_file(), f"{folder} is missing: run `python -m gmlp_core zoo --only {name}`"
    model = load_checkpoint(folder, device="cpu")
    stored = json.loads((folder / "metrics.json").read_text())
    again = evaluate_checkpoint(folder, device="cpu")
    key = "val_ppl" if model.config.task == "mlm" else "val_accuracy"
    if _same_cpu(stored):
        assert again[key] == stored[key], f"{name}: eval gives {again[key]} but metrics.json says {stored[key]}"
    else:  # same weights and batches, another summation order
        assert again[key] == pytest.approx(stored[key], rel=1e-5), f"{name}: eval {again[key]} vs {stored[key]}"
    assert stored["steps"] == entry_config(next(e for e in ZOO if e.name == name), DEFAULT_ROOT).steps
    if model.config.task == "mlm":
        assert load_tokenizer(folder) is not None
        assert stored["val_ppl"] < stored["unigram_ppl"], "a trained model beats the unigram baseline"
    else:
        assert stored["val_accuracy"] > 0.8


def test_zoo_is_small_and_stored_in_fp16() -> None:
    files = [p for p in DEFAULT_ROOT.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert total < 40 * 2**20, f"the zoo is {total / 2**20:.1f} MB; the budget is 40 MB"
    from safetensors import safe_open

    with safe_open(str(DEFAULT_ROOT / "mlm-gmlp" / "model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())  # noqa: SIM118 - safe_open is not iterable


def test_zoo_gmlp_learned_local_spatial_weights() -> None:
    """The paper's finding at demo scale: the first layer's W is a local, shift-invariant filter, and every
    layer is more local than a W with no preference (the README quotes these figures)."""
    from gmlp_core.analysis.spatial import spatial_summary

    summary = spatial_summary(load_checkpoint(DEFAULT_ROOT / "mlm-gmlp", device="cpu"))
    first = summary.iloc[0]
    assert first.locality > 4 * first.locality_random, "layer 0 concentrates |W| near the diagonal"
    assert first.shift_invariance > 0.9, "layer 0 is almost exactly Toeplitz (a convolution)"
    assert (summary.locality > 1.5 * summary.locality_random).all(), summary


def test_ablation_table_matches_the_zoo_and_the_committed_csv() -> None:
    table = ablation_table(DEFAULT_ROOT)
    assert set(table.variant) == {"transformer", "split", "multiplicative", "additive", "linear", "identity"}
    assert table.val_ppl.notna().all()
    # The paper's Table 1 beside ours: every variant but our identity control has the paper's number.
    paper = table.set_index("variant")["paper_ppl"]
    assert paper.drop("identity").notna().all() and paper.isna()["identity"]
    assert list(table.variant[:5]) == ["split", "transformer", "multiplicative", "additive", "linear"]
    worst = table.sort_values("val_ppl").iloc[-1]
    assert worst.variant == "identity", "with no token mixing at all, MLM is worst"
    committed = pd.read_csv(DEFAULT_ROOT.parent / "results" / "ablation.csv")
    assert list(committed.checkpoint) == list(table.checkpoint)
    assert committed.val_ppl.to_numpy() == pytest.approx(table.val_ppl.to_numpy(), rel=1e-12)


def test_rebuilding_an_entry_reproduces_its_stored_number(tmp_path, capsys) -> None:  # noqa: ANN001
    """`python -m gmlp_core zoo --only vision-gmlp` gives the stored validation numbers bit for bit, and
    says what it built, how long it took and on which CPU."""
    from gmlp_core.cli import main

    root, results = tmp_path / "zoo", tmp_path / "results"
    assert main(["zoo", "--only", "vision-gmlp", "--root", str(root), "--results", str(results)]) == 0
    printed = capsys.readouterr().out
    rebuilt = json.loads((root / "vision-gmlp" / "metrics.json").read_text())
    stored = json.loads((DEFAULT_ROOT / "vision-gmlp" / "metrics.json").read_text())
    assert "vision-gmlp" in printed and f"val_accuracy {rebuilt['val_accuracy']:.1%}" in printed
    assert "total" in printed and f"CPU capability {CPU}" in printed
    assert not (results / "ablation.csv").exists(), "one vision entry is no ablation: nothing to tabulate"
    if _same_cpu(stored):
        assert rebuilt["val_accuracy"] == stored["val_accuracy"]
        assert rebuilt["val_loss"] == stored["val_loss"]
    else:  # 600 steps amplify the last-bit differences of other SIMD kernels; the result must still agree
        assert abs(rebuilt["val_accuracy"] - stored["val_accuracy"]) <= 0.03  # 11 of 360 digits
        assert rebuilt["val_loss"] == pytest.approx(stored["val_loss"], rel=0.3)

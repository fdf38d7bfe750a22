"""The cloze suite, the `cloze` and `tune` commands, and the learning-rate sweep's bookkeeping."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from gmlp_core import build_model, preset
from gmlp_core.cli import main
from gmlp_core.cloze import CLOZE_FILE, cloze_score, cloze_table, load_cloze_suite
from gmlp_core.data.text import embedded_corpus
from gmlp_core.data.tokenizer import train_tokenizer
from gmlp_core.tuning import best_rates, plateau_improvement, run_lr_sweep
from gmlp_core.zoo import zoo_entry

REPO = Path(__file__).resolve().parent.parent


def test_the_suite_has_forty_well_formed_sentences() -> None:
    items = load_cloze_suite()
    assert len(items) >= 40
    assert len({item.sentence for item in items}) == len(items)
    for item in items:
        assert item.sentence.count("[MASK]") == 1
        assert item.answers and all(a == a.lower().strip() and a for a in item.answers)


def test_a_malformed_suite_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("# comment\nA [MASK] here.\tword\nNo mask here.\tword\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:3"):
        load_cloze_suite(bad)
    bad.write_text("Two [MASK] [MASK].\tword\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:1"):
        load_cloze_suite(bad)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(embedded_corpus().train, 4096)


def test_a_model_that_always_says_break_gets_exactly_the_break_sentences(tokenizer) -> None:
    cfg = preset("gmlp-tiny-mlm").replace(vocab_size=tokenizer.get_vocab_size(), seq_len=64)
    model = build_model(cfg).eval()
    break_id = tokenizer.token_to_id("break")
    loop_id = tokenizer.token_to_id("loop")
    assert break_id is not None and loop_id is not None
    with torch.no_grad():
        model.decoder_bias[break_id] = 100.0  # first guess everywhere
        model.decoder_bias[loop_id] = 50.0  # second guess everywhere
    items = load_cloze_suite()
    table = cloze_table(model, tokenizer, items, k=2)
    expected_top1 = {i for i, item in enumerate(items) if "break" in item.answers}
    expected_top2 = expected_top1 | {i for i, item in enumerate(items) if "loop" in item.answers}
    assert set(table.index[table["top1"]]) == expected_top1 and expected_top1
    assert set(table.index[table["top2"]]) == expected_top2 and len(expected_top2) > len(expected_top1)
    assert (table.loc[list(expected_top2 - expected_top1), "rank"] == 2).all()
    assert cloze_score(table) == {
        "sentences": len(items),
        "top1": len(expected_top1),
        "top2": len(expected_top2),
        "predictable": int(table["predictable"].sum()),
    }
    # An answer that is several word pieces here can never be predicted, and the table says so.
    assert not table["predictable"].all()


def test_cloze_command_scores_zoo_checkpoints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloze", str(REPO / "checkpoints" / "mlm-amlp"), "--details"]) == 0
    out = capsys.readouterr().out
    assert "top-1 " in out and f"/{len(load_cloze_suite(CLOZE_FILE))}" in out
    assert "break" in out  # the details table lists the accepted answers
    assert main(["cloze", str(REPO / "checkpoints" / "vision-gmlp")]) == 2, "a vision model is refused"
    assert "needs an MLM checkpoint" in capsys.readouterr().err


def test_plateau_improvement_reads_the_last_fifth() -> None:
    history = [
        {"step": s, "val_ppl": v} for s, v in [(0, 4000.0), (400, 100.0), (800, 50.0), (900, 49.0), (1000, 48.5)]
    ]
    assert plateau_improvement(history) == pytest.approx((50.0 - 48.5) / 50.0)
    assert math.isnan(plateau_improvement(history[:1]))
    # Rows without the metric (training-loss rows) are ignored.
    assert plateau_improvement([{"step": 950, "loss": 1.0}, *history]) == pytest.approx(0.03)


def test_best_rates_takes_the_lowest_perplexity_per_entry() -> None:
    table = pd.DataFrame(
        {
            "entry": ["a", "a", "a", "b", "b"],
            "steps": [10] * 5,
            "data": ["embedded"] * 5,
            "lr": [1e-3, 2e-3, 4e-3, 1e-3, 2e-3],
            "val_ppl": [30.0, 20.0, 25.0, 40.0, 41.0],
        }
    )
    best = best_rates(table).set_index("entry")["lr"].to_dict()
    assert best == {"a": 2e-3, "b": 1e-3}
    # Runs at another masking rate are another recipe: each recipe has its own best rate.
    table["mask_prob"] = [0.15, 0.15, 0.4, 0.15, 0.15]
    per_recipe = best_rates(table).set_index(["entry", "mask_prob"])["lr"].to_dict()
    assert per_recipe == {("a", 0.15): 2e-3, ("a", 0.4): 4e-3, ("b", 0.15): 1e-3}


@pytest.mark.slow
def test_lr_sweep_writes_rows_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lr.csv"
    table = run_lr_sweep(["mlm-gmlp"], [1e-3, 2e-3], out, tmp_path / "runs", steps=2)
    assert list(table["lr"]) == [1e-3, 2e-3] and (table["steps"] == 2).all()
    assert (table["mask_prob"] == zoo_entry("mlm-gmlp").mask_prob).all(), "the row says how it was masked"
    assert (table["warmup"] == zoo_entry("mlm-gmlp").warmup).all(), "and its warm-up"
    assert table["val_ppl"].gt(1).all() and table["cloze_sentences"].eq(len(load_cloze_suite())).all()
    assert table["shift_invariance"].str.count("/").eq(3).all(), "one score per layer"
    again = run_lr_sweep(["mlm-gmlp"], [1e-3, 2e-3], out, tmp_path / "runs", steps=2)
    assert len(pd.read_csv(out)) == 2 and again["val_ppl"].tolist() == table["val_ppl"].tolist()
    # Rows from before the warm-up was recorded may be another recipe: not taken for this one.
    pd.read_csv(out).drop(columns="warmup").to_csv(out, index=False)
    redone = run_lr_sweep(["mlm-gmlp"], [1e-3, 2e-3], out, tmp_path / "runs", steps=2)
    assert len(redone) == 4 and list(redone["warmup"].iloc[2:]) == [zoo_entry("mlm-gmlp").warmup] * 2
    # Stopped after training but before the row was written: summarised from the stored run, not retrained.
    out.unlink()
    (tmp_path / "runs" / "mlm-gmlp-lr0.002" / "metrics.json").unlink()
    import gmlp_core.train

    monkeypatch.setattr(gmlp_core.train, "train", lambda cfg: pytest.fail(f"retrained {cfg.out}"))
    recovered = run_lr_sweep(["mlm-gmlp"], [1e-3, 2e-3], out, tmp_path / "runs", steps=2)
    assert recovered["val_ppl"].tolist() == pytest.approx(table["val_ppl"].tolist(), rel=1e-6)
    assert recovered["cloze_top5"].tolist() == table["cloze_top5"].tolist()


@pytest.mark.slow
def test_lr_sweep_of_a_transformer_has_no_w_columns(tmp_path: Path) -> None:
    table = run_lr_sweep(["mlm-transformer"], [1e-3], tmp_path / "lr.csv", tmp_path / "runs", steps=2)
    assert table["val_ppl"].gt(1).all() and table["arch"].eq("transformer").all()
    assert "shift_invariance" not in table or table["shift_invariance"].isna().all()

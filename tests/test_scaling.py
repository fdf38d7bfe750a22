"""Sweep grids and power-law fits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gmlp_core.scaling import describe_grid, fit_power_law, load_grid, load_sweep_csvs, power_law_curve


def test_demo_grid_spans_one_and_a_half_decades_per_arch() -> None:
    sizes = describe_grid(load_grid("demo"))
    for arch, group in sizes.groupby("arch"):
        assert len(group) >= 5, arch
        span = math.log10(group.non_embedding_params.max() / group.non_embedding_params.min())
        assert span >= 1.5, f"{arch} spans only {span:.2f} decades"
        assert group.tokens.nunique() == 1, "a fixed token budget across sizes"
    assert set(sizes.arch) >= {"gmlp", "transformer"}


def test_demo_grid_trains_each_point_on_the_zoo_mlm_budget() -> None:
    """The sweep is the zoo's recipe at other sizes, so its largest gMLP is comparable with ``mlm-gmlp``."""
    from gmlp_core.models import preset
    from gmlp_core.zoo import zoo_entry

    entry = zoo_entry("mlm-gmlp")
    budget = entry.steps * entry.batch_size * preset(entry.preset).seq_len
    assert {p.tokens for p in load_grid("demo")} == {budget}


def test_smoke_and_paper_grids_build_valid_configs() -> None:
    assert len(describe_grid(load_grid("smoke"))) == 4
    paper = describe_grid(load_grid("paper"))
    assert set(paper.arch) == {"gmlp", "transformer"}
    assert paper.params.min() > 10e6


def test_grid_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "grid.json"
    path.write_text(json.dumps([{"name": "a", "preset": "gmlp-tiny-mlm", "overrides": {"d_model": 16}, "tokens": 100}]))
    points = load_grid(str(path))
    assert points[0].config().d_model == 16
    path.write_text(json.dumps([{"name": "a", "preset": "gmlp-tiny-mlm", "overrides": {"d_model": -1}}]))
    with pytest.raises(ValueError, match="d_model"):
        load_grid(str(path))
    with pytest.raises(ValueError, match="unknown grid"):
        load_grid("nonexistent-grid")


def test_fit_recovers_a_known_power_law() -> None:
    n = np.logspace(4, 6, 6)
    rows = [{"arch": "gmlp", "non_embedding_params": x, "val_loss": 40 * x**-0.3 + 2.0} for x in n]
    rows += [{"arch": "transformer", "non_embedding_params": x, "val_loss": 9 * x**-0.2} for x in n[:3]]
    fit = fit_power_law(pd.DataFrame(rows)).set_index("arch")
    assert fit.loc["gmlp", "alpha"] == pytest.approx(0.3, rel=1e-3)
    assert fit.loc["gmlp", "c"] == pytest.approx(2.0, rel=1e-3)
    assert fit.loc["gmlp", "r2"] > 0.999
    # Three points: a pure power law in log-log.
    assert fit.loc["transformer", "form"] == "a*N^-alpha"
    assert fit.loc["transformer", "alpha"] == pytest.approx(0.2, rel=1e-6)
    curve = power_law_curve(fit.loc["gmlp"], n)
    np.testing.assert_allclose(curve, 40 * n**-0.3 + 2.0, rtol=1e-3)
    pure = fit_power_law(pd.DataFrame(rows), offset=False).set_index("arch")
    assert set(pure.form) == {"a*N^-alpha"} and (pure.c == 0).all()
    assert pure.loc["transformer", "alpha"] == pytest.approx(0.2, rel=1e-6)
    assert 0 < pure.loc["gmlp", "alpha"] < 0.3, "an offset read as a pure power law flattens the slope"


def test_fit_reports_uncertainty_for_noisy_data() -> None:
    rng = np.random.default_rng(0)
    n = np.logspace(4, 6, 6)
    df = pd.DataFrame(
        {"arch": "gmlp", "non_embedding_params": n, "val_loss": 40 * n**-0.3 + 2 + rng.normal(0, 0.01, 6)}
    )
    row = fit_power_law(df).iloc[0]
    assert 0 < row.alpha_err < 1
    assert abs(row.alpha - 0.3) < 4 * row.alpha_err + 0.05


def test_load_sweep_csvs_skips_unrelated_files(tmp_path: Path) -> None:
    good = tmp_path / "a.csv"
    pd.DataFrame({"arch": ["gmlp"], "non_embedding_params": [10], "val_loss": [3.0]}).to_csv(good, index=False)
    (tmp_path / "b.csv").write_text("x,y\n1,2\n")
    (tmp_path / "c.csv").write_bytes(b"\xff\xfe\x00garbage")
    df = load_sweep_csvs(sorted(tmp_path.glob("*.csv")))
    assert len(df) == 1 and df.source.iloc[0] == str(good)


def test_paper_reference_rows_cite_one_label_per_table_and_stay_flagged() -> None:
    from gmlp_core.reference import ABLATION_SETUP, PAPER_SHAPES, SOURCES, paper_ablation, paper_results

    ref = paper_results()
    assert set(ref.source) <= set(SOURCES) and {s.source for s in PAPER_SHAPES} <= set(SOURCES)
    assert len(set(SOURCES)) == len(SOURCES) and sum(s.startswith("Table 1") for s in SOURCES) == 1
    assert not ref.verified.any(), "nothing is checked against the paper yet: every figure stays flagged"
    ablation = paper_ablation()
    assert (ablation.setup == ABLATION_SETUP).all() and len(ablation) == 7
    split = ablation.set_index("model").value
    assert split["gMLP, multiplicative split"] < split["gMLP, multiplicative"] < split["gMLP, additive"]
    assert split["gMLP, additive"] < split["gMLP, linear"]


def test_paper_grid_is_the_papers_scaling_pairs() -> None:
    """Transformers of 6/12/24/48 layers at d_model 768 against gMLPs of 18/36/72/144 layers at 512 x 3072."""
    from gmlp_core.reference import SCALING_PAIRS

    grid = {p.name: p.config() for p in load_grid("paper")}
    shapes = sorted((c.arch, c.n_layers, c.d_model, c.d_ffn) for c in grid.values())
    assert shapes == sorted((s.arch, s.n_layers, s.d_model, s.d_ffn) for s in SCALING_PAIRS)
    assert sorted(c.n_layers for c in grid.values() if c.arch == "transformer") == [6, 12, 24, 48]
    assert sorted(c.n_layers for c in grid.values() if c.arch == "gmlp") == [18, 36, 72, 144]
    sizes = describe_grid(load_grid("paper")).set_index("name").non_embedding_params
    for t, g in (("l6-d768", "l18-d512"), ("l48-d768", "l144-d512")):  # each pair at about the same size
        assert sizes[f"gmlp-{g}"] == pytest.approx(sizes[f"transformer-{t}"], rel=0.03)


def test_paper_points_put_the_papers_models_on_our_axes_without_inventing_perplexities() -> None:
    from gmlp_core.reference import BERT_FULL_SETUP, paper_results
    from gmlp_core.scaling import PAPER_SERIES, paper_points

    points = paper_points()
    full = points[points.series == PAPER_SERIES["full"]].set_index("model")
    ref = paper_results()
    published = ref[ref.setup == BERT_FULL_SETUP].set_index("model").value
    np.testing.assert_allclose(full.val_ppl.dropna(), published[full.val_ppl.dropna().index])
    np.testing.assert_allclose(full.val_loss.dropna(), np.log(full.val_ppl.dropna()))
    # Our count of each published shape is the published total within 1%; non-embedding is what our sweeps plot
    np.testing.assert_allclose(full.params / 1e6, full.published_params_m, rtol=0.01)
    assert (points.non_embedding_params < points.params).all()
    pairs = points[points.series == PAPER_SERIES["pairs"]]
    assert len(pairs) == 8 and pairs.val_ppl.isna().all(), "the scaling pairs' perplexities are not recorded"
    assert not points.verified.any()


COMMITTED_SWEEPS = sorted((Path(__file__).resolve().parent.parent / "results").glob("sweep_*.csv"))


def test_the_repository_ships_sweeps() -> None:
    assert len(COMMITTED_SWEEPS) >= 2, "results/ holds the committed scaling sweeps the Scaling page draws"


@pytest.mark.parametrize("path", COMMITTED_SWEEPS, ids=lambda p: p.name)
def test_committed_sweeps_span_the_demo_grid_at_one_budget_and_fit(path: Path) -> None:
    """Each committed sweep is `python -m gmlp_core sweep --grid demo` at one budget and one recipe (sweep_demo.csv
    at the zoo's budget, sweep_<steps>_steps.csv at earlier ones): every point of the grid, 5 sizes per architecture
    over 1.5 decades, finite fits."""
    rows = pd.read_csv(path)
    grid = describe_grid(load_grid("demo"))
    assert set(grid.name) <= set(rows.name), "the committed sweep is the current demo grid"
    rows = rows[rows.name.isin(set(grid.name))]
    assert rows.tokens_seen.nunique() == 1 and rows.val_loss.notna().all()
    assert len(rows[["data", "precision", "mask_prob"]].drop_duplicates()) == 1, "one recipe per CSV"
    assert (rows.groupby("arch").lr.nunique() == 1).all(), "one rate per architecture at every size"
    for arch, group in rows.groupby("arch"):
        assert len(group) >= 5, arch
        assert math.log10(group.non_embedding_params.max() / group.non_embedding_params.min()) >= 1.5, arch
    fits = fit_power_law(rows)
    assert set(fits.arch) == set(rows.arch)
    assert np.isfinite(fits.alpha).all() and np.isfinite(fits.alpha_err).all()


def test_the_sweep_at_the_zoos_budget_is_the_zoos_recipe_and_reproduces_its_gmlp() -> None:
    """results/sweep_demo.csv trains every size on the zoo's MLM recipe (rate, masking, warm-up, data, precision),
    so the grid point of ``mlm-gmlp``'s own shape is that run again: the same validation loss as the shipped entry
    (both files come from the same CPU kind; the zoo measures its fp16-stored copy of the same weights, so the two
    losses agree to about 1e-5, not bit for bit)."""
    from gmlp_core.checkpoints import load_metrics
    from gmlp_core.models import preset
    from gmlp_core.zoo import DEFAULT_ROOT, MLM_LR, zoo_entry

    rows = pd.read_csv(Path(__file__).resolve().parent.parent / "results" / "sweep_demo.csv").set_index("name")
    entry = zoo_entry("mlm-gmlp")
    assert (rows.lr == rows.arch.map(MLM_LR)).all() and (rows.mask_prob == entry.mask_prob).all()
    assert (rows.warmup == entry.warmup).all() and (rows.data == entry.data).all()
    assert (rows.precision == entry.precision).all()
    fields = ("arch", "gating", "d_model", "d_ffn", "n_layers", "n_heads", "attn_dim", "seq_len", "vocab_size")
    shape = [getattr(preset(entry.preset, **entry.overrides), f) for f in fields]
    same_shape = [p.name for p in load_grid("demo") if [getattr(p.config(), f) for f in fields] == shape]
    assert same_shape == ["gmlp-d128-l4"], same_shape
    zoo_loss = load_metrics(DEFAULT_ROOT / "mlm-gmlp")["val_loss"]
    assert rows.loc["gmlp-d128-l4", "val_loss"] == pytest.approx(zoo_loss, abs=1e-4)


def test_a_sweep_records_its_recipe_resumes_and_keeps_one_recipe_per_csv(tmp_path: Path) -> None:
    """``run_sweep`` trains each point once per recipe: the rows say how they were trained, a second call skips
    every point, and a different recipe is refused for the same CSV rather than mixed into its fits."""
    from gmlp_core.sweep import run_sweep
    from gmlp_core.zoo import MLM_LR, MLM_MASK_PROB

    out = tmp_path / "sweep.csv"
    kwargs = {"workdir": tmp_path / "runs", "data": "embedded", "precision": "fp32", "threads": 1}
    rows, fits = run_sweep("smoke", out, **kwargs)
    assert len(rows) == 4 and set(fits.arch) == {"gmlp", "transformer"}
    assert (rows.data == "embedded").all() and (rows.precision == "fp32").all()
    assert (rows.lr == rows.arch.map(MLM_LR)).all(), "each architecture at its zoo rate"
    assert (rows.warmup == 1).all() and (rows.mask_prob == MLM_MASK_PROB).all() and rows.val_loss.notna().all()
    stamp = out.stat().st_mtime_ns
    again, _ = run_sweep("smoke", out, **kwargs)
    assert out.stat().st_mtime_ns == stamp and len(again) == 4, "a finished sweep trains nothing again"
    with pytest.raises(ValueError, match="another recipe"):
        run_sweep("smoke", out, **(kwargs | {"lr": 2e-3}))
    with pytest.raises(ValueError, match=f"mask_prob {MLM_MASK_PROB}; this sweep: .* mask_prob 0.15"):
        run_sweep("smoke", out, **(kwargs | {"mask_prob": 0.15}))
    # A CSV from before masking was recorded holds runs at BERT's 15%: it resumes at 15% and refuses the zoo's rate.
    pd.read_csv(out).drop(columns="mask_prob").to_csv(out, index=False)
    stamp = out.stat().st_mtime_ns
    legacy, _ = run_sweep("smoke", out, **(kwargs | {"mask_prob": 0.15}))
    assert len(legacy) == 4 and (legacy.mask_prob == 0.15).all() and out.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="mask_prob 0.15; this sweep: .* mask_prob 0.4"):
        run_sweep("smoke", out, **kwargs)

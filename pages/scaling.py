"""Scaling: perplexity against non-embedding parameters and FLOPs, with fitted power laws."""

import pandas as pd
import streamlit as st

from dashboard import context, plots, widgets
from dashboard.scaling_view import (
    ablation,
    paper_models,
    paper_slopes,
    sweep_sources,
    sweep_table,
    unigram_baseline,
    what_our_runs_show,
)
from dashboard.style import escape_markdown
from gmlp_core.reference import paper_results, paper_shapes
from gmlp_core.scaling import fit_power_law, power_law_curve

lens = context.current()
st.title("Scaling")
st.markdown(
    "Does gMLP keep up with the Transformer as models grow? The paper's answer: gMLP scales like a Transformer "
    "at equal size, and a tiny bit of attention (aMLP) closes the remaining gap. Here: every sweep CSV under the "
    "checkpoint root and `results/` (your own GPU sweep shows up too: `python -m gmlp_core sweep --out FILE.csv`)."
)

df = sweep_table(lens)
paper = paper_models()
AXES = {"non_embedding_params": "non-embedding parameters", "flops_per_token": "FLOPs per token"}
if df.empty:
    st.info("No sweep results yet. Run `python -m gmlp_core sweep --grid demo` (writes results/sweep_demo.csv).")
    y = "val_ppl"
else:
    c1, c2, c3 = st.columns([2, 2, 1])
    sources = sweep_sources(df)
    source = c1.selectbox("Sweep", sources, key="scaling-source", help="Each CSV is one sweep: fitted on its own.")
    df = df[df["source"] == source]
    archs = c2.multiselect("Architectures", sorted(df["arch"].unique()), default=sorted(df["arch"].unique()))
    y = c3.radio("Measure", ["val_ppl", "val_loss"], key="scaling-y")
    df = df[df["arch"].isin(archs)]
    st.caption(
        f"{len(df)} runs; device {escape_markdown(', '.join(map(str, df['device'].dropna().unique())) or 'unknown')}."
    )
    offset = st.toggle(
        "Fit with an irreducible loss c",
        value=True,
        key="scaling-offset",
        help="On: val = a N^-alpha + c. Off: a pure power law a N^-alpha (a straight line on log-log axes).",
    )
    all_fits = []
    for col, (x, label) in zip(widgets.columns_for(2), AXES.items(), strict=True):
        fits = fit_power_law(df, x=x, y=y, offset=offset)
        all_fits.append(fits.assign(label=f"ours, vs {label}"))
        with col:
            widgets.chart(
                plots.scaling(df, fits, x, y, curve=power_law_curve, title=f"{y} vs {label}"), key=f"scaling-{x}"
            )
            shown = fits[["arch", "alpha", "alpha_err", "c", "r2", "n_points", "a", "form"]].round(4)
            widgets.table(shown, f"power-law-fits-{x}")
    st.caption(
        "Fit per architecture: `val = a * N^-alpha + c`, or `a * N^-alpha` with the toggle off or fewer than 4 points "
        "(the `form` column says which). alpha_err is the fit's standard error."
    )
    slopes = pd.concat([*all_fits, paper_slopes(paper, "non_embedding_params", y)], ignore_index=True)
    widgets.chart(plots.slopes(slopes, title="Fitted slopes alpha, +/- 1 standard error"), key="scaling-slopes")
    st.caption(
        "Parallel lines on the log-log plots mean equal alpha here. The paper's slopes are pure power laws through "
        "its base and large models (two points: no error bar); compare them with ours with the c toggle off."
    )
    st.markdown(what_our_runs_show(df, paper))
    with st.expander("All sweep rows"):
        widgets.table(df, "sweep-rows")

st.subheader("The paper's MLM models, at their own scale")
st.caption(
    "Liu et al. 2021. Published perplexities (BERT setup on C4) against our count of each model's size from its "
    "published shape: the same kind of axis as ours, three decades further right, so in a panel of their own. The "
    "scaling pairs (Transformer vs a gMLP three times as deep) have no recorded perplexity: they are drawn as sizes "
    "only. Every figure is unverified until checked against the paper (open markers)."
)
x_paper = st.radio("Size axis", list(AXES), format_func=AXES.get, horizontal=True, key="scaling-paper-x")
widgets.chart(plots.scaling_paper(paper, x_paper, y, title=f"Paper: {y} vs {AXES[x_paper]}"), key="scaling-paper")

st.subheader("Gating ablation")
table, source = ablation(lens)
if table.empty:
    st.info("No ablation results: build the zoo (`python -m gmlp_core zoo`) to train the gating variants.")
else:
    unigram = unigram_baseline(lens, table["checkpoint"].tolist()) if "checkpoint" in table else None
    widgets.chart(plots.ablation(table, unigram), key="scaling-ablation")
    st.caption(
        f"From {escape_markdown(source)}. Lower perplexity is better; the paper's rank is its ordering of the same "
        "variants (its figures are unverified). "
        + (
            f"Dashed line: the unigram baseline logged in training ({unigram:.0f}), a model that ignores context "
            "scored on the same validation targets."
            if unigram is not None
            else "No unigram baseline: these checkpoints did not log one."
        )
    )
    widgets.table(table, "ablation")

st.subheader("The paper's published figures")
st.caption("Different setup from ours: ImageNet at 224 px and BERT pretraining on C4. Shown for reference only.")
widgets.table(paper_results(), "paper-results")
st.caption("The scaling study's pairs (shapes from secondary sources; perplexities not recorded until checked).")
widgets.table(paper_shapes(scaling_pairs=True), "paper-scaling-pairs")

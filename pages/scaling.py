"""Scaling: perplexity against non-embedding parameters and FLOPs, with fitted power laws."""

import streamlit as st

from dashboard import context, plots, widgets
from dashboard.scaling_view import ablation, paper_points, sweep_sources, sweep_table
from dashboard.style import escape_markdown
from gmlp_core.reference import paper_results
from gmlp_core.scaling import fit_power_law, power_law_curve

lens = context.current()
st.title("Scaling")
st.markdown(
    "Does gMLP keep up with the Transformer as models grow? The paper's answer: gMLP scales like a Transformer "
    "at equal size, and a tiny bit of attention (aMLP) closes the remaining gap. Here: every sweep CSV under the "
    "checkpoint root and `results/` (your own GPU sweep shows up too: `python -m gmlp_core sweep --out FILE.csv`)."
)

df = sweep_table(lens)
if df.empty:
    st.info("No sweep results yet. Run `python -m gmlp_core sweep --grid demo` (writes results/sweep_demo.csv).")
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
    overlay = st.toggle("Overlay the paper's published MLM figures (a very different setup)", key="scaling-paper")
    offset = st.toggle(
        "Fit with an irreducible loss c",
        value=True,
        key="scaling-offset",
        help="On: val = a N^-alpha + c. Off: a pure power law a N^-alpha (a straight line on log-log axes).",
    )
    left, right = st.columns(2)
    for col, x, label in (
        (left, "non_embedding_params", "non-embedding parameters"),
        (right, "flops_per_token", "FLOPs per token"),
    ):
        fits = fit_power_law(df, x=x, y=y, offset=offset)
        with col:
            paper = paper_points(y) if overlay and x == "non_embedding_params" else None
            widgets.chart(
                plots.scaling(df, fits, x, y, curve=power_law_curve, paper=paper, title=f"{y} vs {label}"),
                key=f"scaling-{x}",
            )
            shown = fits[["arch", "alpha", "alpha_err", "c", "r2", "n_points", "a", "form"]].round(4)
            widgets.table(shown, f"power-law-fits-{x}")
    if overlay:
        st.caption(
            "Stars: Liu et al. 2021, Table 5 (BERT setup on C4, 1M steps, total parameters). They sit far from our "
            "points because the setup differs (data, steps, tokenizer, size), not because of a bug: compare slopes and "
            "orderings, not values."
        )
    st.caption(
        "Fit per architecture: `val = a * N^-alpha + c`, or `a * N^-alpha` with the toggle off or fewer than 4 points "
        "(the `form` column says which). alpha_err is the fit's standard error."
    )
    with st.expander("All sweep rows"):
        widgets.table(df, "sweep-rows")

st.subheader("Gating ablation")
table, source = ablation(lens)
if table.empty:
    st.info("No ablation results: build the zoo (`python -m gmlp_core zoo`) to train the gating variants.")
else:
    st.caption(f"From {source}. Lower perplexity is better; the paper's rank is its ordering of the same variants.")
    widgets.table(table, "ablation")

st.subheader("The paper's published figures")
st.caption("Different setup from ours: ImageNet at 224 px and BERT pretraining on C4. Shown for reference only.")
widgets.table(paper_results(), "paper-results")

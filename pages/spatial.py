"""Spatial weights: what gMLP's W looks like, layer by layer, and how it formed during training."""

import streamlit as st

from dashboard import context, plots, widgets
from dashboard.spatial_view import (
    SCORE_DEFINITIONS,
    by_construction,
    centre_filters,
    filter_positions,
    filter_stride,
    mixing_text,
    profile_matrix,
    rows_as_filters,
    snapshot_timeline,
    spatial,
    stride_options,
    with_spatial_weights,
    without_w_note,
)
from dashboard.style import show_badges

lens = context.current()
st.title("Spatial weights W")
names = with_spatial_weights(lens)
if note := without_w_note(lens):
    st.caption(note)
widgets.need_models(names, "gMLP or aMLP model (a model with spatial weights W)")
pick_model, pick_layer = st.columns([2, 3])
name = pick_model.selectbox("Model", names, format_func=lens.label, key="spatial-model")
checkpoint = lens.checkpoint(name)
with pick_model:
    show_badges(checkpoint.config)
st.markdown(mixing_text(checkpoint.config))
data = spatial(checkpoint)
n_layers, n = data.weights.shape[0], data.weights.shape[1]
layer = pick_layer.slider("Layer", 0, n_layers - 1, 0, key="spatial-layer") if n_layers > 1 else 0

st.subheader(f"Layer {layer}: W, its Toeplitz part and the residual")
st.caption(
    "Toeplitz part: the average of each diagonal of W (for images, of each 2D offset on the patch grid), i.e. "
    "the best shift-invariant (convolution-like) approximation, the one the shift invariance score measures. "
    "Residual: what depends on absolute position. Hover for positions and values."
)
fixed = by_construction(checkpoint.config)
if fixed:
    st.caption(fixed)
triplet = [data.weights[layer], data.toeplitz[layer], data.residual[layer]]
triplet_figs = plots.matrices(triplet, ["W", "Toeplitz part", "residual"], shared_scale=True, large=widgets.lecturing())
widgets.chart_row(triplet_figs, key="spatial-w")

if data.grid is None:
    st.subheader("The paper's figure: the middle token's row of W in every layer")
    profiles, offsets = profile_matrix(data.profiles)
    st.caption(
        f"Row {data.middle} of W against the offset j - i. A peak near 0 means local mixing; the same shape in every "
        "row (see the Toeplitz part) means shift invariance."
    )
    widgets.chart(plots.row_profiles(profiles, int(-offsets[0])), key="spatial-profiles")
else:
    filters, centre = centre_filters(data)
    g = data.grid
    st.subheader(f"The paper's figure: the centre patch's row of W in every layer, as a {g} x {g} filter")
    st.caption(
        f"Row {centre} of W (patch ({centre // g}, {centre % g})) drawn on the patch grid: where that patch gathers "
        "from. A gMLP trained on ImageNet shows local, convolution-like filters around the centre (the paper's Figure 3); "
        "a randomly initialised W is noise of about 1e-6."
    )
    titles = [f"layer {i}" for i in range(len(filters))]
    widgets.chart(plots.image_grid(filters, titles, cols=min(10, len(filters))), key="spatial-centre")

st.subheader("Locality and shift invariance per layer")
if data.grid is not None:
    k = int(data.summary["band_k"].iloc[0])
    st.caption(
        f"Measured in 2-D on the {data.grid} x {data.grid} patch grid: locality is the share of |W| within {k} "
        "patch(es) in both directions; shift invariance compares W with its best 2-D convolution (the Toeplitz part)."
    )
st.caption(
    "**Locality**: "
    + SCORE_DEFINITIONS["locality"]
    + ". **Shift invariance**: "
    + SCORE_DEFINITIONS["shift_invariance"]
    + ". Dashed lines: what each score gives for a W with no preference (a random W)."
)
if checkpoint.config.spatial == "toeplitz":
    st.caption(
        "Shift invariance is 1.0 in every layer **by construction**: a Toeplitz W is one weight per offset, so it "
        "is a convolution whatever it learned. Only locality tells these layers apart."
    )
baselines = {"locality": "locality_random", "shift_invariance": "shift_invariance_random"}
fig = plots.layer_lines(data.summary, "layer", list(baselines), y_title="score", baselines=baselines)
widgets.chart(fig, key="spatial-scores")
with st.expander("Every per-layer score, defined"):
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in SCORE_DEFINITIONS.items() if k in data.summary.columns))
    config = {k: st.column_config.NumberColumn(k, help=v, format="%.4f") for k, v in SCORE_DEFINITIONS.items()}
    widgets.table(data.summary, f"spatial-summary-{name}", column_config=config)

if data.grid is not None:
    grid = data.grid
    st.subheader(f"Layer {layer}: rows of W as {grid} x {grid} filters")
    unit = "pixel" if checkpoint.config.patch_size == 1 else "patch"
    st.caption(f"Each panel is one output {unit}'s row of W drawn on the {unit} grid: where that {unit} gathers from.")
    options = stride_options(grid)
    default = 1 if grid <= 4 else filter_stride(grid)
    stride = (
        st.select_slider("A filter every k patches, in each direction", options, value=default, key="spatial-stride")
        if len(options) > 1
        else options[0]
    )
    positions = filter_positions(grid, stride)
    filters = rows_as_filters(data.weights[layer], grid)
    titles = [f"{unit} ({p // grid}, {p % grid})" for p in positions]
    per_side = int(len(positions) ** 0.5)
    widgets.chart(plots.image_grid([filters[p] for p in positions], titles, cols=per_side), key="spatial-filters")

st.subheader("Watch W form during training")
snapshot_timeline(checkpoint, layer)

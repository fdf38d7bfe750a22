"""When attention matters: gMLP, aMLP and the Transformer finetuned on one sentence, a pair and a span."""

import streamlit as st

from dashboard import context, widgets
from dashboard.attention_matters_view import (
    ALIGNMENT_PAIRS,
    example_kinds,
    pair_models,
    pair_task_of,
    read,
    show_alignment,
    show_answers,
    show_pair_maps,
    show_study,
    test_examples,
)
from dashboard.lecture import PAIR
from dashboard.style import escape_markdown
from gmlp_core.data.finetune import FINETUNE_TASKS, TRUNCATION_RULE

lens = context.current()
st.title("When attention matters")
lecturing = widgets.lecturing()  # a lecture step opens on the pair and its maps; the study follows them
if not lecturing:
    st.markdown(
        "The paper's second half: after pretraining, gMLP matches a Transformer on single-sentence tasks but lags "
        "on tasks that **align two sentences** (MNLI), a much larger gMLP narrows the gap, and aMLP (one tiny "
        "attention head in the gate) closes it. Here the zoo's models are finetuned on three tasks built from "
        "Python's documentation: one sentence (is the word order original?), a pair (does B repeat A, or does one "
        "noun differ?) and a span (which word does the question ask for?)."
    )
    st.header("The study")
    show_study()

# ---- the live pair ---------------------------------------------------------------------------------------
if not lecturing:
    st.header("Try a pair")
names = pair_models(lens)
skipped = [n for n in lens.names("classify") if n not in names] + lens.names("span")
if skipped:
    st.caption(
        f"Left out here: {escape_markdown(', '.join(skipped))} (not finetuned on a sentence-pair classification task)."
    )
if not names:
    st.info(
        "No checkpoint under this folder was finetuned on a sentence-pair task. Build the zoo's with "
        "`python -m gmlp_core zoo --only match-gmlp match-amlp match-transformer`, or finetune your own: "
        "`python -m gmlp_core finetune checkpoints/mlm-gmlp --task docs-match --out checkpoints/my-match`."
    )
    st.stop()
task = pair_task_of(lens, names[0])
other_task = [n for n in names if pair_task_of(lens, n) != task]
names = [n for n in names if n not in other_task]
if other_task:
    st.caption(f"Left out here: {escape_markdown(', '.join(other_task))} (finetuned on another pair task than {task}).")
spec = FINETUNE_TASKS[task]
examples = test_examples(task) if spec.built_in else ()  # a hub task's pairs are not on this machine
if "am-a" not in st.session_state:  # the lecture's pair: one noun differs, a rare one
    st.session_state["am-a"], st.session_state["am-b"] = PAIR


def _use_example() -> None:
    picked = st.session_state.get("am-example")
    if picked is not None:
        st.session_state["am-a"], st.session_state["am-b"] = examples[picked[1]].text_a, examples[picked[1]].text_b


if examples:
    with widgets.guard("Example pairs"):
        kinds = example_kinds(lens, names, task)
        st.selectbox(
            f"Test pairs of {task} the models get right and wrong",
            [(kind, i) for kind, found in kinds.items() for i in found],
            index=None,
            placeholder="Pick an example...",
            format_func=lambda o: f"{o[0]}: {examples[o[1]].text_b}",
            key="am-example",
            on_change=_use_example,
        )
else:
    st.caption(f"{task} is read from the hub: no test pairs to pick here, type your own.")
left, right = st.columns(2)
text_a = widgets.typed_text(f"Sentence {spec.segments[0]}", "am-a", PAIR[0], where=left, area=True, height=90)
text_b = widgets.typed_text(f"Sentence {spec.segments[1]}", "am-b", PAIR[1], where=right, area=True, height=90)
st.caption(f"The task: {spec.description} {spec.caveat} Truncation: {TRUNCATION_RULE}.")

readings = {}
with widgets.guard("The pair"):
    readings = {n: read(lens, n, text_a, text_b) for n in names}
if not readings:
    st.stop()
first = next(iter(readings.values()))
if first.truncated:
    st.warning(f"The pair is longer than the models' {first.input_ids.shape[1]} positions: it was cut (see the rule).")
show_answers(lens, readings)

# ---- how B reaches A ---------------------------------------------------------------------------------------
st.header("How the words of B reach A")
st.markdown(
    "Rows: the word pieces of A; columns: those of B. Attention can put its weight on **the same word** in B "
    "wherever B starts. W is one matrix over positions, the same for every pair: its weight from A's word to "
    "B's depends only on their distance, and that distance changes with the length of A."
)
n_layers = max(lens.checkpoint(n).config.n_layers for n in names)
layer = st.slider("Layer", 0, n_layers - 1, 0, key="am-layer") if n_layers > 1 else 0
with widgets.guard("Token mixing"):
    for name, reading in readings.items():
        show_pair_maps(lens, name, reading, text_a, text_b, layer)

if examples:
    st.subheader(f"Over {min(ALIGNMENT_PAIRS, len(examples))} test pairs")
    st.caption(
        "For each A word that recurs in B: the share of its weight on B that lands on the same word, against a "
        "mixing with no preference (ratio 1). Attention that aligns the sentences scores far above 1; W cannot."
    )
    with widgets.guard("Alignment over test pairs"):
        show_alignment(lens, names, task)

if lecturing:
    st.header("The study")
    show_study()

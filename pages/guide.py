"""Guide: what the paper claims, how to read each page, and what to look for."""

import streamlit as st

from dashboard import lecture

st.title("Guide")
st.caption("Liu, Dai, So and Le, *Pay Attention to MLPs*, NeurIPS 2021 (arXiv 2105.08050).")

st.header("The question")
st.markdown(
    """
A Transformer layer does two things: it **mixes information across tokens** (self-attention) and it
**transforms each token on its own** (the feed-forward MLP). Self-attention is *dynamic*: the weights that
decide how much token *j* contributes to token *i* are computed from the input, anew for every sentence.

The paper asks: **is that dynamic, input-dependent mixing necessary?** Its answer is a model called
**gMLP** that has no attention at all, and still matches Transformers on image classification and comes close
on masked language modelling.
"""
)

st.header("gMLP in one block")
st.markdown(
    """
Each block takes the token representations *X* (n tokens x d channels) and computes
"""
)
st.latex(r"Z = \mathrm{GELU}(\mathrm{LN}(X)\,U), \qquad \tilde Z = s(Z), \qquad Y = X + \tilde Z\,V")
st.markdown(
    """
The **Spatial Gating Unit** *s* is the only place where tokens talk to each other. It splits the channels
of *Z* into two halves *Z₁* and *Z₂* and computes
"""
)
st.latex(r"s(Z) = Z_1 \odot \left(W\,\mathrm{LN}(Z_2) + b\right)")
st.markdown(
    """
- **W** is an *n x n* matrix over **positions**: row *i* says how much each input position *j* contributes
  to output position *i*. It is a learned parameter: **the same W for every input.**
- **b** is a bias per position. W starts near zero and b at one, so at initialisation the gate is the
  identity and every block is a plain MLP; the model learns to mix tokens only as far as it helps.
- The **gate** is input-dependent even though W is not: *Z₁* multiplies a spatially mixed version of *Z₂*.
  Multiplying two functions of the input is what lets a static W behave a little like attention.

**aMLP** adds a *tiny* single-head attention (64 dimensions in the paper, 32 in our demo) whose output is
added inside the gate. It is the paper's test of "how much attention do you actually need?".
"""
)

st.header("What the paper claims")
st.markdown(
    """
1. **Vision:** on ImageNet, gMLP matches DeiT (a Vision Transformer) at similar size and compute
   (e.g. gMLP-B 81.6% vs DeiT-B 81.8% top-1), with no attention at all.
2. **Language:** in BERT-style masked language modelling, gMLP's perplexity **approaches the Transformer's as
   models grow**: the gap shrinks with scale, and both follow similar power laws.
3. **Where attention still helps:** gMLP lags on tasks that need alignment *between* two sentences (e.g.
   MNLI). A tiny attention head fixes this: **aMLP** beats the Transformer at equal size.
4. **What W learns:** the learned spatial weights are **local** (each token mostly mixes with its neighbours)
   and **shift-invariant** (the same pattern at every position), i.e. W looks like a learned convolution.
   The paper shows the middle row of W in every layer; in vision, rows of W become 2D filters.
5. **Ablation (the MLM gating-ablation table):** with f(Z) = W LN(Z) + b, split gating Z₁ ⊙ f(Z₂) is best (perplexity 4.35, on par
   with BERT-base's 4.37), then multiplicative Z ⊙ f(Z) (4.53), additive Z + f(Z) (4.97) and linear f(Z)
   (5.14): token mixing alone is not enough, the *gating* matters. (Every figure of the paper quoted in this app
   is recorded from secondary sources and marked unverified until checked against the paper.)

Our zoo tests these *at demo scale*: small models, minutes of CPU training, 8x8 digits (centred, or anywhere on a
larger canvas) and a small text corpus. Some findings show up (a local, shift-invariant W; gating beats no
gating), some do not (see "What to notice"). Absolute numbers are not comparable with the paper's.
"""
)

st.header("How to read each page")
st.markdown(
    """
**Overview.** The zoo: every checkpoint under the root, with size, data, steps and validation score.
Pick the models to compare here or in the sidebar; the pick travels with you across pages and is in the URL,
so a link reproduces the view. Unreadable checkpoints are listed with the reason, never loaded.

**Live inference.** Type a sentence with one or more `[MASK]` and read each model's top guesses side by side,
with probabilities and latency. gMLP has a fixed length *n* (W is *n x n*): short inputs are padded, long ones
truncated, and the page says so. For vision, pick a validation digit, upload an image or draw one.

**Spatial weights.** The heart of the dashboard: each layer's W as a heatmap (row *i*, column *j*); the
paper's figure (the middle token's row in every layer); the split of W into a **Toeplitz** part (the average
along each diagonal: a convolution) and the **residual** (what depends on absolute position); per-layer
*locality* and *shift-invariance* scores; for vision, rows of W drawn on the 8x8 grid of pixels or patches;
and a slider over training snapshots to watch W form.

**W versus attention.** One input, three architectures: the Transformer's attention (per layer and head),
aMLP's tiny attention next to its W, and gMLP's W next to its input-dependent gate. The last panel measures
all three the same way: **token influence**, how much the output at *i* changes when input *j* changes.

**Attributions.** Which input tokens (or pixels) drove a prediction? Integrated Gradients integrates the
gradient along a path from a baseline (all `[PAD]`, or a black image) to the input; a second method is
shown for comparison. The **convergence delta** checks the result: attributions should add up to the change
in the model's score, so a large delta means "use more steps".

**Scaling.** Validation perplexity against non-embedding parameters and against FLOPs, on log-log axes, with
a fitted power law per architecture. Compare the **slopes** (alpha), drawn with their standard-error bars: the
paper's claim is that gMLP's slope matches the Transformer's. The paper's models get a panel of their own at their
scale (three decades above ours), and the page says what our small runs can and cannot show. The ablation chart
and table rank the gating variants, with the unigram baseline as a dashed line.

**When attention matters.** The paper's second half at demo scale: the zoo's three models finetuned on one
sentence (is the word order original?), a pair (does B repeat A, or does one noun differ?) and a span (which word
does the question ask for?), every seed a point. Type a pair, or pick a test pair the models get right or wrong,
and see how each model mixes the words of B into A: attention can find **the same word** in B wherever B starts;
W weighs a fixed offset, the same for every pair. The share of weight on the same word, over 200 test pairs,
measures it.

**Training.** Loss and validation curves from each checkpoint's `metrics.jsonl`.
"""
)

st.header("What to notice")
st.markdown(
    """
- **W becomes a band.** In the spatial-weights heatmap, the first layer of a trained text gMLP is a strong band
  just beside the diagonal: tokens mix with their neighbours. The colour scale is centred on zero (blue negative,
  red positive, white zero), and strength is how deep the colour is: in the zoo's gMLP the band is dark blue,
  weights of about -0.47 on the previous token and -0.12 on the next (layer 0's diagonals; every other offset
  near 0). Its Toeplitz part captures almost all of it (shift
  invariance near 1), the residual is small. Nobody told the model to be local or shift-invariant: it *learned*
  a convolution-like operator. Read the locality column against `locality_random`, what a W with no
  preference would score.
- **Layers specialise.** Deeper layers are broader and less regular: compare the middle-row profiles across
  layers and their locality and shift-invariance scores.
- **Vision needs data.** On 8x8 digits (1,437 training images) the zoo's vision gMLP does *not* learn local
  filters: the rows of W on the 8x8 grid look spread out and its locality sits at the no-preference baseline,
  yet it classifies well. The paper's filters come from ImageNet; a convolution has locality built in, gMLP
  must learn it from data. This is why the paper regularises its vision models heavily.
- **Locality pays when digits move.** The `canvas-*` models see the same digits pasted anywhere on a 32x32
  canvas (4x4-pixel patches, again an 8x8 grid of tokens). A template per position no longer fits, and layer 0's
  rows of W become small filters around their own patch, alike wherever they sit: the paper's picture (Spatial
  weights, "The paper's figure"). It forms in most training runs, not in all (the README lists them).
- **Static W, dynamic gate.** In "W versus attention", W is the same for every sentence but the gate changes
  with the input; the Transformer's attention changes completely. Yet the *token influence* maps of all three
  models often look alike: local mixing, with a few long-range links.
- **Watch W form.** Drag the training-snapshot slider: W starts as near-zero noise and the band emerges as
  the validation perplexity drops (compare with the Training page).
- **Ablation.** The identity control (s(Z) = Z) cannot mix tokens at all: it is the worst variant, and beats the
  context-free (unigram) baseline, the dashed line on the Scaling page's ablation chart, only because BERT-style
  masking leaves some targets unmasked. Linear token mixing without a gate helps; gating helps more. At demo scale the
  order of the gated variants can differ from the paper's: read the Scaling page's ablation table, which shows
  the paper's ranks beside ours.
- **When attention matters, at this scale.** On the pair task the finetuned Transformer's attention does find
  the same word in the other sentence (one head puts about 3x more weight there than a mixing with no preference)
  and gMLP's W cannot; yet gMLP answers as well as aMLP and better than the Transformer, because the task's
  different pairs carry a rare-word cue that its gate can spot. Averaging aMLP's and the Transformer's attention
  over inputs (a static matrix, like W) drops them to chance: they use attention's dependence on the input, gMLP
  its gate. On a pair that swaps a common noun, none of them has learned to compare the sentences.
- **Be careful with conclusions.** Demo models are tiny and trained for minutes. A difference smaller than the
  run-to-run noise means nothing: the finetuning study draws every seed, so its spread is that noise there;
  elsewhere models come from one seed, and the Scaling page's error bars on alpha come from the scatter around
  one fit, not from repeated runs.
"""
)

st.header("Try this in a lecture")
st.markdown(
    """
Turn on **Lecture mode** in the sidebar, or open the app at `?lecture=1` (`?lecture=1&step=4` starts at step 4):
the text grows, the technical controls leave the sidebar, and a bar above every page walks through the story
below with **Back** and **Next**. Each step opens its page with its models and inputs already set, so you
present without typing; the address bar always holds the current step, to bookmark or reload. Between steps
every control works as usual; the sidebar lists the steps to jump to any of them.
"""
)
st.markdown(lecture.outline())

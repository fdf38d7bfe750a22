"""Analysis of what a model learned: pure functions of a model (and an input) returning tensors or DataFrames.

- ``spatial``: gMLP's n x n spatial weights W: Toeplitz (shift-invariant) decomposition, locality,
  per-layer summaries, the paper's middle-row profiles, rows drawn on the patch grid.
- ``attention``: attention probabilities and gMLP gates, as the model returns them.
- ``influence``: the token-mixing map d(output_i)/d(embedding_j) common to every architecture.
- ``attribution``: captum attributions (Integrated Gradients and Gradient x Input) for MLM and vision.
- ``mixing``: one report of how a model mixes tokens on one input (attention, W, gates, influence).

Everything reads what the model returns (``spatial_weights()``, ``output_attentions=True``,
``output_gates=True``, ``inputs_embeds``), never private attributes, and leaves the model unchanged.
"""

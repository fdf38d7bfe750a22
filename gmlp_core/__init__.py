"""gMLP Lens core: exact gMLP, aMLP and Transformer models, presets, safe checkpoints and analysis.

No streamlit import anywhere in this package: the dashboard builds on it, not the other way round.
"""

from gmlp_core.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_metrics,
    load_tokenizer,
    read_config,
    save_checkpoint,
)
from gmlp_core.models import (
    IGNORE_INDEX,
    LensModel,
    ModelConfig,
    ModelOutput,
    build_model,
    count_parameters,
    flops_per_token,
    list_presets,
    preset,
    preset_info,
)

__version__ = "0.1.0"

__all__ = [
    "IGNORE_INDEX",
    "CheckpointError",
    "LensModel",
    "ModelConfig",
    "ModelOutput",
    "build_model",
    "count_parameters",
    "flops_per_token",
    "list_presets",
    "load_checkpoint",
    "load_metrics",
    "load_tokenizer",
    "preset",
    "preset_info",
    "read_config",
    "save_checkpoint",
]

"""gMLP, aMLP and Transformer models on one shared trunk, with presets."""

from gmlp_core.models.config import ModelConfig
from gmlp_core.models.model import IGNORE_INDEX, LensModel, ModelOutput, build_model
from gmlp_core.models.registry import PresetInfo, list_presets, preset, preset_info, register_preset
from gmlp_core.models.stats import config_summary, count_parameters, flops_per_token

__all__ = [
    "IGNORE_INDEX",
    "LensModel",
    "ModelConfig",
    "ModelOutput",
    "PresetInfo",
    "build_model",
    "config_summary",
    "count_parameters",
    "flops_per_token",
    "list_presets",
    "preset",
    "preset_info",
    "register_preset",
]

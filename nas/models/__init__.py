"""Networks assembled from genomes."""
from nas.models.builder import VisionNet, build_model
from nas.models.diagnostics import attention_mixers, record_attention

__all__ = ["VisionNet", "attention_mixers", "build_model", "record_attention"]

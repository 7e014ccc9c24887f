"""DeepViT's attention-collapse metric; it lives with the model diagnostics, re-exported here."""
from nas.models.diagnostics import (
    SIMILAR_THRESHOLD,
    CollapseReport,
    collapse_metrics,
    collapse_report,
    column_similarity,
    measure_collapse,
    validation_batch,
)

__all__ = ["CollapseReport", "column_similarity", "collapse_report", "measure_collapse", "validation_batch",
           "collapse_metrics", "SIMILAR_THRESHOLD"]

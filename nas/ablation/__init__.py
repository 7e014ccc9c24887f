"""Ablations: a grid of variants of one base genome, several seeds each, summarised as a paper's table.

Configs are expanded and validated in :mod:`nas.ablation.config`; :mod:`nas.ablation.runner` trains
every variant x seed as a Ray Tune trial with the study objective and stores each finished cell;
:mod:`nas.ablation.table` aggregates the stored records; :mod:`nas.models.diagnostics` holds DeepViT's
attention-collapse diagnostic. Ray is imported only when an ablation runs.
"""
from nas.ablation.collapse import CollapseReport, collapse_report, column_similarity
from nas.ablation.config import AblationConfig, Cell, Variant, apply_genome_overrides, load_ablation_config
from nas.ablation.table import ablation_table, cells_frame, table_rows, write_table

__all__ = [
    "AblationConfig",
    "Cell",
    "CollapseReport",
    "Variant",
    "ablation_table",
    "apply_genome_overrides",
    "cells_frame",
    "collapse_report",
    "column_similarity",
    "load_ablation_config",
    "table_rows",
    "write_table",
]

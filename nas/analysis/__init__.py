"""Analysis of stored studies: trials tables, Pareto fronts, hypervolume, selection rules, reports, export.

Everything reads the study directory's records; only export's ``--verify`` and ``--weights`` build a
network, to prove that the exported genome and weights reproduce what the study measured.
"""
from nas.analysis.export import ExportError, ExportResult, VerifyResult, export_trial, load_weights, verify_export
from nas.analysis.pareto import (
    HypervolumeSummary,
    dominates,
    front_trials,
    hv_reference,
    hypervolume,
    hypervolume_history,
    hypervolume_summary,
    pareto_mask,
)
from nas.analysis.report import ReportResult, write_report
from nas.analysis.select import Rule, RuleError, Selection, parse_rule, select
from nas.analysis.study import StudyView, load_study, open_study, trials_table

__all__ = [
    "ExportError",
    "ExportResult",
    "HypervolumeSummary",
    "ReportResult",
    "Rule",
    "RuleError",
    "Selection",
    "StudyView",
    "VerifyResult",
    "dominates",
    "export_trial",
    "front_trials",
    "hv_reference",
    "hypervolume",
    "hypervolume_history",
    "hypervolume_summary",
    "load_study",
    "load_weights",
    "open_study",
    "parse_rule",
    "pareto_mask",
    "select",
    "trials_table",
    "verify_export",
    "write_report",
]

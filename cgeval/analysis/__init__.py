"""Metrics, statistics, tables and figures from run folders; never calls a model."""

from .metrics import (
                      MissingPredictions,
                      PredictionsError,
                      Run,
                      TruncatedPredictions,
                      bootstrap_summary,
                      cross_table,
                      load_run,
                      metrics_dict,
                      metrics_table,
                      paired_by_composition,
                      paired_frame,
                      read_predictions,
)
from .html_report import write_comparison_html, write_run_html
from .report import write_report, write_run_outputs
from .stats import (
                      BootstrapInterval,
                      ItemSetMismatch,
                      McNemarResult,
                      ScoringMismatch,
                      chance_corrected,
                      chance_level,
                      cluster_bootstrap_accuracy,
                      cluster_bootstrap_gap,
                      holm,
                      mcnemar_exact,
                      wilson_interval,
)
from .table3 import Table3ConfigError, load_table3_config, table3

__all__ = [
    "BootstrapInterval", "ItemSetMismatch", "McNemarResult", "MissingPredictions", "PredictionsError", "Run",
    "ScoringMismatch", "Table3ConfigError", "TruncatedPredictions", "bootstrap_summary", "chance_corrected", "chance_level",
    "cluster_bootstrap_accuracy", "cluster_bootstrap_gap", "cross_table", "holm", "load_run", "load_table3_config",
    "mcnemar_exact", "metrics_dict", "metrics_table", "paired_by_composition", "paired_frame", "read_predictions",
    "table3", "wilson_interval", "write_comparison_html", "write_report", "write_run_html", "write_run_outputs",
]

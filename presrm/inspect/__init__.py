"""UI-free read models of a run file: what the inspector and the report show, as plain data."""

from presrm.inspect.calibration import SCORES, Calibration, CalibrationBin, TreeRef, calibration
from presrm.inspect.changes import DataVersion, data_version
from presrm.inspect.problems import (
    PRESETS,
    SORTABLE,
    TREE_COLUMNS,
    TreeIndex,
    TreePage,
    TreeQuery,
    search_tree_ids,
    select_trees,
    tree_summaries,
)
from presrm.inspect.run_info import RunInfo, run_info
from presrm.inspect.summaries import HEADLINE_METRICS, IterationSummary, iteration_summaries
from presrm.inspect.trees import JudgmentRow, NodeRow, TreeDetail, load_tree
from presrm.store.flags import FlagInfo

__all__ = [
    "HEADLINE_METRICS",
    "PRESETS",
    "SCORES",
    "SORTABLE",
    "TREE_COLUMNS",
    "Calibration",
    "CalibrationBin",
    "DataVersion",
    "FlagInfo",
    "IterationSummary",
    "JudgmentRow",
    "NodeRow",
    "RunInfo",
    "TreeDetail",
    "TreeIndex",
    "TreePage",
    "TreeQuery",
    "TreeRef",
    "calibration",
    "data_version",
    "iteration_summaries",
    "load_tree",
    "run_info",
    "search_tree_ids",
    "select_trees",
    "tree_summaries",
]

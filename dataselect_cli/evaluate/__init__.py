"""The harness behind ``dataselect evaluate``: selection strategies, proxy models, metrics. Arrays in, arrays out.

The strategies draw with the same designs (:mod:`dataselect_cli.designs`) and score with the same
methods (:mod:`dataselect_cli.methods`) as the commands; the file-level step is
:mod:`dataselect_cli.steps.evaluate`.
"""

from ..models import fit_least_squares, fit_logistic, log_proba
from .harness import RESULT_COLUMNS, reference_row, resolve_budgets, run_grid, run_one
from .strategies import CLT_DELTA, STRATEGIES, WARM_FRAC, Seeds, Selection, default_strategies, kcenter_greedy
from .task import Task, make_task
from .summary import aggregate, best_per_budget, results_table

__all__ = ["CLT_DELTA", "RESULT_COLUMNS", "STRATEGIES", "WARM_FRAC", "Seeds", "Selection", "Task", "aggregate",
           "best_per_budget", "default_strategies", "fit_least_squares", "fit_logistic", "kcenter_greedy",
           "log_proba", "make_task", "reference_row", "resolve_budgets", "results_table", "run_grid", "run_one"]

"""Training dynamics: the table score methods such as EL2N, GraNd, VoG, forgetting, AUM and TracIn read.

* :class:`Recorder` writes it from your own training loop (``from dataselect_cli.dynamics import Recorder``).
* ``dataselect dynamics EMB --label COL -o dyn.parquet`` (:func:`dataselect_cli.api.dynamics_file`) writes it
  from a proxy model trained on the embeddings (:mod:`.proxy`, :mod:`.mlp`).
* :mod:`.schema` holds its columns and types.
"""

from .plan import Plan, make_plan, parse_checkpoints
from .recorder import Recorder
from .schema import COLUMNS, REQUIRED, dynamics_schema

__all__ = ["COLUMNS", "REQUIRED", "Plan", "Recorder", "dynamics_schema", "make_plan", "parse_checkpoints"]

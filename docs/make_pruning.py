"""Regenerate docs/pruning/: prune by each per-example score, retrain, and compare with random pruning.

Paper A's experiment (Anand, Tan & Minakova 2023; reference/scores_and_methods.md §A.3–A.4) at this
machine's scale, through the CLI (`dataselect dynamics`, `score --method`, `sample --design`):

* data: digits (`dataselect embed sample_data/digits_vectors.npy --normalize`, 1,797 rows, 10 classes)
  and stdlib (4,870 docstring paragraphs of Python's standard library embedded with all-MiniLM-L6-v2,
  8 packages as labels; built by docs/make_designs.py's `stdlib_set`, cached under out/docs/);
* split: a seeded 20 % held-out test set (the same in every repeat); everything else uses the 80 %
  training part only. The whole experiment runs on two splits (seeds 0 and 1; docs/pruning/<set> and
  <set>-split1), to see which differences are one test set's;
* dynamics, re-run in every repeat r with `--seed r`: the linear proxy with the defaults (10 epochs, a
  checkpoint per epoch) and `--runs 3`, for every score but VoG; and `--model mlp` (one run), for VoG
  only: under the linear proxy the input gradient W[:, y]/σ is the same for every row of a class, so
  VoG is constant within a class (0 after the class z-score) and says nothing;
* scores: el2n, grand, forgetting, aum, data-map variability and confidence, margin, entropy,
  least-confidence, loss, tracin-self (linear dynamics), vog (mlp dynamics), leverage (the training
  part's embeddings; deterministic), pvi (the linear dynamics' null model, `dynamics --null`: a
  bias-only softmax on the same batches, i.e. the class prior it learns);
* selections: keep f = 90 %, 70 %, 50 % of the training rows (prune 10, 30, 50 %): the hardest
  (`--design top`, or `bottom` for a higher=easier score), the easiest (the other end), and random
  (`--design uniform`), each with `--seed r`, R = 5 repeats;
* retraining: `dataselect evaluate`'s proxy classifier (`dataselect_cli.models.fit_logistic`,
  L2-regularised multinomial logistic regression on the embeddings standardised with the training
  part's statistics), unweighted, on the kept rows; held-out accuracy. The full training part gives
  the reference line.

Writes docs/pruning/<set>[-split1]/{results.parquet, summary.md, accuracy.png, accuracy-zoom.png, delta.png} and
docs/pruning/results.md (every set's table of differences to random, the verdicts, and which hold on
both splits).
docs/pruning/README.md is written by hand from these outputs. Run: make pruning (about 12 minutes
on 2 cores; the MiniLM embeddings are cached under out/docs/, the dynamics and scores under
out/docs/pruning/ with --resume).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_designs import stdlib_set  # noqa: E402
from make_docs import ROOT, WORK  # noqa: E402

from dataselect_cli.models import fit_logistic, log_proba  # noqa: E402

REPEATS = 5
FRACTIONS = [0.9, 0.7, 0.5]
HOLDOUT = 0.2
# the held-out split's seeds: 0 is the experiment; 1 repeats it on another split, as a check of how much of a
# difference is the one test set's
SPLITS = [0, 1]
CLEAR_SE = 2.0
# (name shown, score method and options, dynamics: "linear", "mlp" or None for the embeddings)
SCORES = [
    ("el2n", ["--method", "el2n"], "linear"),
    ("grand", ["--method", "grand"], "linear"),
    ("forgetting", ["--method", "forgetting"], "linear"),
    ("aum", ["--method", "aum"], "linear"),
    ("variability", ["--method", "data-map", "--data-map-score", "variability"], "linear"),
    ("confidence", ["--method", "data-map", "--data-map-score", "confidence"], "linear"),
    ("margin", ["--method", "margin"], "linear"),
    ("entropy", ["--method", "entropy"], "linear"),
    ("least-confidence", ["--method", "least-confidence"], "linear"),
    ("loss", ["--method", "loss"], "linear"),
    ("tracin-self", ["--method", "tracin-self"], "linear"),
    ("pvi", ["--method", "pvi"], "linear"),
    ("vog", ["--method", "vog"], "mlp"),
    ("leverage", ["--method", "leverage"], None),
]
OUT_DOCS = ROOT / "docs" / "pruning"
CACHE = WORK / "pruning"


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def ds(*args: str, show: bool = True) -> None:
    """Run one `dataselect` command in this process (no interpreter start-up per call); stdout dropped."""
    from typer.main import get_command

    from dataselect_cli.cli import app

    if show:
        print("$ dataselect " + " ".join(shlex.quote(a) for a in args), flush=True)
    with contextlib.redirect_stdout(io.StringIO()):
        rc = get_command(app).main(list(args), prog_name="dataselect", standalone_mode=False)
    if isinstance(rc, int) and rc != 0:
        raise SystemExit(f"dataselect {args[0]} failed (exit {rc})")


def read_emb(path: Path) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    t = pq.read_table(path)
    emb = t.column("embedding").combine_chunks()
    x = emb.values.to_numpy().reshape(len(t), emb.type.list_size)
    return t.column("id").to_numpy(), x, t


def digits_set(path: Path) -> None:
    """sample_data's digits through `dataselect embed --normalize`, with the labels of digits.parquet."""
    if path.exists():
        return
    raw = CACHE / "digits-embed.parquet"
    ds("embed", "sample_data/digits_vectors.npy", "-o", rel(raw), "--normalize", "-q")
    ids, _, t = read_emb(raw)
    labels = pq.read_table(ROOT / "sample_data" / "digits.parquet", columns=["id", "label"])
    lab = dict(zip(labels.column("id").to_pylist(), labels.column("label").to_pylist()))
    pq.write_table(t.select(["id", "embedding"]).append_column("label", pa.array([lab[i] for i in ids.tolist()],
                                                                                 pa.int64())), path)


def split(path: Path, folder: Path, seed: int) -> dict:
    """The seeded split; the training part written as its own embeddings file (id, embedding, label)."""
    ids, x, t = read_emb(path)
    raw_labels = t.column("label").to_pylist()
    classes = sorted(set(raw_labels))
    y = np.array([classes.index(v) for v in raw_labels])
    n = len(ids)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(HOLDOUT * n))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    train_file = folder / "train.parquet"
    if not train_file.exists():
        pq.write_table(t.take(pa.array(train)), train_file)
    xf = x.astype(np.float64)
    mu, sd = xf[train].mean(axis=0), xf[train].std(axis=0)
    sd[sd == 0] = 1.0
    xs = (xf - mu) / sd
    return {"train_file": train_file, "ids": ids[train], "x": xs[train], "y": y[train], "x_test": xs[test],
            "y_test": y[test], "classes": len(classes), "n": len(train), "n_test": n_test}


def accuracy(d: dict, rows: np.ndarray) -> float:
    theta = fit_logistic(d["x"][rows], d["y"][rows], d["classes"])
    return float(np.mean(np.argmax(log_proba(theta, d["x_test"]), axis=1) == d["y_test"]))


def selected_rows(d: dict, path: Path) -> np.ndarray:
    sel = pq.read_table(path, columns=["id"]).column("id").to_numpy()
    pos = np.searchsorted(d["ids"], sel)  # the training ids are sorted (np.sort of the split above)
    assert np.array_equal(d["ids"][pos], sel)
    return np.sort(pos)


def direction(path: Path) -> str:
    meta = json.loads(pq.read_schema(path).metadata[b"dataselect"])
    return meta["summary"]["direction"]


def min_class_share(d: dict, rows: np.ndarray) -> float:
    """The smallest share of a class's training rows that the selection kept."""
    total = np.bincount(d["y"], minlength=d["classes"])
    kept = np.bincount(d["y"][rows], minlength=d["classes"])
    return float(np.min(kept / total))


def folder_name(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-split{seed}"


def run_set(name: str, emb: Path, seed: int) -> list[dict]:
    folder = CACHE / folder_name(name, seed)
    folder.mkdir(parents=True, exist_ok=True)
    d = split(emb, folder, seed)
    name = folder_name(name, seed)
    train = rel(d["train_file"])
    print(f"{name}: {d['n']} training rows, {d['n_test']} held out, {d['classes']} classes", flush=True)
    rows = [{"set": name, "score": "full", "end": "full", "fraction": 1.0, "repeat": 0, "rows": d["n"],
             "accuracy": accuracy(d, np.arange(d["n"])), "min_class_share": 1.0}]
    lev = folder / "leverage.parquet"
    ds("score", "--method", "leverage", "--embeddings", train, "-o", rel(lev), "-q", "--resume")
    for r in range(REPEATS):
        t0 = time.time()
        show = r == 0
        rdir = folder / f"r{r}"
        rdir.mkdir(exist_ok=True)
        dyn = {"linear": rdir / "dyn.parquet", "mlp": rdir / "dyn-mlp.parquet"}
        ds("dynamics", train, "--label", "label", "--runs", "3", "--input-grad", "none", "--seed", str(r),
           "-o", rel(dyn["linear"]), "-q", "--resume", show=show)
        ds("dynamics", train, "--label", "label", "--model", "mlp", "--seed", str(r), "-o", rel(dyn["mlp"]),
           "-q", "--resume", show=show)
        files = {}
        for score, opts, source in SCORES:
            if source is None:
                files[score] = lev
                continue
            files[score] = rdir / f"{score}.parquet"
            ds("score", *opts, "--dynamics", rel(dyn[source]), "-o", rel(files[score]), "-q", "--resume", show=show)
        for f in FRACTIONS:
            sel = rdir / f"random-{f}.parquet"
            ds("sample", rel(files["el2n"]), "--design", "uniform", "--fraction", str(f), "--seed", str(r),
               "-o", rel(sel), "-q", show=show and f == FRACTIONS[0])
            kept = selected_rows(d, sel)
            rows.append({"set": name, "score": "random", "end": "random", "fraction": f, "repeat": r,
                         "rows": len(kept), "accuracy": accuracy(d, kept), "min_class_share": min_class_share(d, kept)})
            for score, _, _ in SCORES:
                harder_high = direction(files[score]) == "higher=harder"
                for end in ("hardest", "easiest"):
                    design = "top" if (end == "hardest") == harder_high else "bottom"
                    sel = rdir / f"{score}-{end}-{f}.parquet"
                    ds("sample", rel(files[score]), "--design", design, "--fraction", str(f), "--seed", str(r),
                       "-o", rel(sel), "-q", show=show and f == FRACTIONS[0] and score == "el2n")
                    kept = selected_rows(d, sel)
                    rows.append({"set": name, "score": score, "end": end, "fraction": f, "repeat": r,
                                 "rows": len(kept), "accuracy": accuracy(d, kept),
                                 "min_class_share": min_class_share(d, kept)})
        print(f"{name}: repeat {r} done in {time.time() - t0:.0f} s", flush=True)
    return rows


# --- aggregates, tables, plots ------------------------------------------------------------------

def stats(rows: list[dict], score: str, end: str, f: float) -> tuple[float, float, int]:
    acc = np.array([r["accuracy"] for r in rows if r["score"] == score and r["end"] == end and r["fraction"] == f])
    return float(acc.mean()), float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, len(acc)


def verdict(rows: list[dict], score: str, end: str, f: float) -> tuple[float, float, int]:
    """(mean − random's mean, its standard error, +1 / −1 / 0: beats random, loses, within noise)."""
    m, s, k = stats(rows, score, end, f)
    mr, sr, kr = stats(rows, "random", "random", f)
    se = math.sqrt(s * s / k + sr * sr / kr)
    diff = m - mr
    return diff, se, (1 if diff > CLEAR_SE * se else -1 if diff < -CLEAR_SE * se else 0)


def cell(rows: list[dict], score: str, end: str, f: float) -> str:
    m, s, _ = stats(rows, score, end, f)
    text = f"{100 * m:.2f} ± {100 * s:.2f}"
    if score == "random":
        return text
    _, _, v = verdict(rows, score, end, f)
    return f"**{text}**" if v > 0 else f"{text} ▼" if v < 0 else text


def summary_md(name: str, rows: list[dict]) -> str:
    full = rows[0]
    n = full["rows"]
    out = [f"# Pruning by score: {name}", "",
           f"Held-out accuracy (%, mean ± sd over {REPEATS} repeats) of the proxy classifier retrained on the "
           f"kept rows of {n} training rows; full training part: {100 * full['accuracy']:.2f}. **Bold**: beats "
           f"random by more than {CLEAR_SE:g} standard errors of the difference; ▼: loses to random by as much. "
           "Written by docs/make_pruning.py.", "",
           "| score | end | " + " | ".join(f"keep {int(100 * f)} %" for f in FRACTIONS) + " |",
           "|---|---|" + "---|" * len(FRACTIONS)]
    out.append("| random | – | " + " | ".join(cell(rows, "random", "random", f) for f in FRACTIONS) + " |")
    for score, _, _ in SCORES:
        for end in ("hardest", "easiest"):
            out.append(f"| {score} | {end} kept | " + " | ".join(cell(rows, score, end, f) for f in FRACTIONS) + " |")
    out += ["", "Smallest share of a class kept (mean over repeats; random keeps about the fraction):", "",
            "| score | end | " + " | ".join(f"keep {int(100 * f)} %" for f in FRACTIONS) + " |",
            "|---|---|" + "---|" * len(FRACTIONS)]
    for score, end in [("random", "random")] + [(s, e) for s, _, _ in SCORES for e in ("hardest", "easiest")]:
        vals = [np.mean([r["min_class_share"] for r in rows if r["score"] == score and r["end"] == end
                         and r["fraction"] == f]) for f in FRACTIONS]
        out.append(f"| {score} | {end} | " + " | ".join(f"{100 * v:.0f} %" for v in vals) + " |")
    return "\n".join(out) + "\n"


def _accuracy_figure(plt, name: str, rows: list[dict], ylim: tuple[float, float] | None, title: str):
    full = rows[0]["accuracy"]
    xs = np.array(FRACTIONS)
    rnd = [stats(rows, "random", "random", f) for f in FRACTIONS]
    rm, rs = np.array([m for m, _, _ in rnd]), np.array([s for _, s, _ in rnd])
    cols = 5
    nrow = math.ceil(len(SCORES) / cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(3.2 * cols, 2.8 * nrow), sharex=True, sharey=True)
    for ax, (score, _, _) in zip(axes.flat, SCORES):
        ax.fill_between(xs, 100 * (rm - rs), 100 * (rm + rs), color="0.8", label="random ± 1 sd")
        ax.plot(xs, 100 * rm, color="0.4", lw=1)
        ax.axhline(100 * full, color="k", ls="--", lw=0.8, label="full training part")
        for end, color, marker in (("hardest", "tab:red", "v"), ("easiest", "tab:blue", "o")):
            st = [stats(rows, score, end, f) for f in FRACTIONS]
            ax.errorbar(xs, [100 * m for m, _, _ in st], yerr=[100 * s for _, s, _ in st], color=color, marker=marker,
                        ms=4, capsize=2, label=f"{end} kept")
        ax.set_title(score, fontsize=10)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{int(100 * f)} %" for f in FRACTIONS])
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(SCORES):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes.flat[-1].legend(handles, labels, loc="center", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("held-out accuracy %")
    for ax in axes[-1, :]:
        ax.set_xlabel("fraction kept")
    if ylim is not None:
        axes.flat[0].set_ylim(*ylim)
    fig.suptitle(f"{name}: {title} ({REPEATS} repeats; random pruning: grey band)")
    fig.tight_layout()
    return fig


def plots(name: str, rows: list[dict], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = 100 * rows[0]["accuracy"]
    low = 100 * stats(rows, "random", "random", FRACTIONS[-1])[0]
    for fname, ylim, title in (("accuracy.png", None, "held-out accuracy after pruning by each score"),
                               ("accuracy-zoom.png", (low - 3, full + 1), "the same, zoomed on random's range")):
        fig = _accuracy_figure(plt, name, rows, ylim, title)
        fig.savefig(folder / fname, dpi=90, metadata={"Software": None})
        plt.close(fig)

    # one picture of every difference to random: score × (end, fraction), in points, with its verdict
    labels = [f"{e[0].upper()} {int(100 * f)}" for e in ("hardest", "easiest") for f in FRACTIONS]
    grid = np.array([[100 * verdict(rows, s, e, f)[0] for e in ("hardest", "easiest") for f in FRACTIONS]
                     for s, _, _ in SCORES])
    marks = [[verdict(rows, s, e, f)[2] for e in ("hardest", "easiest") for f in FRACTIONS] for s, _, _ in SCORES]
    lim = 3.0  # colours saturate at ±3 points, so that small differences stay visible; the numbers are exact
    fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(SCORES) + 1.6))
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            tag = {1: "+", -1: "−", 0: ""}[marks[i][j]]
            ax.text(j, i, f"{grid[i, j]:+.1f}{tag}", ha="center", va="center", fontsize=8,
                    color="white" if abs(grid[i, j]) > 0.6 * lim else "black")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_yticks(range(len(SCORES)))
    ax.set_yticklabels([s for s, _, _ in SCORES])
    ax.set_xlabel("H/E = hardest/easiest kept, % of rows kept")
    fig.colorbar(im, ax=ax, label="points (colour clipped at ±3)")
    ax.set_title(f"{name}: accuracy − random pruning's, points (+/−: beyond {CLEAR_SE:g} SE)", fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / "delta.png", dpi=90, metadata={"Software": None})
    plt.close(fig)


def robust_md(all_rows: dict[str, list[dict]]) -> list[str]:
    """Per data set: the (score, end, fraction) that beat random on every split, lose on every split, or flip."""
    out = [f"## On every split ({', '.join(f'seed {s}' for s in SPLITS)})", "",
           "A difference that holds on one held-out split only may be that split's: listed here are the cells that "
           "beat (or lose to) random beyond 2 SE on every split, and those that beat random on one split but not on "
           "another (mean differences per split in parentheses, points).", ""]
    for base in dict.fromkeys(rows[0]["set"] for rows in all_rows.values()):
        splits = [rows for rows in all_rows.values() if rows[0]["set"] == base]
        wins, losses, unstable = [], [], []
        for score, _, _ in SCORES:
            for end in ("hardest", "easiest"):
                for f in FRACTIONS:
                    vs = [verdict(rows, score, end, f) for rows in splits]
                    tag = f"{score} {end} kept at {int(100 * f)} % (" + ", ".join(f"{100 * d:+.2f}" for d, _, _ in vs) + ")"
                    marks = {v for _, _, v in vs}
                    if marks == {1}:
                        wins.append(tag)
                    elif marks == {-1}:
                        losses.append(tag)
                    elif 1 in marks:
                        unstable.append(tag)
        out += [f"**{base}**, {len(splits)} splits. Beats random on every split: {', '.join(wins) or 'none'}.", "",
                f"Beats random on one split, not on another: {', '.join(unstable) or 'none'}.", "",
                f"Loses to random on every split: {', '.join(losses) or 'none'}.", ""]
    return out


def results_md(all_rows: dict[str, list[dict]]) -> str:
    out = ["# Pruning by score against random pruning: every difference", "",
           "Written by docs/make_pruning.py (the protocol is in its docstring and in README.md here). "
           "Accuracy of the kept rows' model minus random pruning's at the same fraction, in points "
           f"(mean over {REPEATS} repeats), with the standard error of the difference; **bold**: beats random "
           f"by more than {CLEAR_SE:g} SE, ▼: loses by more than {CLEAR_SE:g} SE.", ""]
    out += robust_md(all_rows)
    for name, rows in all_rows.items():
        full = rows[0]["accuracy"]
        rnd = "; ".join(f"keep {int(100 * f)} %: {100 * stats(rows, 'random', 'random', f)[0]:.2f} ± "
                        f"{100 * stats(rows, 'random', 'random', f)[1]:.2f}" for f in FRACTIONS)
        out += [f"## {name}", "", f"full training part {100 * full:.2f} %; random pruning {rnd}.", "",
                "| score | end | " + " | ".join(f"keep {int(100 * f)} %" for f in FRACTIONS) + " |",
                "|---|---|" + "---|" * len(FRACTIONS)]
        wins, losses = [], []
        for score, _, _ in SCORES:
            for end in ("hardest", "easiest"):
                cells = []
                for f in FRACTIONS:
                    diff, se, v = verdict(rows, score, end, f)
                    text = f"{100 * diff:+.2f} ± {100 * se:.2f}"
                    cells.append(f"**{text}**" if v > 0 else f"{text} ▼" if v < 0 else text)
                    if v:
                        (wins if v > 0 else losses).append(f"{score} {end} kept at {int(100 * f)} % "
                                                           f"({100 * diff:+.2f})")
                out.append(f"| {score} | {end} kept | " + " | ".join(cells) + " |")
        out += ["", f"Beats random: {', '.join(wins) or 'none'}.", "",
                f"Loses to random: {', '.join(losses) or 'none'}.", ""]
    return "\n".join(out)


def main() -> None:
    t0 = time.time()
    CACHE.mkdir(parents=True, exist_ok=True)
    stdlib_set(WORK / "stdlib.parquet")
    digits_set(CACHE / "digits.parquet")
    sets = {"digits": CACHE / "digits.parquet", "stdlib": WORK / "stdlib.parquet"}
    only = sys.argv[1:]
    all_rows = {}
    types = {"set": pa.string(), "split_seed": pa.int32(), "score": pa.string(), "end": pa.string(),
             "fraction": pa.float64(), "repeat": pa.int32(), "rows": pa.int64(), "accuracy": pa.float64(),
             "min_class_share": pa.float64()}
    for name, emb in sets.items():
        for seed in SPLITS:
            label = folder_name(name, seed)
            folder = OUT_DOCS / label
            if only and name not in only:
                if (folder / "results.parquet").exists():
                    all_rows[label] = pq.read_table(folder / "results.parquet").to_pylist()
                continue
            rows = [{**r, "set": name, "split_seed": seed} for r in run_set(name, emb, seed)]
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({c: pa.array([r[c] for r in rows], t) for c, t in types.items()}),
                           folder / "results.parquet")
            (folder / "summary.md").write_text(summary_md(label, rows), encoding="utf-8")
            plots(label, rows, folder)
            all_rows[label] = rows
    (OUT_DOCS / "results.md").write_text(results_md(all_rows), encoding="utf-8")
    print(f"done in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()

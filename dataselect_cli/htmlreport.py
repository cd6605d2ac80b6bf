"""Reports a person reads: ``evaluate``'s summary.md and report.html, and ``sample --report-html``.

Every HTML page is self-contained: inline CSS, PNGs embedded as base64 ``data:`` URIs, no script,
no external link. The tables come out without matplotlib; the plots need the ``plots`` extra.
"""

from __future__ import annotations

import base64
import html
import math
import os
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import dataset, io, outputs, plots, pqdataset
from .errors import InputError
from .evaluate.summary import CLEAR_SE, best_per_budget

Note = Callable[[str], None]

STRATEGY_TEXT = {
    "full": "the proxy model trained on every training row (the reference)",
    "sensitivity-adaptive": "the paper's adaptive variant (Algorithm 3): the 0.2·B queried rows taken in --rounds r "
                            "rounds of the D^z (k-means++) order; the last round draws B i.i.d. draws ∝ the "
                            "sensitivity mass with all of them as centers ('… round i/r': round i, with the first "
                            "i·⌊0.2·B/r⌋ rows)",
    "uniform": "B rows uniformly without replacement (the uniform design); weight n/B",
    "sensitivity": "the tool's design (Algorithm 1): 0.2·B k-means centers, the reference model's loss at them, "
                   "Λ balanced (or --lambda), B i.i.d. draws, weight count/(B·p); Theorem 2 interval",
    "sensitivity-budget": "the paper's protocol (§5.1): uniform warm start 0.2·B trains a model M, 0.2·B snapped "
                          "centers, the rest drawn ∝ ℓ_M(center) + Λ·‖e − center‖²; warm start and centers weight 1",
    "sensitivity-regression": "the paper's regression variant (Algorithm 2, Λ → ∞ as in its §5.3): 0.2·B z = 1 "
                              "centers in the selection, the rest drawn ∝ distance to the center",
    "sensitivity-mixture": "as sensitivity, drawn from (1 − α)·p + α/n with α = 0.5 (weights ≤ n/(α·B))",
    "sensitivity-poisson": "as sensitivity, each row kept independently with π = min(1, c·p), Σπ = B; weight 1/π",
    "sensitivity-pareto": "as sensitivity, exactly B distinct rows by Pareto order sampling ∝ p; weight 1/π",
    "sensitivity-stratified": "the 0.2·B clusters as strata, B rows at random in proportion to their sizes "
                              "(at least 2 each); weight N_h/n_h",
    "sensitivity-auto": "as sensitivity, with 3 probe losses per cluster too; the design of least variance predicted "
                        "from the queried losses (uniform unless another wins by 20 %)",
    "kcenter": "k-center greedy (Sener & Savarese 2018) on the embeddings; no unbiased weights",
    "margin": "uniform warm start 0.2·B trains M, then the smallest margins p₍₁₎ − p₍₂₎ under M; no unbiased weights",
    "leverage": "B i.i.d. draws ∝ the leverage scores of [x, 1]; weight count/(B·p)",
}
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:.6em 0 1.4em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th:first-child,td:first-child{text-align:left}thead{background:#f2f2f2}img{max-width:100%}
code{background:#f4f4f4;padding:0 .2em}.note{color:#555;font-size:.92em}"""


# --------------------------------------------------------------------------- evaluate


def _num(v: float | None, digits: int = 4) -> str:
    """A number for a table: 4 decimals, 3 significant digits below 10⁻³, thousands without decimals."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    if v != 0 and abs(v) < 1e-3:
        return f"{v:.3g}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _cell(e: dict | None, key: str, pct: bool = False) -> str:
    if e is None or e.get(key) is None:
        return "–"
    if pct:
        return f"{100 * e[key]:.0f} %"
    sd = e.get(key + "_sd")
    return _num(e[key]) + ("" if sd is None else f" ± {_num(sd)}")


def evaluate_tables(agg: list[dict], info: dict) -> list[dict[str, Any]]:
    """The summary tables, each {title, note, header, rows: [[cell, …]], bold: {(row, col)}}."""
    names = [n for n in info["params"]["strategies"]]
    budgets = info["params"]["budgets"]
    at = {(e["strategy"], e["budget"]): e for e in agg}
    metric = "accuracy" if info["kind"] == "label" else "1 − R²"
    higher = info["kind"] == "label"
    header = ["strategy"] + [f"B = {b} ({100 * b / info['n_train']:.3g} %)" for b in budgets]
    reps = info["params"]["repeats"]
    specs = [
        ("test_unweighted", f"Held-out {metric}, unweighted training", f"mean ± sd over {reps} repeats; bold: the "
         f"clear best at a budget ({'higher' if higher else 'lower'} is better). Full data: "
         f"{_num(info['metric_full'])}.", higher, False),
        ("test_weighted", f"Held-out {metric}, training weighted by the selection's weights",
         "strategies with unbiased weights only; bold: the clear best at a budget.", higher, False),
        ("rel_error", "Relative error of the estimated mean training loss",
         f"Relative error = |Σ w·ℓ / n − truth| / truth, ℓ the reference model's loss; truth = {_num(info['truth'])}. Strategies "
         "without unbiased weights use the subset's plain mean. Bold: the clear lowest.", False, False),
        ("rel_error_p95", "95th percentile of the relative error",
         "over the repeats; the tail a user meets once in twenty runs. No bold: a percentile has no standard "
         "error here.", None, False),
        ("rel_error_greg_p95", "95th percentile of the relative error, model-assisted (GREG) estimate",
         "calibrated to the cluster sizes (or to n and the proxy total when a cluster has no selected row), "
         "with the center losses as the proxy. No bold (a percentile).", None, False),
        ("theorem2_coverage", "Coverage of the truth by the Theorem 2 interval",
         "share of repeats whose interval held the truth; nominal at least 63.2 % (1 − 1/e) when the Hölder "
         "assumption holds with the Λ used; – where the interval does not apply.", None, True),
        ("clt_coverage", "Coverage of the truth by the CLT 95 % interval",
         "share of repeats; nominal 95 % (asymptotic); – for designs without unbiased weights.", None, True),
        ("boot_coverage", "Coverage of the truth by the bootstrap-t 95 % interval",
         "share of repeats; nominal 95 %; resamples of the design's units (draws, rows, or rows within strata).",
         None, True),
        ("clt_greg_coverage", "Coverage of the truth by the model-assisted CLT 95 % interval",
         "share of repeats; nominal 95 % (asymptotic).", None, True),
        ("rows", "Distinct rows selected (mean)",
         "i.i.d. draws can pick a row twice, so a draw-based design may train on fewer than B rows.", None, False),
    ]
    tables = []
    for key, title, note, better, pct in specs:
        best = best_per_budget(agg, key, better) if better is not None else {}
        rows, bold = [], set()
        for i, name in enumerate(names):
            cells = [name]
            for j, b in enumerate(budgets):
                e = at.get((name, b))
                cells.append(_cell(e, key, pct) if key != "rows" else _num(e and e.get("rows"), 1))
                if best.get(b) == name:
                    bold.add((i, j + 1))
            rows.append(cells)
        if all(all(c == "–" for c in r[1:]) for r in rows):
            continue
        tables.append({"title": title, "note": note, "header": header, "rows": rows, "bold": bold})
    return tables


BOLD_RULE = ("Bold marks the clear best at a budget: a mean that beats every other strategy's by more than "
             f"{CLEAR_SE:g} standard errors of the difference, √(sd₁²/runs₁ + sd₂²/runs₂). Where another strategy "
             "is within that margin the budget has no clear best and nothing is bold.")


def _intro(info: dict) -> list[str]:
    p = info["params"]
    col = f"label '{p['label']}'" if p["label"] else f"target '{p['target']}'"
    model = ("multinomial logistic regression (L2 penalty 1e-2 on standardised features); loss = its cross-entropy"
             if info["kind"] == "label" else
             "least squares (ridge 1e-6 on standardised features); loss = its squared residual")
    source = info["emb"] + (f" + {info['data']}" if info.get("data") else "")
    classes = f"; {info['classes']} classes" if info.get("classes") else ""
    return [
        f"Data: {source}, {col}: {info['n_train']} training rows, {info['n_test']} held out "
        f"(--holdout {p['holdout']}); {info['d']} dimensions{classes}; {p['repeats']} repeats per strategy and "
        f"budget; seed {p['seed']}.",
        f"Proxy model: {model}. The truth is the mean loss of the model trained on every training row, over every "
        f"training row: {_num(info['truth'])}; its held-out {info['metric']} is {_num(info['metric_full'])}.",
        f"Centers: {p['center_frac']}·B; Λ: " + ("balanced default (Σℓ̂/Φ_z; ∞ for sensitivity-regression)"
                                                 if p["lambda"] is None else str(p["lambda"])) + ".",
        BOLD_RULE,
    ]


def evaluate_markdown(agg: list[dict], info: dict) -> str:
    """summary.md: the setting, one table per quantity, the strategies' definitions."""
    out = [f"# dataselect evaluate: {info['emb']}", ""] + [line + "  " for line in _intro(info)] + [""]
    for t in evaluate_tables(agg, info):
        out += [f"## {t['title']}", "", t["note"], "", "| " + " | ".join(t["header"]) + " |",
                "|" + "---|" * len(t["header"])]
        for i, r in enumerate(t["rows"]):
            out.append("| " + " | ".join(f"**{c}**" if (i, j) in t["bold"] else c for j, c in enumerate(r)) + " |")
        out.append("")
    out += ["## Strategies", ""]
    out += [f"* `{n}`: {STRATEGY_TEXT.get(n, '')}" for n in ["full"] + info["params"]["strategies"]]
    return "\n".join(out) + "\n"


def _html_table(t: dict) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t["header"])
    body = []
    for i, r in enumerate(t["rows"]):
        cells = "".join(f"<td><strong>{html.escape(c)}</strong></td>" if (i, j) in t["bold"]
                        else f"<td>{html.escape(c)}</td>" for j, c in enumerate(r))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def page(title: str, body: list[str]) -> str:
    """A complete, self-contained HTML5 page."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def evaluate_html(agg: list[dict], info: dict, pngs: dict[str, bytes] | None) -> str:
    """report.html: the summary tables and the plots embedded."""
    body = [f"<h1>dataselect evaluate: {html.escape(info['emb'])}</h1>"]
    body += [f"<p>{html.escape(line)}</p>" for line in _intro(info)]
    if pngs:
        body += ["<h2>Plots</h2>"] + [_img(png, name) for name, png in pngs.items()]
    else:
        body.append(f'<p class="note">{html.escape(plots.HINT[6:])}</p>')
    for t in evaluate_tables(agg, info):
        body += [f"<h2>{html.escape(t['title'])}</h2>", f'<p class="note">{html.escape(t["note"])}</p>',
                 _html_table(t)]
    body += ["<h2>Strategies</h2>", "<ul>"] + [
        f"<li><code>{html.escape(n)}</code>: {html.escape(STRATEGY_TEXT.get(n, ''))}</li>"
        for n in ["full"] + info["params"]["strategies"]] + ["</ul>"]
    return page(f"dataselect evaluate: {info['emb']}", body)


write_bytes = io.write_bytes


def write_evaluate_report(rows: list[dict], agg: list[dict], info: dict, paths: dict[str, str],
                          note: Note = lambda _m: None) -> list[str]:
    """Write summary.md, the PNGs (with matplotlib) and report.html; return the paths written."""
    names = info["params"]["strategies"]
    io.write_text(evaluate_markdown(agg, info), paths["summary.md"])
    written = [paths["results.parquet"], paths["summary.md"]]
    pngs = plots.evaluate_plots(agg, info, names)
    if pngs is None:
        note(plots.HINT)
    else:
        for name, png in pngs.items():
            write_bytes(png, paths[name])
            written.append(paths[name])
    io.write_text(evaluate_html(agg, info, pngs), paths["report.html"])
    written.append(paths["report.html"])
    return written


# --------------------------------------------------------------------------- sample --report-html


def _gather_rows(pf, positions: np.ndarray, column: str = "embedding") -> np.ndarray:
    """The embedding rows at sorted ``positions``, read batch by batch (memory: the rows kept plus one batch)."""
    out, start, j = [], 0, 0
    for batch in pf.iter_batches(columns=[column], batch_size=pqdataset.DECODE_ROWS):
        m = batch.num_rows
        k = np.searchsorted(positions, start + m)
        if k > j:
            arr = batch.column(0)
            take = arr.take(pa.array(positions[j:k] - start))
            d = take.type.list_size if pa.types.is_fixed_size_list(take.type) else None
            vals = take.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
            out.append(vals.reshape(k - j, d or (len(vals) // (k - j))))
            j = k
        start += m
    return np.vstack(out) if out else np.empty((0, 0))


def _pca(source: str, sel_ids: pa.Array, weight: np.ndarray, max_points: int, seed: int):
    """2-D PCA of a seeded subsample of the rows (at most ``max_points``) and of the selected rows
    (at most ``max_points`` of them, the heaviest kept); components fitted on the subsample."""
    pf = io.open_parquet(source, "input")
    ids = io.read_ids(pf, source)
    n = len(ids)
    rng = np.random.default_rng([seed, 7])
    sub = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    pos = io.lookup(ids, sel_ids, source, "selection")
    keep = np.sort(np.argsort(-weight, kind="stable")[:max_points])
    pos, w = pos[keep], weight[keep]
    both = np.union1d(sub, pos)
    rows = _gather_rows(pf, both)
    xs, xp = rows[np.searchsorted(both, sub)], rows[np.searchsorted(both, pos)]
    mu = xs.mean(axis=0)
    _, _, vt = np.linalg.svd(xs - mu, full_matrices=False)
    comp = vt[:2].T if vt.shape[0] >= 2 else np.eye(xs.shape[1], 2)
    comp = comp * np.where(comp[np.argmax(np.abs(comp), axis=0), [0, 1]] < 0, -1, 1)  # fix the signs
    return (xs - mu) @ comp, (xp - mu) @ comp, w


def _labels(source: str, sel_ids: pa.Array, column: str):
    """Per label: rows, distinct rows selected and their share; None when SOURCE lacks the column."""
    pf = io.open_parquet(source, "input")
    if column not in pf.schema_arrow.names:
        return None
    t = pf.read(columns=["id", column])
    lab = pc.cast(t.column(column).combine_chunks(), pa.string()).fill_null("(null)")
    chosen = pc.is_in(t.column("id").combine_chunks(), value_set=sel_ids).to_numpy(zero_copy_only=False)
    names, inv = np.unique(np.asarray(lab.to_pylist(), dtype=object), return_inverse=True)
    if len(names) > 200:
        return None
    total = np.bincount(inv, minlength=len(names))
    picked = np.bincount(inv[chosen], minlength=len(names))
    return [str(v) for v in names], total, picked


def sample_report(selected: str, out: str, *, source: str | None = None, label_column: str = "label",
                  max_points: int = 5000, seed: int = 0, note: Note = lambda _m: None) -> None:
    """``sample --report-html``: an HTML page about a selection, self-contained.

    Parameters
    ----------
    selected : str
        The selection ``dataselect sample`` wrote (its metadata holds the report).
    out : str
        The HTML file to write, atomically.
    source : str or None
        The sample's INPUT. When it is an embeddings file (it has an ``embedding`` column) the page adds
        a 2-D PCA of its rows with the selected ones highlighted and, when it has ``label_column``, the
        selected fraction per label. A scores file gives neither.
    max_points : int
        Rows read for the PCA: a seeded uniform subsample of at most this many, plus at most this many
        selected rows, so the page stays cheap on big files.
    """
    table, meta = dataset.read_table(selected, ["id", "count", "prob", "weight"], "selection")
    rep = meta.get("summary") or {}
    weight = table.column("weight").to_numpy()
    if "cluster" in table.column_names:
        group = "cluster"
        labels = table.column("cluster").to_numpy()
        clusters = rep.get("clusters") or []
        k = max(len(clusters), int(labels.max()) + 1 if len(labels) else 0)
        sizes = np.array([c.get("size") or 0 for c in clusters] or np.bincount(labels, minlength=k), dtype=np.int64)
    else:  # a selection from a scores file of an influence method: its strata, or all rows as one group
        labels, sizes, group = _score_groups(table, rep)
    n = int(rep.get("n") or sizes.sum())
    per_cluster = np.bincount(labels, minlength=len(sizes))
    frac = per_cluster / np.maximum(sizes, 1)
    overall = len(weight) / n if n else 0.0
    lab = pca = None
    has_emb = (source is not None and os.path.isfile(source)
               and "embedding" in io.open_parquet(source, "input").schema_arrow.names)
    if has_emb:
        sel_ids = table.column("id").combine_chunks()
        lab = _labels(source, sel_ids, label_column)
        pca = _pca(source, sel_ids, weight, max_points, seed)
    lab_plot = (lab[0], lab[2] / np.maximum(lab[1], 1)) if lab else None
    pngs = plots.sample_plots(sizes, weight, frac, overall, lab_plot, pca)
    if pngs is None:
        note(plots.HINT)
    io.write_text(_sample_html(rep, selected, weight, sizes, per_cluster, lab, pngs, has_emb, label_column, group), out)


def _score_groups(table, rep: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """(group of each selected row, rows per group, the groups' name) of a selection without clusters."""
    strata = rep.get("strata")
    if strata and rep.get("stratify") in table.column_names:
        keys = [str(st["stratum"]) for st in strata]
        values = table.column(rep["stratify"]).to_numpy(zero_copy_only=False)
        index = {k: i for i, k in enumerate(keys)}
        return (np.array([index[str(v)] for v in values], dtype=np.int64),
                np.array([st["size"] for st in strata], dtype=np.int64), rep["stratify"])
    return np.zeros(table.num_rows, dtype=np.int64), np.array([int(rep.get("n") or table.num_rows)]), "all rows"


def _sample_html(rep: dict, selected: str, weight: np.ndarray, sizes: np.ndarray, per_cluster: np.ndarray,
                 lab, pngs: dict[str, bytes] | None, has_emb: bool, label_column: str, group: str = "cluster") -> str:
    name = os.path.basename(selected)
    facts = [("rows n", rep.get("n")), ("clusters k", rep.get("k")), ("draws s", rep.get("s")),
             ("distinct rows selected", len(weight)), ("ε", rep.get("eps")), ("seed", rep.get("seed")),
             ("effective sample size", rep.get("effective_sample_size")),
             ("weights: min / median / max", f"{_num(float(weight.min()))} / {_num(float(np.median(weight)))} / "
                                             f"{_num(float(weight.max()))}"),
             ("Σ weight (≈ n)", float(weight.sum())), ("Λ set by", rep.get("lambda_mode"))]
    body = [f"<h1>dataselect selection: {html.escape(name)}</h1>"]
    if rep.get("guarantee"):
        body.append(f"<p>{html.escape(rep['guarantee'])}</p>")
    body.append(_html_table({"header": ["quantity", "value"], "bold": set(),
                             "rows": [[a, _num(b) if isinstance(b, float) else ("–" if b is None else str(b))]
                                      for a, b in facts]}))
    if pngs:
        body += [_img(png, key) for key, png in pngs.items()]
    else:
        body.append(f'<p class="note">{html.escape(plots.HINT[6:])}</p>')
    if not has_emb:
        body.append('<p class="note">The input was not a single embeddings file (a scores file, or a directory), '
                    'so the page has no 2-D projection and no per-label table; run '
                    '<code>sample --k K EMB.parquet</code> for them.</p>')
    if lab is not None:
        names, total, picked = lab
        body += [f"<h2>Selected fraction per {html.escape(label_column)}</h2>", _html_table({
            "header": [label_column, "rows", "selected", "fraction"], "bold": set(),
            "rows": [[v, str(t), str(p), f"{100 * p / max(t, 1):.2f} %"] for v, t, p in zip(names, total, picked)]})]
    order = np.argsort(-sizes, kind="stable")[:50]
    what = "clusters" if group == "cluster" else f"groups ({html.escape(group)})"
    body += [f"<h2>{what.capitalize()}</h2>", f'<p class="note">The {len(order)} largest of {len(sizes)} {what}.</p>',
             _html_table({"header": [html.escape(group), "size", "selected rows", "fraction"], "bold": set(),
                          "rows": [[str(i), str(sizes[i]), str(per_cluster[i]),
                                    f"{100 * per_cluster[i] / max(sizes[i], 1):.2f} %"] for i in order]})]
    return page(f"dataselect selection: {name}", body)


def check_report_path(path: str, inputs: list[str | None], option: str = "--report-html") -> None:
    """Refuse an HTML report path before the work (same rules as every output)."""
    if not path.lower().endswith((".html", ".htm")):
        raise InputError(f"{option} writes an HTML page; give a path ending in .html", path)
    outputs.check_output_path(path, [p for p in inputs if p], option)


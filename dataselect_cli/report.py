"""The selection report: built once as a dict, rendered as JSON, Markdown or a short summary."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from . import bounds, designs


def build(score_summary: dict[str, Any], *, s: int, eps: float, delta: float | None, seed: int,
          weight: np.ndarray, count: np.ndarray, drawn_labels: np.ndarray, min_prob: float, design) -> dict[str, Any]:
    """Assemble the report of a selection from the scoring summary and the draw of ``design``
    (a :class:`~dataselect_cli.designs.Design`, which names itself and states the guarantee)."""
    n, k = score_summary["n"], score_summary["k"]
    lam_phi = score_summary.get("lambda_phi")
    conf = bounds.confidence(delta)
    lam = score_summary.get("lambda")
    lam_global = lam[0] if lam and all(v == lam[0] for v in lam) else None
    additive = 2 * eps * lam_phi / n if lam_phi is not None else None
    drawn = np.bincount(drawn_labels, weights=count, minlength=k).astype(int).tolist()
    wsum = float(weight.sum())
    rep: dict[str, Any] = {
        "n": n, "d": score_summary.get("d"), "k": k, "z": score_summary.get("z"),
        "eps": eps, "delta": delta, "s": s, "confidence": conf, "seed": seed,
        "design": design.name, "design_params": design.params(), "design_text": design.summary,
        "loss_mode": score_summary.get("loss_mode"),
        "lambda_mode": score_summary.get("lambda_mode"),
        "lambda": lam_global if lam_global is not None else lam,
        "lambda_phi": lam_phi, "phi_z": score_summary.get("phi_z"),
        "additive_per_example": additive,
        "selected_rows": int(len(weight)),
        "effective_sample_size": bounds.effective_sample_size(weight, count),
        "max_weight": float(weight.max()),
        "max_weight_share": float(weight.max() / wsum),
        "weight_sum": wsum,
        "min_prob": min_prob,
        "holder": score_summary.get("holder", {}),
        "lambda_info": score_summary.get("lambda_info", {}),
        "clustering": score_summary.get("clustering", {}),
    }
    if score_summary.get("lambda_infinite"):
        rep["lambda_infinite"] = True
    if score_summary.get("proxy"):  # the proxies' leave-one-out R² over the probes (:mod:`dataselect_cli.proxy`)
        rep["proxy"] = score_summary["proxy"]
    rep["guarantee"] = design.guarantee(rep)
    cl = score_summary.get("clusters", {})
    lam_list = lam if isinstance(lam, list) else [None] * k
    rep["clusters"] = [
        {"cluster": i, "size": _at(cl.get("size"), i), "center_id": _at(cl.get("center_id"), i),
         "center_loss": _at(cl.get("center_loss"), i), "lambda": lam_list[i], "cost": _at(cl.get("cost"), i),
         "drawn": drawn[i]}
        for i in range(k)
    ]
    return rep


def build_scored(score_summary: dict[str, Any], *, s: int, seed: int, weight: np.ndarray, count: np.ndarray,
                 columns: dict[str, Any], stats: dict[str, Any], design) -> dict[str, Any]:
    """The report of a selection drawn from a scores file of an influence method (or by a score design):
    no clusters, k, z or ε; the score's method, direction and normalisation, what the design keeps,
    the kept scores' range, the strata (``--stratify``), and the design's guarantee."""
    n = score_summary["n"]
    wsum = float(weight.sum())
    score = columns.get("score")
    rep: dict[str, Any] = {
        "report_kind": "score", "n": n, "s": s if s else int(len(weight)), "seed": seed,
        "design": design.name, "design_params": design.params(), "design_text": design.summary,
        "unbiased": bool(design.unbiased),
        "score": {"method": score_summary.get("method"), "direction": score_summary.get("direction"),
                  "normalization": score_summary.get("normalization")},
        "selected_rows": int(len(weight)), "fraction": len(weight) / n if n else None,
        "effective_sample_size": bounds.effective_sample_size(weight, count),
        "max_weight": float(weight.max()), "max_weight_share": float(weight.max() / wsum), "weight_sum": wsum,
        "min_prob": stats.get("min_prob"),
    }
    if score is not None:
        sc = np.asarray(score, dtype=np.float64)
        rep["kept_scores"] = {"min": float(sc.min()), "mean": float(sc.mean()), "max": float(sc.max())}
    if getattr(design, "sum_estimates", None):
        rep["sum_estimates"] = design.sum_estimates
    for key in ("certain", "q_ratio", "kept", "reweight"):
        if key in stats:
            rep[key] = stats[key]
    if "strata" in stats:
        rep["stratify"] = stats["stratify"]
        rep["strata"] = stats["strata"]
    keeps = getattr(design, "keeps", None)
    rep["keeps"] = keeps(rep["selected_rows"], rep["score"]["direction"]) if keeps else None
    rep["guarantee"] = design.guarantee(rep)
    return rep


def _at(values, i):
    return values[i] if values is not None and i < len(values) else None


def training_line(s: dict[str, Any], n: int) -> str:
    """How many rows each k-means stage used, in one line (never a silent subsample)."""
    seeding = f"k-means++ seeding on {s['n_init']} rows" if s.get("init") == "kmeans++" else f"{s.get('init')} seeding"
    parts = [seeding]
    if s.get("warm_start"):  # Lloyd on the seeding rows first
        parts.append(f"{len(s['warm_obj'])} Lloyd iterations on them")
    if not (s.get("warm_start") and s.get("fit_niter") == 0):
        parts.append(f"{s['iterations']} Lloyd iterations on {s['n_train']} of {n} rows "
                     f"({s['points_per_centroid']:.1f} per centroid)")
    if s.get("refine"):
        parts.append(f"{len(s['refine_obj'])} more on all {n} rows")
    return "k-means: " + ", ".join(parts)


def to_json(rep: dict[str, Any]) -> str:
    return json.dumps(rep, indent=2, sort_keys=True, ensure_ascii=False, default=_default) + "\n"


def _default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o).__name__)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        return f"{v:.6g}"
    return str(v)


def _score_lines(rep: dict[str, Any]) -> list[str]:
    sc = rep.get("score") or {}
    about = ", ".join(f"{k} {v}" for k, v in (("method", sc.get("method")), ("direction", sc.get("direction")),
                                              ("normalization", sc.get("normalization"))) if v)
    lines = [f"selected {rep['selected_rows']} distinct rows of n = {rep['n']} ({100 * (rep['fraction'] or 0):.1f}%) "
             f"with design {rep['design']} (seed = {rep['seed']}){'; scores: ' + about if about else ''}"]
    if rep.get("kept_scores"):
        k = rep["kept_scores"]
        lines.append(f"kept scores from {k['min']:.4g} to {k['max']:.4g} (mean {k['mean']:.4g}); "
                     + (f"effective sample size {rep['effective_sample_size']:.1f}, largest weight "
                        f"{rep['max_weight']:.4g}" if rep["unbiased"] or rep.get("reweight") else "every weight 1"))
    if rep.get("strata"):
        shown = ", ".join(f"{st['stratum']}: {st['selected']}/{st['size']}" for st in rep["strata"][:12])
        more = f", … ({len(rep['strata'])} strata)" if len(rep["strata"]) > 12 else ""
        lines.append(f"per stratum of {rep['stratify']} (selected/rows): {shown}{more}")
    lines.append(rep["guarantee"])
    return lines


def round_lines(rep: dict[str, Any]) -> list[str]:
    """One line per adaptive round (``sample --rounds``): centers, queries, Φ_z, Σ Λ·Φ and the bound."""
    out = []
    for r in rep.get("rounds") or []:
        bound = f"bound ±{r['eps']:.4g}·mean + {_fmt(r['additive_per_example'])}" if r["eps"] is not None else \
            "no Theorem 2 bound for this design"
        out.append(f"round {r['round']}: {r['centers']} centers, {r['queries']} loss queries so far; Φ_z = "
                   f"{_fmt(r['phi_z'])}, Σ Λ·Φ = {_fmt(r['lambda_phi'])}; {bound}; ESS "
                   f"{r['effective_sample_size']:.1f}")
    return out


def regression_lines(rep: dict[str, Any]) -> list[str]:
    """What a ``--regression`` selection's weights estimate, in one line."""
    reg = rep.get("regression")
    return [f"regression on --target {reg['target']}: {reg['estimates']}"] if reg else []


def _bandit_lines(rep: dict[str, Any]) -> list[str]:
    best = next((a for a in rep["arms"] if a["cluster"] == rep["best_arm"]), None)
    lines = [f"selected {rep['selected_rows']} rows of n = {rep['n']} ({100 * rep['fraction']:.1f}%) by the cluster "
             f"bandit (k = {rep['k']}, seed = {rep['seed']}): {rep['rounds']} rounds, {rep['queries']} of "
             f"{rep['budget_queries']} queries ({rep['oracle']}), {rep['arms_pulled']} clusters pulled"]
    if best:
        lines.append(f"most pulled: cluster {best['cluster']} ({best['pulls']} pulls, mean loss "
                     f"{_fmt(best['mean_loss'])}, {best['selected']} rows selected); prefer {rep['prefer']} losses, "
                     f"UCB c = {_fmt(rep['ucb_c'])}, σ̂ = {_fmt(rep['noise_scale'])}")
    return lines + [rep["guarantee"]]


def _bandit_markdown(rep: dict[str, Any], max_clusters: int) -> str:
    rows = [("selection", "cluster bandit (Quad-style UCB over clusters), unweighted"), ("rows n", rep["n"]),
            ("clusters k", rep["k"]), ("rows selected", rep["selected_rows"]), ("seed", rep["seed"]),
            ("oracle", rep["oracle"]), ("queries spent / budget", f"{rep['queries']} / {rep['budget_queries']}"),
            ("rounds", rep["rounds"]), ("clusters pulled", rep["arms_pulled"]),
            ("preferred losses", rep["prefer"]), ("UCB c", rep["ucb_c"]),
            ("σ̂ (pooled within-cluster sd)", rep["noise_scale"]),
            ("clusters chosen per round", rep["arms_per_round"]),
            ("rows pulled per chosen cluster", rep["pulls_per_round"]),
            ("mean queried loss", rep["queried_mean_loss"]),
            ("selected rows with a queried loss", rep["selected_queried"])]
    out = ["# dataselect bandit report", "", "| quantity | value |", "|---|---|"]
    out += [f"| {a} | {_fmt(b)} |" for a, b in rows]
    out += ["", "## Guarantee", "", rep["guarantee"], "", "## Arms (clusters)", ""]
    arms = sorted(rep["arms"], key=lambda a: (-a["pulls"], a["cluster"]))
    if len(arms) > max_clusters:
        out += [f"The {max_clusters} most pulled of {rep['k']} clusters (the JSON report lists all).", ""]
    out += ["| cluster | size | pulls | times chosen | mean loss | bonus | UCB | selected |",
            "|---|---|---|---|---|---|---|---|"]
    out += [f"| {a['cluster']} | {a['size']} | {a['pulls']} | {a['chosen']} | {_fmt(a['mean_loss'])} | "
            f"{_fmt(a['bonus'])} | {_fmt(a['ucb'])} | {a['selected']} |" for a in arms[:max_clusters]]
    return "\n".join(out) + "\n"


def summary_lines(rep: dict[str, Any]) -> list[str]:
    """The short summary printed on stdout after ``sample`` (and ``bandit``)."""
    if rep.get("report_kind") == "score":
        return _score_lines(rep) + regression_lines(rep)
    if rep.get("report_kind") == "bandit":
        return _bandit_lines(rep)
    how = f"from {rep['s']} draws" if designs.repeats_rows(rep.get("design")) else \
        f"(design {rep.get('design')}, target s = {rep['s']})"
    lines = [
        f"selected {rep['selected_rows']} distinct rows {how} out of n = {rep['n']} "
        f"(k = {rep['k']}, z = {rep['z']}, ε = {rep['eps']:.4g}, seed = {rep['seed']})",
        f"effective sample size {rep['effective_sample_size']:.1f}; largest weight {rep['max_weight']:.4g} "
        f"({100 * rep['max_weight_share']:.2f}% of Σw = {rep['weight_sum']:.6g})",
        rep["guarantee"],
    ]
    if rep.get("design_choice"):
        lines.append(f"--design auto chose {rep['design_choice']['reason']}")  # the reason starts with the design
    if rep.get("rows_requested") is not None:
        want, got = rep["rows_requested"], rep["selected_rows"]
        if designs.repeats_rows(rep.get("design")):
            lines.append(f"--rows {want}: {rep['s']} draws with replacement gave {got} distinct rows")
        elif got != want:
            lines.append(f"--rows {want}: the {rep.get('design')} design's size is random ({want} expected, {got} drawn)")
    if rep.get("rounds"):
        lines.append(f"the selection is round {len(rep['rounds'])}'s of the adaptive run (Algorithm 3):")
        lines += ["  " + line for line in round_lines(rep)]
    return lines + regression_lines(rep)


def estimate_lines(r: dict[str, Any]) -> list[str]:
    """The lines ``estimate`` prints (also after ``sample --estimate``): the mean, its standard error, each
    interval with its kind and confidence, and the model-assisted estimate."""
    source = f"s = {r['s']} draws" if designs.repeats_rows(r["design"]) else f"{r['rows']} rows ({r['design']})"
    se = r["std_error_mean"]
    lines = [f"estimated mean loss {r['estimate_mean']:.6g} over n = {r['n']} rows from {source} "
             f"(std. error {se if se is None else format(se, '.4g')})"]
    for key in ("paper_interval", "clt_interval", "bootstrap_interval", "bernstein_interval"):
        if key in r:
            iv = r[key]
            conf = iv.get("confidence")
            extra = " — Hölder assumption VIOLATED by probes: not guaranteed" if iv.get("holder_violated") else \
                (" if the Hölder assumption holds (not checked)" if iv.get("conditional") else "")
            lines.append(f"  {iv['kind']}: [{iv['low']:.6g}, {iv['high']:.6g}]"
                         f"{'' if conf is None else f' at {100 * conf:.1f}%'}{extra}")
    ma = r.get("model_assisted")
    if ma:
        se = ma["std_error_mean"]
        r2 = "" if ma.get("r2") is None else f"; R² of the loss on them over {ma['r2_over']}: {ma['r2']:.3g}"
        lines.append(f"model-assisted: {ma['estimate_mean']:.6g} (std. error "
                     f"{'–' if se is None else format(se, '.4g')}; {ma['kind']}{r2})")
        if "clt_interval" in ma:
            iv = ma["clt_interval"]
            lines.append(f"  {iv['kind']}: [{iv['low']:.6g}, {iv['high']:.6g}] at {100 * iv['confidence']:.1f}%")
    return lines


def proxy_line(p: dict[str, Any]) -> str:
    """``proxy: mean; R² over the 120 probes, each left out of its own prediction: center 0.41, mean 0.52``."""
    r2 = ", ".join(f"{name} {'–' if v is None else format(v, '.3g')}" for name, v in p["r2_loo"].items())
    chosen = f" (chose {p['chosen']})" if p.get("chosen") else ""
    return f"proxy: {p['proxy']}{chosen}; R² over the {p['probes']} probes, each left out of its own prediction: {r2}"


def oracle_line(o: dict[str, Any]) -> str:
    """``loss queries: 407 = 40 centers + 160 probes + 207 selected, asked of --loss-command '…'``."""
    parts = " + ".join(f"{q['ids']} {q['purpose']}" for q in o["by_purpose"])
    how = f", asked of --loss-command '{o['command']}'" if "command" in o else ""
    return f"loss queries: {o['queries']}{' = ' + parts if len(o['by_purpose']) > 1 else ''}{how}"


def _estimate_markdown(rep: dict[str, Any]) -> list[str]:
    """The estimate of ``sample --estimate`` and the loss queries of the run, when it has them."""
    out = []
    if rep.get("estimate"):
        out += ["## Estimate (--estimate)", "", *(f"- {line.strip()}" for line in estimate_lines(rep["estimate"])), ""]
    if rep.get("oracle"):
        out += [oracle_line(rep["oracle"]) + ".", ""]
    return out


def _score_markdown(rep: dict[str, Any]) -> str:
    sc = rep.get("score") or {}
    rows = [("design", f"{rep['design']}: {rep['design_text']}"), ("parameters", rep.get("design_params") or "–"),
            ("keeps", rep.get("keeps")), ("rows n", rep["n"]), ("distinct rows selected", rep["selected_rows"]),
            ("fraction kept", f"{100 * (rep['fraction'] or 0):.2f}%"), ("seed", rep["seed"]),
            ("score method", sc.get("method")), ("score direction", sc.get("direction")),
            ("score normalization", sc.get("normalization")),
            ("Σ w·ℓ unbiased for the full loss", ("yes (priority sampling, Duffield–Lund–Thorup)"
                                                  if rep["design"] == "priority" else
                                                  "nearly (Horvitz–Thompson, Pareto order sampling)") if rep["unbiased"]
             else f"no: it estimates {rep['sum_estimates']}" if rep.get("sum_estimates")
             else "no (a selection by score)"),
            ("effective sample size", rep["effective_sample_size"]),
            ("largest weight (share of Σw)", f"{_fmt(rep['max_weight'])} ({100 * rep['max_weight_share']:.2f}%)"),
            ("Σ weight", rep["weight_sum"])]
    if rep.get("kept_scores"):
        k = rep["kept_scores"]
        rows.append(("kept scores (min / mean / max)", f"{_fmt(k['min'])} / {_fmt(k['mean'])} / {_fmt(k['max'])}"))
    for key, what in (("q_ratio", "q of the most over the least favoured row"), ("certain", "rows with π = 1"),
                      ("min_prob", "smallest π")):
        if rep.get(key) is not None and rep["unbiased"]:
            rows.append((what, rep[key]))
    out = ["# dataselect selection report", "", "| quantity | value |", "|---|---|"]
    out += [f"| {a} | {_fmt(b)} |" for a, b in rows]
    if rep.get("reweight"):
        rw = rep["reweight"]
        rows_rw = [("curve f(ℓ̃)", rw["curve"]), ("temperature r", rw["temperature"]),
                   ("normalisation", rw["normalize"]),
                   ("loss mapped to −1 / +1", f"{_fmt(rw['lo'])} / {_fmt(rw['hi'])}"),
                   ("rows clipped to that range", rw["clipped"]),
                   ("weight w min / max (mean 1)", f"{_fmt(rw['weight_min'])} / {_fmt(rw['weight_max'])}")]
        out += [f"| {a} | {_fmt(b)} |" for a, b in rows_rw]
    out += ["", "## Guarantee", "", rep["guarantee"], ""]
    out += _regression_markdown(rep)
    if rep.get("kl_reduction"):
        kl = rep["kl_reduction"]
        out += ["## KL reduction (DSIR's data metric)", "",
                f"Mean over targets of KL(target ‖ raw) − KL(target ‖ selected): {_fmt(kl['kl_reduction'])} nats "
                f"(KL to raw {', '.join(_fmt(v) for v in kl['kl_raw'])}; to the selection "
                f"{', '.join(_fmt(v) for v in kl['kl_selected'])}). Assumes {kl['assumes']}.", ""]
    if rep.get("strata"):
        out += [f"## Strata of {rep['stratify']}", "", "| stratum | rows | selected | fraction |", "|---|---|---|---|"]
        out += [f"| {st['stratum']} | {st['size']} | {st['selected']} | {100 * st['selected'] / st['size']:.2f}% |"
                for st in rep["strata"]]
    est = _estimate_markdown(rep)  # after the strata, whose table ends the report otherwise
    return "\n".join(out) + "\n" + ("\n" + "\n".join(est) if est else "")


def _rounds_markdown(rep: dict[str, Any]) -> list[str]:
    """The per-round table of an adaptive run: its rows, or nothing."""
    rounds = rep.get("rounds")
    if not rounds:
        return []
    out = ["## Adaptive rounds (Algorithm 3)", "",
           f"The rows in D^z order (seed {rep['order']['seed']}, z = {rep['order']['z']}); round i queried the losses "
           "of the next k rows and drew with the first i·k as centers. The selection written is the last round's. "
           "Bound: the weighted mean loss is within ±ε × the full mean + the additive term of the full mean (Theorem 2 "
           "for the round's clustering, with probability as above, if the Hölder assumption holds).", "",
           "| round | centers | loss queries | Φ_z | Λ | Σ Λ·Φ | ε | additive term | selected rows | ESS |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['round']} | {r['centers']} | {r['queries']} | {_fmt(r['phi_z'])} | {_fmt(r['lambda'])} | "
            f"{_fmt(r['lambda_phi'])} | {_fmt(r['eps'])} | {_fmt(r['additive_per_example'])} | {r['selected_rows']} | "
            f"{_fmt(r['effective_sample_size'])} |" for r in rounds]
    return out + [""]


def _regression_markdown(rep: dict[str, Any]) -> list[str]:
    reg = rep.get("regression")
    if not reg:
        return []
    out = ["## Regression (Algorithm 2)", "", f"Target: column {reg['target']} of {reg['target_file']}."]
    if reg.get("x0") is not None:
        out.append(f"x0: {reg['x0_fit']}; the proxy loss of a row is its center's squared residual under x0.")
    return out + [f"Rows with p = 0: {reg['zero_prob_rows']}.", f"What the weights estimate: {reg['estimates']}.", ""]


def to_markdown(rep: dict[str, Any], max_clusters: int = 100) -> str:
    """The report as Markdown: parameters, the guarantee, diagnostics, the per-cluster table."""
    if rep.get("report_kind") == "score":
        return _score_markdown(rep)
    if rep.get("report_kind") == "bandit":
        return _bandit_markdown(rep, max_clusters)
    rows = [
        ("design", f"{rep.get('design')}: {rep.get('design_text')}"),
        ("rows n", rep["n"]), ("dimensions d", rep["d"]), ("clusters k", rep["k"]), ("distance exponent z", rep["z"]),
        ("ε", rep["eps"]), ("δ", rep["delta"] if rep["delta"] is not None else "– (probability 1 − 1/e)"),
        ("draws s", rep["s"]), ("distinct rows selected", rep["selected_rows"]),
        ("confidence", f"{100 * rep['confidence']:.1f}%"), ("seed", rep["seed"]),
        ("losses", rep["loss_mode"]), *([("proxy", proxy_line(rep["proxy"]))] if rep.get("proxy") else []),
        ("Λ set by", rep["lambda_mode"]),
        ("Λ", rep["lambda"] if not isinstance(rep["lambda"], list) else "per cluster (table below)"),
        ("Φ_z (clustering cost)", rep["phi_z"]), ("Σ Λ_i·Φ_z(C_i)", rep["lambda_phi"]),
        ("additive term per example (2εΛΦ/n)", rep["additive_per_example"]),
        ("effective sample size", rep["effective_sample_size"]),
        ("largest weight (share of Σw)", f"{_fmt(rep['max_weight'])} ({100 * rep['max_weight_share']:.2f}%)"),
        ("Σ weight (≈ n)", rep["weight_sum"]),
    ]
    out = ["# dataselect selection report", "", "| quantity | value |", "|---|---|"]
    out += [f"| {a} | {_fmt(b)} |" for a, b in rows]
    out += ["", "## Guarantee", "", rep["guarantee"], ""]
    out += _rounds_markdown(rep) + _regression_markdown(rep)
    h = rep.get("holder") or {}
    out += ["## Hölder check (probe rows)", ""]
    if h.get("probes"):
        verdict = "**VIOLATED**" if h.get("violated") else "holds on every probe"
        out.append(f"{h['probes']} probes; ratio |ℓ(e) − ℓ(c)| / ‖e − c‖^z > Λ on {h['violations']} of them: {verdict}.")
        if h.get("percentiles"):
            out.append("Ratio percentiles (as in the paper's Table 1): " +
                       ", ".join(f"p{q} = {_fmt(v)}" for q, v in h["percentiles"].items()) + ".")
    else:
        out.append("No probe rows were given, so the assumption behind the bound was not checked.")
    out.append("")
    cl = rep.get("clustering") or {}
    if cl.get("n_train"):
        obj = cl.get("refine_obj") or cl.get("obj") or []
        out += ["## Clustering", "", training_line(cl, rep["n"]) + f"; nredo {cl.get('nredo')}, tol {cl.get('tol')}; "
                f"final objective {_fmt(obj[-1] if obj else None)}; imbalance factor "
                f"{_fmt(cl.get('imbalance_factor'))}.", ""]
    out += _estimate_markdown(rep)
    out += ["## Clusters", ""]
    clusters = rep["clusters"]
    if len(clusters) > max_clusters:
        clusters = sorted(clusters, key=lambda c: -(c["size"] or 0))[:max_clusters]
        out += [f"The {max_clusters} largest of {rep['k']} clusters (the JSON report lists all).", ""]
    out += ["| cluster | size | center_id | center loss | Λ_i | cost Φ_z | drawn |", "|---|---|---|---|---|---|---|"]
    lam = rep["lambda"]
    for c in clusters:
        lam_i = c["lambda"] if c["lambda"] is not None else (lam if not isinstance(lam, list) else None)
        out.append(f"| {c['cluster']} | {_fmt(c['size'])} | {_fmt(c['center_id'])} | {_fmt(c['center_loss'])} | "
                   f"{_fmt(lam_i)} | {_fmt(c['cost'])} | {c['drawn']} |")
    return "\n".join(out) + "\n"

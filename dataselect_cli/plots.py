"""PNG plots for ``dataselect evaluate`` and ``sample --report-html`` (matplotlib: the optional ``plots`` extra).

Every function returns the PNG as bytes (the caller writes or embeds it). matplotlib is imported
lazily with the Agg backend; :func:`pyplot` returns None when it is not installed, and the callers
then write their tables without plots. PNGs carry no Software/time metadata, so the same numbers
give the same bytes with the same matplotlib.
"""

from __future__ import annotations

import io as _io
import math
from typing import Any

import numpy as np

HINT = "note: plots need matplotlib: pip install 'dataselect[plots]' (the tables were written without them)"


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, plt) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _styles(names: list[str]) -> dict[str, dict[str, Any]]:
    """A colour, marker and line style per strategy, so that overlapping lines stay distinguishable."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    markers, lines = "osD^vP*X", ["-", "--", "-.", ":"]
    return {name: {"color": cmap(i % 10), "marker": markers[i % len(markers)], "ls": lines[i % len(lines)]}
            for i, name in enumerate(names)}


def _series(agg: list[dict], key: str, names: list[str]) -> dict[str, tuple[list, list, list]]:
    """Per strategy: budgets, means and sds of ``key`` (entries with a null mean left out)."""
    out = {}
    for name in names:
        es = sorted((e for e in agg if e["strategy"] == name and e.get(key) is not None), key=lambda e: e["budget"])
        if es:
            out[name] = ([e["budget"] for e in es], [e[key] for e in es], [e.get(key + "_sd") or 0.0 for e in es])
    return out


def _budget_axis(ax, budgets: list[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("budget (rows)")
    ax.grid(True, alpha=0.3)


def plain_number(x: float) -> str:
    """A tick value as people write it: 20, 0.3, 2,000, 9.5 (not 2×10¹)."""
    if x >= 1 and abs(x - round(x)) < 1e-9 * x:
        return f"{round(x):,}"
    return f"{x:.6g}"


def _plain_log_labels(axis) -> None:
    """Label a log axis with plain numbers. matplotlib still decides which ticks get a label (the decades,
    and some of the 2..9 multiples when the axis spans less than about a decade); only the text changes."""
    from matplotlib import ticker

    class Plain(ticker.LogFormatter):
        def __call__(self, x, pos=None):
            return plain_number(x) if super().__call__(x, pos) else ""

    axis.set_major_formatter(Plain())
    axis.set_minor_formatter(Plain(labelOnlyBase=False))


def evaluate_plots(agg: list[dict], info: dict, names: list[str]) -> dict[str, bytes] | None:
    """The three plots of ``evaluate``: held-out metric, relative error of the loss estimate, coverage.

    Returns ``{file name: PNG bytes}``, or None without matplotlib.
    """
    plt = pyplot()
    if plt is None:
        return None
    style = _styles(names)
    budgets = sorted({e["budget"] for e in agg if e["strategy"] != "full"})
    metric = "held-out accuracy" if info["kind"] == "label" else "held-out 1 − R²"
    out = {}

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in zip(axes, ("test_unweighted", "test_weighted"), ("unweighted training",
                                                                          "weighted training (unbiased weights)")):
        for name, (b, m, sd) in _series(agg, key, names).items():
            # on the log axis of 1 − R², keep the lower error bar above 0
            lower = sd if info["kind"] == "label" else [min(s, 0.95 * v) for s, v in zip(sd, m)]
            ax.errorbar(b, m, yerr=[lower, sd], ms=5, capsize=3, label=name, **style[name])
        ax.axhline(info["metric_full"], color="black", ls="--", lw=1, label="full data")
        _budget_axis(ax, budgets)
        ax.set_title(title)
    axes[0].set_ylabel(metric + " (mean ± sd)")
    if info["kind"] == "target":
        axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{metric} vs budget ({info['n_train']} training rows)")
    fig.tight_layout()
    out["metric.png"] = _png(fig, plt)

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, (b, m, sd) in _series(agg, "rel_error", names).items():
        lower = [min(s, 0.95 * v) for s, v in zip(sd, m)]  # keep error bars above 0 on the log axis
        ax.errorbar(b, m, yerr=[lower, sd], ms=5, capsize=3, label=name, **style[name])
    _budget_axis(ax, budgets)
    ax.set_yscale("log")
    ax.set_ylabel("|estimate − truth| / truth (mean ± sd)")
    ax.set_title("relative error of the estimated mean training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out["rel_error.png"] = _png(fig, plt)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, nominal, title in ((axes[0], "theorem2_coverage", 1 - math.exp(-1), "Theorem 2 interval"),
                                    (axes[1], "clt_coverage", 0.95, "CLT 95 % interval")):
        for name, (b, m, _) in _series(agg, key, names).items():
            ax.plot(b, m, ms=5, label=name, **style[name])
        ax.axhline(nominal, color="black", ls="--", lw=1, label=f"nominal {nominal:.1%}")
        _budget_axis(ax, budgets)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(title)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("share of repeats covering the truth")
    fig.tight_layout()
    out["coverage.png"] = _png(fig, plt)
    return out


def sample_plots(sizes: np.ndarray, weight: np.ndarray, frac_cluster: np.ndarray, overall: float,
                 labels: tuple[list[str], np.ndarray] | None, pca: tuple[np.ndarray, np.ndarray, np.ndarray] | None
                 ) -> dict[str, bytes] | None:
    """The plots of ``sample --report-html``: cluster sizes, weights, selected fraction per cluster and
    per label, and a 2-D PCA of the rows with the selected ones highlighted. None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].hist(sizes, bins=min(50, max(5, len(sizes) // 2)), color="tab:blue")
    axes[0].set_xlabel("cluster size (rows)")
    axes[0].set_ylabel("clusters")
    axes[0].set_title(f"cluster sizes (k = {len(sizes)})")
    w = weight[weight > 0]
    bins = np.geomspace(w.min(), w.max(), 40) if w.max() > w.min() * 1.0001 else 10
    axes[1].hist(w, bins=bins, color="tab:orange")
    if w.max() > w.min() * 1.0001:
        axes[1].set_xscale("log")
        _plain_log_labels(axes[1].xaxis)
    axes[1].set_xlabel("weight = count / (s·p)")
    axes[1].set_ylabel("selected rows")
    axes[1].set_title("weights of the selected rows")
    fig.tight_layout()
    out["sizes_weights.png"] = _png(fig, plt)

    ncols = 2 if labels is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 3.8), squeeze=False)
    ax = axes[0][0]
    ax.bar(np.arange(len(frac_cluster)), frac_cluster, width=1.0, color="tab:green")
    ax.axhline(overall, color="black", ls="--", lw=1, label=f"overall {overall:.2%}")
    ax.set_xlabel("cluster")
    ax.set_ylabel("share of its rows selected")
    ax.set_title("selected fraction per cluster")
    ax.legend(fontsize=8)
    if labels is not None:
        names, frac = labels
        ax = axes[0][1]
        ax.bar(np.arange(len(frac)), frac, color="tab:purple")
        ax.set_xticks(np.arange(len(frac)))
        ax.set_xticklabels(names, rotation=90 if len(names) > 12 else 0, fontsize=8)
        ax.axhline(overall, color="black", ls="--", lw=1)
        ax.set_xlabel("label")
        ax.set_title("selected fraction per label")
    fig.tight_layout()
    out["fractions.png"] = _png(fig, plt)

    if pca is not None:
        all_xy, sel_xy, sel_w = pca
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
        ax.scatter(all_xy[:, 0], all_xy[:, 1], s=3, color="0.75", label=f"rows ({len(all_xy)} shown)",
                   rasterized=True)
        size = 6 + 40 * np.sqrt(sel_w / sel_w.max()) if len(sel_w) else 6
        ax.scatter(sel_xy[:, 0], sel_xy[:, 1], s=size, color="tab:red", alpha=0.7,
                   label=f"selected ({len(sel_xy)} shown; size ∝ √weight)")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_title("2-D projection (PCA) of the embeddings")
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        out["pca.png"] = _png(fig, plt)
    return out

"""``sample --report-html`` and the HTML pages: valid, self-contained, useful without matplotlib."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import htmlreport, io, plots

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


class _Checker(HTMLParser):
    """Collects tags, checks that every non-void element is closed in order, and gathers img sources."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.srcs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src") or "")
            if not a.get("alt"):
                self.errors.append("img without alt")
        for key in ("href", "src"):
            if key in a and not (a[key] or "").startswith("data:"):
                self.errors.append(f"external reference {key}={a[key]!r}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def assert_valid_html(text: str, images: int | None = None) -> _Checker:
    """A well-formed, self-contained HTML5 page: doctype, balanced tags, only base64 PNGs, no script or link."""
    assert text.startswith("<!DOCTYPE html>")
    c = _Checker()
    c.feed(text)
    c.close()
    assert not c.errors, c.errors
    assert not c.stack, f"unclosed: {c.stack}"
    assert {"html", "head", "title", "body", "meta"} <= c.tags
    assert "script" not in c.tags and "link" not in c.tags and "iframe" not in c.tags
    assert not re.search(r"https?://", text)
    for src in c.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(b"\x89PNG\r\n\x1a\n")
    if images is not None:
        assert len(c.srcs) == images
    return c


def blobs(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, d)) * 4
    label = rng.integers(0, 4, n)
    return (centers[label] + rng.normal(size=(n, d))).astype(np.float32), label


@pytest.fixture
def emb_labelled(tmp_path):
    x, label = blobs()
    path = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"id": pa.array(np.arange(len(x)) + 1000, pa.int64()),
                             "embedding": io.embedding_array(x),
                             "label": pa.array([f"c{v}" for v in label])}), path)
    return path


def test_sample_report_html_from_embeddings(tmp_path, emb_labelled):
    out = tmp_path / "sel.html"
    r = run("sample", "--k", 8, "--size", 60, emb_labelled, "-o", tmp_path / "sel.parquet", "--report-html", out)
    assert "Traceback" not in r.stderr
    text = out.read_text(encoding="utf-8")
    assert_valid_html(text, images=3)  # sizes + weights, fractions (cluster + label), PCA
    assert "Selected fraction per label" in text and "<td>c3</td>" in text
    sel = pq.read_table(tmp_path / "sel.parquet")
    assert f"<td>{sel.num_rows}</td>" in text  # distinct rows selected


def test_sample_report_html_from_scores_file_has_no_projection(tmp_path, emb_labelled):
    run("sample", "--k", 8, "--size", 60, emb_labelled, "-o", tmp_path / "a.parquet", "--keep-intermediate",
        tmp_path / "work")
    out = tmp_path / "r.html"
    run("sample", tmp_path / "work" / "scores.parquet", "--size", 60, "-o", tmp_path / "b.parquet",
        "--report-html", out)
    text = out.read_text(encoding="utf-8")
    assert_valid_html(text, images=2)
    assert "a scores file" in text and "Selected fraction per label" not in text


def test_sample_report_html_without_matplotlib(tmp_path, emb_labelled, monkeypatch):
    monkeypatch.setattr(plots, "pyplot", lambda: None)
    out = tmp_path / "sel.html"
    r = run("sample", "--k", 8, "--size", 60, emb_labelled, "-o", tmp_path / "sel.parquet", "--report-html", out)
    assert [line for line in r.stderr.splitlines() if "pip install 'dataselect[plots]'" in line]
    text = out.read_text(encoding="utf-8")
    assert_valid_html(text, images=0)
    assert "<td>c0</td>" in text  # the tables still come out


def test_report_html_bad_path_refused_before_sampling(tmp_path, emb_labelled):
    r = run("sample", "--k", 8, "--size", 60, emb_labelled, "-o", tmp_path / "sel.parquet", "--report-html",
            tmp_path / "sel.txt", code=2)
    assert r.stderr.count("\n") == 1 and "--report-html" in r.stderr and ".html" in r.stderr
    assert not (tmp_path / "sel.parquet").exists()
    r = run("sample", "--k", 8, "--size", 60, emb_labelled, "-o", tmp_path / "sel.parquet", "--report-html",
            tmp_path / "missing" / "r.html", code=2)
    assert "does not exist" in r.stderr and not (tmp_path / "sel.parquet").exists()


def test_pca_reads_only_the_rows_it_needs(tmp_path, emb_labelled):
    """_gather_rows returns exactly the requested rows across batch boundaries; the PCA caps its rows."""
    pf = io.open_parquet(emb_labelled)
    x = np.asarray(pq.read_table(emb_labelled).column("embedding").combine_chunks().flatten()).reshape(400, 6)
    pos = np.array([0, 5, 17, 399])
    np.testing.assert_array_equal(htmlreport._gather_rows(pf, pos), x[pos])
    sel = pa.array([1000, 1001, 1399], pa.int64())
    all_xy, sel_xy, w = htmlreport._pca(str(emb_labelled), sel, np.array([1.0, 2.0, 3.0]), max_points=50, seed=0)
    assert all_xy.shape == (50, 2) and sel_xy.shape == (3, 2) and w.tolist() == [1.0, 2.0, 3.0]


def test_page_escapes_text():
    text = htmlreport.page("a <b> & c", ["<p>x</p>"])
    assert "<title>a &lt;b&gt; &amp; c</title>" in text
    assert_valid_html(text, images=0)


@pytest.mark.parametrize("lo,hi,expected", [(12, 45, ["20", "30", "40"]), (3, 2000, ["10", "100", "1,000"]),
                                             (0.002, 0.03, ["0.01", "0.002", "0.02"])])
def test_weight_histogram_log_ticks_read_as_plain_numbers(lo, hi, expected):
    """The weight axis is logarithmic; its labels read 20, 30 (or 10, 100), never 2×10¹ 3×10¹."""
    plt = plots.pyplot()
    if plt is None:
        pytest.skip("matplotlib (the plots extra) is not installed")
    fig, ax = plt.subplots()
    ax.hist(np.geomspace(lo, hi, 100), bins=np.geomspace(lo, hi, 40))
    ax.set_xscale("log")
    plots._plain_log_labels(ax.xaxis)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.xaxis.get_majorticklabels() + ax.xaxis.get_minorticklabels()
              if t.get_text() and lo * 0.9 <= t.get_position()[0] <= hi * 1.1]
    plt.close(fig)
    assert set(expected) <= set(labels), labels
    assert not any("times" in s or "^" in s or "e" in s for s in labels), labels
    assert [plots.plain_number(v) for v in (20.0, 0.3, 2000.0, 9.5, 1e6)] == ["20", "0.3", "2,000", "9.5", "1,000,000"]

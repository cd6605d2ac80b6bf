"""DSIR (issue 14, the target-aware half): ``score --method dsir`` and ``dsir-clusters``, the ``priority`` design,
``gumbel-topk`` on log weights, the KL reduction. Hand-computed weights, the ``--compat data-selection`` mode
against the PyPI package (when installed) and against stored values, the package's fit truncation, same bytes
at any batch size, the designs' statistics over seeds, and every bad input with exit 2 and one line."""

from __future__ import annotations

import json
import math
import tempfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import designs, dsir, text
from dataselect_cli.designs.priority import inclusion
from dataselect_cli.methods.dsir import cluster_log_ratio
from dataselect_cli.steps import dsir as dsir_step

WORDS = "the cat sat on a mat dog ran far away in the park , python code def return import class ( ) :".split()


def _corpus(path, n, seed, vocab=WORDS, lo=3, hi=60, ids=True):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            doc = " ".join(rng.choice(vocab, rng.integers(lo, hi)))
            f.write(json.dumps({"id": int(i), "text": doc} if ids else {"text": doc}) + "\n")
    return str(path)


@pytest.fixture
def pair(tmp_path):
    raw = _corpus(tmp_path / "raw.jsonl", 300, 1)
    target = _corpus(tmp_path / "target.jsonl", 40, 2, vocab=WORDS[-9:] + ["the"], lo=20, hi=40, ids=False)
    return tmp_path, raw, target


def _scores(path):
    return pq.read_table(path)


# --------------------------------------------------------------------------- the weights by hand


def test_log_weights_of_a_two_document_example_by_hand(tmp_path):
    # raw: "a b", "a a" → γ_R = (a 3/4, b 1/4); target: "a" → γ_T = (a 1, b 0); unigrams only
    f = text.featurize(["a", "b"], 10_000, 1)
    assert f.bucket[0] != f.bucket[1]  # "a" and "b" do not share a bucket at B = 10000
    with open(tmp_path / "raw.jsonl", "w") as out:
        out.write('{"text": "a b"}\n{"text": "a a"}\n')
    with open(tmp_path / "t.jsonl", "w") as out:
        out.write('{"text": "a"}\n')
    run("score", "--method", "dsir", "--text", tmp_path / "raw.jsonl", "--target", tmp_path / "t.jsonl",
        "--ngrams", "1", "--min-length", "0", "-o", tmp_path / "s.parquet")
    t = _scores(tmp_path / "s.parquet")
    la = math.log(1 + 1e-8) - math.log(0.75 + 1e-8)
    lb = math.log(1e-8) - math.log(0.25 + 1e-8)
    np.testing.assert_allclose(t.column("log_importance_weight").to_numpy(), [la + lb, 2 * la], rtol=1e-12)
    np.testing.assert_allclose(t.column("score").to_numpy(), [la + lb, 2 * la], rtol=1e-12)
    assert t.column("length").to_pylist() == [2, 2] and t.column("id").to_pylist() == [0, 1]
    meta = json.loads(t.schema.metadata[b"dataselect"])
    assert meta["summary"]["direction"] == "higher=closer-to-target" and meta["params"]["laplace"] == 0.0
    # Laplace 1 on the target: γ_T = ((1 + 1)/(1 + 2B), 1/(1 + 2B)) over B buckets … only a and b differ from 1/(1+B)
    b = 10_000
    run("score", "--method", "dsir", "--text", tmp_path / "raw.jsonl", "--target", tmp_path / "t.jsonl",
        "--ngrams", "1", "--min-length", "0", "--laplace", "1", "-o", tmp_path / "s1.parquet")
    pa_, pb = 2 / (1 + b), 1 / (1 + b)
    la1 = math.log(pa_ + 1e-8) - math.log(0.75 + 1e-8)
    lb1 = math.log(pb + 1e-8) - math.log(0.25 + 1e-8)
    np.testing.assert_allclose(_scores(tmp_path / "s1.parquet").column("score").to_numpy(), [la1 + lb1, 2 * la1],
                               rtol=1e-12)


def test_lengths_ngram_orders_and_the_min_length_filter(pair):
    tmp, raw, target = pair
    run("score", "--method", "dsir", "--text", raw, "--target", target, "--min-length", "30", "--ngrams", "3",
        "-o", tmp / "s.parquet")
    t = _scores(tmp / "s.parquet")
    words = [sum(w.isalnum() for w in json.loads(line)["text"].split()) for line in open(raw)]  # punctuation: no token
    length = t.column("length").to_numpy()
    three = np.array(words) >= 3
    assert np.array_equal(length[three], np.array(words)[three])  # (Σc + 3)//3: the word count from 3 words on
    score, logw = t.column("score").to_numpy(), t.column("log_importance_weight").to_numpy()
    short = np.array(words) < 30
    assert np.isneginf(score[short]).all() and np.array_equal(score[~short], logw[~short])
    assert np.isfinite(logw).all()
    assert json.loads(t.schema.metadata[b"dataselect"])["summary"]["short"] == int(short.sum())


def test_ngram_hashes_extend_the_bigram_hash():
    h, doc = text.token_hashes(text.tokenize(["a b c"])[0]), np.zeros(3, np.int64)
    (h2, _), (h3, _) = text.ngram_hashes(h, doc, 3)
    assert np.array_equal(h2, text.bigram_hashes(h, doc)[0])
    with np.errstate(over="ignore"):  # wrapping uint64 arithmetic, as the hash intends
        assert h3[0] == text.mix64(np.array([h2[0] * np.uint64(0xD6E8FEB86659FD93) + h[2]], np.uint64))[0]
    assert text.tokenize(["Hello, World!! $3.88"], "wordpunct")[0].to_pylist() == \
        ["hello", ",", "world", "!!", "$", "3", ".", "88"]


def test_same_bytes_at_any_batch_size_and_block_rows(pair, monkeypatch):
    tmp, raw, target = pair
    run("score", "--method", "dsir", "--text", raw, "--target", target, "-o", tmp / "a.parquet")
    monkeypatch.setattr(dsir_step, "BATCH", 7)
    run("score", "--method", "dsir", "--text", raw, "--target", target, "-o", tmp / "b.parquet",
        "--block-rows", "5")
    a = pq.read_table(tmp / "a.parquet")
    b = pq.read_table(tmp / "b.parquet")
    assert a.equals(b)  # the block grid is recorded in the parameters; the columns are the same bytes


# --------------------------------------------------------------------------- compat with the package

# Expected log weights of --compat data-selection on _corpus(raw, 300, 1) / target (40, 2), rows 0, 1, 2 and 299,
# and the lengths of rows 0..4. Regenerate: pip install data-selection, then run the package's HashedNgramDSIR on
# the two files (num_proc=1, min_example_length=0; fit_importance_estimator(); compute_importance_weights()) and
# read log_importance_weights/0.npy and perexample_metadata/0.npy (test_compat_matches_the_package does that).
EXPECTED_COMPAT = {0: -404.2906677474616, 1: -191.35345333624508, 2: -701.6096832029282, 299: -842.537914593263}
EXPECTED_LENGTHS = [29, 10, 45, 17, 13]


def test_compat_golden_buckets_and_stored_values(pair):
    assert dsir.sha256_bucket("alice", 10000) == 6720 and dsir.sha256_bucket("alice went", 10000) == 114
    tmp, raw, target = pair
    run("score", "--method", "dsir", "--compat", "data-selection", "--text", raw, "--target", target,
        "--min-length", "0", "-o", tmp / "c.parquet")
    t = _scores(tmp / "c.parquet")
    w = t.column("log_importance_weight").to_numpy()
    for row, value in EXPECTED_COMPAT.items():
        assert w[row] == pytest.approx(value, rel=1e-12)
    assert t.column("length").to_pylist()[:5] == EXPECTED_LENGTHS


def _package(raw, targets, **kw):
    ds = pytest.importorskip("data_selection", reason="the data-selection package is not installed (pip install "
                             "data-selection, or the test extra)")
    d = ds.HashedNgramDSIR([raw], targets, tempfile.mkdtemp(), min_example_length=0, **kw)
    return d


@pytest.mark.parametrize("case", ["pooled", "ngrams3-b997", "truncated", "separate"])
def test_compat_matches_the_package(pair, case):
    tmp, raw, target = pair
    target2 = _corpus(tmp / "target2.jsonl", 25, 3, vocab=WORDS[:8], lo=10, hi=30, ids=False)
    args = ["--min-length", "0"]
    kw, fit, targets = {"num_proc": 1}, "all", [target]
    if case == "ngrams3-b997":
        kw.update(ngrams=3, num_buckets=997)
        args += ["--ngrams", "3", "--buckets", "997"]
    if case == "truncated":  # the package's num_tokens_to_fit over 2 virtual shards (num_proc = 2)
        kw["num_proc"], fit = 2, 3000
        args += ["--fit-tokens", "3000", "--fit-shards", "2"]
    if case in ("pooled", "separate"):
        targets = [target, target2]
    if case == "separate":
        kw.update(separate_targets=True)
        args += ["--separate-targets"]
    d = _package(raw, targets, **kw)
    import joblib

    # threads, not processes: nltk 3.10's per-call regex timeout fails in joblib's worker processes
    with joblib.parallel_backend("threading"):
        d.fit_importance_estimator(num_tokens_to_fit=fit)
        d.compute_importance_weights()
    shards = d._get_virtually_sharded_datasets([raw])
    w = np.concatenate([np.load(d.log_importance_weights_dir / f"{s['overall_idx']}.npy") for s in shards])
    rows = np.concatenate([np.arange(len(open(raw).readlines()))[s["shard_idx"]::s["num_shards"]] for s in shards])
    ref = np.empty_like(w)
    ref[rows] = w  # the package writes shard by shard; back to row order
    run("score", "--method", "dsir", "--compat", "data-selection", "--text", raw, *sum((["--target", t]
        for t in targets), []), *args, "-o", tmp / "c.parquet")
    t = _scores(tmp / "c.parquet")
    if case == "separate":
        for i in range(2):
            np.testing.assert_allclose(t.column(f"log_importance_weight_{i}").to_numpy(), ref[:, i], rtol=1e-11)
        meta = json.loads(t.schema.metadata[b"dataselect"])["summary"]
        np.testing.assert_allclose(meta["target_proportions"], d.target_proportions, rtol=1e-12)
    else:
        np.testing.assert_allclose(t.column("log_importance_weight").to_numpy(), ref, rtol=1e-11)


# --------------------------------------------------------------------------- designs on log weights

RNG = np.random.default_rng(11)
N = 300
LOGW = RNG.normal(0, 1.2, N)
LOSS = np.exp(0.5 * LOGW) * RNG.uniform(0.5, 1.5, N)


def test_priority_is_unbiased_and_its_variance_estimate_too():
    design = designs.get("priority")
    s, seeds = 30, 400
    totals, var_hats = [], []
    for seed in range(seeds):
        d = design.draw_arrays(np.ones(N), s, seed, 64, columns={"score": LOGW})
        assert len(d.index) == s and (d.weight >= 1).all()
        e = design.estimate(LOSS[d.index], {"prob": d.prob, "weight": d.weight, "count": d.count}, N)
        np.testing.assert_allclose(np.sum(d.weight * LOSS[d.index]), e.total)
        totals.append(e.total)
        var_hats.append(e.var)
    totals = np.array(totals)
    true, sd = LOSS.sum(), totals.std(ddof=1)
    # mean within 3 standard errors of the truth (observed: |z| ≈ 0.3)
    assert abs(totals.mean() - true) < 3 * sd / math.sqrt(seeds)
    # the mean variance estimate matches the variance over seeds within 20 % (observed ≈ 4 %)
    assert np.mean(var_hats) == pytest.approx(sd ** 2, rel=0.2)


def test_priority_in_log_space_never_draws_weight_zero_and_survives_hundreds_of_nats():
    score = np.concatenate([LOGW * 300 - 5000, [-np.inf] * 10])  # weights span e^±1000: exp() alone would overflow
    d = designs.get("priority").draw_arrays(np.ones(len(score)), 50, 3, 64, columns={"score": score})
    assert (d.index < N).all() and np.isfinite(d.weight).all() and (d.prob > 0).all() and (d.prob <= 1).all()
    assert inclusion(np.array([0.0, 2.0]), math.log(2.0)).tolist() == [0.5, 1.0]
    # every positive row when s is all of them: τ = 0, weight 1
    d = designs.get("priority").draw_arrays(np.ones(len(score)), N, 3, 64, columns={"score": score})
    assert len(d.index) == N and (d.weight == 1).all()


def test_gumbel_topk_reads_log_weights_and_skips_minus_inf():
    score = np.concatenate([LOGW, [-np.inf] * 20])
    d = designs.get("gumbel-topk").draw_arrays(np.ones(len(score)), 100, 5, 64, columns={"score": score})
    assert (d.index < N).all() and len(d.index) == 100


def test_sample_from_dsir_scores_reports_the_kl_reduction(tmp_path):
    # raw: two domains (plain words, code words); target: the code domain
    tmp, code = tmp_path, WORDS[15:]
    _corpus(tmp / "a.jsonl", 150, 4, vocab=WORDS[:15], lo=20, hi=40)
    _corpus(tmp / "b.jsonl", 150, 5, vocab=code, lo=20, hi=40)
    with open(tmp / "raw.jsonl", "w") as f:
        for i, line in enumerate([*open(tmp / "a.jsonl"), *open(tmp / "b.jsonl")]):
            f.write(json.dumps({"id": i, "text": json.loads(line)["text"]}) + "\n")
    target = _corpus(tmp / "target.jsonl", 40, 6, vocab=code, lo=20, hi=40, ids=False)
    run("score", "--method", "dsir", "--text", tmp / "raw.jsonl", "--target", target, "--min-length", "5",
        "-o", tmp / "s.parquet")
    for design in ("gumbel-topk", "priority"):
        run("sample", tmp / "s.parquet", "--design", design, "--size", "40", "-o", tmp / f"{design}.parquet",
            "--report-md", tmp / f"{design}.md")
        rep = json.loads(pq.read_table(tmp / f"{design}.parquet").schema.metadata[b"dataselect"])["summary"]
        kl = rep["kl_reduction"]
        assert kl["kl_reduction"] > 0  # the selection is closer to the target than the raw corpus
        assert kl["kl_reduction"] == pytest.approx(kl["kl_raw"][0] - kl["kl_selected"][0])
        assert "KL reduction" in open(tmp / f"{design}.md").read()


def test_kl_reduction_by_hand():
    target = np.array([[1, 1, 0]])
    out = dsir.kl_reduction(target, np.array([1, 1, 2]), np.array([1, 1, 0]))
    eps = 1e-8
    kl_raw = 2 * 0.5 * (math.log(0.5 + eps) - math.log(0.25 + eps))
    assert out["kl_raw"][0] == pytest.approx(kl_raw) and out["kl_selected"][0] == pytest.approx(0.0, abs=1e-12)
    assert out["kl_reduction"] == pytest.approx(kl_raw)


# --------------------------------------------------------------------------- dsir-clusters


def test_dsir_clusters_weights_are_the_smoothed_histogram_ratio(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (60, 4)), rng.normal(5, 0.1, (40, 4))]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", np.concatenate([rng.normal(5, 0.1, (9, 4)), rng.normal(0, 0.1, (1, 4))])
            .astype(np.float32))
    run("embed", tmp_path / "x.npy", "-o", tmp_path / "emb.parquet")
    run("embed", tmp_path / "t.npy", "-o", tmp_path / "temb.parquet")
    run("cluster", tmp_path / "emb.parquet", "--k", "2", "-o", tmp_path / "cl.parquet")
    run("score", tmp_path / "cl.parquet", "--method", "dsir-clusters", "--target", tmp_path / "temb.parquet",
        "-o", tmp_path / "s.parquet")
    t = _scores(tmp_path / "s.parquet")
    cl = t.column("cluster").to_numpy()
    big = np.bincount(cl).argmax()  # the cluster of the 60 rows near 0, where 1 target row falls
    raw = np.bincount(cl, minlength=2)
    tgt = np.where(np.arange(2) == big, 1, 9)
    expect = np.log((tgt + 1) / 12) - np.log((raw + 1) / 102)
    np.testing.assert_allclose(t.column("score").to_numpy(), expect[cl], rtol=1e-12)
    assert cluster_log_ratio(np.array([2, 0]), np.array([1, 1]), 1.0).round(4).tolist() == [0.4055, -0.6931]


# --------------------------------------------------------------------------- bad input: exit 2, one line


def _one_line(result, *words):
    err = result.stderr.strip()
    assert "\n" not in err and err.startswith("error:"), err
    for w in words:
        assert w in err, err


def test_bad_inputs_exit_2_with_one_line(pair):
    tmp, raw, target = pair
    out = tmp / "s.parquet"
    (tmp / "empty.jsonl").write_text("")
    (tmp / "notext.jsonl").write_text('{"body": "a b c"}\n')
    (tmp / "punct.jsonl").write_text('{"text": "?! ..."}\n')
    cases = [
        (["--text", raw], ["--target"]),
        (["--target", target], ["--text"]),
        (["--text", raw, "--target", tmp / "missing.jsonl"], ["missing.jsonl", "no such file"]),
        (["--text", raw, "--target", tmp / "empty.jsonl"], ["empty.jsonl", "no documents"]),
        (["--text", raw, "--target", tmp / "notext.jsonl"], ["notext.jsonl", "missing text column 'text'"]),
        (["--text", raw, "--target", tmp / "punct.jsonl"], ["punct.jsonl", "no n-gram"]),
        (["--text", raw, "--target", target, "--compat", "nltk"], ["--compat"]),
        (["--text", raw, "--target", target, "--buckets", "1"], ["--buckets"]),
        (["--text", raw, "--target", target, "--ngrams", "0"], ["--ngrams"]),
        (["--text", raw, "--target", target, "--tokenizer", "spaces"], ["--tokenizer"]),
        (["--text", raw, "--target", target, "--laplace", "-1"], ["--laplace"]),
        (["--text", raw, "--target", target, "--fit-tokens", "some"], ["--fit-tokens"]),
        (["--text", raw, "--target", target, "--target", target, "--target-proportions", "1"],
         ["--target-proportions"]),
        (["--text", raw, "--target", target, "--text-column", "body"], ["missing text column 'body'"]),
        (["--text", raw, "--target", target, "--examples", raw], ["--examples does not apply"]),
        (["--text", raw, "--target", raw, "-o", raw], ["also an input"]),
    ]
    for args, words in cases:
        a = [*args, "-o", out] if "-o" not in args else args
        _one_line(run("score", "--method", "dsir", *a, code=2), *words)
        assert not out.exists()
    _one_line(run("score", "--method", "el2n", "--text", raw, "-o", out, code=2), "--text")
    _one_line(run("score", "--method", "loss", "--target", raw, "-o", out, code=2), "--target")

"""``dataselect bandit`` (issue 15, item 4): the Quad-style cluster bandit.

A planted best cluster (pulled most and selected from most, over seeds, for high and for low losses),
the budget counted through the oracle, no row queried twice, the selection rule on a hand example,
determinism, any Oracle through the library, and bad inputs (exit 2, one line, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import api
from dataselect_cli.bandit import run_bandit, select_rows
from dataselect_cli.io import embedding_array
from dataselect_cli.oracle import Oracle

K, PER = 6, 200


def planted(seed: int, best: int = 2, gap: float = 0.6, prefer: str = "high"):
    """K clusters of PER rows, losses |N(1, 0.5)|; the cluster ``best`` shifted by ``gap`` (up for high, down, and
    sd 0.2, for low)."""
    rng = np.random.default_rng([seed, 99])
    labels = np.repeat(np.arange(K), PER)
    loss = np.abs(rng.normal(1.0, 0.5, K * PER))
    shift = gap if prefer == "high" else -gap
    loss[labels == best] = np.abs(rng.normal(1.0 + shift, 0.5 if prefer == "high" else 0.2, PER))
    return labels, pa.array(np.arange(K * PER, dtype=np.int64)), loss


class CountingOracle(Oracle):
    """Losses from an array by id, counting every id asked for independently of :attr:`Oracle.log`."""

    label = "test oracle"

    def __init__(self, loss: np.ndarray):
        super().__init__()
        self.loss, self.asked = loss, []

    def _losses(self, ids: pa.Array, why: str) -> np.ndarray:
        pos = ids.to_numpy()
        self.asked.extend(pos.tolist())
        return self.loss[pos]


@pytest.mark.parametrize("prefer", ["high", "low"])
def test_the_planted_best_cluster_is_pulled_most_and_selected_from_most(prefer):
    """Over 8 seeds: the best cluster has the most pulls, more than half of them, and more than half of the
    selection (observed: 145–165 of 200 pulls and 29–33 of 40 rows for high; 170–175 and 34–35 for low)."""
    for seed in range(8):
        labels, ids, loss = planted(seed, best=seed % K, prefer=prefer)
        o = CountingOracle(loss)
        r = run_bandit(labels, ids, o, budget=200, size=40, seed=seed, prefer=prefer, pulls_per_round=5)
        pulls, best = r.arms["pulls"], seed % K
        assert pulls.argmax() == best and pulls[best] > 100, (seed, pulls.tolist())
        assert np.sum(labels[r.rows] == best) > 20, (seed, np.bincount(labels[r.rows], minlength=K).tolist())
        assert len(r.rows) == 40 and np.all(np.diff(r.rows) > 0)
        assert np.all(pulls > 0)  # every arm explored at least once (UCB = ∞ until pulled)


def test_exploration_grows_with_c():
    """c = 0 exploits after the first pull of each arm; a large c spreads the pulls (fewer on the best arm)."""
    labels, ids, loss = planted(0)
    on_best = [run_bandit(labels, ids, CountingOracle(loss), budget=240, size=30, seed=1, ucb_c=c,
                          pulls_per_round=4).arms["pulls"][2] for c in (0.0, 2.0, 8.0)]
    assert on_best[0] > on_best[1] > on_best[2] >= 40, on_best  # observed: 200, 168, 68 of 240


@pytest.mark.parametrize("budget", [1, 7, 53, 480, 5000])
@pytest.mark.parametrize("arms, pulls", [(1, 8), (3, 5)])
def test_never_more_queries_than_the_budget_and_no_row_twice(budget, arms, pulls):
    labels, ids, loss = planted(1)
    o = CountingOracle(loss)
    r = run_bandit(labels, ids, o, budget=budget, size=10, seed=2, arms_per_round=arms, pulls_per_round=pulls)
    assert o.queries == len(o.asked) == min(budget, K * PER)  # the whole budget is spent, unless every row is queried
    assert len(set(o.asked)) == len(o.asked)  # no row asked twice
    assert all(n <= arms * pulls for _, n in o.log) and len(o.log) == r.rounds
    assert int(r.arms["pulls"].sum()) == o.queries and np.array_equal(np.sort(r.queried), np.sort(o.asked))


def test_the_selection_rule_by_hand():
    # cluster 0: rows 4, 1, 0 in pull order, two queried (4: loss 0.5, 1: loss 2.0); cluster 1: rows 3, 2, none queried
    order, start = np.array([4, 1, 0, 3, 2]), np.array([0, 3, 5])
    queried, loss = np.array([4, 1]), np.array([0.5, 2.0])
    assert select_rows(order, start, np.array([2, 0]), np.array([1, 1]), queried, loss, "high").tolist() == [1, 3]
    assert select_rows(order, start, np.array([2, 0]), np.array([1, 0]), queried, loss, "low").tolist() == [4]
    assert select_rows(order, start, np.array([2, 0]), np.array([3, 2]), queried, loss, "high").tolist() == \
        [0, 1, 2, 3, 4]


def test_deterministic_per_seed():
    labels, ids, loss = planted(3)
    a = run_bandit(labels, ids, CountingOracle(loss), budget=100, size=25, seed=5)
    b = run_bandit(labels, ids, CountingOracle(loss), budget=100, size=25, seed=5)
    c = run_bandit(labels, ids, CountingOracle(loss), budget=100, size=25, seed=6)
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.queried, b.queried)
    assert not np.array_equal(a.queried, c.queried)


# --------------------------------------------------------------------------- files and the command line


@pytest.fixture
def files(tmp_path):
    labels, ids, loss = planted(0)
    pq.write_table(pa.table({"id": ids, "cluster": pa.array(labels, pa.int32()),
                             "distance": pa.array(np.ones(len(labels)), pa.float32())}), tmp_path / "clusters.parquet")
    pq.write_table(pa.table({"id": ids, "loss": loss}), tmp_path / "losses.parquet")
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(len(labels), 3)) + 8 * np.eye(K, 3)[labels % 3]).astype(np.float32)
    pq.write_table(pa.table({"id": ids, "embedding": embedding_array(x)}), tmp_path / "emb.parquet")
    return tmp_path, loss


def test_cli_writes_the_selection_and_the_report(files):
    d, loss = files
    r = run("bandit", d / "clusters.parquet", "--losses", d / "losses.parquet", "--budget-queries", 150, "--size", 40,
            "-o", d / "sel.parquet", "--report", d / "r.json", "--report-md", d / "r.md", "--json")
    rep = json.loads(r.stdout)
    assert rep["queries"] == 150 and rep["budget_queries"] == 150 and rep["best_arm"] == 2
    assert [a["cluster"] for a in rep["arms"]] == list(range(K)) and sum(a["pulls"] for a in rep["arms"]) == 150
    assert json.loads((d / "r.json").read_text())["arms"] == rep["arms"]
    md = (d / "r.md").read_text()
    assert "| queries spent / budget | 150 / 150 |" in md and "| cluster | size | pulls |" in md
    t = pq.read_table(d / "sel.parquet")
    assert t.column_names == ["id", "count", "prob", "weight", "cluster", "queried", "loss"] and t.num_rows == 40
    assert np.all(t.column("weight").to_numpy() == 1.0)
    q = t.column("queried").to_numpy(zero_copy_only=False)
    ids = t.column("id").to_numpy()
    np.testing.assert_array_equal(t.column("loss").to_numpy(zero_copy_only=False)[q], loss[ids[q]])
    assert t.column("loss").null_count == int((~q).sum())
    run("bandit", d / "clusters.parquet", "--losses", d / "losses.parquet", "--budget-queries", 150, "--size", 40,
        "-o", d / "again.parquet")
    assert (d / "sel.parquet").read_bytes() == (d / "again.parquet").read_bytes()
    pq.write_table(pa.table({"id": ids, "loss": np.ones(len(ids))}), d / "sl.parquet")
    e = run("estimate", d / "sel.parquet", "--losses", d / "sl.parquet", code=2)
    assert e.stderr.count("\n") == 1 and "bandit selection is unweighted" in e.stderr
    assert "cluster bandit" in run("report", d / "sel.parquet").stdout


def test_cli_clusters_embeddings_with_k_and_resumes(files):
    d, _ = files
    args = ["bandit", d / "emb.parquet", "--k", 3, "--losses", d / "losses.parquet", "--budget-queries", 60,
            "--fraction", 0.05, "-o", d / "sel.parquet", "--json"]
    rep = json.loads(run(*args).stdout)
    assert rep["k"] == 3 and rep["selected_rows"] == 60 and rep["clustering"]["n_train"] == 256 * 3  # --fit-sample auto
    again = json.loads(run(*args, "--resume").stdout)
    assert again["skipped"] is True


def test_library_takes_any_oracle(files):
    d, loss = files
    o = CountingOracle(loss)
    rep = api.bandit_file(str(d / "clusters.parquet"), str(d / "sel.parquet"), oracle=o, budget=40, size=12)
    assert rep["queries"] == o.queries == 40 and rep["oracle"] == "test oracle"
    assert pq.read_table(d / "sel.parquet").num_rows == 12


@pytest.mark.parametrize("args, frag", [
    (["--budget-queries", 0, "--size", 5], "--budget-queries must be a positive number"),
    (["--budget-queries", 10], "give the selection's size: one of --size N or --fraction F"),
    (["--budget-queries", 10, "--size", 5, "--fraction", 0.1], "one of --size N or --fraction F"),
    (["--budget-queries", 10, "--size", 100000], "--size 100000 is more than the 1200 rows"),
    (["--budget-queries", 10, "--size", 5, "--ucb-c", -1], "--ucb-c must be a number >= 0"),
    (["--budget-queries", 10, "--size", 5, "--prefer", "mid"], "--prefer must be one of high, low"),
    (["--budget-queries", 10, "--size", 5, "--pulls-per-round", 0], "--pulls-per-round must be >= 1"),
    (["--budget-queries", 10, "--size", 5, "--arms-per-round", 0], "--arms-per-round must be >= 1"),
])
def test_cli_refuses_bad_options_in_one_line(files, args, frag):
    d, _ = files
    r = run("bandit", d / "clusters.parquet", "--losses", d / "losses.parquet", *args, "-o", d / "o.parquet", code=2)
    assert r.stderr.count("\n") == 1 and frag in r.stderr, r.stderr
    assert not (d / "o.parquet").exists()


def test_cli_refuses_bad_inputs_in_one_line(files):
    d, _ = files
    base = ["--budget-queries", 50, "--size", 2, "-o", d / "o.parquet"]

    def refused(*args):
        r = run("bandit", *args, *base, code=2)
        assert r.stderr.count("\n") == 1 and not (d / "o.parquet").exists(), r.stderr
        return r.stderr

    assert "give --loss-command CMD or --losses FILE" in refused(d / "clusters.parquet")
    assert "pass --k" in refused(d / "emb.parquet", "--losses", d / "losses.parquet")
    assert "missing column 'embedding'" in refused(d / "clusters.parquet", "--k", 3, "--losses", d / "losses.parquet")
    pq.write_table(pa.table({"id": np.arange(200, dtype=np.int64), "loss": np.ones(200)}), d / "few.parquet")
    msg = refused(d / "clusters.parquet", "--losses", d / "few.parquet")  # the bandit queries rows the table lacks
    assert "few.parquet" in msg and "bandit round" in msg and "have no row here" in msg
    pq.write_table(pa.table({"id": np.arange(4), "cluster": [0.5, 1.0, 0.0, 1.0]}), d / "float.parquet")
    assert "cluster labels must be integers" in refused(d / "float.parquet", "--losses", d / "losses.parquet")
    pq.write_table(pa.table({"id": np.arange(4), "cluster": [0, -1, 0, 1]}), d / "neg.parquet")
    assert "negative at row 1" in refused(d / "neg.parquet", "--losses", d / "losses.parquet")
    pq.write_table(pa.table({"id": ["a", "b", "c", "d", "e", "f"], "cluster": [0, 1, 0, 1, 0, 1]}), d / "str.parquet")
    assert "same id type" in refused(d / "str.parquet", "--losses", d / "losses.parquet")
    r = run("bandit", d / "clusters.parquet", "--losses", d / "losses.parquet", "--budget-queries", 5, "--size", 5,
            "-o", d / "losses.parquet", code=2)
    assert r.stderr.count("\n") == 1 and "input" in r.stderr

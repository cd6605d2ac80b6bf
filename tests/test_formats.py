"""Losses and apply's DATA in the formats users' scripts write (issue 16, item 4): Parquet, CSV, TSV, JSON lines.

The same losses in any format give the same scores, selection and estimate; each bad losses file
gets the one-line exit 2 a bad Parquet file gets; apply reads CSV/JSONL data block by block and
writes the format its -o names.
"""

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from clirun import run
from dataselect_cli import api, io

N = 400


def blobs(n=N, d=4, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(6, d)) * 4
    return (c[rng.integers(0, 6, n)] + rng.normal(size=(n, d))).astype(np.float32)


def loss_of(ids) -> np.ndarray:
    """A smooth synthetic loss with a fractional part that a text format must carry exactly."""
    return np.abs(np.sin(np.asarray(ids, dtype=np.float64) / 7.0)) * 3.0 + 1 / 3


def write_table(table: pa.Table, path, fmt: str):
    """Write ``table`` as parquet, csv, tsv, jsonl, or csv.gz (floats in shortest round-trip form)."""
    path = str(path)
    if fmt == "parquet":
        pq.write_table(table, path)
        return path
    rows = table.to_pylist()
    if fmt == "jsonl":
        text = "".join(json.dumps(r) + "\n" for r in rows)
    else:
        sep = "\t" if fmt == "tsv" else ","
        text = sep.join(table.column_names) + "\n" + "".join(sep.join(repr(v) if isinstance(v, float) else str(v)
                                                                       for v in r.values()) + "\n" for r in rows)
    if fmt == "csv.gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        with open(path, "w") as f:
            f.write(text)
    return path


def losses_table(ids) -> pa.Table:
    return pa.table({"id": pa.array(ids), "loss": loss_of([int(str(i)) for i in ids])})


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Embeddings (ids 10·row), a clustering with probes, the centers' and probes' losses as Parquet."""
    d = tmp_path_factory.mktemp("formats")
    x = blobs()
    pq.write_table(pa.table({"id": pa.array(np.arange(N) * 10, pa.int64()), "embedding": io.embedding_array(x)}),
                   d / "emb.parquet")
    run("cluster", d / "emb.parquet", "-o", d / "clusters.parquet", "--k", 6, "--probes", 2)
    cl = pq.read_table(d / "clusters.parquet")
    queried = np.concatenate([pq.read_table(d / "clusters.centers.parquet").column("center_id").to_numpy(),
                              cl.filter(cl.column("probe")).column("id").to_numpy()])
    write_table(losses_table(queried), d / "center_losses.parquet", "parquet")
    return d


def without_losses_input(path) -> tuple[pa.Table, dict]:
    """A file's rows and its metadata, less the fingerprint of the losses file (which names another file)."""
    t = pq.read_table(path)
    meta = json.loads(t.schema.metadata[b"dataselect"])
    meta["inputs"].pop("losses")
    meta.get("params", {}).pop("losses_format", None)
    return t.replace_schema_metadata(None), meta


# --------------------------------------------------------------------------- same losses, same outputs


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "csv.gz"])
def test_losses_in_any_format_give_the_same_scores_selection_and_estimate(work, tmp_path, fmt):
    queried = pq.read_table(work / "center_losses.parquet")
    losses = write_table(queried, tmp_path / f"center_losses.{fmt}", fmt)
    for src, tag in ((work / "center_losses.parquet", "pq"), (losses, "txt")):
        run("score", work / "clusters.parquet", "--losses", src, "-o", tmp_path / f"scores_{tag}.parquet")
        run("sample", work / "emb.parquet", "--k", 6, "--losses", src, "--size", 60, "--design", "iid",
            "-o", tmp_path / f"sel_{tag}.parquet")
    for name in ("scores", "sel"):
        t_pq, m_pq = without_losses_input(tmp_path / f"{name}_pq.parquet")
        t_txt, m_txt = without_losses_input(tmp_path / f"{name}_txt.parquet")
        assert t_txt.equals(t_pq) and m_txt == m_pq
    # the metadata records the text file's own fingerprint
    fp = json.loads(pq.read_schema(tmp_path / "scores_txt.parquet").metadata[b"dataselect"])["inputs"]["losses"]
    assert fp == io.fingerprint(losses)
    # estimate: the selected rows' losses, as Parquet and as text, give the same report (but for the
    # fingerprint of the losses file in its metadata)
    sel_ids = pq.read_table(tmp_path / "sel_pq.parquet").column("id").to_numpy()
    write_table(losses_table(sel_ids), tmp_path / "sel_losses.parquet", "parquet")
    write_table(losses_table(sel_ids), tmp_path / f"sel_losses.{fmt}", fmt)
    for tag, src in (("pq", tmp_path / "sel_losses.parquet"), ("txt", tmp_path / f"sel_losses.{fmt}")):
        run("estimate", tmp_path / "sel_pq.parquet", "--losses", src, "--report", tmp_path / f"est_{tag}.json")
    est = [json.loads((tmp_path / f"est_{tag}.json").read_text()) for tag in ("pq", "txt")]
    for e in est:
        assert e["dataselect"]["inputs"].pop("losses")["name"].startswith("sel_losses.")
    assert est[0] == est[1]


def test_losses_format_overrides_an_odd_extension(work, tmp_path):
    queried = pq.read_table(work / "center_losses.parquet")
    odd = write_table(queried, tmp_path / "losses.txt", "csv")
    r = run("score", work / "clusters.parquet", "--losses", odd, "-o", tmp_path / "s.parquet", code=2)
    assert r.stderr.count("\n") == 1 and "not a readable Parquet file" in r.stderr
    assert "write it as Parquet, CSV or JSONL with columns id, loss" in r.stderr and "dataselect embed" not in r.stderr
    assert not (tmp_path / "s.parquet").exists()
    run("score", work / "clusters.parquet", "--losses", odd, "--losses-format", "csv", "-o", tmp_path / "s.parquet")
    run("score", work / "clusters.parquet", "--losses", work / "center_losses.parquet", "-o", tmp_path / "p.parquet")
    assert without_losses_input(tmp_path / "s.parquet") == without_losses_input(tmp_path / "p.parquet")
    assert json.loads(pq.read_schema(tmp_path / "s.parquet").metadata[b"dataselect"])["params"]["losses_format"] == "csv"
    # a JSON-lines file under any name, for estimate
    run("sample", work / "emb.parquet", "--k", 6, "--size", 20, "-o", tmp_path / "sel.parquet")
    ids = pq.read_table(tmp_path / "sel.parquet").column("id").to_numpy()
    dat = write_table(losses_table(ids), tmp_path / "losses.dat", "jsonl")
    run("estimate", tmp_path / "sel.parquet", "--losses", dat, "--losses-format", "jsonl")


@pytest.mark.parametrize("args, frag", [
    (["--losses-format", "xlsx"], "--losses-format must be one of parquet, csv, tsv, jsonl; got 'xlsx'"),
    (["--losses-format", "csv"], "--losses-format names the format of --losses; pass --losses too"),
])
def test_bad_losses_format_options(work, tmp_path, args, frag):
    r = run("score", work / "clusters.parquet", *args, "-o", tmp_path / "s.parquet", code=2)
    assert frag in r.stderr and r.stderr.count("\n") == 1 and not (tmp_path / "s.parquet").exists()


# --------------------------------------------------------------------------- bad losses files: one line, exit 2

BAD_CSV = [
    ("id,value\n0,1.5\n", "missing column 'loss' (a losses file needs id, loss; found id, value)"),
    ("loss\n1.5\n", "missing column 'id'"),
    ("id,loss\n0,1.5\n10,abc\n", "column 'loss' is not a number at row 1 (id 10): 'abc'"),
    ("id,loss\n0,1.5\n10,\n", "column 'loss' is null at row 1 (id 10)"),
    ("id,loss\n0,1.5\n10,nan\n", "column 'loss' has a NaN or infinite value at row 1 (id 10)"),
    ("id,loss\n0,inf\n", "column 'loss' has a NaN or infinite value at row 0 (id 0)"),
    ("id,loss\n0,1.5\n10,-2\n", "column 'loss' is negative at row 1 (id 10)"),
    ("id,loss\n0,1.5\n0,2\n", "column 'id' has duplicate ids (0 appears 2 times"),
    ("id,loss\n0,1.5\n,2\n", "column 'id' is null at row 1"),
    ("", "missing column 'id' (a losses file needs id, loss; found none)"),
]
BAD_JSONL = [
    ('{"id": 0, "value": 1.5}\n', "missing column 'loss'"),
    ('{"id": 0, "loss": 1.5}\n{"id": 10, "loss": "abc"}\n', "field 'loss' changes from number to string near line 2"),
    ('{"id": 0, "loss": "abc"}\n', "column 'loss' has type string; losses must be numbers"),
    ('{"id": 0, "loss": 1.5}\n{"id": 10, "loss": null}\n', "column 'loss' is null at row 1 (id 10)"),
    ('{"id": 0, "loss": 1.5}\n{"id": 10, "loss": -1}\n', "column 'loss' is negative at row 1 (id 10)"),
    ('{"id": 0, "loss": 1.5}\n{"id": 0, "loss": 2}\n', "column 'id' has duplicate ids"),
    ('{"id": 0, "loss": 1.5}\nnot json\n', "not a readable JSON-lines file"),
]


@pytest.fixture(scope="module")
def selection(work):
    run("sample", work / "emb.parquet", "--k", 6, "--size", 20, "-o", work / "sel20.parquet")
    return work / "sel20.parquet"


@pytest.mark.parametrize("suffix, text, frag", [("csv", t, f) for t, f in BAD_CSV]
                         + [("tsv", BAD_CSV[2][0].replace(",", "\t"), BAD_CSV[2][1])]
                         + [("jsonl", t, f) for t, f in BAD_JSONL])
def test_each_bad_losses_file_gives_one_line(selection, tmp_path, suffix, text, frag):
    path = tmp_path / f"losses.{suffix}"
    path.write_text(text)
    r = run("estimate", selection, "--losses", path, "--report", tmp_path / "e.json", code=2)
    assert r.stderr.startswith(f"error: {path}: ") and frag in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "e.json").exists()


def test_a_bad_csv_losses_file_stops_score_before_any_output(work, tmp_path):
    (tmp_path / "l.csv").write_text("id,loss\n0,1.5\n10,abc\n")
    r = run("sample", work / "emb.parquet", "--k", 6, "--losses", tmp_path / "l.csv", "-o", tmp_path / "s.parquet",
            code=2)
    assert "is not a number at row 1" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "s.parquet").exists()


# --------------------------------------------------------------------------- ids


def test_string_ids_in_jsonl_and_csv_match_string_ids(tmp_path):
    """Ids "0000", "0010", …: strings in the embeddings, in a JSON-lines file and in a CSV file (leading
    zeros keep a CSV id a string); plain integers in a CSV are int64 and do not match them."""
    x = blobs(120)
    sid = [f"{10 * i:04d}" for i in range(120)]
    pq.write_table(pa.table({"id": sid, "embedding": io.embedding_array(x)}), tmp_path / "emb.parquet")
    run("sample", tmp_path / "emb.parquet", "--k", 3, "--size", 15, "-o", tmp_path / "sel.parquet")
    ids = pq.read_table(tmp_path / "sel.parquet").column("id").to_pylist()
    t = pa.table({"id": ids, "loss": loss_of([int(i) for i in ids])})
    write_table(t, tmp_path / "l.parquet", "parquet")
    write_table(t, tmp_path / "l.jsonl", "jsonl")
    write_table(t, tmp_path / "l.csv", "csv")
    out = [run("estimate", tmp_path / "sel.parquet", "--losses", tmp_path / f"l.{f}", "--json").stdout
           for f in ("parquet", "jsonl", "csv")]
    assert out[0] == out[1] == out[2]
    (tmp_path / "ints.csv").write_text("id,loss\n" + "".join(f"{int(i)},1\n" for i in ids if i != "0000"))
    r = run("estimate", tmp_path / "sel.parquet", "--losses", tmp_path / "ints.csv", code=2)
    assert "ids are int64 here but string in the selected" in r.stderr and r.stderr.count("\n") == 1


# --------------------------------------------------------------------------- apply


def data_table() -> pa.Table:
    """DATA: the rows in another order, a zero-padded code, a text with a comma, an integer label."""
    order = np.random.default_rng(3).permutation(N)
    ids = order * 10
    return pa.table({"id": pa.array(ids, pa.int64()), "code": [f"{i:05d}" for i in ids],
                     "text": [f"row {i}, ok" for i in ids], "label": pa.array(order % 3, pa.int64())})


@pytest.fixture(scope="module")
def applied(work, selection):
    """DATA as Parquet, CSV and JSONL, and apply's Parquet output from the Parquet DATA."""
    t = data_table()
    pq.write_table(t, work / "data.parquet")
    pacsv.write_csv(t, work / "data.csv")
    write_table(t, work / "data.jsonl", "jsonl")
    run("apply", selection, work / "data.parquet", "-o", work / "ref.parquet")
    return work


@pytest.mark.parametrize("data", ["data.csv", "data.jsonl"])
def test_apply_text_data_to_parquet_gives_the_parquet_rows(applied, selection, tmp_path, data):
    run("apply", selection, applied / data, "-o", tmp_path / "out.parquet")
    got, ref = pq.read_table(tmp_path / "out.parquet"), pq.read_table(applied / "ref.parquet")
    if data == "data.csv":  # pyarrow reads 00130 as the integer 130 into Parquet
        ref = ref.set_column(1, "code", pa.array([int(c) for c in ref.column("code").to_pylist()], pa.int64()))
    assert got.replace_schema_metadata(None).equals(ref.replace_schema_metadata(None))
    meta = json.loads(got.schema.metadata[b"dataselect"])
    assert meta["inputs"]["data"] == io.fingerprint(applied / data)


def test_apply_csv_data_to_csv_keeps_values_as_written(applied, selection, tmp_path):
    r = run("apply", selection, applied / "data.csv", "-o", tmp_path / "out.csv")
    ref = pq.read_table(applied / "ref.parquet")
    got = pacsv.read_csv(tmp_path / "out.csv", convert_options=pacsv.ConvertOptions(
        column_types={"code": pa.string(), "weight": pa.float64(), "count": pa.int32()}))
    assert got.column_names == ["id", "code", "text", "label", "weight", "count"]
    assert got.select(["id", "code", "text"]).equals(ref.select(["id", "code", "text"]))
    assert got.column("weight").to_pylist() == ref.column("weight").to_pylist()  # floats exact through text
    assert got.column("count").equals(ref.column("count"))
    assert f"{ref.num_rows} of {N} rows" in r.stdout
    run("apply", selection, applied / "data.csv", "-o", tmp_path / "out.tsv")
    tsv = pacsv.read_csv(tmp_path / "out.tsv", parse_options=pacsv.ParseOptions(delimiter="\t"),
                         convert_options=pacsv.ConvertOptions(column_types={"code": pa.string()}))
    assert tsv.column("code").equals(got.column("code"))


def test_apply_jsonl_data_to_jsonl(applied, selection, tmp_path):
    run("apply", selection, applied / "data.jsonl", "-o", tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    ref = pq.read_table(applied / "ref.parquet").to_pylist()
    assert rows == ref


def test_apply_format_overrides_an_odd_extension(applied, selection, tmp_path):
    (tmp_path / "data.txt").write_bytes((applied / "data.csv").read_bytes())
    r = run("apply", selection, tmp_path / "data.txt", "-o", tmp_path / "o.parquet", code=2)
    assert "write it as Parquet, CSV, TSV or JSONL with an id column" in r.stderr and "dataselect embed" not in r.stderr
    run("apply", selection, tmp_path / "data.txt", "--format", "csv", "-o", tmp_path / "o.parquet")
    run("apply", selection, applied / "data.csv", "-o", tmp_path / "p.parquet")
    assert pq.read_table(tmp_path / "o.parquet").replace_schema_metadata(None).equals(
        pq.read_table(tmp_path / "p.parquet").replace_schema_metadata(None))


@pytest.mark.parametrize("data", ["data.csv", "data.jsonl"])
def test_apply_streams_text_data_larger_than_a_block(applied, selection, tmp_path, monkeypatch, data):
    """Blocks of 512 bytes of the file and 7 rows of the computation: the same output as one piece."""
    from dataselect_cli import corpus

    ref = tmp_path / "one.csv"
    api.apply_file(str(selection), str(applied / data), str(ref))
    monkeypatch.setattr(corpus, "_BLOCK", 512)
    for out in ("many.csv", "many.parquet"):
        api.apply_file(str(selection), str(applied / data), str(tmp_path / out), block_rows=7)
    assert (tmp_path / "many.csv").read_bytes() == ref.read_bytes()
    api.apply_file(str(selection), str(applied / data), str(tmp_path / "one.parquet"))
    assert (tmp_path / "many.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()


def test_jsonl_types_are_unified_over_blocks(applied, selection, tmp_path, monkeypatch):
    """An integer field that turns fractional in a later block of the file is a double throughout."""
    from dataselect_cli import corpus

    t = data_table()
    rows = t.to_pylist()
    for i, r in enumerate(rows):
        r["score"] = 1 if i < 300 else 0.5
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(corpus, "_BLOCK", 512)
    api.apply_file(str(selection), str(tmp_path / "d.jsonl"), str(tmp_path / "o.parquet"), block_rows=7)
    got = pq.read_table(tmp_path / "o.parquet")
    assert got.schema.field("score").type == pa.float64()
    want = {r["id"]: float(r["score"]) for r in rows}
    assert all(want[i] == s for i, s in zip(got.column("id").to_pylist(), got.column("score").to_pylist()))


@pytest.mark.parametrize("name, text, out, frag", [
    ("d.csv", "key,x\n0,1\n", "o.csv", "missing column 'id' (a data file needs id; found key, x)"),
    ("d.jsonl", '{"id": 0, "v": [1, 2]}\n', "o.csv", "column 'v' holds list<item: int64>, which CSV cannot hold"),
    ("d.csv", "id,x\n0,1\n", "o.csv.gz", "compressed output is not written"),
    ("d.csv", "id,x\n0,1\n", "o.parquet", "ids have no row here"),
])
def test_apply_bad_text_input_gives_one_line(selection, tmp_path, name, text, out, frag):
    (tmp_path / name).write_text(text)
    r = run("apply", selection, tmp_path / name, "-o", tmp_path / out, code=2)
    assert frag in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / out).exists()


# --------------------------------------------------------------------------- fingerprints and --resume


def test_resume_follows_the_bytes_of_a_text_input(applied, selection, tmp_path):
    losses = write_table(pq.read_table(applied / "center_losses.parquet"), tmp_path / "l.csv", "csv")
    step = ("score", applied / "clusters.parquet", "--losses", losses, "-o", tmp_path / "s.parquet", "--resume")
    assert "skipped" not in run(*step).stderr
    assert "up to date, skipped" in run(*step).stderr
    t = pq.read_table(applied / "center_losses.parquet")
    write_table(t.set_column(1, "loss", pc.multiply(t.column("loss"), 2.0)), losses, "csv")  # new bytes
    assert "skipped" not in run(*step).stderr
    step = ("apply", selection, applied / "data.csv", "-o", tmp_path / "a.parquet", "--resume")
    run(*step)
    assert "up to date, skipped" in run(*step).stderr
    # a text output carries no metadata: --resume redoes the step
    step = ("apply", selection, applied / "data.csv", "-o", tmp_path / "a.csv", "--resume")
    run(*step)
    assert "skipped" not in run(*step).stderr


# --------------------------------------------------------------------------- hints name a step that works


def test_the_not_parquet_hint_depends_on_what_the_file_is_for(work, tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    r = run("cluster", junk, "-o", tmp_path / "c.parquet", "--k", 2, code=2)
    assert "convert it with 'dataselect embed'" in r.stderr
    r = run("score", work / "clusters.parquet", "--losses", junk, "-o", tmp_path / "s.parquet", code=2)
    assert "write it as Parquet, CSV or JSONL with columns id, loss" in r.stderr and "embed" not in r.stderr
    r = run("score", junk, "--centers", work / "clusters.centers.parquet", "-o", tmp_path / "s.parquet", code=2)
    assert "'dataselect cluster'" in r.stderr and "embed" not in r.stderr
    r = run("estimate", junk, "--losses", work / "center_losses.parquet", code=2)
    assert "'dataselect sample'" in r.stderr and "embed" not in r.stderr


def test_a_jsonl_id_field_absent_from_a_whole_block_is_a_null_id(selection, tmp_path, monkeypatch):
    """Blocks type their fields apart (null in one, int64 in the next); the missing id is named by its row."""
    from dataselect_cli import corpus

    rows = [{"id": 10 * i, "loss": 1.0} for i in range(60)] + [{"loss": 1.0}] * 40
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(corpus, "_BLOCK", 256)
    r = run("estimate", selection, "--losses", tmp_path / "l.jsonl", code=2)
    assert "column 'id' is null at row 60" in r.stderr and r.stderr.count("\n") == 1

"""Directory outputs (issue 18): parts written where they are computed, a commit that cannot be half-done,
nothing per row on the client.

``-o DIR/`` (a trailing slash) writes DIR/part-XXXXXXXX.parquet, one per block, and DIR/_manifest.json last;
the directory reads back as the single-file output, row for row. --block-rows 1000 gives small data many blocks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import api, io, outputs, parts, uniqueids
from dataselect_cli.pqdataset import ParquetDataset
from dataselect_cli.errors import InputError
from dataselect_cli.io import embedding_array

try:
    import distributed
except ImportError:  # pragma: no cover - make test installs it
    distributed = None
needs_dask = pytest.mark.skipif(distributed is None, reason="needs the dask extra: pip install 'dataselect[dask]'")

N, D, K = 5200, 6, 8
GRID = ["--block-rows", "1000"]


def _emb(ids=None):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(N, D)) + 4 * rng.integers(0, 6, size=(N, 1))).astype(np.float32)
    ids = np.arange(N, dtype=np.int64) * 5 + 2 if ids is None else ids
    return pa.table({"id": ids, "embedding": embedding_array(x)})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """emb.parquet, the single-file cluster and score outputs, a losses file (centers and 200 probe rows)."""
    root = tmp_path_factory.mktemp("parts")
    pq.write_table(_emb(), root / "emb.parquet")
    run("cluster", root / "emb.parquet", "-o", root / "clusters.parquet", "--k", K, *GRID, "-q")
    centers = pq.read_table(root / "clusters.centers.parquet").column("center_id").to_numpy()
    probes = np.setdiff1d(np.arange(N, dtype=np.int64)[::26] * 5 + 2, centers)
    rng = np.random.default_rng(1)
    ids = np.r_[centers, probes]
    pq.write_table(pa.table({"id": ids, "loss": rng.random(len(ids))}), root / "losses.parquet")
    run("score", root / "clusters.parquet", "-o", root / "scores.parquet", "--losses", root / "losses.parquet", *GRID,
        "-q")
    return root


@pytest.fixture(scope="module")
def dask_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc:
        yield lc.scheduler_address


def _rows(path: Path) -> pa.Table:
    return pq.read_table(path).replace_schema_metadata(None) if path.is_file() else ParquetDataset(str(path)).read()


def _part_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != outputs.MANIFEST}


def _cluster_dir(data, out: Path, *extra):
    run("cluster", data / "emb.parquet", "-o", f"{out}/", "--k", K, "--centers", f"{out}.centers.parquet", *GRID,
        *extra, "-q")
    return out


# --------------------------------------------------------------------------- the same rows as a single file


def test_cluster_and_score_directories_read_back_as_the_single_files(data, tmp_path):
    d = _cluster_dir(data, tmp_path / "clusters")
    names = sorted(os.listdir(d))
    assert names == [outputs.MANIFEST] + [f"part-{b:08d}.parquet" for b in range(6)]  # 5200 rows, blocks of 1000
    assert _rows(d).equals(_rows(data / "clusters.parquet"))
    assert (tmp_path / "clusters.centers.parquet").read_bytes() == (data / "clusters.centers.parquet").read_bytes()
    manifest = json.loads((d / outputs.MANIFEST).read_text())
    assert manifest["rows"] == N and [p["rows"] for p in manifest["parts"]] == [1000] * 5 + [200]
    single = io.read_meta(data / "clusters.parquet")
    assert manifest["dataselect"] == single == io.read_meta(d)  # the manifest holds the file's metadata
    part0 = json.loads(pq.read_schema(d / "part-00000000.parquet").metadata[b"dataselect"])
    assert part0 == {**{k: v for k, v in single.items() if k not in ("summary", "inputs")}, "part": 0}
    # score: a clusters directory in, a scores directory out, the same rows as the files' run
    s = tmp_path / "scores"
    run("score", d, "--centers", tmp_path / "clusters.centers.parquet", "-o", f"{s}/", "--losses",
        data / "losses.parquet", *GRID, "-q")
    assert _rows(s).equals(_rows(data / "scores.parquet"))
    ms, mf = io.read_meta(s), io.read_meta(data / "scores.parquet")
    assert ms["summary"] == mf["summary"] and ms["params"] == mf["params"]
    assert sorted(ms["inputs"]) == ["centers", "clusters", "losses"]  # the clusters directory: one entry
    assert ms["inputs"]["clusters"]["rows"] == N and "manifest_sha256" in ms["inputs"]["clusters"]
    run("score", d, "--centers", tmp_path / "clusters.centers.parquet", "-o", tmp_path / "s.parquet", "--losses",
        data / "losses.parquet", *GRID, "-q")  # a clusters directory in, one file out
    assert _rows(tmp_path / "s.parquet").equals(_rows(data / "scores.parquet"))
    # and the two-step sample reads the scores directory as it reads the file
    run("sample", s, "--size", 300, "-o", tmp_path / "sel.parquet", *GRID, "-q")
    run("sample", data / "scores.parquet", "--size", 300, "-o", tmp_path / "sel2.parquet", *GRID, "-q")
    assert _rows(tmp_path / "sel.parquet").equals(_rows(tmp_path / "sel2.parquet"))


def test_parts_are_byte_identical_whatever_the_memory_limit(data, tmp_path):
    ref = _part_bytes(_cluster_dir(data, tmp_path / "a"))
    assert _part_bytes(_cluster_dir(data, tmp_path / "b", "--memory-limit", "200KB")) == ref


@needs_dask
def test_dask_workers_write_the_same_parts(data, tmp_path, dask_cluster):
    ref = _part_bytes(_cluster_dir(data, tmp_path / "local"))
    for p in (1, 4):
        got = _cluster_dir(data, tmp_path / f"dask{p}", "--engine", "dask", "--scheduler", dask_cluster,
                           "--partitions", p)
        assert _part_bytes(got) == ref
    s = tmp_path / "scores"
    run("score", tmp_path / "local", "--centers", tmp_path / "local.centers.parquet", "-o", f"{s}/", "--engine",
        "dask", "--scheduler", dask_cluster, "--partitions", 3, *GRID, "-q")
    run("score", tmp_path / "local", "--centers", tmp_path / "local.centers.parquet", "-o", f"{s}2/", *GRID, "-q")
    assert _part_bytes(s) == _part_bytes(tmp_path / "scores2")


# --------------------------------------------------------------------------- all or nothing


def test_an_exception_in_a_block_leaves_no_directory(data, tmp_path, monkeypatch):
    real = parts.write_part

    def fail_at_3(folder, b, table, meta):
        if b == 3:
            raise RuntimeError("worker lost")
        return real(folder, b, table, meta)

    monkeypatch.setattr(parts, "write_part", fail_at_3)
    with pytest.raises(RuntimeError, match="worker lost"), outputs.outputs():
        api.cluster_file(str(data / "emb.parquet"), f"{tmp_path}/c/", k=K, centers_out=str(tmp_path / "c.c.parquet"),
                         scale=api.Scale(block_rows=1000))
    assert os.listdir(tmp_path) == []  # no directory, no temp directory, no centers file


def test_a_stray_part_is_not_committed(tmp_path):
    """A task killed mid-write leaves a hidden temp file in the temp directory; the commit drops it."""
    out = f"{tmp_path}/t/"
    meta = io.make_meta("test", {}, {})
    with outputs.outputs():
        folder = parts.begin(out)
        entries = [parts.write_part(folder, b, pa.table({"id": [b]}), meta) for b in range(2)]
        Path(folder, ".part-00000002.parquet.x.tmp").write_bytes(b"half")
        Path(folder, "part-00000002.parquet").write_bytes(b"late")  # a block nobody asked for
        parts.finish(folder, out, meta, entries)
    assert sorted(os.listdir(out)) == [outputs.MANIFEST, "part-00000000.parquet", "part-00000001.parquet"]
    assert [e for e in os.listdir(tmp_path) if e != "t"] == []
    assert ParquetDataset(out).read().column("id").to_pylist() == [0, 1]


def test_a_killed_run_leaves_no_directory_and_the_next_run_sweeps_its_temp(tmp_path):
    out = tmp_path / "big"
    cmd = [sys.executable, "-m", "dataselect_cli", "cluster", "synthetic:1500000,2,0", "-o", f"{out}/", "--k", 2,
           "--block-rows", 10000, "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # kill once some parts are written
            temps = [p for p in tmp_path.iterdir() if p.name.startswith(".big.") and p.is_dir()]
            if temps and len(list(temps[0].glob("part-*.parquet"))) >= 2:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert temps and temps[0].exists() and not out.exists()
    r = run("score", temps[0], "-o", tmp_path / "s.parquet", "--centers", tmp_path / "big.centers.parquet", code=2)
    assert "unfinished dataselect directory output" in r.stderr and r.stderr.count("\n") == 1
    run("cluster", "synthetic:3000,2,0", "-o", f"{out}/", "--k", 2, "-q")  # the next run's sweep
    assert not temps[0].exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (out / outputs.MANIFEST).is_file()


def test_a_directory_without_its_manifest_is_refused(data, tmp_path):
    d = _cluster_dir(data, tmp_path / "c")
    part = d / "part-00000002.parquet"
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 1  # the same size, another content: caught by the sha256 the manifest records
    part.write_bytes(bytes(raw))
    r = run("score", d, "--centers", tmp_path / "c.centers.parquet", "-o", tmp_path / "s.parquet", code=2)
    assert "part part-00000002.parquet changed after it was written" in r.stderr and r.stderr.count("\n") == 1
    (d / outputs.MANIFEST).unlink()
    r = run("score", d, "--centers", tmp_path / "c.centers.parquet", "-o", tmp_path / "s.parquet", code=2)
    assert r.stderr == f"error: {d}: is an unfinished dataselect directory output (parts without _manifest.json: " \
        "the run that wrote it did not complete); re-run that command\n"
    # a user's plain directory of Parquet files still reads (no part of ours in it), in name order
    plain = tmp_path / "plain"
    plain.mkdir()
    t = pq.read_table(data / "clusters.parquet")
    pq.write_table(t.slice(0, 100).replace_schema_metadata(None), plain / "a.parquet")
    assert ParquetDataset(str(plain)).n == 100


def test_output_directory_checks(data, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    r = run("cluster", data / "emb.parquet", "-o", f"{tmp_path}/mine/", "--k", K, code=2)
    assert "that dataselect did not write" in r.stderr and r.stderr.count("\n") == 1
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "f").write_text("x")
    r = run("cluster", data / "emb.parquet", "-o", f"{tmp_path}/f/", "--k", K, code=2)
    assert "is a file" in r.stderr
    d = _cluster_dir(data, tmp_path / "c")
    r = run("score", d / "part-00000000.parquet", "--centers", f"{d}.centers.parquet", "-o", f"{d}/", code=2)
    assert "holds an input" in r.stderr and (d / outputs.MANIFEST).is_file()
    shutil.rmtree(d)
    Path(f"{d}.centers.parquet").unlink()
    r = run("cluster", data / "emb.parquet", "-o", f"{tmp_path}/p/", "--k", K, "--probes", 2, code=2)
    assert "--probes needs a single-file -o" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["f", "mine"]


# --------------------------------------------------------------------------- --resume


def test_resume_skips_an_up_to_date_directory_and_redoes_a_changed_one(data, tmp_path):
    d = _cluster_dir(data, tmp_path / "c")
    before = _part_bytes(d)
    stamp = (d / outputs.MANIFEST).stat().st_mtime_ns
    r = run("cluster", data / "emb.parquet", "-o", f"{d}/", "--k", K, "--centers", f"{d}.centers.parquet", *GRID,
            "--resume")
    assert r.stdout.startswith("up to date, skipped") and (d / outputs.MANIFEST).stat().st_mtime_ns == stamp
    run("cluster", data / "emb.parquet", "-o", d, "--k", K + 1, "--centers", f"{d}.centers.parquet", *GRID,
        "--resume", "-q")  # a directory output of ours is one without the slash too; another k: redone
    assert io.read_meta(d)["params"]["k"] == K + 1 and _part_bytes(d) != before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the old directory is gone
    r = run("cluster", data / "emb.parquet", "-o", f"{d}/", "--k", K, "--no-clobber", code=2)
    assert "exists already" in r.stderr


# --------------------------------------------------------------------------- the duplicate check


@pytest.mark.parametrize("where", ["first", "last"])
def test_the_spilled_duplicate_check_names_the_same_duplicate(tmp_path, monkeypatch, where):
    """A duplicate within the first block, or within the last: the message of the in-memory check, word for word."""
    ids = np.arange(N, dtype=np.int64) * 5 + 2
    if where == "first":
        ids[7], ids[N - 1] = ids[3], ids[N - 2]  # the one named is the repeated id seen first: row 3
    else:
        ids[N - 1], ids[N - 2] = ids[N - 90], ids[N - 50]  # both in the last block (rows 5000..5199): row 5110
    pq.write_table(_emb(ids), tmp_path / "emb.parquet")
    monkeypatch.setattr(uniqueids, "BUCKET_ROWS", 700)  # several buckets even for 5200 rows
    single = run("cluster", tmp_path / "emb.parquet", "-o", tmp_path / "c.parquet", "--k", K, code=2).stderr
    spilled = run("cluster", tmp_path / "emb.parquet", "-o", f"{tmp_path}/c/", "--k", K, code=2).stderr
    dup = ids[3] if where == "first" else ids[N - 90]
    assert f"({dup} appears 2 times; 2 ids repeated)" in single and spilled == single
    assert sorted(os.listdir(tmp_path)) == ["emb.parquet"]


def test_string_ids_in_buckets(tmp_path):
    ids = pa.array([f"doc-{i}" for i in range(3000)] + ["doc-17", "", "é"] * 2)
    folder = str(tmp_path / "spill")
    with pytest.raises(Exception) as err:
        uniqueids.check_unique_ids_spilled((ids.slice(i, 500) for i in range(0, len(ids), 500)), len(ids), folder,
                                           "x", bucket_rows=300)
    assert str(err.value) == "x: column 'id' has duplicate ids ('doc-17' appears 3 times; 3 ids repeated); " \
        "ids must be unique"
    assert not os.path.exists(folder)


# --------------------------------------------------------------------------- client memory


PEAK = """
import sys
from dataselect_cli.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc")
def test_client_memory_does_not_grow_with_n(tmp_path):
    """The peak RSS of ``cluster synthetic:N,2,0 -o DIR/`` at 1M and at 6M rows (blocks of 262,144 rows: fewer parts
    to write, the same memory at both sizes), under ``--memory-limit 64MB``: the decoded blocks the local engine
    keeps between passes fill what the limit leaves (8 bytes a row here, all of them under the default 4GB), a
    cache bounded by the limit, not by n, which this limit leaves empty at both sizes.

    Anything kept per row would show: 5M more rows cost 40 MiB for each 8 bytes a row (an id; a label and a
    distance), 20 MiB for the smallest per-row array (a float32). The peaks differ by the allocator's and the
    libraries' noise (measured: 180 and 185 MiB; without the limit 8 to 14 MiB apart, 1M against 4M), so the
    bound is 12 MiB."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    peaks = []
    for n in (1_000_000, 6_000_000):
        r = subprocess.run([sys.executable, "-c", PEAK, "cluster", f"synthetic:{n},2,0", "-o", f"{tmp_path}/c{n}/",
                            "--k", "2", "--block-rows", "262144", "--memory-limit", "64MB", "-q"],
                           capture_output=True, text=True, env=env, check=True)
        peaks.append(int(r.stdout.split()[-1]) * 1024)
        assert ParquetDataset(f"{tmp_path}/c{n}").n == n
    assert peaks[1] - peaks[0] < 12 * 2**20, [p / 2**20 for p in peaks]


# --------------------------------------------------------------------------- one-step sample


def _sample(data, out: Path, *extra):
    run("sample", data / "emb.parquet", "--k", K, "--size", 400, "-o", out, *GRID, *extra, "-q")
    return out


def test_one_step_sample_with_intermediate_parts_draws_the_same_selection(data, tmp_path):
    (tmp_path / "f").mkdir()
    ref = _sample(data, tmp_path / "f.parquet", "--keep-intermediate", tmp_path / "f", "--losses",
                  data / "losses.parquet")
    got = _sample(data, tmp_path / "p.parquet", "--keep-intermediate", tmp_path / "p", "--losses",
                  data / "losses.parquet", "--intermediate-parts")
    assert got.read_bytes() == ref.read_bytes()
    assert sorted(os.listdir(tmp_path / "p")) == ["clusters", "clusters.centers.parquet", "scores"]
    assert _rows(tmp_path / "p" / "clusters").equals(_rows(tmp_path / "f" / "clusters.parquet"))
    assert _rows(tmp_path / "p" / "scores").equals(_rows(tmp_path / "f" / "scores.parquet"))
    assert io.read_meta(tmp_path / "p" / "scores")["summary"] == io.read_meta(tmp_path / "f" / "scores.parquet")[
        "summary"]
    # without --keep-intermediate the parts live in a scratch folder beside -o, removed after the run
    scratch = _sample(data, tmp_path / "s.parquet", "--losses", data / "losses.parquet", "--intermediate-parts")
    assert scratch.read_bytes() == ref.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@needs_dask
def test_one_step_sample_parts_on_dask(data, tmp_path, dask_cluster):
    ref = _sample(data, tmp_path / "f.parquet")
    got = _sample(data, tmp_path / "d.parquet", "--intermediate-parts", "--engine", "dask", "--scheduler",
                  dask_cluster, "--partitions", 3)
    assert got.read_bytes() == ref.read_bytes()


@pytest.mark.parametrize("extra, frag", [(["--probes", 2, "--keep-intermediate", "K"], "--probes does not apply"),
                                         (["--rounds", 2], "--rounds does not apply"),
                                         (["--proxy", "knn", "--losses", "L"], "--proxy knn does not apply")])
def test_intermediate_parts_refuses_what_needs_every_row(data, tmp_path, extra, frag):
    extra = [{"K": tmp_path / "K", "L": data / "losses.parquet"}.get(e, e) if isinstance(e, str) else e for e in extra]
    r = run("sample", data / "emb.parquet", "--k", K, "--size", 50, "-o", tmp_path / "s.parquet",
            "--intermediate-parts", *extra, code=2)
    assert frag in r.stderr and r.stderr.count("\n") == 1


def test_score_methods_without_clusters_refuse_a_directory_output(tmp_path):
    r = run("score", "--method", "loss", "--examples", tmp_path / "x.parquet", "-o", f"{tmp_path}/s/", code=2)
    assert "--method loss writes one file" in r.stderr and r.stderr.count("\n") == 1


def test_the_knn_proxy_refuses_a_directory_output(data, tmp_path):
    # it keeps a proxy loss per row; a directory output keeps nothing per row
    r = run("score", data / "clusters.parquet", "--losses", data / "losses.parquet", "--proxy", "knn", "--embeddings",
            data / "emb.parquet", "-o", f"{tmp_path}/s/", code=2)
    assert "--proxy knn keeps a proxy loss for every row" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("where", ["first", "last", "none"])
def test_buckets_too_big_are_split_so_memory_stays_bounded(tmp_path, monkeypatch, where):
    """More rows than MAX_BUCKETS buckets of BUCKET_ROWS hold: the buckets are split again from disk, so no
    bucket loaded holds more than about 2·BUCKET_ROWS ids, and the message is the in-memory check's."""
    from dataselect_cli._checks import check_unique_ids

    n = 20_000
    ids = np.random.default_rng(3).permutation(n * 7)[:n].astype(np.int64)
    if where == "first":
        ids[9_000], ids[19_999] = ids[4], ids[2]  # named: the id of row 2 (seen before row 4's)
    elif where == "last":
        ids[19_999] = ids[19_990]
    monkeypatch.setattr(uniqueids, "MAX_BUCKETS", 4)
    loaded = []
    real = uniqueids._read
    monkeypatch.setattr(uniqueids, "_read", lambda *a: (lambda got: loaded.append(len(got[0])) or got)(real(*a)))
    folder = str(tmp_path / "spill")
    blocks = (pa.array(ids[i : i + 1000]) for i in range(0, n, 1000))
    if where == "none":
        uniqueids.check_unique_ids_spilled(blocks, n, folder, "x", bucket_rows=500)
    else:
        with pytest.raises(InputError) as err:
            uniqueids.check_unique_ids_spilled(blocks, n, folder, "x", bucket_rows=500)
        with pytest.raises(InputError) as want:
            check_unique_ids(pa.array(ids), path="x")
        assert str(err.value) == str(want.value)
    assert sum(loaded) == n and max(loaded) <= 2 * 500 * 1.5 and len(loaded) > 4 * 2, (max(loaded), len(loaded))
    assert not os.path.exists(folder)


def test_a_reader_stopped_after_one_table_keeps_no_file_of_a_directory_open(tmp_path):
    """A part's ``id`` column is read with ``next(ds.iter_tables(...))`` once a block (``parts.Sink``): the file
    must be released although the generator never finishes (it was kept open, with its footer, once a block:
    ``score -o DIR/`` grew 27 MiB from 10⁶ to 10⁸ rows)."""
    for i in range(6):
        pq.write_table(pa.table({"id": np.arange(i * 10, i * 10 + 10)}), tmp_path / f"f{i}.parquet")
    ds = ParquetDataset(str(tmp_path))
    for lo in range(0, 60, 10):
        t = next(ds.iter_tables(["id"], lo, lo + 10, 10))
        assert t.column("id").to_pylist() == list(range(lo, lo + 10))
    assert set(ds._open) <= {0}, sorted(ds._open)  # file 0 stays open for the schema, no other

"""The spill of a streamed run (issue 17, item 2): the pass that checks the values writes the decoded blocks it
does not keep to one scratch file beside the output, and the later passes read them back instead of decoding
Parquet again. Same bytes out; the file is gone when the command ends, whatever the ending."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clirun import run

from dataselect_cli import dataset, grid, io, pqdataset, scratch
from dataselect_cli import outputs as ds_outputs
from dataselect_cli.steps import common

N, D, BLOCK = 20_000, 8, 1024
STREAM = ["--memory-limit", "600KB", "--block-rows", BLOCK]  # 625 KiB of vectors: streamed, nothing kept


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spill")
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(12, D)) * 4)[rng.integers(0, 12, N)] + rng.normal(size=(N, D))
    path = folder / "emb.parquet"
    pq.write_table(pa.table({"id": np.arange(N) * 3, "embedding": io.embedding_array(x.astype(np.float32))}), path,
                   row_group_size=3000)
    return path


@pytest.fixture
def spills(monkeypatch):
    """Every spill a run makes: (its path, whether the file existed at each read, the blocks written, read)."""
    made = []
    real_init, real_write, real_read = scratch.Spill.__init__, scratch.Spill.write, scratch.Spill.read

    def init(self, path, d, block_rows):
        real_init(self, path, d, block_rows)
        made.append({"path": path, "exists": [], "written": [], "read": []})

    def write(self, b, x):
        made[-1]["written"].append(b)
        return real_write(self, b, x)

    def read(self, b, rows):
        made[-1]["exists"].append(os.path.exists(self.path))
        made[-1]["read"].append(b)
        return real_read(self, b, rows)

    monkeypatch.setattr(scratch.Spill, "__init__", init)
    monkeypatch.setattr(scratch.Spill, "write", write)
    monkeypatch.setattr(scratch.Spill, "read", read)
    return made


def leftovers(folder) -> list[str]:
    return [f for f in os.listdir(folder) if f.endswith(".spill.tmp")]


def outputs(folder, names) -> list[bytes]:
    return [(folder / name).read_bytes() for name in names]


@pytest.mark.parametrize("command", ["cluster", "sample"])
def test_outputs_are_the_same_bytes_with_and_without_the_spill_and_in_memory(emb, tmp_path, spills, command):
    extra = ["--size", 500] if command == "sample" else []
    files = ("o.parquet", "o.centers.parquet") if command == "cluster" else ("o.parquet",)
    got = {}
    for name, opts in (("memory", ["--block-rows", BLOCK]), ("none", [*STREAM, "--scratch", "none"]),
                       ("spill", STREAM)):
        (tmp_path / name).mkdir()
        run(command, emb, "-o", tmp_path / name / "o.parquet", "--k", 10, *extra, *opts, "-q")
        got[name] = outputs(tmp_path / name, files)
        assert leftovers(tmp_path / name) == []  # removed once the run succeeded
    assert got["spill"] == got["none"] == got["memory"]
    assert len(spills) == 1  # only the streamed run with a scratch location spilled
    s = spills[0]
    nb = grid.n_blocks(N, BLOCK)
    assert sorted(s["written"]) == list(range(nb))  # every block, in the pass that checked it
    assert sorted(set(s["read"])) == list(range(nb)) and len(s["read"]) == 2 * nb  # the assign and distance passes
    assert all(s["exists"])  # the file was there while read
    name = os.path.basename(s["path"])
    assert os.path.dirname(s["path"]) == str(tmp_path / "spill")  # beside the output, named after it
    assert name.startswith(f".o.parquet.{os.getpid()}.") and name.endswith(".spill.tmp")
    assert not os.path.exists(s["path"])


def test_scratch_dir_puts_the_file_there_and_a_bad_one_is_refused_before_any_work(emb, tmp_path, spills):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 5, *STREAM, "--scratch", scratch, "-q")
    assert len(spills) == 1 and os.path.dirname(spills[0]["path"]) == str(scratch) and spills[0]["read"]
    assert leftovers(scratch) == [] and leftovers(tmp_path) == []
    r = run("cluster", emb, "-o", tmp_path / "d.parquet", "--k", 5, *STREAM, "--scratch", tmp_path / "missing",
            code=2)
    assert "does not exist" in r.stderr and "--scratch" not in r.stdout and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d.parquet").exists()


def test_the_file_is_removed_after_an_input_error_in_a_later_stage(emb, tmp_path, spills):
    """The center rows' losses are looked up only once the clustering is made: a losses file without them fails
    after the spill was written and read."""
    pq.write_table(pa.table({"id": [0], "loss": [1.0]}), tmp_path / "l.parquet")
    r = run("sample", emb, "-o", tmp_path / "s.parquet", "--k", 10, "--size", 500, "--losses", tmp_path / "l.parquet",
            *STREAM, code=2)
    assert "center ids have no row here" in r.stderr
    assert len(spills) == 1 and spills[0]["read"] and all(spills[0]["exists"])
    assert leftovers(tmp_path) == [] and not (tmp_path / "s.parquet").exists()


def test_the_file_is_removed_on_ctrl_c_and_without_a_transaction(emb, tmp_path, spills, monkeypatch):
    from dataselect_cli.steps import cluster as cluster_step

    scale = common.Scale(memory_limit=600 << 10, block_rows=BLOCK)

    def interrupted(*args, **kwargs):
        assert leftovers(tmp_path)  # the spill is on disk now
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(cluster_step.io, "write_table", interrupted)
        with pytest.raises(KeyboardInterrupt):
            with ds_outputs.outputs():
                cluster_step.cluster_file(str(emb), str(tmp_path / "c.parquet"), k=5, scale=scale)
    assert leftovers(tmp_path) == []
    cluster_step.cluster_file(str(emb), str(tmp_path / "c.parquet"), k=5, scale=scale)  # a library call: no transaction
    assert len(spills) == 2 and spills[1]["read"] and leftovers(tmp_path) == []


def test_a_stale_file_of_a_dead_process_is_swept_and_a_live_ones_left(emb, tmp_path):
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(child.stdout)
    stale = tmp_path / f".c.parquet.{dead}.abcd1234.spill.tmp"
    live = tmp_path / f".c.parquet.{os.getppid()}.abcd1234.spill.tmp"
    stale.write_bytes(b"x" * 100)
    live.write_bytes(b"x")
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 5, *STREAM, "-q")
    assert not stale.exists() and live.exists()


def test_no_spill_when_the_disk_would_be_left_too_full(emb, tmp_path, spills, monkeypatch):
    nbytes = (N // BLOCK) * BLOCK * D * 4 + 20_480  # 19 blocks of 32 KiB, the last (17,408 bytes) rounded to pages
    usage = namedtuple("usage", "total used free")
    keep = common.SPILL_FREE_BYTES
    monkeypatch.setattr(common.shutil, "disk_usage", lambda p: usage(10 * keep, 9 * keep, keep + nbytes - 1))
    run("cluster", emb, "-o", tmp_path / "c.parquet", "--k", 5, *STREAM, "-q")
    r = run("cluster", emb, "-o", tmp_path / "d.parquet", "--k", 5, *STREAM)
    assert spills == [] and "not spilling 628 KiB" in r.stderr
    monkeypatch.setattr(common.shutil, "disk_usage", lambda p: usage(10 * keep, 9 * keep, keep + nbytes))
    run("cluster", emb, "-o", tmp_path / "e.parquet", "--k", 5, *STREAM, "-q")
    assert len(spills) == 1  # exactly the bytes plus the margin: spilled
    assert outputs(tmp_path, ["c.parquet", "c.centers.parquet"]) == \
        outputs(tmp_path, ["e.parquet", "e.centers.parquet"])
    monkeypatch.setattr(common.shutil, "disk_usage", lambda p: usage(100 * keep, 0, keep + nbytes))
    run("cluster", emb, "-o", tmp_path / "f.parquet", "--k", 5, *STREAM, "-q")
    assert len(spills) == 1  # 5 % of a larger disk is more than the 1 GiB: not spilled


def test_a_directory_output_spills_beside_the_directory_not_into_it(emb, tmp_path, spills):
    run("cluster", emb, "-o", f"{tmp_path / 'parts'}/", "--k", 5, *STREAM, "-q")
    assert len(spills) == 1 and spills[0]["read"]
    assert os.path.dirname(spills[0]["path"]) == str(tmp_path)
    assert os.path.basename(spills[0]["path"]).startswith(".parts.")
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "parts") == []


def write(path, x, row_group_size):
    pq.write_table(pa.table({"id": np.arange(len(x)), "embedding": io.embedding_array(x)}), path,
                   row_group_size=row_group_size)
    return dataset.EmbeddingSource(pqdataset.ParquetDataset(path))


@pytest.mark.parametrize("direct", [True, False])
def test_the_spill_holds_the_blocks_not_kept_and_serves_them_in_later_passes(tmp_path, monkeypatch, direct):
    monkeypatch.setattr(scratch.Spill, "use_direct", direct and scratch.Spill.use_direct)
    x = np.random.default_rng(1).normal(size=(1050, 8)).astype(np.float32)
    src = write(tmp_path / "e.parquet", x, 300)
    nb = grid.n_blocks(src.n, 100)
    src.keep_blocks(3 * 100 * 8 * 4)  # room for three blocks
    assert src.spill_bytes(100) == 8 * 4096  # blocks 3..10, of 3,200 bytes (the last 1,600) each rounded to a page
    src.spill_to(ds_outputs.scratch_file(tmp_path / "out.parquet"), 100)
    decoded = []
    real = src._blocks
    src._blocks = lambda b0, b1, rows: (decoded.append((b0, b1)), real(b0, b1, rows))[1]
    first = np.concatenate([blk for _, blk in src.iter_blocks(0, nb, 100)])
    assert src.spill.blocks == set(range(3, nb)) and os.path.getsize(src.spill.path) >= 1050 * 8 * 4
    second = list(src.iter_blocks(0, nb, 100))
    assert decoded == [(0, nb)]  # the later pass decodes nothing: kept blocks, then the spill
    assert [b for b, _ in second] == list(range(nb)) and len(second[-1][1]) == 50
    assert np.concatenate([blk for _, blk in second]).tobytes() == first.tobytes() == x.tobytes()
    assert [b for b, _ in src.iter_blocks(5, 7, 100)] == [5, 6] and decoded == [(0, nb)]
    list(src.iter_blocks(0, 3, 350))  # another grid: decoded from the file
    assert decoded[-1] == (0, 3)
    del src._blocks
    assert pickle.loads(pickle.dumps(src)).spill is None  # a Dask worker decodes its own blocks
    path = src.spill.path
    src.spill.close()
    assert not os.path.exists(path)


def test_a_failed_write_drops_the_spill_and_the_later_passes_decode(tmp_path, monkeypatch):
    x = np.random.default_rng(2).normal(size=(1000, 8)).astype(np.float32)
    src = write(tmp_path / "e.parquet", x, 256)
    src.spill_to(ds_outputs.scratch_file(tmp_path / "out.parquet"), 100)
    calls = []
    real = os.pwrite

    def full(fd, data, offset):
        calls.append(offset)
        if len(calls) > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(dataset.os, "pwrite", full)
    assert np.concatenate([blk for _, blk in src.iter_blocks(0, 10, 100)]).tobytes() == x.tobytes()
    assert src.spill.blocks == set() and os.path.getsize(src.spill.path) == 0 and src.checked
    assert np.concatenate([blk for _, blk in src.iter_blocks(0, 10, 100)]).tobytes() == x.tobytes()


def test_a_bad_value_is_refused_before_its_block_is_spilled(tmp_path):
    x = np.random.default_rng(3).normal(size=(1000, 8)).astype(np.float32)
    x[450, 2] = np.inf
    src = write(tmp_path / "e.parquet", x, 256)
    src.spill_to(ds_outputs.scratch_file(tmp_path / "out.parquet"), 100)
    with pytest.raises(Exception, match="row 450"):
        list(src.iter_blocks(0, 10, 100))
    assert src.spill.blocks == {0, 1, 2, 3}


def test_generated_rows_are_not_spilled(tmp_path, spills):
    run("cluster", "synthetic:20000,8,3", "-o", tmp_path / "c.parquet", "--k", 5, *STREAM, "-q")
    assert spills == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize("aligned", [True, False])
def test_a_block_is_written_and_read_back_whatever_its_alignment_and_length(tmp_path, aligned):
    # 28,000 bytes a block: not whole pages
    sp = scratch.Spill(ds_outputs.scratch_file(tmp_path / "out.parquet"), 7, 1000)
    x = np.random.default_rng(4).normal(size=(1000, 7)).astype(np.float32)
    blocks = {2: x, 0: x[:999] + 1, 5: x[:3] - 1}
    for b, v in blocks.items():  # whole pages written from the block itself, the rest staged (with O_DIRECT)
        buf = scratch.empty_block(*v.shape) if aligned else np.empty(len(v) * 7 + 1, np.float32)[1:].reshape(-1, 7)
        buf[:] = v
        assert (buf.ctypes.data % scratch.ALIGN == 0) == aligned
        assert sp.write(b, buf)
    for b, v in blocks.items():
        assert sp.read(b, len(v)).tobytes() == v.tobytes()
    sp.close()

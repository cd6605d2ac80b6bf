"""The in-memory read of the embeddings on several threads (issue 17, item 5): the matrix and any error are
those of one thread reading the file in order, whatever the layout and whichever thread finds the error."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataselect_cli import dataset, io, pqdataset
from dataselect_cli.errors import InputError

N, D = 400, 6
MARK = 12345.0  # a value in the row whose error the test delays


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Batches of 10 rows: several batches per row group, so that a row group is read in pieces."""
    monkeypatch.setattr(dataset, "DECODE_BYTES", 10 * D * 4)


def vectors(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def table(x, kind: str = "fixed", ids=None) -> pa.Table:
    """ids 100, 101, … and the vectors as fixed_size_list<float32>, list<float32> or list<float64>; a row that
    is a list of another length (ragged) or None is kept as given."""
    ids = np.arange(100, 100 + len(x)) if ids is None else ids
    if kind == "fixed":
        return pa.table({"id": ids, "embedding": io.embedding_array(np.asarray(x))})
    typ = pa.list_(pa.float32() if kind == "list" else pa.float64())
    rows = [None if r is None else [float(v) for v in r] for r in x]
    return pa.table({"id": ids, "embedding": pa.array(rows, typ)})


def read(path, threads: int) -> np.ndarray:
    return dataset.EmbeddingSource(pqdataset.ParquetDataset(path)).take(None, 64, threads=threads)


def error(path, threads: int) -> str:
    with pytest.raises(InputError) as e:
        read(path, threads)
    return str(e.value)


def layouts(tmp_path, x: np.ndarray, kind: str = "fixed") -> dict[str, str]:
    """The same rows as one row group, row groups of 37 rows, and a directory of three files with other row
    groups (the second file one row long)."""
    t = table(list(x) if kind != "fixed" else x, kind)
    pq.write_table(t, tmp_path / f"one-{kind}.parquet")
    pq.write_table(t, tmp_path / f"many-{kind}.parquet", row_group_size=37)
    folder = tmp_path / f"dir-{kind}"
    folder.mkdir()
    pq.write_table(t.slice(0, 150), folder / "a.parquet", row_group_size=64)
    pq.write_table(t.slice(150, 1), folder / "b.parquet")
    pq.write_table(t.slice(151), folder / "c.parquet", row_group_size=100)
    return {"one": str(tmp_path / f"one-{kind}.parquet"), "many": str(tmp_path / f"many-{kind}.parquet"),
            "dir": str(folder)}


@pytest.mark.parametrize("kind", ["fixed", "list", "double"])
def test_every_thread_count_reads_the_same_matrix_as_one_thread_and_as_the_streamed_blocks(tmp_path, kind):
    x = vectors()
    for name, path in layouts(tmp_path, x, kind).items():
        want = x if kind != "double" else x.astype(np.float64).astype(np.float32)
        for threads in (1, 2, 3, 4, 8):
            src = dataset.EmbeddingSource(pqdataset.ParquetDataset(path))
            got = src.take(None, 64, threads=threads)
            assert got.dtype == np.float32 and got.flags.c_contiguous, (name, threads)
            assert np.array_equal(got, want), (name, threads)
            assert src.checked
        streamed = dataset.EmbeddingSource(pqdataset.ParquetDataset(path))
        assert np.array_equal(np.concatenate([b for _, b in streamed.iter_blocks(0, 7, 64)]), want), name


@pytest.mark.parametrize("n", [1, 3, 10, 11])
def test_fewer_rows_than_a_batch_or_a_thread_each(tmp_path, n):
    x = vectors(n)
    path = tmp_path / "e.parquet"
    pq.write_table(table(x), path)
    for threads in (1, 2, 4):
        assert np.array_equal(read(path, threads), x)


def test_the_default_thread_count_is_bounded_by_the_cores_the_cap_and_the_matrix(monkeypatch):
    monkeypatch.setattr(dataset.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    assert dataset.read_threads(0) == 1
    assert dataset.read_threads(dataset.READ_THREAD_BYTES - 1) == 1
    assert dataset.read_threads(3 * dataset.READ_THREAD_BYTES) == 3
    assert dataset.read_threads(100 * dataset.READ_THREAD_BYTES) == dataset.READ_THREADS
    monkeypatch.setattr(dataset.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert dataset.read_threads(100 * dataset.READ_THREAD_BYTES) == 2


def delay_marked(monkeypatch, seconds: float = 0.15) -> None:
    """Make the thread that meets the row holding :data:`MARK` report its error last: it sleeps first."""
    real_check, real_list = dataset.first_bad_value, io.list_block

    def check(x):
        bad = real_check(x)
        if bad is not None and MARK in x[bad[0]]:
            time.sleep(seconds)
        return bad

    def list_block(arr, path, column, row0, d, locate=None):
        try:
            return real_list(arr, path, column, row0, d, locate)
        except InputError:
            if any(r is not None and MARK in r for r in arr.to_pylist()):
                time.sleep(seconds)
            raise

    monkeypatch.setattr(dataset, "first_bad_value", check)
    monkeypatch.setattr(io, "list_block", list_block)


def with_bad_rows(x: np.ndarray, early: tuple[int, str], late: tuple[int, str]) -> list:
    """The rows of ``x`` with a defect ('nan', 'inf', 'big', 'ragged', 'null') at each of two rows; the early
    one also holds :data:`MARK`, so that its thread is the slow one."""
    rows: list = [list(map(float, r)) for r in x]
    for row, what in (early, late):
        if what == "null":
            rows[row] = None
            continue
        rows[row][1] = MARK if row == early[0] else rows[row][1]
        if what == "ragged":
            rows[row] = rows[row][:-1]
        else:
            rows[row][0] = {"nan": np.nan, "inf": -np.inf, "big": 1e30}[what]
    if early[1] == "null":  # a null row cannot hold the mark: mark the row before it (read in the same batch)
        rows[early[0] - 1][1] = MARK
    return rows


@pytest.mark.parametrize("early,late", [
    ("nan", "nan"), ("nan", "ragged"), ("ragged", "nan"), ("big", "inf"), ("inf", "big"), ("null", "nan"),
    ("nan", "null"),
])
def test_the_error_is_at_the_first_bad_row_whichever_thread_finds_it_first(tmp_path, monkeypatch, early, late):
    """Two bad rows in row groups read by different threads; the thread of the earlier one is delayed so that the
    later one is found first: the error is still the earlier row's, the message of a read in one thread."""
    early_row, late_row = 133, 371  # row groups of 37 rows: the 4th and the 11th
    rows = with_bad_rows(vectors(), (early_row, early), (late_row, late))
    path = tmp_path / "bad.parquet"
    pq.write_table(table(rows, "list"), path, row_group_size=37)
    alone = error(path, 1)
    assert f"at row {early_row}" in alone or f"row {early_row} " in alone, alone
    delay_marked(monkeypatch)
    for threads in (2, 4):
        started = time.perf_counter()
        assert error(path, threads) == alone, threads
        assert time.perf_counter() - started >= 0.15  # the delayed thread's error, not the other one's


def test_the_bad_value_message_is_unchanged(tmp_path):
    x = vectors()
    x[133, 2] = np.nan
    x[371, 0] = np.inf
    pq.write_table(table(x), tmp_path / "e.parquet", row_group_size=37)
    want = (f"{tmp_path / 'e.parquet'}: column 'embedding' has a NaN or infinite value at row 133 (id 233); "
            "fix or drop that row and re-run")
    for threads in (1, 2, 4):
        assert error(tmp_path / "e.parquet", threads) == want


def test_a_directory_names_the_file_and_its_row(tmp_path, monkeypatch):
    x = vectors()
    x[200, 1], x[390, 1] = np.nan, np.nan
    paths = layouts(tmp_path, x)
    for threads in (1, 2, 4):
        msg = error(paths["dir"], threads)
        assert msg.startswith(str(tmp_path / "dir-fixed" / "c.parquet")), msg
        assert "at row 49 (id 300)" in msg, msg  # row 200 of the directory: c.parquet starts at row 151


def test_a_later_failure_stops_the_other_threads_before_the_rest_of_the_file(tmp_path, monkeypatch):
    """Row groups after a failed batch are not read: with the first row bad, at most one row group per thread."""
    x = vectors()
    x[0, 0] = np.nan
    pq.write_table(table(x), tmp_path / "e.parquet", row_group_size=37)
    seen = []
    real_batches, real_check = pqdataset.ParquetDataset.iter_batches, dataset.first_bad_value

    def iter_batches(self, columns, start, stop, batch_rows, threads=False):
        if columns == ["embedding"]:  # not the id read for the message
            seen.append(start)
        return real_batches(self, columns, start, stop, batch_rows, threads)

    def check(x):  # 0.2 s a good batch: the thread that fails at once fails within the others' first batch
        bad = real_check(x)
        if bad is None:
            time.sleep(0.2)
        return bad

    monkeypatch.setattr(pqdataset.ParquetDataset, "iter_batches", iter_batches)
    monkeypatch.setattr(dataset, "first_bad_value", check)
    assert "at row 0 (id 100)" in error(tmp_path / "e.parquet", 2)
    # the first row group and the one the other thread took (a third if the failing thread was very slow), of 11
    assert 0 in seen and len(seen) <= 3, seen


def test_a_synthetic_input_reads_the_same_rows_on_any_number_of_threads():
    from dataselect_cli.synthetic import GEN_ROWS, SyntheticDataset, rows

    ds = SyntheticDataset(f"synthetic:{2 * GEN_ROWS + 5},3,1")
    want = rows(0, ds.n, ds.n, ds.d, ds.seed, ds.clusters)
    for threads in (1, 2, 4):
        assert np.array_equal(dataset.EmbeddingSource(ds).take(None, 64, threads=threads), want)
    assert ds.ranges(5, GEN_ROWS + 1) == [(5, GEN_ROWS), (GEN_ROWS, GEN_ROWS + 1)]


def test_no_thread_outlives_a_failed_read(tmp_path):
    """The helpers are joined and a read-ahead thread (one row group, more threads than row groups) is stopped
    when the read fails, not when the error is dropped."""
    import threading

    x = vectors()
    x[200, 0] = np.nan
    pq.write_table(table(x), tmp_path / "one.parquet")
    pq.write_table(table(x), tmp_path / "many.parquet", row_group_size=37)
    for name in ("one", "many"):
        with pytest.raises(InputError, match="row 200") as e:
            read(tmp_path / f"{name}.parquet", 4)
        alive = [t.name for t in threading.enumerate() if t.name.startswith(("dataselect-read", "dataselect-prefetch"))]
        assert alive == [], (name, alive)
        del e

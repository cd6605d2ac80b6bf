"""Text embeddings: the featuriser's pinned values, the hash and MiniLM encoders through ``dataselect embed``,
every input type, streaming, pass-through columns, determinism. Bad text input is in test_bad_input.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dataselect_cli import api, dataset, encoders, io, text
from dataselect_cli.cli import RateColumn

from clirun import run

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "texts.jsonl"




def sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def matrix(path) -> np.ndarray:
    t = pq.read_table(path)
    return np.asarray(t.column("embedding").combine_chunks().flatten()).reshape(t.num_rows, -1)


def minilm_installed() -> bool:
    try:
        encoders.resolve_model(encoders.MINILM)
        import sentence_transformers  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure means: not usable here
        return False
    return True


needs_minilm = pytest.mark.skipif(not minilm_installed() and not os.environ.get("CI"),
                                  reason="the [text] extra is not installed (make test installs it; CI requires it)")


# --------------------------------------------------------------------------- the featuriser, pinned


def test_tokenize_lowercases_unicode_words_and_drops_empty_tokens():
    tokens, doc = text.tokenize(["  Hello, WORLD!! foo_bar x2", None, "", "L'ÉTÉ — 日本語 テキスト", "?!"])
    assert tokens.to_pylist() == ["hello", "world", "foo_bar", "x2", "l", "été", "日本語", "テキスト"]
    assert doc.tolist() == [0, 0, 0, 0, 3, 3, 3, 3]


def test_token_hash_is_blake2b_and_pinned():
    """A change of these numbers changes every hash embedding and DSIR feature: bump FEATURIZER_VERSION."""
    for tok, h, bucket in [("the", 3331141520948189790, 776798), ("cat", 3429664268601861939, 862003),
                           ("été", 15573535892061639100, 86460), ("2024", 16317669321556879174, 1042246)]:
        assert text.token_hash(tok) == h
        assert h == int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
        assert h % text.N_BUCKETS == bucket
    assert text.N_BUCKETS == 2**20


def test_bigrams_stay_inside_a_document_and_keep_order():
    h = np.array([text.token_hash(t) for t in ("the", "cat", "sat")], dtype=np.uint64)
    h2, doc2 = text.bigram_hashes(h, np.array([0, 0, 1]))
    assert doc2.tolist() == [0] and int(h2[0]) % text.N_BUCKETS == 560653  # "the cat"; no "cat sat" across docs
    rev, _ = text.bigram_hashes(h[[1, 0]], np.array([0, 0]))
    assert rev[0] != h2[0]


def test_featurize_counts_unigrams_and_bigrams():
    f = text.featurize(["the cat the cat", "dog"])
    assert f.n_docs == 2
    assert f.tokens_per_doc().tolist() == [4 + 3, 1]  # 4 unigrams + 3 bigrams; 1 unigram
    first = dict(zip(f.bucket[f.doc == 0].tolist(), f.tf[f.doc == 0].tolist()))
    assert first[text.token_hash("the") % text.N_BUCKETS] == 2
    assert sorted(first.values()) == [1, 2, 2, 2]  # "cat the" once; "the", "cat", "the cat" twice
    df = text.document_frequency(text.featurize(["the cat", "the dog", "a"]))
    assert df[776798] == 2 and df.sum() == 3 + 3 + 1


def test_mix64_and_projection_are_pinned():
    assert text.mix64(np.array([1], dtype=np.uint64)).tolist() == [6238072747940578789]
    pos, sign = text.projection(0, 256)
    assert pos.shape == (text.N_BUCKETS, text.NNZ_PER_BUCKET)
    assert pos[:2].tolist() == [[29, 18, 187, 149], [63, 62, 105, 3]]
    assert sign[:2].tolist() == [[0.5] * 4, [-0.5] * 4]
    assert abs((sign > 0).mean() - 0.5) < 0.002
    assert not np.array_equal(text.projection(1, 256)[0][:100], pos[:100])


def test_hash_embed_unit_rows_zero_for_wordless_docs_and_idf():
    texts = ["apples and pears", "apples and plums", "!!!", "pears"]
    f = text.featurize(texts)
    x = text.hash_embed(f, text.idf_weights(text.document_frequency(f), 4), seed=0, dim=64)
    assert x.dtype == np.float32 and x.shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(x[[0, 1, 3]], axis=1), 1.0, rtol=1e-6)
    assert not x[2].any()
    assert x[0] @ x[3] > 0.2 and x[0] @ x[1] > 0.2
    assert text.idf_weights(np.array([0, 4]), 4).tolist() == pytest.approx([np.log(5) + 1, 1.0])
    assert text.sublinear_tf(np.array([1, 3, 100_000])).tolist() == pytest.approx([1, 1 + np.log(3), 1 + np.log(1e5)])


def test_hash_embedding_of_the_sample_corpus_is_pinned(tmp_path):
    """The bytes of the embeddings (not of the file, which records the version) on the shipped corpus."""
    run("embed", SAMPLE, "-o", tmp_path / "e.parquet", "--text-column", "text", "-q")
    digest = hashlib.sha256(matrix(tmp_path / "e.parquet").tobytes()).hexdigest()
    assert digest == PINNED_SAMPLE_DIGEST


PINNED_SAMPLE_DIGEST = "6db5a40b821fe2f4c7a5251bd5abc4fa6dd26f73f2e3ee0d21134ecaeef53c67"


# --------------------------------------------------------------------------- hash encoder through the CLI


def test_hash_output_contract_metadata_and_summary(tmp_path):
    r = run("embed", SAMPLE, "-o", tmp_path / "e.parquet", "--text-column", "text", "--keep-columns", "label,pair",
            "--json")
    s = json.loads(r.stdout)
    assert s.pop("outputs") == [str(tmp_path / "e.parquet")] and s.pop("skipped") is False
    assert s == {"n": 312, "d": 256, "rows": 312, "skipped_empty": 0, "zero_vectors": 0, "files": 1, "model": "hash"}
    t = pq.read_table(tmp_path / "e.parquet")
    assert t.column_names == ["id", "embedding", "label", "pair"]
    assert t.schema.field("id").type == pa.string() and t.schema.field("embedding").type == pa.list_(pa.float32(), 256)
    rows = sample_rows()
    assert t.column("id").to_pylist() == [r["id"] for r in rows]
    assert t.column("label").to_pylist() == [r["label"] for r in rows]
    assert t.column("pair").to_pylist() == [r["pair"] for r in rows]
    meta = io.read_meta(tmp_path / "e.parquet")
    assert meta["command"] == "embed" and meta["seed"] == 0 and meta["summary"]["n"] == 312
    p = meta["params"]
    assert (p["model"], p["dim"], p["seed"], p["buckets"], p["ngrams"]) == ("hash", 256, 0, 2**20, [1, 2])
    assert "batch_size" not in p  # it does not change a byte of the hash output
    assert meta["inputs"]["input"]["sha256"] == io.fingerprint(SAMPLE)["sha256"]
    assert "e.parquet" not in json.dumps(meta)
    ids, x = dataset.read_embeddings(tmp_path / "e.parquet")  # the contract's own reader accepts it
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-6)


def test_hash_is_byte_identical_twice_and_seed_and_dim_matter(tmp_path):
    for name, extra in (("a", []), ("b", []), ("c", ["--seed", "1"]), ("d", ["--dim", "32"])):
        run("embed", SAMPLE, "-o", tmp_path / f"{name}.parquet", "--text-column", "text", "-q", *extra)
    read = lambda n: (tmp_path / f"{n}.parquet").read_bytes()  # noqa: E731
    assert read("a") == read("b")
    assert read("a") != read("c")
    assert matrix(tmp_path / "d.parquet").shape == (312, 32)


def test_batch_size_and_block_size_do_not_change_a_byte(tmp_path, monkeypatch):
    """Streaming in batches of 7 rows, 200-byte file blocks and 50-row row groups equals one big batch."""
    monkeypatch.setattr(io, "ROW_GROUP_SIZE", 50)
    run("embed", SAMPLE, "-o", tmp_path / "big.parquet", "--text-column", "text", "--keep-columns", "label", "-q",
        "--batch-size", "100000")
    from dataselect_cli import corpus as corpus_mod
    monkeypatch.setattr(corpus_mod, "_BLOCK", 200)  # shorter than some lines: exercises the carry-over
    run("embed", SAMPLE, "-o", tmp_path / "small.parquet", "--text-column", "text", "--keep-columns", "label", "-q",
        "--batch-size", "7")
    assert (tmp_path / "big.parquet").read_bytes() == (tmp_path / "small.parquet").read_bytes()
    pf = pq.ParquetFile(tmp_path / "small.parquet")
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [50] * 6 + [12]


def write_formats(tmp_path: Path) -> dict[str, Path]:
    """The sample corpus as every supported input type."""
    rows = sample_rows()
    table = pa.table({k: [r[k] for r in rows] for k in ("id", "text", "label")})
    out = {"jsonl": SAMPLE, "parquet": tmp_path / "c.parquet", "csv": tmp_path / "c.csv", "tsv": tmp_path / "c.tsv",
           "txt": tmp_path / "c.txt"}
    pq.write_table(table, out["parquet"], row_group_size=100)
    pacsv.write_csv(table, out["csv"])
    pacsv.write_csv(table, out["tsv"], pacsv.WriteOptions(delimiter="\t"))
    out["txt"].write_text("".join(r["text"] + "\n" for r in rows), encoding="utf-8")
    parts = tmp_path / "dir"
    parts.mkdir()
    pq.write_table(table.slice(0, 100), parts / "a.parquet")
    pacsv.write_csv(table.slice(100, 100), parts / "b.csv")
    (parts / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[200:]), encoding="utf-8")
    (parts / "README.md").write_text("not a corpus file: ignored")
    out["dir"] = parts
    return out


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "csv", "tsv", "txt", "dir"])
def test_every_input_type_gives_the_same_embeddings(tmp_path, kind):
    path = write_formats(tmp_path)[kind]
    run("embed", SAMPLE, "-o", tmp_path / "ref.parquet", "--text-column", "text", "-q")
    extra = [] if kind == "txt" else ["--keep-columns", "label"]
    r = run("embed", path, "-o", tmp_path / "e.parquet", "--text-column", "text", "--json", *extra)
    np.testing.assert_array_equal(matrix(tmp_path / "e.parquet"), matrix(tmp_path / "ref.parquet"))
    t = pq.read_table(tmp_path / "e.parquet")
    rows = sample_rows()
    if kind == "txt":
        assert t.column("id").to_pylist() == list(range(312))  # line positions
    else:
        assert t.column("id").to_pylist() == [r["id"] for r in rows]
        assert t.column("label").to_pylist() == [r["label"] for r in rows]
    summary = json.loads(r.stdout)
    assert summary["files"] == (3 if kind == "dir" else 1)
    if kind == "dir":
        assert sorted(io.read_meta(tmp_path / "e.parquet")["inputs"]) == ["input/a.parquet", "input/b.csv",
                                                                          "input/c.jsonl"]


def test_txt_lines_crlf_bom_and_missing_final_newline(tmp_path):
    (tmp_path / "a.txt").write_bytes("\ufeffFirst line\r\nsecond line\r\nthird".encode())
    (tmp_path / "b.txt").write_text("first line\nsecond line\nthird\n")
    for name in ("a", "b"):
        run("embed", tmp_path / f"{name}.txt", "-o", tmp_path / f"{name}.parquet", "--text-column", "doc",
            "--keep-columns", "doc", "-q")
    ta = pq.read_table(tmp_path / "a.parquet")
    assert ta.column("doc").to_pylist() == ["First line", "second line", "third"]
    np.testing.assert_array_equal(matrix(tmp_path / "a.parquet"), matrix(tmp_path / "b.parquet"))  # lower-cased


def test_json_blocks_infer_types_apart_and_are_unified(tmp_path, monkeypatch):
    """A field null (or integer) throughout the first blocks and string (or float) later still passes through."""
    from dataselect_cli import corpus as corpus_mod

    monkeypatch.setattr(corpus_mod, "_BLOCK", 300)
    docs = [{"id": i, "text": f"words {i} and more words", "note": None if i < 20 else f"n{i}",
             "score": i if i < 20 else i + 0.5} for i in range(40)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    run("embed", tmp_path / "d.jsonl", "-o", tmp_path / "e.parquet", "--text-column", "text", "--keep-columns",
        "note,score", "-q", "--batch-size", "8")
    t = pq.read_table(tmp_path / "e.parquet")
    assert t.schema.field("note").type == pa.string() and t.schema.field("score").type == pa.float64()
    assert t.column("note").to_pylist() == [d["note"] for d in docs]
    assert t.column("score").to_pylist() == [d["score"] for d in docs]


def test_keep_columns_pass_through_with_types(tmp_path):
    docs = [{"key": 10 + i, "body": f"document number {i} about topic {i % 3}", "score": i / 2, "tags": ["x"] * i,
             "source": None if i == 0 else f"s{i}"} for i in range(20)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    run("embed", tmp_path / "d.jsonl", "-o", tmp_path / "e.parquet", "--text-column", "body", "--id-column", "key",
        "--keep-columns", "score,tags,source,body", "-q")
    t = pq.read_table(tmp_path / "e.parquet")
    assert t.column_names == ["id", "embedding", "score", "tags", "source", "body"]
    assert t.column("id").to_pylist() == [d["key"] for d in docs]
    for c in ("score", "tags", "source", "body"):
        assert t.column(c).to_pylist() == [d[c] for d in docs], c


def test_default_ids_are_row_positions_and_skip_empty_keeps_them(tmp_path):
    lines = ["alpha beta", "", "gamma delta", "   ", "alpha gamma"]
    (tmp_path / "a.txt").write_text("\n".join(lines) + "\n")
    r = run("embed", tmp_path / "a.txt", "-o", tmp_path / "e.parquet", "--text-column", "text", "--skip-empty",
            "--json")
    assert json.loads(r.stdout)["skipped_empty"] == 2 and json.loads(r.stdout)["n"] == 3
    assert "skipped 2 null or empty texts" in r.stderr
    assert pq.read_table(tmp_path / "e.parquet").column("id").to_pylist() == [0, 2, 4]
    # idf counts only the kept documents: the same as a corpus without the empty lines
    (tmp_path / "b.txt").write_text("alpha beta\ngamma delta\nalpha gamma\n")
    run("embed", tmp_path / "b.txt", "-o", tmp_path / "f.parquet", "--text-column", "text", "-q")
    np.testing.assert_array_equal(matrix(tmp_path / "e.parquet"), matrix(tmp_path / "f.parquet"))


def test_skip_empty_on_nulls_with_ids(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["some words", None, "more words"]}), tmp_path / "c.parquet")
    run("embed", tmp_path / "c.parquet", "-o", tmp_path / "e.parquet", "--text-column", "text", "--skip-empty", "-q")
    assert pq.read_table(tmp_path / "e.parquet").column("id").to_pylist() == ["a", "c"]


def test_wordless_documents_warn_and_give_zero_vectors(tmp_path):
    (tmp_path / "a.txt").write_text("real words here\n!!! ...\nmore words\n")
    r = run("embed", tmp_path / "a.txt", "-o", tmp_path / "e.parquet", "--text-column", "text")
    assert "warning: 1 documents have no word" in r.stderr
    assert not matrix(tmp_path / "e.parquet")[1].any()


def test_a_failure_while_writing_leaves_no_file(tmp_path, monkeypatch):
    calls = []

    def boom(self, texts, advance=None):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return np.zeros((len(texts), self.dim), np.float32)

    monkeypatch.setattr(encoders.HashEncoder, "encode", boom)
    r = run("embed", SAMPLE, "-o", tmp_path / "e.parquet", "--text-column", "text", "--batch-size", "10", code=1)
    assert "disk on fire" in r.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal_and_renders_docs_per_second(tmp_path):
    r = run("embed", SAMPLE, "-o", tmp_path / "e.parquet", "--text-column", "text")
    assert r.stdout.startswith("wrote ") and r.stdout.count("\n") == 1
    err = r.stderr.splitlines()
    # each stage that began and ended within the first seconds is one line
    assert err[0].startswith("pass 1: reading: done, 312 docs in "), r.stderr
    assert len(err) == 2 and err[1].startswith("pass 2: embedding: done, 312 docs in ")

    class T:
        finished_speed, speed = None, 1234.0

    assert str(RateColumn().render(T())) == "1,234 docs/s"
    T.speed = None
    assert str(RateColumn().render(T())) == "– docs/s"


def test_api_progress_gets_totals(tmp_path):
    seen = []

    from contextlib import contextmanager

    @contextmanager
    def progress(description, total, unit):
        done = []
        yield done.append
        seen.append((description, total, unit, sum(done)))

    api.embed_text_file(str(SAMPLE), str(tmp_path / "e.parquet"), text_column="text", batch_size=100,
                        progress=progress)
    assert seen == [("pass 1: reading", None, "docs", 312), ("pass 2: embedding", 312, "docs", 312)]


# --------------------------------------------------------------------------- paraphrases are nearer, both encoders


def paraphrase_check(path) -> None:
    """Each hand-written pair is nearer than the members of every pair of another topic, and mutual neighbours."""
    t = pq.read_table(path)
    x = matrix(path)
    pair, label = t.column("pair").to_pylist(), t.column("label").to_pylist()
    names = sorted({p for p in pair if p})
    assert len(names) == 12
    members = {p: [i for i, q in enumerate(pair) if q == p] for p in names}
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    for p in names:
        a, b = members[p]
        unrelated = [j for q in names if label[members[q][0]] != label[a] for j in members[q]]
        assert sim[a, b] > sim[a, unrelated].max() and sim[a, b] > sim[b, unrelated].max(), p
        assert np.argmax(sim[a]) == b and np.argmax(sim[b]) == a, p


def test_hash_paraphrases_are_nearer_than_unrelated_texts(tmp_path):
    run("embed", SAMPLE, "-o", tmp_path / "e.parquet", "--text-column", "text", "--keep-columns", "label,pair", "-q")
    paraphrase_check(tmp_path / "e.parquet")


@pytest.fixture(scope="module")
def minilm_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "e.parquet"
    r = run("embed", SAMPLE, "-o", out, "--text-column", "text", "--model", "minilm", "--keep-columns", "label,pair",
            "--json")
    return out, r


@needs_minilm
def test_minilm_paraphrases_are_nearer_than_unrelated_texts(minilm_sample):
    out, r = minilm_sample
    assert json.loads(r.stdout)["d"] == 384  # and no download bars, warnings or logs: only our progress lines
    assert all(line.startswith(("pass 1: reading: ", "pass 2: embedding: ")) for line in r.stderr.splitlines()), \
        r.stderr
    paraphrase_check(out)
    meta = io.read_meta(out)
    assert meta["params"]["model"] == "minilm" and meta["params"]["versions"]["torch"].startswith("2.13.0")
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


@pytest.fixture(scope="module")
def few_texts(tmp_path_factory) -> tuple[Path, list[str]]:
    """40 documents of the sample as a .txt file: enough for the byte-level MiniLM checks, quick to encode."""
    texts = [r["text"] for r in sample_rows()][:40]
    path = tmp_path_factory.mktemp("few") / "few.txt"
    path.write_text("".join(t + "\n" for t in texts))
    return path, texts


@needs_minilm
def test_minilm_is_byte_identical_twice(few_texts, tmp_path):
    path, _ = few_texts
    for name in ("a", "b"):
        run("embed", path, "-o", tmp_path / f"{name}.parquet", "--text-column", "text", "--model", "minilm", "-q")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


@needs_minilm
def test_minilm_equals_sentence_transformers_and_a_model_directory_works(few_texts, tmp_path):
    """Our length-sorted chunks give what one SentenceTransformer.encode call gives; --model PATH loads the same."""
    path, texts = few_texts
    model = encoders._load(encoders.resolve_model("minilm"))
    direct = model.encode(texts, batch_size=encoders.MODEL_BATCH, normalize_embeddings=True)
    run("embed", path, "-o", tmp_path / "m.parquet", "--text-column", "text", "--model", "minilm", "-q")
    np.testing.assert_allclose(matrix(tmp_path / "m.parquet"), direct, atol=2e-6)
    local = tmp_path / "my-model"
    shutil.copytree(encoders.resolve_model("minilm"), local)
    r = run("embed", path, "-o", tmp_path / "p.parquet", "--text-column", "text", "--model", local, "--json")
    assert json.loads(r.stdout)["model"] == "my-model"
    np.testing.assert_allclose(matrix(tmp_path / "p.parquet"), direct, atol=2e-6)


@needs_minilm
def test_minilm_never_touches_the_network(few_texts, tmp_path, monkeypatch):
    """Loading (not from the cache) and encoding open no connection: the model is local, offline mode is forced."""
    import socket

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    encoders._load.cache_clear()
    path, _ = few_texts
    run("embed", path, "-o", tmp_path / "m.parquet", "--text-column", "text", "--model", "minilm", "-q")
    assert attempts == []
    assert os.environ["HF_HUB_OFFLINE"] == "1"


# --------------------------------------------------------------------------- scale (make test-slow)


@pytest.mark.slow
def test_memory_does_not_grow_with_the_corpus(tmp_path):
    """Peak RSS for 400,000 documents stays within 150 MB of that for 70,000 (one row group's worth):
    the corpus is streamed, never held. Observed here: 540 MB for 100k, 627 MB for 600k documents."""
    import resource
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    sizes = rng.integers(8, 40, 400_000)
    words = vocab[rng.zipf(1.3, int(sizes.sum())) % len(vocab)]
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    lines = [" ".join(words[cuts[i]:cuts[i + 1]]) for i in range(len(sizes))]
    peaks = []
    for n in (70_000, 400_000):
        path = tmp_path / f"c{n}.txt"
        path.write_text("\n".join(lines[:n]) + "\n")
        subprocess.run([sys.executable, "-m", "dataselect_cli", "embed", str(path), "-o", str(tmp_path / "e.parquet"),
                        "--text-column", "text", "-q"], check=True, capture_output=True)
        peaks.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)  # the max over children so far
        assert pq.ParquetFile(tmp_path / "e.parquet").metadata.num_rows == n
    assert peaks[1] - peaks[0] < 150, peaks

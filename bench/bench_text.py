"""Throughput of `dataselect embed --text-column` (run by `make bench`; `make bench-text` alone).

1. hash encoder: N generated documents (default 100,000, Zipf-distributed words, 8-60 words each)
   in a .jsonl file, embedded by `python -m dataselect_cli embed` end to end (interpreter start,
   both passes, reading and writing included) → documents/s; and the featuriser + encoder alone,
   in process, on the same texts.
2. MiniLM: M sentences (default 5,000) through `dataselect embed --model minilm` against
   `SentenceTransformer.encode` called directly on the same texts, in the same process and the
   same run, interleaved, `--reps` times each; the ratio compares the best times (model loading
   counted on both sides). The end-to-end CLI time (interpreter and torch import included) is
   printed beside it.

Usage: .venv/bin/python bench/bench_text.py [--n 100000] [--minilm-n 5000] [--reps 2] [--skip-minilm]
Figures go to stdout and bench/data/bench_text.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
sys.path.insert(0, str(ROOT))


def zipf_docs(n: int, seed: int = 0, vocab_size: int = 50_000) -> list[str]:
    """n documents of 8-60 words drawn from a Zipf(1) vocabulary of made-up words (seeded)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(2, 10, vocab_size)
    vocab = np.array(["".join(rng.choice(letters, k)) for k in lengths])
    p = 1.0 / np.arange(1, vocab_size + 1)
    p /= p.sum()
    sizes = rng.integers(8, 61, n)
    words = vocab[rng.choice(vocab_size, int(sizes.sum()), p=p)]
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    return [" ".join(words[cuts[i]:cuts[i + 1]]) + "." for i in range(n)]


def english_sentences(n: int, seed: int = 0) -> list[str]:
    """n sentences of 10-30 English words from the sample corpus's vocabulary (real WordPiece tokens)."""
    rows = [json.loads(line) for line in (ROOT / "sample_data" / "texts.jsonl").read_text().splitlines()]
    vocab = sorted({w.strip(".,'").lower() for r in rows for w in r["text"].split()} - {""})
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.integers(10, 31, n):
        words = [vocab[i] for i in rng.integers(0, len(vocab), k)]
        out.append(" ".join(words).capitalize() + ".")
    return out


def write_jsonl(texts: list[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": i, "text": t}) + "\n")


def cli(*args: str) -> float:
    """Run `python -m dataselect_cli ...`; return its wall time in seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dataselect_cli", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_hash(n: int) -> dict:
    from dataselect_cli import text

    path = DATA / f"hash_{n}.jsonl"
    if not path.exists():
        write_jsonl(zipf_docs(n), path)
    texts = pa.array(zipf_docs(n))
    cli("embed", str(path), "-o", str(DATA / "hash_emb.parquet"), "--text-column", "text", "-q")  # warm the page cache
    wall = min(cli("embed", str(path), "-o", str(DATA / "hash_emb.parquet"), "--text-column", "text", "-q")
               for _ in range(2))
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    t0 = time.perf_counter()
    df = np.zeros(text.N_BUCKETS, np.int64)
    for s in range(0, n, 8192):
        df += text.document_frequency(text.featurize(texts.slice(s, 8192)))
    idf = text.idf_weights(df, n)
    t1 = time.perf_counter()
    for s in range(0, n, 8192):
        text.hash_embed(text.featurize(texts.slice(s, 8192)), idf, 0, 256)
    t2 = time.perf_counter()
    return {"docs": n, "bytes": path.stat().st_size, "cli_seconds": wall, "cli_docs_per_s": n / wall,
            "cli_peak_rss_mb": rss, "core_pass1_seconds": t1 - t0, "core_pass2_seconds": t2 - t1,
            "core_docs_per_s": n / (t2 - t0)}


def bench_minilm(m: int, reps: int) -> dict:
    from dataselect_cli import api, encoders

    texts = english_sentences(m)
    path = DATA / f"minilm_{m}.jsonl"
    write_jsonl(texts, path)
    encoders.ModelEncoder("minilm")  # imports sentence-transformers and torch once, offline, before any timing
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as tf_logging

    tf_logging.disable_progress_bar()
    model_dir = encoders.resolve_model("minilm")
    SentenceTransformer(model_dir, device="cpu").encode(texts[:256], batch_size=encoders.MODEL_BATCH)  # warm-up
    direct, ours = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        model = SentenceTransformer(model_dir, device="cpu")
        ref = model.encode(texts, batch_size=encoders.MODEL_BATCH, normalize_embeddings=True)
        direct.append(time.perf_counter() - t0)
        encoders._load.cache_clear()  # load the model inside the timed call, as the direct side does
        t0 = time.perf_counter()
        api.embed_text_file(str(path), str(DATA / "minilm_emb.parquet"), text_column="text", model="minilm")
        ours.append(time.perf_counter() - t0)
    import pyarrow.parquet as pq

    t = pq.read_table(DATA / "minilm_emb.parquet")
    got = np.asarray(t.column("embedding").combine_chunks().flatten()).reshape(t.num_rows, -1)
    wall = cli("embed", str(path), "-o", str(DATA / "minilm_emb_cli.parquet"), "--text-column", "text",
               "--model", "minilm", "-q")
    import torch

    return {"docs": m, "reps": reps, "direct_seconds": direct, "dataselect_seconds": ours,
            "direct_docs_per_s": m / min(direct), "dataselect_docs_per_s": m / min(ours),
            "ratio": min(direct) / min(ours),
            "ratio_median_of_pairs": float(np.median(np.array(direct) / np.array(ours))),
            "max_abs_diff_vs_direct": float(np.abs(got - ref).max()),
            "cli_end_to_end_seconds": wall, "cli_end_to_end_docs_per_s": m / wall,
            "torch_threads": torch.get_num_threads()}


def report_hash(res: dict, n: int) -> None:
    res["hash"] = h = bench_hash(n)
    print(f"hash encoder, {h['docs']:,} documents ({h['bytes'] / 1e6:.1f} MB of .jsonl):")
    print(f"  dataselect embed (CLI, end to end, both passes): {h['cli_seconds']:.2f} s = "
          f"{h['cli_docs_per_s']:,.0f} docs/s, peak RSS {h['cli_peak_rss_mb']:.0f} MB")
    print(f"  featuriser + encoder alone (in process): {h['core_docs_per_s']:,.0f} docs/s "
          f"(pass 1 {h['core_pass1_seconds']:.2f} s, pass 2 {h['core_pass2_seconds']:.2f} s)")


def report_minilm(res: dict, n: int, reps: int) -> None:
    res["minilm"] = m = bench_minilm(n, reps)
    print(f"MiniLM (all-MiniLM-L6-v2, CPU, {m['torch_threads']} threads), {m['docs']:,} sentences, "
          f"best of {m['reps']}:")
    print(f"  SentenceTransformer.encode directly: {m['direct_docs_per_s']:,.1f} docs/s "
          f"(times {', '.join(f'{s:.1f}' for s in m['direct_seconds'])} s)")
    print(f"  dataselect embed --model minilm (api): {m['dataselect_docs_per_s']:,.1f} docs/s "
          f"(times {', '.join(f'{s:.1f}' for s in m['dataselect_seconds'])} s)")
    print(f"  throughput ratio dataselect / direct: {m['ratio']:.3f} best vs best, "
          f"{m['ratio_median_of_pairs']:.3f} median of the interleaved pairs (aim >= 0.95); "
          f"largest difference of the vectors {m['max_abs_diff_vs_direct']:.1e}")
    print(f"  CLI end to end (interpreter, torch import, model load, both passes): "
          f"{m['cli_end_to_end_seconds']:.1f} s = {m['cli_end_to_end_docs_per_s']:,.1f} docs/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="documents for the hash encoder")
    ap.add_argument("--minilm-n", type=int, default=5_000, help="documents for MiniLM")
    ap.add_argument("--reps", type=int, default=2, help="MiniLM timings per side (interleaved; best counts)")
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--skip-hash", action="store_true")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    saved = DATA / "bench_text.json"
    res = json.loads(saved.read_text()) if saved.exists() else {}  # a --skip-… run keeps the other figures
    res["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                      "load_average_at_start": os.getloadavg()}
    if not args.skip_hash:
        report_hash(res, args.n)
    if not args.skip_minilm:
        report_minilm(res, args.minilm_n, args.reps)
    res["machine"]["load_average_at_end"] = os.getloadavg()
    saved.write_text(json.dumps(res, indent=2))
    print(f"load average at start / end: {res['machine']['load_average_at_start'][0]:.2f} / "
          f"{res['machine']['load_average_at_end'][0]:.2f} on {res['machine']['cpus']} CPUs")


if __name__ == "__main__":
    main()

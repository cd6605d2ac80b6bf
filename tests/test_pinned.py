"""Refactoring guard: the data columns of every output of the demo pipeline and of one-step runs are pinned.

The digests in ``pinned_outputs.json`` were taken before the architecture change (issue 11:
designs and score methods as pieces of their own) and must not move: the change moves code, not
results. The default design has since become ``auto`` (issue 12), so the runs name ``--design iid``,
the default they were taken with. Metadata is left out (it names the design and method now), and so are the text
reports, whose numbers are pinned to 12 significant digits instead of by bytes.

To re-pin after a change that *means* to alter results, run ``python tests/test_pinned.py`` and
say why in the commit.

Integer, boolean and text columns are pinned by their bytes. Floating-point columns are pinned by a
signature compared to a relative 1e-9 (:func:`float_signature`), not by their bytes: numpy's SIMD loops
(exp, log) and OpenBLAS's kernels differ in the last bits from one CPU to the next (an AVX-512 machine
gives other bits than an AVX2 one for the same code), and the sample data's oracle goes through both. The
signatures were taken where the former byte digests still held: on an AVX-512 machine with
``NPY_DISABLE_CPU_FEATURES=X86_V4 OPENBLAS_CORETYPE=Zen``, every column's bytes equalled the pins of
before, so the signatures pin the same results.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clirun import run

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
PINNED = Path(__file__).with_name("pinned_outputs.json")


#: Relative tolerance of a floating-point column's signature (last-bit differences between CPUs are ~1e-16).
FLOAT_RTOL = 1e-9


def float_signature(values: np.ndarray) -> dict:
    """A floating-point column's signature: its length, where it is not finite (sha256), and over the finite
    values Σx, Σx² and six projections on fixed pseudo-random weights in [−1, 1], each with its scale (Σ|x|,
    or Σx² for Σx²). Any change of the values above rounding moves one by more than :data:`FLOAT_RTOL`·scale."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    v = np.where(finite, x, 0.0)
    w = np.random.default_rng(20261201).uniform(-1.0, 1.0, size=(6, len(v)))
    abs_sum, sq_sum = float(np.abs(v).sum()), float((v * v).sum())
    return {"n": int(len(x)),
            "nonfinite": hashlib.sha256(np.packbits(~finite).tobytes() + x[~finite].tobytes()).hexdigest(),
            "projections": [float(v.sum()), sq_sum, *(float(p) for p in w @ v)],
            "scales": [abs_sum, sq_sum, *[abs_sum] * 6]}


def column_digest(col: pa.ChunkedArray) -> str | dict:
    """A column's pin: sha256 of its type and values (integers and booleans by their bytes, anything
    else but floats by its JSON), or for floating-point values the type's hash and :func:`float_signature`."""
    col = col.combine_chunks()
    h = hashlib.sha256(str(col.type).encode())
    if pa.types.is_fixed_size_list(col.type):
        col = col.flatten()
    if pa.types.is_floating(col.type):
        return {"type": h.hexdigest(), **float_signature(col.to_numpy(zero_copy_only=False))}
    if pa.types.is_integer(col.type) or pa.types.is_boolean(col.type):
        h.update(np.ascontiguousarray(col.to_numpy(zero_copy_only=False)).tobytes())
    else:
        h.update(json.dumps(col.to_pylist()).encode())
    return h.hexdigest()


def same_column(got: str | dict, want: str | dict) -> bool:
    """Whether a column's pin holds: hashes equal, or float signatures within :data:`FLOAT_RTOL` of their scales."""
    if isinstance(want, str) or isinstance(got, str):
        return got == want
    if any(got[key] != want[key] for key in ("type", "n", "nonfinite")):
        return False
    return all(abs(g - w) <= FLOAT_RTOL * scale
               for g, w, scale in zip(got["projections"], want["projections"], want["scales"], strict=True))


def table_digests(path: Path) -> dict[str, str | dict]:
    t = pq.read_table(path)
    return {name: column_digest(t.column(name)) for name in t.column_names}


def _numbers(obj, prefix=""):
    """Every number of a JSON report, keyed by its path, rounded to 12 significant digits."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_numbers(v, f"{prefix}.{k}"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(_numbers(v, f"{prefix}[{i}]"))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix] = float(f"{obj:.12g}")
    return out


def oracle(*args) -> None:
    subprocess.run([sys.executable, str(SAMPLE / "oracle.py"), *map(str, args)], check=True, capture_output=True)


def produce(out: Path) -> dict:
    """Run the demo pipeline and two one-step samples into ``out``; return the digests."""
    run("embed", SAMPLE / "digits_vectors.npy", "-o", out / "emb.parquet", "--normalize", "-q")
    run("cluster", out / "emb.parquet", "-o", out / "clusters.parquet", "--k", 40, "--probes", 4, "--seed", 0, "-q")
    oracle("--centers", out / "clusters.centers.parquet", "--probes", out / "clusters.parquet",
           "-o", out / "center_losses.parquet")
    run("score", out / "clusters.parquet", "--losses", out / "center_losses.parquet", "--estimate-lambda",
        "-o", out / "scores.parquet", "-q")
    run("sample", out / "scores.parquet", "--eps", 0.1, "--seed", 0, "--design", "iid", "-o", out / "selected.parquet",
        "--report", out / "report.json", "-q")
    oracle("--ids", out / "selected.parquet", "-o", out / "selected_losses.parquet")
    run("estimate", out / "selected.parquet", "--losses", out / "selected_losses.parquet", "--loss-max", 20,
        "--report", out / "estimate.json", "-q")
    run("apply", out / "selected.parquet", SAMPLE / "digits.parquet", "-o", out / "subset.parquet", "-q")
    run("sample", "--k", 40, "--eps", 0.1, "--design", "iid", out / "emb.parquet", "-o", out / "onestep.parquet",
        "--keep-intermediate", out / "onestep", "-q")
    run("sample", "--k", 40, "--size", 300, "--seed", 0, "--design", "iid", "--losses", out / "center_losses.parquet",
        "--lambda", 0.5, out / "emb.parquet", "-o", out / "onestep_cl.parquet", "-q")
    run("score", out / "clusters.parquet", "-o", out / "scores_noloss.parquet", "-q")
    tables = ["emb", "clusters", "clusters.centers", "scores", "selected", "subset", "onestep",
              "onestep/clusters", "onestep/clusters.centers", "onestep/scores", "onestep_cl", "scores_noloss"]
    digests = {name: table_digests(out / f"{name}.parquet") for name in tables}
    # the inputs' fingerprints (file sizes among them) are the bytes of float columns, not results
    digests["estimate.json"] = {k: v for k, v in _numbers(json.loads((out / "estimate.json").read_text())).items()
                                if not k.startswith(".dataselect.inputs.")}
    report = json.loads((out / "report.json").read_text())
    digests["report.json"] = {k: v for k, v in _numbers(report).items()
                              if not k.startswith((".clustering", ".params"))}
    return digests


def test_outputs_are_unchanged(tmp_path):
    got = produce(tmp_path)
    want = json.loads(PINNED.read_text())
    for name, digest in want.items():
        if name.endswith(".json"):
            for key, value in digest.items():
                assert key in got[name], f"{name}: {key} is no longer reported"
                np.testing.assert_allclose(got[name][key], value, rtol=1e-10, err_msg=f"{name}: {key}")
        else:
            assert set(got[name]) == set(digest), f"{name}.parquet: other columns"
            changed = [c for c in digest if not same_column(got[name][c], digest[c])]
            assert not changed, f"{name}.parquet: the data columns {changed} changed"


if __name__ == "__main__":  # re-pin (see the module docstring)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        PINNED.write_text(json.dumps(produce(Path(d)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINNED}")

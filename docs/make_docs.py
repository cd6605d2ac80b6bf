"""Regenerate docs/evaluate/ and docs/sample/: `dataselect evaluate` and `sample --report-html` on two real data sets.

Both data sets ship inside scikit-learn (no download):

* digits (classification): 1,797 handwritten digits, 8×8 pixels, 10 classes (UCI, via sklearn.datasets.load_digits);
* diabetes (regression): 442 patients, 10 baseline variables, a disease-progression score one year later
  (Efron et al. 2004, via sklearn.datasets.load_diabetes).

The embeddings are the feature vectors, standardised (zero mean, unit variance per column; constant
columns stay 0). The script writes them under out/docs/ and then runs the commands that the README
shows, printing each one. Run: make docs (it installs the bench extra, for scikit-learn).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_diabetes, load_digits

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "out" / "docs"


def standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def write_embeddings(path: Path, x: np.ndarray, **columns) -> None:
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
    pq.write_table(pa.table({"id": pa.array(np.arange(len(x), dtype=np.int64)), "embedding": emb, **columns}), path)


def sh(*args: str) -> None:
    print("$ dataselect " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run([sys.executable, "-m", "dataselect_cli", *args], check=True, cwd=ROOT)


def real_sets() -> None:
    """digits.parquet and diabetes.parquet under out/docs/: standardised features, the label or target beside."""
    WORK.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    write_embeddings(WORK / "digits.parquet", standardise(digits.data), label=pa.array(digits.target.astype(np.int64)))
    diabetes = load_diabetes()
    write_embeddings(WORK / "diabetes.parquet", standardise(diabetes.data), target=pa.array(diabetes.target))


def main() -> None:
    real_sets()
    rel = lambda p: str(p.relative_to(ROOT))  # noqa: E731
    sh("evaluate", rel(WORK / "digits.parquet"), "--label", "label", "--budgets", "0.02,0.05,0.1,0.2",
       "--repeats", "50", "-o", "docs/evaluate/digits", "-q")
    sh("evaluate", rel(WORK / "diabetes.parquet"), "--target", "target", "--budgets", "20,40,80,160",
       "--repeats", "50", "-o", "docs/evaluate/diabetes", "-q")
    (ROOT / "docs" / "sample").mkdir(exist_ok=True)
    sh("sample", "--k", "40", "--eps", "0.1", rel(WORK / "digits.parquet"), "-o", rel(WORK / "selected.parquet"),
       "--report-html", "docs/sample/digits_selection.html", "-q")


if __name__ == "__main__":
    main()

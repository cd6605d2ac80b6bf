#!/usr/bin/env bash
# The whole method on sample_data/ (1,797 handwritten digits). Run by `make demo`.
# Usage: sample_data/demo.sh BIN_DIR OUT_DIR
set -euo pipefail
BIN=${1:-.venv/bin}
OUT=${2:-out}
DS="$BIN/dataselect"
PY="$BIN/python"
mkdir -p "$OUT"
# print a command as it could be typed (an argument with spaces in double quotes), then run it
step() {
    local shown="" arg
    for arg in "$@"; do case "$arg" in *" "*) shown+=" \"$arg\"" ;; *) shown+=" $arg" ;; esac; done
    printf '\n\033[1m$%s\033[0m\n' "$shown"
    "$@"
}

step "$DS" embed sample_data/digits_vectors.npy -o "$OUT/emb.parquet" --normalize
# One command: cluster, ask the scorer (your model) for the losses of the 40 center rows and of 4 probe
# rows per cluster, score, draw, ask it for the selected rows' losses, and estimate the mean loss.
step "$DS" sample "$OUT/emb.parquet" --k 40 --probes 4 --eps 0.1 --seed 0 \
    --loss-command "$PY sample_data/score_rows.py {in} {out}" --data sample_data/digits.parquet \
    --estimate --loss-max 20 -o "$OUT/selected.parquet" --report "$OUT/report.json" --report-md "$OUT/report.md"
step "$DS" apply "$OUT/selected.parquet" sample_data/digits.parquet -o "$OUT/subset.parquet"
# the truth, which a real user never pays for: every row's loss
step "$PY" sample_data/oracle.py --all -o "$OUT/all_losses.parquet"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
import pyarrow.parquet as pq
out = sys.argv[1]
true = pq.read_table(f"{out}/all_losses.parquet").column("loss").to_numpy().mean()
rep = json.load(open(f"{out}/report.json"))
est, asked = rep["estimate"], rep["oracle"]
print(f"\n{asked['queries']} losses asked of the scorer: " + ", ".join(f"{q['ids']} {q['purpose']}" for q in asked["by_purpose"]))
print(f"true mean loss over all rows: {true:.4f}; estimated from {est['rows']} selected rows: {est['estimate_mean']:.4f}")
for key in ("paper_interval", "clt_interval", "bootstrap_interval", "bernstein_interval"):
    iv = est.get(key)
    if iv:
        print(f"  {iv['kind']}: [{iv['low']:.4f}, {iv['high']:.4f}] covers the truth: {iv['low'] <= true <= iv['high']}")
PYEOF

# The same method step by step, for losses computed elsewhere (a batch job, another machine): every
# intermediate file, and the losses handed over as files. Same seed, same rows, same selection.
step "$DS" cluster "$OUT/emb.parquet" -o "$OUT/clusters.parquet" --k 40 --probes 4 --seed 0 -q
step "$PY" sample_data/oracle.py --centers "$OUT/clusters.centers.parquet" --probes "$OUT/clusters.parquet" -o "$OUT/center_losses.parquet"
step "$DS" score "$OUT/clusters.parquet" --losses "$OUT/center_losses.parquet" -o "$OUT/scores.parquet" -q
step "$DS" sample "$OUT/scores.parquet" --eps 0.1 --seed 0 -o "$OUT/selected_by_steps.parquet" -q
step "$PY" sample_data/oracle.py --ids "$OUT/selected_by_steps.parquet" -o "$OUT/selected_losses.parquet"
step "$DS" estimate "$OUT/selected_by_steps.parquet" --losses "$OUT/selected_losses.parquet" --loss-max 20 --report "$OUT/estimate.json"
"$PY" - "$OUT" <<'PYEOF'
import sys
import pyarrow.parquet as pq
out = sys.argv[1]
cols = ["id", "count", "weight"]
same = pq.read_table(f"{out}/selected.parquet", columns=cols).equals(pq.read_table(f"{out}/selected_by_steps.parquet", columns=cols))
print(f"\nthe steps drew the same selection as the one command: {same}")
PYEOF
printf '\nOutputs are in %s/: emb, selected, report.md/json, subset.parquet; by steps: clusters(+centers), scores, selected_by_steps, estimate.json\n' "$OUT"

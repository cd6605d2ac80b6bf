#!/usr/bin/env bash
# The whole pipeline on sample_data/ (1,797 handwritten digits). Run by `make demo`.
# Usage: sample_data/demo.sh BIN_DIR OUT_DIR
set -euo pipefail
BIN=${1:-.venv/bin}
OUT=${2:-out}
DS="$BIN/dataselect"
PY="$BIN/python"
mkdir -p "$OUT"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step "$DS" embed sample_data/digits_vectors.npy -o "$OUT/emb.parquet" --normalize
step "$DS" cluster "$OUT/emb.parquet" -o "$OUT/clusters.parquet" --k 40 --probes 4 --seed 0
step "$DS" show "$OUT/clusters.centers.parquet"
# your model computes the losses of the 40 center rows and of the 4 probe rows per cluster
step "$PY" sample_data/oracle.py --centers "$OUT/clusters.centers.parquet" --probes "$OUT/clusters.parquet" -o "$OUT/center_losses.parquet"
step "$DS" score "$OUT/clusters.parquet" --losses "$OUT/center_losses.parquet" --estimate-lambda -o "$OUT/scores.parquet"
step "$DS" sample "$OUT/scores.parquet" --eps 0.1 --seed 0 -o "$OUT/selected.parquet" --report "$OUT/report.json" --report-md "$OUT/report.md"
# your model computes the losses of the selected rows
step "$PY" sample_data/oracle.py --ids "$OUT/selected.parquet" -o "$OUT/selected_losses.parquet"
step "$DS" estimate "$OUT/selected.parquet" --losses "$OUT/selected_losses.parquet" --loss-max 20 --report "$OUT/estimate.json"
step "$DS" apply "$OUT/selected.parquet" sample_data/digits.parquet -o "$OUT/subset.parquet"
# the truth, which a real user never pays for: every row's loss
step "$PY" sample_data/oracle.py --all -o "$OUT/all_losses.parquet"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
import pyarrow.parquet as pq
out = sys.argv[1]
true = pq.read_table(f"{out}/all_losses.parquet").column("loss").to_numpy().mean()
est = json.load(open(f"{out}/estimate.json"))
print(f"\ntrue mean loss over all rows: {true:.4f}; estimated from {est['rows']} selected rows: {est['estimate_mean']:.4f}")
for key in ("paper_interval", "clt_interval", "bootstrap_interval", "bernstein_interval"):
    iv = est.get(key)
    if iv:
        print(f"  {iv['kind']}: [{iv['low']:.4f}, {iv['high']:.4f}] covers the truth: {iv['low'] <= true <= iv['high']}")
ma = est.get("model_assisted")
if ma:
    print(f"model-assisted (GREG): {ma['estimate_mean']:.4f}, std. error {ma['std_error_mean']:.4f}")
PYEOF
step "$DS" sample --k 40 --eps 0.1 "$OUT/emb.parquet" -o "$OUT/selected_onestep.parquet" --keep-intermediate "$OUT/onestep" -q
printf '\nOutputs are in %s/: emb, clusters(+centers), scores, selected, report.md/json, estimate.json, subset.parquet\n' "$OUT"

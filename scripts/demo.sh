#!/usr/bin/env bash
# The main job on the built-in dataset: preprocess shapes -> fit -> caption a few test images -> eval on test.
# The last line printed is the test metrics as one JSON object. DEMO_SEED picks the fit's seed (default 0).
set -euo pipefail
OUT=${DEMO_OUT:-runs/demo}
SEED=${DEMO_SEED:-0}
MM=${MMTRAIN:-.venv/bin/mmtrain}
start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start ))s)" >&2; }

step "preprocess: generate the shapes dataset as a COCO download and build the store"
$MM preprocess data=shapes data.root="$OUT/raw" out="$OUT/data" >&2
step "fit"
$MM fit experiment=shapes_demo seed="$SEED" data.store="$OUT/data" out="$OUT/fit" >&2
ckpt="$OUT/fit/checkpoints/best.ckpt"
step "caption 8 test images"
ls "$PWD/$OUT"/raw/test2017/*.jpg | sed -n '1,8p' > "$OUT/caption_inputs.txt"
$MM caption ckpt="$ckpt" inputs="[$OUT/caption_inputs.txt]" out="$OUT/caption" >&2
step "eval on test"
$MM eval ckpt="$ckpt" split=test out="$OUT/eval" bootstrap=200 meteor=false >&2
step "done: $OUT/eval/metrics.json"
.venv/bin/python -c "import json,sys; m=json.load(open(sys.argv[1])); print(json.dumps({k: round(v, 4) for k, v in m.items() if isinstance(v, float)}))" "$OUT/eval/metrics.json"

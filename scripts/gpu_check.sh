#!/usr/bin/env bash
# GPU check through the CLI, sized to finish within 8 minutes on one H200; prints one JSON object (last line).
#
#   1. env        torch, CUDA, GPU names (mmtrain.runinfo.run_stamp after importing torch)
#   2. preprocess the shapes dataset resized to 224 px
#   3. XE         bf16 training of a ViT-S/16 encoder (vit_small_patch16_224, random init) + cross-attention
#                 6-layer decoder at batch 256. Samples/s come from two runs, WARMUP_STEPS and WARMUP_STEPS+STEPS
#                 long: the difference of their wall times is the time of STEPS steady steps, free of start-up,
#                 model building and the first CUDA kernels. Both runs save one checkpoint, so that cancels too.
#   4. SCST       SCST_STEPS self-critical steps from the XE checkpoint (a check that it runs, with a rough rate)
#   5. caption    beam search (BEAMS beams) over CAPTION_IMAGES images, again as the difference of two runs
#   6. fsdp       10 steps with trainer=fsdp on one GPU, validation included, and the checkpoint loaded back
#
# Every stage has a time limit and the whole run a budget (BUDGET_S); a stage that fails or runs out of time is
# recorded in the JSON ("stages") and the stages that need its output are skipped. Logs: $OUT/logs/STAGE.log.
# Knobs (environment): GPU_CHECK_OUT MMTRAIN PYTHON BATCH STEPS WARMUP_STEPS CAPTIONS_PER_IMAGE WORKERS
#   TRAIN_IMAGES SCST_STEPS SCST_BATCH BEAMS CAPTION_IMAGES CAPTION_BATCH BUDGET_S FSDP (0 skips stage 6)
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

OUT=${GPU_CHECK_OUT:-runs/gpu_check}
MM=${MMTRAIN:-.venv/bin/mmtrain}
PY=${PYTHON:-.venv/bin/python}
BATCH=${BATCH:-256}
STEPS=${STEPS:-100}
WARMUP_STEPS=${WARMUP_STEPS:-20}
CAPTIONS_PER_IMAGE=${CAPTIONS_PER_IMAGE:-1}
WORKERS=${WORKERS:-8}
TRAIN_IMAGES=${TRAIN_IMAGES:-12000}
SCST_STEPS=${SCST_STEPS:-30}
SCST_BATCH=${SCST_BATCH:-64}
BEAMS=${BEAMS:-5}
CAPTION_IMAGES=${CAPTION_IMAGES:-1000}
CAPTION_BATCH=${CAPTION_BATCH:-128}
BUDGET_S=${BUDGET_S:-450}
FSDP=${FSDP:-1}

mkdir -p "$OUT/logs"
STAGES=$OUT/stages.tsv
: >"$STAGES"
START=$(date +%s)
say() { echo "gpu_check: $* ($(($(date +%s) - START))s)" >&2; }

# stage NAME LIMIT_S CMD...: run CMD (output in logs/NAME.log) under the smaller of LIMIT_S and the budget left;
# append "NAME status wall_s" to stages.tsv; return CMD's status.
stage() {
  local name=$1 limit=$2 left t0 t1 rc=0 status=ok
  shift 2
  left=$((BUDGET_S - ($(date +%s) - START)))
  if ((left < 30)); then
    printf '%s\tskipped: budget spent\t0\n' "$name" >>"$STAGES"
    say "$name skipped: budget spent"
    return 1
  fi
  ((limit > left)) && limit=$left
  say "$name (limit ${limit}s)"
  t0=$(date +%s.%N)
  timeout --kill-after=20 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  if ((rc == 124 || rc == 137)); then
    status="timeout after ${limit}s"
  elif ((rc != 0)); then
    status="failed: exit $rc"
  fi
  printf '%s\t%s\t%s\n' "$name" "$status" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" >>"$STAGES"
  [[ $status == ok ]] || say "$name $status; see $OUT/logs/$name.log"
  return "$rc"
}
skip() { printf '%s\tskipped: %s\t0\n' "$1" "$2" >>"$STAGES"; }

STORE=$OUT/store
RAW=$OUT/raw
MODEL=(
  encoder=vit_b16 encoder.model_name=vit_small_patch16_224 encoder.pretrained=false
  fusion=cross_attention decoder=base data.resize.size=224
)
FIT=(data=shapes "data.store=$STORE" "${MODEL[@]}" "datamodule.num_workers=$WORKERS" trainer.log_every_n_steps=10)
NO_VAL=(trainer.val_check_interval=1000000 trainer.limit_val_batches=0)

stage env 90 "$PY" - <<'PY' || true
import json
import torch
from mmtrain.runinfo import run_stamp

stamp = run_stamp(extra={"check": "gpu_check.sh"})
print(json.dumps({
    "torch": torch.__version__,
    "cuda_available": torch.cuda.is_available(),
    "bf16_supported": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    "gpus": stamp["hardware"]["gpus"],
    "cpu": stamp["hardware"]["cpu"],
    "cpu_count": stamp["hardware"]["cpu_count"],
    "git": stamp["code"]["git"],
    "packages": stamp["packages"],
}))
PY

PREPROCESSED=0
if stage preprocess 150 "$MM" preprocess data=shapes "data.root=$RAW" "out=$STORE" data.resize.size=224 \
  "data.source.prepare.splits={train:$TRAIN_IMAGES,val:250,test:500}" num_workers=0; then
  PREPROCESSED=1
fi

XE_OK=0
if ((PREPROCESSED)); then
  TRAIN=("${FIT[@]}" trainer=gpu "${NO_VAL[@]}" "datamodule.batch_size=$BATCH"
    "datamodule.captions_per_image=$CAPTIONS_PER_IMAGE" optim.warmup_steps=10)
  if stage xe_warmup 120 "$MM" fit "${TRAIN[@]}" "trainer.max_steps=$WARMUP_STEPS" \
    "checkpoint_every_n_steps=$WARMUP_STEPS" "out=$OUT/xe_warmup"; then
    TOTAL=$((WARMUP_STEPS + STEPS))
    if stage xe 150 "$MM" fit "${TRAIN[@]}" "trainer.max_steps=$TOTAL" "checkpoint_every_n_steps=$TOTAL" \
      "out=$OUT/xe"; then
      XE_OK=1
    fi
  else
    skip xe "xe_warmup failed"
  fi
else
  skip xe_warmup "no store"
  skip xe "no store"
fi

CKPT=
if ((XE_OK)); then
  CKPT=$OUT/xe/checkpoints/last.ckpt
  if stage scst 150 "$MM" fit "${FIT[@]}" trainer=gpu "${NO_VAL[@]}" objective=scst "init_from=$CKPT" \
    "trainer.max_steps=$SCST_STEPS" "checkpoint_every_n_steps=$SCST_STEPS" "datamodule.batch_size=$SCST_BATCH" \
    datamodule.captions_per_image=1 optim.lr=1.0e-5 optim.warmup_steps=0 optim.min_lr_ratio=1.0 \
    "out=$OUT/scst"; then
    CKPT=$OUT/scst/checkpoints/last.ckpt
  fi
else
  skip scst "no XE checkpoint"
fi

CAPTION_DEVICE=cpu
if [[ -n $CKPT ]]; then
  find "$RAW/train2017" -name '*.jpg' | sort >"$OUT/train_images.txt" # whole, so no writer dies of SIGPIPE
  head -n 64 "$OUT/train_images.txt" >"$OUT/caption_small.txt"
  head -n $((64 + CAPTION_IMAGES)) "$OUT/train_images.txt" >"$OUT/caption_large.txt"
  CAPTION=("ckpt=$CKPT" decoding=beam3 "decoding.num_beams=$BEAMS" "batch_size=$CAPTION_BATCH" table=false)
  # mmtrain caption runs on the CPU unless it has a device option; use the GPU when it has one.
  if "$MM" caption --cfg job ckpt=x 'inputs=[x]' 2>/dev/null | grep -qE '^device:'; then
    CAPTION+=(device=cuda)
    CAPTION_DEVICE=cuda
  fi
  if stage caption_small 90 "$MM" caption "${CAPTION[@]}" "inputs=[$OUT/caption_small.txt]" \
    "out=$OUT/caption_small"; then
    stage caption 150 "$MM" caption "${CAPTION[@]}" "inputs=[$OUT/caption_large.txt]" "out=$OUT/caption" || true
  else
    skip caption "caption_small failed"
  fi
else
  skip caption_small "no checkpoint"
  skip caption "no checkpoint"
fi

if [[ $FSDP != 1 ]]; then
  skip fsdp "not requested"
elif ((PREPROCESSED)); then
  if stage fsdp 120 "$MM" fit "${FIT[@]}" trainer=fsdp trainer.devices=1 trainer.max_steps=10 \
    trainer.val_check_interval=10 trainer.limit_val_batches=1 datamodule.batch_size=32 \
    datamodule.eval_batch_size=32 checkpoint_every_n_steps=10 "out=$OUT/fsdp"; then
    stage fsdp_load 60 "$PY" -c 'import sys; from mmtrain.models.loading import load_model; load_model(sys.argv[1])' \
      "$OUT/fsdp/checkpoints/last.ckpt" || true
  fi
else
  skip fsdp "no store"
fi

say "done; writing $OUT/gpu_check.json"
"$PY" - "$OUT" "$BATCH" "$STEPS" "$WARMUP_STEPS" "$CAPTIONS_PER_IMAGE" "$SCST_STEPS" "$SCST_BATCH" "$BEAMS" \
  "$CAPTION_IMAGES" "$CAPTION_DEVICE" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
batch, steps, warmup, captions, scst_steps, scst_batch, beams, n_caption = map(int, sys.argv[2:10])
caption_device = sys.argv[10]
stages = {}
for line in (out / "stages.tsv").read_text().splitlines():
    name, status, wall = line.split("\t")
    stages[name] = {"status": status, "wall_s": float(wall)}


def ok(*names):
    return all(stages.get(n, {}).get("status") == "ok" for n in names)


def summary(run):
    path = out / run / "fit_summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def wall(name):
    return stages[name]["wall_s"]


report = {"stages": stages}
env_log = out / "logs" / "env.log"
if ok("env"):
    lines = [line for line in env_log.read_text().splitlines() if line.startswith("{")]
    report["env"] = json.loads(lines[-1]) if lines else None
startup_s = None
if ok("xe_warmup", "xe"):
    steady = wall("xe") - wall("xe_warmup")
    step_s = steady / steps
    startup_s = wall("xe_warmup") - warmup * step_s
    xe = summary("xe")
    report["xe"] = {
        "encoder": "vit_small_patch16_224",
        "image_size": 224,
        "precision": "bf16-mixed",
        "batch_size": batch,
        "captions_per_image": captions,
        "steps_timed": steps,
        "step_s": round(step_s, 4),
        "images_per_s": round(batch / step_s, 1),
        "captions_per_s": round(batch * captions / step_s, 1),
        "startup_s": round(startup_s, 1),
        "global_step": xe.get("global_step"),
        "train_loss": xe.get("metrics", {}).get("train/loss"),
    }
if ok("scst"):
    scst = summary("scst")
    net = wall("scst") - startup_s if startup_s is not None else None
    report["scst"] = {
        "steps": scst_steps,
        "batch_size": scst_batch,
        "wall_s": wall("scst"),
        "images_per_s_estimate": round(scst_steps * scst_batch / net, 1) if net and net > 0 else None,
        "estimate_note": "wall time less the XE run's start-up time",
        "global_step": scst.get("global_step"),
        "metrics": {k: v for k, v in scst.get("metrics", {}).items() if k.startswith("train/")},
    }
if ok("caption_small", "caption"):
    rows = sum(1 for _ in open(out / "caption" / "captions.jsonl"))
    report["caption"] = {
        "beams": beams,
        "device": caption_device,
        "images": n_caption,
        "captioned": rows,
        "images_per_s": round(n_caption / (wall("caption") - wall("caption_small")), 1),
    }
if not stages.get("fsdp", {"status": "skipped"})["status"].startswith("skipped"):
    fsdp = summary("fsdp")
    report["fsdp"] = {
        "trained_and_validated": ok("fsdp") and "val/CIDEr" in fsdp.get("metrics", {}),
        "checkpoint_loads": ok("fsdp_load"),
    }
report["ok"] = all(s["status"] in ("ok", "skipped: not requested") for s in stages.values())
text = json.dumps(report)
(out / "gpu_check.json").write_text(text + "\n")
print(text)
PY

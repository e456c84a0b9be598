#!/usr/bin/env bash
# GPU check through the CLI, sized to finish within 10 minutes on one H200; prints one JSON object (last line).
#
#   1. env        torch, CUDA, GPU names (mmtrain.runinfo.run_stamp after importing torch)
#   2. preprocess the shapes dataset resized to 224 px into a JPEG store (image_format=jpeg, quality 90)
#   3. XE         bf16 training at batch 256 of each encoder in MODELS (ViT-S/16 and ViT-B/16, random init) with a
#                 cross-attention 6-layer decoder, the store read, decoded and tokenized by WORKERS loader workers.
#                 Images/s come from two runs, WARMUP_STEPS and WARMUP_STEPS+STEPS long: the difference of their
#                 wall times is the time of STEPS steady steps, free of start-up, model building and the first
#                 CUDA kernels. Both runs save one checkpoint, so that cancels too.
#   4. resident   per encoder, the same model, batch and precision fed one batch kept in GPU memory (no loader):
#                 images/s for the ratio fit / resident; the loader alone (WORKERS workers, no model) in images/s;
#                 and a torch.profiler summary of one step (top CUDA ops, the GPU-busy share of the step) with the
#                 verdict of what bounds the fit step: the loader, the host (launches, Python), or the GPU.
#   5. SCST       SCST_STEPS self-critical steps from the first XE checkpoint (a check that it runs, a rough rate)
#   6. caption    beam search (BEAMS beams) on the GPU over CAPTION_IMAGES images, again as the difference of two
#                 runs; images decoded by WORKERS caption workers
#   7. fsdp       10 steps with trainer=fsdp on one GPU, validation included, and the checkpoint loaded back
#   8. ddp        with more than one GPU: a direct 'mmtrain fit trainer=ddp trainer.devices=N' launch (no torchrun),
#                 DDP_STEPS steps; fit_summary.json must say world_size N
#
# Every stage has a time limit and the whole run a budget (BUDGET_S); a stage that fails or runs out of time is
# recorded in the JSON ("stages") and the stages that need its output are skipped. Logs: $OUT/logs/STAGE.log.
# --dry-run prints each stage's command instead of running it (no GPU needed) and still writes the JSON.
# Knobs (environment): GPU_CHECK_OUT MMTRAIN PYTHON MODELS BATCH STEPS WARMUP_STEPS CAPTIONS_PER_IMAGE WORKERS
#   TRAIN_IMAGES SCST_STEPS SCST_BATCH BEAMS CAPTION_IMAGES CAPTION_BATCH BUDGET_S FSDP (0 skips stage 7) DDP_STEPS
#   ACCEL (gpu) PRECISION (bf16-mixed) SIZE (224): ACCEL=cpu PRECISION=32-true SIZE=32 MODELS=vit_tiny_patch16_224
#   with small BATCH/STEPS/TRAIN_IMAGES runs every stage but fsdp/ddp on a CPU, to check the script itself.
set -euo pipefail

DRY_RUN=0
case ${1:-} in
-h | --help)
  sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
  ;;
--dry-run) DRY_RUN=1 ;;
"") ;;
*)
  echo "gpu_check.sh: unknown argument ${1}; use --help or --dry-run" >&2
  exit 2
  ;;
esac

OUT=${GPU_CHECK_OUT:-runs/gpu_check}
MM=${MMTRAIN:-.venv/bin/mmtrain}
PY=${PYTHON:-.venv/bin/python}
MODELS=${MODELS:-vit_small_patch16_224 vit_base_patch16_224}
read -r -a ENCODERS <<<"$MODELS"
ACCEL=${ACCEL:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
SIZE=${SIZE:-224}
DDP_STEPS=${DDP_STEPS:-20}
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
BUDGET_S=${BUDGET_S:-560}
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
  if ((DRY_RUN)); then
    printf '%q ' "$@" >"$OUT/logs/$name.log"
    echo >>"$OUT/logs/$name.log"
    echo "gpu_check: would run: $(cat "$OUT/logs/$name.log")" >&2
  else
    timeout --kill-after=20 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1 || rc=$?
  fi
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
model_args() { # model_args ENCODER: the model of every training stage
  echo encoder=vit_b16 "encoder.model_name=$1" encoder.pretrained=false fusion=cross_attention decoder=base \
    "data.resize.size=$SIZE"
}
short() { case $1 in vit_small*) echo vits16 ;; vit_base*) echo vitb16 ;; *) echo "${1%%_patch*}" ;; esac }
NO_VAL=(trainer.val_check_interval=1000000 trainer.limit_val_batches=0)
TRAINER=("trainer.accelerator=$ACCEL" "trainer.precision=$PRECISION")

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
if stage preprocess 150 "$MM" preprocess data=shapes "data.root=$RAW" "out=$STORE" "data.resize.size=$SIZE" \
  "data.source.prepare.splits={train:$TRAIN_IMAGES,val:250,test:500}" num_workers=auto image_format=jpeg \
  image_quality=90; then
  PREPROCESSED=1
fi

# Training: per encoder, fit through the loader workers, then the same model fed from GPU memory.
FIRST_CKPT=
for ENC in "${ENCODERS[@]}"; do
  TAG=$(short "$ENC")
  read -r -a MODEL <<<"$(model_args "$ENC")"
  FIT=(data=shapes "data.store=$STORE" "${MODEL[@]}" "datamodule.num_workers=$WORKERS" trainer.log_every_n_steps=10)
  TRAIN=("${FIT[@]}" trainer=gpu "${TRAINER[@]}" "${NO_VAL[@]}" "datamodule.batch_size=$BATCH"
    "datamodule.captions_per_image=$CAPTIONS_PER_IMAGE" optim.warmup_steps=10)
  if ((!PREPROCESSED)); then
    for s in "xe_${TAG}_warmup" "xe_$TAG" "resident_$TAG"; do skip "$s" "no store"; done
    continue
  fi
  if stage "xe_${TAG}_warmup" 120 "$MM" fit "${TRAIN[@]}" "trainer.max_steps=$WARMUP_STEPS" \
    "checkpoint_every_n_steps=$WARMUP_STEPS" "out=$OUT/xe_${TAG}_warmup"; then
    TOTAL=$((WARMUP_STEPS + STEPS))
    if stage "xe_$TAG" 150 "$MM" fit "${TRAIN[@]}" "trainer.max_steps=$TOTAL" "checkpoint_every_n_steps=$TOTAL" \
      "out=$OUT/xe_$TAG"; then
      [[ -n $FIRST_CKPT ]] || FIRST_CKPT=$OUT/xe_$TAG/checkpoints/last.ckpt
    fi
  else
    skip "xe_$TAG" "xe_${TAG}_warmup failed"
  fi
  stage "resident_$TAG" 150 "$PY" - "$STORE" "$OUT/resident_$TAG.json" "$WARMUP_STEPS" "$STEPS" "$WORKERS" \
    "${TRAIN[@]}" <<'PY' || true
"""The fit model fed one GPU-resident batch (no loader), the loader alone, and a profile of one step."""
import json
import sys
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmtrain.cli import CONFIG_DIR
from mmtrain.models.build import build_captioner
from mmtrain.tokens import PAD_ID
from mmtrain.training.optim import build_optimizer

store, out, warmup, steps, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
    cfg = compose("fit", overrides=[o for o in sys.argv[6:] if not o.startswith("out=")])
device = torch.device("cuda" if cfg.trainer.accelerator == "gpu" else "cpu")
dtype = torch.bfloat16 if str(cfg.trainer.precision).startswith("bf16") else None
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
datamodule = instantiate(cfg.datamodule)

started, images = time.perf_counter(), 0  # the loader alone: read, JPEG decode, tokenize in `workers` processes
for i, batch in enumerate(datamodule.train_dataloader()):
    images += len(batch.image_ids)
    if i == 0:
        started, images = time.perf_counter(), 0  # from the first batch on: the workers' start is not a rate
    if i >= warmup + steps:
        break
loader_rate = images / (time.perf_counter() - started)

batch = next(iter(datamodule.train_dataloader())).choose_captions(datamodule.captions, seed=0).to(device)
model_config = OmegaConf.to_container(cfg.model, resolve=True)
model_config["encoder"]["img_size"] = int(datamodule.manifest["image_size"])
model = build_captioner(model_config, datamodule.tokenizer.vocab_size).to(device).train()
o = cfg.optim
optimizer = build_optimizer(model, lr=o.lr, encoder_lr=o.encoder_lr, weight_decay=o.weight_decay, betas=tuple(o.betas))


def step() -> None:
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        ids = batch.input_ids  # (B*C, T)
        logits = model(model.normalize(batch.images), ids[:, :-1], batch.captions_per_image).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), ignore_index=PAD_ID)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.trainer.gradient_clip_val or 1e9))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


for _ in range(warmup):
    step()
sync()
started = time.perf_counter()
for _ in range(steps):
    step()
sync()
step_s = (time.perf_counter() - started) / steps
resident_rate = len(batch.image_ids) / step_s

from torch.profiler import ProfilerActivity, profile  # noqa: E402

activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
with profile(activities=activities) as prof:
    step()
    sync()
events = prof.key_averages()
key = "device_time_total" if device.type == "cuda" else "cpu_time_total"
top = sorted(events, key=lambda e: getattr(e, key, 0.0), reverse=True)[:12]
kernel_us = sum(getattr(e, "self_device_time_total", 0.0) for e in events) if device.type == "cuda" else None
busy = None if kernel_us is None else round(kernel_us / (step_s * 1e6), 3)
report = {
    "encoder": cfg.encoder.model_name,
    "batch_size": len(batch.image_ids),
    "precision": str(cfg.trainer.precision),
    "resident_images_per_s": round(resident_rate, 1),
    "resident_step_s": round(step_s, 4),
    "loader_only_images_per_s": round(loader_rate, 1),
    "loader_workers": workers,
    "gpu_busy_share_of_step": busy,
    "profile_top": [{"op": e.key, key: round(getattr(e, key, 0.0) / 1e3, 2), "calls": e.count} for e in top],
}
print(prof.key_averages().table(sort_by=key, row_limit=15))
print(json.dumps(report))
with open(out, "w") as handle:
    json.dump(report, handle)
PY
done

if [[ -n $FIRST_CKPT ]]; then
  CKPT=$FIRST_CKPT
  read -r -a MODEL <<<"$(model_args "${ENCODERS[0]}")"
  if stage scst 150 "$MM" fit data=shapes "data.store=$STORE" "${MODEL[@]}" "datamodule.num_workers=$WORKERS" \
    trainer=gpu "${TRAINER[@]}" "${NO_VAL[@]}" objective=scst "init_from=$CKPT" "trainer.max_steps=$SCST_STEPS" \
    "checkpoint_every_n_steps=$SCST_STEPS" "datamodule.batch_size=$SCST_BATCH" datamodule.captions_per_image=1 \
    optim.lr=1.0e-5 optim.warmup_steps=0 optim.min_lr_ratio=1.0 "out=$OUT/scst"; then
    CKPT=$OUT/scst/checkpoints/last.ckpt
  fi
else
  CKPT=
  skip scst "no XE checkpoint"
fi

CAPTION_DEVICE=cpu
[[ $ACCEL == gpu ]] && CAPTION_DEVICE=cuda
if [[ -n $CKPT ]] && ((!DRY_RUN)); then
  find "$RAW/train2017" -name '*.jpg' | sort >"$OUT/train_images.txt" # whole, so no writer dies of SIGPIPE
  head -n 64 "$OUT/train_images.txt" >"$OUT/caption_small.txt"
  head -n $((64 + CAPTION_IMAGES)) "$OUT/train_images.txt" >"$OUT/caption_large.txt"
fi
if [[ -n $CKPT ]]; then
  CAPTION=("ckpt=$CKPT" decoding=beam3 "decoding.num_beams=$BEAMS" "batch_size=$CAPTION_BATCH" table=false
    "device=$CAPTION_DEVICE" "num_workers=$WORKERS")
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

read -r -a MODEL <<<"$(model_args "${ENCODERS[0]}")"
FIT=(data=shapes "data.store=$STORE" "${MODEL[@]}" "datamodule.num_workers=$WORKERS" trainer.log_every_n_steps=10)
if [[ $FSDP != 1 || $ACCEL != gpu ]]; then
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

GPUS=0
if [[ $ACCEL == gpu ]] && command -v nvidia-smi >/dev/null; then
  GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
if ((GPUS < 2)); then
  skip ddp "not requested: ${GPUS} GPU(s)"
elif ((PREPROCESSED)); then
  stage ddp 180 "$MM" fit "${FIT[@]}" trainer=ddp "trainer.devices=$GPUS" "${NO_VAL[@]}" \
    "trainer.max_steps=$DDP_STEPS" "checkpoint_every_n_steps=$DDP_STEPS" "datamodule.batch_size=$BATCH" \
    "out=$OUT/ddp" || true
else
  skip ddp "no store"
fi

say "done; writing $OUT/gpu_check.json"
"$PY" - "$OUT" "$BATCH" "$STEPS" "$WARMUP_STEPS" "$CAPTIONS_PER_IMAGE" "$SCST_STEPS" "$SCST_BATCH" "$BEAMS" \
  "$CAPTION_IMAGES" "$CAPTION_DEVICE" "$GPUS" "$PRECISION" "$SIZE" "$DRY_RUN" "${ENCODERS[@]}" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
batch, steps, warmup, captions, scst_steps, scst_batch, beams, n_caption = map(int, sys.argv[2:10])
caption_device, gpus, precision, size = sys.argv[10], int(sys.argv[11]), sys.argv[12], int(sys.argv[13])
dry_run, encoders = sys.argv[14] == "1", sys.argv[15:]
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


def tag(encoder):  # as short() in the shell part
    if encoder.startswith("vit_small"):
        return "vits16"
    return "vitb16" if encoder.startswith("vit_base") else encoder.split("_patch")[0]


def bound(fit_rate, resident):
    """What the fit step waits for, from the three rates and the GPU-busy share of a resident step."""
    if resident is None or fit_rate is None:
        return None
    if resident["loader_only_images_per_s"] < 1.1 * fit_rate:
        return "loader: the workers deliver about what fit trains on; add workers or cores"
    if fit_rate < 0.9 * resident["resident_images_per_s"]:
        return "the fit path (host work between steps: Lightning, caption choice, copies), not the loader"
    busy = resident.get("gpu_busy_share_of_step")
    if busy is not None and busy < 0.8:
        return f"host: GPU busy {busy:.0%} of a resident step (kernel launches, Python, optimizer)"
    return "GPU compute" if busy is not None else "model compute on the CPU"


report = {"stages": stages, "dry_run": dry_run}
if dry_run:  # nothing ran: the stages are all there is to report
    text = json.dumps(report)
    (out / "gpu_check.json").write_text(text + "\n")
    print(text)
    sys.exit(0)
env_log = out / "logs" / "env.log"
if ok("env"):
    lines = [line for line in env_log.read_text().splitlines() if line.startswith("{")]
    report["env"] = json.loads(lines[-1]) if lines else None
startup_s = None
report["xe"] = {}
for encoder in encoders:
    t = tag(encoder)
    entry = {"encoder": encoder, "image_size": size, "precision": precision, "batch_size": batch}
    resident_file = out / f"resident_{t}.json"
    resident = json.loads(resident_file.read_text()) if ok(f"resident_{t}") and resident_file.is_file() else None
    fit_rate = None
    if ok(f"xe_{t}_warmup", f"xe_{t}"):
        step_s = (wall(f"xe_{t}") - wall(f"xe_{t}_warmup")) / steps
        fit_rate = batch / step_s if step_s > 0 else None
        startup = wall(f"xe_{t}_warmup") - warmup * step_s
        startup_s = startup if startup_s is None else startup_s
        entry.update(
            captions_per_image=captions,
            steps_timed=steps,
            step_s=round(step_s, 4),
            images_per_s=None if fit_rate is None else round(fit_rate, 1),
            startup_s=round(startup, 1),
            global_step=summary(f"xe_{t}").get("global_step"),
            train_loss=summary(f"xe_{t}").get("metrics", {}).get("train/loss"),
        )
    if resident is not None:
        entry["resident"] = resident
        if fit_rate:
            entry["fit_over_resident"] = round(fit_rate / resident["resident_images_per_s"], 3)
        entry["bound_by"] = bound(fit_rate, resident)
    report["xe"][t] = entry
if ok("scst"):
    scst = summary("scst")
    net = wall("scst") - startup_s if startup_s is not None else None
    report["scst"] = {
        "steps": scst_steps,
        "batch_size": scst_batch,
        "wall_s": wall("scst"),
        "images_per_s_estimate": round(scst_steps * scst_batch / net, 1) if net and net > 0 else None,
        "estimate_note": "wall time less the first XE run's start-up time",
        "global_step": scst.get("global_step"),
        "metrics": {k: v for k, v in scst.get("metrics", {}).items() if k.startswith("train/")},
    }
if ok("caption_small", "caption") and (out / "caption" / "captions.jsonl").is_file():
    rows = sum(1 for _ in open(out / "caption" / "captions.jsonl"))
    seconds = wall("caption") - wall("caption_small")
    report["caption"] = {
        "beams": beams,
        "device": caption_device,
        "images": n_caption,
        "captioned": rows,
        "images_per_s": round(n_caption / seconds, 1) if seconds > 0 else None,
    }
if not stages.get("fsdp", {"status": "skipped"})["status"].startswith("skipped"):
    fsdp = summary("fsdp")
    report["fsdp"] = {
        "trained_and_validated": ok("fsdp") and "val/CIDEr" in fsdp.get("metrics", {}),
        "checkpoint_loads": ok("fsdp_load"),
    }
if not stages.get("ddp", {"status": "skipped"})["status"].startswith("skipped"):
    ddp = summary("ddp")
    report["ddp"] = {"gpus": gpus, "ran": ok("ddp"), "world_size": ddp.get("world_size"), "steps": ddp.get("global_step")}
report["ok"] = all(s["status"] == "ok" or s["status"].startswith("skipped: not requested") for s in stages.values())
text = json.dumps(report)
(out / "gpu_check.json").write_text(text + "\n")
print(text)
PY

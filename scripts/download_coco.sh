#!/usr/bin/env bash
# Fetch COCO 2014 images, the 2014 caption annotations and Karpathy's split file into the layout that
# data=coco2014 and data=karpathy_coco read (both default to data.root=data/coco):
#
#   ROOT/train2014/COCO_train2014_*.jpg          82,783 images
#   ROOT/val2014/COCO_val2014_*.jpg              40,504 images
#   ROOT/annotations/captions_{train,val}2014.json
#   ROOT/dataset_coco.json                       Karpathy's split (113,287 / 5,000 / 5,000 with restval in train)
#
# Needs internet, curl (or wget), unzip, md5sum (or md5) and about 40 GB free: 20 GB of archives, 20 GB unpacked
# (--delete-archives frees the first half once a folder is unpacked and counted).
#
# Safe to rerun: finished steps are skipped (marker files in ROOT/.download/), an interrupted download resumes
# where it stopped, and an archive is unpacked into a temporary folder that is renamed only when complete.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/download_coco.sh [--root DIR] [--archives DIR] [--no-images] [--delete-archives]

  --root DIR          dataset root (default: data/coco, the data.root of data=coco2014 and data=karpathy_coco)
  --archives DIR      where the zip files are kept (default: ROOT/.download)
  --no-images         only the caption annotations and Karpathy's split (enough to score results files)
  --delete-archives   delete each image zip once its folder is unpacked and its image count checked
  -h, --help          this help

Then:
  mmtrain preprocess data=karpathy_coco data.root=ROOT      # Karpathy train/val/test, the published protocol
  mmtrain preprocess data=coco2014 data.root=ROOT           # the official 2014 train/val split
EOF
}

ROOT=data/coco
ARCHIVES=
IMAGES=1
DELETE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a folder}; shift 2 ;;
    --archives) ARCHIVES=${2:?--archives needs a folder}; shift 2 ;;
    --no-images) IMAGES=0; shift ;;
    --delete-archives) DELETE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "download_coco.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
ARCHIVES=${ARCHIVES:-$ROOT/.download}
STATE=$ROOT/.download

# name | url | bytes | md5. The sizes and md5 sums are those the COCO site's files have had since 2014 (the md5
# equals the S3 ETag of the single-part uploads); several dataset loaders pin the same values.
COCO_FILES=(
  "annotations_trainval2014.zip|http://images.cocodataset.org/annotations/annotations_trainval2014.zip|252872794|0a379cfc70b0e71301e0f377548639bd"
  "train2014.zip|http://images.cocodataset.org/zips/train2014.zip|13510573713|0da8c0bd3d6becc4dcb32757491aca88"
  "val2014.zip|http://images.cocodataset.org/zips/val2014.zip|6645013297|a3d79f5ed8d289b7a7554ce06a5782b3"
)
# No checksum is pinned for Karpathy's archive: we know of no published one. Its sha256 is printed (and saved beside
# it) so that two machines can be compared; the JSON inside is checked by its image counts instead.
KARPATHY_URL=https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip
expected_images() { case $1 in train2014) echo 82783 ;; val2014) echo 40504 ;; esac; }

say() { echo "download_coco: $*" >&2; }
die() { say "error: $*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required"; }
need unzip
command -v curl >/dev/null 2>&1 || need wget

file_size() { stat -c %s "$1" 2>/dev/null || stat -f %z "$1"; }
md5_of() { if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1; else md5 -q "$1"; fi; }
sha256_of() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi; }

# Download URL to FILE, resuming a partial FILE.part; the final name appears only when the transfer completed.
# BYTES (optional): a FILE.part of that size is complete already (the previous run stopped before the rename).
fetch() {
  local url=$1 file=$2 bytes=${3:-}
  [[ -f $file ]] && return 0
  if [[ -n $bytes && -f $file.part && $(file_size "$file.part") == "$bytes" ]]; then
    mv "$file.part" "$file"
    rm -f "$STATE/$(basename "$file").verified"
    return 0
  fi
  say "downloading $url"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 5 --retry-delay 10 -C - -o "$file.part" "$url"
  else
    wget -c --tries=5 -O "$file.part" "$url"
  fi
  mv "$file.part" "$file"
  rm -f "$STATE/$(basename "$file").verified"
}

# Check FILE's size and md5 once; a verified file gets a marker so that reruns skip the 13 GB checksum.
verify() {
  local file=$1 bytes=$2 md5=$3 marker
  marker=$STATE/$(basename "$1").verified
  [[ -f $marker ]] && return 0
  local have
  have=$(file_size "$file")
  if [[ $have != "$bytes" ]]; then
    rm -f "$file"
    die "$file has $have bytes, expected $bytes; removed it, rerun to download again"
  fi
  say "checking the md5 of $(basename "$file")"
  have=$(md5_of "$file")
  if [[ $have != "$md5" ]]; then
    rm -f "$file"
    die "$file has md5 $have, expected $md5; removed it, rerun to download again"
  fi
  touch "$marker"
}

# Unpack image folder NAME (train2014 or val2014) from its zip, count the images, then rename into place.
unpack_images() {
  local name=$1 zip=$ARCHIVES/$1.zip marker=$STATE/$1.unpacked
  [[ -f $marker && -d $ROOT/$name ]] && return 0
  local tmp=$ROOT/.tmp-$name
  rm -rf "$tmp"
  say "unpacking $name"
  unzip -q "$zip" "$name/*" -d "$tmp"
  local count
  count=$(find "$tmp/$name" -maxdepth 1 -name '*.jpg' | wc -l | tr -d ' ')
  local expected
  expected=$(expected_images "$name")
  [[ $count == "$expected" ]] || die "$name: $count images after unpacking, expected $expected"
  rm -rf "${ROOT:?}/$name"
  mv "$tmp/$name" "$ROOT/$name"
  rmdir "$tmp"
  touch "$marker"
  if [[ $DELETE == 1 ]]; then rm -f "$zip" "$STATE/$name.zip.verified"; fi
}

# The two caption files from the annotations zip (the instance and keypoint files are not needed).
unpack_captions() {
  local zip=$ARCHIVES/annotations_trainval2014.zip tmp=$ROOT/.tmp-annotations
  [[ -f $ROOT/annotations/captions_train2014.json && -f $ROOT/annotations/captions_val2014.json ]] && return 0
  rm -rf "$tmp"
  unzip -q -j "$zip" annotations/captions_train2014.json annotations/captions_val2014.json -d "$tmp"
  mkdir -p "$ROOT/annotations"
  mv "$tmp/captions_train2014.json" "$tmp/captions_val2014.json" "$ROOT/annotations/"
  rmdir "$tmp"
}

# dataset_coco.json from Karpathy's caption_datasets.zip, checked by its split counts.
karpathy_split() {
  local zip=$ARCHIVES/caption_datasets.zip
  fetch "$KARPATHY_URL" "$zip"
  if [[ ! -f $zip.sha256 ]]; then
    sha256_of "$zip" >"$zip.sha256"
  fi
  say "caption_datasets.zip sha256 $(cat "$zip.sha256") (not pinned: compare it across machines)"
  [[ -f $ROOT/dataset_coco.json ]] && return 0
  local member
  member=$(unzip -Z1 "$zip" | grep -E '(^|/)dataset_coco\.json$' | head -n 1) || true
  [[ -n $member ]] || die "$zip has no dataset_coco.json"
  unzip -p "$zip" "$member" >"$ROOT/.dataset_coco.json.tmp"
  check_karpathy "$ROOT/.dataset_coco.json.tmp"
  mv "$ROOT/.dataset_coco.json.tmp" "$ROOT/dataset_coco.json"
}

check_karpathy() {
  local python
  python=$(command -v python3 || command -v python || true)
  if [[ -z $python ]]; then
    say "no python to count the Karpathy splits; mmtrain preprocess will check them"
    return 0
  fi
  "$python" - "$1" <<'PY'
import collections, json, sys
images = json.load(open(sys.argv[1], encoding="utf-8"))["images"]
counts = collections.Counter(image["split"] for image in images)
expected = {"train": 82783, "restval": 30504, "val": 5000, "test": 5000}
print("download_coco: Karpathy COCO splits", dict(sorted(counts.items())), file=sys.stderr)
if dict(counts) != expected:
    sys.exit(f"download_coco: error: expected {expected}")
PY
}

mkdir -p "$ROOT" "$ARCHIVES" "$STATE"
for entry in "${COCO_FILES[@]}"; do
  IFS='|' read -r name url bytes md5 <<<"$entry"
  if [[ $IMAGES == 0 && $name != annotations_* ]]; then continue; fi
  if [[ $name != annotations_* && -f $STATE/${name%.zip}.unpacked && -d $ROOT/${name%.zip} ]]; then continue; fi
  fetch "$url" "$ARCHIVES/$name" "$bytes"
  verify "$ARCHIVES/$name" "$bytes" "$md5"
done
unpack_captions
if [[ $IMAGES == 1 ]]; then
  unpack_images train2014
  unpack_images val2014
fi
karpathy_split
say "done: $ROOT"
say "next: mmtrain preprocess data=karpathy_coco data.root=$ROOT"

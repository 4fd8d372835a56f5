#!/usr/bin/env bash
# Fresh machine -> a datastore: install, make a sample folder, create, list, read a file back.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
sample="${TMPDIR:-/tmp}/grid-sample/my_dataset"
rm -rf "$sample" && mkdir -p "$sample/train/cats" "$sample/val"
for i in 1 2 3; do head -c 20000 /dev/urandom > "$sample/train/cats/$i.jpg"; done
printf 'path,label\ntrain/cats/1.jpg,cat\n' > "$sample/val/labels.csv"
grid=.venv/bin/grid
$grid datastore create "$sample" --name cats
$grid datastore
$grid datastore ls cats:1 train/cats
echo "--- grid datastore cat cats:1 val/labels.csv"
$grid datastore cat cats:1 val/labels.csv

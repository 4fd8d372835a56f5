#!/usr/bin/env bash
# Prepare the peers of bench/incremental_bench.py that bench/setup.sh does not install:
#   - rsync (Debian package): turns the working tree into the `incremental` dataset in place,
#     rewriting only the changed files, so unchanged files keep inode, mtime and ctime;
#   - dvc (PyPI) in its own virtual environment, default /tmp/dvc-venv (override: DVC_VENV),
#     so it never touches grid's .venv.
# restic, rclone and b3sum come from bench/setup.sh. Idempotent: does nothing that is done.
#
#   bash bench/dvc_setup.sh                  # then: python bench/incremental_bench.py
#   DVC_VENV=/opt/dvc bash bench/dvc_setup.sh
set -euo pipefail
DVC_VENV="${DVC_VENV:-/tmp/dvc-venv}"
PYTHON="${PYTHON:-python3}"

need=""
for pkg in rsync git; do
    command -v "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian package(s):$need; run this as root or: sudo apt-get install -y$need" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi

if [ -x "$DVC_VENV/bin/dvc" ] && "$DVC_VENV/bin/dvc" --version >/dev/null 2>&1; then
    echo "dvc $("$DVC_VENV/bin/dvc" --version) already in $DVC_VENV"
    exit 0
fi
"$PYTHON" -m venv "$DVC_VENV"
"$DVC_VENV/bin/pip" install -q --upgrade pip
# Plain `dvc` (no extras): local remotes need no cloud SDKs; it pulls no ML frameworks.
"$DVC_VENV/bin/pip" install -q dvc
echo "dvc $("$DVC_VENV/bin/dvc" --version) installed in $DVC_VENV ($(du -sh "$DVC_VENV" | cut -f1))"

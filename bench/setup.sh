#!/usr/bin/env bash
# Install what the benchmarks compare against (Debian packages) and grid itself (./.venv).
# Idempotent: apt runs only for packages that are missing. fuse3 gives fusermount3, which the
# mount benchmark (bench/mount_bench.py) needs for grid, rclone and restic mounts alike.
set -euo pipefail
cd "$(dirname "$0")/.."
need=""
for pkg in restic rclone b3sum fuse3; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian package(s):$need; run this as root or: sudo apt-get install -y$need" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
bash scripts/install.sh

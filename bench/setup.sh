#!/usr/bin/env bash
# Install what the benchmarks compare against (Debian packages) and grid itself (./.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic rclone b3sum
bash scripts/install.sh

#!/usr/bin/env bash
# Create a separate virtual environment with litdata for bench/iter_bench.py.
#
# litdata is a peer we measure against, not a dependency of grid, so it never goes into the
# project's .venv. The venv lives at $LITDATA_VENV (default /tmp/litdata-venv); the script is
# idempotent: it skips the install when litdata already imports there.
#
# torch is pinned to 2.13.0: its CPU wheel lies on this machine's disk (/opt/wheels), while an
# unpinned torch would download a multi-GB CUDA build. litdata's metadata also requires
# torchvision, but only its image/video serializers import it (lazily); PyPI's torchvision does
# not install beside torch 2.13.0, so litdata goes in with --no-deps and its other requirements
# are installed by name. Plain bytes samples, which the benchmark uses, need no torchvision.
#
#   bash bench/litdata_setup.sh                  # -> /tmp/litdata-venv
#   LITDATA_VENV=/some/where bash bench/litdata_setup.sh
#   PYTHON=python3.12 bash bench/litdata_setup.sh   # the interpreter to base the venv on
set -euo pipefail

VENV="${LITDATA_VENV:-/tmp/litdata-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${LITDATA_TORCH_VERSION:-2.13.0}"
# litdata's requirements less torch (pinned above) and torchvision (not needed for bytes)
LITDATA_DEPS=(lightning-utilities filelock numpy boto3 requests "urllib3>=1.26" tifffile obstore)

pip_install() {  # quiet, without the local index's "Location ... is ignored" noise
    "$VENV/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import litdata, torch" 2>/dev/null; then
    echo "litdata venv ready: $VENV"
else
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    pip_install --upgrade pip
    pip_install "torch==$TORCH_VERSION"
    pip_install "torch==$TORCH_VERSION" "${LITDATA_DEPS[@]}"
    pip_install --no-deps litdata
fi

"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md

import litdata  # noqa: F401  (fails loudly if the install is broken)

for pkg in ("litdata", "torch", "numpy", "lightning-utilities"):
    print(f"  {pkg} {md.version(pkg)}")
try:
    print(f"  torchvision {md.version('torchvision')}")
except md.PackageNotFoundError:
    print("  torchvision not installed (not needed for bytes samples)")
EOF

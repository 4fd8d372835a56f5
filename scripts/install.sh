#!/usr/bin/env bash
# Install grid and its test tools into ./.venv (idempotent). System packages come from apt.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # util-linux: setpriv (tests drop root's read-anything capability);
    # fuse3: the read-only mount (its fusermount3 mounts; grid speaks FUSE itself);
    # cron: `grid datastore schedule` installs crontab entries;
    # tar, zip, unzip: archive tests compare with what the standard tools make and extract;
    # postgresql: the catalog of team mode (tests start throwaway clusters with initdb);
    # nginx: the load balancer in front of two `grid server` processes in the scale-out tests;
    # slurm-wlm + munge: `grid run --executor slurm` (tests start a one-machine cluster with
    # scripts/slurm-local.sh); chromium: the web pages' tests drive it with Playwright
    need=""
    for pkg in util-linux fuse3 cron tar zip unzip postgresql nginx slurm-wlm munge chromium; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
    done
    if [ -n "$need" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
    fi
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,mount,session,web,torch]"
# Byte-compile grid's own modules, as pip does for a wheel: an editable install otherwise
# compiles them on every start where PYTHONDONTWRITEBYTECODE is set (~75 ms of a command)
.venv/bin/python -m compileall -q src/grid

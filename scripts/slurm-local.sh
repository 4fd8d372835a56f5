#!/usr/bin/env bash
# A one-machine SLURM cluster (munged + slurmctld + slurmd, no accounting database) for
# `grid run --executor slurm` and its tests. Run as root.
#
#   scripts/slurm-local.sh start    # bring it up; the last line is `export SLURM_CONF=...`
#   scripts/slurm-local.sh status   # sinfo
#   scripts/slurm-local.sh stop     # cancel its jobs, stop its daemons, wait for them
#
# Everything (slurm.conf, its own munge key and socket, state, spool, logs, pid files) lives in
# $GRID_SLURM_DIR (default /tmp/grid-slurm), so several clusters can run side by side and
# nothing in /etc/munge or /etc/slurm is used. Ports: $GRID_SLURM_CTLD_PORT and
# $GRID_SLURM_SLURMD_PORT, else free ones picked at the first start and kept in slurm.conf.
# $GRID_SLURM_START_TIMEOUT: seconds to wait for the node to be idle (default 60).
set -euo pipefail

DIR="${GRID_SLURM_DIR:-/tmp/grid-slurm}"
CONF="$DIR/slurm.conf"
SOCKET="$DIR/munge/munge.socket"
NODE="$(hostname -s)"
TIMEOUT="${GRID_SLURM_START_TIMEOUT:-60}"

die() {
    echo "slurm-local: $*" >&2
    exit 1
}

# pids of live processes running program $1 with $2 on their command line
pids_of() {
    local re
    re="$(printf '%s' "$2" | sed 's/[][\\.*^$+?(){}|]/\\&/g')"
    pgrep -f -- "^([^ ]*/)?$1 (.* )?$re( |\$)" || true
}

munged_pids() { pids_of munged "--socket=$SOCKET"; }
slurmctld_pids() { pids_of slurmctld "-f $CONF"; }
slurmd_pids() { pids_of slurmd "-f $CONF"; }

running() {
    [ -n "$(munged_pids)" ] && [ -n "$(slurmctld_pids)" ] && [ -n "$(slurmd_pids)" ]
}

# $1 if nobody listens on it, else a free port below the ephemeral range (so outgoing
# connections never take it) that is none of the others given
free_port() {
    python3 - "$@" <<'EOF'
import random, socket, sys


def free(port):
    with socket.socket() as s:
        # as the daemons bind: a port with connections in TIME_WAIT is free to them
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


wanted, taken = sys.argv[1], {int(a) for a in sys.argv[2:] if a}
if wanted and free(int(wanted)):
    print(wanted)
    sys.exit()
for _ in range(1000):
    port = random.randint(20000, 32000)
    if port not in taken and free(port):
        print(port)
        break
else:
    sys.exit("no free port")
EOF
}

node_state() {
    SLURM_CONF="$CONF" sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1
}

# when the node's slurmd last registered, in seconds since the epoch (0: not known)
slurmd_registered() {
    local t
    t="$(SLURM_CONF="$CONF" scontrol -o show node "$NODE" 2>/dev/null |
        sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')"
    date -d "$t" +%s 2>/dev/null || echo 0
}

log_tails() {
    local f
    for f in "$DIR/log/munged.log" "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        [ -f "$f" ] || continue
        echo "--- tail $f" >&2
        tail -n 20 "$f" >&2
    done
}

# a start that failed: say why, show the logs, leave no daemon behind
fail_start() {
    echo "slurm-local: $*" >&2
    log_tails
    stop_daemons
    echo "slurm-local: start failed; daemons stopped, logs in $DIR/log" >&2
    exit 1
}

write_conf() {
    local ctld_port slurmd_port old_ctld="" old_slurmd="" mem_kb mem_mb cpus
    ctld_port="${GRID_SLURM_CTLD_PORT:-}"
    slurmd_port="${GRID_SLURM_SLURMD_PORT:-}"
    # keep the ports of an earlier start of this folder while they are free
    if [ -f "$CONF" ]; then
        old_ctld="$(sed -n 's/^SlurmctldPort=//p' "$CONF")"
        old_slurmd="$(sed -n 's/^SlurmdPort=//p' "$CONF")"
    fi
    [ -n "$ctld_port" ] || ctld_port="$(free_port "$old_ctld" "$slurmd_port")"
    [ -n "$slurmd_port" ] || slurmd_port="$(free_port "$old_slurmd" "$ctld_port")"
    cpus="$(nproc)"
    mem_kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
    # leave a margin: slurmd drains a node that has less memory than configured
    mem_mb=$((mem_kb / 1024 * 9 / 10))
    cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh; rewritten at each start.
ClusterName=grid
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=300
SchedulerType=sched/backfill
# schedule a submitted batch job at once, not at the next 3-second tick
SchedulerParameters=batch_sched_delay=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$DIR/plugstack.conf"
}

start() {
    [ "$(id -u)" = 0 ] || die "run as root (slurmd and munged here run as root)"
    local bin
    for bin in munged mungekey slurmctld slurmd sinfo; do
        command -v "$bin" >/dev/null || die "$bin not found: install slurm-wlm and munge (scripts/install.sh)"
    done
    if running; then
        echo "slurm-local: already running in $DIR"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    # half up (a daemon died): start over
    stop_daemons
    mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
    # munged wants its socket's folder searchable by all and writable by none but root
    chmod 0755 "$DIR" "$DIR/munge"
    if [ ! -s "$DIR/munge/munge.key" ]; then
        mungekey --create --keyfile="$DIR/munge/munge.key" --force >/dev/null
    fi
    chmod 0400 "$DIR/munge/munge.key"
    write_conf

    # --force: munged refuses root and any path outside its usual places without it
    munged --force --socket="$SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed" ||
        fail_start "munged did not start"
    export SLURM_CONF="$CONF"
    slurmctld -f "$CONF" ||
        fail_start "slurmctld did not start"
    local since
    since="$(date +%s)"
    slurmd -f "$CONF" ||
        fail_start "slurmd did not start"

    local deadline=$((SECONDS + TIMEOUT)) state=""
    while :; do
        state="$(node_state)"
        # idle, and registered by this slurmd (not a node state restored from an earlier run)
        [ "$state" = idle ] && [ "$(slurmd_registered)" -ge "$since" ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail_start "node $NODE not idle after ${TIMEOUT}s (state: ${state:-no answer})"
        fi
        for bin in munged slurmctld slurmd; do
            if [ -z "$("${bin}_pids")" ]; then
                fail_start "$bin exited"
            fi
        done
        sleep 0.2
    done
    echo "slurm-local: up in $DIR (node $NODE idle, slurmctld port $(sed -n 's/^SlurmctldPort=//p' "$CONF"))"
    echo "export SLURM_CONF=$CONF"
}

# TERM the given pids and wait up to 20 s for them, then KILL
end_pids() {
    local pids="$*" p i
    [ -n "$pids" ] || return 0
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 100); do
        local alive=""
        for p in $pids; do
            kill -0 "$p" 2>/dev/null && alive="$alive $p"
        done
        [ -n "$alive" ] || return 0
        sleep 0.2
    done
    kill -KILL $alive 2>/dev/null || true
}

stop_daemons() {
    # slurmd and the controller together, then munge (which both need until the end)
    end_pids $(slurmd_pids) $(slurmctld_pids)
    end_pids $(munged_pids)
    rm -f "$SOCKET" "$SOCKET.lock"
}

stop() {
    if [ -n "$(slurmctld_pids)" ] && [ -n "$(munged_pids)" ]; then
        # jobs' slurmstepd outlive slurmd: cancel them while the cluster still answers
        local jobs i
        jobs="$(SLURM_CONF="$CONF" squeue -h -o %i 2>/dev/null || true)"
        if [ -n "$jobs" ]; then
            SLURM_CONF="$CONF" scancel $jobs 2>/dev/null || true
            for i in $(seq 50); do
                [ -z "$(SLURM_CONF="$CONF" squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    if [ -z "$(slurmd_pids)$(slurmctld_pids)$(munged_pids)" ]; then
        echo "slurm-local: not running in $DIR"
        return 0
    fi
    stop_daemons
    echo "slurm-local: stopped in $DIR"
}

status() {
    [ -f "$CONF" ] || die "no cluster in $DIR"
    if ! running; then
        echo "slurm-local: not running in $DIR (munged: $(munged_pids | xargs) slurmctld: $(slurmctld_pids | xargs) slurmd: $(slurmd_pids | xargs))"
        exit 1
    fi
    SLURM_CONF="$CONF" sinfo
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac

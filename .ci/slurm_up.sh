#!/usr/bin/env bash
# Start a one-node SLURM cluster on this (Debian/Ubuntu) machine, for the tests marked `slurm`.
#
#   sudo .ci/slurm_up.sh        # idempotent: installs what is missing, starts what is not running, then waits
#                               # until `sinfo` shows the node idle and `sacct` answers
#
# Daemons: munged, MariaDB, slurmdbd, slurmctld, slurmd, all on this host, all as root. Accounting goes through
# slurmdbd into MariaDB because submitit (hydra/launcher=slurm) asks `sacct` for the state of its jobs every few
# seconds: without an accounting store every call fails ("Slurm accounting storage is disabled"), submitit logs a
# warning each time and cannot tell a job that SLURM killed from one still running.
#
# The configuration files it writes carry the marker line below. A slurm.conf without it belongs to someone else:
# the script then leaves it alone (and succeeds only when that cluster already has an idle node).
set -euo pipefail

MARKER="# Written by cgeval .ci/slurm_up.sh (a one-node test cluster); re-run the script to restore it."
CONF_DIR=/etc/slurm
SLURM_CONF="$CONF_DIR/slurm.conf"
DBD_CONF="$CONF_DIR/slurmdbd.conf"
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm
WAIT_S=${SLURM_UP_WAIT_S:-120}

say() { echo "slurm_up: $*"; }
die() { echo "slurm_up: error: $*" >&2; exit 1; }

# Poll `$@` (quietly) once a second for up to WAIT_S seconds.
wait_for() {
  local what=$1; shift
  local t=0
  until "$@" >/dev/null 2>&1; do
    t=$((t + 1))
    [ "$t" -le "$WAIT_S" ] || return 1
    sleep 1
  done
  say "$what after ${t}s"
}

# A node that takes jobs: idle, or partly used (mix) when the script is re-run while jobs run.
node_idle() { [ -n "$(sinfo -h -N -t idle,mix -o %N 2>/dev/null)" ]; }
# sacct answers without an error (with accounting disabled it prints one and exits 1).
sacct_ok() { local err; err=$(sacct -n -X -S now-1hour -o JobID 2>&1 >/dev/null) && [ -z "$err" ]; }

if [ -f "$SLURM_CONF" ] && ! grep -qxF "$MARKER" "$SLURM_CONF"; then
  if command -v sinfo >/dev/null && node_idle; then
    say "$SLURM_CONF was not written by this script; its cluster has an idle node, using it as it is"
    exit 0
  fi
  die "$SLURM_CONF exists and was not written by this script, and no idle node answers; not touching it"
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (sudo $0): it installs packages, writes $CONF_DIR and starts daemons"

# --- packages -----------------------------------------------------------------------------------------------
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The packages' install scripts must not start the daemons (without a configuration yet): this script does,
  # below. policy-rc.d is Debian's switch for that (container images ship one); add one for the install if absent.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    added_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

# --- munge ----------------------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  install -d -o munge -g munge -m 0700 /etc/munge
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged
  wait_for "munge answers" sh -c 'munge -n | unmunge' || die "munged did not start (see /var/log/munge/munged.log)"
fi

# --- MariaDB (the accounting store behind slurmdbd) -------------------------------------------------------------
if ! mysqladmin --silent ping >/dev/null 2>&1; then
  say "starting MariaDB"
  /etc/init.d/mariadb start >/dev/null
  wait_for "MariaDB answers" mysqladmin --silent ping || die "MariaDB did not start (see /var/log/mysql/)"
fi

# --- configuration --------------------------------------------------------------------------------------------
host=$(hostname -s)
# The node's real CPUs and memory, as slurmd itself detects them (a node configured with more is drained).
node_line=$(slurmd -C | head -n 1)
case "$node_line" in NodeName=*) ;; *) die "slurmd -C printed no node line: $node_line" ;; esac

# write_conf FILE MODE: FILE gets stdin when its content differs; prints "changed" when it did.
write_conf() {
  local file=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return
  fi
  install -m "$mode" -o root -g root "$tmp" "$file"
  rm -f "$tmp"
  echo changed
}

install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"

dbd_changed=$(write_conf "$DBD_CONF" 0600 <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
# MariaDB's root account over its local socket (unix_socket authentication): no password to keep anywhere.
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
)

conf_changed=$(write_conf "$SLURM_CONF" 0644 <<EOF
$MARKER
ClusterName=cgeval
# Addresses given, so that nothing depends on the host name resolving.
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups in containers: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
# A requeued job may start again cred_expire seconds later, at the scheduler's next pass over pending jobs:
# every 5 s here, not every 60.
SchedulerParameters=sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
# Accounting into slurmdbd, so that sacct answers (submitit polls it for job states).
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)

# A daemon whose pid file names a live process of that name is running. Stopping one goes by that pid only.
running() {  # running NAME PIDFILE
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}
stop() {  # stop NAME PIDFILE
  if running "$1" "$2"; then
    say "restarting $1 (its configuration changed)"
    kill "$(cat "$2")" 2>/dev/null || true
    local t=0
    while running "$1" "$2" && [ "$t" -lt 30 ]; do sleep 1; t=$((t + 1)); done
  fi
}

if [ -n "$dbd_changed" ]; then stop slurmdbd /run/slurmdbd.pid; fi
if [ -n "$conf_changed" ]; then stop slurmd /run/slurmd.pid; stop slurmctld /run/slurmctld.pid; fi

# --- daemons ----------------------------------------------------------------------------------------------------
if ! running slurmdbd /run/slurmdbd.pid; then
  say "starting slurmdbd"
  slurmdbd
  wait_for "slurmdbd answers" sacctmgr -n list cluster || die "slurmdbd did not answer (see $LOG_DIR/slurmdbd.log)"
fi
if ! running slurmctld /run/slurmctld.pid; then
  say "starting slurmctld"
  slurmctld
  wait_for "slurmctld answers" sh -c 'scontrol ping | grep -q UP' || die "slurmctld did not answer (see $LOG_DIR/slurmctld.log)"
fi
if ! running slurmd /run/slurmd.pid; then
  say "starting slurmd"
  slurmd
fi

wait_for "node $host idle" node_idle || { sinfo -N -l >&2 || true; die "node $host is not idle (see $LOG_DIR/slurmd.log)"; }
wait_for "sacct answers" sacct_ok || { sacct -n -X -S now-1hour >&2 || true; die "sacct does not answer (see $LOG_DIR/slurmdbd.log)"; }
sinfo

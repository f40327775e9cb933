#!/usr/bin/env bash
# A real single-node SLURM on this machine, for the `slurm` test tier and benchmarks:
#
#   slurm/local-slurm.sh start    install slurm-wlm and munge (apt) when missing, write the config,
#                                 start munged, slurmctld and slurmd, wait until the node is idle
#   slurm/local-slurm.sh stop     stop the three daemons this script started (by their pid files)
#   slurm/local-slurm.sh status   sinfo, and which daemons run
#
# Debian's SLURM (22.05 on Debian 12) started as root: no systemd, no cgroups, no accounting.
# The controller and the one node listen on 127.0.0.1; the node has every core of this machine
# (CPUs = nproc) and 90% of its memory, in one partition `debug`. Jobs are not bound to cores
# (TaskPlugin=task/none), which is why executor=slurm does not pin workers by default.
# The config goes to /etc/slurm/slurm.conf (where Debian's commands look for it); a slurm.conf
# that this script did not write is never overwritten. State and logs: $LOCAL_SLURM_DIR
# (default /var/tmp/simstudy-slurm). Needs root.
set -euo pipefail

DIR=${LOCAL_SLURM_DIR:-/var/tmp/simstudy-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by simstudy slurm/local-slurm.sh"
HOST=$(hostname -s)

say() { echo "[local-slurm] $*"; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (it installs packages and starts system daemons)" >&2
    exit 2
  fi
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v munged >/dev/null && command -v sinfo >/dev/null; then
    return
  fi
  say "installing slurm-wlm and munge from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_config() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    say "$CONF exists and was not written by this script: not touching it" >&2
    exit 2
  fi
  local cpus mem
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p "$DIR/ctld" "$DIR/slurmd" "$DIR/log" /etc/slurm
  cat >"$CONF" <<CONF
$MARK
ClusterName=simstudy-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=60
KillWait=10
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

alive() {  # alive PIDFILE: the process in it runs
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
      return
    fi
    sleep 0.1
  done
  say "munged did not start" >&2
  exit 1
}

node_state() {
  sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1
}

start() {
  need_root
  install_packages
  write_config
  start_munge
  alive "$DIR/slurmctld.pid" || /usr/sbin/slurmctld
  alive "$DIR/slurmd.pid" || /usr/sbin/slurmd
  local state=""
  for _ in $(seq 120); do
    state=$(node_state)
    case "$state" in
      idle* | mixed* | allocated*) say "SLURM is up: node $HOST ($(nproc) CPUs) is $state"; return ;;
      down* | drain* | fail*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  say "the node did not come up (state: ${state:-none}); logs in $DIR/log" >&2
  exit 1
}

stop() {
  need_root
  local name pidfile pid
  for name in slurmd slurmctld; do
    pidfile="$DIR/$name.pid"
    if alive "$pidfile"; then
      pid=$(cat "$pidfile")
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      say "stopped $name (pid $pid)"
    fi
  done
  if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
    pid=$(cat /run/munge/munged.pid)
    kill "$pid"
    say "stopped munged (pid $pid)"
  fi
}

status() {
  local name
  for name in slurmctld slurmd; do
    if alive "$DIR/$name.pid"; then
      echo "$name: running (pid $(cat "$DIR/$name.pid"))"
    else
      echo "$name: not running"
    fi
  done
  if sinfo >/dev/null 2>&1; then
    sinfo
  else
    echo "sinfo: SLURM does not answer"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

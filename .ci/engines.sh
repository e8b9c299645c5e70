#!/usr/bin/env bash
# The engines the remote-backend tests run against (docs/REMOTE.md), from
# scratch, as root: an sshd on 127.0.0.1:2222 with a key-only test user, and a
# single-node Slurm (munged, slurmctld, slurmd; this host is controller and node).
#
#   .ci/engines.sh start   install if missing, start, write $DIR/env (the tests' coordinates)
#   .ci/engines.sh stop    stop every daemon it started, by pid
# `start` exits 3 (and changes nothing) if a previous start's daemons still run.
#
# Tests read only the env file's variables (LOOOP_TEST_SSH, LOOOP_TEST_SSH_HOSTS,
# LOOOP_TEST_SLURM): without them the engine tests skip with the reason.
# Nothing here touches the real HOME: the test user has its own home in $DIR,
# the ssh client config and keys are files in $DIR passed with -F.
set -uo pipefail
DIR=${LOOOP_ENGINES_DIR:-/tmp/looop-engines}
USER_NAME=looopci
PORT=2222
T0=$(date +%s%N)

step() {  # step NAME: print how long the previous step took
  local now ms; now=$(date +%s%N); ms=$(( (now - T0) / 1000000 ))
  printf 'engines: %-30s %d.%03ds\n' "$1" $((ms / 1000)) $((ms % 1000))
  T0=$now
}

stop() {
  for f in "$DIR"/pids/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null)
    # the pid is ours only while its comm matches what we started
    if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$(basename "$f" .pid)" ]; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$f"
  done
  # jobs a test left behind die with slurmd; their state dir goes with us
  rm -rf "$DIR/slurm"
  echo "engines: stopped"
}

install() {
  local need=""
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need="$need openssh-server"
  command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ] || need="$need slurm-wlm"
  command -v munged >/dev/null || [ -x /usr/sbin/munged ] || need="$need munge"
  if [ -n "$need" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need) >/dev/null 2>&1 \
      || { echo "engines: apt-get install$need failed"; return 1; }
  fi
}

start_ssh() {
  mkdir -p "$DIR/ssh" "$DIR/home" /run/sshd
  id "$USER_NAME" >/dev/null 2>&1 || useradd -M -d "$DIR/home/$USER_NAME" -s /bin/bash "$USER_NAME" || return 1
  usermod -p '*' "$USER_NAME"  # no password, but not locked: sshd (without PAM) refuses locked accounts
  local home="$DIR/home/$USER_NAME"
  mkdir -p "$home/.ssh"
  [ -f "$DIR/ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/host_ed25519" || return 1
  [ -f "$DIR/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/id_ed25519" || return 1
  cp "$DIR/ssh/id_ed25519.pub" "$home/.ssh/authorized_keys"
  chown -R "$USER_NAME:" "$home"
  chmod 700 "$home" "$home/.ssh"
  chmod 600 "$home/.ssh/authorized_keys"
  cat >"$DIR/ssh/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $PORT
HostKey $DIR/ssh/host_ed25519
PidFile $DIR/pids/sshd.pid
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers $USER_NAME
UsePAM no
PermitRootLogin no
StrictModes no
LogLevel ERROR
EOF
  echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/ssh/host_ed25519.pub")" >"$DIR/ssh/known_hosts"
  # two names for one sshd: enough to see round-robin and per-host caps
  cat >"$DIR/ssh/config" <<EOF
Host looop-h1 looop-h2
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $DIR/ssh/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $DIR/ssh/known_hosts
  StrictHostKeyChecking yes
EOF
  chmod 644 "$DIR/ssh/config" "$DIR/ssh/known_hosts"
  /usr/sbin/sshd -f "$DIR/ssh/sshd_config" -E "$DIR/ssh/sshd.log" || return 1
  for _ in $(seq 50); do
    ssh -F "$DIR/ssh/config" -o BatchMode=yes looop-h1 true 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start_slurm() {
  local host cpus
  host=$(hostname -s)
  cpus=64  # more than the box has (SlurmdParameters=config_overrides): 50 one-CPU jobs at once
  mkdir -p "$DIR/slurm/state" "$DIR/slurm/spool" "$DIR/slurm/log" /etc/slurm /run/munge
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; chmod 400 /etc/munge/munge.key; }
  chown munge: /etc/munge/munge.key /run/munge 2>/dev/null
  # munged as its own user; pid file in our dir
  rm -f /run/munge/munged.pid
  su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force || return 1
  cp /run/munge/munged.pid "$DIR/pids/munged.pid"
  cat >/etc/slurm/slurm.conf <<EOF
ClusterName=looopci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/slurm/state
SlurmdSpoolDir=$DIR/slurm/spool
SlurmctldPidFile=$DIR/pids/slurmctld.pid
SlurmdPidFile=$DIR/pids/slurmd.pid
SlurmctldLogFile=$DIR/slurm/log/slurmctld.log
SlurmdLogFile=$DIR/slurm/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=5
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=$host CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
  /usr/sbin/slurmctld -i || return 1
  /usr/sbin/slurmd || return 1
  for _ in $(seq 100); do
    [ "$(sinfo -h -o %T 2>/dev/null)" = "idle" ] && return 0
    sleep 0.1
  done
  return 1
}

running() {  # every daemon of a previous start is still ours and alive
  local f n=0
  for f in "$DIR"/pids/*.pid; do
    [ -f "$f" ] || return 1
    [ "$(cat /proc/"$(cat "$f")"/comm 2>/dev/null)" = "$(basename "$f" .pid)" ] || return 1
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] && [ -s "$DIR/env" ]
}

case "${1:-}" in
  start)
    if running; then echo "engines: already running (stop with: $0 stop)"; exit 3; fi
    mkdir -p "$DIR/pids"
    rm -f "$DIR/env"
    install || exit 0 ; step "apt-get install"
    env=""
    if start_ssh; then
      env="${env}LOOOP_TEST_SSH=$DIR/ssh/config
LOOOP_TEST_SSH_HOSTS=looop-h1,looop-h2
"
      step "sshd on 127.0.0.1:$PORT"
    else
      step "sshd (failed: ssh tests skip)"
    fi
    if start_slurm; then
      env="${env}LOOOP_TEST_SLURM=1
"
      step "slurm idle (munged+ctld+d)"
    else
      step "slurm (failed: tests skip)"
    fi
    printf '%s' "$env" >"$DIR/env"
    ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

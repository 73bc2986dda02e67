#!/usr/bin/env bash
# A real single-node SLURM cluster for CI and for trying profiles/slurm on one machine (Debian/Ubuntu, root).
#   .ci/slurm-cluster.sh start   install slurmctld/slurmd/munge from Debian packages if missing, write a config
#                                with one fake GPU per CPU (gres gpu:fake:<nproc>), start the daemons, wait until the node is idle
#   .ci/slurm-cluster.sh stop    stop the daemons by the PIDs recorded at start
#   .ci/slurm-cluster.sh status  sinfo
# No systemd or cgroups needed (proctrack/linuxproc, task/none); no accounting database (squeue for job status).
set -euo pipefail

STATE=/run/clinxai-slurm
HOST=$(hostname -s)

start() {
    if [ "$(sinfo -h -o %T 2>/dev/null || true)" = idle ]; then
        echo "SLURM already up"
        return 0
    fi
    if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
    fi
    mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /etc/slurm "$STATE"
    chown slurm /var/spool/slurmctld /var/log/slurm
    chown munge /run/munge
    [ -f /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null;
                                     chown munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    local cpus mem gpus
    cpus=$(nproc)
    gpus=$cpus   # one fake GPU per CPU: GPU jobs (one thread each) run side by side instead of queueing for one
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > /etc/slurm/slurm.conf <<EOF
ClusterName=clinxai
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
MinJobAge=3600
ReturnToService=2
GresTypes=gpu
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} Gres=gpu:fake:${gpus} State=UNKNOWN
PartitionName=main Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF
    # A GPU gres needs one device file per GPU; character devices like /dev/null (never opened by the jobs)
    for i in $(seq 0 $((gpus - 1))); do [ -e "$STATE/fakegpu$i" ] || mknod "$STATE/fakegpu$i" c 1 3; done
    echo "NodeName=${HOST} Name=gpu Type=fake File=$STATE/fakegpu[0-$((gpus - 1))]" > /etc/slurm/gres.conf
    # A node drained by an earlier start (e.g. another GPU count) would stay drained: start from no saved node state
    rm -f /var/spool/slurmctld/node_state /var/spool/slurmctld/node_state.old
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    pgrep -x munged > "$STATE/munged.pid"
    /usr/sbin/slurmctld
    /usr/sbin/slurmd
    for _ in $(seq 60); do
        state=$(sinfo -h -o %T 2>/dev/null || true)
        if [ "$state" = idle ]; then
            echo "SLURM up: node $HOST idle, $cpus CPUs, ${mem} MB, $gpus fake GPUs"
            return 0
        fi
        sleep 1
    done
    echo "SLURM did not come up; see /var/log/slurm/" >&2
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    return 1
}

stop() {
    for daemon in slurmd slurmctld munged; do
        if [ -f "$STATE/$daemon.pid" ]; then
            kill "$(cat "$STATE/$daemon.pid")" 2>/dev/null || true
            rm -f "$STATE/$daemon.pid"
        fi
    done
    echo "SLURM stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

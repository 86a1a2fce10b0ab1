# Sourced by up, down and status: the cluster's fixed addresses, paths and health checks.
# shellcheck shell=bash
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/versions"

NODE=node0
# cni0's address is the node, API and kubelet address: fixed, so the PKI can be cached, and on a
# bridge with no uplink, so nothing the cluster serves is reachable from off the machine.
NODE_IP=10.244.0.1
POD_SUBNET=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
API=https://$NODE_IP:6443

BIN=$(cluster_bin_dir)
STATE=$KD_CACHE/cluster          # configs, logs, pid files, kubeconfig
PKI=$KD_CACHE/pki/$NODE_IP
RUN=/run/kubedock-cluster        # volatile: IPAM leases
ETCD_DATA=/dev/shm/kubedock-etcd # tmpfs: a fresh, fast etcd per `up`
KUBECONFIG_PATH=$STATE/admin.kubeconfig
CONTAINERD_SOCK=/run/containerd/containerd.sock
KUBELET_ROOT=/var/lib/kubelet
# The image registry (build/registry/up), a mirror of Docker Hub for the node's containerd.
REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_DATA=$KD_CACHE/registry-data
# A second registry that wants credentials (basic auth; test constants, loopback only).
REGISTRY_AUTH_ADDR=127.0.0.1:5001
REGISTRY_AUTH_DATA=$KD_CACHE/registry-auth-data
REGISTRY_AUTH_USER=kubedock
REGISTRY_AUTH_PASSWORD=kubedock-secret
# Where containerd reads registry hosts (hosts.toml per registry) at each pull.
REGISTRY_HOSTS=$STATE/containerd-certs.d
# Marks the host rules up adds, so down removes exactly those.
RULE_TAG=kubedock-cluster

# In start order.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)
# Started once the cluster is, and also into a running cluster that lacks it (see up).
PROVISIONER=local-path-provisioner
PROVISIONER_BIN=$(provisioner_bin_dir)/local-path-provisioner
# Where named volumes' data lives on the node; its helper pods run the node's busybox image.
VOLUMES_DIR=/var/lib/kubedock-volumes

pidfile() { echo "$STATE/run/$1.pid"; }

alive() { # pid: running, not a zombie (this machine's init reaps orphans only every few seconds)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

running_pid() { # component -> prints its pid if the process is alive
  local f; f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  local pid; pid=$(<"$f")
  alive "$pid" || return 1
  # The name check guards against a recycled pid.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$1" || return 1
  echo "$pid"
}

start() { # component command...: a background process with a pid file and a log
  local name=$1; shift
  # 9>&-: the lock must not outlive this script in the components.
  setsid "$@" >"$STATE/log/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile "$name")"
}

healthy() { # component -> exit 0 if its health endpoint answers
  case $1 in
    etcd) curl -fs --max-time 2 http://127.0.0.1:2379/health >/dev/null ;;
    kube-apiserver) curl -fsk --max-time 2 "$API/readyz" >/dev/null ;;
    kube-controller-manager) curl -fsk --max-time 2 https://127.0.0.1:10257/healthz >/dev/null ;;
    kube-scheduler) curl -fsk --max-time 2 https://127.0.0.1:10259/healthz >/dev/null ;;
    containerd) ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 ;;
    kubelet) curl -fs --max-time 2 http://127.0.0.1:10248/healthz >/dev/null ;;
    kube-proxy) curl -fs --max-time 2 http://127.0.0.1:10256/healthz >/dev/null ;;
    *) return 2 ;;
  esac
}

kc() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

node_ready() {
  [ "$(kc get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

dns_answers() { # the kubernetes Service name, resolved through kube-dns's ClusterIP
  busybox nslookup -timeout=1 kubernetes.default.svc.cluster.local "$DNS_IP" 2>/dev/null | grep -q '10\.96\.0\.1$'
}

cluster_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do running_pid "$c" >/dev/null && healthy "$c" || return 1; done
  node_ready && dns_answers
}

module kubedock.local/clusterbin/crictl

go 1.24.0

require sigs.k8s.io/cri-tools v1.34.0

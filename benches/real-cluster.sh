#!/usr/bin/env bash
# devingress against `kubectl port-forward` on a real cluster: the cluster
# of the kubeconfig's current context (or BENCH_CONTEXT), e.g. kind or k3d.
#
# It deploys one nginx pod (BENCH_IMAGE) in the namespace devingress-bench,
# serving a 100-byte file and a 1 MiB one, with an Ingress of class
# devingress; runs the release build of devingress (its system files and
# control socket in a temporary directory, no HTTPS, DNS or load balancers)
# and `kubectl port-forward` to the pod in each of its protocols; then
# measures each with wrk in the shapes of the issue that asked for it (#13):
# 100 B over 1, 32 and 256 keep-alive connections and 8 clients that open a
# new connection per request; 1 MiB over 1 and 8 keep-alive connections.
# Each row's BENCH_SECONDS (default 10) are split into BENCH_ROUNDS (3) that
# the forwarders take in turn, each warmed for a second before its round.
#
# Printed for each row: requests/s, p99 (the median round's), the
# forwarder's CPU time per request (devingress's process, or kubectl's
# process tree), and the cluster's: the CPU of the processes named
# kube-apiserver and kubelet that this machine can see (Linux with kind or
# k3d: the node's processes are in the host's process table; "-" where
# none is visible, as with Docker Desktop on macOS).
#
# Run: bash benches/real-cluster.sh   (BENCH_KEEP=1 leaves the namespace)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
round_seconds=$(( (seconds + rounds / 2) / rounds ))
(( round_seconds >= 1 )) || round_seconds=1
ns=devingress-bench
host=nginx.bench.devingress.test
image=${BENCH_IMAGE:-nginx:1.27-alpine}
http_port=${BENCH_HTTP_PORT:-18480}
spdy_port=$((http_port + 1))
ws_port=$((http_port + 2))
kubectl=(kubectl)
[[ -n ${BENCH_CONTEXT:-} ]] && kubectl+=(--context "$BENCH_CONTEXT")
tick=$(getconf CLK_TCK)

say() { echo "real-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

for tool in kubectl wrk curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (bash tests/setup installs wrk and curl)"
done
"${kubectl[@]}" version --request-timeout=10s >/dev/null 2>&1 ||
  die "no cluster answers in context '$("${kubectl[@]}" config current-context 2>/dev/null || echo none)': start one (kind create cluster) or set BENCH_CONTEXT"

bin=${DEVINGRESS:-target/release/devingress}
if [[ ! -x $bin ]]; then
  say "building the release binary (cargo build --release)"
  cargo build --release --locked >&2
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -z ${BENCH_KEEP:-} ]]; then
    "${kubectl[@]}" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

say "deploying nginx ($image) in namespace $ns"
"${kubectl[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, namespace: $ns}
spec:
  replicas: 1
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      initContainers:
        - name: files
          image: $image
          command: [sh, -c, "head -c 100 /dev/zero > /html/small && head -c 1048576 /dev/zero > /html/big"]
          volumeMounts: [{name: html, mountPath: /html}]
      containers:
        - name: nginx
          image: $image
          ports: [{containerPort: 80}]
          volumeMounts: [{name: html, mountPath: /usr/share/nginx/html}]
      volumes: [{name: html, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: $ns}
spec:
  selector: {app: nginx}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: nginx, namespace: $ns}
spec:
  ingressClassName: devingress
  rules:
    - host: $host
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: nginx, port: {number: 80}}}}
EOF
"${kubectl[@]}" -n "$ns" rollout status deployment/nginx --timeout=180s >&2 ||
  die "the nginx pod did not become ready (can the cluster pull $image?)"
pod=$("${kubectl[@]}" -n "$ns" get pods -l app=nginx -o jsonpath='{.items[0].metadata.name}')

say "starting devingress on 127.0.0.1:$http_port and kubectl port-forward to $pod on $spdy_port (SPDY) and $ws_port (WebSocket)"
up=(up --http-port "$http_port" --no-https --no-dns --no-load-balancers --no-tray)
[[ -n ${BENCH_CONTEXT:-} ]] && up+=(--context "$BENCH_CONTEXT")
DEVINGRESS_SYSTEM_ROOT=$tmp/system DEVINGRESS_RUNTIME_DIR=$tmp/run RUST_LOG=${RUST_LOG:-info} \
  "$bin" "${up[@]}" >"$tmp/devingress.log" 2>&1 &
devingress_pid=$!
pids+=("$devingress_pid")
KUBECTL_PORT_FORWARD_WEBSOCKETS=false "${kubectl[@]}" -n "$ns" port-forward "pod/$pod" "$spdy_port:80" >"$tmp/spdy.log" 2>&1 &
spdy_pid=$!
pids+=("$spdy_pid")
"${kubectl[@]}" -n "$ns" port-forward "pod/$pod" "$ws_port:80" >"$tmp/ws.log" 2>&1 &
ws_pid=$!
pids+=("$ws_pid")

ready() { curl -fsS -o /dev/null --max-time 2 -H "Host: $host" "http://127.0.0.1:$1/small"; }
for port in "$http_port" "$spdy_port" "$ws_port"; do
  for _ in $(seq 1 150); do ready "$port" && break; sleep 0.2; done
  ready "$port" || die "nothing answers on 127.0.0.1:$port; devingress's log: $(tail -5 "$tmp/devingress.log")"
done

# CPU seconds (user + system, in clock ticks) of a process and its descendants.
tree_ticks() {
  local total=0 p
  for p in "$@"; do
    [[ -r /proc/$p/stat ]] || continue
    local stat rest
    local -a f
    stat=$(</proc/"$p"/stat)
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))
    local -a kids
    mapfile -t kids < <(ps -o pid= --ppid "$p" 2>/dev/null | tr -d ' ')
    ((${#kids[@]} == 0)) || total=$((total + $(tree_ticks "${kids[@]}")))
  done
  echo "$total"
}
mapfile -t cluster_pids < <(pgrep -x 'kube-apiserver|kubelet' || true)
((${#cluster_pids[@]} > 0)) || say "no kube-apiserver or kubelet process visible here: the cluster column shows -"

# One wrk run: prints "requests p99_ms forwarder_ticks cluster_ticks".
measure() {
  local port=$1 path=$2 conns=$3 fresh=$4 secs=$5 pid=$6
  local threads=$(( conns < 2 ? conns : 2 ))
  local args=(-t "$threads" -c "$conns" -d "${secs}s" --latency -H "Host: $host")
  [[ $fresh == 1 ]] && args+=(-H "Connection: close")
  local f0 c0 out
  f0=$(tree_ticks "$pid")
  c0=$(tree_ticks "${cluster_pids[@]}")
  out=$(wrk "${args[@]}" "http://127.0.0.1:$port$path")
  local f1 c1
  f1=$(tree_ticks "$pid")
  c1=$(tree_ticks "${cluster_pids[@]}")
  local requests p99
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000} print v}' <<<"$out")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
    say "errors on port $port: $(grep "Non-2xx\|Socket errors" <<<"$out" | tr -s ' ')"
  fi
  echo "${requests:-0} ${p99:-nan} $((f1 - f0)) $((c1 - c0))"
}

names=("devingress" "kubectl SPDY" "kubectl WebSocket")
ports=("$http_port" "$spdy_port" "$ws_port")
procs=("$devingress_pid" "$spdy_pid" "$ws_pid")
shapes=(
  "100 B, 1 keep-alive connection|/small|1|0"
  "100 B, 32 keep-alive connections|/small|32|0"
  "100 B, 256 keep-alive connections|/small|256|0"
  "100 B, 8 clients, new connection each|/small|8|1"
  "1 MiB, 1 keep-alive connection|/big|1|0"
  "1 MiB, 8 keep-alive connections|/big|8|0"
)

echo "devingress against kubectl port-forward on ${BENCH_CONTEXT:-$("${kubectl[@]}" config current-context)}: wrk, $((round_seconds * rounds)) s a row in $rounds round(s), pod $ns/$pod ($image)"
printf '%-40s %-18s %10s %9s %14s %14s\n' shape forwarder "req/s" "p99 ms" "CPU ms/req" "cluster ms/req"
for shape in "${shapes[@]}"; do
  IFS='|' read -r label path conns fresh <<<"$shape"
  declare -a req=(0 0 0) fticks=(0 0 0) cticks=(0 0 0) p99s=("" "" "")
  for ((r = 0; r < rounds; r++)); do
    for i in 0 1 2; do
      measure "${ports[i]}" "$path" "$conns" "$fresh" 1 "${procs[i]}" >/dev/null
      read -r n p f c < <(measure "${ports[i]}" "$path" "$conns" "$fresh" "$round_seconds" "${procs[i]}")
      req[i]=$((req[i] + n))
      fticks[i]=$((fticks[i] + f))
      cticks[i]=$((cticks[i] + c))
      p99s[i]="${p99s[i]} $p"
    done
  done
  rps=()
  for i in 0 1 2; do
    total=$((round_seconds * rounds))
    rps[i]=$(awk -v n="${req[i]}" -v s="$total" 'BEGIN {printf "%.0f", n / s}')
    p99=$(tr ' ' '\n' <<<"${p99s[i]}" | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    cpu=$(awk -v t="${fticks[i]}" -v k="$tick" -v n="${req[i]}" 'BEGIN {if (n > 0) printf "%.4f", t * 1000 / k / n; else print "-"}')
    if ((${#cluster_pids[@]} > 0)); then
      cl=$(awk -v t="${cticks[i]}" -v k="$tick" -v n="${req[i]}" 'BEGIN {if (n > 0) printf "%.4f", t * 1000 / k / n; else print "-"}')
    else
      cl=-
    fi
    printf '%-40s %-18s %10s %9s %14s %14s\n' "$label" "${names[i]}" "${rps[i]}" "$p99" "$cpu" "$cl"
  done
  awk -v d="${rps[0]}" -v s="${rps[1]}" -v w="${rps[2]}" -v l="$label" \
    'BEGIN {if (s > 0 && w > 0) printf "%-40s devingress is %.2fx kubectl SPDY and %.2fx kubectl WebSocket in req/s\n", l, d / s, d / w}'
done

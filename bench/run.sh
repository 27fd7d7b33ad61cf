#!/usr/bin/env bash
# Fleet benchmarks: rollbook against kubectl, both talking to `rollbook sim serve`
# with 10 ms added to every answer. Prints one Markdown table (paste it into BENCHMARKS.md).
#
#   cargo build --profile dist && bench/run.sh   # full run (the shipped build; a few minutes)
#   SMOKE=1 bench/run.sh    # tiny sizes, a few seconds: checks that the script still works
#   SERVE=0 bench/run.sh    # without the rollbook serve rows (S1-S4) at the end
#   cargo run --release --example serve_bench   # only the rollbook serve rows (S1-S4)
#
# Env: ROLLBOOK (binary, default target/dist/rollbook), KUBECTL (default kubectl),
#      RUNS (repeats for medians, default 15), SEQ_SAMPLE (sequential kubectl sample, default 50),
#      PYTHON (for the virtualenv of the Python peer, default python3), VENV (default
#      target/venv-bench; created with `pip install kubernetes` when missing),
#      FLEET_CONC (calls in flight in the fleet rows, default 128).
#
# Rows 1-6: one cluster, 1,000 Deployments. Rows 7-10: an AKS fleet, 50 clusters × 200
# Deployments = 10,000, undone by runbooks/aks-fleet-undo.rhai (credentials through ARM, undo,
# wait for every rollout), at 1,000 (the first 5 clusters) and at 10,000 (all 50).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROLLBOOK=${ROLLBOOK:-$ROOT/target/dist/rollbook}
KUBECTL=${KUBECTL:-kubectl}
if [[ -n "${SMOKE:-}" ]]; then
  NS=2 PER=5 RUNS=${RUNS:-2} SEQ_SAMPLE=${SEQ_SAMPLE:-3} CHECKS=5
  CLUSTERS=4 SMALL_CLUSTERS=2 PER_CLUSTER=3
else
  NS=10 PER=100 RUNS=${RUNS:-15} SEQ_SAMPLE=${SEQ_SAMPLE:-50} CHECKS=1000
  CLUSTERS=50 SMALL_CLUSTERS=5 PER_CLUSTER=200
fi
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$ROOT/target/venv-bench}
TOTAL=$((NS * PER))
CONC=50
# The fleet rows (7-10): calls in flight over all 50 clusters. At 50 the run is held by the
# simulator's latency (10,000 × 4 requests × 10 ms ÷ 50 = 8 s), not by the two cores; the peers
# are measured at this concurrency and at CONC, and compared at their faster.
FLEET_CONC=${FLEET_CONC:-128}
LATENCY_MS=10
[[ -x "$ROLLBOOK" ]] || { echo "build first: cargo build --profile dist (or set ROLLBOOK)" >&2; exit 2; }
# hyperfine (timing) from Debian's packages when it is missing and this script may install it.
if ! command -v hyperfine >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine; } >&2 \
    || echo "could not install hyperfine; timing with the shell instead" >&2
fi

WORK=$(mktemp -d)
SIM_PID=
AKS_PID=
cleanup() {
  [[ -n "$SIM_PID" ]] && kill "$SIM_PID" 2>/dev/null
  [[ -n "$AKS_PID" ]] && kill "$AKS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# bench N NAME CMD...: median wall seconds of N runs of CMD. CMD is run directly (no shell in
# between) by hyperfine when it is installed, else timed here; a failing run stops the script.
bench() {
  local n=$1 name=$2; shift 2
  if command -v hyperfine >/dev/null; then
    hyperfine -N --style none --warmup $(( n > 1 ? 1 : 0 )) --runs "$n" --export-json "$WORK/$name.json" -- "$(printf '%q ' "$@")" \
      >/dev/null 2>"$WORK/$name.err" || { cat "$WORK/$name.err" >&2; "$@" >&2 || true; exit 1; }
    jq '.results[0].median' "$WORK/$name.json"
  else
    for _ in $(seq "$n"); do
      local t0; t0=$(date +%s.%N)
      "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2 || true; exit 1; }
      awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b-a}'
    done | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
  fi
}
ms() { awk -v s="$1" 'BEGIN {printf "%.1f", s*1000}'; }
# script NAME BODY: a small bash script under $WORK/bin, for the cases that need a pipe or a loop.
mkdir -p "$WORK/bin"
script() { printf '#!/usr/bin/env bash\nset -euo pipefail\n%s\n' "$2" >"$WORK/bin/$1"; chmod +x "$WORK/bin/$1"; echo "$WORK/bin/$1"; }

# The world: NS namespaces × PER Deployments, each with two revisions (undo flips between them).
SCENARIO=$WORK/fleet.toml
{
  echo "name = \"fleet: $TOTAL deployments in $NS namespaces\""
  echo "[sim]"
  echo "latency = \"${LATENCY_MS}ms\""
  for n in $(seq 0 $((NS - 1))); do
    for d in $(seq 0 $((PER - 1))); do
      printf '[[k8s.deployments]]\nnamespace = "ns%s"\nname = "web%s"\nrevisions = ["fleet/web:1.0.%s", "fleet/web:1.1.%s"]\n' "$n" "$d" "$d" "$d"
    done
  done
} >"$SCENARIO"

"$ROLLBOOK" sim serve "$SCENARIO" --kubeconfig "$WORK/kubeconfig" >"$WORK/sim.json" 2>"$WORK/sim.err" &
SIM_PID=$!
for _ in $(seq 2400); do [[ -s "$WORK/sim.json" ]] && break; sleep 0.05; done
[[ -s "$WORK/sim.json" ]] || { cat "$WORK/sim.err" >&2; exit 1; }
HEALTH_BASE=$(sed -n 's/.*"health_base": *"\([^"]*\)".*/\1/p' "$WORK/sim.json")
export KUBECONFIG=$WORK/kubeconfig
export ROLLBOOK_STATE_DIR=$WORK/state

KC=("$KUBECTL" --kubeconfig "$KUBECONFIG")
RB=("$ROLLBOOK" run --yes --kubeconfig "$KUBECONFIG" --state-dir "$WORK/state")

# 1. One undo: a fresh kubectl cache dir every time (discovery included, as on a new machine).
ONE_KC=$(script one-kubectl "exec \"$KUBECTL\" --kubeconfig \"$KUBECONFIG\" --cache-dir \"\$(mktemp -d -p \"$WORK\")\" rollout undo deployment/web0 -n ns0")
T1_KC=$(bench "$RUNS" one-kubectl "$ONE_KC")
T1_RB=$(bench "$RUNS" one-rollbook "${RB[@]}" bench/one-undo.rhai -p namespace=ns0 -p deployment=web0)

# 2. The fleet. kubectl gets a shared, warm discovery cache (kinder to kubectl than a fresh one).
CACHE=$WORK/kube-cache
"${KC[@]}" --cache-dir "$CACHE" api-resources >/dev/null
for n in $(seq 0 $((NS - 1))); do for d in $(seq 0 $((PER - 1))); do echo "ns$n web$d"; done; done >"$WORK/targets"
SEQ=$(script fleet-seq "head -n $SEQ_SAMPLE \"$WORK/targets\" | while read -r ns d; do
  \"$KUBECTL\" --kubeconfig \"$KUBECONFIG\" --cache-dir \"$CACHE\" rollout undo \"deployment/\$d\" -n \"\$ns\" >/dev/null
done")
XARGS=$(script fleet-xargs "xargs -P $CONC -L 1 sh -c '\"\$0\" --kubeconfig \"\$1\" --cache-dir \"\$2\" rollout undo \"deployment/\$4\" -n \"\$3\" >/dev/null' \\
  \"$KUBECTL\" \"$KUBECONFIG\" \"$CACHE\" <\"$WORK/targets\"")
FLEET=("${RB[@]}" bench/fleet-undo.rhai -p namespaces=$NS -p per_namespace=$PER -p concurrency=$CONC)
FLEET_RUNS=$(( RUNS < 5 ? RUNS : 5 ))
T2_RB=$(bench "$FLEET_RUNS" fleet-rollbook "${FLEET[@]}")
T2_SAMPLE=$(bench 1 fleet-seq "$SEQ")
T2_SEQ=$(awk -v s="$T2_SAMPLE" -v n="$SEQ_SAMPLE" -v t="$TOTAL" 'BEGIN {print s/n*t}')
T2_XARGS=$(bench 1 fleet-xargs "$XARGS")
# Floor: every undo is 3 requests (GET deployment, LIST replicasets, PATCH), each ≥ latency.
FLOOR=$(awk -v t="$TOTAL" -v l="$LATENCY_MS" -v c="$CONC" 'BEGIN {print t*3*l/1000/c}')

# 3. Health probes.
T3_RB=$(bench "$FLEET_RUNS" fleet-probe "${RB[@]}" bench/fleet-probe.rhai -p "health_base=$HEALTH_BASE" \
  -p namespaces=$NS -p per_namespace=$PER -p concurrency=$CONC)
FLOOR3=$(awk -v t="$TOTAL" -v l="$LATENCY_MS" -v c="$CONC" 'BEGIN {print t*l/1000/c}')

# 4. Cold start.
T4_VERSION=$(bench $((RUNS * 4)) version "$ROLLBOOK" --version)
mkdir -p "$WORK/check"
for i in $(seq "$CHECKS"); do cp runbooks/k8s-rollout-undo.rhai "$WORK/check/r$i.rhai"; done
T4_CHECK=$(bench "$RUNS" check "$ROLLBOOK" check "$WORK"/check/*.rhai)

# 5. Peak RSS of the fleet run, and the CPU it and the simulator spent (both share this
# machine's cores, so together they bound how fast the run can go here).
sim_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SIM_PID/stat"; }
SIM_CPU0=$(sim_cpu)
/usr/bin/time -v "${FLEET[@]}" >/dev/null 2>"$WORK/time.txt" || { cat "$WORK/time.txt" >&2; exit 1; }
SIM_CPU=$(awk -v a="$SIM_CPU0" -v b="$(sim_cpu)" 'BEGIN {printf "%.2f", b-a}')
RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
RSS_MB=$(awk -v k="$RSS_KB" 'BEGIN {printf "%.1f", k/1024}')
RB_CPU=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$WORK/time.txt")
CORES=$(nproc)
CPU_FLOOR=$(awk -v a="$RB_CPU" -v b="$SIM_CPU" -v c="$CORES" 'BEGIN {printf "%.2f", (a+b)/c}')

# 7-12. The AKS fleet: CLUSTERS clusters (ARM managedClusters, each its own simulated API
# server) × PER_CLUSTER Deployments, in a second simulator.
FLEET_TOTAL=$((CLUSTERS * PER_CLUSTER))
SMALL_TOTAL=$((SMALL_CLUSTERS * PER_CLUSTER))
cluster() { printf 'aks-fleet-%02d' "$1"; }
AKS_SCENARIO=$WORK/aks-fleet.toml
{
  echo "name = \"aks fleet: $CLUSTERS clusters × $PER_CLUSTER deployments\""
  echo "[sim]"
  echo "latency = \"${LATENCY_MS}ms\""
  for c in $(seq 0 $((CLUSTERS - 1))); do
    printf '[[aks.clusters]]\ngroup = "rg-fleet"\nname = "%s"\ncontext = "%s"\n' "$(cluster "$c")" "$(cluster "$c")"
  done
  for c in $(seq 0 $((CLUSTERS - 1))); do
    for d in $(seq 0 $((PER_CLUSTER - 1))); do
      printf '[[k8s.deployments]]\ncontext = "%s"\nnamespace = "apps"\nname = "web%s"\nrevisions = ["fleet/web:1.0.%s", "fleet/web:1.1.%s"]\n' \
        "$(cluster "$c")" "$d" "$d" "$d"
    done
  done
} >"$AKS_SCENARIO"
T_LOAD0=$(date +%s.%N)
"$ROLLBOOK" sim serve "$AKS_SCENARIO" --kubeconfig "$WORK/aks-kubeconfig" >"$WORK/aks-sim.json" 2>"$WORK/aks-sim.err" &
AKS_PID=$!
for _ in $(seq 12000); do [[ -s "$WORK/aks-sim.json" ]] && break; sleep 0.01; done
[[ -s "$WORK/aks-sim.json" ]] || { cat "$WORK/aks-sim.err" >&2; exit 1; }
T_LOAD=$(awk -v a="$T_LOAD0" -v b="$(date +%s.%N)" 'BEGIN {print b-a}')
# Its CPU as well: on a shared machine the wall time of the load says more about the neighbours.
T_LOAD_CPU=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$AKS_PID/stat")
ARM=$(sed -n 's/.*"arm_endpoint": *"\([^"]*\)".*/\1/p' "$WORK/aks-sim.json")
AKS_KC=$WORK/aks-kubeconfig
join() { local IFS=,; echo "$*"; }
ALL_CLUSTERS=(); for c in $(seq 0 $((CLUSTERS - 1))); do ALL_CLUSTERS+=("$(cluster "$c")"); done
DEPLOYS=(); for d in $(seq 0 $((PER_CLUSTER - 1))); do DEPLOYS+=("web$d"); done
# aks-fleet-undo with the first N clusters: `$AKS_FLEET N`.
AKS_FLEET=$(script aks-fleet "n=\$1
clusters=(${ALL_CLUSTERS[*]})
clusters=\$(IFS=,; echo \"\${clusters[*]:0:\$n}\")
export ROLLBOOK_ARM_ENDPOINT=\"$ARM\" ROLLBOOK_AZURE_TOKEN=bench AZURE_SUBSCRIPTION_ID=00000000-0000-0000-0000-000000000000
exec \"$ROLLBOOK\" run --yes --kubeconfig \"$AKS_KC\" --state-dir \"$WORK/state\" runbooks/aks-fleet-undo.rhai \\
  -p group=rg-fleet -p \"clusters=\$clusters\" -p namespace=apps -p \"deployments=$(join "${DEPLOYS[@]}")\" \\
  -p concurrency=$FLEET_CONC -p wait=5m -p only_failing=false")
aks_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$AKS_PID/stat"; }
# measure N LABEL: one timed run over the first N clusters; sets <LABEL>_{WALL,CPU,SIM,RSS}.
measure() {
  local n=$1 label=$2 sim0 t0
  sim0=$(aks_cpu); t0=$(date +%s.%N)
  /usr/bin/time -v "$AKS_FLEET" "$n" >"$WORK/$label.out" 2>"$WORK/$label.time" \
    || { cat "$WORK/$label.out" "$WORK/$label.time" >&2; exit 1; }
  printf -v "${label}_WALL" '%s' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b-a}')"
  printf -v "${label}_SIM" '%s' "$(awk -v a="$sim0" -v b="$(aks_cpu)" 'BEGIN {printf "%.2f", b-a}')"
  printf -v "${label}_CPU" '%s' "$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$WORK/$label.time")"
  printf -v "${label}_RSS" '%s' "$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/$label.time")"
}
"$AKS_FLEET" 1 >/dev/null 2>&1 || { "$AKS_FLEET" 1 >&2; exit 1; }   # warm-up: page cache, one cluster
measure "$SMALL_CLUSTERS" SMALL
measure "$CLUSTERS" BIG
# Again: the first run on a state dir creates a lock file per target (ext4 then writes their
# blocks out with each journal fsync); the second finds them.
measure "$CLUSTERS" AGAIN1
measure "$CLUSTERS" AGAIN2
measure "$CLUSTERS" AGAIN3
# The repeat is the run of the three with the median CPU (a neighbour's burst on this shared
# machine lands in one run, not in the row); its peak RSS is the highest of the three.
read -r AGAIN_WALL AGAIN_CPU AGAIN_SIM < <(printf '%s %s %s\n' \
  "$AGAIN1_WALL" "$AGAIN1_CPU" "$AGAIN1_SIM" "$AGAIN2_WALL" "$AGAIN2_CPU" "$AGAIN2_SIM" \
  "$AGAIN3_WALL" "$AGAIN3_CPU" "$AGAIN3_SIM" | sort -g -k2 | sed -n 2p)
AGAIN_RSS=$(printf '%s\n' "$AGAIN1_RSS" "$AGAIN2_RSS" "$AGAIN3_RSS" | sort -n | tail -1)
AGAIN_CPUS="$AGAIN1_CPU / $AGAIN2_CPU / $AGAIN3_CPU"

# The peers, on the first SMALL_CLUSTERS clusters, extrapolated to the whole fleet.
for c in "${ALL_CLUSTERS[@]:0:$SMALL_CLUSTERS}"; do for d in "${DEPLOYS[@]}"; do echo "$c apps $d"; done; done >"$WORK/aks-targets"
AKS_CACHE=$WORK/aks-kube-cache
for c in "${ALL_CLUSTERS[@]:0:$SMALL_CLUSTERS}"; do "$KUBECTL" --kubeconfig "$AKS_KC" --context "$c" --cache-dir "$AKS_CACHE" api-resources >/dev/null; done
AKS_SEQ=$(script aks-seq "head -n $SEQ_SAMPLE \"$WORK/aks-targets\" | while read -r c ns d; do
  \"$KUBECTL\" --kubeconfig \"$AKS_KC\" --context \"\$c\" --cache-dir \"$AKS_CACHE\" rollout undo \"deployment/\$d\" -n \"\$ns\" >/dev/null
done")
# aks_xargs P: the xargs peer script at concurrency P.
aks_xargs() {
  script "aks-xargs-$1" "xargs -P $1 -L 1 sh -c '\"\$0\" --kubeconfig \"\$1\" --cache-dir \"\$2\" --context \"\$3\" rollout undo \"deployment/\$5\" -n \"\$4\" >/dev/null' \\
  \"$KUBECTL\" \"$AKS_KC\" \"$AKS_CACHE\" <\"$WORK/aks-targets\""
}
# faster A_SECONDS A_CONC B_SECONDS B_CONC: "seconds concurrency" of the faster.
faster() { awk -v a="$1" -v ac="$2" -v b="$3" -v bc="$4" 'BEGIN {if (a <= b) print a, ac; else print b, bc}'; }
T_AKS_SEQ_SAMPLE=$(bench 1 aks-seq "$AKS_SEQ")
T_AKS_SEQ=$(awk -v s="$T_AKS_SEQ_SAMPLE" -v n="$SEQ_SAMPLE" -v t="$FLEET_TOTAL" 'BEGIN {print s/n*t}')
XARGS_A=$(aks_xargs "$FLEET_CONC"); XARGS_B=$(aks_xargs "$CONC")
T_XARGS_A=$(bench 1 aks-xargs-a "$XARGS_A"); T_XARGS_B=$(bench 1 aks-xargs-b "$XARGS_B")
read -r T_AKS_XARGS_SMALL XARGS_P < <(faster "$T_XARGS_A" "$FLEET_CONC" "$T_XARGS_B" "$CONC")
T_AKS_XARGS=$(awk -v s="$T_AKS_XARGS_SMALL" -v n="$SMALL_TOTAL" -v t="$FLEET_TOTAL" 'BEGIN {print s/n*t}')
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV" && "$VENV/bin/pip" install -q kubernetes >&2 \
    || { echo "cannot create the Python peer's virtualenv $VENV (python3 -m venv, pip install kubernetes)" >&2; exit 1; }
fi
"$VENV/bin/python" -c 'import kubernetes' 2>/dev/null || "$VENV/bin/pip" install -q kubernetes >&2
T_PY_A=$(bench 1 aks-python-a "$VENV/bin/python" bench/py_undo.py "$AKS_KC" "$WORK/aks-targets" "$FLEET_CONC")
T_PY_B=$(bench 1 aks-python-b "$VENV/bin/python" bench/py_undo.py "$AKS_KC" "$WORK/aks-targets" "$CONC")
read -r T_PY_SMALL PY_THREADS < <(faster "$T_PY_A" "$FLEET_CONC" "$T_PY_B" "$CONC")
T_PY=$(awk -v s="$T_PY_SMALL" -v n="$SMALL_TOTAL" -v t="$FLEET_TOTAL" 'BEGIN {print s/n*t}')

per_undo() { awk -v c="$1" -v n="$2" 'BEGIN {printf "%.3f", c/n*1000}'; }
BIG_BOUND=$(awk -v a="$BIG_CPU" -v b="$BIG_SIM" -v c="$CORES" 'BEGIN {printf "%.2f", (a+b)/c}')
SMALL_BOUND=$(awk -v a="$SMALL_CPU" -v b="$SMALL_SIM" -v c="$CORES" 'BEGIN {printf "%.2f", (a+b)/c}')
BIG_RSS_MB=$(awk -v k="$BIG_RSS" 'BEGIN {printf "%.1f", k/1024}')

verdict() { if awk "BEGIN {exit !($1)}"; then echo met; else echo "NOT met"; fi; }
cat <<TABLE
| # | measurement | rollbook | kubectl | target | result |
|---|---|---|---|---|---|
| 1 | one undo, median of $RUNS | $(ms "$T1_RB") ms | $(ms "$T1_KC") ms (fresh cache dir) | ≤ ½ kubectl | $(verdict "$T1_RB <= $T1_KC / 2") |
| 2a | undo $TOTAL deployments / $NS namespaces, concurrency $CONC (median of $FLEET_RUNS) | $(ms "$T2_RB") ms | sequential loop: $(ms "$T2_SEQ") ms (extrapolated from $SEQ_SAMPLE: $(ms "$T2_SAMPLE") ms) | ≥ 50× faster | $(awk -v a="$T2_SEQ" -v b="$T2_RB" 'BEGIN {printf "%.0f×", a/b}') — $(verdict "$T2_RB * 50 <= $T2_SEQ") |
| 2b | same | | xargs -P $CONC: $(ms "$T2_XARGS") ms | faster than xargs | $(awk -v a="$T2_XARGS" -v b="$T2_RB" 'BEGIN {printf "%.1f×", a/b}') — $(verdict "$T2_RB < $T2_XARGS") |
| 2c | same | | floor $TOTAL×3 requests×${LATENCY_MS} ms÷$CONC = $(ms "$FLOOR") ms | within 2× of floor | $(awk -v a="$T2_RB" -v b="$FLOOR" 'BEGIN {printf "%.2f×", a/b}') — $(verdict "$T2_RB <= 2 * $FLOOR") |
| 3 | $TOTAL health::http probes, concurrency $CONC (median of $FLEET_RUNS) | $(ms "$T3_RB") ms | | (floor $(ms "$FLOOR3") ms) | |
| 4a | rollbook --version, median of $((RUNS * 4)) | $(ms "$T4_VERSION") ms | | < 10 ms | $(verdict "$T4_VERSION < 0.010") |
| 4b | rollbook check over $CHECKS runbooks, median of $RUNS | $(ms "$T4_CHECK") ms | | < 1 s | $(verdict "$T4_CHECK < 1") |
| 5 | peak RSS of the $TOTAL-deployment run | $RSS_MB MiB | | < 64 MiB | $(verdict "$RSS_KB < 65536") |
| 6 | CPU of one $TOTAL-deployment run (user+sys) | rollbook $RB_CPU s, simulator $SIM_CPU s | | (on $CORES cores: ≥ $CPU_FLOOR s of wall time) | |
| 7 | simulator load of the $CLUSTERS-cluster × $PER_CLUSTER world ($FLEET_TOTAL Deployments) | $(ms "$T_LOAD") ms (CPU $T_LOAD_CPU s) | | < 5 s | $(verdict "$T_LOAD < 5") |
| 8a | aks-fleet-undo: credentials, undo, rollout status, $SMALL_TOTAL deployments / $SMALL_CLUSTERS clusters, concurrency $FLEET_CONC | $(ms "$SMALL_WALL") ms; CPU $SMALL_CPU s = $(per_undo "$SMALL_CPU" "$SMALL_TOTAL") ms per undo; simulator $SMALL_SIM s | | (on $CORES cores: ≥ $SMALL_BOUND s) | $(awk -v a="$SMALL_WALL" -v b="$SMALL_BOUND" 'BEGIN {printf "%.2f×", a/b}') of the bound |
| 8b | same, $FLEET_TOTAL deployments / $CLUSTERS clusters | $(ms "$BIG_WALL") ms; CPU $BIG_CPU s = $(per_undo "$BIG_CPU" "$FLEET_TOTAL") ms per undo; simulator $BIG_SIM s | | within 1.5× of ≥ $BIG_BOUND s (on $CORES cores) | $(awk -v a="$BIG_WALL" -v b="$BIG_BOUND" 'BEGIN {printf "%.2f×", a/b}') — $(verdict "$BIG_WALL <= 1.5 * $BIG_BOUND") |
| 8b' | same, run three times more (its lock files exist): the median by CPU | $(ms "$AGAIN_WALL") ms; CPU $AGAIN_CPU s (of $AGAIN_CPUS s) = $(per_undo "$AGAIN_CPU" "$FLEET_TOTAL") ms per undo; simulator $AGAIN_SIM s; peak RSS (highest) $(awk -v k="$AGAIN_RSS" 'BEGIN {printf "%.1f", k/1024}') MiB | | | |
| 8c | CPU per undo at $FLEET_TOTAL, lock files there (as when 1.06 was measured: row 6 follows runs on its targets), median of 3 | $(per_undo "$AGAIN_CPU" "$FLEET_TOTAL") ms (first run, creating them: $(per_undo "$BIG_CPU" "$FLEET_TOTAL") ms) | | ≤ 0.353 ms (⅓ of 1.06) | $(verdict "$AGAIN_CPU / $FLEET_TOTAL * 1000 <= 0.3534") |
| 8d | growth $FLEET_TOTAL / $SMALL_TOTAL | CPU $(awk -v a="$BIG_CPU" -v b="$SMALL_CPU" 'BEGIN {printf "%.1f×", a/b}'), wall $(awk -v a="$BIG_WALL" -v b="$SMALL_WALL" 'BEGIN {printf "%.1f×", a/b}') | | ≤ 11× | $(verdict "$BIG_CPU <= 11 * $SMALL_CPU && $BIG_WALL <= 11 * $SMALL_WALL") |
| 9 | peak RSS of the $FLEET_TOTAL-deployment run | $BIG_RSS_MB MiB | | < 64 MiB | $(verdict "$BIG_RSS < 65536") |
| 10a | $FLEET_TOTAL undos, peers | | kubectl loop per cluster: $(ms "$T_AKS_SEQ") ms (extrapolated from $SEQ_SAMPLE: $(ms "$T_AKS_SEQ_SAMPLE") ms) | ≥ 20× faster | $(awk -v a="$T_AKS_SEQ" -v b="$BIG_WALL" 'BEGIN {printf "%.0f×", a/b}') — $(verdict "$BIG_WALL * 20 <= $T_AKS_SEQ") |
| 10b | same | | xargs -P $XARGS_P (the faster of $FLEET_CONC and $CONC): $(ms "$T_AKS_XARGS") ms (extrapolated from $SMALL_TOTAL: $(ms "$T_AKS_XARGS_SMALL") ms) | ≥ 20× faster | $(awk -v a="$T_AKS_XARGS" -v b="$BIG_WALL" 'BEGIN {printf "%.0f×", a/b}') — $(verdict "$BIG_WALL * 20 <= $T_AKS_XARGS") |
| 10c | same | | Python kubernetes client, $PY_THREADS threads (the faster of $FLEET_CONC and $CONC): $(ms "$T_PY") ms (extrapolated from $SMALL_TOTAL: $(ms "$T_PY_SMALL") ms) | ≥ 20× faster | $(awk -v a="$T_PY" -v b="$BIG_WALL" 'BEGIN {printf "%.0f×", a/b}') — $(verdict "$BIG_WALL * 20 <= $T_PY") |
TABLE

# 7. rollbook serve: webhook-to-first-mutation latency over 200 alerts, and a burst of 1,000
# alerts in 10 s (every alert decided, no run lost, max_runs held, peak RSS). The simulator is
# in-process in the example (its request record is where the first mutation is seen).
[[ "${SERVE:-1}" == 0 ]] && exit 0   # SERVE=0: the fleet rows only
echo
SERVE_BENCH=(cargo run --quiet --release --example serve_bench -- --rollbook "$ROLLBOOK")
if [[ -n "${SMOKE:-}" ]]; then SERVE_BENCH+=(--smoke); fi
"${SERVE_BENCH[@]}"

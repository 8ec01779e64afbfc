#!/usr/bin/env bash
# A flamegraph of a coco primary under write or read load (docs/perf.md).
#
#   cargo build --release && scripts/flamegraph.sh write|read [out.svg]
#
# Starts a 3-node sandbox (20 ms commit latency target), drives node0 with `coco bench`
# (64 connections; private writes, or reads of 20,000 keys written first), records node0 with
# `perf record --call-graph dwarf` for 5 s, and folds the stacks into an SVG with inferno
# (installed with `cargo install inferno` if missing); FOLDED=path keeps the folded stacks for
# grepping. Needs `perf` and permission to profile (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail

case ${1:-} in
write) WORKLOAD=private-write ;;
read) WORKLOAD=read ;;
*) echo "usage: $0 write|read [out.svg]" >&2; exit 2 ;;
esac
OUT=${2:-docs/perf/$1-path-flamegraph.svg}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COCO=${COCO:-$ROOT/target/release/coco}
PORT=${PORT:-9900}
WORK=$(mktemp -d)
trap 'pkill -INT -f "sandbox --workspace $WORK/ws" 2>/dev/null || true; sleep 2; rm -rf "$WORK"' EXIT

command -v perf >/dev/null || { echo "perf is needed" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || cargo install inferno --locked
[ -x "$COCO" ] || { echo "build coco first: cargo build --release" >&2; exit 1; }

setsid "$COCO" sandbox --workspace "$WORK/ws" --port "$PORT" --commit-latency-target-ms 20 \
    >"$WORK/sandbox.log" 2>&1 &
until grep -q "Press Ctrl-C" "$WORK/sandbox.log" 2>/dev/null; do sleep 0.5; done
C=$WORK/ws/sandbox_common
"$COCO" bench --quiet --address "127.0.0.1:$PORT" --cacert "$C/service_cert.pem" \
    --cert "$C/user0_cert.pem" --key "$C/user0_privk.pem" --workload "$WORKLOAD" --duration-s 10 \
    >"$WORK/bench.json" &
BENCH=$!
# Past the read workload's preload (20,000 writes first, about a second) and the load's start.
if [ "$1" = read ]; then sleep 4; else sleep 2; fi
perf record -F 99 --call-graph dwarf,16384 -p "$(cat "$WORK/ws/node0/coco.pid")" \
    -o "$WORK/perf.data" -- sleep 5 >/dev/null 2>&1
wait "$BENCH"
mkdir -p "$(dirname "$OUT")"
FOLDED=${FOLDED:-$WORK/stacks.folded}
perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf >"$FOLDED"
inferno-flamegraph --title "coco primary under $1 load" <"$FOLDED" >"$OUT"
echo "flamegraph: $OUT ($(jq -r .throughput_per_s "$WORK/bench.json" | cut -d. -f1) ${1}s/s)"

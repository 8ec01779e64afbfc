#!/usr/bin/env bash
# Time a disaster recovery of a sandbox holding N transactions (docs/perf.md).
#
#   cargo build --release && scripts/recovery-timing.sh [N] [snapshot|ledger]
#
# Starts a 3-node sandbox in a temporary workspace, writes until the commit index reaches N
# (`coco bench`, private writes over 1M keys), kills every node with SIGKILL, and runs
# `coco sandbox --recover --nodes 1`: from the latest committed snapshot plus the ledger after it
# (`snapshot`, the default), or from the whole ledger with the snapshots removed (`ledger`).
# Prints the sandbox's own account of the recovery and node0's replay log lines.
set -euo pipefail

N=${1:-1000000}
MODE=${2:-snapshot}
PORT=${PORT:-9400}
COCO=${COCO:-$(dirname "$0")/../target/release/coco}
WORK=$(mktemp -d)
WS=$WORK/ws
C=$WS/sandbox_common
trap 'pkill -INT -f "sandbox --workspace $WS" 2>/dev/null || true; sleep 2; rm -rf "$WORK"' EXIT

setsid "$COCO" sandbox --workspace "$WS" --port "$PORT" >"$WORK/sandbox.log" 2>&1 &
until grep -q "Press Ctrl-C" "$WORK/sandbox.log" 2>/dev/null; do sleep 0.5; done

commit() {
    curl -s "https://127.0.0.1:$PORT/node/commit" --cacert "$C/service_cert.pem" |
        sed -E 's/.*"[0-9]+\.([0-9]+)".*/\1/'
}
while [ "$(commit)" -lt "$N" ]; do
    "$COCO" bench --address "127.0.0.1:$PORT" --cacert "$C/service_cert.pem" \
        --cert "$C/user0_cert.pem" --key "$C/user0_privk.pem" --keys 1000000 \
        --duration-s 10 >/dev/null 2>&1
done
echo "committed: $(commit) transactions"

pkill -9 -f "sandbox --workspace $WS" || true
for p in "$WS"/node*/coco.pid; do kill -9 "$(cat "$p")" 2>/dev/null || true; done
sleep 1
if [ "$MODE" = ledger ]; then
    rm -f "$WS"/node*/snapshots/*
fi

"$COCO" sandbox --workspace "$WS" --port "$PORT" --nodes 1 --recover >"$WORK/recover.log" 2>&1 &
until grep -q "Press Ctrl-C" "$WORK/recover.log" 2>/dev/null; do
    if ! kill -0 $! 2>/dev/null; then cat "$WORK/recover.log"; exit 1; fi
    sleep 0.5
done
grep -E "Recovering from|open again" "$WORK/recover.log"
grep -E "recovering|recovered service is open" "$WS/node0/out.log" | sed -E 's/\x1b\[[0-9;]*m//g'

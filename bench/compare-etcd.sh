#!/usr/bin/env bash
# coco against etcd, side by side, with the same client and load shape (issue: performance).
#
#   cargo build --release && bench/compare-etcd.sh [seconds]
#
# Installs etcd from the distribution's packages if it is missing, starts a 3-member etcd
# cluster on loopback with TLS (client certificates) and fsync on, drives it with `coco bench
# --target etcd` (puts, then ranges), stops it; then starts a 3-node coco sandbox and drives it
# with the same client and shape (private writes with commit latency, then reads on every node
# at once; etcd's reads likewise run on its three members at once). Load shape: 64 connections,
# HTTP/1.1 keep-alive, 20,000 keys, 20-byte values, `seconds` (default 10) per run. Prints one
# table and leaves every JSON result in $OUT (default bench/results/<date>).
#
# CLIENT_ARGS changes the shape for both, e.g. CLIENT_ARGS="--http2" (64 HTTP/2 connections);
# CONNS=4 CLIENT_ARGS="--http2 --streams 16" keeps 64 requests in flight, multiplexed.
#
# The fair comparison: an etcd put returns after quorum commit and fsync; a coco write returns
# once executed on the primary. So the table sets etcd's put throughput and latency beside
# coco's *committed* throughput and *commit* latency (and gives coco's response latency too).
set -euo pipefail

SECS=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COCO=${COCO:-$ROOT/target/release/coco}
OUT=${OUT:-$ROOT/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ)}
WORK=$(mktemp -d)
CONNS=${CONNS:-64}
KEYS=20000
VALUE=20
mkdir -p "$OUT"

cleanup() {
    cp "$WORK"/*.log "$OUT/" 2>/dev/null || true
    for n in 0 1 2; do cp "$WORK/coco/node$n/out.log" "$OUT/coco-node$n.log" 2>/dev/null || true; done
    pkill -f "etcd --name cmp-" 2>/dev/null || true
    pkill -INT -f "sandbox --workspace $WORK/coco" 2>/dev/null || true
    sleep 2
    rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$COCO" ] || { echo "build coco first: cargo build --release" >&2; exit 1; }
if ! command -v etcd >/dev/null; then
    echo "installing etcd (Debian package etcd-server)" >&2
    apt-get install -y etcd-server >/dev/null
fi

# --- TLS material for etcd: a CA, a server certificate for 127.0.0.1, a client certificate.
T=$WORK/tls
mkdir -p "$T"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/ca.key" 2>/dev/null
openssl req -x509 -new -key "$T/ca.key" -subj /CN=cmp-ca -days 2 -out "$T/ca.pem" 2>/dev/null
issue() { # name, extensions
    openssl ecparam -name prime256v1 -genkey -noout -out "$T/$1.ec" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$T/$1.ec" -out "$T/$1.key"
    openssl req -new -key "$T/$1.key" -subj "/CN=$1" -out "$T/$1.csr" 2>/dev/null
    printf '%s\n' "$2" >"$T/$1.ext"
    openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
        -days 2 -extfile "$T/$1.ext" -out "$T/$1.pem" 2>/dev/null
}
issue server "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
issue client "extendedKeyUsage=clientAuth"

bench() { # target address cacert cert key out [extra args...]
    local target=$1 addr=$2 ca=$3 cert=$4 key=$5 out=$6
    shift 6
    # shellcheck disable=SC2086
    "$COCO" bench --quiet --target "$target" --address "$addr" --cacert "$ca" --cert "$cert" \
        --key "$key" --connections "$CONNS" --keys "$KEYS" --value-size "$VALUE" \
        --duration-s "$SECS" --json "$out" "$@" ${CLIENT_ARGS:-} >/dev/null
}

# --- etcd: three members, TLS for clients (certificate required) and peers, fsync on.
CLUSTER=""
for i in 1 2 3; do
    CLUSTER+="cmp-$i=https://127.0.0.1:${i}2380,"
done
CLUSTER=${CLUSTER%,}
for i in 1 2 3; do
    etcd --name "cmp-$i" --data-dir "$WORK/etcd-$i" \
        --listen-client-urls "https://127.0.0.1:${i}2379" \
        --advertise-client-urls "https://127.0.0.1:${i}2379" \
        --listen-peer-urls "https://127.0.0.1:${i}2380" \
        --initial-advertise-peer-urls "https://127.0.0.1:${i}2380" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new \
        --cert-file "$T/server.pem" --key-file "$T/server.key" \
        --trusted-ca-file "$T/ca.pem" --client-cert-auth \
        --peer-cert-file "$T/server.pem" --peer-key-file "$T/server.key" \
        --peer-trusted-ca-file "$T/ca.pem" --peer-client-cert-auth \
        >"$WORK/etcd-$i.log" 2>&1 &
done
for i in 1 2 3; do
    for try in $(seq 150); do
        curl -s --cacert "$T/ca.pem" --cert "$T/client.pem" --key "$T/client.key" \
            "https://127.0.0.1:${i}2379/health" | grep -q '"true"' && break
        [ "$try" -lt 150 ] || { cat "$WORK/etcd-$i.log" >&2; exit 1; }
        sleep 0.2
    done
done
echo "etcd $(etcd --version | head -1 | cut -d' ' -f3): 3 members up" >&2
bench etcd 127.0.0.1:12379 "$T/ca.pem" "$T/client.pem" "$T/client.key" "$OUT/etcd-put.json" \
    --workload private-write
# Reads on all three members at once (the put run wrote every key).
READERS=()
for i in 1 2 3; do
    bench etcd "127.0.0.1:${i}2379" "$T/ca.pem" "$T/client.pem" "$T/client.key" \
        "$OUT/etcd-range-$i.json" --workload read --skip-preload &
    READERS+=($!)
done
wait "${READERS[@]}"
pkill -f "etcd --name cmp-"
sleep 2

# --- coco: a 3-node sandbox (durable ledger, default signature interval).
PORT=${PORT:-9600}
# COCO_SANDBOX_ARGS: e.g. "--commit-latency-target-ms 20" (adaptive signature interval).
# shellcheck disable=SC2086
setsid "$COCO" sandbox --workspace "$WORK/coco" --port "$PORT" ${COCO_SANDBOX_ARGS:-} \
    >"$WORK/sandbox.log" 2>&1 &
SANDBOX=$!
until grep -q "Press Ctrl-C" "$WORK/sandbox.log" 2>/dev/null; do
    kill -0 "$SANDBOX" 2>/dev/null || { cat "$WORK/sandbox.log" >&2; exit 1; }
    sleep 0.5
done
C=$WORK/coco/sandbox_common
bench coco "127.0.0.1:$PORT" "$C/service_cert.pem" "$C/user0_cert.pem" "$C/user0_privk.pem" \
    "$OUT/coco-write.json" --workload private-write --commit-latency
# The same writes at etcd's put throughput (open loop): latency at equal load, not only at each
# one's saturation.
ETCD_RATE=$(jq '.throughput_per_s | floor' "$OUT/etcd-put.json")
bench coco "127.0.0.1:$PORT" "$C/service_cert.pem" "$C/user0_cert.pem" "$C/user0_privk.pem" \
    "$OUT/coco-write-at-etcd-rate.json" --workload private-write --commit-latency \
    --rate "$ETCD_RATE" --skip-preload
# Reads on all three nodes at once (the write run wrote every key).
READERS=()
for k in 0 1 2; do
    bench coco "127.0.0.1:$((PORT + k))" "$C/service_cert.pem" "$C/user0_cert.pem" \
        "$C/user0_privk.pem" "$OUT/coco-read-$k.json" --workload read --skip-preload &
    READERS+=($!)
done
wait "${READERS[@]}"

# --- The table.
jq -n \
    --slurpfile ep "$OUT/etcd-put.json" --slurpfile e1 "$OUT/etcd-range-1.json" \
    --slurpfile e2 "$OUT/etcd-range-2.json" --slurpfile e3 "$OUT/etcd-range-3.json" \
    --slurpfile cw "$OUT/coco-write.json" --slurpfile ce "$OUT/coco-write-at-etcd-rate.json" \
    --slurpfile r0 "$OUT/coco-read-0.json" --slurpfile r1 "$OUT/coco-read-1.json" \
    --slurpfile r2 "$OUT/coco-read-2.json" -r '
    def ms(x): (x / 1000 | . * 100 | round / 100);
    ($ep[0]) as $ep | ($e1[0]) as $er | ($cw[0]) as $cw |
    ([$r0[0], $r1[0], $r2[0]] | map(.throughput_per_s) | add) as $reads |
    ([$e1[0], $e2[0], $e3[0]] | map(.throughput_per_s) | add) as $ereads |
    ($cw.commit.committed_per_s) as $cwrites |
    [
      ["", "etcd", "coco", "coco/etcd"],
      ["writes/s (etcd put; coco committed)", ($ep.throughput_per_s | round), ($cwrites | round), (($cwrites / $ep.throughput_per_s) * 100 | round / 100)],
      ["write p50 ms (etcd put; coco commit)", ms($ep.latency_us.p50), ms($cw.commit.latency_us.p50), ""],
      ["write p99 ms (etcd put; coco commit)", ms($ep.latency_us.p99), ms($cw.commit.latency_us.p99), ""],
      ["coco write response p50/p99 ms", "", "\(ms($cw.latency_us.p50)) / \(ms($cw.latency_us.p99))", ""],
      ["coco commit p50/p99 ms at the etcd put rate", "", "\(ms($ce[0].commit.latency_us.p50)) / \(ms($ce[0].commit.latency_us.p99))", (($ep.latency_us.p99 / $ce[0].commit.latency_us.p99) * 100 | round / 100 | tostring) + "x lower p99"],
      ["coco writes refused (503)", "", ($cw.errors_by_status["503"] // 0), ""],
      ["coco backlog when load stopped", "", $cw.commit.backlog_at_end, ""],
      ["reads/s (summed over 3 members/nodes)", ($ereads | round), ($reads | round), (($reads / $ereads) * 100 | round / 100)],
      ["read p50 ms", ms($er.latency_us.p50), ms($r0[0].latency_us.p50), ""],
      ["read p99 ms", ms($er.latency_us.p99), ms($r0[0].latency_us.p99), ""],
      ["coco reads / coco writes", "", (($reads / $cwrites) * 100 | round / 100), ""]
    ] | .[] | @tsv' | column -t -s $'\t' | tee "$OUT/table.txt"
echo "results: $OUT" >&2

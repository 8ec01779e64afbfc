"""Times a node joining a network whose store holds N keys, from a snapshot (docs/perf.md).

Starts a one-node sandbox, writes N distinct private keys with `coco bench`, has member0 trigger
a snapshot by governance (`trigger_snapshot`) and waits for it to commit, then starts a second
node with a Join configuration, trusts it by governance (`transition_node_to_trusted`) and
reports how long the joiner took from being trusted to having caught up with the primary's
commit, with the download and load times from its log.

Usage: python3 scripts/snapshot-join-timing.py [N] [WORKDIR] [PORT]
(default 1000000 /tmp/coco-snapjoin 8300; needs target/release/coco: cargo build --release).
"""
import datetime, http.client, json, os, re, shutil, ssl, subprocess, sys, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
W = sys.argv[2] if len(sys.argv) > 2 else "/tmp/coco-snapjoin"
PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 8300
COCO = os.path.abspath(os.environ.get("COCO", "target/release/coco"))
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
C = f"{W}/sbx/sandbox_common"
procs = []


def ctx(user=True):
    c = ssl.create_default_context(cafile=f"{C}/service_cert.pem")
    if user:
        c.load_cert_chain(f"{C}/user0_cert.pem", f"{C}/user0_privk.pem")
    return c


def get(port, path):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx(False), timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def wait(what, f, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            v = f()
            if v:
                return v
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.05)
    sys.exit(f"timed out: {what}")


try:
    procs.append(subprocess.Popen(
        [COCO, "sandbox", "--nodes", "1", "--workspace", f"{W}/sbx", "--port", str(PORT),
         "--snapshot-tx-interval", "0"],
        stdout=open(f"{W}/sandbox.log", "w"), stderr=subprocess.STDOUT))
    wait("sandbox", lambda: get(PORT, "/app/api")[0] == 200 and os.path.exists(f"{C}/user0_cert.pem"), 60)
    # N distinct keys: 64 connections stride through the ids, so run until each has written its
    # share twice over.
    bench = subprocess.run(
        [COCO, "bench", "--address", f"127.0.0.1:{PORT}", "--cacert", f"{C}/service_cert.pem",
         "--cert", f"{C}/user0_cert.pem", "--key", f"{C}/user0_privk.pem", "--keys", str(N),
         "--duration-s", str(max(10, N // 20_000))],
        capture_output=True, text=True, check=True)
    written = json.loads(bench.stdout)
    member = [COCO, "member", "--cert", f"{C}/member0_cert.pem", "--key", f"{C}/member0_privk.pem"]
    addr = ["--address", f"127.0.0.1:{PORT}", "--cacert", f"{C}/service_cert.pem"]

    def propose_and_vote(actions, path):
        with open(path, "w") as f:
            json.dump({"actions": actions}, f)
        proposal = json.loads(subprocess.run(member + ["propose"] + addr + ["--proposal", path],
                                             capture_output=True, text=True, check=True).stdout)
        subprocess.run(member + ["vote"] + addr + ["--proposal-id", proposal["proposalId"]],
                       capture_output=True, text=True, check=True)
    propose_and_vote([{"name": "trigger_snapshot"}], f"{W}/snapshot.json")
    snapdir = f"{W}/sbx/node0/snapshots"
    name = wait("committed snapshot", lambda: next(
        (f for f in sorted(os.listdir(snapdir)) if f.endswith(".committed")), None), 300)
    size = os.path.getsize(f"{snapdir}/{name}")

    cfg = json.load(open(f"{W}/sbx/node0/config.json"))
    d = f"{W}/joiner"
    os.makedirs(d)
    cfg["command"] = {"type": "Join", "service_certificate_file": f"{C}/service_cert.pem",
                      "join": {"target_rpc_address": f"127.0.0.1:{PORT}", "retry_timeout": "100ms"}}
    cfg["network"]["rpc_interfaces"]["primary_rpc_interface"]["bind_address"] = f"127.0.0.1:{PORT + 1}"
    cfg["ledger"]["directory"] = f"{d}/ledger"
    cfg["snapshots"] = {"directory": f"{d}/snapshots"}
    cfg["output_files"] = {"rpc_addresses_file": f"{d}/rpc_addresses.json", "pid_file": f"{d}/coco.pid"}
    json.dump(cfg, open(f"{d}/config.json", "w"))
    procs.append(subprocess.Popen([COCO, "node", "--config", f"{d}/config.json"],
                                  stdout=open(f"{d}/out.log", "w"), stderr=subprocess.STDOUT, cwd=d))

    def pending():
        nodes = json.loads(get(PORT, "/node/network/nodes")[1])["nodes"]
        return next((n["node_id"] for n in nodes if n["status"] == "Pending"), None)
    node_id = wait("joiner pending", pending, 60)
    valid_from = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).strftime("%y%m%d%H%M%SZ")
    t0 = time.time()
    propose_and_vote([{"name": "transition_node_to_trusted",
                       "args": {"node_id": node_id, "valid_from": valid_from}}], f"{W}/trust.json")
    target = json.loads(get(PORT, "/node/commit")[1])["transaction_id"]
    target_seqno = int(target.split(".")[1])
    wait("joiner caught up", lambda: int(json.loads(get(PORT + 1, "/node/commit")[1])
                                         ["transaction_id"].split(".")[1]) >= target_seqno, 120)
    caught_up = time.time() - t0
    log = re.sub(r"\x1b\[[0-9;]*m", "", open(f"{d}/out.log").read())
    load = next((l for l in log.splitlines() if "starting from a snapshot" in l), "")
    print(json.dumps({
        "keys": N, "writes": written["requests_ok"], "snapshot": name, "snapshot_bytes": size,
        "trusted_to_caught_up_s": round(caught_up, 2), "primary_commit_when_trusted": target,
        "joiner_log": load.strip(),
    }))
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()

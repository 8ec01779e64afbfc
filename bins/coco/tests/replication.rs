//! Replication across real `coco node` processes on loopback: nodes join by `/node/join`, a
//! kill -9 of the primary (or of any minority) loses nothing committed, the survivors elect a new
//! primary and keep byte-identical ledgers that CCF's `read_ledger.py` verifies, and a node
//! joining an open service waits for members to trust it.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Options, TestNode, asn1_time, now, propose_and_vote, txid_of};

fn write(node: &TestNode, id: u64, msg: &str) -> String {
    let r = node
        .user()
        .post_json("/app/log/private", &json!({"id": id, "msg": msg}))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    txid_of(&r)
}

fn read(node: &TestNode, id: u64) -> Option<String> {
    let r = node
        .user()
        .get(&format!("/app/log/private?id={id}"))
        .unwrap();
    (r.status == 200).then(|| r.json()["msg"].as_str().unwrap().to_owned())
}

/// The index of the node among `alive` that answers `GET /node/primary` with 200.
fn wait_for_primary(nodes: &[TestNode], alive: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for &k in alive {
            if let Ok(r) = nodes[k].anonymous().get("/node/primary")
                && r.status == 200
            {
                return k;
            }
        }
        assert!(Instant::now() < deadline, "no primary elected");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn committed_chunks(node: &TestNode) -> Vec<(String, Vec<u8>)> {
    support::committed_chunks(&node.ledger_dir())
}

fn options() -> Options {
    Options {
        chunk_size: "16KB".into(),
        sig_tx_count: 10,
        ..Options::default()
    }
}

/// A client writing to `node` in the background until stopped or refused; it records every
/// write the node acknowledged, with its transaction id.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, String)>>,
}

impl Writer {
    fn start(node: &TestNode, first_id: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let mut conn = node.user();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut id = first_id;
            while !flag.load(Ordering::Relaxed) {
                let body = json!({"id": id, "msg": format!("w{id}")});
                match conn.post_json("/app/log/private", &body) {
                    Ok(r) if r.status == 200 => acked.push((id, txid_of(&r))),
                    Ok(r) if r.status.is_server_error() => {}
                    _ => break,
                }
                id += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            acked
        });
        Writer { stop, thread }
    }

    fn finish(self) -> Vec<(u64, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn seqno(txid: &str) -> u64 {
    txid.split_once('.').unwrap().1.parse().unwrap()
}

/// Waits until `node` knows the fate of `txid`: Committed or Invalid.
fn final_status(node: &TestNode, txid: &str) -> String {
    let mut conn = node.anonymous();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = conn
            .get(&format!("/node/tx?transaction_id={txid}"))
            .unwrap();
        let status = r.json()["status"].as_str().unwrap().to_owned();
        if status == "Committed" || status == "Invalid" {
            return status;
        }
        assert!(Instant::now() < deadline, "{txid} is still {status}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills `victims` with SIGKILL (the first is the primary) while a client writes to it; checks
/// that a new primary is elected among the others within two election timeouts, that every
/// write reported committed before the kill survives (and every acknowledged write is either
/// committed and readable or invalid), that new writes commit on every survivor, and that the
/// survivors' committed ledgers are identical and verify with CCF's `read_ledger.py`.
fn survive_kill9(n: usize, victims: &[usize]) {
    let opts = options();
    let election_timeout = Duration::from_millis(opts.election_timeout_ms);
    let mut nodes = TestNode::cluster(n, opts);
    assert_eq!(wait_for_primary(&nodes, &[0]), 0);
    let writer = Writer::start(&nodes[0], 0);
    std::thread::sleep(Duration::from_millis(500));
    let committed_before =
        nodes[0].anonymous().get("/node/commit").unwrap().json()["transaction_id"]
            .as_str()
            .unwrap()
            .to_owned();
    for &v in victims {
        nodes[v].kill9();
    }
    let killed = Instant::now();
    let acked = writer.finish();
    let alive: Vec<usize> = (0..n).filter(|k| !victims.contains(k)).collect();
    let p = wait_for_primary(&nodes, &alive);
    let election = killed.elapsed();
    eprintln!(
        "{n} nodes, {} killed: node{p} primary {election:?} after the kill \
         (election timeout {election_timeout:?}); {} writes acknowledged before it",
        victims.len(),
        acked.len()
    );
    assert!(
        election <= 2 * election_timeout,
        "new primary after {election:?}, more than twice the election timeout"
    );
    assert!(
        acked.len() > 20,
        "the writer made progress: {}",
        acked.len()
    );
    let mut lost = 0;
    for (id, txid) in &acked {
        let status = final_status(&nodes[p], txid);
        if seqno(txid) <= seqno(&committed_before) {
            assert_eq!(status, "Committed", "{txid} was committed before the kill");
        }
        if status == "Committed" {
            assert_eq!(read(&nodes[p], *id), Some(format!("w{id}")), "{txid}");
        } else {
            lost += 1;
        }
    }
    eprintln!("{lost} acknowledged but uncommitted writes were rolled back");
    let mut last = String::new();
    for i in 100_000..100_030 {
        last = write(&nodes[p], i, "after");
    }
    for &k in &alive {
        nodes[k].wait_committed_here(&last);
        assert_eq!(
            read(&nodes[k], 100_029).as_deref(),
            Some("after"),
            "node{k}"
        );
    }
    for &k in &alive {
        nodes[k].stop();
    }
    let reference = committed_chunks(&nodes[alive[0]]);
    assert!(!reference.is_empty(), "some chunks were committed");
    let read_ledger = support::ccf_python()
        .parent()
        .unwrap()
        .join("read_ledger.py");
    let mut counts = Vec::new();
    for &k in &alive {
        let chunks = committed_chunks(&nodes[k]);
        let common = chunks.len().min(reference.len());
        assert!(common > 0);
        assert_eq!(
            chunks[..common],
            reference[..common],
            "node{k}'s overlapping committed chunks are byte-identical"
        );
        // The whole ledger, open tail included: every survivor holds the same transactions.
        let (n_tx, n_sig) =
            support::verified_counts(&read_ledger, &nodes[k].ledger_dir(), &["--uncommitted"]);
        assert!(
            n_tx >= seqno(&last) && n_sig > 0,
            "node{k}: {n_tx} tx, {n_sig} signatures"
        );
        counts.push((n_tx, n_sig));
    }
    assert!(
        counts.windows(2).all(|w| w[0] == w[1]),
        "survivors verify the same transactions and signatures: {counts:?}"
    );
}

#[test]
fn three_nodes_survive_a_kill9_of_the_primary() {
    survive_kill9(3, &[0]);
}

#[test]
fn five_nodes_survive_a_kill9_of_the_primary_and_a_backup() {
    survive_kill9(5, &[0, 3]);
}

#[test]
fn a_node_joining_an_open_service_waits_for_members_to_trust_it() {
    // Trusting a node adds it to the configuration before it has started: it must answer
    // within an election timeout, which a loaded CI machine needs some slack for.
    let opts = Options {
        election_timeout_ms: 3000,
        ..options()
    };
    let primary = TestNode::start(opts.clone());
    write(&primary, 1, "before the join");
    let mut joiner = primary.spawn_joiner(&opts);
    let deadline = Instant::now() + Duration::from_secs(30);
    let pending = loop {
        let nodes = primary
            .anonymous()
            .get("/node/network/nodes")
            .unwrap()
            .json();
        let pending = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["status"] == "Pending")
            .map(|n| n["node_id"].as_str().unwrap().to_owned());
        if let Some(id) = pending {
            break id;
        }
        assert!(Instant::now() < deadline, "the joiner never became Pending");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Still pending a while later: it does not serve.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !joiner.path("rpc_addresses.json").exists(),
        "{}",
        joiner.log()
    );
    let ballot = propose_and_vote(
        &primary,
        &json!({"actions": [{"name": "transition_node_to_trusted", "args": {
            "node_id": pending, "valid_from": asn1_time(now() - 60)}}]}),
    );
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
    joiner.wait_started();
    assert_eq!(joiner.node_id(), pending);
    let txid = write(&primary, 2, "after the join");
    joiner.wait_committed_here(&txid);
    assert_eq!(read(&joiner, 1).as_deref(), Some("before the join"));
    assert_eq!(read(&joiner, 2).as_deref(), Some("after the join"));
}

#[test]
fn backups_forward_writes_or_redirect_them_when_configured() {
    let first = TestNode::start(Options {
        open: false,
        ..options()
    });
    let forwarding = first.join(&options());
    let redirecting = first.join(&Options {
        redirections: Some(
            json!({"to_primary": {"kind": "NodeByRole", "target": {"role": "primary"}}}),
        ),
        ..options()
    });
    first.open_by_governance();
    // A write on a backup is forwarded to the primary; the client gets the primary's answer.
    let txid = write(&forwarding, 7, "via a backup");
    first.wait_committed_here(&txid);
    assert_eq!(read(&first, 7).as_deref(), Some("via a backup"));
    forwarding.wait_committed_here(&txid);
    assert_eq!(read(&forwarding, 7).as_deref(), Some("via a backup"));
    // The interface configured with redirections answers 307 to the primary instead.
    let r = redirecting
        .user()
        .post_json(
            "/app/log/private?x=1",
            &json!({"id": 8, "msg": "redirected"}),
        )
        .unwrap();
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("https://{}/app/log/private?x=1", first.addr).as_str())
    );
    assert_eq!(read(&first, 8), None, "a redirected write is not executed");
    // Reads are served locally either way.
    redirecting.wait_committed_here(&txid);
    assert_eq!(read(&redirecting, 7).as_deref(), Some("via a backup"));
}

fn removable(node: &TestNode) -> Vec<String> {
    node.anonymous()
        .get("/node/network/removable_nodes")
        .unwrap()
        .json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn membership_changes_while_writes_continue() {
    // Trusting a node adds it to the configuration before it has started (see the join test).
    let opts = Options {
        election_timeout_ms: 3000,
        ..options()
    };
    let nodes = TestNode::cluster(4, opts.clone());
    let ids: Vec<String> = nodes.iter().map(TestNode::node_id).collect();
    let writer = Writer::start(&nodes[0], 0);

    // A node joins the open service and is trusted by governance.
    let mut added = nodes[0].spawn_joiner(&opts);
    let mut pending = None;
    wait_until("the new node is Pending", || {
        let list = nodes[0]
            .anonymous()
            .get("/node/network/nodes")
            .unwrap()
            .json();
        pending = list["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["status"] == "Pending")
            .map(|n| n["node_id"].as_str().unwrap().to_owned());
        pending.is_some()
    });
    let ballot = propose_and_vote(
        &nodes[0],
        &json!({"actions": [{"name": "transition_node_to_trusted", "args": {
            "node_id": pending.unwrap(), "valid_from": asn1_time(now() - 60)}}]}),
    );
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
    added.wait_started();

    // A backup is retired by governance; once that commits it is removable, and removed.
    let ballot = propose_and_vote(
        &nodes[0],
        &json!({"actions": [{"name": "remove_node", "args": {"node_id": ids[3]}}]}),
    );
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
    wait_until("node3 is removable", || {
        removable(&nodes[0]) == vec![ids[3].clone()]
    });
    let delete = |id: &str| {
        nodes[0]
            .anonymous()
            .request(
                coco_client::Method::DELETE,
                &format!("/node/network/nodes/{id}"),
                &[],
                Vec::new(),
            )
            .unwrap()
    };
    let r = delete(&ids[1]);
    assert_eq!(
        r.status,
        400,
        "a trusted node is not removable: {}",
        r.text()
    );
    assert!(r.text().contains("NodeNotRetiredCommitted"), "{}", r.text());
    let r = delete(&ids[3]);
    assert_eq!(r.status, 204, "{}", r.text());
    let r = nodes[0]
        .anonymous()
        .get(&format!("/node/network/nodes/{}", ids[3]))
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());

    // Every write acknowledged meanwhile committed, and the new node serves it.
    let acked = writer.finish();
    assert!(acked.len() > 20, "writes continued: {}", acked.len());
    let (last_id, last_txid) = acked.last().unwrap().clone();
    added.wait_committed_here(&last_txid);
    for (_, txid) in &acked {
        assert_eq!(final_status(&nodes[0], txid), "Committed", "{txid}");
    }
    assert_eq!(read(&added, last_id), Some(format!("w{last_id}")));
    assert_eq!(read(&added, 0).as_deref(), Some("w0"));

    // The primary itself is retired: it hands over to one of the remaining nodes.
    let ballot = propose_and_vote(
        &nodes[0],
        &json!({"actions": [{"name": "remove_node", "args": {"node_id": ids[0]}}]}),
    );
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
    let survivors = [&nodes[1], &nodes[2], &added];
    let mut p = None;
    wait_until("a remaining node is primary", || {
        p = survivors.iter().position(|n| {
            n.anonymous()
                .get("/node/primary")
                .is_ok_and(|r| r.status == 200)
        });
        p.is_some()
    });
    let primary = survivors[p.unwrap()];
    wait_until("the old primary is removable", || {
        removable(primary).contains(&ids[0])
    });
    let txid = write(primary, 1_000_000, "after the retirements");
    for n in survivors {
        n.wait_committed_here(&txid);
        assert_eq!(read(n, 1_000_000).as_deref(), Some("after the retirements"));
    }
}

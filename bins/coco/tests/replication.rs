//! Replication across real `coco node` processes on loopback: nodes join by `/node/join`, a
//! kill -9 of the primary (or of any minority) loses nothing committed, the survivors elect a new
//! primary and keep byte-identical ledgers that CCF's `read_ledger.py` verifies, and a node
//! joining an open service waits for members to trust it.

mod support;

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
    let mut chunks: Vec<(String, Vec<u8>)> = std::fs::read_dir(node.ledger_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".committed"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    chunks.sort();
    chunks
}

fn options() -> Options {
    Options {
        chunk_size: "16KB".into(),
        sig_tx_count: 10,
        ..Options::default()
    }
}

/// Kills `victims` with SIGKILL (the first must be the primary), checks that a new primary is
/// elected among the others and that every committed write survives, then that new writes
/// commit on every survivor and their committed ledgers are identical and verify with CCF.
fn survive_kill9(n: usize, victims: &[usize]) {
    let mut nodes = TestNode::cluster(n, options());
    assert_eq!(wait_for_primary(&nodes, &[0]), 0);
    let mut last = String::new();
    for i in 0..80 {
        last = write(&nodes[0], i, &format!("m{i}"));
    }
    for node in &nodes {
        node.wait_committed_here(&last);
    }
    for node in &nodes[1..] {
        assert_eq!(
            read(node, 79).as_deref(),
            Some("m79"),
            "backups serve reads"
        );
    }
    for &v in victims {
        nodes[v].kill9();
    }
    let killed = Instant::now();
    let alive: Vec<usize> = (0..n).filter(|k| !victims.contains(k)).collect();
    let p = wait_for_primary(&nodes, &alive);
    eprintln!(
        "{n} nodes, {} killed: node{p} elected primary {:?} after the kill",
        victims.len(),
        killed.elapsed()
    );
    for i in 0..80 {
        assert_eq!(
            read(&nodes[p], i),
            Some(format!("m{i}")),
            "committed write {i}"
        );
    }
    let mut last = String::new();
    for i in 100..130 {
        last = write(&nodes[p], i, "after");
    }
    for &k in &alive {
        nodes[k].wait_committed_here(&last);
        assert_eq!(read(&nodes[k], 129).as_deref(), Some("after"), "node{k}");
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
    for &k in &alive {
        let chunks = committed_chunks(&nodes[k]);
        let common = chunks.len().min(reference.len());
        assert!(common > 0);
        assert_eq!(
            chunks[..common],
            reference[..common],
            "node{k}'s committed ledger is byte-identical"
        );
        // Committed chunks, then the whole ledger including the open tail.
        let (n_tx, n_sig) = support::verified_counts(&read_ledger, &nodes[k].ledger_dir(), false);
        assert!(
            n_tx > 0 && n_sig > 0,
            "node{k}: {n_tx} tx, {n_sig} signatures"
        );
        let (n_all, _) = support::verified_counts(&read_ledger, &nodes[k].ledger_dir(), true);
        assert!(n_all > 110, "node{k}: {n_all} tx in the whole ledger");
    }
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
fn retired_nodes_leave_the_service_and_can_be_removed() {
    let nodes = TestNode::cluster(4, options());
    let ids: Vec<String> = nodes.iter().map(TestNode::node_id).collect();
    // A backup is retired by governance; once that commits it is removable, and removed.
    let ballot = propose_and_vote(
        &nodes[0],
        &json!({"actions": [{"name": "remove_node", "args": {"node_id": ids[3]}}]}),
    );
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
    wait_until("node3 is removable", || {
        removable(&nodes[0]) == vec![ids[3].clone()]
    });
    let r = nodes[0]
        .anonymous()
        .request(
            coco_client::Method::DELETE,
            &format!("/node/network/nodes/{}", ids[1]),
            &[],
            Vec::new(),
        )
        .unwrap();
    assert_eq!(
        r.status,
        400,
        "a trusted node is not removable: {}",
        r.text()
    );
    assert!(r.text().contains("NodeNotRetiredCommitted"), "{}", r.text());
    let r = nodes[0]
        .anonymous()
        .request(
            coco_client::Method::DELETE,
            &format!("/node/network/nodes/{}", ids[3]),
            &[],
            Vec::new(),
        )
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let r = nodes[0]
        .anonymous()
        .get(&format!("/node/network/nodes/{}", ids[3]))
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    // The primary itself is retired: it hands over to one of the remaining nodes.
    let ballot = propose_and_vote(
        &nodes[0],
        &json!({"actions": [{"name": "remove_node", "args": {"node_id": ids[0]}}]}),
    );
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
    let p = wait_for_primary(&nodes, &[1, 2]);
    wait_until("the old primary is removable", || {
        removable(&nodes[p]).contains(&ids[0])
    });
    let txid = write(&nodes[p], 5, "after the retirements");
    for k in [1, 2] {
        nodes[k].wait_committed_here(&txid);
        assert_eq!(read(&nodes[k], 5).as_deref(), Some("after the retirements"));
    }
}

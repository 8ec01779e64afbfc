//! Receipts from a running 3-node network verify with CCF's own `ccf.receipt` (the PyPI
//! package), for public and private writes and for signature transactions, from every node; a
//! tampered receipt is rejected.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Options, TestNode, ccf_python, txid_of};

/// `GET /node/receipt` until the node has read the entries back (202 meanwhile).
fn receipt(node: &TestNode, txid: &str) -> Value {
    let mut conn = node.anonymous();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = conn
            .get(&format!("/node/receipt?transaction_id={txid}"))
            .unwrap();
        match r.status.as_u16() {
            200 => return r.json(),
            202 => assert_eq!(r.header("retry-after"), Some("3")),
            other => panic!("receipt of {txid}: {other} {}", r.text()),
        }
        assert!(Instant::now() < deadline, "no receipt for {txid}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ccf_verifies(
    dir: &std::path::Path,
    service_cert: &str,
    receipts: &[Value],
) -> Result<(), String> {
    let file = dir.join(format!("receipts-{}.json", receipts.len()));
    std::fs::write(
        &file,
        json!({"service_cert": service_cert, "receipts": receipts}).to_string(),
    )
    .unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/oracle/verify_receipts.py");
    let out = Command::new(ccf_python())
        .arg(script)
        .arg(&file)
        .output()
        .expect("running verify_receipts.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        assert_eq!(
            serde_json::from_str::<Value>(stdout.trim()).unwrap()["verified"],
            receipts.len()
        );
        Ok(())
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Genesis writes seqno 1 in view 2 and signs it at once: the first signature transaction.
const GENESIS_SIGNATURE: &str = "2.2";

#[test]
fn ccf_verifies_receipts_from_every_node() {
    let nodes = TestNode::cluster(
        3,
        Options {
            sig_tx_count: 10,
            ..Options::default()
        },
    );
    let mut user = nodes[0].user();
    let mut txids = Vec::new();
    for i in 0..25 {
        let path = if i % 2 == 0 {
            "/app/log/private"
        } else {
            "/app/log/public"
        };
        let r = user
            .post_json(path, &json!({"id": i, "msg": format!("m{i}")}))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        txids.push(txid_of(&r));
    }
    let last = txids.last().unwrap().clone();
    for n in &nodes {
        n.wait_committed_here(&last);
    }
    let signature = nodes[0].anonymous().get("/node/commit").unwrap().json()["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut receipts = Vec::new();
    for (k, n) in nodes.iter().enumerate() {
        // A private and a public write, spread over the nodes, and the signature transaction.
        receipts.push(receipt(n, &txids[2 * k]));
        receipts.push(receipt(n, &txids[2 * k + 1]));
        let sig = receipt(n, &signature);
        assert_eq!(sig["proof"], json!([]), "{sig}");
        receipts.push(sig);
    }
    let dir = nodes[0].dir.path();
    ccf_verifies(dir, &nodes[0].ca_pem, &receipts).expect("CCF verifies coco's receipts");
    // The same receipts, tampered, are rejected by CCF's code too.
    let mut bad = receipts[0].clone();
    bad["leaf_components"]["write_set_digest"] = json!("00".repeat(32));
    assert!(ccf_verifies(dir, &nodes[0].ca_pem, &[bad]).is_err());
    // A signature over another root: the signature of an earlier signature transaction.
    let first_sig = receipt(&nodes[0], GENESIS_SIGNATURE);
    let mut bad = receipts[1].clone();
    assert_ne!(bad["signature"], first_sig["signature"]);
    bad["signature"] = first_sig["signature"].clone();
    assert!(ccf_verifies(dir, &nodes[0].ca_pem, &[bad]).is_err());
    // A proof step moved to the other side.
    let mut bad = receipts[0].clone();
    let step = bad["proof"][0].clone();
    bad["proof"][0] = match (step.get("left"), step.get("right")) {
        (Some(h), None) => json!({ "right": h }),
        (None, Some(h)) => json!({ "left": h }),
        _ => panic!("{step}"),
    };
    assert!(ccf_verifies(dir, &nodes[0].ca_pem, &[bad]).is_err());
    // `coco receipt verify` agrees, offline.
    let good = dir.join("good-receipt.json");
    std::fs::write(&good, receipts[0].to_string()).unwrap();
    let out = support::run_coco(
        &[
            "receipt",
            "verify",
            "--service-cert",
            "service_cert.pem",
            good.to_str().unwrap(),
        ],
        dir,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("receipt verifies"));
    let mut bad = receipts[2].clone();
    bad["leaf"] = json!("00".repeat(32));
    std::fs::write(dir.join("bad-receipt.json"), bad.to_string()).unwrap();
    let out = Command::new(support::COCO)
        .args([
            "receipt",
            "verify",
            "--service-cert",
            "service_cert.pem",
            "bad-receipt.json",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
    // An uncommitted transaction id has no receipt.
    let r = nodes[0]
        .anonymous()
        .get("/node/receipt?transaction_id=2.1000000")
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
}

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

/// Runs one of the oracle scripts on `bundle`; returns its JSON answer or its complaint.
fn oracle(dir: &std::path::Path, script: &str, bundle: &Value) -> Result<Value, String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let file = dir.join(format!(
        "bundle-{}.json",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&file, bundle.to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/oracle")
        .join(script);
    let out = Command::new(ccf_python())
        .arg(script)
        .arg(&file)
        .output()
        .expect("running an oracle script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(serde_json::from_str(stdout.trim()).unwrap())
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A historical endpoint, retried while the node loads the transaction (202).
fn historical(node: &TestNode, path: &str, txid: &str) -> coco_client::Reply {
    let mut user = node.user();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = user
            .request(
                coco_client::Method::GET,
                path,
                &[("x-ms-ccf-transaction-id", txid)],
                Vec::new(),
            )
            .unwrap();
        if r.status != 202 {
            return r;
        }
        assert!(Instant::now() < deadline, "{path} at {txid} never loaded");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn historical_queries_and_cose_receipts_verify_with_ccf() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let nodes = TestNode::cluster(
        3,
        Options {
            sig_tx_count: 10,
            ..Options::default()
        },
    );
    let mut user = nodes[0].user();
    // A public write with an application claim, and a private one without.
    let r = user
        .post_json(
            "/app/log/public",
            &json!({"id": 5, "msg": "claimed", "record_claim": true}),
        )
        .unwrap();
    let claimed = txid_of(&r);
    let r = user
        .post_json("/app/log/private", &json!({"id": 6, "msg": "secret"}))
        .unwrap();
    let private = txid_of(&r);
    for _ in 0..12 {
        user.post_json("/app/log/public", &json!({"id": 7, "msg": "filler"}))
            .unwrap();
    }
    for n in &nodes {
        n.wait_committed_here(&private);
    }
    let dir = nodes[1].dir.path();
    // Historical reads from a backup: the record as that transaction wrote it, with a receipt.
    let r = historical(&nodes[1], "/app/log/private/historical?id=6", &private);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"msg": "secret"}));
    let r = historical(
        &nodes[2],
        "/app/log/private/historical_receipt?id=6",
        &private,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["msg"], "secret");
    assert_eq!(answer["receipt"]["is_signature_transaction"], false);
    let verified = oracle(
        dir,
        "verify_receipts.py",
        &json!({"service_cert": nodes[0].ca_pem, "receipts": [answer["receipt"]]}),
    )
    .expect("CCF verifies the historical receipt");
    assert_eq!(verified["verified"], 1);
    // The transaction did not write id 5: not found in its historical state.
    let r = historical(&nodes[1], "/app/log/private/historical?id=5", &private);
    assert_eq!(r.status, 404, "{}", r.text());
    // COSE receipts verify against the service key with the claims digest bound to them.
    let claim = hex::encode(coco_crypto::sha256(b"claimed"));
    let mut cose = Vec::new();
    for n in &nodes {
        let r = historical(n, "/app/log/public/cose_receipt", &claimed);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/cose"));
        cose.push(json!({"cose": b64.encode(&r.body), "claims_digest": claim}));
    }
    let r = historical(&nodes[0], "/app/log/public/cose_receipt", &private);
    cose.push(json!({"cose": b64.encode(&r.body), "claims_digest": "00".repeat(32)}));
    let verified = oracle(
        dir,
        "verify_cose_receipts.py",
        &json!({"service_cert": nodes[0].ca_pem, "receipts": cose}),
    )
    .expect("CCF verifies coco's COSE receipts");
    assert_eq!(verified["verified"], 4);
    // The wrong claims digest, or another service's key, is refused.
    let wrong = json!([{"cose": cose[0]["cose"], "claims_digest": "00".repeat(32)}]);
    assert!(
        oracle(
            dir,
            "verify_cose_receipts.py",
            &json!({"service_cert": nodes[0].ca_pem, "receipts": wrong})
        )
        .is_err()
    );
    // The bare proof and the signature are served too.
    let r = historical(&nodes[1], "/app/log/public/cbor_merkle_proof", &claimed);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/cbor"));
    let r = historical(&nodes[1], "/app/log/public/cose_signature", &claimed);
    assert!(r.json()["cose_signature"].is_string(), "{}", r.text());
    // Requests that cannot be served: no header, a bad header, an uncommitted id, no caller.
    let mut user1 = nodes[1].user();
    let r = user1.get("/app/log/private/historical?id=6").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("MissingRequiredHeader"), "{}", r.text());
    let r = historical(&nodes[1], "/app/log/private/historical?id=6", "two.three");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("InvalidHeaderValue"), "{}", r.text());
    let r = historical(&nodes[1], "/app/log/private/historical?id=6", "2.1000000");
    assert_eq!(r.status, 404);
    let r = nodes[1]
        .anonymous()
        .request(
            coco_client::Method::GET,
            "/app/log/private/historical?id=6",
            &[("x-ms-ccf-transaction-id", private.as_str())],
            Vec::new(),
        )
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
}

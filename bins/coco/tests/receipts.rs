//! Receipts from a running 3-node network verify with CCF's own `ccf.receipt` (the PyPI
//! package), for public and private writes and for signature transactions, from every node; a
//! tampered receipt is rejected.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Options, TestNode, oracle, txid_of};

fn ccf_verifies(
    dir: &std::path::Path,
    service_cert: &str,
    receipts: &[Value],
) -> Result<(), String> {
    let verified = oracle(
        dir,
        "verify_receipts.py",
        &json!({"service_cert": service_cert, "receipts": receipts}),
    )?;
    assert_eq!(verified["verified"], receipts.len());
    Ok(())
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
        receipts.push(n.receipt(&txids[2 * k]));
        receipts.push(n.receipt(&txids[2 * k + 1]));
        let sig = n.receipt(&signature);
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
    let first_sig = nodes[0].receipt(GENESIS_SIGNATURE);
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
    let r = nodes[1].historical("/app/log/private/historical?id=6", &private);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"msg": "secret"}));
    let r = nodes[2].historical("/app/log/private/historical_receipt?id=6", &private);
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
    let r = nodes[1].historical("/app/log/private/historical?id=5", &private);
    assert_eq!(r.status, 404, "{}", r.text());
    // COSE receipts verify against the service key with the claims digest bound to them.
    let claim = hex::encode(coco_crypto::sha256(b"claimed"));
    let mut cose = Vec::new();
    for n in &nodes {
        let r = n.historical("/app/log/public/cose_receipt", &claimed);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/cose"));
        cose.push(json!({"cose": b64.encode(&r.body), "claims_digest": claim}));
    }
    let r = nodes[0].historical("/app/log/public/cose_receipt", &private);
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
    let r = nodes[1].historical("/app/log/public/cbor_merkle_proof", &claimed);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/cbor"));
    let r = nodes[1].historical("/app/log/public/cose_signature", &claimed);
    assert!(r.json()["cose_signature"].is_string(), "{}", r.text());
    // Requests that cannot be served: no header, a bad header, an uncommitted id, no caller.
    let mut user1 = nodes[1].user();
    let r = user1.get("/app/log/private/historical?id=6").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("MissingRequiredHeader"), "{}", r.text());
    let r = nodes[1].historical("/app/log/private/historical?id=6", "two.three");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("InvalidHeaderValue"), "{}", r.text());
    let r = nodes[1].historical("/app/log/private/historical?id=6", "2.1000000");
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

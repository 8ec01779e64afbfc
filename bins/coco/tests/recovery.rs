//! Recovery shares on a real node: issued when the service opens and re-issued when recovery
//! members become active or the threshold changes, served at `/gov/recovery/encrypted-shares`,
//! and — checked by CCF's ledger reader and an independent Python implementation of the scheme —
//! any threshold of members' decrypted shares recover the node's ledger secret, fewer do not.

mod support;

use std::process::Command;

use serde_json::json;
use support::{Options, TestNode, ccf_python, member_cli_as, txid_of};

fn member_id(node: &TestNode, member: &str) -> String {
    let pem = std::fs::read_to_string(node.path(&format!("{member}_cert.pem"))).unwrap();
    let der = coco_crypto::pem_to_der_certs(&pem).unwrap().remove(0);
    coco_crypto::cert_der_fingerprint_hex(&der)
}

fn encrypted_share(node: &TestNode, member: &str) -> (u16, serde_json::Value) {
    let id = member_id(node, member);
    let r = node
        .anonymous()
        .get(&format!(
            "/gov/recovery/encrypted-shares/{id}?api-version=2024-07-01"
        ))
        .unwrap();
    (r.status.as_u16(), r.json())
}

/// Runs the oracle with (member, encrypted share) pairs; returns the recovered secret, or None
/// if the shares do not recover it.
fn recover(node: &TestNode, shares: &[(&str, &str)]) -> Option<String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/oracle/recover_ledger_secret.py");
    let mut cmd = Command::new(ccf_python());
    cmd.arg(&script).arg(node.ledger_dir());
    for (member, share) in shares {
        cmd.arg(node.path(&format!("{member}_enc_privk.pem")))
            .arg(share);
    }
    let out = cmd.output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

#[test]
fn recovery_shares_recover_the_ledger_secret_at_the_threshold_only() {
    let node = TestNode::start(Options {
        extra_members: 2,
        extra_members_recover: true,
        export_ledger_secret: true,
        ..Options::default()
    });
    let secret = std::fs::read_to_string(node.path("ledger_secret.hex"))
        .unwrap()
        .trim()
        .to_owned();
    // Opening issued a share to member0, the only active recovery member.
    let (status, body) = encrypted_share(&node, "member0");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["memberId"], member_id(&node, "member0"));
    // Not yet active: no share.
    let (status, body) = encrypted_share(&node, "member1");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "ResourceNotFound");
    // Members becoming active get shares at once.
    for m in ["member1", "member2"] {
        member_cli_as(&node, m, &["ack"]);
        assert_eq!(encrypted_share(&node, m).0, 200, "{m}");
    }
    // Threshold 2 (member0 proposes, member0 and member1 vote): shares are re-issued.
    std::fs::write(
        node.path("threshold.json"),
        json!({"actions": [{"name": "set_recovery_threshold", "args": {"recovery_threshold": 2}}]})
            .to_string(),
    )
    .unwrap();
    let created = member_cli_as(
        &node,
        "member0",
        &["propose", "--proposal", "threshold.json"],
    );
    let id = created["proposalId"].as_str().unwrap().to_owned();
    member_cli_as(&node, "member0", &["vote", "--proposal-id", &id]);
    let ballot = member_cli_as(&node, "member1", &["vote", "--proposal-id", &id]);
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
    // A threshold above the recovery members is refused by the constitution.
    std::fs::write(
        node.path("too_high.json"),
        json!({"actions": [{"name": "set_recovery_threshold", "args": {"recovery_threshold": 4}}]})
            .to_string(),
    )
    .unwrap();
    let created = member_cli_as(
        &node,
        "member0",
        &["propose", "--proposal", "too_high.json"],
    );
    let id = created["proposalId"].as_str().unwrap().to_owned();
    member_cli_as(&node, "member0", &["vote", "--proposal-id", &id]);
    let ballot = member_cli_as(&node, "member1", &["vote", "--proposal-id", &id]);
    assert_eq!(ballot["proposalState"], "Failed", "{ballot}");

    // Make everything durable and committed, then recover from the ledger as members would.
    let mut user = node.user();
    let r = user
        .post_json("/app/log/private", &json!({"id": 1, "msg": "x"}))
        .unwrap();
    node.wait_committed_here(&txid_of(&r));
    let shares: Vec<(String, String)> = ["member0", "member1", "member2"]
        .iter()
        .map(|m| {
            let (status, body) = encrypted_share(&node, m);
            assert_eq!(status, 200, "{m}: {body}");
            (
                m.to_string(),
                body["encryptedShare"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pair = |a: usize, b: usize| {
        vec![
            (shares[a].0.as_str(), shares[a].1.as_str()),
            (shares[b].0.as_str(), shares[b].1.as_str()),
        ]
    };
    for (a, b) in [(0, 1), (2, 0), (1, 2)] {
        assert_eq!(
            recover(&node, &pair(a, b)).as_deref(),
            Some(secret.as_str())
        );
    }
    // One share is not enough.
    assert_eq!(
        recover(&node, &[(shares[1].0.as_str(), shares[1].1.as_str())]),
        None
    );
}

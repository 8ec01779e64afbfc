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

/// Confidentiality at rest: nothing a node writes — ledger chunks, snapshots, its log — holds a
/// private record's value in plaintext, while public values (the control) are found.
#[test]
fn no_file_a_node_writes_holds_private_values_in_plaintext() {
    let mut node = TestNode::start(Options {
        sig_tx_count: 10,
        snapshot_tx_count: Some(20),
        ..Options::default()
    });
    let mut user = node.user();
    let mut last = String::new();
    for i in 0..60u64 {
        let r = user
            .post_json(
                "/app/log/private",
                &json!({"id": i, "msg": format!("PRIVATE-SECRET-{i:04}")}),
            )
            .unwrap();
        assert_eq!(r.status, 200);
        let r = user
            .post_json(
                "/app/log/public",
                &json!({"id": i, "msg": format!("PUBLIC-CONTROL-{i:04}")}),
            )
            .unwrap();
        last = txid_of(&r);
    }
    node.wait_committed_here(&last);
    // Let a snapshot commit so the snapshot files are scanned too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let snapshots = node.path("snapshots");
    while !std::fs::read_dir(&snapshots).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".committed")
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "no committed snapshot"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Stop the node so that no file is renamed (`.committed`) or replaced while it is scanned.
    node.kill9();
    let mut files = Vec::new();
    let mut dirs = vec![node.dir.path().to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    let (mut public_seen, mut scanned) = (false, 0);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // The test's own request bodies and key files are the client's, not the node's.
        if name.ends_with(".pem")
            || name.ends_with(".js")
            || name == "config.json"
            || name.starts_with("proposal-")
        {
            continue;
        }
        let bytes = std::fs::read(f).unwrap();
        scanned += 1;
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            !has(b"PRIVATE-SECRET-"),
            "{} holds a private value in plaintext",
            f.display()
        );
        public_seen |= has(b"PUBLIC-CONTROL-");
    }
    assert!(scanned >= 3, "{files:?}");
    assert!(public_seen, "the scan finds public values (control)");
}

/// `trigger_ledger_rekey` on a 3-node network: entries after the rekey use a new secret that
/// every node installs from the rekey transaction, old entries stay readable, a node joining
/// later gets every secret, CCF's `verify_ledger_secrets_chain.py` accepts the chain of secrets,
/// and the recovery shares now recover the new secret — which decrypts exactly the entries
/// after the rekey, while the original secret decrypts exactly those before (independent Python
/// decryption).
#[test]
fn rekey_installs_a_new_secret_everywhere_and_keeps_history_readable() {
    let opts = Options {
        sig_tx_count: 10,
        export_ledger_secret: true,
        election_timeout_ms: 3000,
        ..Options::default()
    };
    let nodes = TestNode::cluster(3, opts.clone());
    let primary = &nodes[0];
    let mut user = primary.user();
    let mut write = |id: u64| {
        let r = user
            .post_json(
                "/app/log/private",
                &json!({"id": id, "msg": format!("m{id}")}),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        txid_of(&r)
    };
    let before = write(1);
    let ballot = support::propose_and_vote(
        primary,
        &json!({"actions": [{"name": "trigger_ledger_rekey"}]}),
    );
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
    let after = write(2);
    for n in &nodes {
        n.wait_committed_here(&after);
        let mut c = n.user();
        for id in [1, 2] {
            let r = c.get(&format!("/app/log/private?id={id}")).unwrap();
            assert_eq!(r.json()["msg"], format!("m{id}"), "{}", r.text());
        }
        // A receipt for the transaction before the rekey still verifies.
        let r = c
            .get(&format!("/app/receipt?transaction_id={before}"))
            .unwrap();
        if r.status == 200 {
            coco_node::receipt::verify_json_receipt(&r.json(), &primary.ca_pem).unwrap();
        }
    }
    // A node joining now gets every secret and replays both sides of the rekey.
    let mut joiner = primary.spawn_joiner(&opts);
    support::trust_pending(primary);
    joiner.wait_started();
    let last = write(3);
    joiner.wait_committed_here(&last);
    let mut c = joiner.user();
    for id in [1, 2, 3] {
        let r = c.get(&format!("/app/log/private?id={id}")).unwrap();
        assert_eq!(r.json()["msg"], format!("m{id}"), "{}", r.text());
    }

    let rekey_seqno = rekey_seqno(primary);
    // CCF's chain check over the primary's ledger.
    let py = ccf_python();
    let chain = Command::new(py.parent().unwrap().join("verify_ledger_secrets_chain.py"))
        .arg("--uncommitted")
        .arg(primary.ledger_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&chain.stdout);
    assert!(chain.status.success() && !text.contains("Error"), "{text}");
    assert!(text.contains("previous_ledger_secret"), "{text}");

    // The shares wrap the new secret; each secret decrypts its own side of the rekey.
    let (status, body) = encrypted_share(primary, "member0");
    assert_eq!(status, 200, "{body}");
    let new_secret = recover(
        primary,
        &[("member0", body["encryptedShare"].as_str().unwrap())],
    )
    .expect("member0's share recovers the new secret");
    let old_secret = std::fs::read_to_string(primary.path("ledger_secret.hex"))
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(new_secret, old_secret);
    let decrypt = |secret: &str, range: (u64, u64)| {
        let out = Command::new(&py)
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../tests/oracle/decrypt_private_domains.py"),
            )
            .arg(primary.ledger_dir())
            .arg(secret)
            .arg("records")
            .arg(range.0.to_string())
            .arg(range.1.to_string())
            .output()
            .unwrap();
        out.status.success()
    };
    assert!(decrypt(&old_secret, (1, rekey_seqno)));
    assert!(decrypt(&new_secret, (rekey_seqno + 1, u64::MAX / 2)));
    assert!(!decrypt(&old_secret, (rekey_seqno + 1, u64::MAX / 2)));
    assert!(!decrypt(&new_secret, (1, rekey_seqno)));
}

/// The seqno of the rekey: the transaction that wrote `encrypted_ledger_secrets` (found with
/// CCF's ledger reader).
fn rekey_seqno(node: &TestNode) -> u64 {
    let script = r#"
import sys, ccf.ledger
for c in ccf.ledger.Ledger([sys.argv[1]], committed_only=False):
    for tx in c:
        pd = tx.get_public_domain()
        if "public:ccf.internal.encrypted_ledger_secrets" in pd.get_tables():
            print(pd.get_seqno())
"#;
    let out = Command::new(ccf_python())
        .arg("-c")
        .arg(script)
        .arg(node.ledger_dir())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .last()
        .unwrap_or_else(|| {
            panic!(
                "no rekey in the ledger: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .parse()
        .unwrap()
}

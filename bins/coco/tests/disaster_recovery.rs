//! Disaster recovery end to end (ccf-reference §4.6): a 3-node network takes public and private
//! writes, every node is killed with SIGKILL, and a new service is recovered from one node's
//! ledger directory. Members open it with both identities, submit their recovery shares — one
//! through CCF's own `submit_recovery_share.sh` (openssl + `ccf_cose_sign1`), one through
//! `coco member submit-share` — and every committed write is back. Bad shares, too few shares,
//! shares from non-members and a damaged ledger get clear errors and leave the recovery able to
//! proceed; new nodes then join the recovered service.

mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::json;
use support::{Options, TestNode, ccf_python, member_cli_as, oracle, txid_of};

/// Public and private writes: enough to span many signatures and ledger chunks.
const WRITES: u64 = 10_000;

fn member_id(node: &TestNode, member: &str) -> String {
    let pem = std::fs::read_to_string(node.path(&format!("{member}_cert.pem"))).unwrap();
    let der = coco_crypto::pem_to_der_certs(&pem).unwrap().remove(0);
    coco_crypto::cert_der_fingerprint_hex(&der)
}

fn service_status(node: &TestNode) -> String {
    let r = node
        .anonymous()
        .get("/gov/service/info?api-version=2024-07-01")
        .unwrap();
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    r.json()["status"].as_str().unwrap().to_owned()
}

fn wait_for_status(node: &TestNode, status: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if service_status(node) == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "service not {status}: {}",
            node.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// member0 proposes `transition_service_to_open` naming both identities and `voters` accept it:
/// the recovered service waits for recovery shares.
fn open_recovered(node: &TestNode, previous_cert: &str, voters: &[&str]) {
    std::fs::write(
        node.path("open.json"),
        json!({"actions": [{"name": "transition_service_to_open", "args": {
            "previous_service_identity": previous_cert,
            "next_service_identity": node.ca_pem,
        }}]})
        .to_string(),
    )
    .unwrap();
    let created = member_cli_as(node, "member0", &["propose", "--proposal", "open.json"]);
    let id = created["proposalId"].as_str().unwrap().to_owned();
    let mut state = created["proposalState"].clone();
    for voter in voters {
        state =
            member_cli_as(node, voter, &["vote", "--proposal-id", &id])["proposalState"].clone();
    }
    assert_eq!(state, "Accepted");
    assert_eq!(service_status(node), "WaitingForRecoveryShares");
}

/// `member` submits the share that reaches the threshold with `coco member submit-share`; the
/// service opens. Returns the service's answer.
fn submit_last_share(node: &TestNode, member: &str) -> serde_json::Value {
    let key = format!("{member}_enc_privk.pem");
    let answer = member_cli_as(node, member, &["submit-share", "--enc-key", &key]);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("End of recovery procedure initiated"),
        "{answer}"
    );
    wait_for_status(node, "Open");
    answer
}

/// Every one of `writes` records (even ids private, odd public) reads back as `record <id>`.
fn every_write_is_back(node: &TestNode, writes: u64) {
    let mut user = node.user();
    for i in 0..writes {
        let path = if i % 2 == 0 {
            format!("/app/log/private?id={i}")
        } else {
            format!("/app/log/public?id={i}")
        };
        let r = user.get(&path).unwrap();
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text());
        assert_eq!(r.json()["msg"], format!("record {i}"), "{path}");
    }
}

/// Writes `writes` records through `node` (even ids private, odd public); returns the last
/// transaction id and the first.
fn write_records(node: &TestNode, writes: u64) -> (String, String) {
    let mut user = node.user();
    let (mut first, mut last) = (String::new(), String::new());
    for i in 0..writes {
        let path = if i % 2 == 0 {
            "/app/log/private"
        } else {
            "/app/log/public"
        };
        let r = user
            .post_json(path, &json!({"id": i, "msg": format!("record {i}")}))
            .unwrap();
        assert_eq!(r.status.as_u16(), 200, "{}", r.text());
        last = txid_of(&r);
        if i == 0 {
            first = last.clone();
        }
    }
    (first, last)
}

/// POSTs a COSE Sign1 `recovery_share` with `share` (raw bytes) signed by `signer` for the
/// member `for_member`; returns (status, body).
fn submit_raw_share(
    node: &TestNode,
    signer: &str,
    for_member: &str,
    share: &[u8],
) -> (u16, serde_json::Value) {
    let body = json!({"share": base64::engine::general_purpose::STANDARD.encode(share)});
    std::fs::write(node.path("share.json"), body.to_string()).unwrap();
    let signed = support::run_coco(
        &[
            "member",
            "--cert",
            &format!("{signer}_cert.pem"),
            "--key",
            &format!("{signer}_privk.pem"),
            "sign",
            "--content",
            "share.json",
            "--msg-type",
            "recovery_share",
        ],
        node.dir.path(),
    )
    .stdout;
    let r = node
        .anonymous()
        .request(
            coco_client::Method::POST,
            &format!(
                "/gov/recovery/members/{}:recover?api-version=2024-07-01",
                member_id(node, for_member)
            ),
            &[("content-type", "application/cose")],
            bytes::Bytes::from(signed),
        )
        .unwrap();
    (r.status.as_u16(), r.json())
}

/// The share `member` would submit (decrypted with its encryption key).
fn decrypted_share(node: &TestNode, member: &str) -> Vec<u8> {
    let r = node
        .anonymous()
        .get(&format!(
            "/gov/recovery/encrypted-shares/{}?api-version=2024-07-01",
            member_id(node, member)
        ))
        .unwrap();
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let encrypted = base64::engine::general_purpose::STANDARD
        .decode(r.json()["encryptedShare"].as_str().unwrap())
        .unwrap();
    let key = coco_crypto::RsaKeyPair::from_pkcs8_pem(
        &std::fs::read_to_string(node.path(&format!("{member}_enc_privk.pem"))).unwrap(),
    )
    .unwrap();
    key.rsa_oaep_sha256_decrypt(&encrypted).unwrap()
}

fn chunk_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// After the recovery, receipts of a transaction from before it — the one the client kept and
/// the one the recovered service gives — verify against the *new* service certificate with
/// CCF's own Python package: JSON receipts through `service_endorsements`, COSE receipts through
/// the COSE endorsements chain, whose epoch ends at the previous service's last signature.
fn receipts_from_before_the_disaster_still_verify(
    node: &TestNode,
    previous_cert: &str,
    early: &str,
    kept_receipt: &serde_json::Value,
    kept_cose: &[u8],
) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = node
        .anonymous()
        .get("/node/service/previous_identity")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["previous_service_identity"], previous_cert);
    let dir = node.dir.path();
    let verify = |receipts: serde_json::Value| {
        oracle(
            dir,
            "verify_receipts.py",
            &json!({"service_cert": node.ca_pem, "receipts": receipts}),
        )
    };
    // The kept receipt has no endorsement of the old identity: it fails against the new one.
    assert!(verify(json!([kept_receipt])).is_err());
    let receipt = node.receipt(early);
    let endorsements = receipt["service_endorsements"].as_array().unwrap();
    assert_eq!(endorsements.len(), 1, "{receipt}");
    assert_eq!(receipt["signature"], kept_receipt["signature"]);
    verify(json!([receipt])).expect("CCF verifies a pre-disaster receipt after the recovery");
    std::fs::write(dir.join("early_receipt.json"), receipt.to_string()).unwrap();
    support::run_coco(
        &[
            "receipt",
            "verify",
            "--service-cert",
            "service_cert.pem",
            "early_receipt.json",
        ],
        dir,
    );

    let r = node.historical("/app/log/public/cose_endorsements", early);
    assert_eq!(r.status, 200, "{}", r.text());
    let chain = r.json()["endorsements"].clone();
    assert_eq!(chain.as_array().unwrap().len(), 1, "{chain}");
    let r = node.historical("/app/log/public/cose_receipt", early);
    assert_eq!(r.status, 200, "{}", r.text());
    let zero = "00".repeat(32);
    let verified = oracle(
        dir,
        "verify_cose_receipts.py",
        &json!({"service_cert": node.ca_pem, "receipts": [
            {"cose": b64.encode(kept_cose), "claims_digest": zero, "endorsements": chain},
            {"cose": b64.encode(&r.body), "claims_digest": zero, "endorsements": chain},
        ]}),
    )
    .expect("CCF verifies pre-disaster COSE receipts through the endorsements");
    // Without the endorsements they do not verify against the new service key.
    assert!(
        oracle(
            dir,
            "verify_cose_receipts.py",
            &json!({"service_cert": node.ca_pem, "receipts": [
                {"cose": b64.encode(kept_cose), "claims_digest": zero},
            ]}),
        )
        .is_err()
    );
    // The endorsed epoch runs from the first service's creation to its last signature, whose
    // root the endorsement names (as CCF's recovery test checks).
    let epoch = &verified["epochs"][0][0];
    assert_eq!(epoch["epoch.start.txid"], "2.1", "{epoch}");
    let end = epoch["epoch.end.txid"].as_str().unwrap();
    let signature = node.receipt(end);
    assert_eq!(
        signature["leaf"], epoch["epoch.end.merkle.root"],
        "{signature}"
    );
}

#[test]
fn a_dead_network_recovers_from_one_ledger_with_the_members_shares() {
    let opts = Options {
        extra_members: 2,
        extra_members_recover: true,
        sig_tx_count: 500,
        chunk_size: "256KB".into(),
        snapshot_tx_count: Some(1_000_000),
        ..Options::default()
    };
    let mut nodes = TestNode::cluster(3, opts.clone());
    let primary = &nodes[0];
    // Three recovery members, any two of whom recover.
    for m in ["member1", "member2"] {
        member_cli_as(primary, m, &["ack"]);
    }
    std::fs::write(
        primary.path("threshold.json"),
        json!({"actions": [{"name": "set_recovery_threshold", "args": {"recovery_threshold": 2}}]})
            .to_string(),
    )
    .unwrap();
    let created = member_cli_as(
        primary,
        "member0",
        &["propose", "--proposal", "threshold.json"],
    );
    let id = created["proposalId"].as_str().unwrap().to_owned();
    member_cli_as(primary, "member0", &["vote", "--proposal-id", &id]);
    let ballot = member_cli_as(primary, "member1", &["vote", "--proposal-id", &id]);
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");

    let (early, last) = write_records(primary, WRITES);
    for n in &nodes {
        n.wait_committed_here(&last);
    }
    // A client keeps receipts from before the disaster.
    let early_receipt = primary.receipt(&early);
    let r = primary.historical("/app/log/public/cose_receipt", &early);
    assert_eq!(r.status, 200, "{}", r.text());
    let early_cose = r.body.to_vec();
    let r = primary
        .anonymous()
        .get("/node/service/previous_identity")
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "ResourceNotFound");
    for n in &mut nodes {
        n.kill9();
    }
    let dead = &nodes[0];

    // A damaged ledger is refused with the entry at fault, and nothing is written to it.
    let damaged = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dead.ledger_dir()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), damaged.path().join(e.file_name())).unwrap();
    }
    let first_chunk = chunk_files(damaged.path())
        .into_iter()
        .find(|n| n == "ledger_1" || n.starts_with("ledger_1-"))
        .unwrap();
    let mut bytes = std::fs::read(damaged.path().join(&first_chunk)).unwrap();
    // Inside the first entry: the signed Merkle roots no longer match.
    bytes[200] ^= 0x40;
    std::fs::write(damaged.path().join(&first_chunk), bytes).unwrap();
    let mut refused = dead.spawn_recovery(damaged.path(), &opts);
    let status = refused.child.as_mut().unwrap().wait().unwrap();
    assert!(!status.success());
    let log = refused.log();
    assert!(
        log.contains("recovering the service failed") || log.contains("ledger chunk"),
        "{log}"
    );

    // A torn final entry (a crash mid-write) is repaired: recovery proceeds from what precedes
    // it. Recover from node 0's ledger with such a tail.
    let open_chunk = chunk_files(&dead.ledger_dir())
        .into_iter()
        .rfind(|n| !n.contains('-'));
    if let Some(open_chunk) = open_chunk {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dead.ledger_dir().join(open_chunk))
            .unwrap();
        std::io::Write::write_all(&mut f, &[0x01, 0x00, 0x00, 0x00, 0xff]).unwrap();
    }
    let node = dead.recover(&dead.ledger_dir(), &opts);
    assert_ne!(node.ca_pem, dead.ca_pem, "a new service identity");
    assert_eq!(service_status(&node), "Recovering");
    // Another node joins while the service recovers (trusted at once, as CCF): it replicates
    // the whole ledger, the dead service's part public only until the secrets are back.
    let early_joiner = node.join(&opts);
    // Until the recovery completes, transactions of the dead service cannot be proven (CCF).
    let r = node
        .anonymous()
        .get(&format!("/node/receipt?transaction_id={early}"))
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.json()["error"]["code"],
        "TransactionInvalid",
        "{}",
        r.text()
    );
    // Shares are refused until members open the service.
    let (status, body) = submit_raw_share(&node, "member0", "member0", &[0; 44]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "ServiceNotWaitingForRecoveryShares");
    // Members open it naming both identities: WaitingForRecoveryShares.
    open_recovered(&node, &dead.ca_pem, &["member0", "member1"]);

    // A non-member cannot submit; a member cannot submit for another; a malformed share is
    // refused; one share is not enough; a wrong share at the threshold is discarded with the
    // others, so members can start over.
    let (status, body) = submit_raw_share(&node, "user0", "member0", &[0; 44]);
    assert_eq!(status, 401, "{body}");
    let (status, body) = submit_raw_share(&node, "member0", "member1", &[0; 44]);
    assert_eq!(status, 403, "{body}");
    let (status, body) = submit_raw_share(&node, "member0", "member0", &[1; 12]);
    assert_eq!(status, 400, "{body}");
    let good0 = decrypted_share(&node, "member0");
    let (status, body) = submit_raw_share(&node, "member0", "member0", &good0);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["submittedCount"], 1, "{body}");
    assert_eq!(body["recoveryThreshold"], 2, "{body}");
    assert_eq!(
        body["message"], "1/2 recovery shares successfully submitted",
        "{body}"
    );
    let mut wrong = decrypted_share(&node, "member1");
    wrong[10] ^= 1;
    let (status, body) = submit_raw_share(&node, "member1", "member1", &wrong);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("submit their shares again"),
        "{body}"
    );
    assert_eq!(service_status(&node), "WaitingForRecoveryShares");

    // member0 through CCF's own script (openssl decrypts, ccf_cose_sign1 signs), member1
    // through coco's member CLI.
    let venv_bin = ccf_python().parent().unwrap().to_owned();
    let out = Command::new("bash")
        .arg(venv_bin.join("submit_recovery_share.sh"))
        .arg(format!("https://{}", node.addr))
        .args(["--member-enc-privk", "member0_enc_privk.pem"])
        .args(["--member-id-privk", "member0_privk.pem"])
        .args(["--member-id-cert", "member0_cert.pem"])
        .args(["--cacert", "service_cert.pem"])
        .current_dir(node.dir.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                venv_bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1/2 recovery shares successfully submitted"),
        "{stdout}"
    );
    let answer = submit_last_share(&node, "member1");
    assert_eq!(answer["submittedCount"], 2, "{answer}");
    receipts_from_before_the_disaster_still_verify(
        &node,
        &dead.ca_pem,
        &early,
        &early_receipt,
        &early_cose,
    );

    // Every committed write is back, private and public.
    every_write_is_back(&node, WRITES);
    let mut user = node.user();
    let info = node
        .anonymous()
        .get("/gov/service/info?api-version=2024-07-01")
        .unwrap()
        .json();
    assert_eq!(info["recoveryCount"], 1, "{info}");
    // The service writes again, and its ledger files lost their `.recovery` suffix.
    let r = user
        .post_json("/app/log/private", &json!({"id": WRITES, "msg": "after"}))
        .unwrap();
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let after = txid_of(&r);
    node.wait_committed_here(&after);
    // Transactions of the recovered service need no endorsement.
    let receipt = node.receipt(&after);
    assert!(receipt.get("service_endorsements").is_none(), "{receipt}");
    oracle(
        node.dir.path(),
        "verify_receipts.py",
        &json!({"service_cert": node.ca_pem, "receipts": [receipt]}),
    )
    .expect("CCF verifies a receipt of the recovered service");
    let r = node.historical("/app/log/public/cose_endorsements", &after);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "ResourceNotFound");
    assert!(
        chunk_files(&node.ledger_dir())
            .iter()
            .all(|n| !n.contains(".recovery")),
        "{:?}",
        chunk_files(&node.ledger_dir())
    );

    // The node that joined while recovering replayed the private domains too.
    early_joiner.wait_committed_here(&after);
    let mut conn = early_joiner.user();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for i in [0, 1, WRITES - 2, WRITES] {
        let path = if i % 2 == 0 {
            format!("/app/log/private?id={i}")
        } else {
            format!("/app/log/public?id={i}")
        };
        loop {
            let r = conn.get(&path).unwrap();
            if r.status == 200 {
                let want = if i == WRITES {
                    "after".to_owned()
                } else {
                    format!("record {i}")
                };
                assert_eq!(r.json()["msg"], want, "{path}");
                break;
            }
            // Until its private maps are back, its frontend stays closed (never a wrong 404).
            assert_eq!(r.json()["error"]["code"], "FrontendNotOpen", "{}", r.text());
            assert!(
                std::time::Instant::now() < deadline,
                "{path} on the early joiner: {}",
                r.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    // It proves transactions of the dead service too, with the same signature.
    let receipt = early_joiner.receipt(&early);
    assert_eq!(
        receipt["signature"], early_receipt["signature"],
        "{receipt}"
    );
    oracle(
        early_joiner.dir.path(),
        "verify_receipts.py",
        &json!({"service_cert": node.ca_pem, "receipts": [receipt]}),
    )
    .expect("CCF verifies the early joiner's receipt of a pre-disaster transaction");

    // New nodes join the recovered service from the snapshot it took when it opened.
    let mut joiner = node.spawn_joiner(&opts);
    support::trust_pending_by(&node, &["member1"]);
    joiner.wait_started();
    let r = user
        .post_json(
            "/app/log/private",
            &json!({"id": WRITES + 1, "msg": "joined"}),
        )
        .unwrap();
    joiner.wait_committed_here(&txid_of(&r));
    let mut conn = joiner.user();
    let r = conn.get("/app/log/private?id=0").unwrap();
    assert_eq!(r.json()["msg"], "record 0");
}

/// CCF recovers from the dead service's latest committed snapshot and the ledger after it; so
/// does coco: the ledger chunks the snapshot covers are not even needed. While recovering, the
/// ledger (with the new service's `.recovery` files) verifies with CCF's `read_ledger.py
/// --recovery`; a recovery abandoned there leaves nothing in the way of the next.
#[test]
fn a_service_recovers_from_its_latest_snapshot_and_the_ledger_after_it() {
    const N: u64 = 1_000;
    let opts = Options {
        sig_tx_count: 20,
        chunk_size: "8KB".into(),
        snapshot_tx_count: Some(300),
        ..Options::default()
    };
    let mut dead = TestNode::start(opts.clone());
    let (_, last) = write_records(&dead, N);
    dead.wait_committed_here(&last);
    let snapshots = dead.path("snapshots");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let snapshot_seqno = loop {
        let latest = std::fs::read_dir(&snapshots)
            .unwrap()
            .filter_map(|e| {
                coco_codec::snapshot::SnapshotName::parse(e.unwrap().file_name().to_str()?)
            })
            .filter(|n| n.committed)
            .map(|n| n.seqno)
            .max();
        if let Some(s) = latest.filter(|s| *s > 600) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no committed snapshot"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    dead.kill9();
    let last_seqno: u64 = last.split('.').nth(1).unwrap().parse().unwrap();
    assert!(
        snapshot_seqno < last_seqno,
        "the ledger continues after the snapshot"
    );
    let opts = Options {
        read_only_snapshot_dir: Some(snapshots.clone()),
        ..opts
    };

    // A first recovery, abandoned while Recovering: CCF reads its ledger, .recovery files too.
    let mut abandoned = dead.recover(&dead.ledger_dir(), &opts);
    assert!(
        abandoned.log().contains("recovering from a snapshot"),
        "{}",
        abandoned.log()
    );
    assert_eq!(service_status(&abandoned), "Recovering");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !chunk_files(&abandoned.ledger_dir())
        .iter()
        .any(|n| n.ends_with(".committed.recovery"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no committed .recovery chunk"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    abandoned.stop();
    let read_ledger = ccf_python().parent().unwrap().join("read_ledger.py");
    let (n_tx, _) = support::verified_counts(
        &read_ledger,
        &abandoned.ledger_dir(),
        &["--uncommitted", "--recovery"],
    );
    assert!(
        n_tx > last_seqno,
        "{n_tx} transactions verified, the old ledger has {last_seqno}"
    );

    // The ledger the snapshot covers is not needed.
    let trimmed = tempfile::tempdir().unwrap();
    let mut dropped = 0;
    for name in chunk_files(&dead.ledger_dir()) {
        let parsed = coco_codec::chunk::ChunkName::parse(&name).unwrap();
        if parsed.end.is_some_and(|end| end <= snapshot_seqno) {
            dropped += 1;
            continue;
        }
        std::fs::copy(dead.ledger_dir().join(&name), trimmed.path().join(&name)).unwrap();
    }
    assert!(dropped > 0);
    let node = dead.recover(trimmed.path(), &opts);
    assert!(
        node.log().contains("recovering from a snapshot"),
        "{}",
        node.log()
    );
    open_recovered(&node, &dead.ca_pem, &["member0"]);
    submit_last_share(&node, "member0");
    every_write_is_back(&node, N);
    let r = node
        .user()
        .post_json("/app/log/private", &json!({"id": N, "msg": "after"}))
        .unwrap();
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    node.wait_committed_here(&txid_of(&r));
}

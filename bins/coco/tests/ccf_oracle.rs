//! CCF's own tools as oracles over the ledger of a real running coco node:
//! `read_ledger.py` (chunk format, public domains, Merkle tree, node and COSE signatures) and an
//! independent Python decryption of every private domain (IV rule, AAD, ledger secret).

mod support;

use std::process::Command;

use support::{Options, TestNode, ccf_python, txid_of};

const WRITES: u64 = 1200;

#[test]
fn ccf_read_ledger_and_python_decryption_accept_our_ledger() {
    let py = ccf_python();
    let mut node = TestNode::start(Options {
        chunk_size: "32KB".into(),
        sig_tx_count: 100,
        sig_delay_ms: 100,
        export_ledger_secret: true,
        ..Options::default()
    });
    let mut user = node.user();
    let mut last = String::new();
    for i in 0..WRITES {
        let vis = if i % 2 == 0 { "private" } else { "public" };
        let r = user
            .post_json(
                &format!("/app/log/{vis}"),
                &serde_json::json!({"id": i, "msg": format!("message number {i}")}),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        last = txid_of(&r);
    }
    node.wait_committed(&mut user, &last);
    // Give the storage thread a moment to rename the last completed chunk.
    std::thread::sleep(std::time::Duration::from_millis(300));
    node.stop();

    let ledger = node.ledger_dir();
    let committed: Vec<_> = std::fs::read_dir(&ledger)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".committed"))
        .collect();
    assert!(
        committed.len() >= 2,
        "expected several committed chunks with a 64KB chunk size, got {committed:?}"
    );

    let read_ledger = py.parent().unwrap().join("read_ledger.py");
    // Committed chunks only (read_ledger.py's default), then everything including the open tail.
    let (n_tx, n_sig) = support::verified_counts(&read_ledger, &ledger, &[]);
    assert!(n_tx >= 1000, "only {n_tx} committed transactions verified");
    assert!(n_sig >= 1, "no signature verified");
    let (n_tx_all, _) = support::verified_counts(&read_ledger, &ledger, &["--uncommitted"]);
    assert!(
        n_tx_all >= WRITES,
        "only {n_tx_all} transactions verified including uncommitted ones"
    );

    // coco's native verifier agrees with CCF's on the same directory.
    let native = support::run_coco(
        &["ledger", "verify", ledger.to_str().unwrap()],
        node.dir.path(),
    );
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    assert!(
        native.contains(&format!("Verified FULL - {n_tx_all} transactions")),
        "native: {native}, read_ledger --uncommitted: {n_tx_all}"
    );

    let secret = std::fs::read_to_string(node.path("ledger_secret.hex")).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/oracle/decrypt_private_domains.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&ledger)
        .arg(secret.trim())
        .arg("records")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "decryption check failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["transactions"].as_u64().unwrap() >= WRITES, "{v}");
    assert_eq!(
        v["expected_map_writes"].as_u64().unwrap(),
        WRITES / 2,
        "{v}"
    );
}

/// CCF's recovery-share scheme, checked against an independent Python implementation: the fixed
/// golden vector (shares, wrapping key, wrapped ledger secret), and shares drawn at random
/// recombined by Python.
#[test]
fn recovery_shares_match_an_independent_implementation() {
    use coco_crypto::sharing;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/oracle/recovery_shares.py");
    let run = |args: &[String]| {
        let out = Command::new(ccf_python())
            .arg(&script)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut k = 0u32;
    let (secret, shares) = sharing::split_with(3, 5, || {
        let v = 1000 + 7 * k;
        k += 1;
        Ok(v)
    })
    .unwrap();
    let ours = format!(
        "secret {}\nshare3 {}\nkey {}\nwrapped {}\n",
        hex::encode(secret.to_bytes()),
        hex::encode(shares[2].to_bytes()),
        hex::encode(secret.wrapping_key().unwrap()),
        hex::encode(sharing::wrap_ledger_secret(&secret, &[0x11; 32]).unwrap())
    );
    assert_eq!(run(&[]), ours);

    let mut rng = coco_crypto::Drbg::new({
        let mut seed = [0u8; 32];
        coco_crypto::random_bytes(&mut seed).unwrap();
        seed
    });
    let (secret, shares) = sharing::split(3, 4, &mut rng).unwrap();
    let mut args = vec!["--combine".to_owned()];
    args.extend([3, 0, 2].iter().map(|&i| hex::encode(shares[i].to_bytes())));
    assert_eq!(run(&args).trim(), hex::encode(secret.to_bytes()));
}

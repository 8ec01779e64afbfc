//! The CLI's handling of bad input and its file outputs.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn coco(args: &[&str], cwd: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(support::COCO)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn node_config_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::run_coco(&["keygen", "--name", "member0"], d);
    let good = serde_json::json!({
        "network": {"rpc_interfaces": {"main": {"bind_address": "127.0.0.1:0"}}},
        "command": {"type": "Start", "start": {"members": [{"certificate_file": "member0_cert.pem"}]}},
        "ledger": {"directory": "ledger"}
    });
    // (config text, expected fragment of the error)
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "invalid configuration"),
        (
            good.to_string().replace("\"ledger\":{", "\"ledgr\":{"),
            "ledgr",
        ),
        (
            good.to_string().replace("member0_cert.pem", "nope.pem"),
            "nope.pem",
        ),
        (
            good.to_string().replace("127.0.0.1:0", "localhost"),
            "bind_address",
        ),
        (
            good.to_string().replace(
                "\"directory\":\"ledger\"",
                "\"directory\":\"ledger\",\"chunk_size\":\"0\"",
            ),
            "ledger.chunk_size",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(d.join("bad.json"), &text).unwrap();
        let (code, _, err) = coco(&["node", "--config", "bad.json"], d);
        assert_eq!(code, 1, "{text}: {err}");
        assert!(
            err.contains(want),
            "config {text}: error {err:?} does not mention {want}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = coco(&["node", "--config", "missing.json"], d);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read configuration file"), "{err}");
    // A member certificate that is not a certificate.
    std::fs::write(
        d.join("garbage_cert.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        d.join("bad.json"),
        good.to_string()
            .replace("member0_cert.pem", "garbage_cert.pem"),
    )
    .unwrap();
    let (code, _, err) = coco(&["node", "--config", "bad.json"], d);
    assert_eq!(code, 1);
    assert!(
        err.contains("member certificate") && err.contains("garbage_cert.pem"),
        "{err}"
    );
    // A member encryption key that is not an RSA public key, and an unknown recovery role.
    std::fs::write(
        d.join("bad_enc.pem"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let with_member = |extra: &str| {
        good.to_string().replace(
            r#""certificate_file":"member0_cert.pem""#,
            &format!(r#""certificate_file":"member0_cert.pem",{extra}"#),
        )
    };
    for (text, want) in [
        (
            with_member(r#""encryption_public_key_file":"bad_enc.pem""#),
            "bad_enc.pem",
        ),
        (
            with_member(r#""recovery_role":"Boss""#),
            "command.start.members[0].recovery_role",
        ),
    ] {
        assert_ne!(text, good.to_string());
        std::fs::write(d.join("bad.json"), &text).unwrap();
        let (code, _, err) = coco(&["node", "--config", "bad.json"], d);
        assert_eq!(code, 1, "{text}");
        assert!(err.contains(want), "{text}: {err}");
    }
    // A non-empty ledger directory is refused: starting from an existing ledger is recovery.
    std::fs::create_dir_all(d.join("ledger")).unwrap();
    std::fs::write(d.join("ledger/ledger_1"), [0u8; 8]).unwrap();
    std::fs::write(d.join("bad.json"), good.to_string()).unwrap();
    let (code, _, err) = coco(&["node", "--config", "bad.json"], d);
    assert_eq!(code, 1);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn keygen_writes_ccf_style_identities() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = coco(&["keygen", "--name", "member7", "--gen-enc-key"], d);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("member7_cert.pem"), "{out}");
    for (f, private) in [
        ("member7_cert.pem", false),
        ("member7_privk.pem", true),
        ("member7_enc_pubk.pem", false),
        ("member7_enc_privk.pem", true),
    ] {
        let meta = std::fs::metadata(d.join(f)).unwrap_or_else(|_| panic!("{f} missing"));
        if private {
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "{f} readable by others"
            );
        }
    }
    let pem = std::fs::read_to_string(d.join("member7_cert.pem")).unwrap();
    let der = coco_crypto::pem_to_der_certs(&pem).unwrap().remove(0);
    let spki = coco_crypto::cert_public_key_spki_der(&der).unwrap();
    coco_crypto::verify_cert_signed_by(&der, &spki).expect("self-signed");
    let key = coco_crypto::EcKeyPair::from_pkcs8_pem(
        &std::fs::read_to_string(d.join("member7_privk.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(key.public_key_spki_der(), spki);
    let enc = coco_crypto::RsaKeyPair::from_pkcs8_pem(
        &std::fs::read_to_string(d.join("member7_enc_privk.pem")).unwrap(),
    )
    .unwrap();
    let ct = coco_crypto::rsa_oaep_sha256_encrypt(
        &std::fs::read_to_string(d.join("member7_enc_pubk.pem")).unwrap(),
        b"share",
    )
    .unwrap();
    assert_eq!(enc.rsa_oaep_sha256_decrypt(&ct).unwrap(), b"share");
    let (code, _, err) = coco(&["keygen", "--name", "../escape"], d);
    assert_eq!(code, 1);
    assert!(err.contains("invalid identity name"), "{err}");
}

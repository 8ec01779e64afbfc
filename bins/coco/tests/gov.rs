//! Governance requests signed with CCF's own `ccf_cose_sign1` tool (from the `ccf` PyPI
//! package) are accepted; unsigned, wrongly signed, wrong-type and non-member requests are
//! rejected with CCF's status and code.

mod support;

use std::process::Command;

use bytes::Bytes;
use coco_client::{BlockingConnection, Method, Reply};
use support::{Options, TestNode, ccf_python, member_cli, member_cli_as};

const V: &str = "api-version=2024-07-01";

fn member_id(node: &TestNode, name: &str) -> String {
    let pem = std::fs::read_to_string(node.path(&format!("{name}_cert.pem"))).unwrap();
    coco_crypto::cert_der_fingerprint_hex(&coco_crypto::pem_to_der_certs(&pem).unwrap()[0])
}

/// Signs `content` with CCF's `ccf_cose_sign1` as identity `name`.
fn ccf_sign(
    node: &TestNode,
    name: &str,
    msg_type: &str,
    content: &str,
    proposal_id: Option<&str>,
) -> Vec<u8> {
    let py = ccf_python();
    let content_file = node.path(&format!("content-{msg_type}.json"));
    std::fs::write(&content_file, content).unwrap();
    let mut cmd = Command::new(py.parent().unwrap().join("ccf_cose_sign1"));
    cmd.arg("--content")
        .arg(&content_file)
        .arg("--signing-key")
        .arg(node.path(&format!("{name}_privk.pem")))
        .arg("--signing-cert")
        .arg(node.path(&format!("{name}_cert.pem")))
        .args([
            "--ccf-gov-msg-type",
            msg_type,
            "--ccf-gov-msg-created_at",
            "2026-11-24T00:00:00+00:00",
        ]);
    if let Some(p) = proposal_id {
        cmd.args(["--ccf-gov-msg-proposal_id", p]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "ccf_cose_sign1 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn post_cose(c: &mut BlockingConnection, path: &str, body: Vec<u8>) -> Reply {
    c.request(
        Method::POST,
        path,
        &[("content-type", "application/cose")],
        Bytes::from(body),
    )
    .unwrap()
}

fn code(r: &Reply) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn member_acknowledges_state_digest_with_ccf_signed_requests() {
    let node = TestNode::start(Options {
        open: false,
        ..Options::default()
    });
    let mut c = node.anonymous();
    let m0 = member_id(&node, "member0");
    let member_url = format!("/gov/service/members/{m0}?{V}");
    assert_eq!(c.get(&member_url).unwrap().json()["status"], "Accepted");

    let update = format!("/gov/members/state-digests/{m0}:update?{V}");
    let r = post_cose(
        &mut c,
        &update,
        ccf_sign(&node, "member0", "state_digest", "{}", None),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let digest = r.json()["stateDigest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 64);
    let got = c
        .get(&format!("/gov/members/state-digests/{m0}?{V}"))
        .unwrap();
    assert_eq!(got.json()["stateDigest"], digest.as_str());

    let ack = format!("/gov/members/state-digests/{m0}:ack?{V}");
    let wrong = ccf_sign(
        &node,
        "member0",
        "ack",
        &serde_json::json!({"stateDigest": "00".repeat(32)}).to_string(),
        None,
    );
    let r = post_cose(&mut c, &ack, wrong);
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (400, "StateDigestMismatch"),
        "{}",
        r.text()
    );
    assert_eq!(c.get(&member_url).unwrap().json()["status"], "Accepted");

    let right = ccf_sign(
        &node,
        "member0",
        "ack",
        &serde_json::json!({"stateDigest": digest}).to_string(),
        None,
    );
    let r = post_cose(&mut c, &ack, right);
    assert_eq!(r.status, 204, "{}", r.text());
    let txid = support::txid_of(&r);
    node.wait_committed(&mut c, &txid);
    assert_eq!(c.get(&member_url).unwrap().json()["status"], "Active");
    let members = c.get(&format!("/gov/service/members?{V}")).unwrap().json();
    assert_eq!(members["value"].as_array().unwrap().len(), 1);
    assert!(
        members["value"][0]["publicEncryptionKey"]
            .as_str()
            .unwrap()
            .contains("PUBLIC KEY")
    );
    let info = c.get(&format!("/gov/service/info?{V}")).unwrap().json();
    assert_eq!(
        info["status"], "Opening",
        "not opened by governance in this test"
    );
    assert_eq!(info["certificate"].as_str().unwrap(), node.ca_pem);
}

#[test]
fn state_changing_gov_requests_reject_bad_authentication() {
    let node = TestNode::start(Options {
        open: false,
        ..Options::default()
    });
    let mut c = node.anonymous();
    let m0 = member_id(&node, "member0");
    let update = format!("/gov/members/state-digests/{m0}:update?{V}");
    let good = ccf_sign(&node, "member0", "state_digest", "{}", None);
    let mut tampered = good.clone();
    let n = tampered.len();
    tampered[n - 1] ^= 1;
    // (what, path, content type, body, status, code)
    let cases: Vec<(&str, String, &str, Vec<u8>, u16, &str)> = vec![
        (
            "unsigned JSON body",
            update.clone(),
            "application/json",
            b"{}".to_vec(),
            401,
            "InvalidAuthenticationInfo",
        ),
        (
            "garbage COSE body",
            update.clone(),
            "application/cose",
            b"\xd2\x84garbage".to_vec(),
            401,
            "InvalidAuthenticationInfo",
        ),
        (
            "tampered signature",
            update.clone(),
            "application/cose",
            tampered,
            401,
            "InvalidAuthenticationInfo",
        ),
        (
            "signed by a non-member",
            update.clone(),
            "application/cose",
            ccf_sign(&node, "stranger", "state_digest", "{}", None),
            401,
            "InvalidAuthenticationInfo",
        ),
        (
            "signed by a user",
            update.clone(),
            "application/cose",
            ccf_sign(&node, "user0", "state_digest", "{}", None),
            401,
            "InvalidAuthenticationInfo",
        ),
        (
            "wrong message type",
            update.clone(),
            "application/cose",
            ccf_sign(&node, "member0", "ballot", "{}", Some("ab")),
            401,
            "InvalidAuthenticationInfo",
        ),
        (
            "acting for another member",
            format!("/gov/members/state-digests/{}:update?{V}", "0".repeat(64)),
            "application/cose",
            good.clone(),
            403,
            "AuthorizationFailed",
        ),
        (
            "missing api-version",
            format!("/gov/members/state-digests/{m0}:update"),
            "application/cose",
            good.clone(),
            400,
            "MissingApiVersionParameter",
        ),
        (
            "unknown api-version",
            format!("/gov/members/state-digests/{m0}:update?api-version=2019-01-01"),
            "application/cose",
            good.clone(),
            400,
            "UnsupportedApiVersionValue",
        ),
    ];
    for (what, path, ct, body, status, want) in cases {
        let r = c
            .request(
                Method::POST,
                &path,
                &[("content-type", ct)],
                Bytes::from(body),
            )
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), code(&r).as_str()),
            (status, want),
            "{what}: {}",
            r.text()
        );
        if status == 401 {
            assert_eq!(
                r.header("www-authenticate"),
                Some(r#"COSE-SIGN1 realm="Signed request access""#),
                "{what}"
            );
        }
    }
    // Nothing was recorded by any rejected request.
    let r = c
        .get(&format!("/gov/members/state-digests/{m0}?{V}"))
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    // And the good request still works.
    assert_eq!(post_cose(&mut c, &update, good).status, 200);
}

/// `coco member sign` produces envelopes CCF's own verifier accepts, with CCF's headers; and
/// `coco member ack` makes the member Active.
#[test]
fn coco_member_tooling_interoperates_with_ccf() {
    let node = TestNode::start(Options::default());
    let d = node.dir.path();
    std::fs::write(
        node.path("proposal.json"),
        r#"{"actions":[{"name":"set_user","args":{}}]}"#,
    )
    .unwrap();
    let out = Command::new(support::COCO)
        .args([
            "member",
            "--cert",
            "member0_cert.pem",
            "--key",
            "member0_privk.pem",
            "sign",
            "--content",
            "proposal.json",
            "--msg-type",
            "ballot",
            "--proposal-id",
            "abcd",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(node.path("signed.cose"), &out.stdout).unwrap();
    let check = r#"
import sys, cbor2, ccf.cose
cert = open(sys.argv[1], "rb").read(); msg = open(sys.argv[2], "rb").read()
ccf.cose.verify_cose_sign1_with_cert(cert, msg, use_key=False)
tag = cbor2.loads(msg); phdr = cbor2.loads(tag.value[0])
assert tag.tag == 18, tag.tag
assert phdr["ccf.gov.msg.type"] == "ballot", phdr
assert phdr["ccf.gov.msg.proposal_id"] == "abcd", phdr
assert isinstance(phdr["ccf.gov.msg.created_at"], int), phdr
assert tag.value[2] == open(sys.argv[3], "rb").read()
print("ok")
"#;
    let py = ccf_python();
    let r = Command::new(&py)
        .arg("-c")
        .arg(check)
        .arg(node.path("member0_cert.pem"))
        .arg(node.path("signed.cose"))
        .arg(node.path("proposal.json"))
        .output()
        .unwrap();
    assert!(
        r.status.success() && String::from_utf8_lossy(&r.stdout).trim() == "ok",
        "CCF rejected our envelope: {}",
        String::from_utf8_lossy(&r.stderr)
    );

    let addr = node.addr.to_string();
    let out = Command::new(support::COCO)
        .args([
            "member",
            "--cert",
            "member0_cert.pem",
            "--key",
            "member0_privk.pem",
            "ack",
            "--address",
            &addr,
            "--cacert",
            "service_cert.pem",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = node.anonymous();
    let m0 = member_id(&node, "member0");
    assert_eq!(
        c.get(&format!("/gov/service/members/{m0}?{V}"))
            .unwrap()
            .json()["status"],
        "Active"
    );
    // A key that does not match the certificate is refused before anything is sent.
    let out = Command::new(support::COCO)
        .args([
            "member",
            "--cert",
            "member0_cert.pem",
            "--key",
            "user0_privk.pem",
            "ack",
            "--address",
            &addr,
            "--cacert",
            "service_cert.pem",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
}

/// The logging app accepts `user_cose_sign1` as CCF's does: a user request signed with CCF's
/// Python `ccf.cose.create_cose_sign1` (`ccf.msg.*` headers) writes a record; a member's
/// signature or a governance-style envelope does not.
#[test]
fn logging_app_accepts_user_cose_sign1() {
    let node = TestNode::start(Options::default());
    let py = ccf_python();
    let make = |signer: &str, prefix: &str, payload: &str| -> Vec<u8> {
        let script = r#"
import sys, ccf.cose
key = open(sys.argv[1]).read(); cert = open(sys.argv[2]).read()
hdr = {sys.argv[3] + "type": "user_request", sys.argv[3] + "created_at": 1700000000}
sys.stdout.buffer.write(ccf.cose.create_cose_sign1(sys.argv[4].encode(), key, cert, hdr))
"#;
        let out = Command::new(&py)
            .arg("-c")
            .arg(script)
            .arg(node.path(&format!("{signer}_privk.pem")))
            .arg(node.path(&format!("{signer}_cert.pem")))
            .arg(prefix)
            .arg(payload)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let mut anon = node.anonymous();
    let record = r#"{"id": 5, "msg": "signed by user0"}"#;
    let r = post_cose(
        &mut anon,
        "/app/log/private",
        make("user0", "ccf.msg.", record),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    node.wait_committed(&mut anon, &support::txid_of(&r));
    let mut user = node.user();
    assert_eq!(
        user.get("/app/log/private?id=5").unwrap().json()["msg"],
        "signed by user0"
    );
    for (signer, prefix) in [
        ("member0", "ccf.msg."),
        ("stranger", "ccf.msg."),
        ("user0", "ccf.gov.msg."),
    ] {
        let r = post_cose(
            &mut anon,
            "/app/log/private",
            make(signer, prefix, r#"{"id": 6, "msg": "x"}"#),
        );
        assert_eq!(
            (r.status.as_u16(), code(&r).as_str()),
            (401, "InvalidAuthenticationInfo"),
            "{signer} {prefix}: {}",
            r.text()
        );
    }
}

/// The acceptance path of governance on the default constitution: a user added by a proposal
/// signed with CCF's `ccf_cose_sign1` and voted to majority can write to the logging app;
/// invalid and withdrawn proposals change nothing.
#[test]
fn user_added_by_proposal_can_write() {
    let node = TestNode::start(Options {
        ..Options::default()
    });
    support::run_coco(&["keygen", "--name", "user1"], node.dir.path());
    let mut c = node.anonymous();
    let m0 = member_id(&node, "member0");
    // member0 becomes active (coco's own member tool).
    let addr = node.addr.to_string();
    support::run_coco(
        &[
            "member",
            "--cert",
            "member0_cert.pem",
            "--key",
            "member0_privk.pem",
            "ack",
            "--address",
            &addr,
            "--cacert",
            "service_cert.pem",
        ],
        node.dir.path(),
    );

    let user1_cert = std::fs::read_to_string(node.path("user1_cert.pem")).unwrap();
    let proposal =
        serde_json::json!({"actions": [{"name": "set_user", "args": {"cert": user1_cert}}]})
            .to_string();
    let create = format!("/gov/members/proposals:create?{V}");

    // An invalid proposal is refused by validate.
    let bad =
        serde_json::json!({"actions": [{"name": "set_user", "args": {"cert": "not a cert"}}]})
            .to_string();
    let r = post_cose(
        &mut c,
        &create,
        ccf_sign(&node, "member0", "proposal", &bad, None),
    );
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (400, "ProposalFailedToValidate"),
        "{}",
        r.text()
    );

    // A withdrawn proposal changes nothing.
    let r = post_cose(
        &mut c,
        &create,
        ccf_sign(&node, "member0", "proposal", &proposal, None),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["proposalState"], "Open");
    let withdrawn = r.json()["proposalId"].as_str().unwrap().to_owned();
    let r = post_cose(
        &mut c,
        &format!("/gov/members/proposals/{withdrawn}:withdraw?{V}"),
        ccf_sign(&node, "member0", "withdrawal", "", Some(&withdrawn)),
    );
    assert_eq!(r.json()["proposalState"], "Withdrawn", "{}", r.text());

    // The real one: proposed, then voted by the only active member.
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new created_at second for a new signature
    let r = post_cose(
        &mut c,
        &create,
        ccf_sign(&node, "member0", "proposal", &proposal, None),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["proposalId"].as_str().unwrap().to_owned();
    let mut user1 = node.connect_as(Some("user1"), false);
    let r = user1
        .post_json(
            "/app/log/private",
            &serde_json::json!({"id": 1, "msg": "not yet"}),
        )
        .unwrap();
    assert_eq!(r.status, 401, "user1 is not a user before the vote");
    let ballot = serde_json::json!({"ballot": "export function vote (proposal, proposerId) { return true; }"}).to_string();
    let r = post_cose(
        &mut c,
        &format!("/gov/members/proposals/{id}/ballots/{m0}:submit?{V}"),
        ccf_sign(&node, "member0", "ballot", &ballot, Some(&id)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["proposalState"], "Accepted", "{}", r.text());
    node.wait_committed(&mut c, &support::txid_of(&r));
    let r = user1
        .post_json(
            "/app/log/private",
            &serde_json::json!({"id": 1, "msg": "added by governance"}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.get(&format!("/gov/members/proposals/{id}?{V}")).unwrap();
    assert_eq!(r.json()["finalVotes"][&m0], true);
}

/// Rejected and failed proposals change nothing (a failing action undoes the whole proposal);
/// a constitution replaced by vote takes effect for the next proposal.
#[test]
fn rejected_failed_and_constitution_replacement() {
    let node = TestNode::start(Options {
        ..Options::default()
    });
    support::run_coco(&["keygen", "--name", "user1"], node.dir.path());
    member_cli(&node, &["ack"]);
    let user1_cert = std::fs::read_to_string(node.path("user1_cert.pem")).unwrap();
    let write_proposal = |name: &str, v: serde_json::Value| {
        std::fs::write(node.path(name), v.to_string()).unwrap();
        name.to_owned()
    };
    let mut user1 = node.connect_as(Some("user1"), false);
    let user1_can_write = |c: &mut coco_client::BlockingConnection| {
        c.post_json(
            "/app/log/private",
            &serde_json::json!({"id": 9, "msg": "m"}),
        )
        .unwrap()
        .status
            == 200
    };

    // Rejected: the only member votes against.
    let f = write_proposal(
        "p1.json",
        serde_json::json!({"actions": [{"name": "set_user", "args": {"cert": user1_cert}}]}),
    );
    let p = member_cli(&node, &["propose", "--proposal", &f]);
    let id = p["proposalId"].as_str().unwrap().to_owned();
    let v = member_cli(&node, &["vote", "--proposal-id", &id, "--reject"]);
    assert_eq!(v["proposalState"], "Rejected");
    assert!(!user1_can_write(&mut user1));

    // Failed: the second action throws in apply, so the first does not land either.
    let f = write_proposal(
        "p2.json",
        serde_json::json!({"actions": [
            {"name": "set_user", "args": {"cert": user1_cert}},
            {"name": "set_member_data", "args": {"member_id": "0".repeat(64), "member_data": {}}}
        ]}),
    );
    let p = member_cli(&node, &["propose", "--proposal", &f]);
    let id = p["proposalId"].as_str().unwrap().to_owned();
    let v = member_cli(&node, &["vote", "--proposal-id", &id]);
    assert_eq!(v["proposalState"], "Failed");
    let mut anon = node.anonymous();
    let info = anon
        .get(&format!("/gov/members/proposals/{id}?{V}"))
        .unwrap()
        .json();
    assert!(
        info["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{info}"
    );
    assert!(!user1_can_write(&mut user1));

    // Replace the constitution by vote with one that refuses everything.
    let frozen = r#"
export function validate(input) { return { valid: false, description: "frozen by vote" }; }
export function resolve(proposal, proposerId, votes) { return "Rejected"; }
export function apply(proposal, proposalId) {}
"#;
    let f = write_proposal(
        "p3.json",
        serde_json::json!({"actions": [{"name": "set_constitution", "args": {"constitution": frozen}}]}),
    );
    let p = member_cli(&node, &["propose", "--proposal", &f]);
    let id = p["proposalId"].as_str().unwrap().to_owned();
    assert_eq!(
        member_cli(&node, &["vote", "--proposal-id", &id])["proposalState"],
        "Accepted"
    );
    let r = post_cose(
        &mut anon,
        &format!("/gov/members/proposals:create?{V}"),
        ccf_sign(&node, "member0", "proposal", r#"{"actions":[]}"#, None),
    );
    assert_eq!(
        (r.status.as_u16(), code(&r).as_str()),
        (400, "ProposalFailedToValidate"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("frozen by vote"), "{}", r.text());
}

/// Three members: a proposal needs two votes; after the constitution is replaced by one where
/// any "no" is a veto, one dissenting member rejects a proposal.
#[test]
fn three_members_majority_and_veto() {
    let node = TestNode::start(Options {
        extra_members: 2,
        ..Options::default()
    });
    support::run_coco(&["keygen", "--name", "user1"], node.dir.path());
    for m in ["member0", "member1", "member2"] {
        member_cli_as(&node, m, &["ack"]);
    }
    let user1_cert = std::fs::read_to_string(node.path("user1_cert.pem")).unwrap();
    std::fs::write(
        node.path("add_user1.json"),
        serde_json::json!({"actions": [{"name": "set_user", "args": {"cert": user1_cert}}]})
            .to_string(),
    )
    .unwrap();
    let id = member_cli_as(
        &node,
        "member0",
        &["propose", "--proposal", "add_user1.json"],
    )["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        member_cli_as(&node, "member0", &["vote", "--proposal-id", &id])["proposalState"],
        "Open",
        "1 of 3 is not a majority"
    );
    assert_eq!(
        member_cli_as(&node, "member1", &["vote", "--proposal-id", &id])["proposalState"],
        "Accepted",
        "2 of 3 is"
    );
    let mut user1 = node.connect_as(Some("user1"), false);
    assert_eq!(
        user1
            .post_json(
                "/app/log/private",
                &serde_json::json!({"id": 1, "msg": "m"})
            )
            .unwrap()
            .status,
        200
    );

    // A veto constitution: any "no" rejects; unanimity accepts.
    let default = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../constitution/default.js"),
    )
    .unwrap();
    let veto = default.replace(
        "export function resolve(",
        "export function resolve_majority(",
    ) + "\nexport function resolve(proposal, proposerId, votes) {\n  if (votes.some((v) => !v.vote)) { return \"Rejected\"; }\n  return votes.length === activeMemberCount() ? \"Accepted\" : \"Open\";\n}\n";
    std::fs::write(node.path("veto.json"), serde_json::json!({"actions": [{"name": "set_constitution", "args": {"constitution": veto}}]}).to_string()).unwrap();
    let id = member_cli_as(&node, "member0", &["propose", "--proposal", "veto.json"])["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    member_cli_as(&node, "member0", &["vote", "--proposal-id", &id]);
    assert_eq!(
        member_cli_as(&node, "member1", &["vote", "--proposal-id", &id])["proposalState"],
        "Accepted"
    );

    let user1_id = coco_crypto::cert_der_fingerprint_hex(
        &coco_crypto::pem_to_der_certs(&user1_cert).unwrap()[0],
    );
    std::fs::write(
        node.path("remove_user1.json"),
        serde_json::json!({"actions": [{"name": "remove_user", "args": {"user_id": user1_id}}]})
            .to_string(),
    )
    .unwrap();
    let id = member_cli_as(
        &node,
        "member0",
        &["propose", "--proposal", "remove_user1.json"],
    )["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        member_cli_as(&node, "member0", &["vote", "--proposal-id", &id])["proposalState"],
        "Open"
    );
    assert_eq!(
        member_cli_as(&node, "member1", &["vote", "--proposal-id", &id])["proposalState"],
        "Open",
        "2 of 3 no longer suffices"
    );
    assert_eq!(
        member_cli_as(
            &node,
            "member2",
            &["vote", "--proposal-id", &id, "--reject"]
        )["proposalState"],
        "Rejected",
        "a veto"
    );
    assert_eq!(
        user1
            .post_json(
                "/app/log/private",
                &serde_json::json!({"id": 2, "msg": "still here"})
            )
            .unwrap()
            .status,
        200,
        "the vetoed removal changed nothing"
    );
}

#[test]
fn gov_service_views() {
    let node = TestNode::start(Options {
        ..Options::default()
    });
    let mut c = node.anonymous();
    let r = c.get(&format!("/gov/service/constitution?{V}")).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("export function resolve"), "{}", r.text());
    let nodes = c.get(&format!("/gov/service/nodes?{V}")).unwrap().json();
    let node_id = nodes["value"][0]["nodeId"].as_str().unwrap().to_owned();
    assert_eq!(nodes["value"][0]["status"], "Trusted");
    assert!(
        nodes["value"][0]["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert_eq!(
        c.get(&format!("/gov/service/nodes/{node_id}?{V}"))
            .unwrap()
            .json()["nodeId"],
        node_id.as_str()
    );
    assert_eq!(
        c.get(&format!("/gov/service/nodes/{}?{V}", "0".repeat(64)))
            .unwrap()
            .status,
        404
    );
    let commit = c
        .get(&format!("/gov/service/transactions/commit?{V}"))
        .unwrap()
        .json();
    assert_eq!(commit["status"], "Committed");
    let txid = commit["transactionId"].as_str().unwrap();
    assert_eq!(
        c.get(&format!("/gov/service/transactions/{txid}?{V}"))
            .unwrap()
            .json()["status"],
        "Committed"
    );
    assert_eq!(
        c.get(&format!("/gov/service/transactions/2.999999?{V}"))
            .unwrap()
            .json()["status"],
        "Unknown"
    );
    assert_eq!(
        c.get(&format!("/gov/service/transactions/nope?{V}"))
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        code(&c.get("/gov/service/nodes").unwrap()),
        "MissingApiVersionParameter"
    );
}

/// A JWT-authenticated app call works after `set_jwt_issuer`, and stops working after
/// `remove_jwt_issuer`; expired, foreign-issuer, tampered and unknown-key tokens are refused. The
/// keys are stored as CCF stores them and shown by `/gov/service/jwk`.
#[test]
fn jwt_authentication_after_set_jwt_issuer() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let node = TestNode::start(Options::default());
    let rsa = coco_crypto::RsaKeyPair::generate(2048).unwrap();
    let pem = rsa.to_pkcs8_pem();
    let (_, n, e) = coco_crypto::sign_rs256(&pem, b"probe").unwrap();
    let issuer = "https://issuer.example";
    // The key constrains tokens to its issuer (the JWK's `issuer` field, as CCF reads it).
    let jwk = serde_json::json!({"kty": "RSA", "kid": "key1", "n": b64(&n), "e": b64(&e), "issuer": issuer});
    let token = |iss: &str, exp_offset: i64, kid: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = b64(
            serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"})
                .to_string()
                .as_bytes(),
        );
        let payload = b64(serde_json::json!({"iss": iss, "sub": "alice", "exp": now + exp_offset, "nbf": now - 60}).to_string().as_bytes());
        let (sig, _, _) =
            coco_crypto::sign_rs256(&pem, format!("{header}.{payload}").as_bytes()).unwrap();
        format!("{header}.{payload}.{}", b64(&sig))
    };
    let mut anon = node.anonymous();
    let write = |c: &mut BlockingConnection, token: &str, id: u64| {
        let auth = format!("Bearer {token}");
        let body = serde_json::json!({"id": id, "msg": "via jwt"}).to_string();
        c.request(
            Method::POST,
            "/app/log/private",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            Bytes::from(body),
        )
        .unwrap()
    };
    let good = token(issuer, 3600, "key1");
    assert_eq!(
        write(&mut anon, &good, 1).status,
        401,
        "no issuer registered yet"
    );

    std::fs::write(node.path("jwt.json"), serde_json::json!({"actions": [{"name": "set_jwt_issuer", "args": {"issuer": issuer, "jwks": {"keys": [jwk]}}}]}).to_string()).unwrap();
    let id = member_cli(&node, &["propose", "--proposal", "jwt.json"])["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        member_cli(&node, &["vote", "--proposal-id", &id])["proposalState"],
        "Accepted"
    );

    let r = write(&mut anon, &good, 1);
    assert_eq!(r.status, 200, "{}", r.text());
    let view = node
        .anonymous()
        .get("/gov/service/jwk?api-version=2024-07-01")
        .unwrap()
        .json();
    assert_eq!(view["issuers"][issuer]["autoRefresh"], false, "{view}");
    let stored = &view["keys"]["key1"][0];
    assert_eq!(stored["issuer"], issuer, "{view}");
    assert_eq!(stored["constraint"], issuer, "{view}");
    assert_eq!(
        stored["publicKey"].as_str().unwrap(),
        rsa.public_key_pem(),
        "the DER key derived from the JWK is the issuer's key"
    );
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    for (what, t) in [
        ("expired", token(issuer, -10, "key1")),
        (
            "foreign issuer",
            token("https://other.example", 3600, "key1"),
        ),
        ("unknown kid", token(issuer, 3600, "key2")),
        ("tampered signature", tampered),
        ("not a jwt", "abc".to_owned()),
    ] {
        let r = write(&mut anon, &t, 2);
        assert_eq!(
            (r.status.as_u16(), code(&r).as_str()),
            (401, "InvalidAuthenticationInfo"),
            "{what}: {}",
            r.text()
        );
    }

    std::fs::write(
        node.path("nojwt.json"),
        serde_json::json!({"actions": [{"name": "remove_jwt_issuer", "args": {"issuer": issuer}}]})
            .to_string(),
    )
    .unwrap();
    let id = member_cli(&node, &["propose", "--proposal", "nojwt.json"])["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        member_cli(&node, &["vote", "--proposal-id", &id])["proposalState"],
        "Accepted"
    );
    assert_eq!(write(&mut anon, &good, 3).status, 401, "issuer removed");
}

/// `set_js_app` records a bundle's modules and endpoints as CCF does; the `/gov/service` views
/// show them; `remove_js_app` clears them.
#[test]
fn js_app_bundle_by_governance() {
    let node = TestNode::start(Options::default());
    let bundle = serde_json::json!({
        "metadata": {"endpoints": {"/hello": {"get": {"js_module": "app.js", "js_function": "hello", "authn_policies": ["user_cert"], "forwarding_required": "never", "mode": "readonly"}}}},
        "modules": [{"name": "app.js", "module": "export function hello(request) { return { body: 'hi' }; }"}]
    });
    std::fs::write(
        node.path("app.json"),
        serde_json::json!({"actions": [{"name": "set_js_app", "args": {"bundle": bundle}}]})
            .to_string(),
    )
    .unwrap();
    let id = member_cli(&node, &["propose", "--proposal", "app.json"])["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        member_cli(&node, &["vote", "--proposal-id", &id])["proposalState"],
        "Accepted"
    );
    let mut c = node.anonymous();
    let app = c
        .get(&format!("/gov/service/javascript-app?{V}"))
        .unwrap()
        .json();
    assert_eq!(
        app["endpoints"]["/hello"]["get"]["js_module"], "/app.js",
        "{app}"
    );
    assert_eq!(app["endpoints"]["/hello"]["get"]["js_function"], "hello");
    let modules = c
        .get(&format!("/gov/service/js-modules?{V}"))
        .unwrap()
        .json();
    assert_eq!(
        modules["value"],
        serde_json::json!([{"moduleName": "/app.js"}])
    );
    let source = c
        .get(&format!("/gov/service/js-modules/%2Fapp.js?{V}"))
        .unwrap();
    assert!(
        source.text().contains("export function hello"),
        "{}",
        source.text()
    );

    let bad = serde_json::json!({"metadata": {"endpoints": {"/x": {"get": {"js_module": "missing.js", "js_function": "f"}}}}, "modules": []});
    std::fs::write(
        node.path("bad.json"),
        serde_json::json!({"actions": [{"name": "set_js_app", "args": {"bundle": bad}}]})
            .to_string(),
    )
    .unwrap();
    let addr = node.addr.to_string();
    let out = Command::new(support::COCO)
        .args([
            "member",
            "--cert",
            "member0_cert.pem",
            "--key",
            "member0_privk.pem",
            "propose",
            "--address",
            &addr,
            "--cacert",
            "service_cert.pem",
            "--proposal",
            "bad.json",
        ])
        .current_dir(node.dir.path())
        .output()
        .unwrap();
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("ProposalFailedToValidate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        node.path("rm.json"),
        r#"{"actions":[{"name":"remove_js_app","args":{}}]}"#,
    )
    .unwrap();
    let id = member_cli(&node, &["propose", "--proposal", "rm.json"])["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        member_cli(&node, &["vote", "--proposal-id", &id])["proposalState"],
        "Accepted"
    );
    assert_eq!(
        c.get(&format!("/gov/service/js-modules?{V}"))
            .unwrap()
            .json()["value"],
        serde_json::json!([])
    );
}

/// Every state-changing `/gov` endpoint rejects unsigned, wrongly signed and non-member
/// requests with 401 InvalidAuthenticationInfo (and CCF's WWW-Authenticate hint).
#[test]
fn every_state_changing_gov_endpoint_rejects_bad_callers() {
    let node = TestNode::start(Options::default());
    let m0 = member_id(&node, "member0");
    // An open proposal to aim ballots and withdrawals at.
    std::fs::write(node.path("p.json"), r#"{"actions":[]}"#).unwrap();
    let pid = member_cli(&node, &["propose", "--proposal", "p.json"])["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoints: Vec<(String, &str, Option<&str>)> = vec![
        (
            format!("/gov/members/proposals:create?{V}"),
            "proposal",
            None,
        ),
        (
            format!("/gov/members/proposals/{pid}:withdraw?{V}"),
            "withdrawal",
            Some(pid.as_str()),
        ),
        (
            format!("/gov/members/proposals/{pid}/ballots/{m0}:submit?{V}"),
            "ballot",
            Some(pid.as_str()),
        ),
        (
            format!("/gov/members/state-digests/{m0}:update?{V}"),
            "state_digest",
            None,
        ),
        (
            format!("/gov/members/state-digests/{m0}:ack?{V}"),
            "ack",
            None,
        ),
    ];
    let mut c = node.anonymous();
    for (path, msg_type, proposal_id) in &endpoints {
        let good = ccf_sign(
            &node,
            "member0",
            msg_type,
            r#"{"ballot":"export function vote() { return true; }"}"#,
            *proposal_id,
        );
        let mut tampered = good.clone();
        let n = tampered.len();
        tampered[n - 2] ^= 1;
        for (what, ct, body) in [
            (
                "unsigned",
                "application/json",
                br#"{"actions":[]}"#.to_vec(),
            ),
            (
                "non-member",
                "application/cose",
                ccf_sign(&node, "stranger", msg_type, "{}", *proposal_id),
            ),
            (
                "user",
                "application/cose",
                ccf_sign(&node, "user0", msg_type, "{}", *proposal_id),
            ),
            ("tampered", "application/cose", tampered),
        ] {
            let r = c
                .request(
                    Method::POST,
                    path,
                    &[("content-type", ct)],
                    Bytes::from(body),
                )
                .unwrap();
            assert_eq!(
                (r.status.as_u16(), code(&r).as_str()),
                (401, "InvalidAuthenticationInfo"),
                "{what} {path}: {}",
                r.text()
            );
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|h| h.starts_with("COSE-SIGN1")),
                "{what} {path}"
            );
        }
    }
    // The proposal is untouched by all of it.
    let r = c
        .get(&format!("/gov/members/proposals/{pid}?{V}"))
        .unwrap()
        .json();
    assert_eq!(r["proposalState"], "Open");
    assert_eq!(r["ballotCount"], 0);
}

//! The proposal lifecycle against a constitution written in Rust for the test (the JavaScript
//! runtime is exercised end to end elsewhere): validate → store → ballots → resolve → apply.

mod common;

use bytes::Bytes;
use coco_app_api::{Method, Response};
use coco_kv::Tx;
use coco_node::proposals::{Constitution, ConstitutionLoader, ProposalState, Validation};
use coco_node::{CoreConfig, Input, Output};
use common::{Fixture, fixture_with, now, request, signed_request};
use serde_json::{Value, json};

const V: &str = "api-version=2024-07-01";

/// Majority of the votes cast decides once every member voted; proposals with a "veto" action
/// are rejected by any "no"; action "set_user" writes users.certs; action "fail" throws in apply.
struct TestConstitution;

impl Constitution for TestConstitution {
    fn validate(&self, _tx: &mut Tx, proposal: &str) -> Result<Validation, String> {
        let p: Value = serde_json::from_str(proposal).map_err(|e| e.to_string())?;
        let ok = p["actions"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["name"] != "invalid"));
        Ok(Validation {
            valid: ok,
            description: if ok {
                "ok".into()
            } else {
                "invalid action".into()
            },
        })
    }
    fn ballot(
        &self,
        _tx: &mut Tx,
        ballot: &str,
        _proposal: &str,
        _proposer: &str,
    ) -> Result<bool, String> {
        match ballot {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(format!("ballot throws: {other}")),
        }
    }
    fn resolve(
        &self,
        tx: &mut Tx,
        proposal: &str,
        _proposer: &str,
        votes: &[(String, bool)],
        _id: &str,
    ) -> Result<ProposalState, String> {
        let members = tx.size(coco_codec::tables::MEMBERS_CERTS);
        let veto = proposal.contains("\"veto\"");
        if veto && votes.iter().any(|(_, v)| !v) {
            return Ok(ProposalState::Rejected);
        }
        let yes = votes.iter().filter(|(_, v)| *v).count();
        Ok(if yes * 2 > members {
            ProposalState::Accepted
        } else {
            ProposalState::Open
        })
    }
    fn apply(
        &self,
        tx: &mut Tx,
        proposal: &str,
        _id: &str,
        _network: &coco_node::proposals::NetworkIdentity,
    ) -> Result<Vec<coco_node::proposals::NodeHook>, String> {
        let p: Value = serde_json::from_str(proposal).map_err(|e| e.to_string())?;
        let mut hooks = Vec::new();
        for a in p["actions"].as_array().unwrap() {
            match a["name"].as_str().unwrap() {
                "trigger_ledger_chunk" => {
                    hooks.push(coco_node::proposals::NodeHook::TriggerLedgerChunk)
                }
                "trigger_snapshot" => hooks.push(coco_node::proposals::NodeHook::TriggerSnapshot),
                "set_user" => tx.put(
                    coco_codec::tables::USERS_CERTS,
                    Bytes::from(a["args"]["id"].as_str().unwrap().to_owned()),
                    Bytes::from_static(b"pem"),
                ),
                "fail" => return Err("apply throws".into()),
                "set_constitution" => tx.put(
                    coco_codec::tables::CONSTITUTION,
                    Bytes::from_static(&coco_codec::tables::SINGLETON_KEY),
                    Bytes::from_static(b"\"// a new constitution\""),
                ),
                _ => {}
            }
        }
        Ok(hooks)
    }
}

struct Loader;

impl ConstitutionLoader for Loader {
    fn load(
        &self,
        source: &str,
        _options: Option<&str>,
    ) -> Result<Box<dyn Constitution + Send>, String> {
        assert_eq!(source, "// test constitution");
        Ok(Box::new(TestConstitution))
    }
}

fn setup() -> (Fixture, String) {
    let mut f = fixture_with(
        CoreConfig::default(),
        Some(Box::new(Loader)),
        Some("// test constitution".into()),
    );
    let id = f.member.fingerprint_hex.clone();
    // Activate the member: update then ack the state digest.
    let r = call(
        &mut f.node,
        signed_request(
            &f.member_key,
            &id,
            &format!("/gov/members/state-digests/{id}:update?{V}"),
            "state_digest",
            1,
            None,
            "{}",
        ),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let digest = json(&r)["stateDigest"].as_str().unwrap().to_owned();
    let body = json!({"stateDigest": digest}).to_string();
    let r = call(
        &mut f.node,
        signed_request(
            &f.member_key,
            &id,
            &format!("/gov/members/state-digests/{id}:ack?{V}"),
            "ack",
            2,
            None,
            &body,
        ),
    );
    assert_eq!(r.status, 204, "{}", text(&r));
    (f, id)
}

fn call(node: &mut coco_node::Node, req: coco_app_api::Request) -> Response {
    common::respond(node, 1, req)
}

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn propose(f: &mut Fixture, member: &str, created_at: i64, proposal: &Value) -> Response {
    let req = signed_request(
        &f.member_key,
        member,
        &format!("/gov/members/proposals:create?{V}"),
        "proposal",
        created_at,
        None,
        &proposal.to_string(),
    );
    call(&mut f.node, req)
}

fn user_exists(f: &Fixture, id: &str) -> bool {
    f.node
        .kv_snapshot()
        .iter()
        .any(|(m, k, _, _)| m == coco_codec::tables::USERS_CERTS && k.as_ref() == id.as_bytes())
}

#[test]
fn accepted_proposal_applies_and_is_recorded() {
    let (mut f, m) = setup();
    let p = json!({"actions": [{"name": "set_user", "args": {"id": "u1"}}]});
    let r = propose(&mut f, &m, 100, &p);
    assert_eq!(r.status, 200, "{}", text(&r));
    let id = json(&r)["proposalId"].as_str().unwrap().to_owned();
    assert_eq!(json(&r)["proposalState"], "Open", "no votes yet");
    let ballot = signed_request(
        &f.member_key,
        &m,
        &format!("/gov/members/proposals/{id}/ballots/{m}:submit?{V}"),
        "ballot",
        101,
        Some(&id),
        &json!({"ballot": "yes"}).to_string(),
    );
    let r = call(&mut f.node, ballot.clone());
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(json(&r)["proposalState"], "Accepted");
    assert_eq!(json(&r)["finalVotes"][&m], true);
    assert!(user_exists(&f, "u1"));
    // Views.
    let r = call(
        &mut f.node,
        request(
            Method::GET,
            &format!("/gov/members/proposals/{id}?{V}"),
            "",
            None,
        ),
    );
    assert_eq!(json(&r)["proposalState"], "Accepted");
    let r = call(
        &mut f.node,
        request(
            Method::GET,
            &format!("/gov/members/proposals/{id}/actions?{V}"),
            "",
            None,
        ),
    );
    assert_eq!(json(&r), p);
    let r = call(
        &mut f.node,
        request(
            Method::GET,
            &format!("/gov/members/proposals/{id}/ballots/{m}?{V}"),
            "",
            None,
        ),
    );
    assert_eq!(json(&r)["script"], "yes");
    let r = call(
        &mut f.node,
        request(
            Method::GET,
            &format!("/gov/members/proposals?{V}"),
            "",
            None,
        ),
    );
    assert_eq!(json(&r)["value"].as_array().unwrap().len(), 1);
    // Voting again on a closed proposal.
    let r = call(&mut f.node, ballot);
    assert_eq!(json(&r)["error"]["code"], "ProposalNotOpen");
}

#[test]
fn failed_rejected_and_withdrawn_proposals_change_nothing() {
    let (mut f, m) = setup();
    // apply throws: Failed, and none of its writes land.
    let r = propose(
        &mut f,
        &m,
        100,
        &json!({"actions": [{"name": "set_user", "args": {"id": "u2"}}, {"name": "fail"}]}),
    );
    let id = json(&r)["proposalId"].as_str().unwrap().to_owned();
    let r = call(
        &mut f.node,
        signed_request(
            &f.member_key,
            &m,
            &format!("/gov/members/proposals/{id}/ballots/{m}:submit?{V}"),
            "ballot",
            101,
            Some(&id),
            r#"{"ballot":"yes"}"#,
        ),
    );
    assert_eq!(json(&r)["proposalState"], "Failed", "{}", text(&r));
    assert!(
        json(&r)["failure"]["reason"]
            .as_str()
            .unwrap()
            .contains("apply throws")
    );
    assert!(!user_exists(&f, "u2"));
    // A veto rejects.
    let r = propose(
        &mut f,
        &m,
        102,
        &json!({"actions": [{"name": "veto"}, {"name": "set_user", "args": {"id": "u3"}}]}),
    );
    let id = json(&r)["proposalId"].as_str().unwrap().to_owned();
    let r = call(
        &mut f.node,
        signed_request(
            &f.member_key,
            &m,
            &format!("/gov/members/proposals/{id}/ballots/{m}:submit?{V}"),
            "ballot",
            103,
            Some(&id),
            r#"{"ballot":"no"}"#,
        ),
    );
    assert_eq!(json(&r)["proposalState"], "Rejected");
    assert!(!user_exists(&f, "u3"));
    // Withdrawn.
    let r = propose(
        &mut f,
        &m,
        104,
        &json!({"actions": [{"name": "set_user", "args": {"id": "u4"}}]}),
    );
    let id = json(&r)["proposalId"].as_str().unwrap().to_owned();
    let r = call(
        &mut f.node,
        signed_request(
            &f.member_key,
            &m,
            &format!("/gov/members/proposals/{id}:withdraw?{V}"),
            "withdrawal",
            105,
            Some(&id),
            "",
        ),
    );
    assert_eq!(json(&r)["proposalState"], "Withdrawn", "{}", text(&r));
    let r = call(
        &mut f.node,
        signed_request(
            &f.member_key,
            &m,
            &format!("/gov/members/proposals/{id}/ballots/{m}:submit?{V}"),
            "ballot",
            106,
            Some(&id),
            r#"{"ballot":"yes"}"#,
        ),
    );
    assert_eq!(json(&r)["error"]["code"], "ProposalNotOpen");
    assert!(!user_exists(&f, "u4"));
}

#[test]
fn proposal_creation_errors() {
    let (mut f, m) = setup();
    let p = json!({"actions": []});
    let first = signed_request(
        &f.member_key,
        &m,
        &format!("/gov/members/proposals:create?{V}"),
        "proposal",
        500,
        None,
        &p.to_string(),
    );
    assert_eq!(call(&mut f.node, first.clone()).status, 200);
    // (what, request, status, code)
    let cases = vec![
        ("replay", first.clone(), 400, "ProposalReplay"),
        (
            "invalid",
            signed_request(
                &f.member_key,
                &m,
                &format!("/gov/members/proposals:create?{V}"),
                "proposal",
                501,
                None,
                r#"{"actions":[{"name":"invalid"}]}"#,
            ),
            400,
            "ProposalFailedToValidate",
        ),
        (
            "not json",
            signed_request(
                &f.member_key,
                &m,
                &format!("/gov/members/proposals:create?{V}"),
                "proposal",
                502,
                None,
                "nope",
            ),
            400,
            "InvalidInput",
        ),
        (
            "created_at out of range",
            signed_request(
                &f.member_key,
                &m,
                &format!("/gov/members/proposals:create?{V}"),
                "proposal",
                10_000_000_000,
                None,
                "{}",
            ),
            400,
            "InvalidCreatedAt",
        ),
        (
            "wrong message type",
            signed_request(
                &f.member_key,
                &m,
                &format!("/gov/members/proposals:create?{V}"),
                "ballot",
                503,
                Some("x"),
                "{}",
            ),
            401,
            "InvalidAuthenticationInfo",
        ),
        (
            "no api-version",
            signed_request(
                &f.member_key,
                &m,
                "/gov/members/proposals:create",
                "proposal",
                504,
                None,
                "{}",
            ),
            400,
            "MissingApiVersionParameter",
        ),
    ];
    for (what, req, status, code) in cases {
        let r = call(&mut f.node, req);
        assert_eq!(
            (
                r.status.as_u16(),
                json(&r)["error"]["code"].as_str().unwrap_or("")
            ),
            (status, code),
            "{what}: {}",
            text(&r)
        );
    }
    // Fill the window with recent proposals; one older than their median is refused.
    for t in 0..100 {
        let r = propose(&mut f, &m, 1000 + t, &json!({"actions": [], "n": t}));
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    let r = propose(&mut f, &m, 1001, &json!({"actions": [], "old": true}));
    assert_eq!(
        json(&r)["error"]["code"],
        "ProposalCreatedTooLongAgo",
        "{}",
        text(&r)
    );
}

#[test]
fn a_new_constitution_drops_other_open_proposals() {
    let (mut f, m) = setup();
    let r = propose(
        &mut f,
        &m,
        100,
        &json!({"actions": [{"name": "set_user", "args": {"id": "u9"}}]}),
    );
    let waiting = json(&r)["proposalId"].as_str().unwrap().to_owned();
    let r = propose(
        &mut f,
        &m,
        101,
        &json!({"actions": [{"name": "set_constitution"}]}),
    );
    let id = json(&r)["proposalId"].as_str().unwrap().to_owned();
    let r = call(
        &mut f.node,
        signed_request(
            &f.member_key,
            &m,
            &format!("/gov/members/proposals/{id}/ballots/{m}:submit?{V}"),
            "ballot",
            102,
            Some(&id),
            r#"{"ballot":"yes"}"#,
        ),
    );
    assert_eq!(json(&r)["proposalState"], "Accepted", "{}", text(&r));
    let r = call(
        &mut f.node,
        request(
            Method::GET,
            &format!("/gov/members/proposals/{waiting}?{V}"),
            "",
            None,
        ),
    );
    assert_eq!(json(&r)["proposalState"], "Dropped");
    assert!(!user_exists(&f, "u9"));
}

/// A fixture where member0 proposed `proposal` and voted it through.
fn accepted(proposal: &Value) -> Fixture {
    let (mut f, m) = setup();
    let r = propose(&mut f, &m, 100, proposal);
    let id = json(&r)["proposalId"].as_str().unwrap().to_owned();
    let ballot = signed_request(
        &f.member_key,
        &m,
        &format!("/gov/members/proposals/{id}/ballots/{m}:submit?{V}"),
        "ballot",
        101,
        Some(&id),
        r#"{"ballot":"yes"}"#,
    );
    assert_eq!(
        json(&call(&mut f.node, ballot))["proposalState"],
        "Accepted"
    );
    f
}

#[test]
fn trigger_ledger_chunk_closes_the_chunk_at_the_next_signature() {
    let mut f = accepted(&json!({"actions": [{"name": "trigger_ledger_chunk"}]}));
    let signature_flag = |out: &[Output]| {
        out.iter().find_map(|o| match o {
            Output::Append {
                is_signature: true,
                force_chunk_after,
                ..
            } => Some(*force_chunk_after),
            _ => None,
        })
    };
    // The next signature (by delay) carries FORCE_LEDGER_CHUNK_AFTER although the chunk is small.
    let mut out = Vec::new();
    f.node.step(now(5_000), Input::Tick, &mut out);
    assert_eq!(signature_flag(&out), Some(true), "{out:?}");
    // Only once.
    let user = f.user.clone();
    call(
        &mut f.node,
        request(
            Method::POST,
            "/app/log/private",
            r#"{"id":1,"msg":"x"}"#,
            Some(&user),
        ),
    );
    out.clear();
    f.node.step(now(10_000), Input::Tick, &mut out);
    assert_eq!(signature_flag(&out), Some(false));
}

#[test]
fn trigger_snapshot_snapshots_at_the_next_signature_and_proves_it() {
    use coco_node::snapshot::SnapshotAction;
    let mut f = accepted(&json!({"actions": [{"name": "trigger_snapshot"}]}));
    // Steps the node and persists everything it appended; returns what it output.
    let step = |node: &mut coco_node::Node, t: u64, input: Input| {
        let mut out = Vec::new();
        node.step(now(t), input, &mut out);
        let last = out
            .iter()
            .filter_map(|o| match o {
                Output::Append { txid, .. } => Some(txid.seqno),
                _ => None,
            })
            .max();
        if let Some(seqno) = last {
            node.step(now(t), Input::Persisted { seqno }, &mut out);
        }
        out
    };
    // The next signature (by delay) is the snapshot point and closes its chunk; once it
    // commits, the host is asked to serialise the store at it.
    let out = step(&mut f.node, 5_000, Input::Tick);
    let (sig_seqno, closes) = out
        .iter()
        .find_map(|o| match o {
            Output::Append {
                txid,
                is_signature: true,
                force_chunk_after,
                ..
            } => Some((txid.seqno, *force_chunk_after)),
            _ => None,
        })
        .expect("a signature");
    assert!(closes);
    let job = out
        .iter()
        .find_map(|o| match o {
            Output::Snapshot(SnapshotAction::Serialise(job)) => Some(job.clone()),
            _ => None,
        })
        .expect("a snapshot job once the signature commits");
    assert_eq!(job.seqno, sig_seqno);
    let entry = job.serialise();
    let digest = coco_crypto::sha256(&entry);
    // The digest goes into the evidence transaction; the host writes the file under its seqno.
    let out = step(
        &mut f.node,
        5_001,
        Input::SnapshotSerialised {
            seqno: job.seqno,
            digest,
        },
    );
    let evidence_seqno = out
        .iter()
        .find_map(|o| match o {
            Output::Snapshot(SnapshotAction::Write {
                seqno,
                evidence_seqno,
            }) if *seqno == job.seqno => Some(*evidence_seqno),
            _ => None,
        })
        .expect("the evidence is written");
    // A signature after the evidence commits: the receipt is appended, and the file verifies.
    let out = step(&mut f.node, 10_000, Input::Tick);
    let receipt = out
        .iter()
        .find_map(|o| match o {
            Output::Snapshot(SnapshotAction::Commit {
                seqno,
                evidence_seqno: e,
                receipt,
            }) if *seqno == job.seqno && *e == evidence_seqno => Some(receipt.clone()),
            _ => None,
        })
        .expect("the snapshot commits");
    let mut file = entry;
    file.extend_from_slice(&receipt);
    let loaded =
        coco_node::snapshot::load_snapshot(&file, &f.service_cert_pem, &[9; 32].into()).unwrap();
    assert_eq!(loaded.seqno, job.seqno);
    assert_eq!(loaded.store.len(), job.store.len());
    // Only once: the following signature is an ordinary one.
    let user = f.user.clone();
    call(
        &mut f.node,
        request(
            Method::POST,
            "/app/log/private",
            r#"{"id":1,"msg":"x"}"#,
            Some(&user),
        ),
    );
    let out = step(&mut f.node, 15_000, Input::Tick);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Snapshot(SnapshotAction::Serialise(_)))),
        "{out:?}"
    );
}

#[test]
fn finished_proposals_are_pruned_when_another_completes() {
    let (mut f, m) = setup();
    let vote = |f: &mut Fixture, id: &str, t: i64| {
        let req = signed_request(
            &f.member_key,
            &m,
            &format!("/gov/members/proposals/{id}/ballots/{m}:submit?{V}"),
            "ballot",
            t,
            Some(id),
            r#"{"ballot":"yes"}"#,
        );
        json(&call(&mut f.node, req))["proposalState"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = json(&propose(&mut f, &m, 100, &json!({"actions": [], "n": 1})))["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let open = json(&propose(&mut f, &m, 101, &json!({"actions": [], "n": 2})))["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(vote(&mut f, &first, 102), "Accepted");
    let third = json(&propose(&mut f, &m, 103, &json!({"actions": [], "n": 3})))["proposalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(vote(&mut f, &third, 104), "Accepted");
    let get = |f: &mut Fixture, id: &str| {
        call(
            &mut f.node,
            request(
                Method::GET,
                &format!("/gov/members/proposals/{id}?{V}"),
                "",
                None,
            ),
        )
    };
    assert_eq!(
        json(&get(&mut f, &first))["error"]["code"],
        "ProposalNotFound",
        "pruned when the third completed"
    );
    assert_eq!(
        json(&get(&mut f, &open))["proposalState"],
        "Open",
        "open proposals are kept"
    );
    assert_eq!(
        json(&get(&mut f, &third))["proposalState"],
        "Accepted",
        "the one that just completed is kept"
    );
}

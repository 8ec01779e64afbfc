//! Engine tests: inputs in, exact outputs out (house style layer 2).

mod common;

use coco_app_api::{Method, Response};
use coco_node::{CoreConfig, Input, Node, Output};
use common::{fixture, now, request};

fn appends(out: &[Output]) -> Vec<(String, bool, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Append {
                txid,
                is_signature,
                force_chunk_after,
                ..
            } => Some((txid.to_string(), *is_signature, *force_chunk_after)),
            _ => None,
        })
        .collect()
}

fn response(out: &[Output]) -> Response {
    out.iter()
        .find_map(|o| match o {
            Output::Respond { response, .. } => Some(response.clone()),
            _ => None,
        })
        .expect("a response")
}

fn call(
    node: &mut Node,
    ms: u64,
    method: Method,
    path: &str,
    body: &str,
    cert: Option<&coco_app_api::PeerCert>,
) -> (Response, Vec<Output>) {
    let mut out = Vec::new();
    node.step(
        now(ms),
        Input::Request {
            id: 1,
            request: request(method, path, body, cert),
            session: Default::default(),
        },
        &mut out,
    );
    (response(&out), out)
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn status_of(node: &mut Node, txid: &str) -> String {
    let (r, _) = call(
        node,
        0,
        Method::GET,
        &format!("/node/tx?transaction_id={txid}"),
        "",
        None,
    );
    json(&r)["status"].as_str().unwrap().to_owned()
}

#[test]
fn genesis_writes_service_then_signature_then_open_then_signature() {
    let f = fixture(CoreConfig::default());
    assert_eq!(
        appends(&f.genesis_outputs),
        vec![
            ("2.1".into(), false, false),
            ("2.2".into(), true, false),
            ("2.3".into(), false, false),
            ("2.4".into(), true, false)
        ]
    );
    assert!(
        f.genesis_outputs
            .iter()
            .all(|o| matches!(o, Output::Append { .. }))
    );
}

#[test]
fn writes_respond_early_and_commit_only_when_a_signature_is_durable() {
    let mut f = fixture(CoreConfig {
        signature_tx_interval_count: 3,
        signature_interval_ms: 1_000_000,
        ..CoreConfig::default()
    });
    let (r, out) = call(
        &mut f.node,
        1,
        Method::POST,
        "/app/log/private",
        r#"{"id":1,"msg":"a"}"#,
        Some(&f.user),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ms-ccf-transaction-id"), Some("2.5"));
    assert_eq!(appends(&out), vec![("2.5".into(), false, false)]);
    assert_eq!(status_of(&mut f.node, "2.5"), "Pending");
    assert_eq!(status_of(&mut f.node, "2.6"), "Unknown");

    // Durable up to the genesis signature: commit 2.4, not 2.5.
    let mut out = Vec::new();
    f.node.step(now(2), Input::Persisted { seqno: 5 }, &mut out);
    assert_eq!(
        out,
        vec![Output::GlobalCommit {
            txid: coco_types::TxId::new(2, 4)
        }]
    );
    assert_eq!(status_of(&mut f.node, "2.5"), "Pending");
    assert_eq!(status_of(&mut f.node, "1.3"), "Invalid");

    // Two more writes reach the count: the second is followed by a signature at 2.8.
    call(
        &mut f.node,
        3,
        Method::POST,
        "/app/log/public",
        r#"{"id":2,"msg":"b"}"#,
        Some(&f.user),
    );
    let (_, out) = call(
        &mut f.node,
        4,
        Method::POST,
        "/app/log/public",
        r#"{"id":3,"msg":"c"}"#,
        Some(&f.user),
    );
    assert_eq!(
        appends(&out),
        vec![("2.7".into(), false, false), ("2.8".into(), true, false)]
    );

    // Durability of the signature commits everything before it.
    let mut out = Vec::new();
    f.node.step(now(5), Input::Persisted { seqno: 8 }, &mut out);
    assert_eq!(
        out,
        vec![Output::GlobalCommit {
            txid: coco_types::TxId::new(2, 8)
        }]
    );
    for t in ["2.5", "2.6", "2.7", "2.8"] {
        assert_eq!(status_of(&mut f.node, t), "Committed", "{t}");
    }
    let (r, _) = call(&mut f.node, 6, Method::GET, "/node/commit", "", None);
    assert_eq!(json(&r)["transaction_id"], "2.8");
}

#[test]
fn signatures_by_delay_on_tick() {
    let mut f = fixture(CoreConfig {
        signature_tx_interval_count: 1000,
        signature_interval_ms: 100,
        ..CoreConfig::default()
    });
    call(
        &mut f.node,
        10,
        Method::POST,
        "/app/log/private",
        r#"{"id":1,"msg":"a"}"#,
        Some(&f.user),
    );
    let mut out = Vec::new();
    f.node.step(now(50), Input::Tick, &mut out);
    assert!(out.is_empty(), "no signature before the delay: {out:?}");
    f.node.step(now(100), Input::Tick, &mut out);
    assert_eq!(appends(&out), vec![("2.6".into(), true, false)]);
    out.clear();
    f.node.step(now(500), Input::Tick, &mut out);
    assert!(
        out.is_empty(),
        "no signature without new transactions: {out:?}"
    );
}

/// With a commit latency target the primary signs once the oldest unsigned transaction has
/// waited the target less the recent signature-to-commit lag, whatever the count and delay say.
#[test]
fn an_adaptive_signature_interval_signs_within_the_commit_latency_target() {
    let mut f = fixture(CoreConfig {
        signature_tx_interval_count: 1000,
        signature_interval_ms: 1_000_000,
        commit_latency_target_ms: Some(20),
        ..CoreConfig::default()
    });
    let write = |node: &mut Node, ms: u64| {
        call(
            node,
            ms,
            Method::POST,
            "/app/log/private",
            r#"{"id":1,"msg":"a"}"#,
            Some(&f.user),
        )
    };
    write(&mut f.node, 10);
    let mut out = Vec::new();
    f.node.step(now(29), Input::Tick, &mut out);
    assert!(out.is_empty(), "not yet: {out:?}");
    f.node.step(now(30), Input::Tick, &mut out);
    assert_eq!(appends(&out), vec![("2.6".into(), true, false)]);
    // Signatures took 16 ms and more to commit: the next one comes that much earlier.
    out.clear();
    f.node
        .step(now(46), Input::Persisted { seqno: 6 }, &mut out);
    let (r, _) = call(&mut f.node, 47, Method::GET, "/node/commit", "", None);
    assert_eq!(json(&r)["transaction_id"], "2.6");
    write(&mut f.node, 100);
    let signed_at = (101..=120)
        .find(|ms| {
            let mut out = Vec::new();
            f.node.step(now(*ms), Input::Tick, &mut out);
            appends(&out) == vec![("2.8".into(), true, false)]
        })
        .expect("signed within the target");
    assert!(
        signed_at < 120,
        "signed at {signed_at}, not earlier than the target"
    );
    // Nothing unsigned: no signature.
    out.clear();
    f.node.step(now(500), Input::Tick, &mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn chunk_boundary_is_marked_on_the_next_signature() {
    let mut f = fixture(CoreConfig {
        signature_tx_interval_count: 2,
        chunk_size_bytes: 1,
        ..CoreConfig::default()
    });
    let (_, out) = call(
        &mut f.node,
        1,
        Method::POST,
        "/app/log/private",
        r#"{"id":1,"msg":"a"}"#,
        Some(&f.user),
    );
    assert_eq!(appends(&out), vec![("2.5".into(), false, false)]);
    let (_, out) = call(
        &mut f.node,
        1,
        Method::POST,
        "/app/log/private",
        r#"{"id":2,"msg":"a"}"#,
        Some(&f.user),
    );
    assert_eq!(
        appends(&out),
        vec![("2.6".into(), false, false), ("2.7".into(), true, true)]
    );
}

#[test]
fn reads_consume_no_seqno() {
    let mut f = fixture(CoreConfig::default());
    call(
        &mut f.node,
        1,
        Method::POST,
        "/app/log/private",
        r#"{"id":1,"msg":"a"}"#,
        Some(&f.user),
    );
    let (r, out) = call(
        &mut f.node,
        2,
        Method::GET,
        "/app/log/private?id=1",
        "",
        Some(&f.user),
    );
    assert_eq!(json(&r), serde_json::json!({"msg": "a"}));
    assert_eq!(r.header("x-ms-ccf-transaction-id"), Some("2.5"));
    assert!(appends(&out).is_empty());
}

#[test]
fn backpressure_refuses_writes_past_the_uncommitted_bound() {
    let mut f = fixture(CoreConfig {
        uncommitted_tx_count_max: 8,
        signature_tx_interval_count: 1000,
        ..CoreConfig::default()
    });
    // Genesis left 4 uncommitted; 4 more are accepted, then 503.
    for i in 0..4 {
        let (r, _) = call(
            &mut f.node,
            1,
            Method::POST,
            "/app/log/private",
            &format!(r#"{{"id":{i},"msg":"a"}}"#),
            Some(&f.user),
        );
        assert_eq!(r.status, 200, "write {i}");
    }
    let (r, out) = call(
        &mut f.node,
        1,
        Method::POST,
        "/app/log/private",
        r#"{"id":9,"msg":"a"}"#,
        Some(&f.user),
    );
    assert_eq!(r.status, 503);
    assert_eq!(json(&r)["error"]["code"], "TooManyPendingTransactions");
    assert!(appends(&out).is_empty());
    // Reads still work.
    let (r, _) = call(
        &mut f.node,
        1,
        Method::GET,
        "/app/log/private?id=1",
        "",
        Some(&f.user),
    );
    assert_eq!(r.status, 200);
    // Commit frees room.
    let mut out = Vec::new();
    f.node.step(now(2), Input::Persisted { seqno: 4 }, &mut out);
    let (r, _) = call(
        &mut f.node,
        3,
        Method::POST,
        "/app/log/private",
        r#"{"id":9,"msg":"a"}"#,
        Some(&f.user),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn storage_failure_fail_stops_writes_and_commit() {
    let mut f = fixture(CoreConfig::default());
    let (_, _) = call(
        &mut f.node,
        1,
        Method::POST,
        "/app/log/private",
        r#"{"id":1,"msg":"a"}"#,
        Some(&f.user),
    );
    let mut out = Vec::new();
    f.node.step(
        now(2),
        Input::StorageFailed {
            reason: "EIO".into(),
        },
        &mut out,
    );
    f.node.step(now(3), Input::Persisted { seqno: 5 }, &mut out);
    assert!(out.is_empty(), "no commit after a storage failure: {out:?}");
    let (r, _) = call(
        &mut f.node,
        4,
        Method::POST,
        "/app/log/private",
        r#"{"id":2,"msg":"b"}"#,
        Some(&f.user),
    );
    assert_eq!(r.status, 503);
    assert_eq!(json(&r)["error"]["code"], "TransactionReplicationFailed");
    assert_eq!(status_of(&mut f.node, "2.5"), "Pending");
}

#[test]
fn authentication_table() {
    let mut f = fixture(CoreConfig::default());
    let user = f.user.clone();
    let member = f.member.clone();
    let cases: Vec<(Option<&coco_app_api::PeerCert>, Method, &str, u16)> = vec![
        (None, Method::GET, "/app/log/private/count", 401),
        (Some(&member), Method::GET, "/app/log/private/count", 401),
        (Some(&user), Method::GET, "/app/log/private/count", 200),
        (None, Method::GET, "/node/state", 200),
        (None, Method::GET, "/gov/commit", 200),
    ];
    for (cert, m, path, want) in cases {
        let (r, _) = call(&mut f.node, 1, m.clone(), path, "", cert);
        assert_eq!(r.status.as_u16(), want, "{m} {path}");
        if want == 401 {
            assert_eq!(json(&r)["error"]["code"], "InvalidAuthenticationInfo");
        }
    }
}

#[test]
fn app_frontend_is_closed_until_the_service_opens() {
    // A genesis without the bootstrap option leaves the service Opening.
    let (mut node, out) = common::opening_node();
    assert_eq!(appends(&out).len(), 2);
    let (r, _) = call(
        &mut node,
        1,
        Method::GET,
        "/app/log/private/count",
        "",
        None,
    );
    assert_eq!(
        (
            r.status.as_u16(),
            json(&r)["error"]["code"].as_str().unwrap()
        ),
        (404, "FrontendNotOpen")
    );
    let (r, _) = call(&mut node, 1, Method::GET, "/app/commit", "", None);
    assert_eq!(r.status, 200);
    let (r, _) = call(&mut node, 1, Method::GET, "/node/network", "", None);
    assert_eq!(json(&r)["service_status"], "Opening");
}

#[test]
fn apps_cannot_write_builtin_maps() {
    use coco_app_api::{AuthPolicy, EndpointMode, Registry, Response as R, StatusCode};
    let mut app = Registry::new();
    app.route_fn(
        Method::POST,
        "/app/evil",
        &[AuthPolicy::NoAuth],
        EndpointMode::ReadWrite,
        "",
        |ctx| {
            ctx.tx.put(
                "public:ccf.gov.users.certs",
                bytes::Bytes::from_static(b"x"),
                bytes::Bytes::from_static(b"y"),
            );
            Ok(R::new(StatusCode::OK))
        },
    );
    let identity = common::identity();
    let genesis = coco_node::GenesisConfig {
        recovery_threshold: 1,
        open_service_without_governance: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut node = Node::start_genesis(
        CoreConfig::default(),
        identity,
        &genesis,
        [1; 32],
        coco_node::Plugins {
            app,
            constitution: None,
        },
        now(0),
        &mut out,
    );
    let (r, out) = call(&mut node, 1, Method::POST, "/app/evil", "", None);
    assert_eq!(r.status, 500);
    assert!(appends(&out).is_empty());
}

/// Regression: the `tree` blob of a signature holds only leaves after the last commit, not the
/// whole history (without flushing on commit, every signature grew with the ledger).
#[test]
fn signature_tree_blob_starts_at_the_commit_point() {
    let mut f = fixture(CoreConfig {
        signature_tx_interval_count: 4,
        ..CoreConfig::default()
    });
    let tree_first_index = |out: &[Output]| -> u64 {
        let bytes = out
            .iter()
            .find_map(|o| match o {
                Output::Append {
                    bytes,
                    is_signature: true,
                    ..
                } => Some(bytes.clone()),
                _ => None,
            })
            .expect("a signature");
        let entry = coco_codec::entry::parse_entry(&bytes).unwrap();
        let pd = coco_codec::domain::parse_public_domain(entry.public).unwrap();
        let blob = pd.maps[coco_codec::tables::TREE]
            .writes
            .values()
            .next()
            .unwrap()
            .clone()
            .unwrap();
        coco_merkle::MerkleTree::deserialise(&blob)
            .unwrap()
            .first_index()
    };
    let mut last = Vec::new();
    for i in 0..4 {
        let (_, out) = call(
            &mut f.node,
            1,
            Method::POST,
            "/app/log/private",
            &format!(r#"{{"id":{i},"msg":"a"}}"#),
            Some(&f.user),
        );
        last = out;
    }
    assert_eq!(tree_first_index(&last), 0, "nothing committed yet");
    let mut out = Vec::new();
    f.node.step(now(2), Input::Persisted { seqno: 9 }, &mut out);
    assert_eq!(
        out,
        vec![Output::GlobalCommit {
            txid: coco_types::TxId::new(2, 9)
        }]
    );
    for i in 0..4 {
        let (_, out) = call(
            &mut f.node,
            3,
            Method::POST,
            "/app/log/private",
            &format!(r#"{{"id":{i},"msg":"b"}}"#),
            Some(&f.user),
        );
        last = out;
    }
    assert_eq!(
        tree_first_index(&last),
        9,
        "flushed to the committed signature"
    );
}

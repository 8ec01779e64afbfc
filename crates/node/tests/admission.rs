//! Admission with a commit latency target (`crates/node/src/admission.rs`): a primary whose
//! commits fall behind holds new writes, in order, and executes them once commits catch up.

mod common;

use coco_app_api::{Method, Response, StatusCode};
use coco_node::{CoreConfig, Input, Output};
use common::{Fixture, fixture, now, request};

const TARGET_MS: u64 = 20;

fn primary_with_target() -> Fixture {
    let mut f = fixture(CoreConfig {
        signature_tx_interval_count: 1000,
        signature_interval_ms: 1_000_000,
        commit_latency_target_ms: Some(TARGET_MS),
        ..CoreConfig::default()
    });
    // Genesis (through its signature at 4) is durable, hence committed on this single node.
    let mut out = Vec::new();
    f.node.step(now(0), Input::Persisted { seqno: 4 }, &mut out);
    f
}

/// Steps a request with `id`; returns every output.
fn send(f: &mut Fixture, ms: u64, id: u64, method: Method, path: &str, body: &str) -> Vec<Output> {
    let mut out = Vec::new();
    f.node.step(
        now(ms),
        Input::Request {
            id,
            request: request(method, path, body, Some(&f.user)),
            session: Default::default(),
        },
        &mut out,
    );
    out
}

fn write(f: &mut Fixture, ms: u64, id: u64) -> Vec<Output> {
    let body = format!(r#"{{"id":{id},"msg":"m{id}"}}"#);
    send(f, ms, id, Method::POST, "/app/log/private", &body)
}

fn responses(out: &[Output]) -> Vec<(u64, Response)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Respond { id, response } => Some((*id, response.clone())),
            _ => None,
        })
        .collect()
}

fn txid(r: &Response) -> &str {
    r.header("x-ms-ccf-transaction-id")
        .expect("a transaction id")
}

/// Writes 2.5 and signs it (2.6) at the target; nothing commits until `Persisted { 6 }`.
fn signed_and_uncommitted(f: &mut Fixture) {
    let out = write(f, 10, 1);
    assert_eq!(txid(&responses(&out)[0].1), "2.5");
    let mut out = Vec::new();
    f.node.step(now(30), Input::Tick, &mut out);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Append { txid, is_signature: true, .. } if txid.to_string() == "2.6")),
        "signed at the target: {out:?}"
    );
}

#[test]
fn writes_wait_while_commits_lag_and_execute_in_order_once_they_catch_up() {
    let mut f = primary_with_target();
    signed_and_uncommitted(&mut f);
    // Within twice the target of the signature, writes are admitted.
    let out = write(&mut f, 70, 2);
    assert_eq!(txid(&responses(&out)[0].1), "2.7");
    // Past it, they are held: no response, nothing appended.
    for (ms, id) in [(71, 3), (72, 4)] {
        let out = write(&mut f, ms, id);
        assert!(responses(&out).is_empty(), "held: {out:?}");
        assert!(
            !out.iter().any(|o| matches!(o, Output::Append { .. })),
            "{out:?}"
        );
    }
    // Reads are not held.
    let out = send(&mut f, 73, 5, Method::GET, "/app/log/private?id=1", "");
    assert_eq!(responses(&out)[0].1.status, StatusCode::OK);
    // Ticks do not release them while the signature still waits.
    let mut out = Vec::new();
    f.node.step(now(80), Input::Tick, &mut out);
    assert!(responses(&out).is_empty(), "{out:?}");
    // The signature commits: the held writes execute, in arrival order.
    let mut out = Vec::new();
    f.node
        .step(now(90), Input::Persisted { seqno: 6 }, &mut out);
    let answered: Vec<_> = responses(&out)
        .iter()
        .map(|(id, r)| (*id, r.status, txid(r).to_owned()))
        .collect();
    assert_eq!(
        answered,
        vec![
            (3, StatusCode::OK, "2.8".to_owned()),
            (4, StatusCode::OK, "2.9".to_owned())
        ]
    );
    // 2.7 has waited the target by now: the same step signed it and the released writes.
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Append { txid, is_signature: true, .. } if txid.to_string() == "2.10")
        ),
        "{out:?}"
    );
    // Nothing is held any more: the next write runs at once.
    let out = write(&mut f, 91, 6);
    assert_eq!(txid(&responses(&out)[0].1), "2.11");
}

#[test]
fn a_write_held_too_long_gets_too_many_pending_transactions() {
    let mut f = primary_with_target();
    signed_and_uncommitted(&mut f);
    assert!(responses(&write(&mut f, 100, 2)).is_empty(), "held");
    let mut out = Vec::new();
    let limit = coco_types::limits::ADMISSION_HOLD_MS_MAX;
    f.node.step(now(100 + limit - 1), Input::Tick, &mut out);
    assert!(responses(&out).is_empty(), "{out:?}");
    f.node.step(now(100 + limit), Input::Tick, &mut out);
    let answered = responses(&out);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].0, 2);
    assert_eq!(answered[0].1.status, StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = serde_json::from_slice(&answered[0].1.body).unwrap();
    assert_eq!(body["error"]["code"], "TooManyPendingTransactions");
    // It was never executed.
    let out = send(
        &mut f,
        100 + limit,
        3,
        Method::GET,
        "/app/log/private?id=2",
        "",
    );
    assert_eq!(responses(&out)[0].1.status, StatusCode::NOT_FOUND);
}

#[test]
fn without_a_target_writes_are_never_held() {
    let mut f = fixture(CoreConfig {
        signature_tx_interval_count: 1,
        ..CoreConfig::default()
    });
    // Signatures after every write, none ever committed (nothing persisted): all admitted.
    for (k, ms) in [10, 1_000, 100_000].into_iter().enumerate() {
        let out = write(&mut f, ms, k as u64 + 1);
        assert_eq!(responses(&out)[0].1.status, StatusCode::OK, "{out:?}");
    }
}

//! The read path (`Node::read_view`, `ReadView::execute`): what it answers must be exactly what
//! the core would have answered, and everything it cannot answer alone must go to the core.

mod common;

use coco_app_api::{Method, PeerCert, Response};
use coco_node::{CoreConfig, Input, Node, Session};
use common::{fixture, now, request};

fn core_answer(
    node: &mut Node,
    method: Method,
    path: &str,
    body: &str,
    cert: Option<&PeerCert>,
) -> Response {
    common::respond(node, 5, request(method, path, body, cert))
}

fn write(node: &mut Node, user: &PeerCert, path: &str, body: &str) {
    let r = core_answer(node, Method::POST, path, body, Some(user));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn the_read_path_answers_as_the_core_would_and_leaves_the_rest_to_it() {
    let mut f = fixture(CoreConfig::default());
    let user = f.user.clone();
    let member = f.member.clone();
    write(
        &mut f.node,
        &user,
        "/app/log/private",
        r#"{"id":1,"msg":"secret one"}"#,
    );
    write(
        &mut f.node,
        &user,
        "/app/log/public",
        r#"{"id":2,"msg":"public two"}"#,
    );
    let committed = f.node.consensus().last_seqno;
    f.node.step(
        now(5),
        Input::Persisted { seqno: committed },
        &mut Vec::new(),
    );

    // (method, path, caller, answered by the read path)
    let cases: Vec<(Method, &str, Option<&PeerCert>, bool)> = vec![
        (Method::GET, "/app/log/private?id=1", Some(&user), true),
        (Method::HEAD, "/app/log/private?id=1", Some(&user), true),
        (Method::GET, "/app/log/private?id=404", Some(&user), true),
        (Method::GET, "/app/log/private?id=x", Some(&user), true),
        (Method::GET, "/app/log/public?id=2", Some(&user), true),
        (Method::GET, "/app/log/private/count", Some(&user), true),
        (Method::GET, "/app/log/private?id=1", None, true),
        (Method::GET, "/app/log/private?id=1", Some(&member), true),
        (Method::GET, "/app/commit", None, true),
        (Method::GET, "/node/commit", None, true),
        (Method::GET, "/node/state", None, true),
        (Method::GET, "/node/network", None, true),
        (Method::GET, "/node/tx?transaction_id=2.3", None, true),
        (Method::GET, "/gov/service/members", None, true),
        // Writes, historical state, endpoints the node runs, history, unknown paths: the core.
        (Method::POST, "/app/log/private", Some(&user), false),
        (Method::DELETE, "/app/log/private?id=1", Some(&user), false),
        (
            Method::GET,
            "/app/log/private/historical?id=1",
            Some(&user),
            false,
        ),
        (
            Method::GET,
            "/app/receipt?transaction_id=2.3",
            Some(&user),
            false,
        ),
        (Method::GET, "/node/receipt?transaction_id=2.3", None, false),
        (Method::GET, "/app/api", None, false),
        (Method::GET, "/gov/members/proposals", None, false),
        (Method::GET, "/node/index/strategies", None, false),
        (
            Method::GET,
            "/app/log/public/historical/range?id=2",
            Some(&user),
            false,
        ),
        (Method::GET, "/app/no/such/path", Some(&user), false),
        (Method::PUT, "/app/log/private", Some(&user), false),
    ];
    for (method, path, cert, answered) in cases {
        let view = f.node.read_view();
        let got = view.execute(
            &request(method.clone(), path, "", cert),
            &Session::default(),
            now(5).unix_seconds,
        );
        assert_eq!(got.is_some(), answered, "{method} {path}");
        if let Some(got) = got {
            let want = core_answer(&mut f.node, method.clone(), path, "", cert);
            assert_eq!(got, want, "{method} {path}");
        }
    }
}

#[test]
fn a_view_is_a_snapshot_and_counts_its_calls() {
    let mut f = fixture(CoreConfig::default());
    let user = f.user.clone();
    write(
        &mut f.node,
        &user,
        "/app/log/private",
        r#"{"id":1,"msg":"before"}"#,
    );
    let before = f.node.read_view();
    write(
        &mut f.node,
        &user,
        "/app/log/private",
        r#"{"id":1,"msg":"after"}"#,
    );
    let after = f.node.read_view();
    assert_eq!(after.seqno(), before.seqno() + 1);
    let read = |view: &coco_node::ReadView| {
        let r = view
            .execute(
                &request(Method::GET, "/app/log/private?id=1", "", Some(&user)),
                &Session::default(),
                0,
            )
            .expect("answered");
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["msg"].clone()
    };
    assert_eq!(read(&before), "before");
    assert_eq!(read(&after), "after");

    let metrics = core_answer(&mut f.node, Method::GET, "/node/metrics", "", None);
    let metrics: serde_json::Value = serde_json::from_slice(&metrics.body).unwrap();
    let get = metrics["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "GET" && m["path"] == "/app/log/private")
        .expect("the reads are counted");
    assert_eq!(get["calls"], 2);
}

#[test]
fn a_closed_frontend_is_left_to_the_core() {
    let (node, _) = common::opening_node();
    let view = node.read_view();
    assert!(
        view.execute(
            &request(Method::GET, "/app/log/private/count", "", None),
            &Session::default(),
            0
        )
        .is_none()
    );
    let commit = view
        .execute(
            &request(Method::GET, "/app/commit", "", None),
            &Session::default(),
            0,
        )
        .expect("common endpoints are served");
    assert_eq!(commit.status, 200);
}

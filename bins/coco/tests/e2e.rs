//! End-to-end: a real `coco node` process, real TLS with client certificates.

mod support;

use std::time::Duration;

use bytes::Bytes;
use coco_client::Method;
use coco_client::Reply;
use support::{Options, TestNode, txid_of};

fn error_code(r: &Reply) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn logging_app_round_trip_and_commit() {
    let node = TestNode::start(Options::default());
    let mut user = node.user();
    for (vis, id, msg) in [("private", 1, "secret one"), ("public", 2, "public two")] {
        let r = user
            .post_json(
                &format!("/app/log/{vis}"),
                &serde_json::json!({"id": id, "msg": msg}),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), serde_json::json!(true));
        let txid = txid_of(&r);
        assert!(txid.starts_with("2."), "{txid}");
        node.wait_committed(&mut user, &txid);
        let r = user.get(&format!("/app/log/{vis}?id={id}")).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), serde_json::json!({"msg": msg}));
    }
    let r = user.get("/app/log/private/count").unwrap();
    assert_eq!(r.json(), serde_json::json!(1));
    let r = user
        .request(Method::DELETE, "/app/log/private?id=1", &[], Bytes::new())
        .unwrap();
    assert_eq!(r.status, 200);
    let r = user.get("/app/log/private?id=1").unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r).as_str()),
        (404, "ResourceNotFound")
    );

    // The same over HTTP/2.
    let mut h2 = node.connect_as(Some("user0"), true);
    let r = h2
        .post_json(
            "/app/log/private",
            &serde_json::json!({"id": 7, "msg": "over h2"}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    node.wait_committed(&mut h2, &txid_of(&r));
}

/// Reads run on the I/O threads against the state the core publishes (ADR 0009); a read on any
/// connection must still see every write answered before it began.
#[test]
fn a_read_on_another_connection_sees_every_answered_write() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let node = TestNode::start(Options::default());
    // The seqno of the newest write answered so far, published by the writer.
    let answered = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for http2 in [false, true] {
            let mut reader = node.connect_as(Some("user0"), http2);
            let (answered, done) = (&answered, &done);
            scope.spawn(move || {
                let mut reads = 0;
                while !done.load(Ordering::Acquire) || reads == 0 {
                    let floor = answered.load(Ordering::Acquire);
                    let r = reader.get("/app/log/private?id=1").unwrap();
                    let seen: coco_types::TxId = txid_of(&r).parse().unwrap();
                    assert!(
                        seen.seqno >= floor,
                        "read at {seen} after write at seqno {floor}"
                    );
                    reads += 1;
                }
            });
        }
        let mut writer = node.user();
        for i in 0..300u64 {
            let msg = format!("message {i}");
            let r = writer
                .post_json(
                    "/app/log/private",
                    &serde_json::json!({"id": 1, "msg": msg}),
                )
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let written: coco_types::TxId = txid_of(&r).parse().unwrap();
            answered.store(written.seqno, Ordering::Release);
        }
        done.store(true, Ordering::Release);
    });
    let r = node.user().get("/app/log/private?id=1").unwrap();
    assert_eq!(r.json(), serde_json::json!({"msg": "message 299"}));
}

#[test]
fn node_endpoints_describe_the_service() {
    let node = TestNode::start(Options::default());
    let mut anon = node.anonymous();
    let r = anon.get("/node/network").unwrap();
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["service_status"], "Open");
    assert_eq!(v["service_certificate"].as_str().unwrap(), node.ca_pem);
    let r = anon.get("/node/state").unwrap();
    assert_eq!(r.json()["state"], "PartOfNetwork");
    let node_id = r.json()["node_id"].as_str().unwrap().to_owned();
    let r = anon.get("/node/network/nodes/self").unwrap();
    assert_eq!(r.json()["node_id"], node_id.as_str());
    assert_eq!(r.json()["primary"], true);
    let r = anon.get(&format!("/node/network/nodes/{node_id}")).unwrap();
    assert_eq!(r.status, 200);
    let r = anon.get("/node/network/nodes").unwrap();
    assert_eq!(r.json()["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(anon.get("/node/primary").unwrap().status, 200);
    assert_eq!(
        anon.request(Method::HEAD, "/node/primary", &[], Bytes::new())
            .unwrap()
            .status,
        200
    );
    assert_eq!(anon.get("/node/backup").unwrap().status, 404);
    assert_eq!(anon.get("/node/ready/app").unwrap().status, 204);
    assert_eq!(anon.get("/node/ready/gov").unwrap().status, 204);
    let commit = anon.get("/node/commit?view_history=true").unwrap().json();
    assert!(commit["transaction_id"].as_str().unwrap().starts_with("2."));
    assert_eq!(commit["view_history"], serde_json::json!(["2.1"]));
    assert!(
        anon.get("/node/version").unwrap().json()["ccf_version"]
            .as_str()
            .unwrap()
            .starts_with("coco-")
    );
    assert!(
        anon.get("/node/self_signed_certificate").unwrap().json()["self_signed_certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    for api in ["/node/api", "/app/api", "/gov/api"] {
        let r = anon.get(api).unwrap();
        assert_eq!(r.status, 200, "{api}");
        assert_eq!(r.json()["openapi"], "3.0.0", "{api}");
    }
    assert!(anon.get("/app/api").unwrap().json()["paths"]["/log/private"]["post"].is_object());
    let r = anon.get("/node/metrics").unwrap();
    assert!(
        r.json()["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["path"] == "/node/network")
    );
    // Every response carries the transaction id header.
    assert!(
        anon.get("/node/network")
            .unwrap()
            .header("x-ms-ccf-transaction-id")
            .is_some()
    );
    // Transaction status for a future and a malformed id.
    let r = anon.get("/app/tx?transaction_id=2.100000").unwrap();
    assert_eq!(r.json()["status"], "Unknown");
    let r = anon.get("/gov/tx?transaction_id=1.1").unwrap();
    assert_eq!(r.json()["status"], "Invalid");
    let r = anon.get("/node/tx?transaction_id=banana").unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r).as_str()),
        (400, "InvalidQueryParameterValue")
    );
}

/// Every endpoint declares a policy; wrong or missing credentials are rejected.
#[test]
fn auth_policies_reject_wrong_callers() {
    let node = TestNode::start(Options::default());
    // (caller, method, path, body, expected status)
    let cases: &[(Option<&str>, Method, &str, Option<&str>, u16)] = &[
        (
            None,
            Method::POST,
            "/app/log/private",
            Some(r#"{"id":1,"msg":"x"}"#),
            401,
        ),
        (None, Method::GET, "/app/log/private?id=1", None, 401),
        (None, Method::GET, "/app/log/public/count", None, 401),
        (
            Some("member0"),
            Method::POST,
            "/app/log/public",
            Some(r#"{"id":1,"msg":"x"}"#),
            401,
        ),
        (
            Some("stranger"),
            Method::POST,
            "/app/log/private",
            Some(r#"{"id":1,"msg":"x"}"#),
            401,
        ),
        (
            Some("stranger"),
            Method::DELETE,
            "/app/log/private/all",
            None,
            401,
        ),
        (
            Some("user0"),
            Method::POST,
            "/app/log/private",
            Some(r#"{"id":1,"msg":"x"}"#),
            200,
        ),
        (None, Method::GET, "/node/network", None, 200),
        (Some("stranger"), Method::GET, "/app/commit", None, 200),
    ];
    for (who, method, path, body, want) in cases {
        let mut c = node.connect_as(*who, false);
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        let r = c
            .request(
                method.clone(),
                path,
                headers,
                Bytes::from(body.unwrap_or("").to_owned()),
            )
            .unwrap();
        assert_eq!(
            r.status.as_u16(),
            *want,
            "{who:?} {method} {path}: {}",
            r.text()
        );
        if *want == 401 {
            assert_eq!(
                error_code(&r),
                "InvalidAuthenticationInfo",
                "{who:?} {method} {path}"
            );
        }
    }
}

/// Malformed input gets CCF's error shape and status, and the connection keeps working.
#[test]
fn http_negative_inputs() {
    let node = TestNode::start(Options {
        max_body_size: Some("4KB".into()),
        ..Options::default()
    });
    let mut user = node.user();
    let big = "x".repeat(5000);
    let many_headers: Vec<(String, String)> =
        (0..300).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let huge_header = "h".repeat(20_000);
    // (method, path, headers, body, status, code)
    let cases: Vec<(Method, &str, Vec<(String, String)>, String, u16, &str)> = vec![
        (
            Method::POST,
            "/app/log/private",
            vec![],
            "{not json".into(),
            400,
            "InvalidInput",
        ),
        (
            Method::POST,
            "/app/log/private",
            vec![],
            r#"{"id":"seven","msg":"x"}"#.into(),
            400,
            "InvalidInput",
        ),
        (
            Method::POST,
            "/app/log/private",
            vec![],
            r#"{"msg":"x"}"#.into(),
            400,
            "InvalidInput",
        ),
        (
            Method::POST,
            "/app/log/private",
            vec![],
            r#"{"id":1,"msg":""}"#.into(),
            400,
            "InvalidInput",
        ),
        (
            Method::POST,
            "/app/log/private",
            vec![],
            r#"{"id":-1,"msg":"x"}"#.into(),
            400,
            "InvalidInput",
        ),
        (
            Method::POST,
            "/app/log/private",
            vec![],
            r#"[1,2]"#.into(),
            400,
            "InvalidInput",
        ),
        (
            Method::POST,
            "/app/log/private",
            vec![("content-type".into(), "text/plain".into())],
            r#"{"id":1,"msg":"x"}"#.into(),
            415,
            "UnsupportedContentType",
        ),
        (
            Method::POST,
            "/app/log/private",
            vec![],
            format!(r#"{{"id":1,"msg":"{big}"}}"#),
            413,
            "RequestBodyTooLarge",
        ),
        (
            Method::GET,
            "/app/log/private?id=abc",
            vec![],
            String::new(),
            400,
            "InvalidQueryParameterValue",
        ),
        (
            Method::GET,
            "/app/log/private",
            vec![],
            String::new(),
            400,
            "InvalidQueryParameterValue",
        ),
        (
            Method::GET,
            "/app/log/private?id=99999999999999999999999",
            vec![],
            String::new(),
            400,
            "InvalidQueryParameterValue",
        ),
        (
            Method::GET,
            "/app/log/private?id=12345",
            vec![],
            String::new(),
            404,
            "ResourceNotFound",
        ),
        (
            Method::GET,
            "/app/no/such/path",
            vec![],
            String::new(),
            404,
            "ResourceNotFound",
        ),
        (
            Method::PUT,
            "/app/log/private",
            vec![],
            String::new(),
            405,
            "UnsupportedHttpVerb",
        ),
        (
            Method::GET,
            "/node/network",
            many_headers,
            String::new(),
            431,
            "RequestHeaderTooLarge",
        ),
        (
            Method::GET,
            "/node/network",
            vec![("x-big".into(), huge_header)],
            String::new(),
            431,
            "RequestHeaderTooLarge",
        ),
    ];
    for (method, path, headers, body, status, code) in cases {
        let mut hs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !hs.iter().any(|(k, _)| *k == "content-type") && !body.is_empty() {
            hs.push(("content-type", "application/json"));
        }
        let r = user
            .request(method.clone(), path, &hs, Bytes::from(body))
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), error_code(&r).as_str()),
            (status, code),
            "{method} {path}: {}",
            r.text()
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        // The connection survives every bad request.
        assert_eq!(
            user.get("/node/commit").unwrap().status,
            200,
            "after {method} {path}"
        );
    }
}

/// Anything reported Committed survives kill -9: every committed write is in the ledger files.
#[test]
fn kill9_keeps_every_committed_write() {
    let mut node = TestNode::start(Options {
        sig_tx_count: 20,
        sig_delay_ms: 20,
        chunk_size: "20KB".into(),
        ..Options::default()
    });
    let mut user = node.user();
    let mut committed = Vec::new();
    for i in 0..300u64 {
        let r = user
            .post_json(
                "/app/log/public",
                &serde_json::json!({"id": i, "msg": format!("durable {i}")}),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        committed.push((i, txid_of(&r)));
    }
    let last = committed.last().unwrap().1.clone();
    node.wait_committed(&mut user, &last);
    // More writes in flight when the process dies: they may or may not survive.
    for i in 300..400u64 {
        let _ = user.post_json(
            "/app/log/public",
            &serde_json::json!({"id": i, "msg": "maybe"}),
        );
    }
    node.kill9();
    std::thread::sleep(Duration::from_millis(50));
    // coco's own verifier accepts what kill -9 left (a torn tail is a warning), repair
    // truncates any torn tail, and the result verifies cleanly.
    let dir = node.ledger_dir();
    let dir_s = dir.to_str().unwrap();
    let verify = support::run_coco(&["ledger", "verify", dir_s], node.dir.path());
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("Verified FULL - "),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    support::run_coco(&["ledger", "repair", dir_s], node.dir.path());
    let verify = support::run_coco(&["ledger", "verify", dir_s], node.dir.path());
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        stdout.contains("Verified FULL - ") && !stdout.contains("torn tail"),
        "{stdout}"
    );
    let found = read_public_records(&node.ledger_dir());
    for (id, txid) in &committed {
        let seqno: u64 = txid.split('.').nth(1).unwrap().parse().unwrap();
        let got = found.get(&seqno).unwrap_or_else(|| {
            panic!("committed {txid} (id {id}) missing from the ledger after kill -9")
        });
        assert_eq!(
            got,
            &(id.to_string(), format!("\"durable {id}\"")),
            "{txid}"
        );
    }
}

/// seqno -> (key, value) of `public:records` writes found in the ledger directory, tolerating a
/// torn tail in the open chunk.
fn read_public_records(dir: &std::path::Path) -> std::collections::BTreeMap<u64, (String, String)> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let scan = coco_codec::chunk::scan_chunk(&bytes).unwrap();
        for ent in &scan.entries {
            let view = coco_codec::entry::parse_entry(&bytes[ent.range()]).unwrap();
            let pd = coco_codec::domain::parse_public_domain(view.public).unwrap();
            if let Some(m) = pd.maps.get("public:records") {
                for (k, v) in &m.writes {
                    if let Some(v) = v {
                        out.insert(
                            pd.prefix.seqno,
                            (
                                String::from_utf8_lossy(k).into_owned(),
                                String::from_utf8_lossy(v).into_owned(),
                            ),
                        );
                    }
                }
            }
        }
    }
    out
}

/// Past the soft session cap new sessions get 503 SessionCapExhausted (and are closed); past
/// the hard cap they are refused outright; closing sessions frees room.
#[test]
fn session_caps() {
    let node = TestNode::start(Options {
        session_caps: Some((2, 3)),
        ..Options::default()
    });
    let mut a = node.anonymous();
    let mut b = node.anonymous();
    assert_eq!(a.get("/node/commit").unwrap().status, 200);
    assert_eq!(b.get("/node/commit").unwrap().status, 200);
    let mut c = node.anonymous();
    let r = c.get("/node/commit").unwrap();
    assert_eq!(
        (r.status.as_u16(), error_code(&r).as_str()),
        (503, "SessionCapExhausted")
    );
    assert_eq!(r.header("connection"), Some("close"));
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    // A third session that has not finished its handshake still holds a slot...
    let held = std::net::TcpStream::connect(node.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // ...so a fourth is over the hard cap: the server closes it without serving.
    let cfg = coco_client::ClientConfig::new(&node.ca_pem, None, false).unwrap();
    let refused = match coco_client::BlockingConnection::connect(&cfg, node.addr) {
        Err(_) => true,
        Ok(mut d) => d.get("/node/commit").is_err(),
    };
    assert!(refused, "a session past the hard cap was served");
    drop(held);
    drop(b);
    std::thread::sleep(Duration::from_millis(200));
    let mut e = node.anonymous();
    assert_eq!(e.get("/node/commit").unwrap().status, 200);
    assert_eq!(a.get("/node/commit").unwrap().status, 200);
}

//! `coco bench` against a running node: closed and open loop, request count and duration, the
//! workloads (writes, mixed, template), HTTP/2, commit latency (every write followed until the
//! node reports it committed), errors by status, and the JSON and HTML reports.

mod support;

use serde_json::Value;
use support::{Options, TestNode};

fn bench(node: &TestNode, args: &[&str]) -> Value {
    let addr = node.addr.to_string();
    let mut all = vec![
        "bench",
        "--address",
        &addr,
        "--cacert",
        "service_cert.pem",
        "--cert",
        "user0_cert.pem",
        "--key",
        "user0_privk.pem",
        "--quiet",
        "--keys",
        "100",
        "--connections",
        "4",
    ];
    all.extend_from_slice(args);
    let out = support::run_coco(&all, node.dir.path());
    serde_json::from_slice(&out.stdout).expect("bench prints JSON")
}

#[test]
fn bench_drives_a_node_and_reports() {
    let node = TestNode::start(Options {
        sig_tx_count: 20,
        ..Options::default()
    });

    // Closed loop for a duration, following every write until it commits.
    let r = bench(
        &node,
        &[
            "--duration-s",
            "2",
            "--commit-latency",
            "--json",
            "run.json",
            "--report",
            "run.html",
        ],
    );
    assert_eq!(r["mode"], "closed-loop");
    assert_eq!(r["errors"], 0, "{r}");
    let ok = r["requests_ok"].as_u64().unwrap();
    assert!(ok > 50, "{r}");
    assert!(r["latency_us"]["p50"].as_u64().unwrap() > 0);
    assert!(r["latency_us"]["p99_9"].as_u64().unwrap() >= r["latency_us"]["p50"].as_u64().unwrap());
    let commit = &r["commit"];
    assert_eq!(commit["followed"], ok, "{r}");
    assert_eq!(commit["committed"], ok, "every write committed: {r}");
    assert_eq!(commit["uncommitted_after_drain"], 0);
    // A write commits after the node answered it.
    assert!(
        commit["latency_us"]["p50"].as_u64().unwrap() >= r["latency_us"]["p50"].as_u64().unwrap(),
        "{r}"
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(node.path("run.json")).unwrap()).unwrap();
    assert_eq!(saved["requests_ok"], r["requests_ok"]);
    let page = std::fs::read_to_string(node.path("run.html")).unwrap();
    assert_eq!(
        page.matches("<svg").count(),
        4,
        "latency and throughput over time, two histograms"
    );
    assert!(page.contains("commit p99"));

    // Open loop at a fixed rate for a number of requests: the run takes as long as the rate
    // says, over HTTP/2.
    let r = bench(
        &node,
        &[
            "--rate",
            "200",
            "--requests",
            "100",
            "--http2",
            "--workload",
            "public-write",
        ],
    );
    assert_eq!(r["mode"], "open-loop");
    assert_eq!(r["requests_ok"], 100, "{r}");
    assert!(r["duration_s"].as_f64().unwrap() >= 0.45, "{r}");

    // HTTP/2 multiplexed: each of the 4 connections carries 8 requests at once.
    let r = bench(
        &node,
        &[
            "--http2",
            "--streams",
            "8",
            "--workload",
            "read",
            "--requests",
            "500",
        ],
    );
    assert_eq!(
        (r["requests_ok"].as_u64(), r["streams"].as_u64()),
        (Some(500), Some(8)),
        "{r}"
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_coco"))
        .args(["bench", "--cacert", "x.pem", "--streams", "4"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--http2"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Mixed reads and writes over keys written first.
    let r = bench(
        &node,
        &[
            "--workload",
            "mixed",
            "--read-ratio",
            "0.5",
            "--requests",
            "200",
        ],
    );
    assert_eq!(r["requests_ok"], 200, "{r}");
    assert_eq!(r["errors"], 0, "{r}");

    // A template request, with placeholders.
    let r = bench(
        &node,
        &[
            "--workload",
            "template",
            "--template-path",
            "/app/log/public",
            "--template-body",
            r#"{"id": {id}, "msg": "t{n}"}"#,
            "--requests",
            "10",
        ],
    );
    assert_eq!(r["requests_ok"], 10, "{r}");
    let mut user = node.user();
    assert_eq!(
        user.get("/app/log/public?id=9").unwrap().json()["msg"],
        "t9"
    );

    // Failures are counted by status.
    let r = bench(
        &node,
        &[
            "--workload",
            "template",
            "--template-method",
            "GET",
            "--template-path",
            "/app/log/private?id=100000",
            "--requests",
            "20",
        ],
    );
    assert_eq!(r["requests_ok"], 0, "{r}");
    assert_eq!(r["errors_by_status"]["404"], 20, "{r}");
}

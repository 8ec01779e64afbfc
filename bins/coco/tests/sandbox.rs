//! `coco sandbox`: the README's first command. Starts three nodes (two join the first), prints
//! working instructions, serves a user with the generated identities on every node, and stops
//! every node on SIGINT.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coco_client::{BlockingConnection, ClientConfig};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sandbox_starts_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let port = free_port();
    let mut child = Command::new(support::COCO)
        .args(["sandbox", "--workspace"])
        .arg(&ws)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("sandbox banner");
        let done = line.contains("Press Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    let url = format!("https://127.0.0.1:{port}");
    assert!(
        banner.contains(&format!("curl -X POST {url}/app/log/private")),
        "{banner}"
    );
    assert!(banner.contains("--cacert"), "{banner}");

    let common = ws.join("sandbox_common");
    for f in [
        "service_cert.pem",
        "user0_cert.pem",
        "user0_privk.pem",
        "member0_cert.pem",
        "member0_privk.pem",
        "member0_enc_pubk.pem",
        "member0_enc_privk.pem",
    ] {
        assert!(common.join(f).exists(), "missing sandbox_common/{f}");
    }
    for node in ["node0", "node1", "node2"] {
        for f in ["config.json", "coco.pid", "out.log", "ledger"] {
            assert!(ws.join(node).join(f).exists(), "missing {node}/{f}");
        }
    }
    let read = |f: &str| std::fs::read_to_string(common.join(f)).unwrap();
    let cfg = ClientConfig::new(
        &read("service_cert.pem"),
        Some((&read("user0_cert.pem"), &read("user0_privk.pem"))),
        false,
    )
    .unwrap();
    let mut user =
        BlockingConnection::connect(&cfg, format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
    let r = user
        .post_json(
            "/app/log/private",
            &serde_json::json!({"id": 42, "msg": "hello coco"}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        user.get("/app/log/private?id=42").unwrap().json(),
        serde_json::json!({"msg": "hello coco"})
    );
    // The other two nodes joined and replicate: once the write commits there, they serve it.
    let txid = support::txid_of(&r);
    for k in 1..=2u16 {
        let addr = format!("127.0.0.1:{}", port + k).parse().unwrap();
        let mut backup = BlockingConnection::connect(&cfg, addr).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while backup
            .get(&format!("/node/tx?transaction_id={txid}"))
            .unwrap()
            .json()["status"]
            != "Committed"
        {
            assert!(Instant::now() < deadline, "node{k} did not commit {txid}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            backup.get("/app/log/private?id=42").unwrap().json(),
            serde_json::json!({"msg": "hello coco"}),
            "node{k}"
        );
    }

    // member0 was activated by the sandbox, as CCF's sandbox does.
    let member_pem = read("member0_cert.pem");
    let m0 = coco_crypto::cert_der_fingerprint_hex(
        &coco_crypto::pem_to_der_certs(&member_pem).unwrap()[0],
    );
    let r = user
        .get(&format!("/gov/service/members/{m0}?api-version=2024-07-01"))
        .unwrap();
    assert_eq!(r.json()["status"], "Active", "{}", r.text());

    // ...and user0 was added and the service opened by an accepted proposal, not a shortcut.
    let r = user
        .get("/gov/members/proposals?api-version=2024-07-01")
        .unwrap();
    let proposals = r.json()["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(proposals.len(), 1, "{}", r.text());
    assert_eq!(proposals[0]["proposalState"], "Accepted");
    assert!(
        !std::fs::read_to_string(ws.join("node0/config.json"))
            .unwrap()
            .contains("open_service_without_governance")
    );

    let node_pids: Vec<i32> = ["node0", "node1", "node2"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(ws.join(n).join("coco.pid"))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sandbox did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "sandbox exited with {status}");
    // The node processes are gone too.
    for node_pid in node_pids {
        let alive = unsafe { libc::kill(node_pid, 0) } == 0;
        assert!(
            !alive,
            "node process {node_pid} still running after the sandbox stopped"
        );
    }
}

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

/// A running sandbox; interrupted (and so its nodes stopped) if a test fails half-way.
struct Sandbox(std::process::Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            unsafe {
                libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `coco sandbox <args>` until it prints its banner; returns the process and the banner.
fn sandbox(ws: &std::path::Path, port: u16, args: &[&str]) -> (Sandbox, String) {
    let mut child = Sandbox(
        Command::new(support::COCO)
            .args(["sandbox", "--workspace"])
            .arg(ws)
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
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
            .unwrap_or_else(|_| panic!("no sandbox banner; so far:\n{}", banner.join("\n")));
        let done = line.contains("Press Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    (child, banner.join("\n"))
}

/// user0's connection to the sandbox node listening on `port`.
fn user0(ws: &std::path::Path, port: u16) -> BlockingConnection {
    let read = |f: &str| std::fs::read_to_string(ws.join("sandbox_common").join(f)).unwrap();
    let cfg = ClientConfig::new(
        &read("service_cert.pem"),
        Some((&read("user0_cert.pem"), &read("user0_privk.pem"))),
        false,
    )
    .unwrap();
    BlockingConnection::connect(&cfg, format!("127.0.0.1:{port}").parse().unwrap()).unwrap()
}

/// Polls `/node/tx` on `conn` until `txid` is Committed there.
fn wait_committed(conn: &mut BlockingConnection, txid: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while conn
        .get(&format!("/node/tx?transaction_id={txid}"))
        .unwrap()
        .json()["status"]
        != "Committed"
    {
        assert!(Instant::now() < deadline, "{txid} not committed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGINT, then waits for the sandbox to exit; it must exit cleanly.
fn interrupt(Sandbox(child): &mut Sandbox) {
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
}

fn node_pids(ws: &std::path::Path) -> Vec<i32> {
    ["node0", "node1", "node2"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(ws.join(n).join("coco.pid"))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn sandbox_starts_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let port = free_port();
    let (mut child, banner) = sandbox(&ws, port, &[]);
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
    let mut user = user0(&ws, port);
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
        let mut backup = user0(&ws, port + k);
        wait_committed(&mut backup, &txid);
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

    let node_pids = node_pids(&ws);
    interrupt(&mut child);
    // The node processes are gone too.
    for node_pid in node_pids {
        let alive = unsafe { libc::kill(node_pid, 0) } == 0;
        assert!(
            !alive,
            "node process {node_pid} still running after the sandbox stopped"
        );
    }
}

/// `coco sandbox --recover` after every node was killed: one command recovers the service under
/// a new identity (member0 opens it and submits its share), every write is back, and the other
/// nodes rejoin.
#[test]
fn sandbox_recovers_after_every_node_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let port = free_port();
    let (mut child, _) = sandbox(&ws, port, &["--sig-tx-interval", "50"]);
    let mut user = user0(&ws, port);
    let mut last = String::new();
    for i in 0..200u64 {
        let vis = if i % 2 == 0 { "private" } else { "public" };
        let r = user
            .post_json(
                &format!("/app/log/{vis}"),
                &serde_json::json!({"id": i, "msg": format!("record {i}")}),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        last = support::txid_of(&r);
    }
    wait_committed(&mut user, &last);
    let old_cert = std::fs::read_to_string(ws.join("sandbox_common/service_cert.pem")).unwrap();
    let pids = node_pids(&ws);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    for pid in pids {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    // Wait until they are gone (the recovery refuses while a node still runs).
    let deadline = Instant::now() + Duration::from_secs(10);
    while node_pids(&ws)
        .iter()
        .any(|p| unsafe { libc::kill(*p, 0) } == 0)
    {
        assert!(Instant::now() < deadline, "nodes survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (mut child, banner) = sandbox(&ws, port, &["--recover"]);
    assert!(
        banner.contains("The service is open again after"),
        "{banner}"
    );
    assert!(banner.contains("previous_1"), "{banner}");
    let new_cert = std::fs::read_to_string(ws.join("sandbox_common/service_cert.pem")).unwrap();
    assert_ne!(new_cert, old_cert, "a new service identity");
    assert_eq!(
        std::fs::read_to_string(ws.join("previous_1/service_cert.pem")).unwrap(),
        old_cert
    );
    let mut user = user0(&ws, port);
    for i in 0..200u64 {
        let vis = if i % 2 == 0 { "private" } else { "public" };
        let r = user.get(&format!("/app/log/{vis}?id={i}")).unwrap();
        assert_eq!(r.status, 200, "{i}: {}", r.text());
        assert_eq!(r.json()["msg"], format!("record {i}"));
    }
    let r = user.get("/node/network").unwrap().json();
    assert_eq!(r["recovery_count"], 1, "{r}");
    // The rejoined nodes replicate new writes.
    let r = user
        .post_json(
            "/app/log/private",
            &serde_json::json!({"id": 1000, "msg": "after"}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let txid = support::txid_of(&r);
    let mut backup = user0(&ws, port + 2);
    wait_committed(&mut backup, &txid);
    assert_eq!(
        backup.get("/app/log/private?id=1000").unwrap().json()["msg"],
        "after"
    );
    interrupt(&mut child);
}

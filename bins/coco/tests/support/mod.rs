//! Test support: real `coco node` processes on 127.0.0.1 (port 0, so tests can run in
//! parallel), identities made by `coco keygen`, and clients with the right certificates.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coco_client::{BlockingConnection, ClientConfig, Reply};

pub const COCO: &str = env!("CARGO_BIN_EXE_coco");
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Options {
    pub chunk_size: String,
    pub sig_tx_count: u64,
    pub sig_delay_ms: u64,
    pub export_ledger_secret: bool,
    pub max_body_size: Option<String>,
    pub max_uncommitted: Option<u64>,
    /// (soft, hard) session caps of the interface.
    pub session_caps: Option<(usize, usize)>,
    /// Open the service by governance after start (member0 acks, proposes user0 and
    /// transition_service_to_open, votes), as the sandbox does.
    pub open: bool,
    /// Members besides member0 (member1, member2, …).
    pub extra_members: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_size: "5MB".into(),
            sig_tx_count: 100,
            sig_delay_ms: 50,
            export_ledger_secret: false,
            session_caps: None,
            open: true,
            extra_members: 0,
            max_body_size: None,
            max_uncommitted: None,
        }
    }
}

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub ca_pem: String,
}

pub fn run_coco(args: &[&str], cwd: &Path) -> std::process::Output {
    let out = Command::new(COCO)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running coco");
    assert!(
        out.status.success(),
        "coco {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl TestNode {
    pub fn start(opts: Options) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        run_coco(&["keygen", "--name", "member0", "--gen-enc-key"], d);
        run_coco(&["keygen", "--name", "user0"], d);
        // An identity that is neither a user nor a member.
        run_coco(&["keygen", "--name", "stranger"], d);
        let mut iface = serde_json::json!({"bind_address": "127.0.0.1:0"});
        if let Some((soft, hard)) = opts.session_caps {
            iface["max_open_sessions_soft"] = serde_json::json!(soft);
            iface["max_open_sessions_hard"] = serde_json::json!(hard);
        }
        if let Some(b) = &opts.max_body_size {
            iface["http_configuration"] = serde_json::json!({"max_body_size": b});
        }
        let mut config = serde_json::json!({
            "network": {"rpc_interfaces": {"primary_rpc_interface": iface}},
            "command": {
                "type": "Start",
                "service_certificate_file": d.join("service_cert.pem"),
                "start": {
                    "members": [{"certificate_file": d.join("member0_cert.pem"), "encryption_public_key_file": d.join("member0_enc_pubk.pem")}],
                    "constitution_files": [Path::new(env!("CARGO_MANIFEST_DIR")).join("../../constitution/default.js")]
                }
            },
            "ledger": {"directory": d.join("ledger"), "chunk_size": opts.chunk_size},
            "ledger_signatures": {"tx_count": opts.sig_tx_count, "delay": format!("{}ms", opts.sig_delay_ms)},
            "output_files": {"rpc_addresses_file": d.join("rpc_addresses.json"), "pid_file": d.join("coco.pid")}
        });
        if opts.export_ledger_secret {
            config["insecure_test_options"] =
                serde_json::json!({"ledger_secret_file": d.join("ledger_secret.hex")});
        }
        for i in 1..=opts.extra_members {
            let name = format!("member{i}");
            run_coco(&["keygen", "--name", &name], d);
            config["command"]["start"]["members"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"certificate_file": d.join(format!("{name}_cert.pem"))}));
        }
        if let Some(m) = opts.max_uncommitted {
            config["consensus"] = serde_json::json!({"max_uncommitted_tx_count": m});
        }
        std::fs::write(
            d.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("out.log")).unwrap();
        let mut child = Command::new(COCO)
            .args(["node", "--config", "config.json"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning coco node");
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "coco node exited during startup ({status}): {}",
                    std::fs::read_to_string(d.join("out.log")).unwrap_or_default()
                );
            }
            if let Ok(text) = std::fs::read_to_string(d.join("rpc_addresses.json"))
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                break v["primary_rpc_interface"]
                    .as_str()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "node did not start within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let ca_pem = std::fs::read_to_string(d.join("service_cert.pem")).unwrap();
        let node = TestNode {
            dir,
            child: Some(child),
            addr,
            ca_pem,
        };
        if opts.open {
            node.open_by_governance();
        }
        node
    }

    /// member0 acknowledges, proposes adding user0 and opening the service, and votes for it.
    pub fn open_by_governance(&self) {
        let d = self.dir.path();
        let addr = self.addr.to_string();
        let member = |args: &[&str]| {
            let mut all = vec![
                "member",
                "--cert",
                "member0_cert.pem",
                "--key",
                "member0_privk.pem",
            ];
            all.extend_from_slice(&args[..1]);
            all.extend_from_slice(&["--address", &addr, "--cacert", "service_cert.pem"]);
            all.extend_from_slice(&args[1..]);
            serde_json::from_slice::<serde_json::Value>(&run_coco(&all, d).stdout)
                .unwrap_or(serde_json::Value::Null)
        };
        member(&["ack"]);
        let proposal = serde_json::json!({"actions": [
            {"name": "set_user", "args": {"cert": std::fs::read_to_string(d.join("user0_cert.pem")).unwrap()}},
            {"name": "transition_service_to_open", "args": {"next_service_identity": self.ca_pem}},
        ]});
        std::fs::write(d.join("open_service.json"), proposal.to_string()).unwrap();
        let id = member(&["propose", "--proposal", "open_service.json"])["proposalId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            member(&["vote", "--proposal-id", &id])["proposalState"],
            "Accepted",
            "opening the service"
        );
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ledger_dir(&self) -> PathBuf {
        self.path("ledger")
    }

    fn identity(&self, name: &str) -> (String, String) {
        (
            std::fs::read_to_string(self.path(&format!("{name}_cert.pem"))).unwrap(),
            std::fs::read_to_string(self.path(&format!("{name}_privk.pem"))).unwrap(),
        )
    }

    pub fn connect_as(&self, who: Option<&str>, http2: bool) -> BlockingConnection {
        let id = who.map(|w| self.identity(w));
        let cfg = ClientConfig::new(
            &self.ca_pem,
            id.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
            http2,
        )
        .unwrap();
        BlockingConnection::connect(&cfg, self.addr).expect("connecting to the node")
    }

    pub fn user(&self) -> BlockingConnection {
        self.connect_as(Some("user0"), false)
    }

    pub fn anonymous(&self) -> BlockingConnection {
        self.connect_as(None, false)
    }

    /// Polls `/node/tx` until `txid` is Committed; panics on Invalid or timeout.
    pub fn wait_committed(&self, conn: &mut BlockingConnection, txid: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = conn
                .get(&format!("/node/tx?transaction_id={txid}"))
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            match r.json()["status"].as_str().unwrap() {
                "Committed" => return,
                "Pending" | "Unknown" => {}
                other => panic!("transaction {txid} is {other}"),
            }
            assert!(Instant::now() < deadline, "{txid} not committed in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    c.kill().unwrap();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("out.log")).unwrap_or_default()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn txid_of(r: &Reply) -> String {
    r.header("x-ms-ccf-transaction-id")
        .expect("x-ms-ccf-transaction-id header")
        .to_owned()
}

/// Python >= 3.12 with CCF's `ccf` package: `$CCF_PY` if set, else installed by the repo's
/// `scripts/setup-ccf-oracle.sh`.
pub fn ccf_python() -> PathBuf {
    if let Ok(p) = std::env::var("CCF_PY") {
        return PathBuf::from(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-ccf-oracle.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("running setup-ccf-oracle.sh");
    assert!(
        out.status.success(),
        "the CCF oracle could not be installed (set CCF_PY to a python with `ccf` installed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs `coco member <args[0]> --address … --cacert service_cert.pem <args[1..]>` as `member`
/// (key files `<member>_cert.pem` / `<member>_privk.pem` in the node's directory); returns the
/// JSON it prints (Null if none).
pub fn member_cli_as(node: &TestNode, member: &str, args: &[&str]) -> serde_json::Value {
    let addr = node.addr.to_string();
    let cert = format!("{member}_cert.pem");
    let key = format!("{member}_privk.pem");
    let mut all = vec!["member", "--cert", &cert, "--key", &key];
    all.extend_from_slice(&args[..1]);
    all.extend_from_slice(&["--address", &addr, "--cacert", "service_cert.pem"]);
    all.extend_from_slice(&args[1..]);
    let out = run_coco(&all, node.dir.path());
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// [`member_cli_as`] as member0.
pub fn member_cli(node: &TestNode, args: &[&str]) -> serde_json::Value {
    member_cli_as(node, "member0", args)
}

/// Proposes `proposal` as member0 and votes for it; returns the ballot's answer (its
/// `proposalState` is Accepted, or Failed with the reason in `failureReason`).
pub fn propose_and_vote(node: &TestNode, proposal: &serde_json::Value) -> serde_json::Value {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "proposal-{}.json",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    std::fs::write(node.path(&name), proposal.to_string()).unwrap();
    let created = member_cli(node, &["propose", "--proposal", &name]);
    let id = created["proposalId"]
        .as_str()
        .unwrap_or_else(|| panic!("proposal refused: {created}"))
        .to_owned();
    member_cli(node, &["vote", "--proposal-id", &id])
}

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

#[derive(Clone)]
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
    /// The extra members are recovery members (they get RSA encryption keys).
    pub extra_members_recover: bool,
    /// `consensus.election_timeout` in milliseconds (CCF's default 5000 makes failover tests
    /// slow).
    pub election_timeout_ms: u64,
    /// `redirections` of a joining node's RPC interface (CCF's shape).
    pub redirections: Option<serde_json::Value>,
    /// `snapshots.tx_count` (CCF's default 10000 when unset).
    pub snapshot_tx_count: Option<u64>,
    /// `ledger.read_only_directories`.
    pub read_only_ledger_dirs: Vec<PathBuf>,
    /// `snapshots.read_only_directory`.
    pub read_only_snapshot_dir: Option<PathBuf>,
    /// `command.join.fetch_recent_snapshot` of a joiner (CCF's default: true).
    pub fetch_recent_snapshot: bool,
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
            extra_members_recover: false,
            max_body_size: None,
            max_uncommitted: None,
            election_timeout_ms: 1000,
            redirections: None,
            snapshot_tx_count: None,
            read_only_ledger_dirs: Vec::new(),
            read_only_snapshot_dir: None,
            fetch_recent_snapshot: true,
        }
    }
}

/// `snapshots` in the node's directory, with the options' interval.
fn snapshot_options(config: &mut serde_json::Value, d: &Path, opts: &Options) {
    config["snapshots"] = serde_json::json!({"directory": d.join("snapshots")});
    config["ledger"]["read_only_directories"] = serde_json::json!(opts.read_only_ledger_dirs);
    if let Some(dir) = &opts.read_only_snapshot_dir {
        config["snapshots"]["read_only_directory"] = serde_json::json!(dir);
    }
    if let Some(n) = opts.snapshot_tx_count {
        config["snapshots"]["tx_count"] = serde_json::json!(n);
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
            "network": {
                "rpc_interfaces": {"primary_rpc_interface": iface},
                "node_to_node_interface": {"bind_address": "127.0.0.1:0"}
            },
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
            "consensus": {"election_timeout": format!("{}ms", opts.election_timeout_ms)},
            "output_files": {"rpc_addresses_file": d.join("rpc_addresses.json"), "pid_file": d.join("coco.pid")}
        });
        if opts.export_ledger_secret {
            config["insecure_test_options"] =
                serde_json::json!({"ledger_secret_file": d.join("ledger_secret.hex")});
        }
        for i in 1..=opts.extra_members {
            let name = format!("member{i}");
            let mut member =
                serde_json::json!({"certificate_file": d.join(format!("{name}_cert.pem"))});
            if opts.extra_members_recover {
                run_coco(&["keygen", "--name", &name, "--gen-enc-key"], d);
                member["encryption_public_key_file"] =
                    serde_json::json!(d.join(format!("{name}_enc_pubk.pem")));
            } else {
                run_coco(&["keygen", "--name", &name], d);
            }
            config["command"]["start"]["members"]
                .as_array_mut()
                .unwrap()
                .push(member);
        }
        if let Some(m) = opts.max_uncommitted {
            config["consensus"]["max_uncommitted_tx_count"] = serde_json::json!(m);
        }
        snapshot_options(&mut config, d, &opts);
        let mut node = TestNode::spawn(dir, &config);
        node.wait_started();
        node.ca_pem = std::fs::read_to_string(node.path("service_cert.pem")).unwrap();
        if opts.open {
            node.open_by_governance();
        }
        node
    }

    /// Writes `config` into `dir` and starts `coco node` on it; the node is not serving yet.
    fn spawn(dir: tempfile::TempDir, config: &serde_json::Value) -> TestNode {
        let d = dir.path();
        std::fs::write(
            d.join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("out.log")).unwrap();
        let child = Command::new(COCO)
            .args(["node", "--config", "config.json"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning coco node");
        TestNode {
            dir,
            child: Some(child),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            ca_pem: String::new(),
        }
    }

    /// Waits until the node serves (it writes its RPC addresses once started, which for a
    /// joining node means once it is trusted).
    pub fn wait_started(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        self.addr = loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("coco node exited during startup ({status}): {}", self.log());
            }
            if let Ok(text) = std::fs::read_to_string(self.path("rpc_addresses.json"))
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
                "node did not start within {START_TIMEOUT:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
    }

    /// Starts a node that joins this node's service (its directory gets copies of this node's
    /// identities and service certificate). Returns before it is trusted: call
    /// [`TestNode::wait_started`].
    pub fn spawn_joiner(&self, opts: &Options) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().ends_with(".pem") {
                std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
            }
        }
        let mut iface = serde_json::json!({"bind_address": "127.0.0.1:0"});
        if let Some(r) = &opts.redirections {
            iface["redirections"] = r.clone();
        }
        let mut config = serde_json::json!({
            "network": {
                "rpc_interfaces": {"primary_rpc_interface": iface},
                "node_to_node_interface": {"bind_address": "127.0.0.1:0"}
            },
            "command": {
                "type": "Join",
                "service_certificate_file": d.join("service_cert.pem"),
                "join": {
                    "target_rpc_address": self.addr.to_string(),
                    "retry_timeout": "100ms",
                    "fetch_recent_snapshot": opts.fetch_recent_snapshot
                }
            },
            "ledger": {"directory": d.join("ledger"), "chunk_size": opts.chunk_size},
            "ledger_signatures": {"tx_count": opts.sig_tx_count, "delay": format!("{}ms", opts.sig_delay_ms)},
            "consensus": {"election_timeout": format!("{}ms", opts.election_timeout_ms)},
            "output_files": {"rpc_addresses_file": d.join("rpc_addresses.json"), "pid_file": d.join("coco.pid")}
        });
        snapshot_options(&mut config, d, opts);
        let mut node = TestNode::spawn(dir, &config);
        node.ca_pem = self.ca_pem.clone();
        node
    }

    /// A node started in `Recover` mode on a copy of `ledger` (a dead service's ledger
    /// directory), with this node's identities (members, users) and this node's service
    /// certificate as the previous identity. Not waited for.
    pub fn spawn_recovery(&self, ledger: &Path, opts: &Options) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".pem") && name != "service_cert.pem" {
                std::fs::copy(e.path(), d.join(&name)).unwrap();
            }
        }
        std::fs::write(d.join("previous_service_cert.pem"), &self.ca_pem).unwrap();
        std::fs::create_dir(d.join("ledger")).unwrap();
        for e in std::fs::read_dir(ledger).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join("ledger").join(e.file_name())).unwrap();
        }
        let mut config = serde_json::json!({
            "network": {
                "rpc_interfaces": {"primary_rpc_interface": {"bind_address": "127.0.0.1:0"}},
                "node_to_node_interface": {"bind_address": "127.0.0.1:0"}
            },
            "command": {
                "type": "Recover",
                "service_certificate_file": d.join("service_cert.pem"),
                "recover": {"previous_service_identity_file": d.join("previous_service_cert.pem")}
            },
            "ledger": {"directory": d.join("ledger"), "chunk_size": opts.chunk_size},
            "ledger_signatures": {"tx_count": opts.sig_tx_count, "delay": format!("{}ms", opts.sig_delay_ms)},
            "consensus": {"election_timeout": format!("{}ms", opts.election_timeout_ms)},
            "output_files": {"rpc_addresses_file": d.join("rpc_addresses.json"), "pid_file": d.join("coco.pid")}
        });
        snapshot_options(&mut config, d, opts);
        TestNode::spawn(dir, &config)
    }

    /// [`Self::spawn_recovery`], waited for until it serves.
    pub fn recover(&self, ledger: &Path, opts: &Options) -> TestNode {
        let mut node = self.spawn_recovery(ledger, opts);
        node.wait_started();
        node.ca_pem = std::fs::read_to_string(node.path("service_cert.pem")).unwrap();
        node
    }

    /// A joined, serving node (the service must be Opening, or the node trusted by members).
    pub fn join(&self, opts: &Options) -> TestNode {
        let mut node = self.spawn_joiner(opts);
        node.wait_started();
        node
    }

    /// The node's id (from its RPC certificate).
    pub fn node_id(&self) -> String {
        let conn = self.anonymous();
        let spki = coco_crypto::cert_public_key_spki_der(conn.server_certificate_der()).unwrap();
        coco_crypto::spki_fingerprint_hex(&spki)
    }

    /// A network of `n` nodes: the first starts the service, the others join while it is
    /// Opening, then member0 opens it.
    pub fn cluster(n: usize, opts: Options) -> Vec<TestNode> {
        let first = TestNode::start(Options {
            open: false,
            ..opts.clone()
        });
        let mut nodes = vec![first];
        for _ in 1..n {
            let joined = nodes[0].join(&opts);
            nodes.push(joined);
        }
        if opts.open {
            nodes[0].open_by_governance();
        }
        nodes
    }

    /// Polls `/node/tx` on this node until `txid` is Committed here.
    pub fn wait_committed_here(&self, txid: &str) {
        let mut conn = self.anonymous();
        self.wait_committed(&mut conn, txid);
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

    /// `GET /node/receipt` until the node has read the entries back (202 meanwhile).
    pub fn receipt(&self, txid: &str) -> serde_json::Value {
        let mut conn = self.anonymous();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = conn
                .get(&format!("/node/receipt?transaction_id={txid}"))
                .unwrap();
            match r.status.as_u16() {
                200 => return r.json(),
                202 => assert_eq!(r.header("retry-after"), Some("3")),
                other => panic!("receipt of {txid}: {other} {}", r.text()),
            }
            assert!(Instant::now() < deadline, "no receipt for {txid}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A historical endpoint as user0, retried while the node loads the transaction (202).
    pub fn historical(&self, path: &str, txid: &str) -> coco_client::Reply {
        let mut user = self.user();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = user
                .request(
                    coco_client::Method::GET,
                    path,
                    &[("x-ms-ccf-transaction-id", txid)],
                    Vec::new(),
                )
                .unwrap();
            if r.status != 202 {
                return r;
            }
            assert!(Instant::now() < deadline, "{path} at {txid} never loaded");
            std::thread::sleep(Duration::from_millis(50));
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

/// Runs one of the repository's oracle scripts (`tests/oracle/<script>`, CCF's Python package)
/// on `bundle` written to a file in `dir`; returns the JSON it prints, or its output on failure.
pub fn oracle(
    dir: &Path,
    script: &str,
    bundle: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let file = dir.join(format!(
        "bundle-{}.json",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&file, bundle.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/oracle")
        .join(script);
    let out = Command::new(ccf_python())
        .arg(script)
        .arg(&file)
        .output()
        .expect("running an oracle script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(serde_json::from_str(stdout.trim()).unwrap())
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
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

/// Runs read_ledger.py and returns (transactions, signatures) from its
/// "Verified FULL - N transactions, S signatures, until V.S" line.
pub fn verified_counts(
    read_ledger: &std::path::Path,
    ledger: &std::path::Path,
    flags: &[&str],
) -> (u64, u64) {
    let out = Command::new(read_ledger)
        .arg("-q")
        .args(flags)
        .arg(ledger)
        .output()
        .expect("running read_ledger.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "read_ledger.py failed:\n{stdout}\n{stderr}"
    );
    let line = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| l.starts_with("Verified FULL - "))
        .unwrap_or_else(|| panic!("no verification line in:\n{stdout}\n{stderr}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (nums[0], nums[1])
}

/// Waits for a Pending node in `primary`'s view and has member0 trust it.
pub fn trust_pending(primary: &TestNode) {
    trust_pending_by(primary, &[]);
}

/// [`trust_pending`], with `more_voters` voting after member0 (when one vote is not a
/// majority).
pub fn trust_pending_by(primary: &TestNode, more_voters: &[&str]) {
    let mut anon = primary.anonymous();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pending = loop {
        let nodes = anon.get("/node/network/nodes").unwrap().json();
        if let Some(id) = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["status"] == "Pending")
            .map(|n| n["node_id"].as_str().unwrap().to_owned())
        {
            break id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the joiner never became Pending"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut ballot = propose_and_vote(
        primary,
        &serde_json::json!({"actions": [{"name": "transition_node_to_trusted", "args": {
            "node_id": pending, "valid_from": asn1_time(now() - 60)}}]}),
    );
    for voter in more_voters {
        let id = ballot["proposalId"].as_str().unwrap().to_owned();
        ballot = member_cli_as(primary, voter, &["vote", "--proposal-id", &id]);
    }
    assert_eq!(ballot["proposalState"], "Accepted", "{ballot}");
}

/// The `.committed` chunks of a ledger directory, by name, with their bytes.
pub fn committed_chunks(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut chunks: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".committed"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    chunks.sort();
    chunks
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `YYYYMMDDHHMMSSZ` (ASN.1 GeneralizedTime), one of the forms CCF's `valid_from` accepts.
pub fn asn1_time(unix: i64) -> String {
    coco_crypto::format_ccf_time(unix).unwrap()
}

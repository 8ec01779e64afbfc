//! `coco sandbox`: a local network in one command, shaped like CCF's `sandbox.sh`.
//!
//! Layout of the workspace (default `./workspace`):
//! - `sandbox_common/`: `service_cert.pem`, `member0_{cert,privk,enc_pubk,enc_privk}.pem`,
//!   `user0_{cert,privk}.pem`
//! - `node<i>/`: `config.json`, `ledger/`, `coco.pid`, `out.log`, `rpc_addresses.json`
//!
//! Every node is its own `coco node` OS process. Ctrl-C (SIGINT) or SIGTERM stops them all.
//! `coco sandbox --recover` brings back a sandbox whose nodes all died (see [`recover`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use coco_crypto::Curve;
use coco_types::limits;

use crate::keygen;

mod recover;

/// coco's default constitution, written to `sandbox_common/constitution.js` for the nodes.
const DEFAULT_CONSTITUTION: &str = include_str!("../../../constitution/default.js");

/// Marker that says a directory was made by `coco sandbox` and may be wiped by the next run.
const MARKER: &str = ".coco-sandbox";
/// How long to wait for a node to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct Args {
    /// Directory for identities, configurations, ledgers and logs. Wiped on start if it was
    /// made by an earlier sandbox.
    #[arg(long, default_value = "workspace")]
    pub workspace: PathBuf,
    /// Number of nodes. The first starts the service; the others join it while it is Opening
    /// (so they are trusted at once), then member0 opens it.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// RPC port of the first node; node i listens on port + i.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Validity of generated certificates in days (CCF's default is 1).
    #[arg(long, default_value_t = limits::SANDBOX_CERTIFICATE_VALIDITY_DAYS)]
    pub validity_days: u32,
    /// Ledger chunk size, e.g. "5MB".
    #[arg(long, default_value = "5MB")]
    pub chunk_size: String,
    /// Signature transaction interval in transactions.
    #[arg(long, default_value_t = limits::SIGNATURE_TX_INTERVAL_COUNT_DEFAULT)]
    pub sig_tx_interval: u64,
    /// Signature transaction interval in milliseconds.
    #[arg(long, default_value_t = limits::SIGNATURE_INTERVAL_MS_DEFAULT)]
    pub sig_ms_interval: u64,
    /// Adaptive signature interval: sign early enough for transactions to commit within this
    /// many milliseconds, and hold new writes while commits lag it
    /// (`ledger_signatures.commit_latency_target`).
    #[arg(long)]
    pub commit_latency_target_ms: Option<u64>,
    /// Snapshot interval in transactions (`snapshots.tx_count`); 0 snapshots only when
    /// governance triggers one.
    #[arg(long, default_value_t = limits::SNAPSHOT_TX_INTERVAL_COUNT_DEFAULT)]
    pub snapshot_tx_interval: u64,
    /// Instead of a new network, recover the sandbox in --workspace after its nodes died (a
    /// disaster recovery: new service identity, member0 opens it and submits its recovery
    /// share, the other nodes join). The dead nodes' directories are kept in `previous_<n>/`.
    #[arg(long)]
    pub recover: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > limits::CONFIGURATION_NODE_COUNT_MAX {
        bail!(
            "--nodes {}: expected between 1 and {}",
            args.nodes,
            limits::CONFIGURATION_NODE_COUNT_MAX
        );
    }
    if args.recover {
        return recover::run(&args);
    }
    let ws = absolute(&args.workspace)?;
    prepare_workspace(&ws)?;
    let common = ws.join("sandbox_common");
    std::fs::create_dir_all(&common)?;
    keygen::generate(&common, "member0", Curve::P384, true, args.validity_days)?;
    keygen::generate(&common, "user0", Curve::P384, false, args.validity_days)?;
    std::fs::write(common.join("constitution.js"), DEFAULT_CONSTITUTION)?;
    let exe = std::env::current_exe().context("locating the coco executable")?;

    let mut nodes = Vec::new();
    for i in 0..args.nodes {
        let role = if i == 0 {
            NodeCommand::Start
        } else {
            NodeCommand::Join
        };
        nodes.push(spawn_node(&exe, &ws, &common, i, role, &args)?);
        // Nodes start one after another: each joins a service that is already serving.
        if let Err(e) = wait_ready(&mut nodes, &common, START_TIMEOUT) {
            stop_all(&mut nodes);
            return Err(e);
        }
    }
    let result = open_service(&common, nodes[0].port).and_then(|()| {
        print_banner(&ws, &common, &nodes);
        wait_for_signal_or_exit(&mut nodes)
    });
    stop_all(&mut nodes);
    result
}

struct SandboxNode {
    dir: PathBuf,
    child: Child,
    port: u16,
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn prepare_workspace(ws: &Path) -> anyhow::Result<()> {
    if ws.exists() {
        let empty = std::fs::read_dir(ws)?.next().is_none();
        if !empty && !ws.join(MARKER).exists() {
            bail!(
                "workspace {} exists and was not made by coco sandbox; choose another --workspace",
                ws.display()
            );
        }
        if !empty {
            std::fs::remove_dir_all(ws)
                .with_context(|| format!("wiping old workspace {}", ws.display()))?;
        }
    }
    std::fs::create_dir_all(ws)?;
    std::fs::write(
        ws.join(MARKER),
        "made by coco sandbox; wiped by the next run\n",
    )?;
    Ok(())
}

/// How a sandbox node starts.
enum NodeCommand<'a> {
    /// Creates the service.
    Start,
    /// Joins node0.
    Join,
    /// Recovers the dead service whose certificate is `previous_cert` from the ledger already in
    /// the node's directory and the latest committed snapshot in `snapshots`.
    Recover {
        previous_cert: &'a Path,
        snapshots: &'a Path,
    },
}

/// Writes node `i`'s configuration into `<ws>/node<i>/` and starts it.
fn spawn_node(
    exe: &Path,
    ws: &Path,
    common: &Path,
    i: usize,
    command: NodeCommand<'_>,
    args: &Args,
) -> anyhow::Result<SandboxNode> {
    let dir = ws.join(format!("node{i}"));
    std::fs::create_dir_all(&dir)?;
    let port = args
        .port
        .checked_add(i as u16)
        .context("port out of range")?;
    let config = node_config(common, &dir, port, args.port, command, args);
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
    let log = std::fs::File::create(dir.join("out.log"))?;
    let child = Command::new(exe)
        .args(["node", "--config"])
        .arg(&config_path)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting node {i}"))?;
    Ok(SandboxNode { dir, child, port })
}

fn node_config(
    common: &Path,
    dir: &Path,
    port: u16,
    first_port: u16,
    command: NodeCommand<'_>,
    args: &Args,
) -> serde_json::Value {
    let p = |name: &str| common.join(name).display().to_string();
    let mut snapshots = serde_json::json!({
        "directory": dir.join("snapshots").display().to_string(),
        "tx_count": args.snapshot_tx_interval
    });
    let mut signatures = serde_json::json!({
        "tx_count": args.sig_tx_interval,
        "delay": format!("{}ms", args.sig_ms_interval)
    });
    if let Some(t) = args.commit_latency_target_ms {
        signatures["commit_latency_target"] = serde_json::json!(format!("{t}ms"));
    }
    let command = match command {
        NodeCommand::Start => serde_json::json!({
            "type": "Start",
            "service_certificate_file": p("service_cert.pem"),
            "start": {
                "members": [{
                    "certificate_file": p("member0_cert.pem"),
                    "encryption_public_key_file": p("member0_enc_pubk.pem")
                }],
                "constitution_files": [p("constitution.js")],
                "initial_service_certificate_validity_days": args.validity_days,
                "service_subject_name": "CN=CCF Service"
            }
        }),
        NodeCommand::Join => serde_json::json!({
            "type": "Join",
            "service_certificate_file": p("service_cert.pem"),
            "join": {
                "target_rpc_address": format!("127.0.0.1:{first_port}"),
                "retry_timeout": "200ms"
            }
        }),
        NodeCommand::Recover {
            previous_cert,
            snapshots: dead_snapshots,
        } => {
            snapshots["read_only_directory"] =
                serde_json::json!(dead_snapshots.display().to_string());
            serde_json::json!({
                "type": "Recover",
                "service_certificate_file": p("service_cert.pem"),
                "recover": {
                    "previous_service_identity_file": previous_cert.display().to_string(),
                    "initial_service_certificate_validity_days": args.validity_days,
                    "service_subject_name": "CN=CCF Service"
                }
            })
        }
    };
    serde_json::json!({
        "network": {
            "rpc_interfaces": {
                "primary_rpc_interface": {
                    "bind_address": format!("127.0.0.1:{port}"),
                    "app_protocol": "HTTP1"
                }
            },
            // The OS picks the node-to-node port; nodes.info records the one bound.
            "node_to_node_interface": {"bind_address": "127.0.0.1:0"}
        },
        "command": command,
        "node_certificate": {
            "subject_alt_names": ["iPAddress:127.0.0.1", "dNSName:localhost"],
            "initial_validity_days": args.validity_days
        },
        "ledger": {"directory": dir.join("ledger").display().to_string(), "chunk_size": args.chunk_size},
        "ledger_signatures": signatures,
        "snapshots": snapshots,
        "output_files": {
            "pid_file": dir.join("coco.pid").display().to_string(),
            "rpc_addresses_file": dir.join("rpc_addresses.json").display().to_string(),
            "node_certificate_file": dir.join("node_cert.pem").display().to_string()
        }
    })
}

impl SandboxNode {
    /// Whether the node serves (it wrote its addresses and accepts connections); an error if it
    /// exited.
    fn ready(&mut self, i: usize, common: &Path) -> anyhow::Result<bool> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default();
            bail!("node {i} exited during startup ({status}). Its log:\n{log}");
        }
        Ok(self.dir.join("rpc_addresses.json").exists()
            && common.join("service_cert.pem").exists()
            && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok())
    }
}

fn wait_ready(nodes: &mut [SandboxNode], common: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for (i, n) in nodes.iter_mut().enumerate() {
        loop {
            if n.ready(i, common)? {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "node {i} did not start serving within {timeout:?}; see {}",
                    n.dir.join("out.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// What CCF's sandbox does after genesis, by governance: member0 acknowledges the state digest
/// and becomes Active, proposes adding user0 and opening the service, and votes for it.
fn open_service(common: &Path, port: u16) -> anyhow::Result<()> {
    let (member, mut conn) = member0(common, port)?;
    let ca = std::fs::read_to_string(common.join("service_cert.pem"))?;
    member
        .ack(&mut conn)
        .context("member0 acknowledging the service state")?;
    let proposal = serde_json::json!({ "actions": [
        { "name": "set_user", "args": { "cert": std::fs::read_to_string(common.join("user0_cert.pem"))? } },
        { "name": "transition_service_to_open", "args": { "next_service_identity": ca } },
    ]});
    let (id, _) = member
        .propose(&mut conn, &proposal.to_string())
        .context("proposing user0 and opening the service")?;
    let state = member
        .vote(&mut conn, &id, true)
        .context("voting to open the service")?;
    anyhow::ensure!(
        state == "Accepted",
        "the opening proposal is {state}, not Accepted"
    );
    Ok(())
}

/// member0's identity and a connection to the node at `port` that trusts the service
/// certificate in `common`.
fn member0(
    common: &Path,
    port: u16,
) -> anyhow::Result<(crate::member::Member, coco_client::BlockingConnection)> {
    let member = crate::member::Member::load(
        &common.join("member0_cert.pem"),
        &common.join("member0_privk.pem"),
    )?;
    let ca = std::fs::read_to_string(common.join("service_cert.pem"))?;
    let config = coco_client::ClientConfig::new(&ca, None, false)?;
    let conn = coco_client::BlockingConnection::connect(
        &config,
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    )?;
    Ok((member, conn))
}

fn print_banner(ws: &Path, common: &Path, nodes: &[SandboxNode]) {
    let c = |name: &str| common.join(name).display().to_string();
    let ca = c("service_cert.pem");
    let user = format!(
        "--cert {} --key {}",
        c("user0_cert.pem"),
        c("user0_privk.pem")
    );
    let url = format!("https://127.0.0.1:{}", nodes[0].port);
    println!(
        "coco sandbox: {} node(s) running; workspace {}",
        nodes.len(),
        ws.display()
    );
    for (i, n) in nodes.iter().enumerate() {
        println!(
            "  node{i}: https://127.0.0.1:{}  (ledger {}/ledger, log {}/out.log)",
            n.port,
            n.dir.display(),
            n.dir.display()
        );
    }
    println!(
        "Identities: member0 (active) and user0 in {}",
        common.display()
    );
    println!();
    println!("Try:");
    println!("  curl {url}/node/network --cacert {ca}");
    println!(
        "  curl -X POST {url}/app/log/private --cacert {ca} {user} -H 'content-type: application/json' --data '{{\"id\": 42, \"msg\": \"hello coco\"}}' -i"
    );
    println!("  curl '{url}/app/log/private?id=42' --cacert {ca} {user}");
    println!(
        "  curl '{url}/app/tx?transaction_id=<view.seqno from x-ms-ccf-transaction-id>' --cacert {ca}"
    );
    println!("  curl {url}/node/commit --cacert {ca}");
    println!(
        "  curl '{url}/node/receipt?transaction_id=<view.seqno, once Committed>' --cacert {ca}   # verify with: coco receipt verify --service-cert {ca} receipt.json"
    );
    println!(
        "  curl https://127.0.0.1:{}/app/log/private?id=42 --cacert {ca} {user}   # any node serves reads; writes there are forwarded",
        nodes.last().map_or(0, |n| n.port)
    );
    println!();
    println!("Press Ctrl-C to stop.");
}

/// Blocks until SIGINT/SIGTERM, or until every node has exited. A node that exits (or is
/// killed) is reported; the others keep serving, as a replicated service does.
fn wait_for_signal_or_exit(nodes: &mut [SandboxNode]) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut running = vec![true; nodes.len()];
    let signalled = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = int.recv() => return Ok::<_, std::io::Error>(true),
                _ = term.recv() => return Ok(true),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    for (i, n) in nodes.iter_mut().enumerate() {
                        if running[i] && let Some(status) = n.child.try_wait()? {
                            running[i] = false;
                            eprintln!(
                                "node{i} exited ({status}); see {}",
                                n.dir.join("out.log").display()
                            );
                        }
                    }
                    if running.iter().all(|r| !r) {
                        return Ok(false);
                    }
                }
            }
        }
    })?;
    if signalled {
        println!("Stopping the sandbox.");
        Ok(())
    } else {
        bail!("every node has exited")
    }
}

fn stop_all(nodes: &mut [SandboxNode]) {
    for n in nodes.iter() {
        // SIGTERM lets each node finish its current storage batch.
        unsafe {
            libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in nodes.iter_mut() {
        loop {
            match n.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

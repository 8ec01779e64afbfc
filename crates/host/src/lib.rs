//! The host: everything a coco node does that touches the outside world. It loads the
//! configuration, creates identities, opens the ledger directory, runs the core and storage
//! threads, and serves TLS/HTTP — then feeds the deterministic core (`coco-node`).
//!
//! Architecture invariant: no business logic lives here. Whether a request is allowed, what a
//! transaction writes and when something is committed are decided by the core; the host moves
//! bytes and reports time and durability.

pub mod config;
pub mod core_thread;
pub mod http;
mod join;
pub mod n2n;
pub mod snapshots;
pub mod storage;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coco_codec::tables;
use coco_crypto::{Curve, EcKeyPair, RsaKeyPair, SubjectAltName, Validity};
use coco_node::{CoreConfig, GenesisConfig, MemberSpec, Node, NodeIdentity, Plugins};

use crate::config::{CommandKind, NodeConfigFile};
use crate::core_thread::{Clock, CoreHandle, Threads};
use crate::storage::{Disk, LedgerWriter, RealDisk};

/// The version string reported by `/node/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How often the core thread ticks (signature delay checks).
const TICK_MS: u64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {what} in {path}: {message}")]
    BadInput {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("cryptography: {0}")]
    Crypto(String),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error("joining the service failed: {0}")]
    Join(String),
    #[error("recovering the service failed: {0}")]
    Recover(String),
    #[error("cannot bind interface {name} to {address}: {source}")]
    Bind {
        name: String,
        address: String,
        source: std::io::Error,
    },
}

/// A running node.
pub struct RunningNode {
    pub node_id: String,
    pub rpc_addresses: BTreeMap<String, SocketAddr>,
    pub service_cert_pem: String,
    handle: CoreHandle,
    threads: Option<Threads>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunningNode {
    /// A handle for submitting requests directly to the core, bypassing TLS (tests, tools).
    pub fn core_handle(&self) -> CoreHandle {
        self.handle.clone()
    }

    /// Stops serving, lets the core answer what it has, and waits for the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
        self.handle.shutdown();
        if let Some(t) = self.threads.take() {
            let _ = t.core.join();
            // The core's exit closes the storage channel; the storage thread then drains and exits.
            let _ = t.storage.join();
        }
    }

    /// Blocks until SIGINT or SIGTERM, then shuts down.
    pub fn wait_for_signal(mut self) {
        if let Some(rt) = &self.runtime {
            rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            });
        }
        tracing::info!("shutting down");
        self.stop();
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn read_file(what: &'static str, path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|source| StartError::File {
        what,
        path: path.to_owned(),
        source,
    })
}

fn write_file(what: &'static str, path: &Path, contents: &[u8]) -> Result<(), StartError> {
    std::fs::write(path, contents).map_err(|source| StartError::File {
        what,
        path: path.to_owned(),
        source,
    })
}

fn read_cert(what: &'static str, path: &Path) -> Result<String, StartError> {
    let pem = read_file(what, path)?;
    match coco_crypto::pem_to_der_certs(&pem) {
        Ok(ders) if !ders.is_empty() => {
            coco_crypto::cert_public_key_spki_der(&ders[0]).map_err(|e| StartError::BadInput {
                what,
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            Ok(pem)
        }
        Ok(_) => Err(StartError::BadInput {
            what,
            path: path.to_owned(),
            message: "no CERTIFICATE block".into(),
        }),
        Err(e) => Err(StartError::BadInput {
            what,
            path: path.to_owned(),
            message: e.to_string(),
        }),
    }
}

fn read_rsa_public_key(what: &'static str, path: &Path) -> Result<String, StartError> {
    let pem = read_file(what, path)?;
    coco_crypto::rsa_public_key_size_bits(&pem).map_err(|e| StartError::BadInput {
        what,
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(pem)
}

fn read_json(what: &'static str, path: &Path) -> Result<serde_json::Value, StartError> {
    let text = read_file(what, path)?;
    serde_json::from_str(&text).map_err(|e| StartError::BadInput {
        what,
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// `CN=CCF Service` → `CCF Service`; anything without `CN=` is used whole.
fn common_name(subject: &str) -> String {
    subject
        .split(',')
        .find_map(|part| part.trim().strip_prefix("CN="))
        .unwrap_or(subject)
        .to_owned()
}

fn parse_san(s: &str) -> Result<SubjectAltName, String> {
    if let Some(ip) = s.strip_prefix("iPAddress:") {
        ip.parse()
            .map(SubjectAltName::Ip)
            .map_err(|_| format!("invalid IP address in {s:?}"))
    } else if let Some(dns) = s.strip_prefix("dNSName:") {
        Ok(SubjectAltName::Dns(dns.to_owned()))
    } else {
        Err(format!(
            "invalid subject alternative name {s:?}: expected iPAddress:… or dNSName:…"
        ))
    }
}

/// What a node starts from: its core, the outputs genesis produced, and its TLS identity.
pub struct Prepared {
    pub node: Node,
    /// The seqno of the snapshot the node started from (0: it has the whole ledger).
    pub ledger_starts_after: coco_types::SeqNo,
    pub genesis_outputs: Vec<coco_node::Output>,
    pub node_key_pem: String,
    pub node_cert_pem: String,
    pub service_cert_pem: String,
}

/// The addresses this node's listeners are bound to (port 0 in the configuration becomes the
/// port the OS chose; that is what `nodes.info` records unless a published address is set).
struct Bound {
    rpc: Vec<(String, std::net::TcpListener, config::RpcInterface)>,
    rpc_addresses: BTreeMap<String, SocketAddr>,
    node_to_node: Option<(std::net::TcpListener, SocketAddr)>,
}

fn bind(name: &str, address: &str) -> Result<(std::net::TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Bind {
        name: name.to_owned(),
        address: address.to_owned(),
        source,
    };
    let listener = std::net::TcpListener::bind(address).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok((listener, addr))
}

fn bind_all(cfg: &NodeConfigFile) -> Result<Bound, StartError> {
    let mut rpc = Vec::new();
    let mut rpc_addresses = BTreeMap::new();
    for (name, i) in &cfg.network.rpc_interfaces {
        let (listener, addr) = bind(name, &i.bind_address)?;
        rpc_addresses.insert(name.clone(), addr);
        rpc.push((name.clone(), listener, i.clone()));
    }
    let node_to_node = cfg
        .network
        .node_to_node_interface
        .as_ref()
        .map(|i| bind("node_to_node_interface", &i.bind_address))
        .transpose()?;
    Ok(Bound {
        rpc,
        rpc_addresses,
        node_to_node,
    })
}

/// This node's interfaces as `nodes.info` records them.
fn node_info_network(cfg: &NodeConfigFile, bound: &Bound) -> coco_node::join::NodeInfoNetwork {
    let rpc_interfaces = cfg
        .network
        .rpc_interfaces
        .iter()
        .map(|(name, i)| {
            let actual = bound.rpc_addresses[name].to_string();
            (
                name.clone(),
                tables::NetInterface {
                    bind_address: actual.clone(),
                    published_address: i.published_address.clone().unwrap_or(actual),
                    protocol: i.protocol.clone(),
                    app_protocol: Some(i.app_protocol.clone()),
                    max_open_sessions_soft: Some(i.max_open_sessions_soft as u64),
                    max_open_sessions_hard: Some(i.max_open_sessions_hard as u64),
                    redirections: i.redirections.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let node_to_node_interface = match (&cfg.network.node_to_node_interface, &bound.node_to_node) {
        (Some(i), Some((_, addr))) => tables::NetInterface {
            bind_address: addr.to_string(),
            published_address: i.published_address.clone().unwrap_or(addr.to_string()),
            ..Default::default()
        },
        _ => tables::NetInterface::default(),
    };
    coco_node::join::NodeInfoNetwork {
        node_to_node_interface,
        rpc_interfaces,
    }
}

fn node_curve(cfg: &NodeConfigFile) -> Curve {
    if cfg.node_certificate.curve_id == "Secp256R1" {
        Curve::P256
    } else {
        Curve::P384
    }
}

fn node_sans(cfg: &NodeConfigFile) -> Result<Vec<SubjectAltName>, StartError> {
    let mut sans = Vec::new();
    for s in &cfg.node_certificate.subject_alt_names {
        sans.push(parse_san(s).map_err(|message| StartError::BadInput {
            what: "node_certificate.subject_alt_names",
            path: "config".into(),
            message,
        })?);
    }
    if sans.is_empty() {
        sans.push(SubjectAltName::Ip("127.0.0.1".parse().expect("literal")));
    }
    Ok(sans)
}

fn node_validity(cfg: &NodeConfigFile, now: i64) -> Validity {
    let days = i64::from(cfg.node_certificate.initial_validity_days);
    Validity {
        not_before_unix_s: now - 60,
        not_after_unix_s: now + days * 86_400,
    }
}

fn crypto(e: coco_crypto::CryptoError) -> StartError {
    StartError::Crypto(e.to_string())
}

/// The core's configuration; the COSE issuer and subject come from `command.start` at genesis
/// and from the primary's `NetworkInfo` when joining.
fn core_config(
    cfg: &NodeConfigFile,
    cose_issuer: String,
    cose_subject: String,
) -> Result<CoreConfig, StartError> {
    Ok(CoreConfig {
        signature_tx_interval_count: cfg.ledger_signatures.tx_count,
        signature_interval_ms: cfg.ledger_signatures.delay.0,
        commit_latency_target_ms: cfg.ledger_signatures.commit_latency_target.map(|t| t.0),
        chunk_size_bytes: cfg.ledger.chunk_size.0,
        snapshot_tx_interval_count: cfg.snapshots.tx_count,
        historical_cache_bytes_max: usize::try_from(cfg.historical_cache_soft_limit.0)
            .unwrap_or(usize::MAX),
        uncommitted_tx_count_max: cfg.consensus.max_uncommitted_tx_count,
        cose_issuer,
        cose_subject,
        version: VERSION.to_owned(),
        consensus: coco_consensus::Config {
            message_timeout_ms: cfg.consensus.message_timeout.0,
            election_timeout_ms: cfg.consensus.election_timeout.0,
            append_entries_batch_max: coco_types::limits::APPEND_ENTRIES_BATCH_COUNT_MAX,
        },
        seed: {
            let mut seed = [0u8; 8];
            coco_crypto::random_bytes(&mut seed).map_err(crypto)?;
            u64::from_le_bytes(seed)
        },
        entropy: {
            let mut entropy = [0u8; 32];
            coco_crypto::random_bytes(&mut entropy).map_err(crypto)?;
            entropy
        },
    })
}

/// SHA-256 of this node's executable: the host data of its virtual attestation (CCF's).
fn executable_host_data() -> Result<[u8; 32], StartError> {
    let path = std::env::current_exe().map_err(|source| StartError::File {
        what: "node executable",
        path: PathBuf::new(),
        source,
    })?;
    let mut file = std::fs::File::open(&path).map_err(|source| StartError::File {
        what: "node executable",
        path: path.clone(),
        source,
    })?;
    let mut hasher = coco_crypto::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        use std::io::Read;
        let n = file.read(&mut buf).map_err(|source| StartError::File {
            what: "node executable",
            path: path.clone(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// A fresh service identity (P-384 key, self-signed CA certificate valid for `validity_days`)
/// and this node's identity endorsed by it.
fn new_service_identity(
    cfg: &NodeConfigFile,
    subject: &str,
    validity_days: u32,
    host_data: [u8; 32],
) -> Result<(NodeIdentity, String), StartError> {
    let now = unix_now();
    let service_key = EcKeyPair::generate(Curve::P384).map_err(crypto)?;
    let service_cert_pem = coco_crypto::self_signed_ca_cert(
        &service_key,
        &common_name(subject),
        Validity {
            not_before_unix_s: now - 60,
            not_after_unix_s: now + i64::from(validity_days) * 86_400,
        },
    )
    .map_err(crypto)?;
    let mut identity = NodeIdentity::new(
        EcKeyPair::generate(node_curve(cfg)).map_err(crypto)?,
        &common_name(&cfg.node_certificate.subject_name),
        &node_sans(cfg)?,
        node_validity(cfg, now),
        std::sync::Arc::new(service_key),
        service_cert_pem.clone(),
        RsaKeyPair::generate(2048).map_err(crypto)?,
    )
    .map_err(crypto)?;
    identity.virtual_host_data = host_data;
    Ok((identity, service_cert_pem))
}

/// Creates identities and runs genesis (CCF `Start`), writing the service certificate and
/// other output files.
fn prepare_start(
    cfg: &NodeConfigFile,
    plugins: Plugins,
    bound: &Bound,
    host_data: [u8; 32],
) -> Result<Prepared, StartError> {
    let start = cfg
        .command
        .start
        .as_ref()
        .expect("validated by the config parser");
    let (identity, service_cert_pem) = new_service_identity(
        cfg,
        &start.service_subject_name,
        start.initial_service_certificate_validity_days,
        host_data,
    )?;
    let node_cert_pem = identity.node_cert_pem.clone();

    let mut members = Vec::new();
    for m in &start.members {
        members.push(MemberSpec {
            cert_pem: read_cert("member certificate", &m.certificate_file)?,
            encryption_public_key_pem: m
                .encryption_public_key_file
                .as_deref()
                .map(|p| read_rsa_public_key("member encryption key", p))
                .transpose()?,
            member_data: m
                .data_json_file
                .as_deref()
                .map(|p| read_json("member data", p))
                .transpose()?,
            recovery_role: m.recovery_role,
        });
    }
    let network = node_info_network(cfg, bound);
    let genesis = GenesisConfig {
        members,
        recovery_threshold: start.service_configuration.recovery_threshold,
        maximum_node_certificate_validity_days: start
            .service_configuration
            .maximum_node_certificate_validity_days,
        rpc_interfaces: network.rpc_interfaces,
        node_to_node_interface: network.node_to_node_interface,
        node_data: serde_json::Value::Null,
        constitution: if start.constitution_files.is_empty() {
            None
        } else {
            let mut source = String::new();
            for f in &start.constitution_files {
                source.push_str(&read_file("constitution file", f)?);
                source.push('\n');
            }
            Some(source)
        },
        service_data: start
            .service_data_json_file
            .as_deref()
            .map(|p| read_json("service data", p))
            .transpose()?,
        // Users and the opening of the service come from governance (set_user,
        // transition_service_to_open), as in CCF.
        ..GenesisConfig::default()
    };
    let core = core_config(
        cfg,
        start.cose_signatures.issuer.clone(),
        start.cose_signatures.subject.clone(),
    )?;
    let mut secret = [0u8; 32];
    coco_crypto::random_bytes(&mut secret).map_err(crypto)?;
    let node_key_pem = identity.node_key.to_pkcs8_pem();
    let mut out = Vec::new();
    let clock_now = Clock::new().now();
    let node = Node::start_genesis(
        core, identity, &genesis, secret, plugins, clock_now, &mut out,
    );
    write_file(
        "service certificate",
        &cfg.command.service_certificate_file,
        service_cert_pem.as_bytes(),
    )?;
    Ok(Prepared {
        ledger_starts_after: 0,
        node,
        genesis_outputs: out,
        node_key_pem,
        node_cert_pem,
        service_cert_pem,
    })
}

/// The latest committed snapshot on this machine (`snapshots.directory`,
/// `snapshots.read_only_directory`): its name and path.
fn local_snapshot(
    cfg: &NodeConfigFile,
) -> Option<(coco_codec::snapshot::SnapshotName, std::path::PathBuf)> {
    [
        Some(&cfg.snapshots.directory),
        cfg.snapshots.read_only_directory.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|dir| {
        let name = snapshots::SnapshotDir { dir: dir.clone() }.latest_committed(0)?;
        Some((name, dir.join(name.file_name())))
    })
    .max_by_key(|(name, _)| name.seqno)
}

/// The dead service's latest committed snapshot on this machine, verified against its
/// certificate (`command.recover.previous_service_identity_file`), for a recovery to start from
/// (as CCF's does); `None` if there is none.
fn recovery_snapshot(
    cfg: &NodeConfigFile,
    previous_identity: &str,
) -> Result<Option<coco_node::snapshot::SealedSnapshot>, StartError> {
    let Some((name, path)) = local_snapshot(cfg) else {
        return Ok(None);
    };
    let file = std::fs::read(&path).map_err(|source| StartError::File {
        what: "snapshot",
        path: path.clone(),
        source,
    })?;
    let snapshot = coco_node::snapshot::open_snapshot(&file, previous_identity)
        .map_err(|e| StartError::Recover(format!("snapshot {}: {e}", path.display())))?;
    tracing::info!(seqno = name.seqno, path = %path.display(), "recovering from a snapshot");
    Ok(Some(snapshot))
}

/// Recovers a dead service from its ledger (CCF `Recover`): a new service identity, the
/// previous service's public state replayed, status `Recovering` until members open it and
/// submit their recovery shares.
fn prepare_recover(
    cfg: &NodeConfigFile,
    plugins: Plugins,
    bound: &Bound,
    host_data: [u8; 32],
    previous_identity: &str,
    snapshot: Option<coco_node::snapshot::SealedSnapshot>,
    ledger: &[bytes::Bytes],
) -> Result<Prepared, StartError> {
    let recover = cfg
        .command
        .recover
        .as_ref()
        .expect("validated by the config parser");
    let starts_after = snapshot.as_ref().map_or(0, |s| s.seqno);
    let (identity, service_cert_pem) = new_service_identity(
        cfg,
        &recover.service_subject_name,
        recover.initial_service_certificate_validity_days,
        host_data,
    )?;
    let node_cert_pem = identity.node_cert_pem.clone();
    let node_key_pem = identity.node_key.to_pkcs8_pem();
    let network = node_info_network(cfg, bound);
    let genesis = GenesisConfig {
        rpc_interfaces: network.rpc_interfaces,
        node_to_node_interface: network.node_to_node_interface,
        ..GenesisConfig::default()
    };
    let core = core_config(
        cfg,
        recover.cose_signatures.issuer.clone(),
        recover.cose_signatures.subject.clone(),
    )?;
    let mut secret = [0u8; 32];
    coco_crypto::random_bytes(&mut secret).map_err(crypto)?;
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let node = Node::start_recovery(
        core,
        identity,
        coco_node::disaster::Recovery {
            snapshot,
            ledger,
            genesis: &genesis,
            ledger_secret: secret,
            previous_service_identity: Some(previous_identity),
        },
        plugins,
        Clock::new().now(),
        &mut out,
    )
    .map_err(StartError::Recover)?;
    tracing::info!(
        snapshot = starts_after,
        entries = ledger.len(),
        replay_ms = started.elapsed().as_millis() as u64,
        "recovering: the previous service's public state is replayed"
    );
    write_file(
        "service certificate",
        &cfg.command.service_certificate_file,
        service_cert_pem.as_bytes(),
    )?;
    Ok(Prepared {
        ledger_starts_after: starts_after + ledger.len() as coco_types::SeqNo,
        node,
        genesis_outputs: out,
        node_key_pem,
        node_cert_pem,
        service_cert_pem,
    })
}

/// Joins an existing service (CCF `Join`): asks the target (or the primary it names) until
/// this node is trusted, then starts as a backup with what the primary sent.
fn prepare_join(
    cfg: &NodeConfigFile,
    plugins: Plugins,
    bound: &Bound,
    host_data: [u8; 32],
    runtime: &tokio::runtime::Runtime,
) -> Result<Prepared, StartError> {
    let target = cfg
        .command
        .join
        .as_ref()
        .expect("validated by the config parser");
    let service_cert_pem = read_cert("service certificate", &cfg.command.service_certificate_file)?;
    let joiner = coco_node::join::Joiner::new(
        EcKeyPair::generate(node_curve(cfg)).map_err(crypto)?,
        &common_name(&cfg.node_certificate.subject_name),
        &node_sans(cfg)?,
        node_validity(cfg, unix_now()),
        RsaKeyPair::generate(2048).map_err(crypto)?,
        host_data,
    )
    .map_err(crypto)?;
    let request = joiner.request(node_info_network(cfg, bound), serde_json::Value::Null);
    let node_key_pem = joiner.node_key.to_pkcs8_pem();
    runtime.block_on(join::wait_for_post_recovery_snapshot(
        target,
        &service_cert_pem,
    ));
    let (info, primary) = runtime.block_on(join::join_service(
        target,
        &service_cert_pem,
        &joiner.self_signed_cert_pem,
        &node_key_pem,
        &request,
    ))?;
    let secrets = info
        .ledger_secrets()
        .map_err(|message| StartError::Join(format!("network info: {message}")))?;
    let identity = joiner
        .into_identity(&info)
        .map_err(|message| StartError::Join(format!("network info: {message}")))?;
    let core = core_config(
        cfg,
        info.cose_signatures_config.issuer.clone(),
        info.cose_signatures_config.subject.clone(),
    )?;
    let node_cert_pem = identity.node_cert_pem.clone();
    let recovered_at = info.last_recovered_signed_idx;
    if recovered_at > 0 && info.service_status != coco_codec::tables::ServiceStatus::Open {
        // A service still recovering has no snapshot to offer: replicate its whole ledger, the
        // dead service's part as history (public only while its secrets are not back).
        tracing::info!(
            recovered_at,
            public_only = info.public_only,
            "joining a recovering service: replicating its ledger from the start"
        );
        let node = Node::join_recovering_service(
            core,
            identity,
            secrets,
            plugins,
            Clock::new().now(),
            recovered_at,
            info.public_only,
        );
        return Ok(Prepared {
            ledger_starts_after: 0,
            node,
            genesis_outputs: Vec::new(),
            node_key_pem,
            node_cert_pem,
            service_cert_pem: info.identity.cert,
        });
    }
    let fetch_started = std::time::Instant::now();
    // Once open, a recovered service's joiner starts from a snapshot taken after the recovery
    // (the service takes one when it opens).
    let seqno_of = |s: &Option<(String, Vec<u8>)>| {
        s.as_ref()
            .and_then(|(name, _)| coco_codec::snapshot::SnapshotName::parse(name))
            .map(|n| n.seqno)
    };
    let wait_until =
        fetch_started + Duration::from_millis(coco_types::limits::JOIN_SNAPSHOT_WAIT_MS);
    let snapshot = loop {
        if !target.fetch_recent_snapshot {
            break None;
        }
        let fetched = runtime
            .block_on(join::fetch_snapshot(
                &service_cert_pem,
                primary,
                target.fetch_snapshot_max_size.0,
            ))
            .map_err(|e| StartError::Join(format!("fetching a snapshot from {primary}: {e}")))?;
        if recovered_at == 0
            || seqno_of(&fetched).is_some_and(|s| s > recovered_at)
            || std::time::Instant::now() >= wait_until
        {
            break fetched;
        }
        tracing::info!(
            recovered_at,
            "waiting for a snapshot taken after the service's recovery"
        );
        std::thread::sleep(Duration::from_millis(target.retry_timeout.0));
    };
    let fetch_ms = fetch_started.elapsed().as_millis() as u64;
    // A committed snapshot already on this machine serves as well, when it is more recent.
    let local = local_snapshot(cfg);
    let fetched_seqno = seqno_of(&snapshot);
    let snapshot = match local {
        Some((name, path)) if fetched_seqno.is_none_or(|s| name.seqno > s) => {
            let file = std::fs::read(&path).map_err(|source| StartError::File {
                what: "snapshot",
                path: path.clone(),
                source,
            })?;
            Some((name.file_name(), file))
        }
        _ => snapshot,
    };
    if recovered_at > 0 && seqno_of(&snapshot).is_none_or(|s| s <= recovered_at) {
        return Err(StartError::Join(format!(
            "the service was recovered after seqno {recovered_at}: a node joins it from a \
             snapshot taken since, and none was available (the service takes one when it opens; \
             see join.fetch_recent_snapshot and snapshots.read_only_directory)"
        )));
    }
    let node = match snapshot {
        Some((name, file)) => {
            let started = std::time::Instant::now();
            let loaded = coco_node::snapshot::load_snapshot(&file, &info.identity.cert, &secrets)
                .map_err(|e| StartError::Join(format!("snapshot {name}: {e}")))?;
            let seqno = loaded.seqno;
            let node = Node::join_from_snapshot(
                core,
                identity,
                secrets,
                plugins,
                Clock::new().now(),
                loaded,
            )
            .map_err(|e| StartError::Join(format!("snapshot {name}: {e}")))?;
            tracing::info!(
                snapshot = %name,
                seqno,
                bytes = file.len(),
                fetch_ms,
                load_ms = started.elapsed().as_millis() as u64,
                "starting from a snapshot"
            );
            node
        }
        None => Node::join(core, identity, secrets, plugins, Clock::new().now()),
    };
    Ok(Prepared {
        ledger_starts_after: node.consensus().commit.seqno,
        node,
        genesis_outputs: Vec::new(),
        node_key_pem,
        node_cert_pem,
        service_cert_pem: info.identity.cert,
    })
}

/// Starts a node from its configuration with the real disk.
pub fn start(cfg: &NodeConfigFile, plugins: Plugins) -> Result<RunningNode, StartError> {
    start_with_disk(cfg, plugins, RealDisk)
}

/// Starts a node with the given disk implementation (tests inject faults through it).
pub fn start_with_disk<D: Disk>(
    cfg: &NodeConfigFile,
    plugins: Plugins,
    disk: D,
) -> Result<RunningNode, StartError> {
    // A recovery opens the dead service's ledger after its latest committed snapshot (if any);
    // other nodes start an empty one.
    let (mut writer, recovered) = match cfg.command.kind {
        CommandKind::Recover => {
            let recover = cfg
                .command
                .recover
                .as_ref()
                .expect("validated by the config parser");
            let previous_identity = read_cert(
                "previous service identity",
                &recover.previous_service_identity_file,
            )?;
            let snapshot = recovery_snapshot(cfg, &previous_identity)?;
            let after = snapshot.as_ref().map_or(0, |s| s.seqno);
            let (writer, entries) =
                LedgerWriter::open_for_recovery(&cfg.ledger.directory, disk, after)?;
            (writer, Some((previous_identity, snapshot, entries)))
        }
        _ => (LedgerWriter::create(&cfg.ledger.directory, disk)?, None),
    };
    std::fs::create_dir_all(&cfg.snapshots.directory).map_err(|source| StartError::File {
        what: "snapshots directory",
        path: cfg.snapshots.directory.clone(),
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("coco-io")
        .build()
        .map_err(|source| StartError::File {
            what: "tokio runtime",
            path: PathBuf::new(),
            source,
        })?;
    let bound = bind_all(cfg)?;
    let host_data = executable_host_data()?;
    let prepared = match cfg.command.kind {
        CommandKind::Start => prepare_start(cfg, plugins, &bound, host_data)?,
        CommandKind::Join => prepare_join(cfg, plugins, &bound, host_data, &runtime)?,
        CommandKind::Recover => {
            let (previous_identity, snapshot, entries) = recovered.expect("opened above");
            let after = snapshot.as_ref().map_or(0, |s| s.seqno);
            // A snapshot is at a signature: with one, the ledger after it may hold none.
            let kept = match coco_node::disaster::through_last_signature(&entries) {
                Some(n) => n,
                None if snapshot.is_some() => 0,
                None => {
                    return Err(StartError::Recover(format!(
                        "the ledger in {} holds no signature transaction: nothing was committed",
                        cfg.ledger.directory.display()
                    )));
                }
            };
            let last = after + kept as coco_types::SeqNo;
            let prepared = prepare_recover(
                cfg,
                plugins,
                &bound,
                host_data,
                &previous_identity,
                snapshot,
                &entries[..kept],
            )?;
            drop(entries);
            // Nothing after the last signature was committed: it goes, and what the recovered
            // service writes goes to `.recovery` files until it opens.
            writer.begin_recovery_after(last)?;
            prepared
        }
    };
    // A node started from a snapshot writes its ledger from the entry after it.
    if cfg.command.kind != CommandKind::Recover {
        writer.start_after(prepared.ledger_starts_after);
    }
    writer.set_read_only_directories(cfg.ledger.read_only_directories.clone());
    if let Some(p) = &cfg.output_files.node_certificate_file {
        write_file("node certificate", p, prepared.node_cert_pem.as_bytes())?;
    }
    if let Some(p) = &cfg.insecure_test_options.ledger_secret_file {
        write_file(
            "ledger secret (insecure test option)",
            p,
            hex::encode(prepared.node.ledger_secret_raw()).as_bytes(),
        )?;
    }
    let node_id = prepared.node.node_id().to_owned();
    let (tls, cert_slot) = tls::server_config(&prepared.node_cert_pem, &prepared.node_key_pem)?;
    let (inbound_tx, mut inbound_rx) =
        tokio::sync::mpsc::channel(coco_types::limits::N2N_QUEUE_MESSAGE_COUNT_MAX);
    let network = match bound.node_to_node {
        Some((listener, addr)) => {
            let network = n2n::Network::new(
                n2n::ChannelIdentity {
                    node_id: node_id.clone(),
                    cert_pem: prepared.node_cert_pem.clone(),
                    key_pkcs8_pem: prepared.node_key_pem.clone(),
                    service_cert_pem: prepared.service_cert_pem.clone(),
                },
                runtime.handle().clone(),
                inbound_tx,
            );
            network.listen(listener)?;
            if let Some(p) = &cfg.output_files.node_to_node_address_file {
                write_file(
                    "node-to-node address file",
                    p,
                    serde_json::to_string_pretty(&serde_json::json!({
                        "node_to_node_interface": addr.to_string()
                    }))
                    .expect("json")
                    .as_bytes(),
                )?;
            }
            Some(network)
        }
        None => None,
    };
    let threads = core_thread::spawn(
        prepared.node,
        prepared.genesis_outputs,
        writer,
        Clock::new(),
        TICK_MS,
        core_thread::Edges {
            cert_slot: Some(cert_slot),
            network,
            snapshot_dir: Some(cfg.snapshots.directory.clone()),
        },
    );
    let handle = threads.handle.clone();
    {
        let core = handle.clone();
        runtime.spawn(async move {
            while let Some((from, message)) = inbound_rx.recv().await {
                if !core.peer(from, message) {
                    return;
                }
            }
        });
    }
    for (name, std_listener, i) in bound.rpc {
        let limits = http::InterfaceLimits {
            body_size_bytes_max: i.http_configuration.max_body_size.0 as usize,
            header_size_bytes_max: i.http_configuration.max_header_size.0 as usize,
            header_count_max: i.http_configuration.max_headers_count,
            sessions_soft_max: i.max_open_sessions_soft,
            sessions_hard_max: i.max_open_sessions_hard,
        };
        let tls = tls.clone();
        let core = handle.clone();
        let snapshots = snapshots::SnapshotDir {
            dir: cfg.snapshots.directory.clone(),
        };
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener)
                .expect("registering a bound listener with tokio");
            http::serve(listener, name, tls, limits, core, Some(snapshots)).await;
        });
    }
    let rpc_addresses = bound.rpc_addresses;
    if let Some(p) = &cfg.output_files.rpc_addresses_file {
        let map: BTreeMap<&String, String> = rpc_addresses
            .iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        write_file(
            "rpc addresses file",
            p,
            serde_json::to_string_pretty(&map).expect("json").as_bytes(),
        )?;
    }
    if let Some(p) = &cfg.output_files.pid_file {
        write_file("pid file", p, std::process::id().to_string().as_bytes())?;
    }
    tracing::info!(node_id = %node_id, addresses = ?rpc_addresses, "node started");
    Ok(RunningNode {
        node_id,
        rpc_addresses,
        service_cert_pem: prepared.service_cert_pem,
        handle,
        threads: Some(threads),
        runtime: Some(runtime),
    })
}

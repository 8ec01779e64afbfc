//! A seeded cluster simulator of the real coco core.
//!
//! Whole clusters of [`coco_node::Node`] run in one thread with a simulated network (delay,
//! reordering, loss, duplication, symmetric and one-way partitions), simulated disks (durability
//! lags appends) and a simulated clock. Faults: crashes of a minority (CCF nodes never restart;
//! a storage failure — a torn or failed ledger write — fail-stops a node the same way), replacement
//! of crashed nodes by new ones that join by `/node/join` and are trusted by governance, and
//! retirement of live nodes by governance. Clients write through any node (backups forward).
//!
//! After every step the checker asserts CCF's safety properties:
//! - at most one primary per view;
//! - committed prefixes never diverge, and a node's commit never goes back (no truncation below
//!   it);
//! - every commit point is a signature transaction;
//! - transaction status moves only as CCF allows (nothing both Committed and Invalid anywhere);
//! - no node appends an entry twice (appends are contiguous; re-appending needs a rollback).
//!
//! After the fault phase the network heals and faults stop; commit must then advance and every
//! live member of the configuration must converge within a bound, and once client traffic stops
//! every request a live node received must be answered within a bound (liveness). Half the runs
//! (even seeds) set a commit latency target: adaptive signatures and admission (held writes).
//!
//! Everything random comes from the seed, so a seed replays the same run (ECDSA signature bytes
//! differ between runs, but no decision depends on them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use coco_app_api::{Method, PeerCert, Request, Response, TxStatus};
use coco_codec::tables;
use coco_crypto::{EcKeyPair, RsaKeyPair, Validity};
use coco_kv::Tx;
use coco_node::join::{JoinResponse, Joiner, NodeInfoNetwork};
use coco_node::proposals::{
    Constitution, ConstitutionLoader, NetworkIdentity, NodeHook, ProposalState, Validation,
};
use coco_node::{
    CoreConfig, GenesisConfig, Input, MemberSpec, Node, NodeIdentity, Now, Output, PeerMessage,
    Session, UserSpec, snapshot::SnapshotAction,
};
use coco_types::{SeqNo, TxId, limits};

mod keys;
pub mod scenario;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Nodes at the start (3 or 5 are the interesting sizes).
    pub nodes: usize,
    /// Simulated milliseconds of the fault phase.
    pub steps: u64,
    /// Print every event.
    pub verbose: bool,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub commit: TxId,
    pub writes_acknowledged: usize,
    pub writes_committed: usize,
    pub views: usize,
    pub crashes: usize,
    pub joins: usize,
    pub retirements: usize,
    /// Snapshots committed (each verified and loaded).
    pub snapshots: usize,
    pub messages: u64,
}

const ELECTION_TIMEOUT_MS: u64 = 100;
const MESSAGE_TIMEOUT_MS: u64 = 10;
const TICK_MS: u64 = 5;
/// After faults stop, commit must advance and nodes converge within this many milliseconds.
const LIVENESS_BOUND_MS: u64 = 40 * ELECTION_TIMEOUT_MS;
/// How long a live node may take to answer a request once the cluster is healthy: a forwarded
/// request times out on the backup, a held write on the primary.
const REQUEST_ANSWER_BOUND_MS: u64 =
    limits::FORWARDING_TIMEOUT_MS_DEFAULT + limits::ADMISSION_HOLD_MS_MAX;
/// Node keys available to a run: the initial nodes and the ones that join later.
const NODE_POOL: usize = keys::NODES.len();
const VALIDITY: Validity = Validity {
    not_before_unix_s: 0,
    not_after_unix_s: 4_000_000_000,
};
const V: &str = "api-version=2024-07-01";
const INTERFACE: &str = "primary_rpc_interface";

/// Keys made once per process (RSA key generation is slow) and shared by every run.
struct Pool {
    service_key: String,
    service_cert: String,
    member_key: String,
    member_cert: String,
    user_cert: String,
    nodes: Vec<(String, String)>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let key = |pem: &str| EcKeyPair::from_pkcs8_pem(pem).expect("a fixed test key");
        Pool {
            service_cert: coco_crypto::self_signed_ca_cert(
                &key(keys::SERVICE),
                "CCF Service",
                VALIDITY,
            )
            .expect("certificate"),
            service_key: keys::SERVICE.to_owned(),
            member_cert: coco_crypto::self_signed_cert(&key(keys::MEMBER), "member0", VALIDITY)
                .expect("certificate"),
            member_key: keys::MEMBER.to_owned(),
            user_cert: coco_crypto::self_signed_cert(&key(keys::USER), "user0", VALIDITY)
                .expect("certificate"),
            // RSA keys only encrypt ledger secrets for nodes; no decision depends on them.
            nodes: keys::NODES
                .iter()
                .map(|ec| {
                    (
                        (*ec).to_owned(),
                        RsaKeyPair::generate(2048)
                            .expect("key generation")
                            .to_pkcs8_pem(),
                    )
                })
                .collect(),
        }
    })
}

/// splitmix64: small, fast, and enough for choosing faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `per_mille`/1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len() as u64) as usize])
    }
}

/// A constitution in Rust: any proposal is accepted at once; `transition_node_to_trusted` and
/// `remove_node` act as the default constitution's do.
struct SimConstitution;

impl Constitution for SimConstitution {
    fn validate(&self, _tx: &mut Tx, _proposal: &str) -> Result<Validation, String> {
        Ok(Validation {
            valid: true,
            description: String::new(),
        })
    }
    fn ballot(&self, _: &mut Tx, _: &str, _: &str, _: &str) -> Result<bool, String> {
        Ok(true)
    }
    fn resolve(
        &self,
        _: &mut Tx,
        _: &str,
        _: &str,
        _: &[(String, bool)],
        _: &str,
    ) -> Result<ProposalState, String> {
        Ok(ProposalState::Accepted)
    }
    fn apply(
        &self,
        tx: &mut Tx,
        proposal: &str,
        _id: &str,
        network: &NetworkIdentity,
    ) -> Result<Vec<NodeHook>, String> {
        let p: serde_json::Value = serde_json::from_str(proposal).map_err(|e| e.to_string())?;
        for action in p["actions"].as_array().ok_or("no actions")? {
            let id = action["args"]["node_id"].as_str().ok_or("no node_id")?;
            let raw = tx
                .get(tables::NODES_INFO, id.as_bytes())
                .ok_or(format!("no node {id}"))?;
            let mut info: tables::NodeInfo =
                tables::from_ccf_json(&raw).map_err(|e| e.to_string())?;
            match action["name"].as_str() {
                Some("transition_node_to_trusted")
                    if info.status == tables::NodeStatus::Pending =>
                {
                    info.status = tables::NodeStatus::Trusted;
                    info.ledger_secret_seqno = Some(network.latest_ledger_secret_seqno);
                    let csr = info.certificate_signing_request.clone().ok_or("no CSR")?;
                    let cert = coco_crypto::endorse_csr(
                        &csr,
                        &network.service_key,
                        &network.service_cert_pem,
                        VALIDITY,
                    )
                    .map_err(|e| e.to_string())?;
                    tx.put(
                        tables::NODES_ENDORSED_CERTIFICATES,
                        Bytes::from(id.to_owned()),
                        Bytes::from(cert),
                    );
                }
                Some("remove_node") => info.status = tables::NodeStatus::Retired,
                _ => continue,
            }
            tx.put(
                tables::NODES_INFO,
                Bytes::from(id.to_owned()),
                Bytes::from(tables::to_ccf_json(&info).map_err(|e| e.to_string())?),
            );
        }
        Ok(Vec::new())
    }
}

struct SimLoader;

impl ConstitutionLoader for SimLoader {
    fn load(&self, _: &str, _: Option<&str>) -> Result<Box<dyn Constitution + Send>, String> {
        Ok(Box::new(SimConstitution))
    }
}

/// The configuration of a node of run `run_seed` whose own randomness comes from `seed`.
fn config(run_seed: u64, seed: u64) -> CoreConfig {
    CoreConfig {
        signature_tx_interval_count: 5,
        signature_interval_ms: 20,
        // Half the runs sign adaptively and hold writes while commits lag (admission).
        commit_latency_target_ms: run_seed.is_multiple_of(2).then_some(10),
        // Snapshots every few signatures, so runs exercise capture, evidence, rollback of
        // pending snapshots and their commit.
        snapshot_tx_interval_count: 40,
        consensus: coco_consensus::Config {
            message_timeout_ms: MESSAGE_TIMEOUT_MS,
            election_timeout_ms: ELECTION_TIMEOUT_MS,
            append_entries_batch_max: 16,
        },
        seed,
        entropy: {
            let mut e = [0u8; 32];
            e[..8].copy_from_slice(&seed.to_le_bytes());
            e
        },
        ..CoreConfig::default()
    }
}

fn plugins() -> coco_node::Plugins {
    coco_node::Plugins {
        app: coco_app_logging::registry(),
        constitution: Some(Box::new(SimLoader)),
    }
}

fn peer_cert(pem: &str) -> PeerCert {
    let der = coco_crypto::pem_to_der_certs(pem).expect("pem").remove(0);
    PeerCert {
        fingerprint_hex: coco_crypto::cert_der_fingerprint_hex(&der),
        der: Bytes::from(der),
    }
}

fn request(
    method: Method,
    path: &str,
    body: Vec<u8>,
    cert: Option<PeerCert>,
    cose: bool,
) -> Request {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers: vec![(
            "content-type".into(),
            if cose {
                "application/cose"
            } else {
                "application/json"
            }
            .into(),
        )],
        body: Bytes::from(body),
        peer_cert: cert,
    }
}

fn n2n_address(k: usize) -> String {
    format!("10.0.0.{k}:1")
}

/// One simulated node: the core, its ledger as the host would write it, and its disk.
struct SimNode {
    node: Node,
    /// Entries appended, in order (index i holds seqno i + 1).
    ledger: Vec<Bytes>,
    is_signature: Vec<bool>,
    /// Entries the simulated disk has made durable.
    durable: SeqNo,
    commit: SeqNo,
    crashed: bool,
    /// Its storage failed: it keeps running but takes no part in consensus.
    fail_stopped: bool,
    /// Snapshot entries serialised, by seqno, waiting for their receipt.
    snapshots: BTreeMap<SeqNo, Vec<u8>>,
    /// Node statuses (`nodes.info`) as of each appended entry that changed them, read from the
    /// ledger's public domains: the configuration that governs committing an entry is the
    /// latest one at or before it, whatever was appended after.
    statuses: Vec<(SeqNo, BTreeMap<String, tables::NodeStatus>)>,
}

impl SimNode {
    fn new(node: Node) -> SimNode {
        SimNode {
            node,
            ledger: Vec::new(),
            is_signature: Vec::new(),
            durable: 0,
            commit: 0,
            crashed: false,
            fail_stopped: false,
            snapshots: BTreeMap::new(),
            statuses: Vec::new(),
        }
    }

    /// Records the `nodes.info` changes of the entry appended at `seqno`.
    fn record_statuses(&mut self, seqno: SeqNo, entry: &[u8]) -> Result<(), String> {
        let view = coco_codec::entry::parse_entry(entry)
            .map_err(|e| format!("entry {seqno} does not parse: {e}"))?;
        let public = coco_codec::domain::parse_public_domain(view.public)
            .map_err(|e| format!("entry {seqno}'s public domain does not parse: {e}"))?;
        let Some(changes) = public.maps.get(tables::NODES_INFO) else {
            return Ok(());
        };
        let mut statuses = self.statuses_at(seqno);
        for (k, v) in changes.puts() {
            let info = tables::from_ccf_json::<tables::NodeInfo>(v)
                .map_err(|e| format!("entry {seqno} writes a bad node info: {e}"))?;
            statuses.insert(String::from_utf8_lossy(k).into_owned(), info.status);
        }
        for k in changes.removes() {
            statuses.remove(String::from_utf8_lossy(k).as_ref());
        }
        self.statuses.push((seqno, statuses));
        Ok(())
    }

    /// Node statuses as of `seqno`.
    fn statuses_at(&self, seqno: SeqNo) -> BTreeMap<String, tables::NodeStatus> {
        self.statuses
            .iter()
            .rev()
            .find(|(s, _)| *s <= seqno)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Unavailable to the service: crashed or fail-stopped.
    fn down(&self) -> bool {
        self.crashed || self.fail_stopped
    }
}

/// What a client request is for.
#[derive(Clone, Debug)]
enum Purpose {
    Write {
        id: u64,
    },
    Ack,
    Update,
    /// A proposal; `retiring` names the node it removes.
    Proposal {
        retiring: Option<String>,
    },
    Join {
        pool: usize,
    },
}

/// A node waiting to join: it polls `/node/join` until trusted.
struct Joining {
    pool: usize,
    joiner: Option<Joiner>,
    node_id: String,
    last_poll_ms: u64,
    last_proposal_ms: Option<u64>,
    propose_trust: bool,
    in_flight: bool,
}

struct Message {
    deliver_at: u64,
    from: String,
    to: String,
    message: PeerMessage,
}

struct Sim {
    opts: Options,
    rng: Rng,
    now_ms: u64,
    nodes: BTreeMap<String, SimNode>,
    /// Node ids by pool index (for addresses and keys).
    pool_ids: BTreeMap<usize, String>,
    next_pool: usize,
    network: Vec<Message>,
    /// What the simulated host reports to a node after the step that asked for it, as the
    /// real host's threads do (snapshot digests, ledger entries read back): never within it.
    host_replies: Vec<(String, Input)>,
    /// Directed links that drop everything.
    blocked: BTreeSet<(String, String)>,
    faults: bool,
    /// Random client traffic and member activation (off in scripted scenarios).
    autopilot: bool,
    /// Requests in flight: (node, request id) → purpose and when it was sent.
    requests: BTreeMap<(String, u64), (Purpose, u64)>,
    next_request: u64,
    next_write: u64,
    created_at: i64,
    member_active: bool,
    member_key: EcKeyPair,
    member_id: String,
    state_digest: Option<String>,
    user: PeerCert,
    acked: Vec<(u64, TxId)>,
    /// Status of the last client write answered (scripted scenarios).
    last_response_status: Option<u16>,
    joining: Option<Joining>,
    /// Node ids retired by governance (never picked again for faults or requests).
    retiring: BTreeSet<String>,
    // Checker state.
    leaders: BTreeMap<u64, String>,
    committed: Vec<Bytes>,
    ever_committed: BTreeSet<TxId>,
    ever_invalid: BTreeSet<TxId>,
    report: Report,
}

fn now(ms: u64) -> Now {
    Now {
        monotonic_ms: ms,
        unix_seconds: 1_700_000_000 + (ms / 1000) as i64,
    }
}

/// Runs one simulation; `Err` describes the first violated property.
pub fn run(opts: &Options) -> Result<Report, String> {
    assert!(
        opts.nodes >= 1 && opts.nodes <= NODE_POOL / 2,
        "1..={} nodes",
        NODE_POOL / 2
    );
    let mut sim = Sim::new(opts.clone());
    sim.phase(opts.steps, true)?;
    sim.heal_and_check_liveness()?;
    sim.drain_requests()?;
    sim.final_checks()?;
    sim.report.commit = sim.max_commit_txid();
    Ok(sim.report)
}

impl Sim {
    fn new(opts: Options) -> Sim {
        let pool = pool();
        let service_key = Arc::new(EcKeyPair::from_pkcs8_pem(&pool.service_key).expect("pool key"));
        let identity = |k: usize| {
            NodeIdentity::new(
                EcKeyPair::from_pkcs8_pem(&pool.nodes[k].0).expect("pool key"),
                "CCF Node",
                &[],
                VALIDITY,
                service_key.clone(),
                pool.service_cert.clone(),
                RsaKeyPair::from_pkcs8_pem(&pool.nodes[k].1).expect("pool key"),
            )
            .expect("identity")
        };
        let identities: Vec<NodeIdentity> = (0..opts.nodes).map(identity).collect();
        let genesis = GenesisConfig {
            members: vec![MemberSpec {
                cert_pem: pool.member_cert.clone(),
                encryption_public_key_pem: None,
                member_data: None,
                recovery_role: None,
            }],
            users: vec![UserSpec {
                cert_pem: pool.user_cert.clone(),
                user_data: None,
            }],
            open_service_without_governance: true,
            recovery_threshold: 1,
            maximum_node_certificate_validity_days: 365,
            node_to_node_interface: tables::NetInterface {
                bind_address: n2n_address(0),
                ..Default::default()
            },
            constitution: Some("// simulated".into()),
            other_trusted_nodes: identities[1..]
                .iter()
                .enumerate()
                .map(|(k, b)| {
                    let info = b.trusted_node_info(
                        tables::NetInterface {
                            bind_address: n2n_address(k + 1),
                            ..Default::default()
                        },
                        Default::default(),
                    );
                    (b.node_id.clone(), info, b.node_cert_pem.clone())
                })
                .collect(),
            ..Default::default()
        };
        let member_key = EcKeyPair::from_pkcs8_pem(&pool.member_key).expect("pool key");
        let mut sim = Sim {
            rng: Rng(opts.seed),
            now_ms: 0,
            nodes: BTreeMap::new(),
            pool_ids: BTreeMap::new(),
            next_pool: opts.nodes,
            host_replies: Vec::new(),
            network: Vec::new(),
            blocked: BTreeSet::new(),
            faults: true,
            autopilot: true,
            requests: BTreeMap::new(),
            next_request: 0,
            next_write: 0,
            created_at: 1,
            member_active: false,
            member_id: peer_cert(&pool.member_cert).fingerprint_hex,
            member_key,
            state_digest: None,
            user: peer_cert(&pool.user_cert),
            acked: Vec::new(),
            last_response_status: None,
            joining: None,
            retiring: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: Vec::new(),
            ever_committed: BTreeSet::new(),
            ever_invalid: BTreeSet::new(),
            report: Report::default(),
            opts,
        };
        let secret = [7u8; 32];
        let mut genesis_out = Vec::new();
        for (k, identity) in identities.into_iter().enumerate() {
            let id = identity.node_id.clone();
            sim.pool_ids.insert(k, id.clone());
            let cfg = config(sim.opts.seed, sim.opts.seed.wrapping_add(k as u64));
            let node = if k == 0 {
                Node::start_genesis(
                    cfg,
                    identity,
                    &genesis,
                    secret,
                    plugins(),
                    now(0),
                    &mut genesis_out,
                )
            } else {
                Node::join(cfg, identity, secret, plugins(), now(0))
            };
            sim.nodes.insert(id, SimNode::new(node));
        }
        let first = sim.pool_ids[&0].clone();
        sim.route(&first, genesis_out)
            .expect("genesis outputs are well-formed");
        sim
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.opts.verbose {
            eprintln!("[{:>6} ms] {}", self.now_ms, what());
        }
    }

    fn short(id: &str) -> &str {
        &id[..8]
    }

    /// Live nodes that are not being retired.
    fn live(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(id, n)| !n.down() && !self.retiring.contains(*id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The members of the latest configuration: Trusted in the most advanced node's `nodes.info`.
    fn trusted(&self) -> BTreeSet<String> {
        let newest = self
            .nodes
            .values()
            .filter(|n| !n.down())
            .max_by_key(|n| n.node.consensus().last_seqno);
        newest
            .map(|n| {
                n.node
                    .node_statuses()
                    .into_iter()
                    .filter(|(_, s)| *s == tables::NodeStatus::Trusted)
                    .map(|(id, _)| id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every configuration still active on some live node. (A node that has not yet heard that
    /// a reconfiguration committed still needs a quorum of the older configuration to elect a
    /// primary, so crashes must leave that one a quorum too.)
    fn active_configurations(&self) -> Vec<coco_consensus::Configuration> {
        let mut configurations: Vec<coco_consensus::Configuration> = Vec::new();
        for n in self.nodes.values().filter(|n| !n.down()) {
            for c in n.node.active_configurations() {
                if !configurations.contains(&c) {
                    configurations.push(c);
                }
            }
        }
        configurations
    }

    fn step_node(&mut self, id: &str, input: Input) -> Result<(), String> {
        let now = now(self.now_ms);
        let Some(n) = self.nodes.get_mut(id) else {
            return Ok(());
        };
        if n.crashed {
            return Ok(());
        }
        let mut out = Vec::new();
        n.node.step(now, input, &mut out);
        self.route(id, out)?;
        for (node, input) in std::mem::take(&mut self.host_replies) {
            self.step_node(&node, input)?;
        }
        Ok(())
    }

    fn route(&mut self, from: &str, out: Vec<Output>) -> Result<(), String> {
        for o in out {
            match o {
                Output::Snapshot(SnapshotAction::Serialise(job)) => {
                    let digest = coco_crypto::sha256(&job.serialise());
                    let n = self.nodes.get_mut(from).expect("routing a known node");
                    n.snapshots.insert(job.seqno, job.serialise());
                    // The host serialises off the core thread: the digest arrives as a later
                    // input, after everything this step produced.
                    self.host_replies.push((
                        from.to_owned(),
                        Input::SnapshotSerialised {
                            seqno: job.seqno,
                            digest,
                        },
                    ));
                }
                Output::Snapshot(SnapshotAction::Write { .. }) => {}
                Output::Snapshot(SnapshotAction::Commit {
                    seqno,
                    evidence_seqno,
                    receipt,
                }) => {
                    // A committed snapshot must verify against the service certificate and
                    // load with the ledger secret, and be of a committed signature.
                    let n = self.nodes.get_mut(from).expect("routing a known node");
                    let mut file = n.snapshots.remove(&seqno).ok_or_else(|| {
                        format!("{} committed a snapshot it never wrote", Self::short(from))
                    })?;
                    file.extend_from_slice(&receipt);
                    let loaded = coco_node::snapshot::load_snapshot(
                        &file,
                        &pool().service_cert,
                        n.node.ledger_secrets(),
                    )
                    .map_err(|e| format!("{}'s snapshot at {seqno}: {e}", Self::short(from)))?;
                    if loaded.seqno != seqno
                        || evidence_seqno <= seqno
                        || !n
                            .is_signature
                            .get(seqno as usize - 1)
                            .copied()
                            .unwrap_or(false)
                        || n.commit < evidence_seqno
                    {
                        return Err(format!(
                            "{} committed snapshot {seqno} (evidence {evidence_seqno}) at commit {}",
                            Self::short(from),
                            n.commit
                        ));
                    }
                    self.report.snapshots += 1;
                }
                Output::Respond { id, response } => {
                    if let Some((purpose, _)) = self.requests.remove(&(from.to_owned(), id)) {
                        self.on_response(from, purpose, response)?;
                    }
                }
                Output::Append {
                    txid,
                    bytes,
                    is_signature,
                    ..
                } => {
                    let n = self.nodes.get_mut(from).expect("routing a known node");
                    if txid.seqno != n.ledger.len() as SeqNo + 1 {
                        return Err(format!(
                            "{} appended {txid} after {} entries: an entry applied twice or skipped",
                            Self::short(from),
                            n.ledger.len()
                        ));
                    }
                    n.record_statuses(txid.seqno, &bytes)?;
                    n.ledger.push(bytes);
                    n.is_signature.push(is_signature);
                }
                Output::Truncate { seqno } => {
                    let n = self.nodes.get_mut(from).expect("routing a known node");
                    if seqno < n.commit {
                        return Err(format!(
                            "{} truncated to {seqno} below its commit {}",
                            Self::short(from),
                            n.commit
                        ));
                    }
                    n.ledger.truncate(seqno as usize);
                    n.is_signature.truncate(seqno as usize);
                    n.statuses.retain(|(s, _)| *s <= seqno);
                    n.durable = n.durable.min(seqno);
                }
                Output::GlobalCommit { txid } => {
                    let n = self.nodes.get_mut(from).expect("routing a known node");
                    if txid.seqno < n.commit {
                        return Err(format!("{} commit went back to {txid}", Self::short(from)));
                    }
                    if !n
                        .is_signature
                        .get(txid.seqno as usize - 1)
                        .copied()
                        .unwrap_or(false)
                    {
                        return Err(format!(
                            "{} committed {txid}, which is not a signature transaction",
                            Self::short(from)
                        ));
                    }
                    let leader = n.node.consensus().primary_id.as_deref() == Some(from);
                    let statuses = n.statuses_at(txid.seqno);
                    n.commit = txid.seqno;
                    // The commit rule: a primary commits only what a majority of its
                    // configuration holds durably (crashed nodes keep what they synced).
                    if leader {
                        let config: Vec<&String> = statuses
                            .iter()
                            .filter(|(_, s)| **s == tables::NodeStatus::Trusted)
                            .map(|(id, _)| id)
                            .collect();
                        let entry = &self.nodes[from].ledger[txid.seqno as usize - 1];
                        let durable = config
                            .iter()
                            .filter(|id| {
                                self.nodes.get(**id).is_some_and(|m| {
                                    m.durable >= txid.seqno
                                        && m.ledger.get(txid.seqno as usize - 1) == Some(entry)
                                })
                            })
                            .count();
                        if durable * 2 <= config.len() {
                            return Err(format!(
                                "primary {} committed {txid}, durable on only {durable} of {} nodes",
                                Self::short(from),
                                config.len()
                            ));
                        }
                    }
                }
                Output::FetchEntries {
                    peer,
                    from_idx,
                    to_idx,
                } => {
                    let n = &self.nodes[from];
                    if to_idx as usize > n.ledger.len() || from_idx == 0 {
                        return Err(format!(
                            "{} asked for entries {from_idx}..={to_idx} it does not have",
                            Self::short(from)
                        ));
                    }
                    let entries = n.ledger[from_idx as usize - 1..to_idx as usize].to_vec();
                    self.log(|| {
                        format!(
                            "{} reads {from_idx}..={to_idx} from its ledger for {}",
                            Self::short(from),
                            Self::short(&peer)
                        )
                    });
                    self.host_replies.push((
                        from.to_owned(),
                        Input::Fetched {
                            peer,
                            from_idx,
                            entries,
                        },
                    ));
                }
                Output::ReadLedger { from_idx, to_idx } => {
                    let n = &self.nodes[from];
                    let entries = n
                        .ledger
                        .get(from_idx as usize - 1..to_idx as usize)
                        .map(<[Bytes]>::to_vec)
                        .unwrap_or_default();
                    self.host_replies
                        .push((from.to_owned(), Input::LedgerRead { from_idx, entries }));
                }
                Output::Peer { to, message, .. } => {
                    self.report.messages += 1;
                    self.send(from, to, message);
                }
                Output::NodeCertificate { .. }
                | Output::ServiceCertificate { .. }
                | Output::RecoveryComplete => {}
            }
        }
        Ok(())
    }

    /// Puts a message on the simulated network, subject to the current faults.
    fn send(&mut self, from: &str, to: String, message: PeerMessage) {
        if self.blocked.contains(&(from.to_owned(), to.clone())) {
            return;
        }
        let (drop, dup, max_delay) = if self.faults { (20, 20, 30) } else { (0, 0, 3) };
        if self.rng.chance(drop) {
            return;
        }
        let copies = if self.rng.chance(dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = 1 + self.rng.below(max_delay);
            self.network.push(Message {
                deliver_at: self.now_ms + delay,
                from: from.to_owned(),
                to: to.clone(),
                message: message.clone(),
            });
        }
    }

    fn submit(&mut self, node: &str, purpose: Purpose, req: Request) -> Result<(), String> {
        let id = self.next_request;
        self.next_request += 1;
        self.requests
            .insert((node.to_owned(), id), (purpose, self.now_ms));
        self.step_node(
            node,
            Input::Request {
                id,
                request: req,
                session: Session {
                    id,
                    interface: INTERFACE.into(),
                },
            },
        )
    }

    fn on_response(&mut self, node: &str, purpose: Purpose, r: Response) -> Result<(), String> {
        let ok = r.status.is_success();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let txid = r
            .headers
            .iter()
            .find(|(h, _)| h == coco_app_api::TX_ID_HEADER)
            .and_then(|(_, v)| v.parse::<TxId>().ok());
        match purpose {
            Purpose::Write { id } => {
                self.last_response_status = Some(r.status.as_u16());
                if ok && let Some(txid) = txid {
                    self.acked.push((id, txid));
                    self.report.writes_acknowledged += 1;
                }
            }
            Purpose::Update => {
                if ok {
                    self.state_digest = body["stateDigest"].as_str().map(str::to_owned);
                }
            }
            Purpose::Ack => {
                if ok {
                    self.member_active = true;
                }
            }
            Purpose::Proposal { retiring } => {
                self.log(|| format!("proposal via {}: {} {body}", Self::short(node), r.status));
                if r.status == coco_app_api::StatusCode::SERVICE_UNAVAILABLE
                    && let Some(id) = retiring
                {
                    // Refused before it executed (no primary, or backpressure): the node is
                    // not being retired after all, and may be picked again.
                    self.retiring.remove(&id);
                }
                if r.status == coco_app_api::StatusCode::UNAUTHORIZED && self.member_active {
                    // The member's activation was rolled back with an uncommitted suffix:
                    // activate again (and propose again once a joiner asks).
                    self.member_active = false;
                    self.state_digest = None;
                    if let Some(j) = self.joining.as_mut() {
                        j.last_proposal_ms = None;
                    }
                }
            }
            Purpose::Join { pool } => {
                let Some(j) = self.joining.as_mut() else {
                    return Ok(());
                };
                j.in_flight = false;
                if !ok || j.pool != pool {
                    return Ok(());
                }
                let answer: JoinResponse =
                    serde_json::from_slice(&r.body).map_err(|e| format!("join answer: {e}"))?;
                if let Some(info) = answer.network_info {
                    let j = self.joining.take().expect("checked");
                    let secret = info.latest_ledger_secret()?;
                    let identity = j.joiner.expect("not yet joined").into_identity(&info)?;
                    let id = identity.node_id.clone();
                    self.log(|| format!("{} joined", Self::short(&id)));
                    let cfg = config(self.opts.seed, self.opts.seed.wrapping_add(pool as u64));
                    let node = Node::join(cfg, identity, secret, plugins(), now(self.now_ms));
                    self.nodes.insert(id, SimNode::new(node));
                    self.report.joins += 1;
                } else if j
                    .last_proposal_ms
                    .is_none_or(|t| self.now_ms >= t + 10 * ELECTION_TIMEOUT_MS)
                {
                    // Proposed on the next step: outputs still being routed come first.
                    j.last_proposal_ms = Some(self.now_ms);
                    j.propose_trust = true;
                }
            }
        }
        Ok(())
    }

    fn signed(&mut self, path: &str, msg_type: &str, payload: &str) -> Request {
        self.created_at += 1;
        let body = coco_node::gov::sign_request(
            &self.member_key,
            &self.member_id,
            msg_type,
            self.created_at,
            None,
            payload.as_bytes(),
        );
        request(Method::POST, path, body, None, true)
    }

    /// Proposes `proposal` through a live node (the simulated constitution accepts it at once);
    /// `retiring` names the node it removes.
    fn propose(&mut self, proposal: String, retiring: Option<String>) -> Result<(), String> {
        let live = self.live();
        let Some(node) = self.rng.pick(&live).cloned() else {
            if let Some(id) = retiring {
                self.retiring.remove(&id);
            }
            return Ok(());
        };
        let req = self.signed(
            &format!("/gov/members/proposals:create?{V}"),
            "proposal",
            &proposal,
        );
        self.log(|| format!("propose {proposal} via {}", Self::short(&node)));
        self.submit(&node, Purpose::Proposal { retiring }, req)
    }

    /// One simulated millisecond.
    fn tick(&mut self, fault_phase: bool) -> Result<(), String> {
        self.now_ms += 1;
        // Deliver what is due (in send order among equals: a stable sort keeps it).
        let now_ms = self.now_ms;
        let mut due = Vec::new();
        let mut later = Vec::new();
        for m in std::mem::take(&mut self.network) {
            if m.deliver_at <= now_ms {
                due.push(m);
            } else {
                later.push(m);
            }
        }
        self.network = later;
        for m in due {
            if self.blocked.contains(&(m.from.clone(), m.to.clone())) {
                continue;
            }
            self.step_node(
                &m.to,
                Input::Peer {
                    from: m.from,
                    message: m.message,
                },
            )?;
        }
        // Disks: durability catches up with appends at random moments.
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in &ids {
            let catch_up = self.rng.chance(300);
            let n = &self.nodes[id];
            if catch_up && !n.down() && (n.durable as usize) < n.ledger.len() {
                let seqno = n.ledger.len() as SeqNo;
                self.nodes.get_mut(id).expect("listed").durable = seqno;
                self.step_node(id, Input::Persisted { seqno })?;
            }
        }
        if self.now_ms.is_multiple_of(TICK_MS) {
            for id in &ids {
                self.step_node(id, Input::Tick)?;
            }
        }
        self.clients()?;
        if fault_phase {
            self.inject_faults()?;
        }
        self.check()
    }

    /// Clients: member activation, writes through random nodes, join polling.
    fn clients(&mut self) -> Result<(), String> {
        if !self.autopilot {
            return Ok(());
        }
        let live = self.live();
        if !self.member_active
            && self.now_ms.is_multiple_of(50)
            && let Some(node) = self.rng.pick(&live).cloned()
        {
            let member = self.member_id.clone();
            let req = match self.state_digest.clone() {
                None => (
                    Purpose::Update,
                    self.signed(
                        &format!("/gov/members/state-digests/{member}:update?{V}"),
                        "state_digest",
                        "{}",
                    ),
                ),
                Some(d) => (
                    Purpose::Ack,
                    self.signed(
                        &format!("/gov/members/state-digests/{member}:ack?{V}"),
                        "ack",
                        &serde_json::json!({ "stateDigest": d }).to_string(),
                    ),
                ),
            };
            self.submit(&node, req.0, req.1)?;
        }
        if self.rng.chance(250)
            && let Some(node) = self.rng.pick(&live).cloned()
        {
            let id = self.next_write;
            self.next_write += 1;
            self.write(&node, id, &format!("m{id}"))?;
        }
        if self.member_active
            && let Some(j) = self.joining.as_mut()
            && std::mem::take(&mut j.propose_trust)
        {
            let node_id = j.node_id.clone();
            self.propose(json_action("transition_node_to_trusted", &node_id), None)?;
        }
        let poll = self
            .joining
            .as_ref()
            .is_some_and(|j| !j.in_flight && self.now_ms >= j.last_poll_ms + 20);
        if poll && let Some(node) = self.rng.pick(&live).cloned() {
            let j = self.joining.as_mut().expect("checked");
            j.in_flight = true;
            j.last_poll_ms = self.now_ms;
            let joiner = j.joiner.as_ref().expect("not yet joined");
            let pool = j.pool;
            let body = joiner.request(
                NodeInfoNetwork {
                    node_to_node_interface: tables::NetInterface {
                        bind_address: n2n_address(pool),
                        ..Default::default()
                    },
                    rpc_interfaces: Default::default(),
                },
                serde_json::Value::Null,
            );
            let req = request(
                Method::POST,
                "/node/join",
                serde_json::to_vec(&body).expect("json"),
                Some(peer_cert(&joiner.self_signed_cert_pem)),
                false,
            );
            self.submit(&node, Purpose::Join { pool }, req)?;
        }
        // A poll whose answer was lost (its node crashed, or the forward timed out) is retried.
        if let Some(j) = self.joining.as_mut()
            && j.in_flight
            && self.now_ms >= j.last_poll_ms + 50 * ELECTION_TIMEOUT_MS
        {
            j.in_flight = false;
        }
        Ok(())
    }

    /// Crashes, partitions and membership changes, each kept within what the service tolerates:
    /// crashed nodes stay a minority of the configuration, which keeps at least three members.
    fn inject_faults(&mut self) -> Result<(), String> {
        // Partitions come and go.
        if self.rng.chance(3) {
            let live = self.live();
            if let (Some(a), Some(b)) =
                (self.rng.pick(&live).cloned(), self.rng.pick(&live).cloned())
                && a != b
            {
                let both = self.rng.chance(500);
                self.log(|| {
                    format!(
                        "partition {} -> {}{}",
                        Self::short(&a),
                        Self::short(&b),
                        if both { " (both ways)" } else { "" }
                    )
                });
                self.blocked.insert((a.clone(), b.clone()));
                if both {
                    self.blocked.insert((b, a));
                }
            }
        }
        if self.rng.chance(4) && !self.blocked.is_empty() {
            self.log(|| "partitions heal".into());
            self.blocked.clear();
        }
        let trusted = self.trusted();
        let crashed_in_config = trusted
            .iter()
            .filter(|id| self.nodes.get(*id).is_some_and(SimNode::down))
            .count();
        // No membership change in flight: no join pending, and no retirement proposed but not
        // yet in the configuration (a retirement and a join racing could leave the new
        // configuration without a quorum of live nodes).
        let quiet = self.joining.is_none() && !trusted.iter().any(|id| self.retiring.contains(id));
        // Crash a node while the crashed (and the not yet caught up) stay a minority of every
        // configuration still active on any live node: joint consensus needs a quorum in each.
        let tolerates_one_more = self.active_configurations().iter().all(|c| {
            let unavailable = c
                .iter()
                .filter(|id| {
                    self.nodes
                        .get(*id)
                        .is_none_or(|n| n.down() || n.commit == 0)
                })
                .count();
            (unavailable + 1) * 2 < c.len()
        });
        if quiet
            && self.rng.chance(1)
            && tolerates_one_more
            && (crashed_in_config + 1) * 2 < trusted.len()
        {
            let candidates: Vec<String> = trusted
                .iter()
                .filter(|id| self.nodes.get(*id).is_some_and(|n| !n.down()))
                .cloned()
                .collect();
            if let Some(victim) = self.rng.pick(&candidates).cloned() {
                let torn = self.rng.chance(500);
                self.log(|| {
                    format!(
                        "crash {}{}",
                        Self::short(&victim),
                        if torn {
                            " (torn ledger write: storage fails, the node fail-stops)"
                        } else {
                            ""
                        }
                    )
                });
                if torn {
                    // The real path: the host reports the failure and the node stops taking
                    // part in consensus (it keeps running and answering reads).
                    self.step_node(
                        &victim,
                        Input::StorageFailed {
                            reason: "simulated torn write".into(),
                        },
                    )?;
                    let n = self.nodes.get_mut(&victim).expect("listed");
                    n.fail_stopped = true;
                } else {
                    let n = self.nodes.get_mut(&victim).expect("listed");
                    n.crashed = true;
                    // Whatever was not durable is lost with the process.
                    let durable = n.durable as usize;
                    n.ledger.truncate(durable);
                    n.is_signature.truncate(durable);
                }
                self.report.crashes += 1;
            }
        }
        // Replacement, first half: a crashed node is retired by governance.
        if self.member_active && self.rng.chance(2) {
            let crashed: Vec<String> = trusted
                .iter()
                .filter(|id| {
                    self.nodes.get(*id).is_some_and(SimNode::down) && !self.retiring.contains(*id)
                })
                .cloned()
                .collect();
            if let Some(gone) = self.rng.pick(&crashed).cloned() {
                self.retiring.insert(gone.clone());
                self.report.retirements += 1;
                self.propose(json_action("remove_node", &gone), Some(gone.clone()))?;
            }
        }
        // A new node joins when the configuration tolerates one more member that is not yet
        // up to date (as with CCF, trusting a node that cannot catch up can stall a service
        // that has already lost nodes).
        if quiet
            && self.member_active
            && self.rng.chance(2)
            && self.next_pool < NODE_POOL
            && (crashed_in_config + 1) * 2 < trusted.len() + 1
        {
            self.start_join()?;
        }
        // Retire a live backup while the configuration stays at three or more.
        if quiet && self.member_active && self.rng.chance(1) && trusted.len() > 3 {
            let live: Vec<String> = trusted
                .iter()
                .filter(|id| self.nodes.get(*id).is_some_and(|n| !n.down()))
                .cloned()
                .collect();
            if crashed_in_config * 2 < trusted.len() - 1
                && let Some(victim) = self.rng.pick(&live).cloned()
            {
                self.retiring.insert(victim.clone());
                self.report.retirements += 1;
                self.propose(json_action("remove_node", &victim), Some(victim.clone()))?;
            }
        }
        Ok(())
    }

    fn start_join(&mut self) -> Result<(), String> {
        let pool_index = self.next_pool;
        self.next_pool += 1;
        let pool = pool();
        let joiner = Joiner::new(
            EcKeyPair::from_pkcs8_pem(&pool.nodes[pool_index].0).expect("pool key"),
            "CCF Node",
            &[],
            VALIDITY,
            RsaKeyPair::from_pkcs8_pem(&pool.nodes[pool_index].1).expect("pool key"),
            [0; 32],
        )
        .map_err(|e| e.to_string())?;
        let node_id = joiner.node_id();
        self.pool_ids.insert(pool_index, node_id.clone());
        self.log(|| format!("{} starts joining", Self::short(&node_id)));
        self.joining = Some(Joining {
            pool: pool_index,
            joiner: Some(joiner),
            node_id,
            last_poll_ms: 0,
            last_proposal_ms: None,
            propose_trust: false,
            in_flight: false,
        });
        Ok(())
    }

    fn phase(&mut self, ms: u64, faults: bool) -> Result<(), String> {
        for _ in 0..ms {
            self.tick(faults)?;
        }
        Ok(())
    }

    /// Safety after every step.
    fn check(&mut self) -> Result<(), String> {
        for (id, n) in &self.nodes {
            if n.crashed {
                continue;
            }
            let c = n.node.consensus();
            if c.primary_id.as_deref() == Some(id.as_str()) {
                match self.leaders.get(&c.view) {
                    Some(other) if other != id => {
                        return Err(format!(
                            "two primaries in view {}: {} and {}",
                            c.view,
                            Self::short(other),
                            Self::short(id)
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.log(|| format!("{} is primary in view {}", Self::short(id), c.view));
                        self.leaders.insert(c.view, id.clone());
                        self.report.views += 1;
                    }
                }
            }
        }
        // Committed prefixes agree, and what was committed stays.
        for (id, n) in &self.nodes {
            let upto = n.commit as usize;
            let common = upto.min(self.committed.len());
            if n.ledger.len() < upto {
                if n.crashed {
                    continue;
                }
                return Err(format!("{} lost committed entries", Self::short(id)));
            }
            if n.ledger[..common] != self.committed[..common] {
                let at = (0..common)
                    .find(|&i| n.ledger[i] != self.committed[i])
                    .expect("differs");
                return Err(format!(
                    "{}'s committed entry {} differs from another node's",
                    Self::short(id),
                    at + 1
                ));
            }
            if upto > self.committed.len() {
                self.committed.extend_from_slice(&n.ledger[common..upto]);
            }
        }
        // Transaction status: a transaction Committed anywhere is never Invalid anywhere.
        if self.now_ms.is_multiple_of(25) {
            self.check_statuses()?;
        }
        Ok(())
    }

    fn check_statuses(&mut self) -> Result<(), String> {
        for (_, txid) in &self.acked {
            for (id, n) in &self.nodes {
                if n.crashed {
                    continue;
                }
                match n.node.consensus().tx_status(*txid) {
                    TxStatus::Committed => {
                        if self.ever_invalid.contains(txid) {
                            return Err(format!(
                                "{txid} is Committed on {} after being Invalid",
                                Self::short(id)
                            ));
                        }
                        self.ever_committed.insert(*txid);
                    }
                    TxStatus::Invalid => {
                        if self.ever_committed.contains(txid) {
                            return Err(format!(
                                "{txid} is Invalid on {} after being Committed",
                                Self::short(id)
                            ));
                        }
                        self.ever_invalid.insert(*txid);
                    }
                    TxStatus::Pending | TxStatus::Unknown => {}
                }
            }
        }
        Ok(())
    }

    fn max_commit_txid(&self) -> TxId {
        self.nodes
            .values()
            .filter(|n| !n.down())
            .map(|n| n.node.consensus().commit)
            .max()
            .unwrap_or_default()
    }

    /// Faults stop, partitions heal: commit must advance past a write made now, and every live
    /// member of the configuration must reach the same commit.
    fn heal_and_check_liveness(&mut self) -> Result<(), String> {
        self.faults = false;
        self.blocked.clear();
        self.log(|| "faults stop; the network heals".into());
        let start = self.max_commit_txid().seqno;
        let deadline = self.now_ms + LIVENESS_BOUND_MS;
        while self.now_ms < deadline {
            self.tick(false)?;
            let live: Vec<&SimNode> = self
                .trusted()
                .iter()
                .filter_map(|id| self.nodes.get(id))
                .filter(|n| !n.down())
                .collect();
            let commits: BTreeSet<SeqNo> = live.iter().map(|n| n.commit).collect();
            let settled = commits.len() == 1
                && commits.first().is_some_and(|c| *c > start)
                && self.joining.is_none();
            if settled && self.now_ms.is_multiple_of(50) {
                return Ok(());
            }
        }
        let state: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, n)| {
                let c = n.node.consensus();
                format!(
                    "{}: {:?} {}{}view {} commit {} last {} primary {:?}",
                    Self::short(id),
                    n.node.role(),
                    if n.crashed {
                        "crashed, "
                    } else if n.fail_stopped {
                        "fail-stopped, "
                    } else {
                        ""
                    },
                    n.node
                        .failure()
                        .map(|f| format!("failed ({f}), "))
                        .unwrap_or_default(),
                    c.view,
                    n.commit,
                    c.last_seqno,
                    c.primary_id.as_deref().map(Self::short)
                )
            })
            .collect();
        Err(format!(
            "no progress within {LIVENESS_BOUND_MS} ms after faults stopped (commit was {start}{}): {}",
            if self.joining.is_some() {
                ", a join pending"
            } else {
                ""
            },
            state.join("; ")
        ))
    }

    /// With client traffic stopped, every request a live node received gets an answer (executed,
    /// forwarded and answered, held and admitted, or refused) within a bound.
    fn drain_requests(&mut self) -> Result<(), String> {
        self.autopilot = false;
        let deadline = self.now_ms + REQUEST_ANSWER_BOUND_MS;
        loop {
            let unanswered: Vec<String> = self
                .requests
                .iter()
                .filter(|((node, _), _)| self.nodes.get(node).is_some_and(|n| !n.down()))
                .map(|((node, id), (purpose, sent))| {
                    format!("{purpose:?} #{id} to {} at {sent} ms", Self::short(node))
                })
                .collect();
            if unanswered.is_empty() {
                return Ok(());
            }
            if self.now_ms >= deadline {
                return Err(format!(
                    "requests unanswered {REQUEST_ANSWER_BOUND_MS} ms after traffic stopped: {}",
                    unanswered.join(", ")
                ));
            }
            self.tick(false)?;
        }
    }

    /// Every acknowledged write that committed is readable with its value on a live node.
    fn final_checks(&mut self) -> Result<(), String> {
        self.check_statuses()?;
        let reader = self
            .live()
            .into_iter()
            .filter(|id| self.trusted().contains(id))
            .max_by_key(|id| self.nodes[id].commit)
            .ok_or("no live node")?;
        let reader_commit = self.nodes[&reader].node.consensus().commit;
        let acked = self.acked.clone();
        for (id, txid) in acked {
            if txid.seqno > reader_commit.seqno {
                continue;
            }
            let status = self.nodes[&reader].node.consensus().tx_status(txid);
            if status != TxStatus::Committed {
                continue;
            }
            self.report.writes_committed += 1;
            let value = self.read_on(&reader, id);
            // Write ids are never reused, so the value is the one written.
            if value.as_deref() != Some(format!("m{id}").as_str()) {
                return Err(format!(
                    "committed write {id} ({txid}) reads back as {value:?} on {}",
                    Self::short(&reader)
                ));
            }
        }
        Ok(())
    }

    /// A user's `POST /app/log/private` of `{id, msg}` through `node`.
    pub(crate) fn write(&mut self, node: &str, id: u64, msg: &str) -> Result<(), String> {
        let body = serde_json::json!({"id": id, "msg": msg}).to_string();
        let req = request(
            Method::POST,
            "/app/log/private",
            body.into_bytes(),
            Some(self.user.clone()),
            false,
        );
        self.submit(node, Purpose::Write { id }, req)
    }

    /// `GET /app/log/private?id=key` on `id`, answered locally.
    pub(crate) fn read_on(&mut self, id: &str, key: u64) -> Option<String> {
        let req = request(
            Method::GET,
            &format!("/app/log/private?id={key}"),
            Vec::new(),
            Some(self.user.clone()),
            false,
        );
        let mut out = Vec::new();
        let now = crate::now(self.now_ms);
        self.nodes.get_mut(id)?.node.step(
            now,
            Input::Request {
                id: u64::MAX,
                request: req,
                // A session of its own (clients' sessions are numbered by request): one that
                // forwarded a write would have its reads forwarded too.
                session: Session {
                    id: u64::MAX,
                    interface: INTERFACE.into(),
                },
            },
            &mut out,
        );
        out.into_iter().find_map(|o| match o {
            Output::Respond { response, .. } if response.status == 200 => {
                serde_json::from_slice::<serde_json::Value>(&response.body)
                    .ok()
                    .and_then(|v| v["msg"].as_str().map(str::to_owned))
            }
            _ => None,
        })
    }
}

fn json_action(name: &str, node_id: &str) -> String {
    serde_json::json!({"actions": [{"name": name, "args": {"node_id": node_id}}]}).to_string()
}

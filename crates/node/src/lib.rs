//! The deterministic core of a coco node.
//!
//! `Node::step(now, input, &mut outputs)` is the only way state changes: requests, timer ticks
//! and storage acknowledgements go in; responses, ledger appends and commit notifications come
//! out. Time arrives as an argument and the core performs no I/O, so the same inputs always give
//! the same outputs (up to ECDSA signature randomness inside the crypto library) — which is what
//! lets a simulator drive whole clusters later.
//!
//! Architecture invariant: this crate knows nothing of sockets, files, threads or clocks. The
//! host crate owns those and feeds this one.

mod admission;
pub mod attestation;
mod auth;
pub mod config;
pub mod disaster;
mod endorsement;
pub mod endpoints;
mod forwarding;
pub mod gov;
mod historical;
pub mod identity;
mod index;
pub mod join;
pub mod jwt;
pub mod peer;
pub mod proposals;
mod reads;
pub mod receipt;
mod recovery;
mod replica;
pub mod secrets;
pub mod snapshot;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use coco_app_api::{
    ApiError, Caller, ConsensusView, EndpointContext, EndpointMetrics, EndpointMode, ErrorCode,
    Method, Registry, Request, Response, RouteMatch, ServiceFacts, StatusCode, TX_ID_HEADER,
};
use coco_codec::WriteSet;
use coco_codec::entry::{EntryBuilder, EntryFlags};
use coco_codec::tables;
use coco_crypto::sha256;
use coco_kv::{CommitResult, Store};
use coco_merkle::MerkleTree;
use coco_types::{FIRST_VIEW, SeqNo, TxId, View, limits};

pub use config::{CoreConfig, GenesisConfig, MemberSpec, UserSpec};
pub use identity::NodeIdentity;
pub use peer::PeerMessage;
pub use reads::ReadView;
use secrets::LedgerSecrets;

/// `set_js_runtime_options` writes here; the constitution runtime is loaded with these limits.
const JS_RUNTIME_OPTIONS: &str = "public:ccf.gov.js_runtime_options";

/// Time as the host observed it when it delivered an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds since an arbitrary origin (signature cadence).
    pub monotonic_ms: u64,
    /// Wall-clock seconds since the Unix epoch (the `iat` of COSE signatures).
    pub unix_seconds: i64,
}

/// Correlates a request with its response; chosen by the host.
pub type RequestId = u64;

/// The client session (connection) a request arrived on, and the interface that accepted it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Session {
    /// Unique per connection for the life of the node.
    pub id: u64,
    /// The name of the RPC interface in the node's configuration (its `redirections` apply).
    pub interface: String,
}

/// What the host feeds the core.
#[derive(Debug)]
pub enum Input {
    /// A client request, already parsed and size-checked by the host.
    Request {
        id: RequestId,
        request: Request,
        session: Session,
    },
    /// A client session ended (its forwarding state can go).
    SessionClosed { session: u64 },
    /// Time passed; the core may emit a signature transaction.
    Tick,
    /// Every ledger entry up to and including `seqno` is durable on disk (written and fsynced).
    Persisted { seqno: SeqNo },
    /// Entries read from the ledger after `Output::FetchEntries`.
    Fetched {
        peer: String,
        from_idx: SeqNo,
        entries: Vec<Bytes>,
    },
    /// A message from another node (node-to-node channel, peer authenticated).
    Peer { from: String, message: PeerMessage },
    /// Entries read from the ledger after `Output::ReadLedger` (historical queries, receipts).
    LedgerRead {
        from_idx: SeqNo,
        entries: Vec<Bytes>,
    },
    /// The host serialised the snapshot of `Output::Snapshot(SnapshotAction::Serialise)`: its
    /// entry's SHA-256, which the primary now records in the snapshot's evidence.
    SnapshotSerialised { seqno: SeqNo, digest: [u8; 32] },
    /// Storage failed (a write or fsync error). The core stops accepting writes and never again
    /// advances commit: data whose fsync did not complete must never be reported committed.
    StorageFailed { reason: String },
}

/// What the core asks the host to do. Outputs are ordered: the host must apply `Append`s in the
/// order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Respond {
        id: RequestId,
        response: Response,
    },
    /// Append this serialised ledger entry. `flags` are already inside `bytes`; they are repeated
    /// so the host knows to close the chunk after this entry without parsing it.
    Append {
        txid: TxId,
        bytes: Bytes,
        force_chunk_after: bool,
        is_signature: bool,
    },
    /// Everything up to `seqno` is globally committed: the host may mark chunks committed.
    GlobalCommit {
        txid: TxId,
    },
    /// Read ledger entries `from_idx..=to_idx` and hand them back with `Input::Fetched` (the
    /// consensus core no longer holds their bytes; a lagging peer needs them).
    FetchEntries {
        peer: String,
        from_idx: SeqNo,
        to_idx: SeqNo,
    },
    /// Read ledger entries `from_idx..=to_idx` and hand them back with `Input::LedgerRead`
    /// (historical queries and receipts need entries the core no longer holds).
    ReadLedger {
        from_idx: SeqNo,
        to_idx: SeqNo,
    },
    /// Discard every ledger entry after `seqno` (they were never committed).
    Truncate {
        seqno: SeqNo,
    },
    /// A message for another node (node-to-node channel). `address` is the peer's published
    /// node-to-node address from `nodes.info`; `None` while this node has not yet replicated
    /// the peer's record (a joiner answering the primary): send it on a channel the peer
    /// opened, if any.
    Peer {
        to: String,
        address: Option<String>,
        message: PeerMessage,
    },
    /// Governance renewed this node's service-endorsed certificate
    /// (`set_node_certificate_validity`) and the renewal committed: serve TLS with it.
    NodeCertificate {
        pem: String,
    },
    /// Governance renewed the service certificate (`set_service_certificate_validity`) and the
    /// renewal committed.
    ServiceCertificate {
        pem: String,
    },
    /// Snapshot work for the host: serialise, write, commit (see [`snapshot`]).
    Snapshot(snapshot::SnapshotAction),
    /// A disaster recovery ended (the service is open): ledger files written while recovering
    /// (`….recovery`) take their ordinary names.
    RecoveryComplete,
}

/// A certificate change written by governance, acted on once its transaction commits.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CertificateChange {
    Node(String),
    Service(String),
}

/// What the host plugs into the core: the application's endpoints and the constitution
/// runtime (JavaScript, from crate `coco-js`).
#[derive(Default)]
pub struct Plugins {
    pub app: Registry,
    pub constitution: Option<Box<dyn proposals::ConstitutionLoader>>,
}

/// Service lifecycle (`public:ccf.gov.service.info` status).
pub use tables::ServiceStatus;

/// Where a request being executed came from.
#[derive(Clone)]
enum Origin {
    /// A client of this node.
    Client { id: RequestId, session: Session },
    /// A backup forwarded it (its forwarding id).
    Peer { from: String, id: u64 },
}

/// What became of a request.
enum Routed {
    Answer(Response),
    /// Sent to the primary; answered when its response arrives.
    Forwarded,
    /// Held for admission (`admission.rs`); answered once executed.
    Held,
}

impl Routed {
    fn into_answer(self) -> Option<Response> {
        match self {
            Routed::Answer(response) => Some(response),
            Routed::Forwarded | Routed::Held => None,
        }
    }
}

/// The core state of one node.
pub struct Node {
    config: CoreConfig,
    identity: NodeIdentity,
    service_kid_hex: String,
    /// Every ledger secret, by the seqno it applies from.
    secrets: LedgerSecrets,
    store: Store,
    tree: MerkleTree,
    registry: Arc<Registry>,
    consensus: ConsensusView,
    service: Arc<ServiceFacts>,
    service_status: ServiceStatus,
    /// Shared with the read path, which counts the calls it answers.
    metrics: Arc<EndpointMetrics>,
    /// Transactions appended since the last signature transaction.
    txs_since_signature: u64,
    /// When the oldest transaction not yet covered by a signature was appended (monotonic ms).
    first_unsigned_ms: Option<u64>,
    /// Signatures appended here and not yet committed, with when (adaptive signature interval).
    signatures_awaiting_commit: std::collections::VecDeque<(SeqNo, u64)>,
    /// Writes held for admission while commits catch up (`admission.rs`), in arrival order.
    held: std::collections::VecDeque<admission::Held>,
    /// Recent time from a signature's append to its commit (EWMA, ms).
    signature_commit_lag_ms: u64,
    /// The time of the step being executed (monotonic ms).
    now_ms: u64,
    /// When the last signature transaction was emitted.
    last_signature_ms: u64,
    /// Ledger bytes appended since the last chunk boundary.
    bytes_since_chunk: u64,
    /// The consensus core: replication, elections and the commit rule.
    raft: coco_consensus::Raft,
    /// Set when storage failed: the node is fail-stopped for writes and commit.
    storage_failure: Option<String>,
    /// Conflict re-executions of the request being executed (for `/node/metrics`).
    conflict_retries: u64,
    /// Node hooks requested by the proposal being executed; acted on once it commits.
    requested_hooks: Vec<proposals::NodeHook>,
    /// `trigger_ledger_chunk` was applied: the next signature closes the chunk.
    chunk_requested: bool,
    /// Certificate renewals by seqno, ascending, waiting for global commit.
    pending_certificates: VecDeque<(SeqNo, CertificateChange)>,
    constitution_loader: Option<Box<dyn proposals::ConstitutionLoader>>,
    /// The loaded constitution and the SHA-256 of its source.
    constitution_cache: Option<([u8; 32], Box<dyn proposals::Constitution + Send>)>,
    /// The node id as CCF's typed id (for signature values).
    node_id_typed: coco_types::NodeId,
    /// Free-form service data recorded in `service.info`.
    service_data: serde_json::Value,
    /// The genesis transaction id (`current_service_create_txid`).
    service_create_txid: Option<TxId>,
    /// Node id → published node-to-node address of every node in `nodes.info` that takes part
    /// in consensus (not retired, or retired but not yet committed as such).
    peer_addresses: BTreeMap<String, String>,
    /// Nodes retired and committed as such: their messages are dropped.
    departed_peers: std::collections::BTreeSet<String>,
    /// Writes forwarded to the primary and not yet answered: forward id → (request id, sent at).
    pending_forwards: BTreeMap<u64, (RequestId, u64)>,
    next_forward_id: u64,
    /// Sessions that forwarded a request, with the view they forwarded in (session
    /// consistency: a session whose view changes gets `SessionConsistencyLost`). Their later
    /// app and governance requests are forwarded too, reads included, as in CCF. Shared with
    /// the read path, which leaves those sessions' reads to the core.
    forwarded_sessions: Arc<BTreeMap<u64, View>>,
    /// Nodes retired by governance, with the seqno that retired them: once that commits, the
    /// primary records `retired_committed` (CCF's retirement phases), after which the node may
    /// be removed (`/node/network/removable_nodes`).
    pending_retirements: Vec<(SeqNo, String)>,
    /// Old entries read back for receipts and historical queries.
    historical: historical::HistoricalCache,
    /// Endorsements of earlier service identities, read back for receipts.
    endorsements: endorsement::EndorsementHistory,
    /// Seqnos by key for the maps apps index.
    index: index::SeqnoIndex,
    /// Snapshots taken, being written and being proven.
    snapshots: snapshot::Snapshotter,
    /// Randomness for recovery shares, seeded by the host.
    drbg: coco_crypto::Drbg,
    /// A recovered service's private domains, until they are back (disaster recovery).
    recovery: Option<disaster::PendingPrivate>,
    /// Entries up to here belong to the services before the last disaster recovery: a node
    /// replicating them replays their state but does not act on their governance (their nodes,
    /// configurations and certificates are gone). 0 if never recovered.
    previous_service_upto: SeqNo,
    /// The node-run endpoint being executed asked for its writes to commit even though it
    /// answers with an error (CCF's `set_apply_writes`).
    apply_writes_on_error: bool,
}

impl Node {
    /// The state every node starts from: empty KV, a Merkle tree holding leaf 0, no view yet.
    fn new(
        config: CoreConfig,
        identity: NodeIdentity,
        secrets: LedgerSecrets,
        plugins: Plugins,
        now: Now,
        raft: coco_consensus::Raft,
    ) -> Node {
        let mut registry = endpoints::node_registry();
        registry.extend(endpoints::common_registry("/app"));
        registry.extend(endpoints::common_registry("/gov"));
        registry.extend(gov::registry());
        registry.extend(plugins.app);
        let service = ServiceFacts {
            service_cert_pem: identity.service_cert_pem.clone(),
            node_cert_pem: identity.node_cert_pem.clone(),
            node_self_signed_cert_pem: identity.node_self_signed_cert_pem.clone(),
            version: config.version.clone(),
        };
        let consensus = ConsensusView {
            node_id: identity.node_id.clone(),
            primary_id: None,
            view: raft.term(),
            last_seqno: 0,
            commit: TxId::default(),
            view_history: Vec::new(),
            last_signed_seqno: 0,
        };
        let mut tree = MerkleTree::new();
        // Leaf 0 is 32 zero bytes: CCF seeds its tree this way, so leaf i is seqno i.
        tree.append([0u8; 32]);
        let historical_cache_bytes_max = config.historical_cache_bytes_max;
        let snapshot_interval = config.snapshot_tx_interval_count;
        let entropy = config.entropy;
        let seqno_index = index::SeqnoIndex::new(registry.indexed_maps());
        let node_id_typed = coco_types::NodeId::from_hex(&identity.node_id)
            .expect("node ids are hex SHA-256 digests");
        Node {
            node_id_typed,
            service_kid_hex: identity.service_kid_hex(),
            config,
            identity,
            secrets,
            store: Store::new(),
            tree,
            metrics: Arc::new(EndpointMetrics::for_registry(&registry)),
            registry: Arc::new(registry),
            consensus,
            service: Arc::new(service),
            service_status: ServiceStatus::Opening,
            txs_since_signature: 0,
            first_unsigned_ms: None,
            signatures_awaiting_commit: std::collections::VecDeque::new(),
            signature_commit_lag_ms: 0,
            held: Default::default(),
            now_ms: now.monotonic_ms,
            last_signature_ms: now.monotonic_ms,
            bytes_since_chunk: 0,
            raft,
            storage_failure: None,
            conflict_retries: 0,
            requested_hooks: Vec::new(),
            chunk_requested: false,
            pending_certificates: VecDeque::new(),
            constitution_loader: plugins.constitution,
            constitution_cache: None,
            service_data: serde_json::Value::Null,
            service_create_txid: None,
            peer_addresses: BTreeMap::new(),
            departed_peers: Default::default(),
            pending_forwards: BTreeMap::new(),
            next_forward_id: 0,
            forwarded_sessions: Default::default(),
            pending_retirements: Vec::new(),
            historical: historical::HistoricalCache::new(historical_cache_bytes_max),
            endorsements: endorsement::EndorsementHistory::default(),
            index: seqno_index,
            snapshots: snapshot::Snapshotter::new(snapshot_interval, 0),
            drbg: coco_crypto::Drbg::new(entropy),
            recovery: None,
            previous_service_upto: 0,
            apply_writes_on_error: false,
        }
    }

    /// Creates a node that starts a new service (CCF `Start` mode): writes the genesis
    /// transaction and its signature (and, with the pre-governance bootstrap, the transaction that
    /// opens the service). `ledger_secret` must come from a CSPRNG.
    pub fn start_genesis(
        config: CoreConfig,
        identity: NodeIdentity,
        genesis: &GenesisConfig,
        ledger_secret: [u8; 32],
        plugins: Plugins,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Node {
        let raft = coco_consensus::Raft::new_service(
            identity.node_id.clone(),
            config.consensus,
            config.seed,
            now.monotonic_ms,
        );
        let mut node = Node::new(config, identity, ledger_secret.into(), plugins, now, raft);
        node.consensus.primary_id = Some(node.identity.node_id.clone());
        node.consensus.view_history = vec![(FIRST_VIEW, 1)];
        node.service_data = genesis
            .service_data
            .clone()
            .unwrap_or(serde_json::Value::Null);
        node.write_genesis(genesis, out);
        node.refresh_peer_addresses();
        node.emit_signature(now, out);
        if genesis.open_service_without_governance {
            node.write_service_status(ServiceStatus::Open, now, out);
            node.emit_signature(now, out);
        }
        node
    }

    pub fn node_id(&self) -> &str {
        &self.identity.node_id
    }

    /// The service certificate this node serves.
    pub fn service_cert_pem(&self) -> &str {
        &self.service.service_cert_pem
    }

    pub fn consensus(&self) -> &ConsensusView {
        &self.consensus
    }

    /// A snapshot of the whole KV store at the last executed transaction (tests, tools).
    pub fn kv_snapshot(&self) -> coco_kv::StoreSnapshot {
        self.store.snapshot()
    }

    /// A copy of the store at the last executed transaction, to run read or trial transactions
    /// against (tests, tools); it shares structure with the node's and costs O(1).
    pub fn kv_snapshot_store(&self) -> Store {
        Store::from_snapshot(&self.store.snapshot())
    }

    /// This node's consensus role.
    pub fn role(&self) -> coco_consensus::Role {
        self.raft.role()
    }

    /// The configurations this node needs a quorum in (the committed one and any pending).
    pub fn active_configurations(&self) -> Vec<coco_consensus::Configuration> {
        self.raft.active_configurations().cloned().collect()
    }

    /// Why this node stopped accepting writes and advancing commit, if it did (a storage
    /// failure, or a replicated entry it could not apply).
    pub fn failure(&self) -> Option<&str> {
        self.storage_failure.as_deref()
    }

    /// Every node in this node's `nodes.info`, with its status (tools, the simulator).
    pub fn node_statuses(&self) -> BTreeMap<String, tables::NodeStatus> {
        let mut statuses = BTreeMap::new();
        self.store.begin().for_each(tables::NODES_INFO, |k, v| {
            if let Ok(info) = tables::from_ccf_json::<tables::NodeInfo>(v) {
                statuses.insert(String::from_utf8_lossy(k).into_owned(), info.status);
            }
            true
        });
        statuses
    }

    pub fn service_status(&self) -> ServiceStatus {
        self.service_status
    }

    /// Every ledger secret of the service (snapshot loading, tools).
    pub fn ledger_secrets(&self) -> &LedgerSecrets {
        &self.secrets
    }

    /// The latest ledger secret. Exposed for the host's test-only export path (the oracle test that
    /// decrypts private domains) — never over an endpoint.
    pub fn ledger_secret_raw(&self) -> &[u8; 32] {
        self.secrets.latest().raw()
    }

    /// Feeds one input to the core and appends what it asks for to `out`.
    pub fn step(&mut self, now: Now, input: Input, out: &mut Vec<Output>) {
        self.now_ms = now.monotonic_ms;
        match input {
            Input::Request {
                id,
                request,
                session,
            } => {
                if let Some(response) =
                    self.execute(now, &request, Origin::Client { id, session }, out)
                {
                    out.push(Output::Respond { id, response });
                }
            }
            Input::SessionClosed { session } => {
                if self.forwarded_sessions.contains_key(&session) {
                    Arc::make_mut(&mut self.forwarded_sessions).remove(&session);
                }
            }
            Input::Tick => self.on_tick(now, out),
            Input::Persisted { seqno } => self.on_persisted(now, seqno, out),
            Input::Fetched {
                peer,
                from_idx,
                entries,
            } => self.consensus_step(
                now,
                coco_consensus::Input::Fetched {
                    peer,
                    from_idx,
                    data: entries,
                },
                out,
            ),
            Input::Peer { from, message } => {
                // The channel authenticated a service-endorsed node. Nodes whose retirement is
                // committed are no longer heard. (A node this one has not replicated the record
                // of yet is heard: a joiner catching up learns of later members only by
                // replaying, and the current primary may be one of them.)
                if !self.departed_peers.contains(&from) {
                    self.on_peer_message(now, from, message, out);
                }
            }
            Input::LedgerRead { from_idx, entries } => {
                if !self.private_recovery_read(from_idx, &entries) && !entries.is_empty() {
                    self.historical.insert(from_idx, entries);
                }
            }
            Input::SnapshotSerialised { seqno, digest } => {
                self.write_snapshot_evidence(seqno, digest, out)
            }
            Input::StorageFailed { reason } => {
                if self.storage_failure.is_none() {
                    self.storage_failure = Some(reason);
                }
            }
        }
        self.record_committed_retirements(out);
        self.drive_private_recovery(now, out);
        if !self.held.is_empty() {
            self.admit_held(now, out);
        }
        // A transaction count trigger can fire while executing; the delay trigger on ticks.
        if self.txs_since_signature >= self.config.signature_tx_interval_count
            || self.adaptive_signature_due(now)
        {
            self.emit_signature(now, out);
        }
    }

    /// The adaptive signature interval (`CoreConfig::commit_latency_target_ms`): sign once the
    /// oldest unsigned transaction has waited the target less the recent signature-to-commit
    /// lag, so that it commits within the target; the faster commits come, the longer batches
    /// grow (and the fewer signatures cost).
    fn adaptive_signature_due(&self, now: Now) -> bool {
        let (Some(target), Some(first)) =
            (self.config.commit_latency_target_ms, self.first_unsigned_ms)
        else {
            return false;
        };
        now.monotonic_ms >= self.last_signature_ms + limits::SIGNATURE_ADAPTIVE_INTERVAL_MIN_MS
            && now.monotonic_ms >= first + target.saturating_sub(self.signature_commit_lag_ms)
    }

    fn on_tick(&mut self, now: Now, out: &mut Vec<Output>) {
        self.expire_forwards(now, out);
        self.consensus_step(
            now,
            coco_consensus::Input::Tick {
                now_ms: now.monotonic_ms,
            },
            out,
        );
        let due = now.monotonic_ms.saturating_sub(self.last_signature_ms)
            >= self.config.signature_interval_ms;
        if (due && self.txs_since_signature > 0) || self.adaptive_signature_due(now) {
            self.emit_signature(now, out);
        }
    }

    fn on_persisted(&mut self, now: Now, seqno: SeqNo, out: &mut Vec<Output>) {
        if self.storage_failure.is_some() {
            return;
        }
        assert!(
            seqno <= self.consensus.last_seqno,
            "storage reports seqno {seqno} beyond the last appended"
        );
        self.consensus_step(now, coco_consensus::Input::Persisted { idx: seqno }, out);
        // A storage batch is the natural unit of replication too: the entries it made durable
        // here go to the backups now, in few messages, rather than at the next signature or
        // heartbeat (which would cap throughput at a batch per heartbeat).
        let mut actions = Vec::new();
        self.raft.replicate(&mut actions);
        self.on_consensus(now, actions, out);
    }

    /// Feeds the consensus core and acts on what it decides.
    fn consensus_step(&mut self, now: Now, input: coco_consensus::Input, out: &mut Vec<Output>) {
        if self.storage_failure.is_some() {
            // Fail-stop: a node whose ledger cannot be trusted takes no further part in
            // consensus (as a crashed CCF node), so a failed primary stops heartbeating and the
            // others elect a new one instead of waiting on a commit that cannot come.
            return;
        }
        let mut actions = Vec::new();
        self.raft.step(input, &mut actions);
        self.on_consensus(now, actions, out);
    }

    /// Acts on what the consensus core decided.
    fn on_consensus(
        &mut self,
        now: Now,
        actions: Vec<coco_consensus::Action>,
        out: &mut Vec<Output>,
    ) {
        use coco_consensus::Action;
        for action in actions {
            match action {
                Action::Commit { idx } => {
                    while let Some(&(seqno, at)) = self.signatures_awaiting_commit.front()
                        && seqno <= idx
                    {
                        self.signatures_awaiting_commit.pop_front();
                        let lag = now.monotonic_ms.saturating_sub(at);
                        self.signature_commit_lag_ms = (self.signature_commit_lag_ms * 7 + lag) / 8;
                    }
                    let view = self
                        .raft
                        .term_at(idx)
                        .expect("the consensus core commits entries it holds");
                    self.global_commit(TxId::new(view, idx), out);
                }
                Action::Send { to, message } => {
                    self.send_to_peer(to, PeerMessage::Consensus(message), out)
                }
                Action::BecameLeader { term } => {
                    // Signatures of an earlier term may never commit (rolled back): only this
                    // term's are awaited (the adaptive interval, and admission, which would
                    // otherwise hold writes behind one forever).
                    self.signatures_awaiting_commit.clear();
                    // Retirements a previous primary did not get to record: they are committed
                    // once anything this primary appends is.
                    let last = self.consensus.last_seqno;
                    for id in self.retired_nodes(false) {
                        if !self.pending_retirements.iter().any(|(_, n)| *n == id) {
                            self.pending_retirements.push((last, id));
                        }
                    }
                    self.consensus.view = term;
                    self.consensus.primary_id = Some(self.identity.node_id.clone());
                    self.consensus
                        .view_history
                        .push((term, self.consensus.last_seqno + 1));
                    // The new view needs a committable entry of its own (CCF signs at once).
                    self.emit_signature(now, out);
                }
                Action::BecameFollower { term, leader } => {
                    self.signatures_awaiting_commit.clear();
                    self.consensus.view = term;
                    self.consensus.primary_id = leader;
                }
                Action::BecameCandidate { .. } => self.consensus.primary_id = None,
                Action::Retired => self.consensus.primary_id = None,
                Action::Rollback { to_idx } => self.roll_back(to_idx, out),
                Action::Append { first_idx, entries } => {
                    for (k, entry) in entries.iter().enumerate() {
                        self.apply_replicated(first_idx + k as SeqNo, entry, out);
                    }
                }
                Action::FetchEntries {
                    peer,
                    from_idx,
                    to_idx,
                } => out.push(Output::FetchEntries {
                    peer,
                    from_idx,
                    to_idx,
                }),
            }
        }
    }

    /// Everything up to `txid` (a signature) is committed.
    fn global_commit(&mut self, txid: TxId, out: &mut Vec<Output>) {
        self.consensus.commit = txid;
        self.store.compact(txid.seqno);
        // Committed leaves are never needed again for roots or for rollback: keep the tree
        // (and the `tree` blob each signature carries, as in CCF) bounded by the uncommitted
        // suffix.
        self.tree
            .flush_to(txid.seqno)
            .expect("a committed signature's leaf is in the tree");
        out.push(Output::GlobalCommit { txid });
        let mut snapshot_actions = Vec::new();
        self.snapshots.on_commit(txid.seqno, &mut snapshot_actions);
        out.extend(snapshot_actions.into_iter().map(Output::Snapshot));
        while let Some((seqno, _)) = self.pending_certificates.front()
            && *seqno <= txid.seqno
        {
            let (_, change) = self.pending_certificates.pop_front().expect("checked");
            out.push(match change {
                CertificateChange::Node(pem) => {
                    Arc::make_mut(&mut self.service).node_cert_pem = pem.clone();
                    Output::NodeCertificate { pem }
                }
                CertificateChange::Service(pem) => {
                    Arc::make_mut(&mut self.service).service_cert_pem = pem.clone();
                    Output::ServiceCertificate { pem }
                }
            });
        }
    }

    /// Executes a request against the KV store: routing, frontend state, authentication,
    /// backpressure, the handler, and — for writes — the ledger entry. Returns `None` when the
    /// answer comes later: the request was forwarded to the primary (answered once the primary
    /// responds) or held for admission (answered once executed).
    fn execute(
        &mut self,
        now: Now,
        request: &Request,
        origin: Origin,
        out: &mut Vec<Output>,
    ) -> Option<Response> {
        self.route_and_execute(now, request, origin, true, out)
            .into_answer()
    }

    /// Routes and executes a request; `may_hold` is false for writes admission already held.
    fn route_and_execute(
        &mut self,
        now: Now,
        request: &Request,
        origin: Origin,
        may_hold: bool,
        out: &mut Vec<Output>,
    ) -> Routed {
        let (endpoint, path_params) = match self.registry.route(&request.method, &request.path) {
            RouteMatch::Found {
                endpoint,
                path_params,
            } => (endpoint.clone(), path_params),
            RouteMatch::MethodNotAllowed { allowed } => {
                let allow = allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Routed::Answer(
                    ApiError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        ErrorCode::UnsupportedHttpVerb,
                        format!("Allowed methods for '{}' are: {allow}.", request.path),
                    )
                    .with_header("allow", allow)
                    .into_response(),
                );
            }
            RouteMatch::NotFound => {
                return Routed::Answer(
                    ApiError::not_found(format!("Unknown path: {}.", request.path)).into_response(),
                );
            }
        };
        // Writes on a backup go to the primary (forwarded, or redirected if the interface says
        // so), and so does everything else a session that forwarded sends to the app and
        // governance frontends (CCF's `forwarding_required: sometimes`, so that the session reads
        // its writes). Requests a backup forwarded are never forwarded again.
        if self.raft.role() != coco_consensus::Role::Leader
            && let Origin::Client { id, session } = &origin
            && (endpoint.mode == EndpointMode::ReadWrite
                || (self.forwarded_sessions.contains_key(&session.id)
                    && endpoints::follows_forwarding_session(&endpoint.template)))
            && let Some(primary) = self.consensus.primary_id.clone()
            && primary != self.identity.node_id
        {
            return self.hand_to_primary(now, *id, session, request, primary, out);
        }
        if may_hold && endpoint.mode == EndpointMode::ReadWrite && self.must_hold_writes(now) {
            return if self.hold(now, request, origin) {
                Routed::Held
            } else {
                Routed::Answer(admission::too_many_pending(
                    "Too many writes waiting for commits to catch up; retry later.".to_owned(),
                ))
            };
        }
        let response = self.execute_endpoint(now, request, &endpoint, path_params, out);
        self.metrics.record(
            endpoint.method.as_str(),
            &endpoint.template,
            response.status,
            std::mem::take(&mut self.conflict_retries),
        );
        if request.method == Method::HEAD {
            return Routed::Answer(Response {
                body: Bytes::new(),
                ..response
            });
        }
        Routed::Answer(response)
    }

    fn execute_endpoint(
        &mut self,
        now: Now,
        request: &Request,
        endpoint: &coco_app_api::Endpoint,
        path_params: BTreeMap<String, String>,
        out: &mut Vec<Output>,
    ) -> Response {
        let is_app = endpoints::is_app_endpoint(&endpoint.template);
        if is_app && !self.app_frontend_open() {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::FrontendNotOpen,
                "Frontend is not open.",
            )
            .into_response();
        }
        if let Some(prefix) = endpoint
            .template
            .strip_suffix("/api")
            .filter(|p| matches!(*p, "/app" | "/gov" | "/node"))
        {
            let read_txid = TxId::new(self.consensus.view, self.consensus.last_seqno);
            return endpoints::api_document(&self.registry, prefix, &self.service.version)
                .with_header(TX_ID_HEADER, read_txid.to_string());
        }
        let caller = match auth::authenticate(
            &mut self.store.begin(),
            request,
            &endpoint.auth_policies,
            now.unix_seconds,
        ) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        if endpoint.mode == EndpointMode::ReadWrite {
            if let Some(reason) = &self.storage_failure {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::TransactionReplicationFailed,
                    format!("This node's storage failed ({reason}); it accepts no writes."),
                )
                .into_response();
            }
            if self.raft.role() != coco_consensus::Role::Leader {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::NodeCannotHandleRequest,
                    "Node is not primary; cannot handle write.",
                )
                .into_response();
            }
            let uncommitted = self.consensus.last_seqno - self.consensus.commit.seqno;
            if uncommitted >= self.config.uncommitted_tx_count_max {
                return admission::too_many_pending(format!(
                    "Too many transactions pending commit ({uncommitted}); retry later."
                ));
            }
        }
        let historical = if endpoint.mode == EndpointMode::Historical {
            match self.historical_state(request, now, out) {
                Ok(Some(state)) => Some(state),
                Ok(None) => return coco_app_api::historical_loading(),
                Err(e) => return e.into_response(),
            }
        } else {
            None
        };
        for _attempt in 1..=limits::TX_EXECUTION_ATTEMPTS_MAX {
            self.requested_hooks.clear();
            self.apply_writes_on_error = false;
            let mut tx = self.store.begin();
            let read_txid = TxId::new(self.view_of_last(), self.consensus.last_seqno);
            let (result, claims_digest) = if endpoint.template == "/node/join" {
                (self.join_endpoint(&mut tx, request, &caller), None)
            } else if endpoints::is_receipt_path(&endpoint.template) {
                (self.receipt_endpoint(now, request, out), None)
            } else if endpoint.template == "/gov/recovery/members/{memberId}:recover" {
                (
                    self.recovery_share_endpoint(&mut tx, request, &caller, &path_params),
                    None,
                )
            } else if endpoint.template.starts_with("/gov/members/proposals") {
                (
                    self.proposal_endpoint(
                        &mut tx,
                        request,
                        &caller,
                        &path_params,
                        &endpoint.template,
                        now,
                    ),
                    None,
                )
            } else {
                let mut history = receipt::HistoryView {
                    index: &self.index,
                    commit: self.consensus.commit.seqno,
                    raft: &self.raft,
                    cache: &mut self.historical,
                    secrets: &self.secrets,
                    out: &mut *out,
                    now,
                };
                let mut ctx = EndpointContext {
                    tx: &mut tx,
                    request,
                    caller: &caller,
                    path_params: path_params.clone(),
                    consensus: &self.consensus,
                    claims_digest: None,
                    service: &self.service,
                    metrics: &self.metrics,
                    historical: historical.as_ref(),
                    history: Some(&mut history),
                    wanted_history: false,
                };
                let result = (endpoint.handler)(&mut ctx);
                (result, ctx.claims_digest)
            };
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    return e
                        .into_response()
                        .with_header(TX_ID_HEADER, read_txid.to_string());
                }
            };
            if !response.status.is_success() && !std::mem::take(&mut self.apply_writes_on_error) {
                // CCF applies writes only for successful responses.
                return response.with_header(TX_ID_HEADER, read_txid.to_string());
            }
            if is_app && let Some(map) = tx.written_maps().find(|m| m.starts_with("public:ccf.")) {
                return ApiError::internal(format!(
                    "Application endpoints may not write the built-in map '{map}'."
                ))
                .into_response();
            }
            if let Err(e) = self.reissue_recovery_shares(&mut tx) {
                return ApiError::internal(format!("Failed to issue recovery shares: {e}"))
                    .into_response()
                    .with_header(TX_ID_HEADER, read_txid.to_string());
            }
            let seqno = self.consensus.last_seqno + 1;
            match self.store.commit(tx, seqno) {
                Ok(CommitResult::ReadOnly) => {
                    return response.with_header(TX_ID_HEADER, read_txid.to_string());
                }
                Ok(CommitResult::Committed { write_set }) => {
                    self.observe_governance_writes(&write_set, self.consensus.last_seqno + 1);
                    for hook in std::mem::take(&mut self.requested_hooks) {
                        self.on_hook(hook);
                    }
                    let txid = self.append_entry(
                        &write_set,
                        claims_digest.unwrap_or([0; 32]),
                        false,
                        false,
                        out,
                    );
                    return response.with_header(TX_ID_HEADER, txid.to_string());
                }
                Err(_conflict) => {
                    // Cannot happen while one thread executes everything; kept so that
                    // concurrent execution can be introduced without changing semantics.
                    self.conflict_retries += 1;
                    continue;
                }
            }
        }
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TransactionCommitAttemptsExceedLimit,
            format!(
                "Transaction conflicted {} times; giving up.",
                limits::TX_EXECUTION_ATTEMPTS_MAX
            ),
        )
        .into_response()
    }

    /// Proposal endpoints need the constitution and the Merkle root, so the node runs them.
    fn proposal_endpoint(
        &mut self,
        tx: &mut coco_kv::Tx,
        request: &Request,
        caller: &Caller,
        params: &BTreeMap<String, String>,
        template: &str,
        now: Now,
    ) -> Result<Response, ApiError> {
        gov::check_request_api_version(request)?;
        let id = params.get("proposalId").map(String::as_str).unwrap_or("");
        match template {
            "/gov/members/proposals:create" => {
                let root = self.tree.root();
                let network = self.network_identity(now);
                let constitution = self.constitution(tx)?;
                let (response, hooks) =
                    proposals::create(tx, caller, &root, constitution, &network)?;
                self.requested_hooks = hooks;
                Ok(response)
            }
            "/gov/members/proposals/{proposalId}:withdraw" => proposals::withdraw(tx, caller, id),
            "/gov/members/proposals/{proposalId}/ballots/{memberId}:submit" => {
                let member = params.get("memberId").cloned().unwrap_or_default();
                let network = self.network_identity(now);
                let constitution = self.constitution(tx)?;
                let (response, hooks) =
                    proposals::submit_ballot(tx, caller, id, &member, constitution, &network)?;
                self.requested_hooks = hooks;
                Ok(response)
            }
            _ => proposals::view(tx, request, params, template),
        }
    }

    /// What `ccf.network` offers the constitution's `apply`.
    fn network_identity(&self, now: Now) -> proposals::NetworkIdentity {
        proposals::NetworkIdentity {
            service_key: self.identity.service_key.clone(),
            service_cert_pem: self.service.service_cert_pem.clone(),
            latest_ledger_secret_seqno: self.secrets.latest().applies_from(),
            now_unix_seconds: now.unix_seconds,
        }
    }

    /// The constitution currently stored in the KV, loaded once per distinct source and runtime
    /// options.
    fn constitution(
        &mut self,
        tx: &mut coco_kv::Tx,
    ) -> Result<&dyn proposals::Constitution, ApiError> {
        let raw = tx
            .get(tables::CONSTITUTION, &tables::SINGLETON_KEY)
            .ok_or_else(|| ApiError::internal("The service has no constitution."))?;
        let source: String = serde_json::from_slice(&raw).map_err(|e| {
            ApiError::internal(format!("Stored constitution is not a JSON string: {e}"))
        })?;
        let options = tx
            .get(JS_RUNTIME_OPTIONS, &tables::SINGLETON_KEY)
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let mut keyed = source.clone().into_bytes();
        keyed.push(0);
        keyed.extend_from_slice(options.as_deref().unwrap_or("").as_bytes());
        let digest = coco_crypto::sha256(&keyed);
        let stale = self
            .constitution_cache
            .as_ref()
            .is_none_or(|(d, _)| *d != digest);
        if stale {
            let loader = self
                .constitution_loader
                .as_ref()
                .ok_or_else(|| ApiError::internal("This node has no constitution runtime."))?;
            let loaded = loader
                .load(&source, options.as_deref())
                .map_err(|e| ApiError::internal(format!("The constitution does not load: {e}")))?;
            self.constitution_cache = Some((digest, loaded));
        }
        Ok(self
            .constitution_cache
            .as_ref()
            .expect("loaded above")
            .1
            .as_ref())
    }

    /// Acts on a hook requested by an applied proposal, once its transaction committed.
    fn on_hook(&mut self, hook: proposals::NodeHook) {
        match hook {
            proposals::NodeHook::TriggerLedgerChunk => self.chunk_requested = true,
            proposals::NodeHook::TriggerSnapshot => self.snapshots.request(),
            // Done inside the proposal's own transaction (see `reissue_recovery_shares`); the
            // new secret is installed when that transaction is observed.
            proposals::NodeHook::TriggerRecoverySharesRefresh
            | proposals::NodeHook::TriggerLedgerRekey => {}
        }
    }

    /// Re-issues recovery shares in `tx` when it asks for it (`trigger_recovery_shares_refresh`),
    /// opens the service, or changes the share holders or threshold of an open service; rekeys
    /// when it asks for it (`trigger_ledger_rekey`). CCF does all of this in the same
    /// transaction: on opening, on a member's ack, in the proposal that asks.
    fn reissue_recovery_shares(&mut self, tx: &mut coco_kv::Tx) -> Result<(), String> {
        let seqno = self.consensus.last_seqno + 1;
        if self
            .requested_hooks
            .contains(&proposals::NodeHook::TriggerLedgerRekey)
        {
            let mut new_secret = [0u8; 32];
            self.drbg.fill(&mut new_secret);
            let holders = recovery::holders(tx);
            let current = self.secrets.for_seqno(seqno).clone();
            return recovery::rekey(tx, &holders, &current, &new_secret, seqno, &mut self.drbg);
        }
        let latest = self.secrets.latest().clone();
        let previous_stored = self.secrets.previous_stored(latest.applies_from());
        if self
            .requested_hooks
            .contains(&proposals::NodeHook::TriggerRecoverySharesRefresh)
        {
            let holders = recovery::holders(tx);
            return recovery::issue(tx, &holders, latest.raw(), previous_stored, &mut self.drbg);
        }
        match recovery::due(tx, &mut self.store.begin()) {
            Some((holders, opening)) => {
                if opening {
                    recovery::record_first_secret(tx, latest.applies_from())?;
                }
                recovery::issue(tx, &holders, latest.raw(), previous_stored, &mut self.drbg)
            }
            None => Ok(()),
        }
    }

    /// Governance changes the node acts on: the service status (opening the app frontend) at
    /// once; renewed node and service certificates once `seqno` commits.
    fn observe_governance_writes(&mut self, write_set: &WriteSet, seqno: SeqNo) {
        if let Some(for_nodes) = write_set.singleton(tables::ENCRYPTED_LEDGER_SECRETS) {
            self.install_ledger_secrets(for_nodes, seqno);
        }
        if let Some(evidence) = write_set
            .singleton(tables::SNAPSHOT_EVIDENCE)
            .and_then(|v| tables::from_ccf_json::<tables::SnapshotEvidence>(v).ok())
        {
            self.snapshots.observe_evidence(evidence.version);
        }
        if let Some(nodes) = write_set.maps.get(tables::NODES_INFO) {
            self.refresh_peer_addresses();
            for (k, v) in &nodes.writes {
                let retiring = v
                    .as_ref()
                    .and_then(|v| tables::from_ccf_json::<tables::NodeInfo>(v).ok())
                    .is_some_and(|i| {
                        i.status == tables::NodeStatus::Retired && !i.retired_committed
                    });
                let id = String::from_utf8_lossy(k).into_owned();
                if retiring && !self.pending_retirements.iter().any(|(_, n)| *n == id) {
                    self.pending_retirements.push((seqno, id));
                }
            }
        }
        let own_cert = write_set
            .maps
            .get(tables::NODES_ENDORSED_CERTIFICATES)
            .and_then(|m| m.writes.get(self.identity.node_id.as_bytes()))
            .and_then(|v| v.as_ref())
            .and_then(|v| String::from_utf8(v.to_vec()).ok());
        if let Some(pem) = own_cert {
            self.pending_certificates
                .push_back((seqno, CertificateChange::Node(pem)));
        }
        let info = write_set
            .singleton(tables::SERVICE_INFO)
            .and_then(|v| tables::from_ccf_json::<tables::ServiceInfo>(v).ok());
        if let Some(info) = info {
            if info.cert != self.service.service_cert_pem {
                self.pending_certificates
                    .push_back((seqno, CertificateChange::Service(info.cert.clone())));
            }
            self.service_status = info.status;
            if info.current_service_create_txid.is_some() {
                self.service_create_txid = info.current_service_create_txid;
            }
            if info.status == ServiceStatus::Open {
                self.recovered_service_opened();
            }
        }
    }

    /// A transaction at `seqno` wrapped ledger secrets for the trusted nodes (a rekey): this
    /// node unwraps its own with its encryption key; a secret without a version applies from
    /// `seqno + 1`. A secret this node cannot unwrap stops it (as an entry it cannot apply).
    fn install_ledger_secrets(&mut self, value: &Bytes, seqno: SeqNo) {
        let result = (|| -> Result<(), String> {
            let for_nodes: tables::LedgerSecretsForNodes = tables::from_ccf_json(value)
                .map_err(|e| format!("encrypted ledger secrets: {e}"))?;
            let Some(mine) = for_nodes.get(&self.identity.node_id) else {
                // Not for this node (it joined later, with every secret in its NetworkInfo).
                return Ok(());
            };
            let mut secrets = Vec::with_capacity(mine.len());
            for s in mine {
                let raw: [u8; 32] = self
                    .identity
                    .encryption_key
                    .rsa_oaep_sha256_decrypt(&s.encrypted_secret)
                    .map_err(|e| format!("unwrapping a ledger secret: {e}"))?
                    .try_into()
                    .map_err(|_| "a ledger secret is 32 bytes".to_owned())?;
                secrets.push((s.version, raw, s.previous_secret_stored_version));
            }
            // A recovering service hands out the previous service's secrets this way.
            if self.receive_recovered_secrets(&secrets)? {
                return Ok(());
            }
            for (version, raw, stored) in secrets {
                self.secrets.add(version.unwrap_or(seqno + 1), raw, stored);
            }
            Ok(())
        })();
        if let Err(e) = result
            && self.storage_failure.is_none()
        {
            self.storage_failure = Some(format!("ledger secrets at {seqno}: {e}"));
        }
    }

    /// Nodes whose `nodes.info` status is Retired, with `retired_committed` as given.
    fn retired_nodes(&self, retired_committed: bool) -> Vec<String> {
        let mut ids = Vec::new();
        self.store.begin().for_each(tables::NODES_INFO, |k, v| {
            if tables::from_ccf_json::<tables::NodeInfo>(v).is_ok_and(|i| {
                i.status == tables::NodeStatus::Retired && i.retired_committed == retired_committed
            }) {
                ids.push(String::from_utf8_lossy(k).into_owned());
            }
            true
        });
        ids
    }

    /// On the primary: records `retired_committed` for nodes whose retirement has committed
    /// (one transaction for all of them).
    fn record_committed_retirements(&mut self, out: &mut Vec<Output>) {
        // Runs after every input: nothing to do in the common case.
        if self.pending_retirements.is_empty()
            || self.raft.role() != coco_consensus::Role::Leader
            || self.storage_failure.is_some()
        {
            return;
        }
        let commit = self.consensus.commit.seqno;
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_retirements)
            .into_iter()
            .partition(|(seqno, _)| *seqno <= commit);
        self.pending_retirements = waiting;
        if due.is_empty() {
            return;
        }
        let mut tx = self.store.begin();
        for (_, id) in due {
            let Some(raw) = tx.get(tables::NODES_INFO, id.as_bytes()) else {
                continue;
            };
            let Ok(mut info) = tables::from_ccf_json::<tables::NodeInfo>(&raw) else {
                continue;
            };
            if info.status == tables::NodeStatus::Retired && !info.retired_committed {
                info.retired_committed = true;
                tx.put(tables::NODES_INFO, Bytes::from(id), ccf_json(&info));
            }
        }
        let seqno = self.consensus.last_seqno + 1;
        if let Ok(CommitResult::Committed { write_set }) = self.store.commit(tx, seqno) {
            self.observe_governance_writes(&write_set, seqno);
            self.append_entry(&write_set, [0; 32], false, false, out);
        }
    }

    /// Re-reads the consensus participants' addresses from `nodes.info` (after it changed or
    /// was rolled back).
    fn refresh_peer_addresses(&mut self) {
        let mut peers = BTreeMap::new();
        let mut departed = std::collections::BTreeSet::new();
        self.store.begin().for_each(tables::NODES_INFO, |k, v| {
            if let Ok(info) = tables::from_ccf_json::<tables::NodeInfo>(v) {
                let id = String::from_utf8_lossy(k).into_owned();
                if info.status == tables::NodeStatus::Retired && info.retired_committed {
                    departed.insert(id);
                } else {
                    peers.insert(id, join::published(&info.node_to_node_interface).to_owned());
                }
            }
            true
        });
        self.peer_addresses = peers;
        self.departed_peers = departed;
    }

    /// Whether application endpoints are served. A node still rebuilding a recovered service's
    /// private maps keeps its frontend closed, as CCF's does until its private recovery ends.
    fn app_frontend_open(&self) -> bool {
        let private_maps_missing = self.recovery.as_ref().is_some_and(|r| r.replaying());
        self.service_status == ServiceStatus::Open && !private_maps_missing
    }

    fn view_of_last(&self) -> View {
        self.consensus.view
    }

    /// Serialises, encrypts and hashes one transaction, appends its Merkle leaf and emits it.
    fn append_entry(
        &mut self,
        write_set: &WriteSet,
        claims_digest: [u8; 32],
        force_chunk_after: bool,
        is_signature: bool,
        out: &mut Vec<Output>,
    ) -> TxId {
        let seqno = self.consensus.last_seqno + 1;
        let txid = TxId::new(self.consensus.view, seqno);
        let secret = self.secrets.for_seqno(seqno);
        let ce_digest = secret.commit_evidence_digest(txid);
        let flags = if force_chunk_after {
            EntryFlags::FORCE_LEDGER_CHUNK_AFTER
        } else {
            EntryFlags::NONE
        };
        let mut builder =
            EntryBuilder::for_write_set(flags, txid, &claims_digest, &ce_digest, write_set)
                .expect("a transaction of this node always fits the entry format");
        let iv = builder.iv();
        let (aad, private) = builder.aad_and_private_mut();
        let tag = secret.key().seal_in_place_detached(&iv, aad, private);
        let entry = builder.finish(&tag);
        self.tree.append(coco_merkle::transaction_leaf(
            &sha256(&entry),
            &ce_digest,
            &claims_digest,
        ));
        assert_eq!(self.tree.len(), seqno + 1, "Merkle leaf i must be seqno i");
        self.consensus.last_seqno = seqno;
        self.txs_since_signature += 1;
        if !is_signature {
            self.first_unsigned_ms.get_or_insert(self.now_ms);
        }
        self.bytes_since_chunk += entry.len() as u64;
        if force_chunk_after {
            self.bytes_since_chunk = 0;
        }
        let bytes = Bytes::from(entry);
        if is_signature {
            self.snapshots.signature_appended(seqno, &bytes);
        }
        self.index.record(write_set, seqno);
        let configuration = self.configuration_after(write_set);
        let idx = self
            .raft
            .propose(is_signature, configuration, bytes.clone())
            .expect("only the primary executes transactions");
        assert_eq!(idx, seqno, "the consensus log and the ledger agree");
        out.push(Output::Append {
            txid,
            bytes,
            force_chunk_after,
            is_signature,
        });
        txid
    }

    /// The configuration a just-applied transaction introduces, if it wrote `nodes.info`: the
    /// nodes recorded as Trusted vote from then on. Primary and backups derive it the same way.
    fn configuration_after(&self, write_set: &WriteSet) -> Option<coco_consensus::Configuration> {
        if !write_set.maps.contains_key(tables::NODES_INFO) {
            return None;
        }
        let mut nodes = std::collections::BTreeSet::new();
        self.store.begin().for_each(tables::NODES_INFO, |k, v| {
            if tables::from_ccf_json::<tables::NodeInfo>(v)
                .is_ok_and(|n| n.status == tables::NodeStatus::Trusted)
            {
                nodes.insert(String::from_utf8_lossy(k).into_owned());
            }
            true
        });
        Some(std::sync::Arc::new(nodes))
    }

    /// Writes a signature transaction over the current Merkle root (ccf-reference §1.9).
    fn emit_signature(&mut self, now: Now, out: &mut Vec<Output>) {
        if self.raft.role() != coco_consensus::Role::Leader || self.storage_failure.is_some() {
            // Leadership was lost in this very step (CheckQuorum, a higher term): the unsigned
            // suffix is the next primary's to keep or discard.
            self.txs_since_signature = 0;
            self.first_unsigned_ms = None;
            self.signatures_awaiting_commit.clear();
            return;
        }
        let seqno = self.consensus.last_seqno + 1;
        let txid = TxId::new(self.consensus.view, seqno);
        let root = self.tree.root();
        let sig_der = self.identity.node_key.sign_prehashed_sha256_der(&root);
        let signature = tables::SignatureValue {
            commit_seqno: 0,
            commit_view: 0,
            hashed_nonce: [0; 32],
            node: self.node_id_typed.clone(),
            root,
            seqno,
            sig: sig_der,
            view: txid.view,
            cert: self.identity.node_cert_pem.clone(),
        };
        let protected = coco_codec::cose::ccf_signature_protected_header(
            self.identity.service_key.cose_alg(),
            &self.service_kid_hex,
            &self.config.cose_issuer,
            &self.config.cose_subject,
            now.unix_seconds,
            &txid.to_string(),
        );
        let tbs = coco_codec::cose::sig_structure(&protected, &root);
        let cose_sig = self.identity.service_key.sign_cose(&tbs);
        let cose =
            coco_codec::cose::assemble_sign1(&protected, &Default::default(), None, &cose_sig)
                .expect("an empty unprotected header always encodes");
        let mut tx = self.store.begin();
        tx.put(
            tables::SIGNATURES,
            Bytes::from_static(&tables::SINGLETON_KEY),
            ccf_json(&signature),
        );
        tx.put(
            tables::COSE_SIGNATURES,
            Bytes::from_static(&tables::SINGLETON_KEY),
            Bytes::from(tables::cose_signature_value(&cose)),
        );
        tx.put(
            tables::TREE,
            Bytes::from_static(&tables::SINGLETON_KEY),
            Bytes::from(self.tree.serialise()),
        );
        let write_set = match self.store.commit(tx, seqno) {
            Ok(CommitResult::Committed { write_set }) => write_set,
            other => panic!("a signature transaction always commits, got {other:?}"),
        };
        // A snapshot point closes its chunk too, so the ledger after a snapshot starts a file.
        // No snapshots while a recovered service's private maps are not back: they would miss
        // them (CCF enables snapshot generation when private recovery ends).
        let snapshot_due = self.recovery.as_ref().is_none_or(|r| r.private_maps_back())
            && self.snapshots.due_at(seqno);
        let force_chunk_after = self.bytes_since_chunk >= self.config.chunk_size_bytes
            || std::mem::take(&mut self.chunk_requested)
            || snapshot_due;
        let txid = self.append_entry(&write_set, [0; 32], force_chunk_after, true, out);
        if snapshot_due {
            let leaf = self
                .tree
                .leaf(seqno)
                .expect("the signature's leaf was just appended");
            self.snapshots.capture(snapshot::SnapshotJob::new(
                seqno,
                self.store.snapshot(),
                leaf,
                snapshot::ccf_view_history(&self.consensus.view_history),
                self.secrets.for_seqno(seqno).clone(),
            ));
        }
        self.txs_since_signature = 0;
        self.last_signature_ms = now.monotonic_ms;
        self.first_unsigned_ms = None;
        if self.config.commit_latency_target_ms.is_some() {
            self.signatures_awaiting_commit
                .push_back((seqno, now.monotonic_ms));
        }
        self.consensus.last_signed_seqno = txid.seqno;
        let mut actions = Vec::new();
        self.raft.replicate(&mut actions);
        self.on_consensus(now, actions, out);
    }

    fn write_genesis(&mut self, genesis: &GenesisConfig, out: &mut Vec<Output>) {
        // CCF records the creating transaction in `service.info` from the start.
        self.service_create_txid = Some(TxId::new(FIRST_VIEW, 1));
        let id = &self.identity;
        let mut tx = self.store.begin();
        let singleton = || Bytes::from_static(&tables::SINGLETON_KEY);
        tx.put(
            tables::SERVICE_INFO,
            singleton(),
            ccf_json(&self.service_info(tables::ServiceStatus::Opening)),
        );
        let service_config = tables::ServiceConfiguration {
            recovery_threshold: genesis.recovery_threshold,
            reconfiguration_type: Some(tables::ReconfigurationType::OneTransaction),
            maximum_node_certificate_validity_days: Some(
                genesis.maximum_node_certificate_validity_days,
            ),
            recent_cose_proposals_window_size: Some(
                limits::RECENT_COSE_PROPOSALS_WINDOW_COUNT_DEFAULT,
            ),
            ..Default::default()
        };
        tx.put(
            tables::SERVICE_CONFIG,
            singleton(),
            ccf_json(&service_config),
        );
        if let Some(constitution) = &genesis.constitution {
            tx.put(
                tables::CONSTITUTION,
                singleton(),
                Bytes::from(tables::constitution_value(constitution)),
            );
        }
        for m in &genesis.members {
            let member_id = Bytes::from(cert_id(&m.cert_pem));
            tx.put(
                tables::MEMBERS_CERTS,
                member_id.clone(),
                Bytes::from(m.cert_pem.clone()),
            );
            let info = tables::MemberInfo {
                status: tables::MemberStatus::Accepted,
                member_data: m.member_data.clone().unwrap_or(serde_json::Value::Null),
                recovery_role: m.recovery_role,
            };
            tx.put(tables::MEMBERS_INFO, member_id.clone(), ccf_json(&info));
            if let Some(k) = &m.encryption_public_key_pem {
                tx.put(
                    tables::MEMBERS_ENCRYPTION_PUBLIC_KEYS,
                    member_id,
                    Bytes::from(k.clone()),
                );
            }
        }
        for u in &genesis.users {
            let user_id = Bytes::from(cert_id(&u.cert_pem));
            tx.put(
                tables::USERS_CERTS,
                user_id.clone(),
                Bytes::from(u.cert_pem.clone()),
            );
            if let Some(d) = &u.user_data {
                tx.put(
                    tables::USERS_INFO,
                    user_id,
                    ccf_json(&tables::UserInfo {
                        user_data: d.clone(),
                    }),
                );
            }
        }
        attestation::trust_own_quote(&mut tx, &id.quote_info());
        let mut node_info = id.trusted_node_info(
            genesis.node_to_node_interface.clone(),
            genesis.rpc_interfaces.clone(),
        );
        node_info.ledger_secret_seqno = Some(0);
        node_info.node_data = genesis.node_data.clone();
        tx.put(
            tables::NODES_INFO,
            Bytes::from(id.node_id.clone()),
            ccf_json(&node_info),
        );
        tx.put(
            tables::NODES_ENDORSED_CERTIFICATES,
            Bytes::from(id.node_id.clone()),
            Bytes::from(id.node_cert_pem.clone()),
        );
        for (node_id, info, cert_pem) in &genesis.other_trusted_nodes {
            tx.put(
                tables::NODES_INFO,
                Bytes::from(node_id.clone()),
                ccf_json(info),
            );
            tx.put(
                tables::NODES_ENDORSED_CERTIFICATES,
                Bytes::from(node_id.clone()),
                Bytes::from(cert_pem.clone()),
            );
        }
        let write_set = match self.store.commit(tx, 1) {
            Ok(CommitResult::Committed { write_set }) => write_set,
            other => panic!("genesis always commits, got {other:?}"),
        };
        let txid = self.append_entry(&write_set, [0; 32], false, false, out);
        assert_eq!(Some(txid), self.service_create_txid, "genesis is 2.1");
    }

    fn service_info(&self, status: tables::ServiceStatus) -> tables::ServiceInfo {
        tables::ServiceInfo {
            cert: self.service.service_cert_pem.clone(),
            status,
            previous_service_identity_version: None,
            recovery_count: Some(0),
            service_data: self.service_data.clone(),
            current_service_create_txid: self.service_create_txid,
        }
    }

    /// Records the evidence of the snapshot at `seqno` (primary): its digest goes into the
    /// `snapshot_evidence` map and the transaction's claims digest, so the receipt of this
    /// transaction proves the snapshot file.
    fn write_snapshot_evidence(&mut self, seqno: SeqNo, digest: [u8; 32], out: &mut Vec<Output>) {
        if !self.snapshots.serialised(seqno) {
            return; // rolled back meanwhile
        }
        if self.raft.role() != coco_consensus::Role::Leader || self.storage_failure.is_some() {
            // Only a primary writes evidence; the next snapshot point is the next primary's.
            self.snapshots.abandon(seqno);
            return;
        }
        let mut tx = self.store.begin();
        tx.put(
            tables::SNAPSHOT_EVIDENCE,
            Bytes::from_static(&tables::SINGLETON_KEY),
            ccf_json(&tables::SnapshotEvidence {
                hash: digest,
                version: seqno,
            }),
        );
        let evidence_seqno = self.consensus.last_seqno + 1;
        let write_set = match self.store.commit(tx, evidence_seqno) {
            Ok(CommitResult::Committed { write_set }) => write_set,
            other => panic!("snapshot evidence always commits, got {other:?}"),
        };
        let txid = self.append_entry(&write_set, digest, false, false, out);
        let Some(Output::Append { bytes, .. }) = out.last() else {
            unreachable!("append_entry ends with the entry's Append");
        };
        self.snapshots.evidence_appended(seqno, txid, bytes.clone());
        out.push(Output::Snapshot(snapshot::SnapshotAction::Write {
            seqno,
            evidence_seqno: txid.seqno,
        }));
    }

    fn write_service_status(&mut self, status: ServiceStatus, now: Now, out: &mut Vec<Output>) {
        let mut tx = self.store.begin();
        tx.put(
            tables::SERVICE_INFO,
            Bytes::from_static(&tables::SINGLETON_KEY),
            ccf_json(&self.service_info(status)),
        );
        if status == ServiceStatus::Open {
            // As when governance opens it: the chain of ledger secrets starts here (shares
            // follow once recovery members are active).
            recovery::record_first_secret(&mut tx, self.secrets.latest().applies_from())
                .expect("the secret chain's first record serialises");
            endorsement::endorse_previous_identity(
                &mut tx,
                &self.identity.service_key,
                now.unix_seconds,
            )
            .expect("a service that has just written its genesis can endorse itself");
        }
        let seqno = self.consensus.last_seqno + 1;
        let write_set = match self.store.commit(tx, seqno) {
            Ok(CommitResult::Committed { write_set }) => write_set,
            other => panic!("a service status change always commits, got {other:?}"),
        };
        self.append_entry(&write_set, [0; 32], false, false, out);
        self.service_status = status;
    }
}

/// CCF's JSON byte form of a built-in table value (compact, keys sorted).
fn ccf_json<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(tables::to_ccf_json(value).expect("built-in table values always serialise"))
}

/// CCF's member/user id: hex SHA-256 of the certificate DER. Certificates reaching the core
/// were validated by the host when the configuration was loaded.
fn cert_id(cert_pem: &str) -> String {
    let der = coco_crypto::pem_to_der_certs(cert_pem)
        .ok()
        .and_then(|v| v.into_iter().next())
        .expect("configured certificates are validated by the host before genesis");
    coco_crypto::cert_der_fingerprint_hex(&der)
}

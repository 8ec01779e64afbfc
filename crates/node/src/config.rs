//! What the core needs to know to run: signature and chunk cadence, limits, and what genesis
//! writes. The host builds this from the node's JSON configuration file.

use coco_types::limits;

/// Cadence and bounds of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Emit a signature transaction after this many transactions (`ledger_signatures.tx_count`).
    pub signature_tx_interval_count: u64,
    /// …or once this much time has passed since the last one (`ledger_signatures.delay`).
    pub signature_interval_ms: u64,
    /// …or, adaptively (`ledger_signatures.commit_latency_target`), once the oldest unsigned
    /// transaction has waited this target less the recent time from a signature to its commit
    /// (never more often than `limits::SIGNATURE_ADAPTIVE_INTERVAL_MIN_MS`).
    pub commit_latency_target_ms: Option<u64>,
    /// Close a ledger chunk at the first signature after this many bytes (`ledger.chunk_size`).
    pub chunk_size_bytes: u64,
    /// Snapshot at the first signature this many transactions after the last snapshot
    /// (`snapshots.tx_count`); 0 takes snapshots only when governance triggers one.
    pub snapshot_tx_interval_count: u64,
    /// Memory for ledger entries read back for receipts and historical queries.
    pub historical_cache_bytes_max: usize,
    /// Backpressure: refuse writes while this many transactions are not globally committed.
    pub uncommitted_tx_count_max: u64,
    /// Issuer and subject written into the CWT claims of COSE root signatures
    /// (`command.start.cose_signatures`).
    pub cose_issuer: String,
    pub cose_subject: String,
    /// Software version reported by `/node/version`.
    pub version: String,
    /// Consensus timing and batching.
    pub consensus: coco_consensus::Config,
    /// Seed of the consensus core's election-timer jitter (the host draws it at random).
    pub seed: u64,
    /// Seed of the core's random bit generator (recovery shares); the host draws it from the OS
    /// CSPRNG, the simulator fixes it.
    pub entropy: [u8; 32],
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            signature_tx_interval_count: limits::SIGNATURE_TX_INTERVAL_COUNT_DEFAULT,
            signature_interval_ms: limits::SIGNATURE_INTERVAL_MS_DEFAULT,
            commit_latency_target_ms: None,
            chunk_size_bytes: limits::LEDGER_CHUNK_SIZE_BYTES_DEFAULT,
            snapshot_tx_interval_count: limits::SNAPSHOT_TX_INTERVAL_COUNT_DEFAULT,
            historical_cache_bytes_max: limits::HISTORICAL_CACHE_BYTES_MAX_DEFAULT,
            uncommitted_tx_count_max: limits::UNCOMMITTED_TX_COUNT_MAX_DEFAULT,
            cose_issuer: "service.example.com".to_owned(),
            cose_subject: "ledger.signature".to_owned(),
            version: String::new(),
            consensus: coco_consensus::Config::default(),
            seed: 0,
            entropy: [0; 32],
        }
    }
}

/// A member declared in the start configuration.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub cert_pem: String,
    /// RSA public key (PEM) for recovery shares; its presence makes the member a recovery member.
    pub encryption_public_key_pem: Option<String>,
    pub member_data: Option<serde_json::Value>,
    pub recovery_role: Option<coco_codec::tables::MemberRecoveryRole>,
}

/// A user declared in the start configuration (pre-governance bootstrap, see [`GenesisConfig`]).
#[derive(Clone, Debug)]
pub struct UserSpec {
    pub cert_pem: String,
    pub user_data: Option<serde_json::Value>,
}

/// What the genesis transaction records.
#[derive(Clone, Debug, Default)]
pub struct GenesisConfig {
    pub members: Vec<MemberSpec>,
    /// Users recorded at genesis. Not reachable from a node's configuration — CCF adds users only
    /// by `set_user` proposals, and so does `coco node` — but kept for engine tests and tools that
    /// build a core directly.
    pub users: Vec<UserSpec>,
    /// Open the service right after genesis instead of by `transition_service_to_open`. As
    /// `users`: for engine tests and tools only; `coco node` always opens by governance.
    pub open_service_without_governance: bool,
    pub recovery_threshold: u64,
    pub maximum_node_certificate_validity_days: u64,
    /// This node's interfaces as written into `nodes.info`.
    pub rpc_interfaces: std::collections::BTreeMap<String, coco_codec::tables::NetInterface>,
    pub node_to_node_interface: coco_codec::tables::NetInterface,
    pub node_data: serde_json::Value,
    pub service_data: Option<serde_json::Value>,
    /// The JavaScript constitution recorded at genesis (`command.start.constitution_files`).
    pub constitution: Option<String>,
    /// Further nodes recorded as Trusted at genesis, with their certificates. CCF adds nodes by
    /// join; this is for in-process replication tests of the core until join lands.
    pub other_trusted_nodes: Vec<(String, coco_codec::tables::NodeInfo, String)>,
}

//! The node configuration file, modelled on CCF's `cchost` configuration
//! (`doc/host_config_schema/cchost_config.json`, ccf-reference §4.1).
//!
//! Unknown fields are rejected and every error names the offending field, so a typo in a
//! configuration never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coco_types::limits;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfigFile {
    pub network: Network,
    pub command: Command,
    #[serde(default)]
    pub node_certificate: NodeCertificate,
    #[serde(default)]
    pub ledger: Ledger,
    #[serde(default)]
    pub ledger_signatures: LedgerSignatures,
    #[serde(default)]
    pub snapshots: Snapshots,
    #[serde(default)]
    pub consensus: Consensus,
    #[serde(default)]
    pub output_files: OutputFiles,
    /// Memory for ledger entries read back for receipts and historical queries (CCF's
    /// `historical_cache_soft_limit`, default "512MB").
    #[serde(default = "default_historical_cache")]
    pub historical_cache_soft_limit: Size,
    /// Options that weaken security, for tests only. Never set in production.
    #[serde(default)]
    pub insecure_test_options: InsecureTestOptions,
}

fn default_historical_cache() -> Size {
    Size(limits::HISTORICAL_CACHE_BYTES_MAX_DEFAULT as u64)
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub rpc_interfaces: BTreeMap<String, RpcInterface>,
    /// Where peers reach this node's node-to-node channels (consensus); recorded in
    /// `nodes.info`. Required to join, and for a genesis node others will join.
    pub node_to_node_interface: Option<Interface>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub bind_address: String,
    pub published_address: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RpcInterface {
    pub bind_address: String,
    pub published_address: Option<String>,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// `HTTP1` or `HTTP2`. Both are always negotiated by ALPN; this is what `nodes.info` records.
    #[serde(default = "default_app_protocol")]
    pub app_protocol: String,
    #[serde(default = "default_sessions_soft")]
    pub max_open_sessions_soft: usize,
    #[serde(default = "default_sessions_hard")]
    pub max_open_sessions_hard: usize,
    #[serde(default)]
    pub http_configuration: HttpConfiguration,
    /// CCF's `redirections`: answer writes on a backup with 307 to the primary
    /// (`to_primary`, `NodeByRole` or `StaticAddress`) instead of forwarding them.
    pub redirections: Option<coco_codec::tables::Redirections>,
}

fn default_protocol() -> String {
    "tcp".into()
}
fn default_app_protocol() -> String {
    "HTTP1".into()
}
fn default_sessions_soft() -> usize {
    limits::SESSIONS_SOFT_MAX_DEFAULT
}
fn default_sessions_hard() -> usize {
    limits::SESSIONS_HARD_MAX_DEFAULT
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfiguration {
    #[serde(default = "default_body")]
    pub max_body_size: Size,
    #[serde(default = "default_header")]
    pub max_header_size: Size,
    #[serde(default = "default_headers_count")]
    pub max_headers_count: usize,
}

impl Default for HttpConfiguration {
    fn default() -> Self {
        HttpConfiguration {
            max_body_size: default_body(),
            max_header_size: default_header(),
            max_headers_count: default_headers_count(),
        }
    }
}
fn default_body() -> Size {
    Size(limits::HTTP_BODY_SIZE_BYTES_MAX_DEFAULT as u64)
}
fn default_header() -> Size {
    Size(limits::HTTP_HEADER_SIZE_BYTES_MAX_DEFAULT as u64)
}
fn default_headers_count() -> usize {
    limits::HTTP_HEADER_COUNT_MAX_DEFAULT
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    #[serde(rename = "type")]
    pub kind: CommandKind,
    #[serde(default = "default_service_cert_file")]
    pub service_certificate_file: PathBuf,
    pub start: Option<Start>,
    pub join: Option<Join>,
    pub recover: Option<Recover>,
}

/// `command.recover` (CCF `Recover`): start a new service from a dead one's ledger, found in
/// `ledger.directory`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// The dead service's certificate (PEM): the new service endorses it.
    pub previous_service_identity_file: PathBuf,
    #[serde(default = "default_validity_days")]
    pub initial_service_certificate_validity_days: u32,
    /// The new service certificate's subject (CCF keeps the previous service's; coco names it).
    #[serde(default = "default_service_subject")]
    pub service_subject_name: String,
    #[serde(default)]
    pub cose_signatures: CoseSignatures,
}

/// `command.join`: where to ask to join and how to poll.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// An RPC address of a node of the service (`host:port`).
    pub target_rpc_address: String,
    /// How long to wait between join attempts while Pending or unreachable.
    #[serde(default = "default_join_retry")]
    pub retry_timeout: DurationMs,
    /// Follow a redirect to the primary (CCF's option; coco always asks the primary it is told
    /// of when the target is a backup).
    #[serde(default = "yes")]
    pub follow_redirect: bool,
    /// Download the latest committed snapshot from the node that accepted the join and start
    /// from it (then only the ledger after it is replicated); without one, replay from genesis.
    #[serde(default = "yes")]
    pub fetch_recent_snapshot: bool,
    /// Refuse snapshots larger than this (`fetch_snapshot_max_size`, "10GB").
    #[serde(default = "default_fetch_snapshot_max")]
    pub fetch_snapshot_max_size: Size,
}

fn default_fetch_snapshot_max() -> Size {
    Size(limits::SNAPSHOT_FETCH_BYTES_MAX_DEFAULT)
}

/// `snapshots` (ccf-reference §4.1).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshots {
    #[serde(default = "default_snapshots_dir")]
    pub directory: PathBuf,
    /// Transactions between snapshots; 0 snapshots only when governance triggers one.
    #[serde(default = "default_snapshot_tx_count")]
    pub tx_count: u64,
    /// Where committed snapshots from elsewhere may be found (read only): a joining node starts
    /// from the latest committed snapshot here, in `directory` or fetched from the primary.
    #[serde(default)]
    pub read_only_directory: Option<PathBuf>,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            directory: default_snapshots_dir(),
            tx_count: default_snapshot_tx_count(),
            read_only_directory: None,
        }
    }
}

fn default_snapshots_dir() -> PathBuf {
    "snapshots".into()
}
fn default_snapshot_tx_count() -> u64 {
    limits::SNAPSHOT_TX_INTERVAL_COUNT_DEFAULT
}

fn default_join_retry() -> DurationMs {
    DurationMs(1000)
}
fn yes() -> bool {
    true
}

fn default_service_cert_file() -> PathBuf {
    "service_cert.pem".into()
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum CommandKind {
    Start,
    Join,
    Recover,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    pub members: Vec<MemberConfig>,
    #[serde(default)]
    pub constitution_files: Vec<PathBuf>,
    #[serde(default)]
    pub service_configuration: ServiceConfiguration,
    #[serde(default = "default_validity_days")]
    pub initial_service_certificate_validity_days: u32,
    #[serde(default = "default_service_subject")]
    pub service_subject_name: String,
    #[serde(default)]
    pub cose_signatures: CoseSignatures,
    pub service_data_json_file: Option<PathBuf>,
}

fn default_validity_days() -> u32 {
    limits::CERTIFICATE_VALIDITY_DAYS_DEFAULT
}
fn default_service_subject() -> String {
    "CN=CCF Service".into()
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub certificate_file: PathBuf,
    pub encryption_public_key_file: Option<PathBuf>,
    pub data_json_file: Option<PathBuf>,
    /// `NonParticipant`, `Participant` or `Owner`.
    pub recovery_role: Option<coco_codec::tables::MemberRecoveryRole>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfiguration {
    #[serde(default = "one")]
    pub recovery_threshold: u64,
    #[serde(default = "default_max_node_cert_days")]
    pub maximum_node_certificate_validity_days: u64,
}

impl Default for ServiceConfiguration {
    fn default() -> Self {
        ServiceConfiguration {
            recovery_threshold: 1,
            maximum_node_certificate_validity_days: default_max_node_cert_days(),
        }
    }
}
fn one() -> u64 {
    1
}
fn default_max_node_cert_days() -> u64 {
    365
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoseSignatures {
    #[serde(default = "default_cose_issuer")]
    pub issuer: String,
    #[serde(default = "default_cose_subject")]
    pub subject: String,
}

impl Default for CoseSignatures {
    fn default() -> Self {
        CoseSignatures {
            issuer: default_cose_issuer(),
            subject: default_cose_subject(),
        }
    }
}
fn default_cose_issuer() -> String {
    "service.example.com".into()
}
fn default_cose_subject() -> String {
    "ledger.signature".into()
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCertificate {
    #[serde(default = "default_node_subject")]
    pub subject_name: String,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    #[serde(default = "default_curve")]
    pub curve_id: String,
    #[serde(default = "default_validity_days")]
    pub initial_validity_days: u32,
}

impl Default for NodeCertificate {
    fn default() -> Self {
        NodeCertificate {
            subject_name: default_node_subject(),
            subject_alt_names: Vec::new(),
            curve_id: default_curve(),
            initial_validity_days: default_validity_days(),
        }
    }
}
fn default_node_subject() -> String {
    "CN=CCF Node".into()
}
fn default_curve() -> String {
    "Secp384R1".into()
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    #[serde(default = "default_ledger_dir")]
    pub directory: PathBuf,
    #[serde(default = "default_chunk_size")]
    pub chunk_size: Size,
    #[serde(default)]
    pub read_only_directories: Vec<PathBuf>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            directory: default_ledger_dir(),
            chunk_size: default_chunk_size(),
            read_only_directories: Vec::new(),
        }
    }
}
fn default_ledger_dir() -> PathBuf {
    "ledger".into()
}
fn default_chunk_size() -> Size {
    Size(limits::LEDGER_CHUNK_SIZE_BYTES_DEFAULT)
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSignatures {
    #[serde(default = "default_sig_tx_count")]
    pub tx_count: u64,
    #[serde(default = "default_sig_delay")]
    pub delay: DurationMs,
    /// coco's own: sign early enough that transactions commit within this (adaptive signature
    /// interval, ADR 0008), on top of `tx_count` and `delay`, and hold new writes on the primary
    /// while commits lag it (admission, ADR 0010). Absent: CCF's fixed cadence, no holding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_latency_target: Option<DurationMs>,
}

impl Default for LedgerSignatures {
    fn default() -> Self {
        LedgerSignatures {
            tx_count: default_sig_tx_count(),
            delay: default_sig_delay(),
            commit_latency_target: None,
        }
    }
}
fn default_sig_tx_count() -> u64 {
    limits::SIGNATURE_TX_INTERVAL_COUNT_DEFAULT
}
fn default_sig_delay() -> DurationMs {
    DurationMs(limits::SIGNATURE_INTERVAL_MS_DEFAULT)
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Consensus {
    #[serde(default = "default_max_uncommitted")]
    pub max_uncommitted_tx_count: u64,
    /// Heartbeat interval of a primary.
    #[serde(default = "default_message_timeout")]
    pub message_timeout: DurationMs,
    /// Followers elect a new primary after hearing nothing for up to this long.
    #[serde(default = "default_election_timeout")]
    pub election_timeout: DurationMs,
}

impl Default for Consensus {
    fn default() -> Self {
        Consensus {
            max_uncommitted_tx_count: default_max_uncommitted(),
            message_timeout: default_message_timeout(),
            election_timeout: default_election_timeout(),
        }
    }
}
fn default_message_timeout() -> DurationMs {
    DurationMs(limits::CONSENSUS_MESSAGE_TIMEOUT_MS_DEFAULT)
}
fn default_election_timeout() -> DurationMs {
    DurationMs(limits::CONSENSUS_ELECTION_TIMEOUT_MS_DEFAULT)
}
fn default_max_uncommitted() -> u64 {
    limits::UNCOMMITTED_TX_COUNT_MAX_DEFAULT
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFiles {
    pub node_certificate_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub rpc_addresses_file: Option<PathBuf>,
    /// Written with the bound node-to-node address (useful with port 0).
    pub node_to_node_address_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InsecureTestOptions {
    /// Write the raw ledger secret (hex) to this file at startup, so that an independent
    /// checker can decrypt private domains. Test-only: it defeats confidentiality at rest.
    pub ledger_secret_file: Option<PathBuf>,
}

/// Parses `<digits><unit>` where `unit` is one of `units` (the empty unit included if listed).
fn parse_with_unit(
    s: &str,
    what: &str,
    example: &str,
    units: &[(&str, u64)],
) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid {what} {s:?}: expected e.g. {example}"))?;
    let unit = unit.trim();
    let mult = units
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let names: Vec<&str> = units
                .iter()
                .map(|(u, _)| *u)
                .filter(|u| !u.is_empty())
                .collect();
            format!(
                "invalid {what} unit {unit:?} in {s:?}: expected {}",
                names.join(", ")
            )
        })?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{what} {s:?} overflows"))
}

/// Deserialises either an integer or a string with a unit, through `parse`.
fn number_or_string<'de, D: serde::Deserializer<'de>>(
    d: D,
    parse: fn(&str) -> Result<u64, String>,
) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => parse(&s).map_err(serde::de::Error::custom),
    }
}

/// A byte size written as CCF writes it: an integer or a string like `"5MB"`, `"16KB"`, `"512"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "u64")]
pub struct Size(pub u64);

impl From<Size> for u64 {
    fn from(s: Size) -> u64 {
        s.0
    }
}

impl Size {
    pub fn parse(s: &str) -> Result<Size, String> {
        const UNITS: &[(&str, u64)] = &[
            ("", 1),
            ("B", 1),
            ("KB", 1 << 10),
            ("MB", 1 << 20),
            ("GB", 1 << 30),
        ];
        parse_with_unit(s, "size", "\"512\", \"16KB\", \"5MB\"", UNITS).map(Size)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_string(d, |s| Size::parse(s).map(|x| x.0)).map(Size)
    }
}

/// A duration written as CCF writes it: `"100ms"`, `"1s"`, `"2min"`, or an integer of ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "u64")]
pub struct DurationMs(pub u64);

impl From<DurationMs> for u64 {
    fn from(d: DurationMs) -> u64 {
        d.0
    }
}

impl DurationMs {
    pub fn parse(s: &str) -> Result<DurationMs, String> {
        const UNITS: &[(&str, u64)] = &[
            ("", 1),
            ("ms", 1),
            ("s", 1000),
            ("min", 60_000),
            ("h", 3_600_000),
        ];
        parse_with_unit(s, "duration", "\"100ms\", \"1s\"", UNITS).map(DurationMs)
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_string(d, |s| DurationMs::parse(s).map(|x| x.0)).map(DurationMs)
    }
}

impl NodeConfigFile {
    /// Parses a configuration from JSON text; `path` is used in messages only. Errors name the
    /// field (serde's path) and the line/column.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg: NodeConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            invalid(format!("at '{field}': {}", e.inner()))
        })?;
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn validate(&self) -> Result<(), String> {
        if self.network.rpc_interfaces.is_empty() {
            return Err("at 'network.rpc_interfaces': at least one interface is required".into());
        }
        for (name, i) in &self.network.rpc_interfaces {
            i.bind_address
                .parse::<std::net::SocketAddr>()
                .map_err(|e| format!("at 'network.rpc_interfaces.{name}.bind_address': {:?} is not host:port ({e})", i.bind_address))?;
            if !matches!(i.app_protocol.as_str(), "HTTP1" | "HTTP2") {
                return Err(format!(
                    "at 'network.rpc_interfaces.{name}.app_protocol': expected HTTP1 or HTTP2, got {:?}",
                    i.app_protocol
                ));
            }
            if i.protocol != "tcp" {
                return Err(format!(
                    "at 'network.rpc_interfaces.{name}.protocol': only \"tcp\" is supported, got {:?}",
                    i.protocol
                ));
            }
            if i.max_open_sessions_soft > i.max_open_sessions_hard {
                return Err(format!(
                    "at 'network.rpc_interfaces.{name}': max_open_sessions_soft exceeds max_open_sessions_hard"
                ));
            }
        }
        match self.command.kind {
            CommandKind::Start => {
                let start = self
                    .command
                    .start
                    .as_ref()
                    .ok_or("at 'command.start': required when command.type is Start")?;
                if start.members.is_empty() {
                    return Err(
                        "at 'command.start.members': a service needs at least one member".into(),
                    );
                }
                if start.initial_service_certificate_validity_days == 0 {
                    return Err("at 'command.start.initial_service_certificate_validity_days': must be at least 1".into());
                }
            }
            CommandKind::Join => {
                let join = self
                    .command
                    .join
                    .as_ref()
                    .ok_or("at 'command.join': required when command.type is Join")?;
                if join
                    .target_rpc_address
                    .parse::<std::net::SocketAddr>()
                    .is_err()
                {
                    return Err(format!(
                        "at 'command.join.target_rpc_address': expected host:port, got {:?}",
                        join.target_rpc_address
                    ));
                }
                if join.retry_timeout.0 == 0 {
                    return Err("at 'command.join.retry_timeout': must be positive".into());
                }
                if self.network.node_to_node_interface.is_none() {
                    return Err("at 'network.node_to_node_interface': required to join".into());
                }
            }
            CommandKind::Recover => {
                let recover = self
                    .command
                    .recover
                    .as_ref()
                    .ok_or("at 'command.recover': required when command.type is Recover")?;
                if recover.initial_service_certificate_validity_days == 0 {
                    return Err(
                        "at 'command.recover.initial_service_certificate_validity_days': must be at least 1"
                            .into(),
                    );
                }
            }
        }
        if self.consensus.message_timeout.0 == 0
            || self.consensus.election_timeout.0 <= self.consensus.message_timeout.0
        {
            return Err(format!(
                "at 'consensus.election_timeout': must exceed consensus.message_timeout ({} ms), got {} ms",
                self.consensus.message_timeout.0, self.consensus.election_timeout.0
            ));
        }
        if !matches!(
            self.node_certificate.curve_id.as_str(),
            "Secp384R1" | "Secp256R1"
        ) {
            return Err(format!(
                "at 'node_certificate.curve_id': expected Secp384R1 or Secp256R1, got {:?}",
                self.node_certificate.curve_id
            ));
        }
        if self.ledger.chunk_size.0 == 0
            || self.ledger.chunk_size.0 > limits::LEDGER_CHUNK_SIZE_BYTES_MAX
        {
            return Err(format!(
                "at 'ledger.chunk_size': must be between 1 byte and {} bytes",
                limits::LEDGER_CHUNK_SIZE_BYTES_MAX
            ));
        }
        if self.ledger_signatures.tx_count == 0 {
            return Err("at 'ledger_signatures.tx_count': must be at least 1".into());
        }
        if self.ledger_signatures.delay.0 == 0 {
            return Err("at 'ledger_signatures.delay': must be at least 1ms".into());
        }
        if self
            .ledger_signatures
            .commit_latency_target
            .is_some_and(|t| t.0 == 0)
        {
            return Err(
                "at 'ledger_signatures.commit_latency_target': must be at least 1ms".into(),
            );
        }
        if self.consensus.max_uncommitted_tx_count == 0 {
            return Err("at 'consensus.max_uncommitted_tx_count': must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
        "network": {"rpc_interfaces": {"main": {"bind_address": "127.0.0.1:8000"}}},
        "command": {"type": "Start", "start": {"members": [{"certificate_file": "m.pem"}]}}
    }"#;

    #[test]
    fn minimal_config_gets_ccf_defaults() {
        let c = NodeConfigFile::parse(MINIMAL, Path::new("x.json")).unwrap();
        assert_eq!(c.ledger.chunk_size, Size(5 * 1024 * 1024));
        assert_eq!(c.ledger_signatures.tx_count, 5000);
        assert_eq!(c.ledger_signatures.delay, DurationMs(1000));
        assert_eq!(
            c.network.rpc_interfaces["main"]
                .http_configuration
                .max_body_size,
            Size(1024 * 1024)
        );
        assert_eq!(c.node_certificate.curve_id, "Secp384R1");
        assert_eq!(c.historical_cache_soft_limit, Size(512 * 1024 * 1024));
        let small = MINIMAL.replacen('{', r#"{"historical_cache_soft_limit": "10MB","#, 1);
        let c = NodeConfigFile::parse(&small, Path::new("x.json")).unwrap();
        assert_eq!(c.historical_cache_soft_limit, Size(10 * 1024 * 1024));
        assert_eq!(c.ledger_signatures.commit_latency_target, None);
        let adaptive = MINIMAL.replacen(
            '{',
            r#"{"ledger_signatures": {"commit_latency_target": "20ms"},"#,
            1,
        );
        let c = NodeConfigFile::parse(&adaptive, Path::new("x.json")).unwrap();
        assert_eq!(
            c.ledger_signatures.commit_latency_target,
            Some(DurationMs(20))
        );
        let zero = adaptive.replace("20ms", "0ms");
        let err = NodeConfigFile::parse(&zero, Path::new("x.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ledger_signatures.commit_latency_target"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_field() {
        // (mutation of the minimal config as JSON text, expected fragment of the error)
        let cases: &[(&str, &str, &str)] = &[
            (
                r#""bind_address": "127.0.0.1:8000""#,
                r#""bind_address": "127.0.0.1:8000", "colour": 1"#,
                "network.rpc_interfaces.main",
            ),
            (
                r#""bind_address": "127.0.0.1:8000""#,
                r#""bind_address": "nowhere""#,
                "network.rpc_interfaces.main.bind_address",
            ),
            (r#""type": "Start""#, r#""type": "Begin""#, "command.type"),
            (r#""type": "Start""#, r#""type": "Join""#, "command.join"),
            (
                r#""type": "Start""#,
                r#""type": "Recover""#,
                "command.recover",
            ),
            (
                r#""members": [{"certificate_file": "m.pem"}]"#,
                r#""members": []"#,
                "command.start.members",
            ),
            (
                r#""members": [{"certificate_file": "m.pem"}]"#,
                r#""members": [{"certificate_file": 7}]"#,
                "command.start.members[0].certificate_file",
            ),
        ];
        for (from, to, want) in cases {
            let text = MINIMAL.replace(from, to);
            assert_ne!(text, MINIMAL, "mutation {to} did not apply");
            let err = NodeConfigFile::parse(&text, Path::new("x.json"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(want),
                "mutation {to}: error {err:?} does not name {want}"
            );
        }
        let slow_heartbeat = MINIMAL.replacen(
            '{',
            r#"{"consensus": {"message_timeout": "2s", "election_timeout": "1s"},"#,
            1,
        );
        let err = NodeConfigFile::parse(&slow_heartbeat, Path::new("x.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("consensus.election_timeout"), "{err}");
        let extra = MINIMAL.replacen('{', r#"{"ledger": {"chunk_size": "5XB"},"#, 1);
        let err = NodeConfigFile::parse(&extra, Path::new("x.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ledger.chunk_size") && err.contains("XB"),
            "{err}"
        );
    }

    #[test]
    fn sizes_and_durations() {
        for (s, want) in [
            ("512", Some(512)),
            ("16KB", Some(16384)),
            ("5MB", Some(5 << 20)),
            ("1GB", Some(1 << 30)),
            ("5 MB", Some(5 << 20)),
            ("MB", None),
            ("-1KB", None),
            ("1TB", None),
        ] {
            assert_eq!(Size::parse(s).ok().map(|x| x.0), want, "{s}");
        }
        for (s, want) in [
            ("100ms", Some(100)),
            ("1s", Some(1000)),
            ("2min", Some(120_000)),
            ("5", Some(5)),
            ("1d", None),
            ("", None),
        ] {
            assert_eq!(DurationMs::parse(s).ok().map(|x| x.0), want, "{s}");
        }
    }
}

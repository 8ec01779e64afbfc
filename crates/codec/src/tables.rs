//! Names and value encodings of CCF's built-in maps.
//!
//! CCF's typed maps choose a serialiser per map (`include/ccf/service/map.h`):
//!
//! | Wrapper | Key bytes | Value bytes |
//! |---|---|---|
//! | `ServiceMap<K, V>` | raw ("blit"): ids as their ASCII hex | JSON |
//! | `ServiceValue<V>` | [`SINGLETON_KEY`] (8 zero bytes) | JSON |
//! | `RawCopySerialisedMap<K, V>` (certs, tree) | raw | raw (e.g. PEM text) |
//!
//! JSON values are what `nlohmann::json::dump()` prints (`JsonSerialiser`,
//! `include/ccf/kv/serialisers/json_serialiser.h`): compact, object keys in byte order (nlohmann's
//! default object is a `std::map`), non-ASCII UTF-8 left as is. [`to_ccf_json`] prints exactly that
//! whatever serde_json features other crates enable.
//!
//! CCF's `DECLARE_JSON_OPTIONAL_FIELDS` writes an optional field only when it differs from the
//! field's default (`WRITE_OPTIONAL_WITH_RENAMES_FOR_JSON_NEXT`, `include/ccf/ds/json.h`): an
//! empty `std::optional` is left out, and so is a `nlohmann::json` that is null, a `bool` that is
//! false or a string that is empty. The structs below mirror that field by field with
//! `skip_serializing_if`. Byte vectors are base64 strings, `Sha256Hash` is 64 lowercase hex
//! characters, a `TxID` is `"view.seqno"`, enums are strings.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use coco_types::{MemberId, NodeId, TxId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------- map names

/// `ServiceInfo` singleton (`include/ccf/service/tables/service.h`).
pub const SERVICE_INFO: &str = "public:ccf.gov.service.info";
/// `ServiceConfiguration` singleton (`src/service/tables/config.h`).
pub const SERVICE_CONFIG: &str = "public:ccf.gov.service.config";
/// Node id → `NodeInfo` (`include/ccf/service/tables/nodes.h`).
pub const NODES_INFO: &str = "public:ccf.gov.nodes.info";
/// Node id → service-endorsed node certificate PEM, raw.
pub const NODES_ENDORSED_CERTIFICATES: &str = "public:ccf.gov.nodes.endorsed_certificates";
/// Virtual-platform measurement → `"AllowedToJoin"` (`virtual_measurements.h`).
pub const NODES_VIRTUAL_MEASUREMENTS: &str = "public:ccf.gov.nodes.virtual.measurements";
/// Set of trusted virtual host data digests (`host_data.h`).
pub const NODES_VIRTUAL_HOST_DATA: &str = "public:ccf.gov.nodes.virtual.host_data";
/// Member id → certificate PEM, raw (`include/ccf/service/tables/members.h`).
pub const MEMBERS_CERTS: &str = "public:ccf.gov.members.certs";
/// Member id → `MemberDetails` JSON.
pub const MEMBERS_INFO: &str = "public:ccf.gov.members.info";
/// Member id → RSA encryption public key PEM, raw; present only for recovery members.
pub const MEMBERS_ENCRYPTION_PUBLIC_KEYS: &str = "public:ccf.gov.members.encryption_public_keys";
/// Member id → `MemberAck` JSON.
pub const MEMBERS_ACKS: &str = "public:ccf.gov.members.acks";
/// User id → certificate PEM, raw (`include/ccf/service/tables/users.h`).
pub const USERS_CERTS: &str = "public:ccf.gov.users.certs";
/// User id → `UserDetails` JSON.
pub const USERS_INFO: &str = "public:ccf.gov.users.info";
/// The constitution singleton: a JSON string of the JS source (`constitution.h`).
pub const CONSTITUTION: &str = "public:ccf.gov.constitution";
/// The node signature singleton of a signature transaction (`src/service/tables/signatures.h`).
pub const SIGNATURES: &str = "public:ccf.internal.signatures";
/// The COSE root signature singleton: JSON string of base64 COSE_Sign1.
pub const COSE_SIGNATURES: &str = "public:ccf.internal.cose_signatures";
/// The serialised Merkle tree singleton, raw bytes.
pub const TREE: &str = "public:ccf.internal.tree";
/// Ledger secrets for each trusted node, RSA-OAEP wrapped (rekey): [`LedgerSecretsForNodes`].
pub const ENCRYPTED_LEDGER_SECRETS: &str = "public:ccf.internal.encrypted_ledger_secrets";
/// The chain of past ledger secrets singleton: [`EncryptedLedgerSecretInfo`] JSON.
pub const HISTORICAL_ENCRYPTED_LEDGER_SECRET: &str =
    "public:ccf.internal.historical_encrypted_ledger_secret";
/// The identity of the service before the last disaster recovery: JSON string of its PEM.
pub const PREVIOUS_SERVICE_IDENTITY: &str = "public:ccf.gov.service.previous_service_identity";
/// The last Merkle root the previous service signed: JSON string of its hex.
pub const PREVIOUS_SERVICE_LAST_SIGNED_ROOT: &str =
    "public:ccf.internal.previous_service_last_signed_root";
/// The newest service identity's COSE endorsement of the one before it (or of itself, for a
/// service never recovered): [`CoseEndorsement`] JSON.
pub const PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT: &str =
    "public:ccf.internal.previous_service_identity_endorsement";
/// Recovery shares members submitted to a recovering service: member id → JSON string of the
/// base64 of the share AES-GCM encrypted under the current ledger secret (tag ‖ IV ‖ ct).
pub const ENCRYPTED_SUBMITTED_SHARES: &str = "public:ccf.internal.encrypted_submitted_shares";
/// The recovery shares singleton: [`RecoverySharesInfo`] JSON.
pub const RECOVERY_SHARES: &str = "public:ccf.internal.recovery_shares";
/// The evidence of the latest snapshot singleton: [`SnapshotEvidence`] JSON.
pub const SNAPSHOT_EVIDENCE: &str = "public:ccf.internal.snapshot_evidence";

/// The key of every single-value map (`ZeroBlitUnitCreator`: a u64 0, 8 zero bytes).
pub const SINGLETON_KEY: [u8; 8] = [0; 8];

// ---------------------------------------------------------------- JSON

/// Prints `value` as CCF's C++ does: compact, object keys sorted by bytes.
///
/// Floats are printed by serde_json (shortest round trip), which can differ from nlohmann in
/// exponent form (`1e21` vs `1e+21`); none of CCF's built-in values hold floats, only free-form
/// `*_data` fields could.
pub fn to_ccf_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    let mut out = Vec::new();
    write_sorted(&mut out, &v);
    Ok(out)
}

/// Parses a JSON value written by CCF (or by [`to_ccf_json`]).
pub fn from_ccf_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn write_sorted(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_sorted(out, v);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_sorted(out, item);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(out, s),
        // Scalars have one compact form, which serde_json already prints.
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// serde_json escapes exactly what nlohmann does with `ensure_ascii = false`: `"`, `\`, the
/// short escapes `\b \f \n \r \t`, and other control characters as `\u00xx` in lowercase hex.
fn write_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a string to a Vec cannot fail");
}

/// The value stored in [`COSE_SIGNATURES`]: the COSE_Sign1 bytes as a JSON string of base64
/// (CCF's `to_json` for `std::vector<uint8_t>`, `include/ccf/ds/json.h`).
pub fn cose_signature_value(sign1: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sign1.len() * 4 / 3 + 8);
    out.push(b'"');
    out.extend_from_slice(BASE64.encode(sign1).as_bytes());
    out.push(b'"');
    out
}

/// Decodes a [`COSE_SIGNATURES`] value back to COSE_Sign1 bytes.
pub fn parse_cose_signature_value(value: &[u8]) -> Result<Vec<u8>, TableError> {
    let s: String = serde_json::from_slice(value)?;
    BASE64
        .decode(s)
        .map_err(|e| TableError::Base64(e.to_string()))
}

/// The value stored in [`CONSTITUTION`]: the JS source as a JSON string
/// (`ServiceValue<std::string>`).
pub fn constitution_value(source: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(source.len() + 2);
    write_string(&mut out, source);
    out
}

/// Why a table value failed to decode.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("invalid JSON value: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid base64: {0}")]
    Base64(String),
}

mod b64 {
    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        BASE64.decode(s).map_err(serde::de::Error::custom)
    }
}

mod b64_opt {
    use super::BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&BASE64.encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| BASE64.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_null(v: &Value) -> bool {
    v.is_null()
}

// ---------------------------------------------------------------- signatures

/// Value of [`SIGNATURES`]: `PrimarySignature` (`src/service/tables/signatures.h`) with its base
/// `NodeSignature` (`src/service/tables/node_signature.h`). Required: `sig`, `node`,
/// `hashed_nonce`, `seqno`, `view`, `commit_seqno`, `commit_view`, `root`; optional `cert`
/// (left out when empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureValue {
    /// Deprecated, CCF always writes 0.
    pub commit_seqno: u64,
    /// Deprecated, CCF always writes 0.
    pub commit_view: u64,
    /// Unused nonce, all zeros in CCF ("Nonce is currently empty", `src/node/history.h`).
    #[serde(with = "hex32")]
    pub hashed_nonce: [u8; 32],
    /// Node id of the primary that signed.
    pub node: NodeId,
    /// Merkle root over leaves 0..seqno-1.
    #[serde(with = "hex32")]
    pub root: [u8; 32],
    /// Seqno of this signature transaction.
    pub seqno: u64,
    /// DER ECDSA signature by the node key over `root` as a prehashed digest.
    #[serde(with = "b64")]
    pub sig: Vec<u8>,
    /// View of this signature transaction.
    pub view: u64,
    /// Service-endorsed certificate of the signing node, PEM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert: String,
}

/// `public:ccf.internal.snapshot_evidence` (`SnapshotHash`, `src/service/tables/snapshot_evidence.h`):
/// the SHA-256 of a snapshot entry and the seqno it was taken at. The evidence transaction's
/// claims digest is the same hash, so its receipt proves the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEvidence {
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
    pub version: u64,
}

/// `public:ccf.internal.recovery_shares` (`RecoverySharesInfo`, `src/service/tables/shares.h`):
/// the latest ledger secret wrapped under the wrapping key, and each recovery member's share of
/// that key, RSA-OAEP-SHA256 encrypted to the member's encryption key. Byte vectors as base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySharesInfo {
    #[serde(with = "b64")]
    pub wrapped_latest_ledger_secret: Vec<u8>,
    /// Member id → encrypted share (base64).
    pub encrypted_shares: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_stored_version: Option<u64>,
}

/// One ledger secret for one node (`EncryptedLedgerSecret`, `src/service/tables/secrets.h`):
/// `version` is null for a secret that applies from the transaction after the one writing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedLedgerSecret {
    pub version: Option<u64>,
    #[serde(with = "b64")]
    pub encrypted_secret: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_stored_version: Option<u64>,
}

/// Value of [`ENCRYPTED_LEDGER_SECRETS`]: node id → its secrets.
pub type LedgerSecretsForNodes = std::collections::BTreeMap<String, Vec<EncryptedLedgerSecret>>;

/// The previous ledger secret, AES-GCM encrypted under the next one (`PreviousLedgerSecretInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousLedgerSecretInfo {
    /// tag ‖ IV ‖ ciphertext.
    #[serde(with = "b64")]
    pub encrypted_data: Vec<u8>,
    /// The seqno the previous secret applies from.
    pub version: u64,
    /// Where the secret before it is stored (the previous write of this map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_stored_version: Option<u64>,
}

/// Value of [`HISTORICAL_ENCRYPTED_LEDGER_SECRET`] (`EncryptedLedgerSecretInfo`): at service
/// start only `next_version`; at each rekey the previous secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedLedgerSecretInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_ledger_secret: Option<PreviousLedgerSecretInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_version: Option<u64>,
}

// ---------------------------------------------------------------- service

/// Value of [`PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT`] (`CoseEndorsement`,
/// `src/service/tables/previous_service_identity.h`), written when a service opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoseEndorsement {
    /// COSE_Sign1 by the service key over the endorsed service public key (DER).
    #[serde(with = "b64")]
    pub endorsement: Vec<u8>,
    /// The endorsing (then current) service public key, DER.
    #[serde(with = "b64")]
    pub endorsing_key: Vec<u8>,
    /// First transaction of the endorsed service.
    pub endorsement_epoch_begin: TxId,
    /// Last transaction of the endorsed service; absent for a self-endorsement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement_epoch_end: Option<TxId>,
    /// Seqno of the previous endorsement's write; absent for a self-endorsement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u64>,
}

impl CoseEndorsement {
    /// A service's endorsement of its own key (written when a never-recovered service opens).
    pub fn is_self_endorsement(&self) -> bool {
        self.previous_version.is_none()
    }
}

/// `ServiceStatus` (`include/ccf/service/tables/service.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceStatus {
    Opening,
    Open,
    WaitingForRecoveryShares,
    Recovering,
}

/// Value of [`SERVICE_INFO`] (`ServiceInfo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Service certificate, PEM.
    pub cert: String,
    pub status: ServiceStatus,
    /// Seqno of the previous service identity, set after a recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_service_identity_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_count: Option<u64>,
    /// Free-form member-set data.
    #[serde(default, skip_serializing_if = "is_null")]
    pub service_data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_service_create_txid: Option<TxId>,
}

/// `ConsensusType` (`include/ccf/service/consensus_type.h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsensusType {
    #[default]
    #[serde(rename = "CFT")]
    Cft,
    #[serde(rename = "BFT")]
    Bft,
}

impl ConsensusType {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `ReconfigurationType` (`include/ccf/service/reconfiguration_type.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconfigurationType {
    OneTransaction,
    TwoTransaction,
}

/// Value of [`SERVICE_CONFIG`] (`ServiceConfiguration`, `include/ccf/service/service_config.h`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfiguration {
    pub recovery_threshold: u64,
    /// Written only when not the default `CFT`.
    #[serde(default, skip_serializing_if = "ConsensusType::is_default")]
    pub consensus: ConsensusType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconfiguration_type: Option<ReconfigurationType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_node_certificate_validity_days: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_service_certificate_validity_days: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_cose_proposals_window_size: Option<u64>,
}

// ---------------------------------------------------------------- members and users

/// `MemberStatus` (`include/ccf/service/tables/members.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberStatus {
    Accepted,
    Active,
}

/// `MemberRecoveryRole`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRecoveryRole {
    NonParticipant,
    Participant,
    Owner,
}

/// Value of [`MEMBERS_INFO`] (`MemberDetails`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub status: MemberStatus,
    #[serde(default, skip_serializing_if = "is_null")]
    pub member_data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_role: Option<MemberRecoveryRole>,
}

/// Value of [`USERS_INFO`] (`UserDetails`). `user_data` is a required field in CCF, so it is
/// written even when null.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub user_data: Value,
}

/// Member and user ids are the keys of their maps, as ASCII hex (blit of the id string).
pub fn member_key(id: &MemberId) -> Vec<u8> {
    id.as_str().as_bytes().to_vec()
}

/// The key of a user in [`USERS_CERTS`] and [`USERS_INFO`].
pub fn user_key(id: &UserId) -> Vec<u8> {
    id.as_str().as_bytes().to_vec()
}

/// The key of a node in [`NODES_INFO`] and [`NODES_ENDORSED_CERTIFICATES`].
pub fn node_key(id: &NodeId) -> Vec<u8> {
    id.as_str().as_bytes().to_vec()
}

// ---------------------------------------------------------------- nodes

/// `NodeStatus` (`include/ccf/service/node_info.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Pending,
    Trusted,
    Retired,
}

/// `QuoteFormat` (`include/ccf/ds/quote_info.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuoteFormat {
    #[serde(rename = "OE_SGX_v1")]
    OeSgxV1,
    #[serde(rename = "Insecure_Virtual")]
    InsecureVirtual,
    #[serde(rename = "AMD_SEV_SNP_v1")]
    AmdSevSnpV1,
}

/// `QuoteInfo`: the node's attestation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteInfo {
    pub format: QuoteFormat,
    #[serde(with = "b64")]
    pub quote: Vec<u8>,
    #[serde(with = "b64")]
    pub endorsements: Vec<u8>,
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub uvm_endorsements: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsed_tcb: Option<String>,
}

/// `Authority` of an interface's TLS certificate (`include/ccf/service/node_info_network.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Authority {
    Node,
    Service,
    #[serde(rename = "ACME")]
    Acme,
    Unsecured,
}

/// `Endorsement`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endorsement {
    pub authority: Authority,
}

/// `http::ParserConfiguration` (`include/ccf/http_configuration.h`); sizes are strings like
/// `"1MB"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_headers_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_window_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frame_size: Option<String>,
}

/// `RedirectionResolutionKind`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedirectionResolutionKind {
    #[default]
    NodeByRole,
    StaticAddress,
}

/// `RedirectionResolverConfig`; written only when not the default (`NodeByRole`, no target).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RedirectionResolverConfig {
    pub kind: RedirectionResolutionKind,
    #[serde(default, skip_serializing_if = "is_null")]
    pub target: Value,
}

impl RedirectionResolverConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `NetInterface::Redirections`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Redirections {
    #[serde(default, skip_serializing_if = "RedirectionResolverConfig::is_default")]
    pub to_primary: RedirectionResolverConfig,
    #[serde(default, skip_serializing_if = "RedirectionResolverConfig::is_default")]
    pub to_backup: RedirectionResolverConfig,
}

/// `NodeInfoNetwork_v2::NetInterface`. Only `bind_address` is required; the strings
/// `published_address` and `protocol` are written only when non-empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetInterface {
    pub bind_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub published_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_sessions_soft: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_sessions_hard: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_configuration: Option<HttpConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<Endorsement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_endpoints: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirections: Option<Redirections>,
}

/// Value of [`NODES_INFO`] (`NodeInfo` with base `NodeInfoNetwork`, `include/ccf/service/
/// node_info.h`). On serialisation CCF also writes the legacy v1 fields `nodehost`, `nodeport`,
/// `rpchost`, `rpcport`, `pubhost`, `pubport`, derived from the interfaces
/// (`to_json(NodeInfoNetwork)`); [`NodeInfo`]'s `Serialize` adds them the same way and
/// deserialisation ignores them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct NodeInfo {
    pub node_to_node_interface: NetInterface,
    pub rpc_interfaces: BTreeMap<String, NetInterface>,
    #[serde(default)]
    pub will_locally_seal_ledger_secrets: bool,
    pub quote_info: QuoteInfo,
    /// RSA public key PEM used to share ledger secrets with this node.
    pub encryption_pub_key: String,
    pub status: NodeStatus,
    #[serde(default)]
    pub ledger_secret_seqno: Option<u64>,
    /// Measurement, hex.
    #[serde(default)]
    pub code_digest: Option<String>,
    #[serde(default)]
    pub certificate_signing_request: Option<String>,
    /// Node identity public key PEM.
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub node_data: Value,
    /// 1.x only: the node certificate.
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub retired_committed: bool,
}

/// The serialised shape of [`NodeInfo`]: its fields plus the derived v1 network fields.
#[derive(Serialize)]
struct NodeInfoJson<'a> {
    node_to_node_interface: &'a NetInterface,
    rpc_interfaces: &'a BTreeMap<String, NetInterface>,
    #[serde(skip_serializing_if = "is_false")]
    will_locally_seal_ledger_secrets: bool,
    nodehost: &'a str,
    nodeport: &'a str,
    rpchost: &'a str,
    rpcport: &'a str,
    pubhost: &'a str,
    pubport: &'a str,
    quote_info: &'a QuoteInfo,
    encryption_pub_key: &'a str,
    status: NodeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger_secret_seqno: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_digest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_signing_request: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<&'a str>,
    #[serde(skip_serializing_if = "is_null")]
    node_data: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert: Option<&'a str>,
    #[serde(skip_serializing_if = "is_false")]
    retired_committed: bool,
}

/// `ccf::nonstd::rsplit_1(addr, ":")`: host and port split at the last colon; with no colon the
/// host is empty and the whole string is the port.
fn split_net_address(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').unwrap_or(("", addr))
}

impl Serialize for NodeInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (nodehost, nodeport) = split_net_address(&self.node_to_node_interface.bind_address);
        // CCF takes the first RPC interface in id order (`rpc_interfaces.begin()`).
        let ((rpchost, rpcport), (pubhost, pubport)) = match self.rpc_interfaces.values().next() {
            Some(i) => (
                split_net_address(&i.bind_address),
                split_net_address(&i.published_address),
            ),
            None => (("", ""), ("", "")),
        };
        NodeInfoJson {
            node_to_node_interface: &self.node_to_node_interface,
            rpc_interfaces: &self.rpc_interfaces,
            will_locally_seal_ledger_secrets: self.will_locally_seal_ledger_secrets,
            nodehost,
            nodeport,
            rpchost,
            rpcport,
            pubhost,
            pubport,
            quote_info: &self.quote_info,
            encryption_pub_key: &self.encryption_pub_key,
            status: self.status,
            ledger_secret_seqno: self.ledger_secret_seqno,
            code_digest: self.code_digest.as_deref(),
            certificate_signing_request: self.certificate_signing_request.as_deref(),
            public_key: self.public_key.as_deref(),
            node_data: &self.node_data,
            cert: self.cert.as_deref(),
            retired_committed: self.retired_committed,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests;

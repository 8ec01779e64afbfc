//! Attestation of joining nodes (ccf-reference §4.4). A node proves what code it runs with a
//! quote whose report data binds its identity key; the primary checks the quote against the
//! measurements and host data governance allows (`nodes.virtual.*`).
//!
//! Only CCF's *virtual* platform exists so far. Its quote is JSON, with no cryptography:
//! `{"measurement": "Insecure hard-coded virtual measurement v1", "host_data": hex(SHA-256 of the
//! node executable), "report_data": base64(SHA-256 of the node's public key DER)}`. AMD SEV-SNP
//! verification will sit behind the same [`verify_quote`] seam.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coco_codec::tables;
use coco_kv::Tx;
use serde::{Deserialize, Serialize};

/// The fixed measurement every virtual node reports (CCF's value).
pub const VIRTUAL_MEASUREMENT: &str = "Insecure hard-coded virtual measurement v1";

/// What a virtual quote says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualQuote {
    pub measurement: String,
    /// Hex SHA-256 of the node executable.
    pub host_data: String,
    /// Base64 of the report data: SHA-256 of the node's public key (SPKI DER).
    pub report_data: String,
}

/// A virtual quote for a node whose executable hashes to `host_data` and whose identity key is
/// `node_spki_der`.
pub fn virtual_quote_info(host_data: &[u8; 32], node_spki_der: &[u8]) -> tables::QuoteInfo {
    let quote = VirtualQuote {
        measurement: VIRTUAL_MEASUREMENT.to_owned(),
        host_data: hex::encode(host_data),
        report_data: B64.encode(coco_crypto::sha256(node_spki_der)),
    };
    tables::QuoteInfo {
        format: tables::QuoteFormat::InsecureVirtual,
        quote: serde_json::to_vec(&quote).expect("a quote always serialises"),
        endorsements: Vec::new(),
        uvm_endorsements: None,
        endorsed_tcb: None,
    }
}

/// Why a quote was refused; the messages are CCF's (`QuoteVerificationResult`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("Quote could not be verified: {0}")]
    Failed(String),
    #[error("Quote does not contain known enclave measurement")]
    MeasurementNotFound,
    #[error("Quote host data is not authorised")]
    InvalidHostData,
    #[error("Quote report data does not contain node's public key hash")]
    InvalidQuotedPublicKey,
}

/// Checks `quote` against the allow-lists in the KV and the key it must bind. Returns the
/// measurement (recorded as the node's `code_digest`).
pub fn verify_quote(
    tx: &mut Tx,
    quote: &tables::QuoteInfo,
    node_spki_der: &[u8],
) -> Result<String, QuoteError> {
    if quote.format != tables::QuoteFormat::InsecureVirtual {
        return Err(QuoteError::Failed(format!(
            "quote format {:?} is not supported by this node",
            quote.format
        )));
    }
    let parsed: VirtualQuote = serde_json::from_slice(&quote.quote)
        .map_err(|e| QuoteError::Failed(format!("malformed virtual quote: {e}")))?;
    if tx
        .get(
            tables::NODES_VIRTUAL_MEASUREMENTS,
            parsed.measurement.as_bytes(),
        )
        .is_none()
    {
        return Err(QuoteError::MeasurementNotFound);
    }
    if tx
        .get(tables::NODES_VIRTUAL_HOST_DATA, parsed.host_data.as_bytes())
        .is_none()
    {
        return Err(QuoteError::InvalidHostData);
    }
    let report_data = B64
        .decode(&parsed.report_data)
        .map_err(|e| QuoteError::Failed(format!("report data is not base64: {e}")))?;
    if report_data.get(..32) != Some(&coco_crypto::sha256(node_spki_der)[..]) {
        return Err(QuoteError::InvalidQuotedPublicKey);
    }
    Ok(parsed.measurement)
}

/// Records a quote's measurement and host data as trusted (what genesis does for its own node,
/// as CCF's `trust_node_measurement` and `trust_node_virtual_host_data`).
pub fn trust_own_quote(tx: &mut Tx, quote: &tables::QuoteInfo) {
    let parsed: VirtualQuote =
        serde_json::from_slice(&quote.quote).expect("this node's own quote is well-formed");
    tx.put(
        tables::NODES_VIRTUAL_MEASUREMENTS,
        bytes::Bytes::from(parsed.measurement),
        bytes::Bytes::from_static(b"\"AllowedToJoin\""),
    );
    tx.put(
        tables::NODES_VIRTUAL_HOST_DATA,
        bytes::Bytes::from(parsed.host_data),
        bytes::Bytes::from_static(b"\"\""),
    );
}

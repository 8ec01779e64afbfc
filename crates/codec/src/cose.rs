//! CCF's COSE_Sign1 ledger root signature (`public:ccf.internal.cose_signatures`).
//!
//! The service identity key signs the Merkle root with a detached payload
//! (`MerkleTreeHistory` signing task, `src/node/history.h`; `cose_sign1`,
//! `src/crypto/openssl/cose_sign.cpp`). The protected header, in the order CCF encodes it
//! (`encode_protected_headers` puts `alg` first, then the parameters in the order given):
//!
//! | Label | Value |
//! |---|---|
//! | 1 (alg) | -7 ES256 / -35 ES384 / … from the service key type |
//! | 4 (kid) | bstr holding the ASCII hex of SHA-256(service public key DER): 64 bytes |
//! | 395 (vds) | 2 (CCF ledger SHA-256 Merkle tree) |
//! | 15 (CWT claims) | {6 iat: int seconds, 1 iss: tstr, 2 sub: tstr} |
//! | `"ccf.v1"` | {`"txid"`: tstr `"view.seqno"` of the signature transaction} |
//!
//! Unprotected header: an empty map. Payload: nil (the 32-byte root is detached). The message
//! is tagged 18. The signature is over `Sig_structure = ["Signature1", protected, h'', payload]`
//! (RFC 9052 §4.4), computed by the caller: this crate links no crypto.

use ciborium::Value;
use coset::{AsCborValue as _, CoseSign1, Header, Label, iana::EnumI64 as _};

/// CBOR tag of a COSE_Sign1 message (RFC 9052).
pub const COSE_SIGN1_TAG: u64 = 18;
/// Header label of the verifiable data structure (`COSE_PHEADER_KEY_VDS`).
pub const HEADER_VDS: i64 = 395;
/// Header label of the CWT claims map (`COSE_PHEADER_KEY_CWT`).
pub const HEADER_CWT_CLAIMS: i64 = 15;
/// Header label of CCF's own map (`COSE_PHEADER_KEY_CCF`).
pub const HEADER_CCF: &str = "ccf.v1";
/// Key of the TxID inside [`HEADER_CCF`] (`COSE_PHEADER_KEY_TXID`).
pub const HEADER_CCF_TXID: &str = "txid";
/// The `vds` value CCF writes: `CCF_LEDGER_SHA256`.
pub const VDS_CCF_LEDGER_SHA256: i64 = 2;
/// CWT claim keys (RFC 8392).
pub const CWT_ISS: i64 = 1;
pub const CWT_SUB: i64 = 2;
pub const CWT_IAT: i64 = 6;
/// `alg` values CCF uses for its EC service keys.
pub const ALG_ES256: i64 = -7;
pub const ALG_ES384: i64 = -35;

/// Why a COSE message could not be assembled or parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoseError {
    #[error("invalid CBOR: {0}")]
    Cbor(String),
    #[error("{0} bytes of trailing data after the COSE message")]
    TrailingData(usize),
    #[error("COSE_Sign1 must be tagged 18; found {0}")]
    NotTagged18(String),
    #[error("malformed COSE_Sign1: {0}")]
    Structure(String),
    #[error("header {label} is not {expected}")]
    BadHeader {
        label: String,
        expected: &'static str,
    },
}

fn coset_err(e: coset::CoseError) -> CoseError {
    CoseError::Structure(e.to_string())
}

fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

/// Serialised protected header of a CCF ledger root signature, labels in CCF's order.
pub fn ccf_signature_protected_header(
    alg: i64,
    kid_hex: &str,
    issuer: &str,
    subject: &str,
    iat_seconds: i64,
    txid: &str,
) -> Vec<u8> {
    let cwt = Value::Map(vec![
        (Value::from(CWT_IAT), Value::from(iat_seconds)),
        (Value::from(CWT_ISS), Value::from(issuer)),
        (Value::from(CWT_SUB), Value::from(subject)),
    ]);
    let ccf = Value::Map(vec![(Value::from(HEADER_CCF_TXID), Value::from(txid))]);
    to_vec(&Value::Map(vec![
        (Value::from(1), Value::from(alg)),
        (Value::from(4), Value::Bytes(kid_hex.as_bytes().to_vec())),
        (Value::from(HEADER_VDS), Value::from(VDS_CCF_LEDGER_SHA256)),
        (Value::from(HEADER_CWT_CLAIMS), cwt),
        (Value::from(HEADER_CCF), ccf),
    ]))
}

/// Keys inside [`HEADER_CCF`] of a service identity endorsement
/// (`cddl/ccf-cose-endorsement-service-identity.cddl`): the endorsed service's first and last
/// transaction ids and the last Merkle root it signed.
pub const HEADER_CCF_EPOCH_BEGIN: &str = "epoch.start.txid";
pub const HEADER_CCF_EPOCH_END: &str = "epoch.end.txid";
pub const HEADER_CCF_EPOCH_LAST_ROOT: &str = "epoch.end.merkle.root";

/// Serialised protected header of a service identity endorsement, in CCF's order: alg, CWT
/// {iat}, `ccf.v1` {epoch.start.txid, epoch.end.txid?, epoch.end.merkle.root?}. A service's
/// endorsement of itself has neither end nor root.
pub fn endorsement_protected_header(
    alg: i64,
    iat_seconds: i64,
    epoch_begin: &str,
    epoch_end: Option<&str>,
    last_root: Option<&[u8; 32]>,
) -> Vec<u8> {
    let mut ccf = vec![(
        Value::from(HEADER_CCF_EPOCH_BEGIN),
        Value::from(epoch_begin),
    )];
    if let Some(end) = epoch_end {
        ccf.push((Value::from(HEADER_CCF_EPOCH_END), Value::from(end)));
    }
    if let Some(root) = last_root {
        ccf.push((
            Value::from(HEADER_CCF_EPOCH_LAST_ROOT),
            Value::Bytes(root.to_vec()),
        ));
    }
    to_vec(&Value::Map(vec![
        (Value::from(1), Value::from(alg)),
        (
            Value::from(HEADER_CWT_CLAIMS),
            Value::Map(vec![(Value::from(CWT_IAT), Value::from(iat_seconds))]),
        ),
        (Value::from(HEADER_CCF), Value::Map(ccf)),
    ]))
}

/// The epoch a service identity endorsement covers, from its protected header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndorsedEpoch {
    pub begin: String,
    pub end: Option<String>,
    pub last_root: Option<Vec<u8>>,
}

/// Reads [`EndorsedEpoch`] from a parsed endorsement (CCF
/// `extract_cose_endorsement_validity`).
pub fn endorsed_epoch(parsed: &ParsedSign1) -> Result<EndorsedEpoch, CoseError> {
    let ccf = parsed
        .protected_header
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Text(HEADER_CCF.to_owned()))
        .map(|(_, v)| v)
        .ok_or_else(|| bad("ccf.v1", "present"))?;
    let map = ccf.as_map().ok_or_else(|| bad("ccf.v1", "a map"))?;
    let find = |key: &str| {
        map.iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
    };
    let text = |key: &str| -> Result<Option<String>, CoseError> {
        find(key)
            .map(|v| {
                v.as_text()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(key, "text"))
            })
            .transpose()
    };
    Ok(EndorsedEpoch {
        begin: text(HEADER_CCF_EPOCH_BEGIN)?
            .ok_or_else(|| bad(HEADER_CCF_EPOCH_BEGIN, "present"))?,
        end: text(HEADER_CCF_EPOCH_END)?,
        last_root: find(HEADER_CCF_EPOCH_LAST_ROOT)
            .map(|v| {
                v.as_bytes()
                    .filter(|b| b.len() == 32)
                    .cloned()
                    .ok_or_else(|| bad(HEADER_CCF_EPOCH_LAST_ROOT, "32 bytes"))
            })
            .transpose()?,
    })
}

/// Appends a CBOR head (major type and argument) in its shortest form.
fn put_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xFF => out.extend_from_slice(&[m | 24, arg as u8]),
        0x100..=0xFFFF => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_TAG: u8 = 6;
const CBOR_NULL: u8 = 0xF6;

fn put_bstr(out: &mut Vec<u8>, b: &[u8]) {
    put_head(out, MAJOR_BYTES, b.len() as u64);
    out.extend_from_slice(b);
}

/// The bytes a COSE_Sign1 signature covers: `["Signature1", protected, h'', payload]` with an
/// empty external AAD, as CCF signs them. For a detached payload pass the detached bytes (the
/// Merkle root).
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    const CONTEXT: &str = "Signature1";
    let mut out = Vec::with_capacity(protected.len() + payload.len() + 32);
    put_head(&mut out, MAJOR_ARRAY, 4);
    put_head(&mut out, MAJOR_TEXT, CONTEXT.len() as u64);
    out.extend_from_slice(CONTEXT.as_bytes());
    put_bstr(&mut out, protected);
    put_bstr(&mut out, &[]);
    put_bstr(&mut out, payload);
    out
}

/// Assembles a tagged COSE_Sign1: `18([protected, unprotected, payload / nil, signature])`.
/// `payload: None` encodes a detached payload as nil.
pub fn assemble_sign1(
    protected: &[u8],
    unprotected: &Header,
    payload: Option<&[u8]>,
    signature: &[u8],
) -> Result<Vec<u8>, CoseError> {
    let unprotected = to_vec(&unprotected.clone().to_cbor_value().map_err(coset_err)?);
    let mut out = Vec::with_capacity(
        protected.len() + unprotected.len() + payload.map_or(0, <[u8]>::len) + signature.len() + 24,
    );
    put_head(&mut out, MAJOR_TAG, COSE_SIGN1_TAG);
    put_head(&mut out, MAJOR_ARRAY, 4);
    put_bstr(&mut out, protected);
    out.extend_from_slice(&unprotected);
    match payload {
        Some(p) => put_bstr(&mut out, p),
        None => out.push(CBOR_NULL),
    }
    put_bstr(&mut out, signature);
    Ok(out)
}

/// Unprotected header label of verifiable data proofs (draft-ietf-cose-merkle-tree-proofs).
pub const HEADER_VDP: i64 = 396;
/// Label of the inclusion proofs inside the VDP map.
pub const VDP_INCLUSION_PROOFS: i64 = -1;

/// CCF's inclusion proof (`cddl/ccf-tree-alg.cddl`), CBOR:
/// `{1: [bstr write_set_digest, tstr commit_evidence, bstr claims_digest], 2: [[bool left, bstr hash], …]}`
/// where `left` means the sibling is on the left. Also served alone as `cbor_merkle_proof`.
pub fn ccf_inclusion_proof(
    write_set_digest: &[u8; 32],
    commit_evidence: &str,
    claims_digest: &[u8; 32],
    path: &[(bool, [u8; 32])],
) -> Vec<u8> {
    let leaf = Value::Array(vec![
        Value::Bytes(write_set_digest.to_vec()),
        Value::Text(commit_evidence.to_owned()),
        Value::Bytes(claims_digest.to_vec()),
    ]);
    let path = Value::Array(
        path.iter()
            .map(|(left, hash)| Value::Array(vec![Value::Bool(*left), Value::Bytes(hash.to_vec())]))
            .collect(),
    );
    to_vec(&Value::Map(vec![
        (Value::Integer(1.into()), leaf),
        (Value::Integer(2.into()), path),
    ]))
}

/// A COSE receipt (ccf-reference §2.3): the signature transaction's COSE_Sign1 root signature,
/// re-emitted with the inclusion proof in unprotected header 396 `{-1: [bstr proof]}`. The
/// protected header and signature are unchanged, so the receipt verifies against the service
/// key once the proof is folded into the (detached) root.
pub fn cose_receipt(root_signature: &[u8], inclusion_proof: &[u8]) -> Result<Vec<u8>, CoseError> {
    let parsed = parse_sign1(root_signature)?;
    let unprotected = Header {
        rest: vec![(
            Label::Int(HEADER_VDP),
            Value::Map(vec![(
                Value::Integer(VDP_INCLUSION_PROOFS.into()),
                Value::Array(vec![Value::Bytes(inclusion_proof.to_vec())]),
            )]),
        )],
        ..Default::default()
    };
    assemble_sign1(&parsed.protected, &unprotected, None, &parsed.signature)
}

/// CWT claims of a CCF signature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CwtClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub iat: Option<i64>,
}

/// A parsed COSE_Sign1 with CCF's header fields picked out.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSign1 {
    /// The protected header exactly as serialised: what the signature covers.
    pub protected: Vec<u8>,
    pub protected_header: Header,
    /// `alg` as its COSE integer, if present and integer-valued.
    pub alg: Option<i64>,
    /// `kid` bytes (for CCF: ASCII hex), empty if absent.
    pub kid: Vec<u8>,
    pub vds: Option<i64>,
    pub cwt: Option<CwtClaims>,
    /// `ccf.v1.txid`, e.g. `"2.15"`.
    pub txid: Option<String>,
    pub unprotected: Header,
    /// `None` for a detached payload.
    pub payload: Option<Vec<u8>>,
    pub signature: Vec<u8>,
}

/// Parses a tagged COSE_Sign1 (tag 18 required, no trailing bytes).
pub fn parse_sign1(bytes: &[u8]) -> Result<ParsedSign1, CoseError> {
    let mut rest = bytes;
    let value: Value =
        ciborium::from_reader(&mut rest).map_err(|e| CoseError::Cbor(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CoseError::TrailingData(rest.len()));
    }
    let inner = match value {
        Value::Tag(COSE_SIGN1_TAG, inner) => *inner,
        Value::Tag(other, _) => return Err(CoseError::NotTagged18(format!("tag {other}"))),
        _ => return Err(CoseError::NotTagged18("no tag".to_owned())),
    };
    let sign1 = CoseSign1::from_cbor_value(inner).map_err(coset_err)?;
    let protected = sign1.protected.original_data.clone().unwrap_or_default();
    let header = sign1.protected.header;
    let alg = match &header.alg {
        Some(coset::RegisteredLabelWithPrivate::Assigned(a)) => Some(a.to_i64()),
        Some(coset::RegisteredLabelWithPrivate::PrivateUse(i)) => Some(*i),
        Some(coset::RegisteredLabelWithPrivate::Text(_)) | None => None,
    };
    let find = |label: &Label| header.rest.iter().find(|(l, _)| l == label).map(|(_, v)| v);
    let vds = match find(&Label::Int(HEADER_VDS)) {
        None => None,
        Some(v) => Some(as_i64(v).ok_or_else(|| bad("395 (vds)", "an integer"))?),
    };
    let cwt = match find(&Label::Int(HEADER_CWT_CLAIMS)) {
        None => None,
        Some(v) => Some(parse_cwt(v)?),
    };
    let txid = match find(&Label::Text(HEADER_CCF.to_owned())) {
        None => None,
        Some(v) => parse_ccf_txid(v)?,
    };
    Ok(ParsedSign1 {
        protected,
        alg,
        kid: header.key_id.clone(),
        vds,
        cwt,
        txid,
        protected_header: header,
        unprotected: sign1.unprotected,
        payload: sign1.payload,
        signature: sign1.signature,
    })
}

fn bad(label: &str, expected: &'static str) -> CoseError {
    CoseError::BadHeader {
        label: label.to_owned(),
        expected,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_integer().and_then(|i| i64::try_from(i).ok())
}

fn parse_cwt(v: &Value) -> Result<CwtClaims, CoseError> {
    let map = v.as_map().ok_or_else(|| bad("15 (CWT claims)", "a map"))?;
    let mut claims = CwtClaims::default();
    for (k, v) in map {
        match as_i64(k) {
            Some(CWT_ISS) => {
                claims.iss = Some(
                    v.as_text()
                        .ok_or_else(|| bad("CWT iss", "text"))?
                        .to_owned(),
                );
            }
            Some(CWT_SUB) => {
                claims.sub = Some(
                    v.as_text()
                        .ok_or_else(|| bad("CWT sub", "text"))?
                        .to_owned(),
                );
            }
            Some(CWT_IAT) => {
                claims.iat = Some(as_i64(v).ok_or_else(|| bad("CWT iat", "an integer"))?)
            }
            _ => {}
        }
    }
    Ok(claims)
}

/// The CCF message headers of a signed request (`src/endpoints/authentication/cose_auth.cpp`):
/// governance requests use the `ccf.gov.msg.` prefix, user requests `ccf.msg.`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    /// `<prefix>type`, e.g. `proposal`, `ballot`, `ack`, `state_digest`.
    pub msg_type: Option<String>,
    /// `<prefix>created_at`: seconds since the epoch.
    pub created_at: Option<i64>,
    /// `ccf.gov.msg.proposal_id` (governance only).
    pub proposal_id: Option<String>,
}

/// Governance request header prefix.
pub const GOV_MSG_PREFIX: &str = "ccf.gov.msg.";
/// User request header prefix.
pub const USER_MSG_PREFIX: &str = "ccf.msg.";

/// Serialised protected header of a signed CCF request (what `ccf_cose_sign1` produces):
/// `alg`, `kid` (bstr of the signer's hex id), and `<prefix>type`, `<prefix>created_at`, and for
/// ballots and withdrawals `ccf.gov.msg.proposal_id`.
pub fn request_protected_header(
    alg: i64,
    kid_hex: &str,
    prefix: &str,
    msg_type: &str,
    created_at: i64,
    proposal_id: Option<&str>,
) -> Vec<u8> {
    let mut entries = vec![
        (Value::from(1), Value::from(alg)),
        (Value::from(4), Value::Bytes(kid_hex.as_bytes().to_vec())),
        (
            Value::from(format!("{prefix}created_at")),
            Value::from(created_at),
        ),
    ];
    if let Some(p) = proposal_id {
        entries.push((Value::from(format!("{prefix}proposal_id")), Value::from(p)));
    }
    entries.push((Value::from(format!("{prefix}type")), Value::from(msg_type)));
    to_vec(&Value::Map(entries))
}

/// Reads the CCF message headers with `prefix` from a parsed request. A header of the wrong
/// CBOR type is an error; an absent one is `None` (the caller decides what is required).
pub fn request_headers(parsed: &ParsedSign1, prefix: &str) -> Result<RequestHeaders, CoseError> {
    let find = |name: &str| {
        let label = Label::Text(format!("{prefix}{name}"));
        parsed
            .protected_header
            .rest
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v)
    };
    let text = |name: &str| -> Result<Option<String>, CoseError> {
        match find(name) {
            None => Ok(None),
            Some(v) => v
                .as_text()
                .map(|t| Some(t.to_owned()))
                .ok_or_else(|| bad(&format!("{prefix}{name}"), "text")),
        }
    };
    let created_at = match find("created_at") {
        None => None,
        Some(v) => {
            Some(as_i64(v).ok_or_else(|| bad(&format!("{prefix}created_at"), "an integer"))?)
        }
    };
    Ok(RequestHeaders {
        msg_type: text("type")?,
        created_at,
        proposal_id: text("proposal_id")?,
    })
}

fn parse_ccf_txid(v: &Value) -> Result<Option<String>, CoseError> {
    let map = v.as_map().ok_or_else(|| bad("ccf.v1", "a map"))?;
    for (k, v) in map {
        if k.as_text() == Some(HEADER_CCF_TXID) {
            let txid = v.as_text().ok_or_else(|| bad("ccf.v1.txid", "text"))?;
            return Ok(Some(txid.to_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;

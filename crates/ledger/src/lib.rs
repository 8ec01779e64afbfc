//! Native verification of a ledger in CCF's format — what `coco ledger verify DIR` runs.
//!
//! It checks what CCF's `read_ledger.py` (`ccf.ledger.LedgerValidator`, FULL level) checks, and
//! a little more (ccf-reference §1, §9.3):
//! 1. file names and contiguity of chunks, a committed chunk never after an uncommitted one,
//!    names matching the entries inside;
//! 2. chunk layout (positions tables) and every entry's header, sizes, seqno sequence and public
//!    domain;
//! 3. the Merkle tree: leaf `s` = H(H(entry) ‖ commit-evidence digest ‖ claims digest), and every
//!    signature transaction's `root` equals the root of leaves `0..s-1`;
//! 4. each node signature (ECDSA over the root as a pre-hashed SHA-256 digest) against the
//!    signer's service-endorsed certificate, the signer being known and not `Pending`, and each
//!    COSE root signature against the service certificate of `service.info` (kid = hex SHA-256
//!    of its public key);
//! 5. service status transitions (as the Python validator allows them).
//!
//! The first problem stops verification and is reported with its seqno, file and byte offset.
//! A torn tail in the *last, open* chunk (a crash mid-append) is reported separately: it is
//! expected after kill -9 and is repaired by truncation, not treated as corruption.
//!
//! Architecture invariant: pure — the caller reads the files and passes their bytes in.

pub mod show;

use std::collections::BTreeMap;
use std::fmt;

use coco_codec::chunk::{ChunkName, ChunkState};
use coco_codec::domain::EntryType;
use coco_codec::tables::{self, NodeStatus, SignatureValue};
use coco_crypto::sha256;
use coco_merkle::MerkleTree;
use coco_types::TxId;

/// What kind of problem a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// A `ledger_*` file whose name does not parse, or whose range disagrees with its entries.
    FileName,
    /// Chunks do not follow each other (gap or overlap), or committed after uncommitted.
    Contiguity,
    /// Bad chunk header or positions table.
    ChunkLayout,
    /// The open last chunk ends in a partial entry (expected after a crash; repairable).
    TornTail,
    /// An entry header, GCM header or public domain that does not parse.
    Entry,
    /// Seqnos not consecutive from 1.
    SeqnoGap,
    /// A signature transaction's root differs from the recomputed Merkle root.
    MerkleRoot,
    /// A node signature that does not verify, or a malformed signature record.
    NodeSignature,
    /// A COSE root signature that does not verify or is malformed.
    CoseSignature,
    /// The signer is unknown, has no certificate, or is `Pending`.
    UnknownSigner,
    /// A signature record whose txid or certificate disagrees with the ledger.
    SignatureMismatch,
    /// An invalid service status transition or service record.
    ServiceStatus,
}

/// One problem, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub file: String,
    /// Byte offset in `file` of the entry (or structure) concerned.
    pub offset: u64,
    pub seqno: Option<u64>,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} in {} at offset {}",
            self.kind, self.file, self.offset
        )?;
        if let Some(s) = self.seqno {
            write!(f, " (seqno {s})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Options of a verification run.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Only `.committed` chunks (read_ledger.py's default). coco verifies everything by default.
    pub committed_only: bool,
    /// Also read `.recovery` chunks.
    pub include_recovery: bool,
}

/// The outcome of a verification run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub chunks: usize,
    pub transactions: u64,
    pub signatures: u64,
    /// The last signature transaction whose signatures verified.
    pub last_verified: Option<TxId>,
    pub torn_tail: Option<Finding>,
    pub error: Option<Finding>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// A one-line summary in the style of CCF's `read_ledger.py`.
    pub fn summary(&self) -> String {
        let until = self
            .last_verified
            .map(|t| t.to_string())
            .unwrap_or_else(|| "0.0".into());
        match &self.error {
            None => format!(
                "Verified FULL - {} transactions, {} signatures, until {until}",
                self.transactions, self.signatures
            ),
            Some(e) => format!(
                "Verification FAILED after {} transactions ({} signatures, verified until {until}): {e}",
                self.transactions, self.signatures
            ),
        }
    }
}

struct Verifier {
    tree: MerkleTree,
    /// node id -> (status, endorsed certificate DER SPKI if known)
    node_status: BTreeMap<String, NodeStatus>,
    node_spki: BTreeMap<String, Vec<u8>>,
    service_status: Option<tables::ServiceStatus>,
    service_spki: Option<Vec<u8>>,
    next_seqno: u64,
    report: Report,
}

type Fail = Box<Finding>;

fn finding(
    kind: FindingKind,
    file: &str,
    offset: u64,
    seqno: Option<u64>,
    message: impl Into<String>,
) -> Fail {
    Box::new(Finding {
        kind,
        file: file.to_owned(),
        offset,
        seqno,
        message: message.into(),
    })
}

fn cert_spki(pem_or_der: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem_or_der).ok()?;
    let der = coco_crypto::pem_to_der_certs(text)
        .ok()?
        .into_iter()
        .next()?;
    coco_crypto::cert_public_key_spki_der(&der).ok()
}

/// Verifies the ledger made of `files` (`(file name, bytes)`, in any order). Files whose names
/// do not start with `ledger_` are ignored, as are `.ignored` files (and `.recovery` files unless
/// asked for).
pub fn verify(files: Vec<(String, Vec<u8>)>, options: &VerifyOptions) -> Report {
    let mut v = Verifier {
        tree: MerkleTree::new(),
        node_status: BTreeMap::new(),
        node_spki: BTreeMap::new(),
        service_status: None,
        service_spki: None,
        next_seqno: 1,
        report: Report::default(),
    };
    v.tree.append([0; 32]);
    if let Err(f) = v.run(files, options) {
        if f.kind == FindingKind::TornTail {
            v.report.torn_tail = Some(*f);
        } else {
            v.report.error = Some(*f);
        }
    }
    v.report
}

impl Verifier {
    fn run(&mut self, files: Vec<(String, Vec<u8>)>, options: &VerifyOptions) -> Result<(), Fail> {
        let mut chunks = Vec::new();
        for (name, bytes) in files {
            if !name.starts_with("ledger_") {
                continue;
            }
            let Some(parsed) = ChunkName::parse(&name) else {
                return Err(finding(
                    FindingKind::FileName,
                    &name,
                    0,
                    None,
                    "not a CCF ledger chunk name",
                ));
            };
            if parsed.ignored
                || (parsed.recovery && !options.include_recovery)
                || (options.committed_only && !parsed.committed)
            {
                continue;
            }
            chunks.push((parsed, name, bytes));
        }
        chunks.sort_by_key(|(c, _, _)| c.start);
        let count = chunks.len();
        let mut seen_uncommitted = None::<String>;
        for (i, (parsed, name, bytes)) in chunks.into_iter().enumerate() {
            let last = i + 1 == count;
            if parsed.committed {
                if let Some(prev) = &seen_uncommitted {
                    return Err(finding(
                        FindingKind::Contiguity,
                        &name,
                        0,
                        None,
                        format!("committed chunk follows uncommitted chunk {prev}"),
                    ));
                }
            } else {
                seen_uncommitted = Some(name.clone());
            }
            if parsed.start != self.next_seqno {
                return Err(finding(
                    FindingKind::Contiguity,
                    &name,
                    0,
                    Some(parsed.start),
                    format!(
                        "chunk starts at seqno {} but the ledger continues at {}",
                        parsed.start, self.next_seqno
                    ),
                ));
            }
            self.chunk(&parsed, &name, &bytes, last)?;
            self.report.chunks += 1;
        }
        Ok(())
    }

    fn chunk(
        &mut self,
        parsed: &ChunkName,
        name: &str,
        bytes: &[u8],
        last: bool,
    ) -> Result<(), Fail> {
        let scan = coco_codec::chunk::scan_chunk(bytes)
            .map_err(|e| finding(FindingKind::ChunkLayout, name, 0, None, e.to_string()))?;
        if let (Some(end), true) = (parsed.end, scan.entries.is_empty()) {
            return Err(finding(
                FindingKind::FileName,
                name,
                0,
                None,
                format!("name claims seqnos up to {end} but the chunk holds no entry"),
            ));
        }
        for e in &scan.entries {
            let entry = &bytes[e.range()];
            self.entry(name, e.offset, entry)?;
        }
        if let Some(end) = parsed.end {
            let last_seqno = scan.last_seqno().unwrap_or(0);
            if end != last_seqno {
                return Err(finding(
                    FindingKind::FileName,
                    name,
                    0,
                    None,
                    format!("name claims last seqno {end} but the last entry is {last_seqno}"),
                ));
            }
        }
        if let ChunkState::Open {
            torn_tail: Some(t), ..
        } = &scan.state
        {
            let kind = if last && !parsed.committed && parsed.end.is_none() {
                FindingKind::TornTail
            } else {
                FindingKind::ChunkLayout
            };
            return Err(finding(
                kind,
                name,
                t.offset,
                Some(self.next_seqno),
                format!(
                    "{:?} ({} bytes after the last whole entry)",
                    t.kind, t.len_bytes
                ),
            ));
        }
        if parsed.committed && !scan.is_complete() {
            return Err(finding(
                FindingKind::ChunkLayout,
                name,
                0,
                None,
                "a committed chunk must be complete (positions table written)",
            ));
        }
        Ok(())
    }

    fn entry(&mut self, file: &str, offset: u64, bytes: &[u8]) -> Result<(), Fail> {
        let seqno_hint = Some(self.next_seqno);
        let view = coco_codec::entry::parse_entry(bytes)
            .map_err(|e| finding(FindingKind::Entry, file, offset, seqno_hint, e.to_string()))?;
        let txid = view.tx_id();
        if txid.seqno != self.next_seqno {
            return Err(finding(
                FindingKind::SeqnoGap,
                file,
                offset,
                Some(txid.seqno),
                format!("expected seqno {}", self.next_seqno),
            ));
        }
        if view.is_snapshot {
            return Err(finding(
                FindingKind::Entry,
                file,
                offset,
                Some(txid.seqno),
                "snapshot entry inside a ledger chunk",
            ));
        }
        let pd = coco_codec::domain::parse_public_domain(view.public).map_err(|e| {
            finding(
                FindingKind::Entry,
                file,
                offset,
                Some(txid.seqno),
                e.to_string(),
            )
        })?;
        if pd.prefix.seqno != txid.seqno {
            return Err(finding(
                FindingKind::Entry,
                file,
                offset,
                Some(txid.seqno),
                format!(
                    "public domain says seqno {} but the IV says {}",
                    pd.prefix.seqno, txid.seqno
                ),
            ));
        }
        let fail = |kind, msg: String| finding(kind, file, offset, Some(txid.seqno), msg);

        // State updates first, as CCF's validator applies them before checking a signature.
        if let Some(m) = pd.maps.get(tables::NODES_INFO) {
            for (k, val) in &m.writes {
                let id = String::from_utf8_lossy(k).into_owned();
                match val {
                    None => {
                        self.node_status.remove(&id);
                    }
                    Some(val) => {
                        let info: serde_json::Value = serde_json::from_slice(val).map_err(|e| {
                            fail(
                                FindingKind::Entry,
                                format!("nodes.info of {id} is not JSON: {e}"),
                            )
                        })?;
                        let status = info
                            .get("status")
                            .cloned()
                            .and_then(|s| serde_json::from_value::<NodeStatus>(s).ok());
                        let status = status.ok_or_else(|| {
                            fail(
                                FindingKind::Entry,
                                format!("nodes.info of {id} has no valid status"),
                            )
                        })?;
                        self.node_status.insert(id, status);
                    }
                }
            }
        }
        if let Some(m) = pd.maps.get(tables::NODES_ENDORSED_CERTIFICATES) {
            for (k, val) in &m.writes {
                let id = String::from_utf8_lossy(k).into_owned();
                match val {
                    None => {
                        self.node_spki.remove(&id);
                    }
                    Some(pem) => {
                        let spki = cert_spki(pem).ok_or_else(|| {
                            fail(
                                FindingKind::Entry,
                                format!("endorsed certificate of {id} does not parse"),
                            )
                        })?;
                        self.node_spki.insert(id, spki);
                    }
                }
            }
        }
        if let Some(val) = pd.singleton(tables::SERVICE_INFO) {
            let info: tables::ServiceInfo = tables::from_ccf_json(val).map_err(|e| {
                fail(
                    FindingKind::ServiceStatus,
                    format!("service.info does not parse: {e}"),
                )
            })?;
            self.service_transition(info.status)
                .map_err(|m| fail(FindingKind::ServiceStatus, m))?;
            let spki = cert_spki(info.cert.as_bytes()).ok_or_else(|| {
                fail(
                    FindingKind::ServiceStatus,
                    "service certificate does not parse".into(),
                )
            })?;
            self.service_status = Some(info.status);
            self.service_spki = Some(spki);
        }

        let is_signature = pd.maps.contains_key(tables::SIGNATURES)
            || pd.maps.contains_key(tables::COSE_SIGNATURES);
        if is_signature {
            let root = self.tree.root();
            self.check_signatures(&pd, txid, &root)
                .map_err(|(k, m)| fail(k, m))?;
            self.report.signatures += 1;
            self.report.last_verified = Some(txid);
        }

        let leaf = match pd.prefix.entry_type {
            EntryType::WriteSet => sha256(bytes),
            t => {
                let mut input = Vec::with_capacity(96);
                input.extend_from_slice(&sha256(bytes));
                if t.has_commit_evidence() {
                    input.extend_from_slice(
                        &pd.prefix
                            .commit_evidence_digest
                            .expect("present for this entry type"),
                    );
                }
                if t.has_claims() {
                    input.extend_from_slice(
                        &pd.prefix
                            .claims_digest
                            .expect("present for this entry type"),
                    );
                }
                sha256(&input)
            }
        };
        self.tree.append(leaf);
        self.next_seqno += 1;
        self.report.transactions += 1;
        Ok(())
    }

    fn service_transition(&self, to: tables::ServiceStatus) -> Result<(), String> {
        use tables::ServiceStatus::*;
        let ok = match (self.service_status, to) {
            (_, Opening) => true,
            (Some(a), b) if a == b => true,
            (Some(Opening), Open | WaitingForRecoveryShares) => true,
            (Some(Recovering), WaitingForRecoveryShares) => true,
            (Some(WaitingForRecoveryShares), Open) => true,
            (Some(Open), Recovering) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "service status cannot go from {:?} to {to:?}",
                self.service_status
            ))
        }
    }

    fn check_signatures(
        &self,
        pd: &coco_codec::PublicDomain,
        txid: TxId,
        root: &[u8; 32],
    ) -> Result<(), (FindingKind, String)> {
        use FindingKind::*;
        let single = |map: &str| pd.singleton(map).cloned();
        if let Some(raw) = single(tables::SIGNATURES) {
            let sig: SignatureValue = tables::from_ccf_json(&raw).map_err(|e| {
                (
                    NodeSignature,
                    format!("signature record does not parse: {e}"),
                )
            })?;
            if sig.seqno != txid.seqno || sig.view != txid.view {
                return Err((
                    SignatureMismatch,
                    format!(
                        "signature record is for {}.{} but sits at {txid}",
                        sig.view, sig.seqno
                    ),
                ));
            }
            if &sig.root != root {
                return Err((
                    MerkleRoot,
                    format!(
                        "signed root {} differs from the recomputed root {}",
                        hex(&sig.root),
                        hex(root)
                    ),
                ));
            }
            let node = sig.node.as_str().to_owned();
            match self.node_status.get(&node) {
                None => return Err((UnknownSigner, format!("signer {node} is not in nodes.info"))),
                Some(NodeStatus::Pending) => {
                    return Err((UnknownSigner, format!("signer {node} is Pending")));
                }
                Some(_) => {}
            }
            let spki = self.node_spki.get(&node).ok_or_else(|| {
                (
                    UnknownSigner,
                    format!("no endorsed certificate for signer {node}"),
                )
            })?;
            if !sig.cert.is_empty() {
                let embedded = cert_spki(sig.cert.as_bytes()).ok_or_else(|| {
                    (
                        SignatureMismatch,
                        "certificate in the signature does not parse".to_owned(),
                    )
                })?;
                if &embedded != spki {
                    return Err((
                        SignatureMismatch,
                        "certificate in the signature is not the signer's endorsed certificate"
                            .into(),
                    ));
                }
            }
            coco_crypto::verify_prehashed_sha256_der(spki, root, &sig.sig)
                .map_err(|e| (NodeSignature, format!("node signature by {node}: {e}")))?;
        }
        if let Some(raw) = single(tables::TREE) {
            // Not checked by CCF's validator; cheap, and it makes the last signature's own tree
            // blob (covered by no later root) tamper-evident too.
            let tree = MerkleTree::deserialise(&raw)
                .map_err(|e| (MerkleRoot, format!("tree table does not parse: {e}")))?;
            if &tree.root() != root {
                return Err((
                    MerkleRoot,
                    "tree table's root differs from the recomputed root".into(),
                ));
            }
        }
        if let Some(raw) = single(tables::COSE_SIGNATURES) {
            let cose = tables::parse_cose_signature_value(&raw)
                .map_err(|e| (CoseSignature, e.to_string()))?;
            let parsed =
                coco_codec::cose::parse_sign1(&cose).map_err(|e| (CoseSignature, e.to_string()))?;
            let service = self.service_spki.as_ref().ok_or_else(|| {
                (
                    CoseSignature,
                    "COSE signature before any service.info".to_owned(),
                )
            })?;
            let kid = coco_crypto::spki_fingerprint_hex(service);
            if parsed.kid != kid.as_bytes() {
                return Err((
                    CoseSignature,
                    "kid is not the service key's hex SHA-256".into(),
                ));
            }
            if parsed.txid.as_deref() != Some(txid.to_string().as_str()) {
                return Err((
                    SignatureMismatch,
                    format!(
                        "COSE signature names txid {:?} but sits at {txid}",
                        parsed.txid
                    ),
                ));
            }
            let tbs = coco_codec::cose::sig_structure(&parsed.protected, root);
            coco_crypto::verify_cose(service, &tbs, &parsed.signature)
                .map_err(|e| (CoseSignature, format!("COSE root signature: {e}")))?;
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests;

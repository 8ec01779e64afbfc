//! CCF's JSON receipts (ccf-reference §2.2): offline proof that a transaction was committed.
//!
//! A receipt for the transaction at seqno `s` is built from two ledger entries: the entry itself
//! (its hash is the write-set digest; its public prefix holds the claims digest) and the first
//! signature transaction at or after it, seqno `S`, which holds the node's signature over the
//! Merkle root of leaves `0..S` and the tree segment from which `s`'s inclusion path is computed.
//! The commit evidence is derived from the ledger secret. A signature transaction's own receipt
//! is its signature over the root it signed (`leaf` = root, empty proof), as in CCF.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coco_codec::domain::parse_public_domain_shared;
use coco_codec::entry::parse_entry;
use coco_codec::tables;
use coco_crypto::sha256;
use coco_merkle::MerkleTree;
use coco_types::TxId;
use serde_json::{Value, json};

/// The public domain of an entry, parsed.
pub(crate) fn public_domain(entry: &Bytes) -> Result<coco_codec::domain::PublicDomain, String> {
    let view = parse_entry(entry).map_err(|e| format!("ledger entry: {e}"))?;
    let start = entry.len() - view.public.len() - view.private.len();
    parse_public_domain_shared(&entry.slice(start..start + view.public.len()))
        .map_err(|e| format!("public domain: {e}"))
}

/// A singleton value written by `domain`.
fn singleton<'a>(
    domain: &'a coco_codec::domain::PublicDomain,
    map: &str,
) -> Result<&'a Bytes, String> {
    domain
        .singleton(map)
        .ok_or_else(|| format!("the signature transaction has no {map}"))
}

/// Everything a receipt of one transaction is made of.
pub struct TxProof {
    pub txid: TxId,
    pub is_signature: bool,
    /// The signature transaction's node signature record.
    pub signature: tables::SignatureValue,
    /// Its COSE_Sign1 root signature by the service key.
    pub cose_signature: Vec<u8>,
    pub write_set_digest: [u8; 32],
    pub commit_evidence: String,
    pub claims_digest: [u8; 32],
    /// From the leaf to the signed root (empty for a signature transaction).
    pub path: Vec<coco_merkle::PathElem>,
    /// The current service's endorsement of the service identity that endorsed the signing
    /// node, when that was an earlier service (after a disaster recovery); PEM.
    pub service_endorsements: Vec<String>,
}

/// Proves `txid`, whose entry is `entry`, with the signature transaction `signature_entry`
/// (the first at or after it; the same entry for a signature transaction). `commit_evidence` is
/// the transaction's commit evidence string. The path is checked to lead to the signed root.
pub fn tx_proof(
    txid: TxId,
    entry: &Bytes,
    signature_entry: &Bytes,
    commit_evidence: &str,
) -> Result<TxProof, String> {
    let sig_domain = public_domain(signature_entry)?;
    let signature: tables::SignatureValue =
        tables::from_ccf_json(singleton(&sig_domain, tables::SIGNATURES)?)
            .map_err(|e| format!("signature: {e}"))?;
    let cose_signature =
        tables::parse_cose_signature_value(singleton(&sig_domain, tables::COSE_SIGNATURES)?)
            .map_err(|e| format!("COSE signature: {e}"))?;
    if signature.seqno < txid.seqno {
        return Err(format!(
            "signature at {} cannot prove {txid}",
            signature.seqno
        ));
    }
    let domain = public_domain(entry)?;
    let claims_digest = domain.prefix.claims_digest.unwrap_or([0; 32]);
    let write_set_digest = sha256(entry);
    let ce_digest = sha256(commit_evidence.as_bytes());
    if domain.prefix.commit_evidence_digest != Some(ce_digest) {
        return Err(format!("commit evidence does not match entry {txid}"));
    }
    let is_signature = signature.seqno == txid.seqno;
    let path = if is_signature {
        Vec::new()
    } else {
        let tree = MerkleTree::deserialise(singleton(&sig_domain, tables::TREE)?)
            .map_err(|e| format!("signed tree: {e}"))?;
        let path = tree
            .path(txid.seqno, signature.seqno)
            .map_err(|e| format!("inclusion path of {txid}: {e}"))?;
        let leaf = coco_merkle::transaction_leaf(&write_set_digest, &ce_digest, &claims_digest);
        if coco_merkle::fold_path(&leaf, &path) != signature.root {
            return Err(format!(
                "the inclusion path of {txid} does not lead to the signed root"
            ));
        }
        path
    };
    Ok(TxProof {
        txid,
        is_signature,
        signature,
        cose_signature,
        write_set_digest,
        commit_evidence: commit_evidence.to_owned(),
        claims_digest,
        path,
        service_endorsements: Vec::new(),
    })
}

impl TxProof {
    /// CCF's JSON receipt, v1 (`/node/receipt`).
    pub fn json_v1(&self) -> Value {
        let mut receipt = json!({
            "signature": B64.encode(&self.signature.sig),
            "node_id": self.signature.node.as_str(),
            "cert": self.signature.cert,
        });
        if !self.service_endorsements.is_empty() {
            receipt["service_endorsements"] = json!(self.service_endorsements);
        }
        if self.is_signature {
            receipt["proof"] = json!([]);
            receipt["leaf"] = json!(hex::encode(self.signature.root));
            return receipt;
        }
        receipt["proof"] = Value::Array(
            self.path
                .iter()
                .map(|p| {
                    let side = if p.sibling_is_left { "left" } else { "right" };
                    json!({ side: hex::encode(p.hash) })
                })
                .collect(),
        );
        receipt["leaf_components"] = json!({
            "write_set_digest": hex::encode(self.write_set_digest),
            "commit_evidence": self.commit_evidence,
            "claims_digest": hex::encode(self.claims_digest),
        });
        receipt
    }

    /// v2 (historical endpoints): v1 plus `is_signature_transaction`.
    pub fn json_v2(&self) -> Value {
        let mut receipt = self.json_v1();
        receipt["is_signature_transaction"] = json!(self.is_signature);
        receipt["service_endorsements"] = json!(self.service_endorsements);
        receipt
    }

    /// CCF's CBOR inclusion proof; `None` for a signature transaction.
    pub fn cbor_merkle_proof(&self) -> Option<Vec<u8>> {
        (!self.is_signature).then(|| {
            let path: Vec<(bool, [u8; 32])> = self
                .path
                .iter()
                .map(|p| (p.sibling_is_left, p.hash))
                .collect();
            coco_codec::cose::ccf_inclusion_proof(
                &self.write_set_digest,
                &self.commit_evidence,
                &self.claims_digest,
                &path,
            )
        })
    }

    /// The COSE receipt; `None` for a signature transaction.
    pub fn cose_receipt(&self) -> Option<Result<Vec<u8>, String>> {
        self.cbor_merkle_proof().map(|proof| {
            coco_codec::cose::cose_receipt(&self.cose_signature, &proof)
                .map_err(|e| format!("COSE receipt: {e}"))
        })
    }
}

/// Checks a JSON receipt offline against the service certificate: the leaf (from its
/// components, or given), the path to the root, the node's signature over the root, and the
/// node certificate's endorsement by the service key, through `service_endorsements` when an
/// earlier service issued it. Returns the root.
pub fn verify_json_receipt(receipt: &Value, service_cert_pem: &str) -> Result<[u8; 32], String> {
    let hex32 = |v: &Value, what: &str| -> Result<[u8; 32], String> {
        let s = v
            .as_str()
            .ok_or_else(|| format!("{what} is not a string"))?;
        hex::decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{what} is not 32 hex bytes"))
    };
    let leaf = if let Some(c) = receipt.get("leaf_components") {
        let ce = c["commit_evidence"]
            .as_str()
            .ok_or("commit_evidence is not a string")?;
        coco_merkle::transaction_leaf(
            &hex32(&c["write_set_digest"], "write_set_digest")?,
            &sha256(ce.as_bytes()),
            &hex32(&c["claims_digest"], "claims_digest")?,
        )
    } else {
        hex32(&receipt["leaf"], "leaf")?
    };
    let mut path = Vec::new();
    for step in receipt["proof"].as_array().ok_or("proof is not a list")? {
        let (left, hash) = match (step.get("left"), step.get("right")) {
            (Some(h), None) => (true, h),
            (None, Some(h)) => (false, h),
            _ => return Err(format!("proof step {step} is neither left nor right")),
        };
        path.push(coco_merkle::PathElem {
            sibling_is_left: left,
            hash: hex32(hash, "proof hash")?,
        });
    }
    let root = coco_merkle::fold_path(&leaf, &path);
    let cert_pem = receipt["cert"].as_str().ok_or("cert is not a string")?;
    let cert_der = coco_crypto::pem_to_der_certs(cert_pem)
        .ok()
        .and_then(|v| v.into_iter().next())
        .ok_or("cert does not parse")?;
    let node_spki = coco_crypto::cert_public_key_spki_der(&cert_der).map_err(|e| e.to_string())?;
    if receipt["node_id"].as_str() != Some(coco_crypto::spki_fingerprint_hex(&node_spki).as_str()) {
        return Err("node_id is not the certificate's key".into());
    }
    let signature = B64
        .decode(
            receipt["signature"]
                .as_str()
                .ok_or("signature is not a string")?,
        )
        .map_err(|e| format!("signature is not base64: {e}"))?;
    coco_crypto::verify_prehashed_sha256_der(&node_spki, &root, &signature)
        .map_err(|_| "the node signature over the root does not verify".to_owned())?;
    let service_der = coco_crypto::pem_to_der_certs(service_cert_pem)
        .ok()
        .and_then(|v| v.into_iter().next())
        .ok_or("service certificate does not parse")?;
    // node certificate → each of `service_endorsements` (after a disaster recovery: earlier
    // service identities endorsed by the current one) → the service certificate.
    let mut chain = Vec::new();
    if let Some(list) = receipt.get("service_endorsements") {
        for e in list
            .as_array()
            .ok_or("service_endorsements is not a list")?
        {
            let der = e
                .as_str()
                .and_then(|pem| coco_crypto::pem_to_der_certs(pem).ok())
                .and_then(|v| v.into_iter().next())
                .ok_or("a service endorsement is not a PEM certificate")?;
            chain.push(der);
        }
    }
    chain.push(service_der);
    let mut endorsee = cert_der;
    for endorser in chain {
        let spki = coco_crypto::cert_public_key_spki_der(&endorser).map_err(|e| e.to_string())?;
        coco_crypto::verify_cert_signed_by(&endorsee, &spki)
            .map_err(|_| "the node certificate is not endorsed by the service".to_owned())?;
        endorsee = endorser;
    }
    Ok(root)
}

/// An entry for a historical read: from the consensus core if it still holds it, else from the
/// cache; if neither, the host is asked to read it (`None` until it arrives).
fn historical_entry(
    raft: &coco_consensus::Raft,
    cache: &mut crate::historical::HistoricalCache,
    seqno: coco_types::SeqNo,
    now: crate::Now,
    out: &mut Vec<crate::Output>,
) -> Option<Bytes> {
    if let Some(e) = raft.entry(seqno) {
        return Some(e.data);
    }
    if let Some(b) = cache.get(seqno) {
        return Some(b);
    }
    if cache.should_request(seqno, seqno, now.monotonic_ms) {
        out.push(crate::Output::ReadLedger {
            from_idx: seqno,
            to_idx: seqno,
        });
    }
    None
}

/// The node's history as historical range endpoints see it ([`coco_app_api::History`]): its
/// indexes, and past transactions' writes read back from the ledger.
pub(crate) struct HistoryView<'a> {
    pub(crate) index: &'a crate::index::SeqnoIndex,
    pub(crate) commit: coco_types::SeqNo,
    pub(crate) raft: &'a coco_consensus::Raft,
    pub(crate) cache: &'a mut crate::historical::HistoricalCache,
    pub(crate) secrets: &'a crate::secrets::LedgerSecrets,
    pub(crate) out: &'a mut Vec<crate::Output>,
    pub(crate) now: crate::Now,
}

impl coco_app_api::History for HistoryView<'_> {
    fn committed_seqno(&self) -> coco_types::SeqNo {
        self.commit
    }

    fn indexed_maps(&self) -> Vec<String> {
        self.index.maps().cloned().collect()
    }

    fn seqnos_by_key(
        &self,
        map: &str,
        key: &[u8],
        from: coco_types::SeqNo,
        to: coco_types::SeqNo,
    ) -> Result<Vec<coco_types::SeqNo>, coco_app_api::ApiError> {
        let covers_after = self.index.covers_after();
        if from <= covers_after {
            return Err(coco_app_api::ApiError::bad_query(format!(
                "This node started from a snapshot at seqno {covers_after} and holds no ledger \
                 before it: query from seqno {} or ask another node.",
                covers_after + 1
            )));
        }
        self.index
            .query(map, key, from, to.min(self.commit))
            .ok_or_else(|| coco_app_api::ApiError::internal(format!("{map} is not indexed")))
    }

    fn writes_at(
        &mut self,
        seqnos: &[coco_types::SeqNo],
    ) -> Result<Option<Vec<(TxId, coco_kv::Store)>>, coco_app_api::ApiError> {
        use coco_app_api::ApiError;
        if let Some(s) = seqnos.iter().find(|s| **s == 0 || **s > self.commit) {
            return Err(ApiError::bad_query(format!(
                "Seqno {s} is not committed (commit is {}).",
                self.commit
            )));
        }
        // Ask for every missing entry at once, in contiguous ranges.
        let mut entries = Vec::with_capacity(seqnos.len());
        let mut missing: Vec<coco_types::SeqNo> = Vec::new();
        for &s in seqnos {
            match self
                .raft
                .entry(s)
                .map(|e| e.data)
                .or_else(|| self.cache.get(s))
            {
                Some(e) => entries.push(e),
                None => missing.push(s),
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let mut start = 0;
            while start < missing.len() {
                let mut end = start;
                while end + 1 < missing.len()
                    && missing[end + 1] == missing[end] + 1
                    && (end + 1 - start) < coco_types::limits::APPEND_ENTRIES_BATCH_COUNT_MAX
                {
                    end += 1;
                }
                let (from, to) = (missing[start], missing[end]);
                if self.cache.should_request(from, to, self.now.monotonic_ms) {
                    self.out.push(crate::Output::ReadLedger {
                        from_idx: from,
                        to_idx: to,
                    });
                }
                start = end + 1;
            }
            return Ok(None);
        }
        let mut states = Vec::with_capacity(entries.len());
        for entry in entries {
            let decoded = crate::replica::decode_entry(Some(self.secrets), &entry)
                .map_err(|e| ApiError::internal(format!("Cannot read a past entry: {e}")))?;
            let mut store = coco_kv::Store::new();
            store
                .apply(&decoded.write_set, 1)
                .map_err(|e| ApiError::internal(format!("Cannot load {}: {e}", decoded.txid)))?;
            states.push((decoded.txid, store));
        }
        Ok(Some(states))
    }
}

impl crate::Node {
    /// An entry for a historical read (see [`historical_entry`]).
    pub(crate) fn historical_entry(
        &mut self,
        seqno: coco_types::SeqNo,
        now: crate::Now,
        out: &mut Vec<crate::Output>,
    ) -> Option<Bytes> {
        historical_entry(&self.raft, &mut self.historical, seqno, now, out)
    }

    /// The first signature transaction at or after `seqno`, found by reading the ledger from
    /// `seqno` on (`None` while entries are read back). The snapshot or recovered ledger a node
    /// started from ends at a signature, so the search ends there at the latest.
    fn signature_in_history(
        &mut self,
        seqno: coco_types::SeqNo,
        now: crate::Now,
        out: &mut Vec<crate::Output>,
    ) -> Result<Option<coco_types::SeqNo>, coco_app_api::ApiError> {
        let last = self.raft.started_after();
        for s in seqno..=last {
            let entry = match self
                .raft
                .entry(s)
                .map(|e| e.data)
                .or_else(|| self.historical.get(s))
            {
                Some(e) => e,
                None => {
                    let to = last.min(s + coco_types::limits::HISTORICAL_SIGNATURE_SEARCH_SEQNOS);
                    if self.historical.should_request(s, to, now.monotonic_ms) {
                        out.push(crate::Output::ReadLedger {
                            from_idx: s,
                            to_idx: to,
                        });
                    }
                    return Ok(None);
                }
            };
            let domain = public_domain(&entry).map_err(coco_app_api::ApiError::internal)?;
            if domain.maps.contains_key(tables::SIGNATURES) {
                return Ok(Some(s));
            }
        }
        Err(coco_app_api::ApiError::internal(format!(
            "No signature between {seqno} and {last}."
        )))
    }

    /// A committed transaction's entry and proof, once both entries are at hand (`None` while
    /// they are read back: answer 202). Uncommitted, invalid and unknown ids are CCF's 404s.
    pub(crate) fn load_tx_proof(
        &mut self,
        txid: TxId,
        now: crate::Now,
        out: &mut Vec<crate::Output>,
    ) -> Result<Option<(Bytes, TxProof)>, coco_app_api::ApiError> {
        use coco_app_api::{ApiError, ErrorCode, StatusCode, TxStatus};
        // Until a recovered service opens, it holds neither the previous service's secrets
        // nor its endorsement (CCF answers the same).
        if self.service_status != tables::ServiceStatus::Open
            && self
                .service_create_txid
                .is_some_and(|created| txid.view < created.view)
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::TransactionInvalid,
                format!(
                    "Historical transaction {txid} is not signed by the current service identity \
                     key and cannot be retrieved until recovery is complete."
                ),
            ));
        }
        match self.consensus.tx_status(txid) {
            TxStatus::Committed => {}
            TxStatus::Invalid => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::TransactionInvalid,
                    format!("Transaction {txid} is invalid."),
                ));
            }
            TxStatus::Pending | TxStatus::Unknown => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::TransactionPendingOrUnknown,
                    format!("Transaction {txid} is not committed yet, or unknown."),
                ));
            }
        }
        let signature_seqno = if txid.seqno <= self.raft.started_after() {
            // This node started from a snapshot or recovered a ledger: which signature covers an
            // entry before that is only known from the ledger itself.
            match self.signature_in_history(txid.seqno, now, out)? {
                Some(s) => s,
                None => return Ok(None),
            }
        } else {
            self.raft
                .next_committable_from(txid.seqno)
                .ok_or_else(|| ApiError::internal(format!("No signature covers {txid}.")))?
        };
        let entry = self.historical_entry(txid.seqno, now, out);
        let signature = self.historical_entry(signature_seqno, now, out);
        let (Some(entry), Some(signature)) = (entry, signature) else {
            return Ok(None);
        };
        if self
            .secrets
            .all()
            .first()
            .is_some_and(|s| txid.seqno < s.applies_from())
        {
            // A recovery from a snapshot restores the secrets from the snapshot on only.
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::ResourceNotFound,
                format!(
                    "This node holds no ledger secret for {txid}: the service was recovered from \
                     a snapshot taken after it."
                ),
            ));
        }
        let evidence = self.secrets.for_seqno(txid.seqno).commit_evidence(txid);
        let mut proof = tx_proof(txid, &entry, &signature, &evidence)
            .map_err(|e| ApiError::internal(format!("Cannot prove {txid}: {e}")))?;
        // As CCF, a receipt whose endorsement chain cannot be built is still given, without it.
        match self.service_endorsements(txid.seqno, &proof.signature.cert, now, out) {
            Ok(Some(endorsements)) => proof.service_endorsements = endorsements,
            Ok(None) => return Ok(None),
            Err(_) => {}
        }
        Ok(Some((entry, proof)))
    }

    /// `GET /{node,app,gov}/receipt?transaction_id=V.S` (CCF's JSON receipt, v1).
    pub(crate) fn receipt_endpoint(
        &mut self,
        now: crate::Now,
        request: &coco_app_api::Request,
        out: &mut Vec<crate::Output>,
    ) -> Result<coco_app_api::Response, coco_app_api::ApiError> {
        let txid = crate::endpoints::txid_query(request)?;
        Ok(match self.load_tx_proof(txid, now, out)? {
            Some((_, proof)) => coco_app_api::Response::ok_json(&proof.json_v1()),
            None => coco_app_api::historical_loading(),
        })
    }

    /// The state of the transaction a historical endpoint's request names in its
    /// `x-ms-ccf-transaction-id` header (`None` while loading: answer `coco_app_api::historical_loading`).
    pub(crate) fn historical_state(
        &mut self,
        request: &coco_app_api::Request,
        now: crate::Now,
        out: &mut Vec<crate::Output>,
    ) -> Result<Option<coco_app_api::HistoricalState>, coco_app_api::ApiError> {
        use coco_app_api::{ApiError, ErrorCode, StatusCode};
        let header = request.header(coco_app_api::TX_ID_HEADER).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::MissingRequiredHeader,
                format!("Missing {} header.", coco_app_api::TX_ID_HEADER),
            )
        })?;
        let txid: TxId = header.parse().map_err(|e: coco_types::TxIdParseError| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidHeaderValue,
                format!("Invalid {} header: {e}", coco_app_api::TX_ID_HEADER),
            )
        })?;
        let Some((entry, proof)) = self.load_tx_proof(txid, now, out)? else {
            return Ok(None);
        };
        let decoded = crate::replica::decode_entry(Some(&self.secrets), &entry)
            .map_err(|e| ApiError::internal(format!("Cannot read {txid}: {e}")))?;
        let mut store = coco_kv::Store::new();
        store
            .apply(&decoded.write_set, 1)
            .map_err(|e| ApiError::internal(format!("Cannot load {txid}: {e}")))?;
        let cose_endorsements = match self.cose_endorsements(txid.seqno, now, out)? {
            crate::endorsement::CoseEndorsements::Loading => return Ok(None),
            crate::endorsement::CoseEndorsements::None => None,
            crate::endorsement::CoseEndorsements::Chain(chain) => {
                Some(chain.into_iter().map(Bytes::from).collect())
            }
        };
        let cose_receipt = proof
            .cose_receipt()
            .transpose()
            .map_err(ApiError::internal)?
            .map(Bytes::from);
        Ok(Some(coco_app_api::HistoricalState {
            txid,
            store,
            receipt: proof.json_v2(),
            cose_receipt,
            cbor_merkle_proof: proof.cbor_merkle_proof().map(Bytes::from),
            cose_signature: Bytes::from(proof.cose_signature.clone()),
            cose_endorsements,
        }))
    }
}

//! Receipts that outlive the service identity which signed them (ccf-reference §2.2, §2.3, §4.6).
//!
//! A disaster recovery creates a new service identity; transactions from before it were signed
//! by nodes of the old service and, for COSE receipts, by the old service key. Two chains bridge
//! the gap, as in CCF:
//!
//! - **COSE endorsements** (`public:ccf.internal.previous_service_identity_endorsement`): when a
//!   service opens, its key signs the previous service's public key (or its own, the first time),
//!   naming the epoch the endorsed key signed (`epoch.start.txid`, `epoch.end.txid`, and the last
//!   Merkle root it signed). Each record points at the write of the one before it
//!   (`previous_version`), so a node walks back from the current record through the ledger to
//!   the endorsement covering any old transaction (`/app/log/public/cose_endorsements`).
//! - **`service_endorsements`** in JSON receipts: when the receipt's node certificate was issued by
//!   an earlier service, the current service key issues a CA certificate for the earlier service
//!   key, found by walking `service.info`'s `previous_service_identity_version` back.

use std::collections::BTreeMap;

use bytes::Bytes;
use coco_app_api::ApiError;
use coco_codec::tables;
use coco_kv::Tx;
use coco_types::{RECOVERY_VIEW_CHANGE, SeqNo, TxId};

use crate::{Node, Now, Output};

/// The last transaction of the service before the one created at `created` (CCF
/// `previous_tx_if_recovery`).
fn epoch_end_before(created: TxId) -> TxId {
    TxId::new(
        created.view.saturating_sub(RECOVERY_VIEW_CHANGE),
        created.seqno.saturating_sub(1),
    )
}

/// The first transaction of the service after one that ended at `end` (CCF
/// `next_tx_if_recovery`).
fn epoch_begin_after(end: TxId) -> TxId {
    TxId::new(end.view + RECOVERY_VIEW_CHANGE, end.seqno + 1)
}

fn read<T: serde::de::DeserializeOwned>(tx: &mut Tx, map: &str) -> Result<Option<T>, String> {
    tx.get(map, &tables::SINGLETON_KEY)
        .map(|v| tables::from_ccf_json(&v).map_err(|e| format!("{map} does not parse: {e}")))
        .transpose()
}

/// CCF `endorse_previous_identity`, in the transaction that opens a service: the service key
/// endorses the previous service key (after a recovery) or its own (otherwise).
pub fn endorse_previous_identity(
    tx: &mut Tx,
    service_key: &coco_crypto::EcKeyPair,
    now_unix_seconds: i64,
) -> Result<(), String> {
    let service: tables::ServiceInfo =
        read(tx, tables::SERVICE_INFO)?.ok_or("the service has no service.info")?;
    let created = service
        .current_service_create_txid
        .ok_or("service.info has no current_service_create_txid")?;
    let endorsing_key = service_key.public_key_spki_der();
    let previous: Option<tables::CoseEndorsement> =
        read(tx, tables::PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT)?;
    let record = match previous {
        Some(previous) => {
            let root: String = read(tx, tables::PREVIOUS_SERVICE_LAST_SIGNED_ROOT)?
                .ok_or("cannot endorse the previous service identity: no last signed root")?;
            let root: [u8; 32] = hex::decode(&root)
                .ok()
                .and_then(|r| r.try_into().ok())
                .ok_or("the previous service's last signed root is not 32 hex bytes")?;
            let begin = previous
                .endorsement_epoch_end
                .map_or(previous.endorsement_epoch_begin, epoch_begin_after);
            let end = epoch_end_before(created);
            let protected = coco_codec::cose::endorsement_protected_header(
                service_key.cose_alg(),
                now_unix_seconds,
                &begin.to_string(),
                Some(&end.to_string()),
                Some(&root),
            );
            tables::CoseEndorsement {
                endorsement: sign(service_key, &protected, &previous.endorsing_key),
                endorsing_key,
                endorsement_epoch_begin: begin,
                endorsement_epoch_end: Some(end),
                previous_version: tx.get_version_of_previous_write(
                    tables::PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT,
                    &tables::SINGLETON_KEY,
                ),
            }
        }
        None => {
            let protected = coco_codec::cose::endorsement_protected_header(
                service_key.cose_alg(),
                now_unix_seconds,
                &created.to_string(),
                None,
                None,
            );
            tables::CoseEndorsement {
                endorsement: sign(service_key, &protected, &endorsing_key),
                endorsing_key,
                endorsement_epoch_begin: created,
                endorsement_epoch_end: None,
                previous_version: None,
            }
        }
    };
    tx.put(
        tables::PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT,
        Bytes::from_static(&tables::SINGLETON_KEY),
        Bytes::from(tables::to_ccf_json(&record).map_err(|e| e.to_string())?),
    );
    Ok(())
}

/// A COSE_Sign1 with an attached payload and an empty unprotected header.
fn sign(key: &coco_crypto::EcKeyPair, protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let signature = key.sign_cose(&coco_codec::cose::sig_structure(protected, payload));
    coco_codec::cose::assemble_sign1(protected, &Default::default(), Some(payload), &signature)
        .expect("an empty unprotected header always encodes")
}

/// Whether a newer endorsement's epoch starts right after the older one's ended (CCF
/// `validate_chain_integrity`).
fn chained(newer: &tables::CoseEndorsement, older: &tables::CoseEndorsement) -> bool {
    older.is_self_endorsement()
        || older
            .endorsement_epoch_end
            .is_none_or(|end| epoch_begin_after(end) == newer.endorsement_epoch_begin)
}

/// Checks an endorsement read back from the ledger: its record's epoch is the one its COSE
/// header names (CCF `validate_fetched_endorsement`).
fn check_record(e: &tables::CoseEndorsement) -> Result<(), String> {
    if e.is_self_endorsement() {
        return Ok(());
    }
    let parsed = coco_codec::cose::parse_sign1(&e.endorsement)
        .map_err(|err| format!("COSE endorsement does not parse: {err}"))?;
    let epoch = coco_codec::cose::endorsed_epoch(&parsed)
        .map_err(|err| format!("COSE endorsement header: {err}"))?;
    let end = e
        .endorsement_epoch_end
        .ok_or("COSE endorsement has no epoch end in its record")?;
    if epoch.begin != e.endorsement_epoch_begin.to_string()
        || epoch.end.as_deref() != Some(end.to_string().as_str())
    {
        return Err(format!(
            "COSE endorsement covers {}..{:?} but its record says {}..{end}",
            epoch.begin, epoch.end, e.endorsement_epoch_begin
        ));
    }
    Ok(())
}

/// What the chain of COSE endorsements says about one transaction.
pub(crate) enum CoseEndorsements {
    /// Ledger entries are being read back: answer 202.
    Loading,
    /// The transaction was signed by the current service identity (or no endorsement covers it).
    None,
    /// Newest first: the current service key's endorsement of the one before it, and so on down
    /// to the identity that signed the transaction.
    Chain(Vec<Vec<u8>>),
}

/// Endorsements read back from the ledger, by the seqno of their write. Committed history does
/// not change, so they stay valid; there is one per recovery.
#[derive(Default)]
pub(crate) struct EndorsementHistory {
    cose: BTreeMap<SeqNo, tables::CoseEndorsement>,
    /// `service.info` as written at the creation of each earlier service.
    services: BTreeMap<SeqNo, tables::ServiceInfo>,
    /// Earlier service certificate (PEM) → the current service's endorsement of it.
    certs: BTreeMap<String, String>,
}

impl Node {
    /// A singleton written by the entry at `seqno` (`None` while it is read back).
    fn historical_singleton<T: serde::de::DeserializeOwned>(
        &mut self,
        seqno: SeqNo,
        map: &str,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<Option<T>, String> {
        let Some(entry) = self.historical_entry(seqno, now, out) else {
            return Ok(None);
        };
        let domain = crate::receipt::public_domain(&entry)?;
        let raw = domain
            .singleton(map)
            .ok_or_else(|| format!("the entry at {seqno} does not write {map}"))?;
        tables::from_ccf_json(raw)
            .map(Some)
            .map_err(|e| format!("{map} at {seqno} does not parse: {e}"))
    }

    /// The chain of COSE endorsements from the current service identity to the one that signed
    /// the transaction at `seqno` (CCF `populate_cose_service_endorsements`).
    pub(crate) fn cose_endorsements(
        &mut self,
        seqno: SeqNo,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<CoseEndorsements, ApiError> {
        let mut tx = self.store.begin();
        let service: tables::ServiceInfo = read(&mut tx, tables::SERVICE_INFO)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal("No service.info record."))?;
        let created = service.current_service_create_txid.map_or(1, |t| t.seqno);
        if seqno >= created || service.status != tables::ServiceStatus::Open {
            return Ok(CoseEndorsements::None);
        }
        let Some(mut current) =
            read::<tables::CoseEndorsement>(&mut tx, tables::PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT)
                .map_err(ApiError::internal)?
        else {
            return Ok(CoseEndorsements::None);
        };
        let mut chain = Vec::new();
        loop {
            if current.is_self_endorsement() {
                // Older than every endorsed epoch: only a ledger from before endorsements.
                return Ok(CoseEndorsements::None);
            }
            chain.push(current.endorsement.clone());
            if current.endorsement_epoch_begin.seqno <= seqno {
                return Ok(CoseEndorsements::Chain(chain));
            }
            let at = current
                .previous_version
                .expect("only self-endorsements have no previous version");
            let older = match self.endorsements.cose.get(&at) {
                Some(e) => e.clone(),
                None => {
                    let Some(e) = self
                        .historical_singleton::<tables::CoseEndorsement>(
                            at,
                            tables::PREVIOUS_SERVICE_IDENTITY_ENDORSEMENT,
                            now,
                            out,
                        )
                        .map_err(ApiError::internal)?
                    else {
                        return Ok(CoseEndorsements::Loading);
                    };
                    check_record(&e).map_err(ApiError::internal)?;
                    self.endorsements.cose.insert(at, e.clone());
                    e
                }
            };
            if !chained(&current, &older) {
                return Err(ApiError::internal(format!(
                    "The chain of COSE endorsements is broken: an epoch ending at {:?} is not \
                     followed by one starting at {}.",
                    older.endorsement_epoch_end, current.endorsement_epoch_begin
                )));
            }
            current = older;
        }
    }

    /// `service_endorsements` for a JSON receipt whose node certificate is `node_cert_pem` and
    /// whose transaction is at `seqno` (CCF `populate_service_endorsements`): empty when the
    /// current service endorsed the node; otherwise the current service's endorsement of the
    /// service identity that was live at `seqno`. `None` while entries are read back.
    pub(crate) fn service_endorsements(
        &mut self,
        seqno: SeqNo,
        node_cert_pem: &str,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<Option<Vec<String>>, String> {
        let node_der = coco_crypto::pem_to_der_certs(node_cert_pem)
            .ok()
            .and_then(|v| v.into_iter().next())
            .ok_or("the receipt's node certificate does not parse")?;
        let current_spki = self.identity.service_key.public_key_spki_der();
        if coco_crypto::verify_cert_signed_by(&node_der, &current_spki).is_ok() {
            return Ok(Some(Vec::new()));
        }
        let mut tx = self.store.begin();
        let mut info: tables::ServiceInfo =
            read(&mut tx, tables::SERVICE_INFO)?.ok_or("the service has no service.info")?;
        // Walk back through the services' creations until one created at or before `seqno`.
        loop {
            let at = info.previous_service_identity_version.ok_or_else(|| {
                format!("no earlier service identity covers the transaction at {seqno}")
            })?;
            info = match self.endorsements.services.get(&at) {
                Some(i) => i.clone(),
                None => {
                    let Some(i) = self.historical_singleton::<tables::ServiceInfo>(
                        at,
                        tables::SERVICE_INFO,
                        now,
                        out,
                    )?
                    else {
                        return Ok(None);
                    };
                    self.endorsements.services.insert(at, i.clone());
                    i
                }
            };
            if at <= seqno {
                break;
            }
        }
        if let Some(endorsement) = self.endorsements.certs.get(&info.cert) {
            return Ok(Some(vec![endorsement.clone()]));
        }
        let endorsement = coco_crypto::endorse_previous_service_cert(
            &info.cert,
            &self.identity.service_key,
            &self.service.service_cert_pem,
        )
        .map_err(|e| format!("cannot endorse the earlier service identity: {e}"))?;
        self.endorsements
            .certs
            .insert(info.cert.clone(), endorsement.clone());
        Ok(Some(vec![endorsement]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(begin: TxId, end: Option<TxId>, previous: Option<u64>) -> tables::CoseEndorsement {
        tables::CoseEndorsement {
            endorsement: Vec::new(),
            endorsing_key: Vec::new(),
            endorsement_epoch_begin: begin,
            endorsement_epoch_end: end,
            previous_version: previous,
        }
    }

    #[test]
    fn epochs_chain_across_a_recovery_as_in_ccf() {
        // A service created at 2.1 ended at 5.100; its recovery was created at 7.101.
        assert_eq!(epoch_end_before(TxId::new(7, 101)), TxId::new(5, 100));
        assert_eq!(epoch_begin_after(TxId::new(5, 100)), TxId::new(7, 101));
        let first = record(TxId::new(2, 1), Some(TxId::new(5, 100)), Some(3));
        let second = record(TxId::new(7, 101), Some(TxId::new(9, 200)), Some(104));
        assert!(chained(&second, &first));
        let gap = record(TxId::new(7, 102), Some(TxId::new(9, 200)), Some(104));
        assert!(!chained(&gap, &first));
        // A self-endorsement ends nowhere: anything may follow it.
        assert!(chained(&first, &record(TxId::new(2, 1), None, None)));
    }
}

//! Snapshots (ccf-reference §1.10): the whole store at a committed signature transaction, written
//! by the primary every `snapshots.tx_count` transactions (or on `trigger_snapshot`), proven by a
//! *snapshot evidence* transaction whose claims digest is the snapshot's SHA-256, and made
//! `.committed` with that transaction's receipt appended once a signature after it commits.
//!
//! The flow, as in CCF's `Snapshotter` (`src/node/snapshotter.h`):
//!
//! 1. The primary emits a signature at seqno S with S − last snapshot ≥ interval (or a snapshot
//!    was requested): S becomes a candidate, the store and the Merkle leaf of S are captured
//!    (O(1): the store is persistent) and the signature closes its ledger chunk.
//! 2. When S commits, the core hands the host a [`SnapshotJob`]; the host serialises it off the
//!    core thread ([`SnapshotJob::serialise`]: CPU-bound, pure) and reports the digest back.
//! 3. The primary writes the evidence transaction E (`snapshot_evidence` = `{hash, version}`,
//!    claims digest = the digest); the host writes `snapshot_S_E`.
//! 4. When a signature T > E commits, the core builds E's JSON receipt from E's and T's entries;
//!    the host appends it and renames the file `snapshot_S_E.committed`.
//!
//! Loading ([`load_snapshot`]) checks the receipt before trusting anything in the file: the claims
//! digest must be the SHA-256 of the snapshot entry, the path must lead to the root the node
//! signed, and the node certificate must be endorsed by the service certificate.

use bytes::Bytes;
use coco_codec::entry::{EntryFlags, EntryView, gcm_iv, parse_entry};
use coco_codec::snapshot::{
    SnapshotDomainWriter, parse_snapshot_private, parse_snapshot_public, split_snapshot_file,
};
use coco_codec::tables;
use coco_crypto::sha256;
use coco_kv::{SnapshotBuilder, StoreSnapshot};
use coco_types::{SeqNo, View};

use crate::secrets::LedgerSecret;

/// Everything needed to write one snapshot file's entry, taken when the snapshot's signature was
/// appended. Serialising is the host's to schedule (it takes a while for a large store).
#[derive(Clone)]
pub struct SnapshotJob {
    pub seqno: SeqNo,
    pub store: StoreSnapshot,
    /// The Merkle leaf of `seqno` (the signature transaction itself).
    pub hash_at_snapshot: [u8; 32],
    /// CCF's form: for each view v, the first seqno of view v.
    pub view_history: Vec<u64>,
    secret: LedgerSecret,
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotJob")
            .field("seqno", &self.seqno)
            .field("entries", &self.store.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SnapshotJob {
    fn eq(&self, other: &Self) -> bool {
        self.seqno == other.seqno
            && self.hash_at_snapshot == other.hash_at_snapshot
            && self.view_history == other.view_history
    }
}

impl Eq for SnapshotJob {}

impl SnapshotJob {
    pub(crate) fn new(
        seqno: SeqNo,
        store: StoreSnapshot,
        hash_at_snapshot: [u8; 32],
        view_history: Vec<u64>,
        secret: LedgerSecret,
    ) -> Self {
        assert_eq!(
            store.version(),
            seqno,
            "a snapshot is of the store at its seqno"
        );
        SnapshotJob {
            seqno,
            store,
            hash_at_snapshot,
            view_history,
            secret,
        }
    }

    /// The snapshot entry: public maps in the clear, private maps encrypted under the ledger
    /// secret with the snapshot IV (seqno, view 0, snapshot bit), the public domain as AAD.
    pub fn serialise(&self) -> Vec<u8> {
        let mut public =
            SnapshotDomainWriter::public(self.seqno, &self.hash_at_snapshot, &self.view_history);
        let mut private = SnapshotDomainWriter::private();
        for (name, version, entries) in self.store.maps() {
            let w = if coco_kv::is_public(name) {
                &mut public
            } else {
                &mut private
            };
            w.map(
                name,
                version,
                entries.map(|(k, v, val)| (&k[..], v, &val[..])),
            );
        }
        let iv = gcm_iv(self.seqno, 0, true).expect("view 0 always fits the IV");
        let public = public.finish();
        let mut builder = coco_codec::entry::EntryBuilder::from_domains(
            EntryFlags::NONE,
            &iv,
            &public,
            &private.finish(),
        )
        .expect("a snapshot fits the entry format");
        let (aad, private) = builder.aad_and_private_mut();
        let tag = self.secret.key().seal_in_place_detached(&iv, aad, private);
        builder.finish(&tag)
    }
}

/// CCF's view history (index v = the first seqno of view v; views without entries take the
/// first seqno of the next view that has some) from coco's `(view, first seqno)` pairs.
pub fn ccf_view_history(history: &[(View, SeqNo)]) -> Vec<u64> {
    let Some(&(last_view, _)) = history.last() else {
        return Vec::new();
    };
    (0..=last_view)
        .map(|v| {
            history
                .iter()
                .find(|(view, _)| *view >= v)
                .map(|(_, first)| *first)
                .expect("the last view is at least v")
        })
        .collect()
}

/// coco's `(view, first seqno)` pairs from CCF's view history, for the views that have entries
/// up to `seqno`.
pub fn view_history_pairs(ccf: &[u64], seqno: SeqNo) -> Vec<(View, SeqNo)> {
    let mut pairs = Vec::new();
    for (v, first) in ccf.iter().enumerate() {
        let next = ccf.get(v + 1).copied().unwrap_or(seqno + 1);
        if *first <= seqno && next > *first {
            pairs.push((v as View, *first));
        }
    }
    pairs
}

/// A snapshot file whose receipt checked out, with its store decrypted.
#[derive(Debug)]
pub struct LoadedSnapshot {
    pub seqno: SeqNo,
    pub store: StoreSnapshot,
    pub hash_at_snapshot: [u8; 32],
    /// `(view, first seqno)` of each view with entries up to `seqno`.
    pub view_history: Vec<(View, SeqNo)>,
}

/// Checks a committed snapshot file's appended receipt against the service certificate and
/// returns the snapshot entry. (A file without a receipt is not committed and is refused.)
pub fn verify_snapshot_file<'a>(
    file: &'a [u8],
    service_cert_pem: &str,
) -> Result<EntryView<'a>, String> {
    let (entry, receipt) = split_snapshot_file(file).map_err(|e| format!("snapshot: {e}"))?;
    if receipt.is_empty() {
        return Err("snapshot has no receipt: it is not committed".into());
    }
    let receipt: serde_json::Value = serde_json::from_slice(receipt)
        .map_err(|e| format!("snapshot receipt is not JSON: {e}"))?;
    let claims = receipt["leaf_components"]["claims_digest"]
        .as_str()
        .ok_or("snapshot receipt has no leaf_components.claims_digest")?;
    let digest = sha256(entry);
    if hex::decode(claims).ok().as_deref() != Some(&digest[..]) {
        return Err(format!(
            "snapshot digest {} does not match the receipt's claims digest {claims}",
            hex::encode(digest)
        ));
    }
    crate::receipt::verify_json_receipt(&receipt, service_cert_pem)
        .map_err(|e| format!("snapshot receipt: {e}"))?;
    let view = parse_entry(entry).map_err(|e| format!("snapshot entry: {e}"))?;
    if !view.is_snapshot {
        return Err("the entry's IV does not mark a snapshot".into());
    }
    Ok(view)
}

/// A committed snapshot whose receipt checked out, its public maps read and its private domain
/// still encrypted: what a recovering node starts from before members give back the ledger
/// secrets.
pub struct SealedSnapshot {
    pub seqno: SeqNo,
    /// The public maps.
    pub public: StoreSnapshot,
    pub hash_at_snapshot: [u8; 32],
    /// `(view, first seqno)` of each view with entries up to `seqno`.
    pub view_history: Vec<(View, SeqNo)>,
    /// The whole snapshot entry (the private domain is decrypted from it later).
    entry: Bytes,
}

impl std::fmt::Debug for SealedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSnapshot")
            .field("seqno", &self.seqno)
            .finish_non_exhaustive()
    }
}

/// Verifies a committed snapshot file (see [`verify_snapshot_file`]) and reads its public maps.
pub fn open_snapshot(file: &[u8], service_cert_pem: &str) -> Result<SealedSnapshot, String> {
    let view = verify_snapshot_file(file, service_cert_pem)?;
    let entry = Bytes::copy_from_slice(view.bytes);
    let public = parse_snapshot_public(&Bytes::copy_from_slice(view.public))
        .map_err(|e| format!("snapshot public domain: {e}"))?;
    if public.seqno != view.seqno {
        return Err(format!(
            "snapshot entry is for seqno {} but its IV says {}",
            public.seqno, view.seqno
        ));
    }
    let hash_at_snapshot: [u8; 32] = public.hash_at_snapshot[..]
        .try_into()
        .map_err(|_| "hash at snapshot is not 32 bytes".to_owned())?;
    let mut builder = SnapshotBuilder::new(public.seqno);
    for m in public.maps {
        builder
            .map(&m.name, m.version, m.entries)
            .map_err(|e| format!("snapshot: {e}"))?;
    }
    Ok(SealedSnapshot {
        seqno: public.seqno,
        public: builder.finish(),
        hash_at_snapshot,
        view_history: view_history_pairs(&public.view_history, public.seqno),
        entry,
    })
}

impl SealedSnapshot {
    /// The private maps, decrypted with the secret in `secrets` for the snapshot's seqno.
    pub fn private_maps(
        &self,
        secrets: &crate::secrets::LedgerSecrets,
    ) -> Result<StoreSnapshot, String> {
        let view = parse_entry(&self.entry).map_err(|e| format!("snapshot entry: {e}"))?;
        let mut private = view.private.to_vec();
        secrets
            .for_seqno(view.seqno)
            .key()
            .open_in_place_detached(view.iv, view.public, &mut private, view.tag)
            .map_err(|e| format!("snapshot private domain: {e}"))?;
        let private = parse_snapshot_private(&Bytes::from(private))
            .map_err(|e| format!("snapshot private domain: {e}"))?;
        let mut builder = SnapshotBuilder::new(self.seqno);
        for m in private {
            builder
                .map(&m.name, m.version, m.entries)
                .map_err(|e| format!("snapshot: {e}"))?;
        }
        Ok(builder.finish())
    }
}

/// The Merkle tree as of a snapshot at `seqno`, read from its store: the tree its signature
/// signed (checked against the signed root) plus the snapshot's own leaf; and that signature.
pub(crate) fn snapshot_tree(
    tx: &mut coco_kv::Tx,
    seqno: SeqNo,
    hash_at_snapshot: [u8; 32],
) -> Result<(coco_merkle::MerkleTree, tables::SignatureValue), String> {
    let mut singleton = |map: &str| {
        tx.get(map, &tables::SINGLETON_KEY)
            .ok_or_else(|| format!("snapshot has no {map}"))
    };
    let signature: tables::SignatureValue = tables::from_ccf_json(&singleton(tables::SIGNATURES)?)
        .map_err(|e| format!("snapshot signature: {e}"))?;
    if signature.seqno != seqno {
        return Err(format!(
            "snapshot at {seqno} is not at its last signature ({})",
            signature.seqno
        ));
    }
    let mut tree = coco_merkle::MerkleTree::deserialise(&singleton(tables::TREE)?)
        .map_err(|e| format!("snapshot Merkle tree: {e}"))?;
    if tree.len() != seqno || tree.root() != signature.root {
        return Err("snapshot Merkle tree does not match its signed root".into());
    }
    tree.append(hash_at_snapshot);
    Ok((tree, signature))
}

/// Verifies a committed snapshot file (see [`verify_snapshot_file`]), decrypts its private maps
/// with `secrets` and loads every map.
pub fn load_snapshot(
    file: &[u8],
    service_cert_pem: &str,
    secrets: &crate::secrets::LedgerSecrets,
) -> Result<LoadedSnapshot, String> {
    let sealed = open_snapshot(file, service_cert_pem)?;
    let private = sealed.private_maps(secrets)?;
    let mut builder = SnapshotBuilder::new(sealed.seqno);
    for (name, version, entries) in sealed.public.maps().chain(private.maps()) {
        let entries = entries.map(|(k, v, val)| (k.clone(), v, val.clone()));
        builder
            .map(name, version, entries)
            .map_err(|e| format!("snapshot: {e}"))?;
    }
    Ok(LoadedSnapshot {
        seqno: sealed.seqno,
        store: builder.finish(),
        hash_at_snapshot: sealed.hash_at_snapshot,
        view_history: sealed.view_history,
    })
}

/// A snapshot on its way: captured at its signature, then serialised, then proven.
#[derive(Debug)]
struct Candidate {
    job: SnapshotJob,
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// Waiting for the signature at the snapshot seqno to commit.
    Captured,
    /// Handed to the host for serialisation.
    Serialising,
    /// The evidence transaction was appended; waiting for a signature after it (its seqno and
    /// entry), then for that signature to commit.
    Proving {
        evidence: coco_types::TxId,
        evidence_entry: Bytes,
        signature: Option<(SeqNo, Bytes)>,
    },
}

/// What the core asks of the host for snapshots (see the module docs for the order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Serialise this job and report `Input::SnapshotSerialised`.
    Serialise(SnapshotJob),
    /// The evidence of the snapshot at `seqno` is at `evidence_seqno`: write the file.
    Write { seqno: SeqNo, evidence_seqno: SeqNo },
    /// The evidence committed: append the receipt and mark the file committed.
    Commit {
        seqno: SeqNo,
        evidence_seqno: SeqNo,
        receipt: Vec<u8>,
    },
}

/// The core's snapshot bookkeeping.
#[derive(Debug)]
pub(crate) struct Snapshotter {
    /// `snapshots.tx_count`; 0 disables periodic snapshots.
    interval: u64,
    /// The seqno of the latest snapshot known to the service (from evidence transactions) or
    /// captured here.
    last_idx: SeqNo,
    /// `trigger_snapshot` was applied: snapshot at the next signature.
    requested: bool,
    candidates: Vec<Candidate>,
}

impl Snapshotter {
    pub(crate) fn new(interval: u64, last_idx: SeqNo) -> Self {
        Snapshotter {
            interval,
            last_idx,
            requested: false,
            candidates: Vec::new(),
        }
    }

    pub(crate) fn request(&mut self) {
        self.requested = true;
    }

    /// Whether the signature about to be written at `seqno` should be a snapshot point (then it
    /// also closes its ledger chunk).
    pub(crate) fn due_at(&self, seqno: SeqNo) -> bool {
        self.candidates.len() < coco_types::limits::SNAPSHOTS_PENDING_COUNT_MAX
            && (self.requested
                || (self.interval > 0 && seqno.saturating_sub(self.last_idx) >= self.interval))
    }

    /// The signature at `job.seqno` was appended and is a snapshot point.
    pub(crate) fn capture(&mut self, job: SnapshotJob) {
        self.requested = false;
        self.last_idx = self.last_idx.max(job.seqno);
        self.candidates.push(Candidate {
            job,
            stage: Stage::Captured,
        });
    }

    /// A `snapshot_evidence` write for the snapshot at `version` was applied (any node): the
    /// interval continues from there on whichever node is primary next.
    pub(crate) fn observe_evidence(&mut self, version: SeqNo) {
        self.last_idx = self.last_idx.max(version);
    }

    /// What to do now that everything up to `commit` is committed: serialise snapshots whose
    /// signature committed, and commit those whose evidence is proven by a committed signature.
    pub(crate) fn on_commit(&mut self, commit: SeqNo, out: &mut Vec<SnapshotAction>) {
        self.candidates.retain_mut(|c| match &c.stage {
            Stage::Captured if c.job.seqno <= commit => {
                out.push(SnapshotAction::Serialise(c.job.clone()));
                c.stage = Stage::Serialising;
                true
            }
            Stage::Proving {
                evidence,
                evidence_entry,
                signature: Some((sig, sig_entry)),
            } if *sig <= commit => {
                let ce = c.job.secret.commit_evidence(*evidence);
                let proof = crate::receipt::tx_proof(*evidence, evidence_entry, sig_entry, &ce)
                    .expect("this node's own evidence entry is proven by the next signature");
                out.push(SnapshotAction::Commit {
                    seqno: c.job.seqno,
                    evidence_seqno: evidence.seqno,
                    receipt: serde_json::to_vec(&proof.json_v1()).expect("JSON serialises"),
                });
                false
            }
            _ => true,
        });
    }

    /// The host serialised the snapshot at `seqno`: true if it is still wanted (not rolled back,
    /// not already proven), and the caller then appends its evidence.
    pub(crate) fn serialised(&self, seqno: SeqNo) -> bool {
        self.candidates
            .iter()
            .any(|c| c.job.seqno == seqno && matches!(c.stage, Stage::Serialising))
    }

    /// The snapshot at `seqno` will not be proven (this node is no longer primary).
    pub(crate) fn abandon(&mut self, seqno: SeqNo) {
        self.candidates.retain(|c| c.job.seqno != seqno);
    }

    /// The evidence of the snapshot at `seqno` was appended as `txid` with `entry`.
    pub(crate) fn evidence_appended(&mut self, seqno: SeqNo, txid: coco_types::TxId, entry: Bytes) {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.job.seqno == seqno) {
            c.stage = Stage::Proving {
                evidence: txid,
                evidence_entry: entry,
                signature: None,
            };
        }
    }

    /// A signature transaction was appended (primary) or applied (backup) at `seqno`.
    pub(crate) fn signature_appended(&mut self, seqno: SeqNo, entry: &Bytes) {
        for c in &mut self.candidates {
            if let Stage::Proving {
                evidence,
                signature: signature @ None,
                ..
            } = &mut c.stage
                && evidence.seqno < seqno
            {
                *signature = Some((seqno, entry.clone()));
            }
        }
    }

    /// Everything after `to` was rolled back.
    pub(crate) fn roll_back(&mut self, to: SeqNo) {
        self.candidates.retain_mut(|c| {
            if c.job.seqno > to {
                return false;
            }
            match &mut c.stage {
                Stage::Proving { evidence, .. } if evidence.seqno > to => false,
                Stage::Proving { signature, .. } => {
                    if signature.as_ref().is_some_and(|(s, _)| *s > to) {
                        *signature = None;
                    }
                    true
                }
                _ => true,
            }
        });
        self.last_idx = self
            .candidates
            .iter()
            .map(|c| c.job.seqno)
            .fold(self.last_idx.min(to), SeqNo::max);
    }
}

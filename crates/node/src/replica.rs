//! What a backup does with the entries the primary replicates, and what any node does when the
//! consensus core rolls its log back.
//!
//! A replicated entry is applied from its exact bytes: the private domain is decrypted with the
//! ledger secret (the public domain is the AAD, so tampering fails), the write set goes into the
//! KV, the entry's Merkle leaf is appended, a signature transaction's root is checked against the
//! tree, and the same bytes are handed to the host for the ledger — so every node's ledger is
//! byte-identical. Backups never execute application code.

use bytes::Bytes;
use coco_codec::domain::{parse_private_domain, parse_public_domain_shared};
use coco_codec::entry::{EntryFlags, parse_entry};
use coco_codec::tables;
use coco_codec::write_set::WriteSet;
use coco_consensus::Entry;
use coco_crypto::sha256;
use coco_types::{SeqNo, TxId};

use crate::{CoreConfig, Node, NodeIdentity, Now, Output, Plugins};

/// An entry, parsed and decrypted.
pub(crate) struct DecodedEntry {
    pub(crate) txid: TxId,
    pub(crate) force_chunk_after: bool,
    pub(crate) public: coco_codec::domain::PublicDomain,
    /// Public and private writes together.
    pub(crate) write_set: WriteSet,
}

/// Parses an entry and decrypts its private domain with `secret` (the public domain is the AAD,
/// so tampering fails); with `secrets: None`, the private domain is left out.
pub(crate) fn decode_entry(
    secrets: Option<&crate::secrets::LedgerSecrets>,
    data: &Bytes,
) -> Result<DecodedEntry, String> {
    let view = parse_entry(data).map_err(|e| e.to_string())?;
    let public_start = data.len() - view.public.len() - view.private.len();
    let public =
        parse_public_domain_shared(&data.slice(public_start..public_start + view.public.len()))
            .map_err(|e| e.to_string())?;
    let mut write_set = WriteSet {
        maps: public.maps.clone(),
    };
    if let Some(secrets) = secrets {
        let mut private = view.private.to_vec();
        if !private.is_empty() {
            secrets
                .for_seqno(view.seqno)
                .key()
                .open_in_place_detached(view.iv, view.public, &mut private, view.tag)
                .map_err(|e| format!("private domain: {e}"))?;
        }
        for (name, changes) in parse_private_domain(&private).map_err(|e| e.to_string())? {
            write_set.maps.insert(name, changes);
        }
    }
    Ok(DecodedEntry {
        txid: view.tx_id(),
        force_chunk_after: view.flags().contains(EntryFlags::FORCE_LEDGER_CHUNK_AFTER),
        public,
        write_set,
    })
}

/// The Merkle leaf of a serialised entry whose public domain is `public`.
pub(crate) fn entry_leaf(
    entry: &[u8],
    public: &coco_codec::domain::PublicDomain,
) -> Result<coco_merkle::Hash, String> {
    Ok(coco_merkle::transaction_leaf(
        &sha256(entry),
        &public
            .prefix
            .commit_evidence_digest
            .ok_or("entry without commit evidence")?,
        &public.prefix.claims_digest.unwrap_or([0; 32]),
    ))
}

impl Node {
    /// A node joining an existing service that already holds the service identity and the
    /// ledger secret (what CCF's `NetworkInfo` carries): it waits for the primary's entries.
    pub fn join(
        config: CoreConfig,
        identity: NodeIdentity,
        ledger_secrets: impl Into<crate::secrets::LedgerSecrets>,
        plugins: Plugins,
        now: Now,
    ) -> Node {
        let raft = coco_consensus::Raft::new_joiner(
            identity.node_id.clone(),
            config.consensus,
            config.seed,
            now.monotonic_ms,
        );
        Node::new(config, identity, ledger_secrets.into(), plugins, now, raft)
    }

    /// A node joining from a committed snapshot (already verified and decrypted by
    /// [`crate::snapshot::load_snapshot`]): the store, the Merkle tree (the snapshot's signed
    /// tree plus the snapshot's own leaf) and the consensus log start at the snapshot seqno; the
    /// primary's entries after it follow. Refuses a snapshot whose tree does not match the root
    /// its signature signed.
    pub fn join_from_snapshot(
        config: CoreConfig,
        identity: NodeIdentity,
        ledger_secrets: impl Into<crate::secrets::LedgerSecrets>,
        plugins: Plugins,
        now: Now,
        snapshot: crate::snapshot::LoadedSnapshot,
    ) -> Result<Node, String> {
        let seqno = snapshot.seqno;
        let store = coco_kv::Store::from_snapshot(&snapshot.store);
        let mut tx = store.begin();
        let (tree, signature) =
            crate::snapshot::snapshot_tree(&mut tx, seqno, snapshot.hash_at_snapshot)?;
        let info: tables::ServiceInfo = tables::from_ccf_json(
            &tx.get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
                .ok_or("snapshot has no service info")?,
        )
        .map_err(|e| format!("snapshot service info: {e}"))?;
        let view = snapshot
            .view_history
            .last()
            .map(|(v, _)| *v)
            .ok_or("snapshot has no view history")?;
        let mut trusted = std::collections::BTreeSet::new();
        tx.for_each(tables::NODES_INFO, |k, v| {
            if tables::from_ccf_json::<tables::NodeInfo>(v)
                .is_ok_and(|n| n.status == tables::NodeStatus::Trusted)
            {
                trusted.insert(String::from_utf8_lossy(k).into_owned());
            }
            true
        });
        let raft = coco_consensus::Raft::new_from_snapshot(
            identity.node_id.clone(),
            config.consensus,
            config.seed,
            now.monotonic_ms,
            seqno,
            &snapshot.view_history,
            std::sync::Arc::new(trusted),
        );
        let mut node = Node::new(config, identity, ledger_secrets.into(), plugins, now, raft);
        node.store = store;
        node.tree = tree;
        node.consensus.view = view;
        node.consensus.last_seqno = seqno;
        node.consensus.last_signed_seqno = seqno;
        node.consensus.commit = TxId::new(signature.view, seqno);
        node.consensus.view_history = snapshot.view_history;
        node.service_status = info.status;
        std::sync::Arc::make_mut(&mut node.service).service_cert_pem = info.cert;
        node.service_data = info.service_data;
        node.service_create_txid = info.current_service_create_txid;
        node.snapshots.observe_evidence(seqno);
        node.index.starts_after(seqno);
        node.refresh_peer_addresses();
        Ok(node)
    }

    /// Applies the entry at `idx` replicated by the primary. An entry that does not decrypt,
    /// parse or match this node's Merkle tree stops the node (as a storage failure would):
    /// under crash-fault tolerance the primary is trusted, so this means corruption or a bug.
    pub(crate) fn apply_replicated(&mut self, idx: SeqNo, entry: &Entry, out: &mut Vec<Output>) {
        if self.storage_failure.is_some() {
            return;
        }
        if let Err(e) = self.try_apply_replicated(idx, entry, out) {
            self.storage_failure = Some(format!("replicated entry {idx} refused: {e}"));
        }
    }

    fn try_apply_replicated(
        &mut self,
        idx: SeqNo,
        entry: &Entry,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        assert_eq!(
            idx,
            self.consensus.last_seqno + 1,
            "entries arrive in order"
        );
        // An entry of the service before a disaster recovery: history (see
        // `previous_service_upto`); its private domain may have to wait for the secrets.
        let previous = idx <= self.previous_service_upto;
        let public_only = previous && self.recovery.as_ref().is_some_and(|r| r.awaiting_secrets());
        let decoded = decode_entry((!public_only).then_some(&self.secrets), &entry.data)?;
        let (view, public, write_set) = (decoded.txid, decoded.public, decoded.write_set);
        if view.seqno != idx || view.view != entry.term {
            return Err(format!(
                "entry carries {view} but was replicated as {}.{idx}",
                entry.term
            ));
        }
        let is_signature = write_set.maps.contains_key(tables::SIGNATURES);
        if is_signature != entry.committable {
            return Err(format!(
                "committable flag {} but signature transaction {is_signature}",
                entry.committable
            ));
        }
        if is_signature {
            let raw = write_set
                .singleton(tables::SIGNATURES)
                .ok_or("signature transaction without a signature")?;
            let sig: tables::SignatureValue =
                tables::from_ccf_json(raw).map_err(|e| format!("signature: {e}"))?;
            if sig.root != self.tree.root() {
                return Err("the signed Merkle root differs from this node's tree".into());
            }
        }
        match self.recovery.as_mut() {
            Some(pending) if public_only => pending.observe_public(idx, &write_set)?,
            Some(pending) if !previous && pending.replaying() => {
                // Private writes wait until the private maps are back.
                let (private, public): (
                    std::collections::BTreeMap<_, _>,
                    std::collections::BTreeMap<_, _>,
                ) = write_set
                    .maps
                    .clone()
                    .into_iter()
                    .partition(|(name, _)| !coco_kv::is_public(name));
                self.store
                    .apply(&WriteSet { maps: public }, idx)
                    .map_err(|e| format!("KV: {e}"))?;
                pending.stash_private(idx, WriteSet { maps: private });
            }
            _ => {}
        }
        if self.store.current_version() < idx {
            self.store
                .apply(&write_set, idx)
                .map_err(|e| format!("KV: {e}"))?;
        }
        self.index.record(&write_set, idx);
        if !previous && self.configuration_after(&write_set) != entry.configuration {
            return Err(
                "the configuration replicated with the entry differs from its nodes.info".into(),
            );
        }
        self.tree.append(entry_leaf(&entry.data, &public)?);
        assert_eq!(self.tree.len(), idx + 1, "Merkle leaf i must be seqno i");
        self.consensus.last_seqno = idx;
        if is_signature {
            self.consensus.last_signed_seqno = idx;
        }
        if self
            .consensus
            .view_history
            .last()
            .is_none_or(|(v, _)| *v != view.view)
        {
            self.consensus.view_history.push((view.view, idx));
        }
        if !previous {
            self.observe_governance_writes(&write_set, idx);
            if is_signature {
                self.snapshots.signature_appended(idx, &entry.data);
            }
        }
        out.push(Output::Append {
            txid: TxId::new(view.view, idx),
            bytes: Bytes::clone(&entry.data),
            force_chunk_after: decoded.force_chunk_after,
            is_signature,
        });
        Ok(())
    }

    /// Discards everything after `to`: KV versions, Merkle leaves, pending certificate changes,
    /// and (through the host) the ledger's tail.
    pub(crate) fn roll_back(&mut self, to: SeqNo, out: &mut Vec<Output>) {
        assert!(
            to >= self.consensus.commit.seqno,
            "rollback below the commit index"
        );
        self.store
            .rollback(to)
            .expect("the KV keeps every uncommitted version");
        self.tree
            .retract_to(to + 1)
            .expect("the tree keeps every uncommitted leaf");
        self.consensus.last_seqno = to;
        self.consensus.last_signed_seqno = self.raft.last_committable().0;
        self.consensus
            .view_history
            .retain(|(_, first)| *first <= to);
        self.pending_certificates.retain(|(seqno, _)| *seqno <= to);
        self.refresh_peer_addresses();
        self.historical.truncate(to);
        self.index.truncate(to);
        self.snapshots.roll_back(to);
        self.secrets.roll_back(to);
        if let Some(pending) = self.recovery.as_mut() {
            pending.roll_back(to);
        }
        self.pending_retirements.retain(|(seqno, _)| *seqno <= to);
        out.push(Output::Truncate { seqno: to });
    }
}

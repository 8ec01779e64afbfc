//! Disaster recovery, first phase (ccf-reference §4.6): a node started on a copy of a dead
//! service's ledger replays its public domains, becomes the primary of a new view with a new
//! service identity and ledger secret, and records the recovery: service `Recovering` under the
//! new certificate, the previous identity and its last signed root, `recovery_count` + 1, the old
//! nodes retired and itself trusted. Members then open it with both identities (→
//! `WaitingForRecoveryShares`). The private domains stay encrypted until members' shares recover
//! the old ledger secrets.

use bytes::Bytes;
use coco_codec::WriteSet;
use coco_codec::domain::parse_public_domain_shared;
use coco_codec::entry::parse_entry;
use coco_codec::tables;
use coco_crypto::sha256;
use coco_kv::{CommitResult, Store};
use coco_merkle::MerkleTree;
use coco_types::{SeqNo, TxId, View};

use crate::secrets::LedgerSecrets;
use crate::{CoreConfig, GenesisConfig, Node, NodeIdentity, Now, Output, Plugins, ccf_json};

/// The public state of a ledger, replayed.
struct Replayed {
    store: Store,
    tree: MerkleTree,
    view_history: Vec<(View, SeqNo)>,
    write_sets: Vec<WriteSet>,
    last_signature: tables::SignatureValue,
}

/// Replays the public domains of `ledger` (entries 1..=n, the last one a signature): KV, Merkle
/// tree (leaves from each entry's digests), views; every signature's root is checked against the
/// tree.
fn replay_public(ledger: &[Bytes]) -> Result<Replayed, String> {
    let mut store = Store::new();
    let mut tree = MerkleTree::new();
    tree.append([0u8; 32]);
    let mut view_history: Vec<(View, SeqNo)> = Vec::new();
    let mut write_sets = Vec::with_capacity(ledger.len());
    let mut last_signature = None;
    for (k, entry) in ledger.iter().enumerate() {
        let seqno = k as SeqNo + 1;
        let at = |e: String| format!("ledger entry {seqno}: {e}");
        let view = parse_entry(entry).map_err(|e| at(e.to_string()))?;
        if view.seqno != seqno || view.is_snapshot {
            return Err(at(format!(
                "carries seqno {} (snapshot: {})",
                view.seqno, view.is_snapshot
            )));
        }
        let start = entry.len() - view.public.len() - view.private.len();
        let public = parse_public_domain_shared(&entry.slice(start..start + view.public.len()))
            .map_err(|e| at(e.to_string()))?;
        let ws = WriteSet { maps: public.maps };
        if let Some(raw) = ws
            .maps
            .get(tables::SIGNATURES)
            .and_then(|m| m.writes.get(&tables::SINGLETON_KEY[..]))
            .and_then(|v| v.as_ref())
        {
            let sig: tables::SignatureValue =
                tables::from_ccf_json(raw).map_err(|e| at(format!("signature: {e}")))?;
            if sig.root != tree.root() || sig.seqno != seqno {
                return Err(at("the signed Merkle root differs from the ledger's".into()));
            }
            last_signature = Some((seqno, sig));
        }
        store.apply(&ws, seqno).map_err(|e| at(e.to_string()))?;
        let mut leaf = [0u8; 96];
        leaf[..32].copy_from_slice(&sha256(entry));
        leaf[32..64].copy_from_slice(
            &public
                .prefix
                .commit_evidence_digest
                .ok_or_else(|| at("no commit evidence digest".into()))?,
        );
        leaf[64..].copy_from_slice(&public.prefix.claims_digest.unwrap_or([0; 32]));
        tree.append(sha256(&leaf));
        if view_history.last().is_none_or(|(v, _)| *v != view.view) {
            if view_history.last().is_some_and(|(v, _)| *v > view.view) {
                return Err(at(format!("view {} goes back", view.view)));
            }
            view_history.push((view.view, seqno));
        }
        write_sets.push(ws);
    }
    let (last, last_signature) =
        last_signature.ok_or("the ledger holds no signature transaction")?;
    if last != ledger.len() as SeqNo {
        return Err(format!(
            "the ledger continues past its last signature ({last}): truncate it there first"
        ));
    }
    Ok(Replayed {
        store,
        tree,
        view_history,
        write_sets,
        last_signature,
    })
}

/// What a recovering node starts from.
pub struct Recovery<'a> {
    /// The dead service's ledger entries from seqno 1 up to its last signature.
    pub ledger: &'a [Bytes],
    /// This node's interfaces and data, as recorded in `nodes.info`.
    pub genesis: &'a GenesisConfig,
    /// Encrypts what the recovered service writes (from a CSPRNG).
    pub ledger_secret: [u8; 32],
}

impl Node {
    /// Starts the recovery of a service from its ledger (CCF `Recover`); `identity` carries this
    /// node's key and the *new* service identity.
    pub fn start_recovery(
        config: CoreConfig,
        identity: NodeIdentity,
        recovery: Recovery<'_>,
        plugins: Plugins,
        now: Now,
        out: &mut Vec<Output>,
    ) -> Result<Node, String> {
        let Recovery {
            ledger,
            genesis,
            ledger_secret,
        } = recovery;
        let replayed = replay_public(ledger)?;
        let last = ledger.len() as SeqNo;
        let last_view = replayed
            .view_history
            .last()
            .map(|(v, _)| *v)
            .expect("a non-empty ledger has a view");
        let view = last_view + 1;
        let raft = coco_consensus::Raft::new_recovered(
            identity.node_id.clone(),
            config.consensus,
            config.seed,
            now.monotonic_ms,
            last,
            &replayed.view_history,
            view,
        );
        let secrets = LedgerSecrets::from_versions([(last + 1, ledger_secret, None)])?;
        let mut node = Node::new(config, identity, secrets, plugins, now, raft);
        node.store = replayed.store;
        node.tree = replayed.tree;
        for (k, ws) in replayed.write_sets.iter().enumerate() {
            node.index.record(ws, k as SeqNo + 1);
        }
        let mut view_history = replayed.view_history;
        view_history.push((view, last + 1));
        node.consensus.view = view;
        node.consensus.primary_id = Some(node.identity.node_id.clone());
        node.consensus.last_seqno = last;
        node.consensus.last_signed_seqno = last;
        node.consensus.commit = TxId::new(replayed.last_signature.view, last);
        node.consensus.view_history = view_history;
        node.snapshots.observe_evidence(last);
        node.write_recovery(genesis, &replayed.last_signature, out)?;
        node.refresh_peer_addresses();
        node.emit_signature(now, out);
        Ok(node)
    }

    /// The recovery transaction (CCF `create_service` with `recovering`, plus the retirement of
    /// the previous nodes and this node's trusted record).
    fn write_recovery(
        &mut self,
        genesis: &GenesisConfig,
        last_signature: &tables::SignatureValue,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let seqno = self.consensus.last_seqno + 1;
        let txid = TxId::new(self.consensus.view, seqno);
        let mut tx = self.store.begin();
        let singleton = || Bytes::from_static(&tables::SINGLETON_KEY);
        let previous: tables::ServiceInfo = tx
            .get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
            .ok_or("the ledger has no service.info")
            .and_then(|v| {
                tables::from_ccf_json(&v).map_err(|_| "the ledger's service.info does not parse")
            })?;
        let previous_created = previous
            .current_service_create_txid
            .ok_or("the previous service has no current_service_create_txid")?;
        self.service_data = previous.service_data.clone();
        self.service_create_txid = Some(txid);
        let info = tables::ServiceInfo {
            cert: self.service.service_cert_pem.clone(),
            status: tables::ServiceStatus::Recovering,
            previous_service_identity_version: Some(previous_created.seqno),
            recovery_count: Some(previous.recovery_count.unwrap_or(0) + 1),
            service_data: previous.service_data.clone(),
            current_service_create_txid: Some(txid),
        };
        tx.put(tables::SERVICE_INFO, singleton(), ccf_json(&info));
        tx.put(
            tables::PREVIOUS_SERVICE_IDENTITY,
            singleton(),
            ccf_json(&previous.cert),
        );
        tx.put(
            tables::PREVIOUS_SERVICE_LAST_SIGNED_ROOT,
            singleton(),
            ccf_json(&hex::encode(last_signature.root)),
        );
        // The previous service's nodes are gone: retire them (CCF `retire_active_nodes`).
        let mut nodes = Vec::new();
        tx.for_each(tables::NODES_INFO, |k, v| {
            nodes.push((k.clone(), v.clone()));
            true
        });
        for (id, raw) in nodes {
            let mut node: tables::NodeInfo = tables::from_ccf_json(&raw)
                .map_err(|e| format!("nodes.info of a previous node: {e}"))?;
            if node.status != tables::NodeStatus::Retired {
                node.status = tables::NodeStatus::Retired;
                tx.put(tables::NODES_INFO, id, ccf_json(&node));
            }
        }
        crate::attestation::trust_own_quote(&mut tx, &self.identity.quote_info());
        let mut own = self.identity.trusted_node_info(
            genesis.node_to_node_interface.clone(),
            genesis.rpc_interfaces.clone(),
        );
        own.ledger_secret_seqno = Some(seqno);
        own.node_data = genesis.node_data.clone();
        tx.put(
            tables::NODES_INFO,
            Bytes::from(self.identity.node_id.clone()),
            ccf_json(&own),
        );
        tx.put(
            tables::NODES_ENDORSED_CERTIFICATES,
            Bytes::from(self.identity.node_id.clone()),
            Bytes::from(self.identity.node_cert_pem.clone()),
        );
        let write_set = match self.store.commit(tx, seqno) {
            Ok(CommitResult::Committed { write_set }) => write_set,
            other => {
                return Err(format!(
                    "the recovery transaction did not commit: {other:?}"
                ));
            }
        };
        self.observe_governance_writes(&write_set, seqno);
        self.append_entry(&write_set, [0; 32], false, false, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_refuses_what_is_not_a_ledger_prefix_ending_at_a_signature() {
        assert!(replay_public(&[]).is_err());
        assert!(replay_public(&[Bytes::from_static(b"not an entry")]).is_err());
    }
}

//! Disaster recovery, first phase (ccf-reference §4.6): a node started on a copy of a dead
//! service's ledger replays its public domains, becomes the primary of a new view with a new
//! service identity and ledger secret, and records the recovery: service `Recovering` under the
//! new certificate, the previous identity and its last signed root, `recovery_count` + 1, the old
//! nodes retired and itself trusted. Members then open it with both identities (→
//! `WaitingForRecoveryShares`).
//!
//! Second phase: members submit their decrypted recovery shares
//! (`POST /gov/recovery/members/{id}:recover`, stored encrypted under the new ledger secret so
//! an election loses none). At the threshold (or one full-key share) the primary combines them,
//! unwraps the previous service's latest ledger secret, walks the chain of older secrets back
//! through every write of `historical_encrypted_ledger_secret`, and hands all of them to every
//! trusted node in `encrypted_ledger_secrets`. Each node then replays the private domains of
//! the previous ledger into a separate store, checks that the entries it read rebuild the
//! previous service's last signed Merkle root, and adopts those private maps (CCF's
//! `swap_private_maps`). The primary then opens the service: fresh recovery shares of the new
//! secret (with the previous secret chained under it), status `Open`, a snapshot at the next
//! signature.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coco_app_api::{ApiError, Caller, ErrorCode, Request, Response, StatusCode};
use coco_codec::WriteSet;
use coco_codec::domain::parse_public_domain_shared;
use coco_codec::entry::parse_entry;
use coco_codec::tables;
use coco_crypto::{GCM_IV_SIZE_BYTES, sharing};
use coco_kv::{CommitResult, Store};
use coco_merkle::MerkleTree;
use coco_types::{SeqNo, TxId, View, limits};

use crate::recovery::{self, open_tag_iv_ct, seal_tag_iv_ct};
use crate::secrets::LedgerSecrets;
use crate::{CoreConfig, GenesisConfig, Node, NodeIdentity, Now, Output, Plugins, ccf_json};

impl PendingPrivate {
    /// Whether the private maps are back (snapshots may be taken again).
    pub(crate) fn private_maps_back(&self) -> bool {
        matches!(self.stage, Stage::Opened)
    }

    /// Whether the previous service's secrets have not reached this node yet.
    pub(crate) fn awaiting_secrets(&self) -> bool {
        matches!(self.stage, Stage::WaitingForSecrets)
    }

    /// Whether the recovery started from a snapshot (this node cannot send the entries it
    /// covers to a joiner).
    pub(crate) fn started_from_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Whether the private maps are still being rebuilt (private writes must wait).
    pub(crate) fn replaying(&self) -> bool {
        matches!(self.stage, Stage::WaitingForSecrets | Stage::Reading(_))
    }

    /// The previous service's secrets while they are being replayed with (after that, the
    /// node's own secrets hold them).
    pub(crate) fn secrets_being_replayed(&self) -> Option<&LedgerSecrets> {
        match &self.stage {
            Stage::Reading(r) => Some(&r.secrets),
            _ => None,
        }
    }

    /// A replicated entry after `upto` arrives while the private maps are not back: its
    /// private writes wait for them.
    pub(crate) fn stash_private(&mut self, seqno: SeqNo, private: WriteSet) {
        self.stash.push((seqno, private));
    }

    /// Collects what the public replay of entry `seqno` (at most `upto`) tells the private
    /// one: the chain of secrets and, at `upto`, the last signed root (on the recovering
    /// primary and on a node that joined while the service recovered alike).
    pub(crate) fn observe_public(&mut self, seqno: SeqNo, public: &WriteSet) -> Result<(), String> {
        if let Some(raw) = public.singleton(tables::HISTORICAL_ENCRYPTED_LEDGER_SECRET) {
            let info = tables::from_ccf_json(raw)
                .map_err(|e| format!("ledger entry {seqno}: historical ledger secret: {e}"))?;
            self.chain.push((seqno, info));
        }
        if seqno == self.upto {
            let raw = public
                .singleton(tables::SIGNATURES)
                .ok_or("the previous service's last entry is not a signature")?;
            let sig: tables::SignatureValue =
                tables::from_ccf_json(raw).map_err(|e| format!("signature: {e}"))?;
            self.root = Some(sig.root);
        }
        Ok(())
    }

    /// Forgets stashed private writes after `to` (rolled back).
    pub(crate) fn roll_back(&mut self, to: SeqNo) {
        self.stash.retain(|(s, _)| *s <= to);
    }
}

/// The public state of a ledger, replayed.
struct Replayed {
    store: Store,
    tree: MerkleTree,
    view_history: Vec<(View, SeqNo)>,
    /// The write sets of the entries replayed, from seqno `starts_after + 1`.
    write_sets: Vec<WriteSet>,
    /// The Merkle tree before them.
    start_tree: MerkleTree,
    /// The snapshot the replay started from (0: the ledger's beginning).
    starts_after: SeqNo,
    last_signature: tables::SignatureValue,
}

/// A recovered service whose private domains are not back yet (CCF's public-only network).
pub(crate) struct PendingPrivate {
    /// The previous service's last seqno (CCF's `last_recovered_signed_idx`).
    pub(crate) upto: SeqNo,
    /// The committed snapshot the recovery started from, whose private maps are decrypted once
    /// the secrets are back; the private replay starts after it.
    snapshot: Option<crate::snapshot::SealedSnapshot>,
    /// The Merkle tree where the private replay starts (as of the snapshot, or just leaf 0).
    start_tree: MerkleTree,
    /// Its last signed Merkle root: the private replay must rebuild exactly this tree (a node
    /// that joined while the service recovered learns it from the entry at `upto`).
    root: Option<[u8; 32]>,
    /// Private writes of entries after `upto` that this node applied before its private maps
    /// were back (a node that joined while the service recovered), to replay on top of them.
    stash: Vec<(SeqNo, WriteSet)>,
    /// Every write of `historical_encrypted_ledger_secret` in the previous ledger, in order.
    chain: Vec<(SeqNo, tables::EncryptedLedgerSecretInfo)>,
    stage: Stage,
}

enum Stage {
    /// Members are submitting shares.
    WaitingForSecrets,
    /// The previous secrets are known: reading the previous ledger back.
    Reading(Box<Reading>),
    /// The private maps are back; the primary opens the service.
    Replayed,
    /// The service is open again: the host renames the files it wrote while recovering.
    Opened,
}

struct Reading {
    secrets: LedgerSecrets,
    /// The next entry to replay.
    next: SeqNo,
    /// When the outstanding read was asked for (`None`: ask now).
    requested_at_ms: Option<u64>,
    store: Store,
    tree: MerkleTree,
}

/// The previous service's secrets, each with the seqno it applies from and where its
/// predecessor is stored.
type RecoveredSecrets = Vec<(SeqNo, [u8; 32], Option<SeqNo>)>;

/// Replays the public domains of `ledger` — entries `1..=n`, or `s+1..=n` after a committed
/// `snapshot` at `s`, the last one a signature: KV, Merkle tree (leaves from each entry's
/// digests), views; every signature's root is checked against the tree.
fn replay_public(
    snapshot: Option<&crate::snapshot::SealedSnapshot>,
    ledger: &[Bytes],
) -> Result<Replayed, String> {
    let (mut store, mut tree, mut view_history, mut last_signature, starts_after) = match snapshot {
        Some(snapshot) => {
            let store = Store::from_snapshot(&snapshot.public);
            let (tree, signature) = crate::snapshot::snapshot_tree(
                &mut store.begin(),
                snapshot.seqno,
                snapshot.hash_at_snapshot,
            )?;
            (
                store,
                tree,
                snapshot.view_history.clone(),
                Some((snapshot.seqno, signature)),
                snapshot.seqno,
            )
        }
        None => {
            let mut tree = MerkleTree::new();
            tree.append([0u8; 32]);
            (Store::new(), tree, Vec::new(), None, 0)
        }
    };
    let start_tree = tree.clone();
    let mut write_sets = Vec::with_capacity(ledger.len());
    for (k, entry) in ledger.iter().enumerate() {
        let seqno = starts_after + k as SeqNo + 1;
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
        let leaf = crate::replica::entry_leaf(entry, &public).map_err(at)?;
        let ws = WriteSet { maps: public.maps };
        if let Some(raw) = ws.singleton(tables::SIGNATURES) {
            let sig: tables::SignatureValue =
                tables::from_ccf_json(raw).map_err(|e| at(format!("signature: {e}")))?;
            if sig.root != tree.root() || sig.seqno != seqno {
                return Err(at("the signed Merkle root differs from the ledger's".into()));
            }
            last_signature = Some((seqno, sig));
        }
        store.apply(&ws, seqno).map_err(|e| at(e.to_string()))?;
        tree.append(leaf);
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
    if last != starts_after + ledger.len() as SeqNo {
        return Err(format!(
            "the ledger continues past its last signature ({last}): truncate it there first"
        ));
    }
    Ok(Replayed {
        store,
        tree,
        view_history,
        write_sets,
        start_tree,
        starts_after,
        last_signature,
    })
}

/// How many of `entries` there are up to and including the last signature transaction among
/// them: a recovery keeps those, since nothing after it was ever committed. `None` if there is
/// none or an entry near the end does not parse.
pub fn through_last_signature(entries: &[Bytes]) -> Option<usize> {
    for (k, entry) in entries.iter().enumerate().rev() {
        let view = parse_entry(entry).ok()?;
        let start = entry.len() - view.public.len() - view.private.len();
        let public =
            parse_public_domain_shared(&entry.slice(start..start + view.public.len())).ok()?;
        if public.maps.contains_key(tables::SIGNATURES) {
            return Some(k + 1);
        }
    }
    None
}

/// What a recovering node starts from.
pub struct Recovery<'a> {
    /// The dead service's latest committed snapshot (verified against its identity), if any.
    pub snapshot: Option<crate::snapshot::SealedSnapshot>,
    /// The dead service's ledger entries from seqno 1 (or from just after the snapshot) up to
    /// its last signature.
    pub ledger: &'a [Bytes],
    /// This node's interfaces and data, as recorded in `nodes.info`.
    pub genesis: &'a GenesisConfig,
    /// Encrypts what the recovered service writes (from a CSPRNG).
    pub ledger_secret: [u8; 32],
    /// The operator's copy of the previous service certificate
    /// (`command.recover.previous_service_identity_file`): it must be the ledger's.
    pub previous_service_identity: Option<&'a str>,
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
            snapshot,
            ledger,
            genesis,
            ledger_secret,
            previous_service_identity,
        } = recovery;
        let replayed = replay_public(snapshot.as_ref(), ledger)?;
        let first = replayed.starts_after + 1;
        let last = replayed.starts_after + ledger.len() as SeqNo;
        let last_view = replayed
            .view_history
            .last()
            .map(|(v, _)| *v)
            .expect("a non-empty ledger has a view");
        let view = last_view + coco_types::RECOVERY_VIEW_CHANGE;
        let signatures: Vec<SeqNo> = replayed
            .write_sets
            .iter()
            .enumerate()
            .filter(|(_, ws)| ws.maps.contains_key(tables::SIGNATURES))
            .map(|(k, _)| replayed.starts_after + 1 + k as SeqNo)
            .collect();
        let raft = coco_consensus::Raft::new_recovered(
            identity.node_id.clone(),
            config.consensus,
            config.seed,
            now.monotonic_ms,
            coco_consensus::RecoveredLog {
                seqno: last,
                view_history: &replayed.view_history,
                signatures: &signatures,
            },
            view,
        );
        let secrets = LedgerSecrets::from_versions([(last + 1, ledger_secret, None)])?;
        let mut node = Node::new(config, identity, secrets, plugins, now, raft);
        if let Some(s) = &snapshot {
            node.index.starts_after(s.seqno);
        }
        node.store = replayed.store;
        node.tree = replayed.tree;
        for (k, ws) in replayed.write_sets.iter().enumerate() {
            node.index.record(ws, first + k as SeqNo);
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
        // The chain of secrets: the record the snapshot holds (the latest before it), then every
        // write after it. Secrets older than the snapshot are not needed to replay from it.
        let mut chain = Vec::new();
        if let Some(s) = &snapshot
            && let Some((_, _, version, raw)) = s.public.iter().find(|(m, k, ..)| {
                *m == tables::HISTORICAL_ENCRYPTED_LEDGER_SECRET
                    && k[..] == tables::SINGLETON_KEY[..]
            })
        {
            let info = tables::from_ccf_json(raw)
                .map_err(|e| format!("snapshot: historical ledger secret: {e}"))?;
            chain.push((version, info));
        }
        let mut pending = PendingPrivate {
            upto: last,
            root: Some(replayed.last_signature.root),
            stash: Vec::new(),
            snapshot,
            start_tree: replayed.start_tree,
            chain,
            stage: Stage::WaitingForSecrets,
        };
        for (k, ws) in replayed.write_sets.iter().enumerate() {
            pending.observe_public(first + k as SeqNo, ws)?;
        }
        node.previous_service_upto = last;
        node.recovery = Some(pending);
        node.write_recovery(
            genesis,
            &replayed.last_signature,
            previous_service_identity,
            out,
        )?;
        node.refresh_peer_addresses();
        node.emit_signature(now, out);
        Ok(node)
    }

    /// A node joining a service that is recovering from the ledger of a dead one that ended at
    /// `upto` (`NetworkInfo.last_recovered_signed_idx`): the primary replicates the whole
    /// ledger; entries up to `upto` are history, not acted on. With `public_only` (the previous
    /// service's secrets are not back yet), their private domains are left for a private replay
    /// from this node's own ledger once the primary hands the secrets out, as on the primary.
    pub fn join_recovering_service(
        config: CoreConfig,
        identity: NodeIdentity,
        ledger_secrets: LedgerSecrets,
        plugins: Plugins,
        now: Now,
        upto: SeqNo,
        public_only: bool,
    ) -> Node {
        let mut node = Node::join(config, identity, ledger_secrets, plugins, now);
        node.previous_service_upto = upto;
        if public_only {
            let mut start_tree = MerkleTree::new();
            start_tree.append([0u8; 32]);
            node.recovery = Some(PendingPrivate {
                upto,
                root: None,
                stash: Vec::new(),
                snapshot: None,
                start_tree,
                chain: Vec::new(),
                stage: Stage::WaitingForSecrets,
            });
        }
        node
    }

    /// The recovery transaction (CCF `create_service` with `recovering`, plus the retirement of
    /// the previous nodes and this node's trusted record).
    fn write_recovery(
        &mut self,
        genesis: &GenesisConfig,
        last_signature: &tables::SignatureValue,
        previous_service_identity: Option<&str>,
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
        if let Some(given) = previous_service_identity
            && given.trim() != previous.cert.trim()
        {
            return Err(
                "the previous service identity given is not the certificate of the service \
                 whose ledger this is"
                    .into(),
            );
        }
        // A ledger whose genesis did not record it was created at seqno 1.
        let previous_created = previous
            .current_service_create_txid
            .unwrap_or(TxId::new(0, 1));
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

/// CCF's `restore_recovery_shares_info`: the previous service's secrets, from its latest one
/// (unwrapped with the members' shares) back through each write of
/// `historical_encrypted_ledger_secret`, where every secret encrypts the one before it.
fn restore_secrets(
    chain: &[(SeqNo, tables::EncryptedLedgerSecretInfo)],
    latest: [u8; 32],
) -> Result<RecoveredSecrets, String> {
    let (last_write, last) = chain
        .last()
        .ok_or("the previous ledger records no ledger secret")?;
    let latest_version = last.next_version.unwrap_or(last_write + 1);
    let mut secrets: RecoveredSecrets = vec![(
        latest_version,
        latest,
        last.previous_ledger_secret.as_ref().map(|_| *last_write),
    )];
    for (write, info) in chain.iter().rev() {
        let Some(previous) = &info.previous_ledger_secret else {
            break;
        };
        if secrets.iter().any(|(v, ..)| *v == previous.version) {
            continue;
        }
        let key = secrets.last().expect("never empty").1;
        let raw = open_tag_iv_ct(&key, &previous.encrypted_data)
            .map_err(|e| format!("the ledger secret recorded at {write} does not decrypt: {e}"))?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| format!("the ledger secret recorded at {write} is not 32 bytes"))?;
        secrets.push((
            previous.version,
            raw,
            previous.previous_secret_stored_version,
        ));
    }
    secrets.reverse();
    Ok(secrets)
}

fn service_info(tx: &mut coco_kv::Tx) -> Result<tables::ServiceInfo, ApiError> {
    tx.get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
        .ok_or_else(|| ApiError::internal("No service.info record."))
        .and_then(|v| {
            tables::from_ccf_json(&v)
                .map_err(|e| ApiError::internal(format!("service.info does not parse: {e}")))
        })
}

impl Node {
    /// `POST /gov/recovery/members/{memberId}:recover` (CCF's `submit_recovery_share`): a
    /// recovery member's decrypted share, COSE-signed with msg type `recovery_share`, body
    /// `{"share": base64}`. Stored encrypted under the current ledger secret; at the threshold
    /// (or with one full-key share) the previous secrets are restored and handed to every node.
    /// Shares that do not restore them are discarded, so members can submit again.
    pub(crate) fn recovery_share_endpoint(
        &mut self,
        tx: &mut coco_kv::Tx,
        request: &Request,
        caller: &Caller,
        params: &BTreeMap<String, String>,
    ) -> Result<Response, ApiError> {
        crate::gov::check_request_api_version(request)?;
        let not_waiting = || {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::ServiceNotWaitingForRecoveryShares,
                "Service is not waiting for recovery shares.",
            )
        };
        if service_info(tx)?.status != tables::ServiceStatus::WaitingForRecoveryShares {
            return Err(not_waiting());
        }
        match self.recovery.as_ref().map(|p| &p.stage) {
            Some(Stage::WaitingForSecrets) => {}
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::NodeAlreadyRecovering,
                    "Node is already recovering private ledger.",
                ));
            }
            None => return Err(not_waiting()),
        }
        let (member, signed) = crate::gov::signed_by_member(
            caller,
            params.get("memberId").map(String::as_str),
            "recovery_share",
        )?;
        #[derive(serde::Deserialize)]
        struct Body {
            share: String,
        }
        let body: Body = serde_json::from_slice(&signed.payload)
            .map_err(|e| ApiError::invalid_input(format!("Invalid recovery share body: {e}")))?;
        let raw = B64
            .decode(body.share.trim())
            .map_err(|e| ApiError::invalid_input(format!("The share is not base64: {e}")))?;
        let share = sharing::Share::from_bytes(&raw)
            .map_err(|e| ApiError::invalid_input(format!("Invalid recovery share: {e}")))?;
        let shares_info: tables::RecoverySharesInfo = tx
            .get(tables::RECOVERY_SHARES, &tables::SINGLETON_KEY)
            .ok_or_else(|| ApiError::internal("The recovered ledger holds no recovery shares."))
            .and_then(|v| {
                tables::from_ccf_json(&v)
                    .map_err(|e| ApiError::internal(format!("recovery_shares: {e}")))
            })?;
        if !shares_info.encrypted_shares.contains_key(member) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AuthorizationFailed,
                format!("Member {member} holds no recovery share of the previous service."),
            ));
        }
        let mut iv = [0u8; GCM_IV_SIZE_BYTES];
        self.drbg.fill(&mut iv);
        let sealed = seal_tag_iv_ct(self.secrets.latest().raw(), iv, &raw);
        tx.put(
            tables::ENCRYPTED_SUBMITTED_SHARES,
            Bytes::from(member.to_owned()),
            ccf_json(&B64.encode(sealed)),
        );
        let submitted = tx.size(tables::ENCRYPTED_SUBMITTED_SHARES) as u64;
        let threshold = tx
            .get(tables::SERVICE_CONFIG, &tables::SINGLETON_KEY)
            .and_then(|v| tables::from_ccf_json::<tables::ServiceConfiguration>(&v).ok())
            .map_or(1, |c| c.recovery_threshold);
        let full_key = share.x == 0;
        let mut message = if full_key {
            "Full recovery key successfully submitted".to_owned()
        } else {
            format!("{submitted}/{threshold} recovery shares successfully submitted")
        };
        if submitted >= threshold || full_key {
            let restored = self
                .combine_submitted_shares(tx, threshold, &shares_info)
                .and_then(|secrets| {
                    // Every trusted node gets them (CCF's `broadcast_some`) and starts its
                    // private replay when it sees them.
                    let versioned: Vec<_> = secrets
                        .into_iter()
                        .map(|(version, raw, stored)| (Some(version), raw, stored))
                        .collect();
                    recovery::send_to_trusted_nodes(tx, &versioned)
                });
            if let Err(e) = restored {
                // CCF discards the submitted shares so that members can start over; the
                // discarding is committed even though the request failed.
                tx.clear(tables::ENCRYPTED_SUBMITTED_SHARES);
                self.apply_writes_on_error = true;
                return Ok(ApiError::invalid_input(format!(
                    "The submitted recovery shares do not recover the ledger secret ({e}). They \
                     were discarded: members must submit their shares again."
                ))
                .into_response());
            }
            message.push_str("\nEnd of recovery procedure initiated");
        }
        Ok(Response::ok_json(&serde_json::json!({
            "message": message,
            "submittedCount": submitted,
            "recoveryThreshold": threshold,
            "fullKeySubmitted": full_key,
        })))
    }

    /// The previous service's secrets from the shares submitted so far.
    fn combine_submitted_shares(
        &self,
        tx: &mut coco_kv::Tx,
        threshold: u64,
        shares_info: &tables::RecoverySharesInfo,
    ) -> Result<RecoveredSecrets, String> {
        let mut sealed = Vec::new();
        tx.for_each(tables::ENCRYPTED_SUBMITTED_SHARES, |_, v| {
            sealed.push(v.clone());
            true
        });
        let mut shares = Vec::new();
        for v in sealed {
            let b64: String =
                tables::from_ccf_json(&v).map_err(|e| format!("a submitted share: {e}"))?;
            let data = B64
                .decode(b64)
                .map_err(|e| format!("a submitted share: {e}"))?;
            let raw = open_tag_iv_ct(self.secrets.latest().raw(), &data)
                .map_err(|e| format!("a submitted share: {e}"))?;
            shares.push(sharing::Share::from_bytes(&raw).map_err(|e| e.to_string())?);
        }
        let key = match shares.iter().find(|s| s.x == 0) {
            Some(full) => full.clone(),
            None => sharing::combine(&shares, threshold as usize).map_err(|e| e.to_string())?,
        };
        let latest = sharing::unwrap_ledger_secret(&key, &shares_info.wrapped_latest_ledger_secret)
            .map_err(|e| e.to_string())?;
        restore_secrets(&self.recovery.as_ref().expect("checked").chain, latest)
    }

    /// Called with this node's secrets from an `encrypted_ledger_secrets` write: if they are
    /// the previous service's, the private replay starts. Returns whether they were.
    pub(crate) fn receive_recovered_secrets(
        &mut self,
        secrets: &[(Option<u64>, [u8; 32], Option<u64>)],
    ) -> Result<bool, String> {
        let Some(pending) = self.recovery.as_mut() else {
            return Ok(false);
        };
        if !secrets
            .iter()
            .all(|(v, ..)| v.is_some_and(|v| v <= pending.upto))
        {
            return Ok(false);
        }
        if !matches!(pending.stage, Stage::WaitingForSecrets) {
            return Ok(true);
        }
        let recovered = LedgerSecrets::from_versions(
            secrets
                .iter()
                .map(|(v, raw, stored)| (v.expect("checked"), *raw, *stored)),
        )?;
        let (store, next) = match &pending.snapshot {
            Some(s) => (
                Store::from_snapshot(&s.private_maps(&recovered)?),
                s.seqno + 1,
            ),
            None => (Store::new(), 1),
        };
        pending.stage = Stage::Reading(Box::new(Reading {
            secrets: recovered,
            next,
            requested_at_ms: None,
            store,
            tree: pending.start_tree.clone(),
        }));
        // A snapshot at the last signature leaves nothing to read.
        self.private_recovery_read(next, &[]);
        Ok(true)
    }

    /// Asks the host for the next entries to replay; on the primary, opens the service once
    /// the private maps are back.
    pub(crate) fn drive_private_recovery(&mut self, now: Now, out: &mut Vec<Output>) {
        let Some(pending) = self.recovery.as_mut() else {
            return;
        };
        match &mut pending.stage {
            Stage::Reading(r) => {
                let due = r
                    .requested_at_ms
                    .is_none_or(|at| now.monotonic_ms >= at + limits::HISTORICAL_READ_RETRY_MS);
                if due {
                    r.requested_at_ms = Some(now.monotonic_ms);
                    out.push(Output::ReadLedger {
                        from_idx: r.next,
                        to_idx: pending
                            .upto
                            .min(r.next + limits::PRIVATE_RECOVERY_READ_BATCH_COUNT - 1),
                    });
                }
            }
            Stage::Replayed => {
                if self.service_status == tables::ServiceStatus::Open {
                    // A backup whose replay finished after the primary opened the service.
                    pending.stage = Stage::Opened;
                } else if self.raft.role() == coco_consensus::Role::Leader
                    && self.service_status == tables::ServiceStatus::WaitingForRecoveryShares
                    && self.storage_failure.is_none()
                    && let Err(e) = self.open_recovered_service(now, out)
                {
                    self.storage_failure = Some(format!("opening the recovered service: {e}"));
                }
            }
            Stage::Opened => {
                out.push(Output::RecoveryComplete);
                self.recovery = None;
            }
            Stage::WaitingForSecrets => {}
        }
    }

    /// The service status became `Open`: a recovery whose private maps are back is over (a
    /// backup still replaying finishes first, see `drive_private_recovery`).
    pub(crate) fn recovered_service_opened(&mut self) {
        if let Some(pending) = self.recovery.as_mut()
            && matches!(pending.stage, Stage::Replayed)
        {
            pending.stage = Stage::Opened;
        }
    }

    /// Entries read back from the ledger: if the private replay asked for them, they are
    /// replayed and the function returns true.
    pub(crate) fn private_recovery_read(&mut self, from_idx: SeqNo, entries: &[Bytes]) -> bool {
        let Some(pending) = self.recovery.as_mut() else {
            return false;
        };
        let Stage::Reading(r) = &mut pending.stage else {
            return false;
        };
        if from_idx != r.next || (entries.is_empty() && r.next <= pending.upto) {
            return false;
        }
        r.requested_at_ms = None;
        let upto = pending.upto;
        let result = (|| -> Result<(), String> {
            for entry in entries {
                if r.next > upto {
                    break;
                }
                let seqno = r.next;
                let decoded = crate::replica::decode_entry(Some(&r.secrets), entry)
                    .map_err(|e| format!("ledger entry {seqno}: {e}"))?;
                if decoded.txid.seqno != seqno {
                    return Err(format!(
                        "ledger entry {seqno} carries seqno {}",
                        decoded.txid.seqno
                    ));
                }
                let private = WriteSet {
                    maps: decoded
                        .write_set
                        .maps
                        .into_iter()
                        .filter(|(name, _)| !coco_kv::is_public(name))
                        .collect(),
                };
                r.store
                    .apply(&private, seqno)
                    .map_err(|e| format!("ledger entry {seqno}: {e}"))?;
                r.store.compact(seqno);
                self.index.record(&private, seqno);
                // The last entry is the previous service's last signature: it signed the tree
                // of everything before it.
                if seqno == upto && Some(r.tree.root()) != pending.root {
                    return Err(
                        "the entries read back do not rebuild the previous service's \
                         last signed root"
                            .into(),
                    );
                }
                r.tree.append(
                    crate::replica::entry_leaf(entry, &decoded.public)
                        .map_err(|e| format!("ledger entry {seqno}: {e}"))?,
                );
                r.next += 1;
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.storage_failure = Some(format!("replaying the previous private ledger: {e}"));
            return true;
        }
        if r.next > upto {
            let Stage::Reading(mut r) = std::mem::replace(&mut pending.stage, Stage::Replayed)
            else {
                unreachable!("matched above");
            };
            // Private writes replicated since, on top of the replayed maps, version by version
            // (so that a later rollback drops them too). Entries this node wrote itself as the
            // recovering primary wrote no private maps: the frontend was closed.
            let stash = std::mem::take(&mut pending.stash);
            let current = self.store.current_version();
            let mut stash = stash.into_iter().peekable();
            while r.store.current_version() < current {
                let seqno = r.store.current_version() + 1;
                let private = match stash.next_if(|(s, _)| *s == seqno) {
                    Some((_, private)) => private,
                    None => WriteSet::default(),
                };
                if let Err(e) = r.store.apply(&private, seqno) {
                    self.storage_failure =
                        Some(format!("private writes replicated during recovery: {e}"));
                    return true;
                }
            }
            self.store.replace_private_maps(&r.store);
            self.secrets.prepend(r.secrets);
        }
        true
    }

    /// The transaction that ends a recovery (CCF's `recover_private_ledger_end_unsafe` on the
    /// primary): submitted shares cleared, the previous service's latest secret chained under
    /// the new one, fresh recovery shares of the new secret, the service `Open`, a snapshot at
    /// the next signature.
    fn open_recovered_service(&mut self, now: Now, out: &mut Vec<Output>) -> Result<(), String> {
        let seqno = self.consensus.last_seqno + 1;
        let mut tx = self.store.begin();
        tx.clear(tables::ENCRYPTED_SUBMITTED_SHARES);
        let new = self.secrets.latest().clone();
        let previous = self.secrets.for_seqno(new.applies_from() - 1).clone();
        let mut iv = [0u8; GCM_IV_SIZE_BYTES];
        self.drbg.fill(&mut iv);
        let stored_before = tx.get_version_of_previous_write(
            tables::HISTORICAL_ENCRYPTED_LEDGER_SECRET,
            &tables::SINGLETON_KEY,
        );
        tx.put(
            tables::HISTORICAL_ENCRYPTED_LEDGER_SECRET,
            Bytes::from_static(&tables::SINGLETON_KEY),
            ccf_json(&tables::EncryptedLedgerSecretInfo {
                previous_ledger_secret: Some(tables::PreviousLedgerSecretInfo {
                    encrypted_data: seal_tag_iv_ct(new.raw(), iv, previous.raw()),
                    version: previous.applies_from(),
                    previous_secret_stored_version: stored_before,
                }),
                next_version: Some(new.applies_from()),
            }),
        );
        let mut info = service_info(&mut tx).map_err(|e| e.message)?;
        info.status = tables::ServiceStatus::Open;
        tx.put(
            tables::SERVICE_INFO,
            Bytes::from_static(&tables::SINGLETON_KEY),
            ccf_json(&info),
        );
        let holders = crate::recovery::holders(&mut tx);
        crate::recovery::issue(&mut tx, &holders, new.raw(), Some(seqno), &mut self.drbg)?;
        crate::endorsement::endorse_previous_identity(
            &mut tx,
            &self.identity.service_key,
            now.unix_seconds,
        )?;
        let write_set = match self.store.commit(tx, seqno) {
            Ok(CommitResult::Committed { write_set }) => write_set,
            other => return Err(format!("the opening transaction did not commit: {other:?}")),
        };
        self.secrets.set_previous_stored(new.applies_from(), seqno);
        self.observe_governance_writes(&write_set, seqno);
        self.append_entry(&write_set, [0; 32], false, false, out);
        self.snapshots.request();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_of_secrets_is_walked_back_from_the_latest() {
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let rekey = |previous: [u8; 32], under: [u8; 32], version, stored| {
            tables::EncryptedLedgerSecretInfo {
                previous_ledger_secret: Some(tables::PreviousLedgerSecretInfo {
                    encrypted_data: seal_tag_iv_ct(&under, [7; GCM_IV_SIZE_BYTES], &previous),
                    version,
                    previous_secret_stored_version: stored,
                }),
                next_version: None,
            }
        };
        // Opened at 5 (secret a from 1), rekeyed at 10 (b from 11) and at 20 (c from 21).
        let chain = vec![
            (
                5,
                tables::EncryptedLedgerSecretInfo {
                    previous_ledger_secret: None,
                    next_version: Some(1),
                },
            ),
            (10, rekey(a, b, 1, Some(5))),
            (20, rekey(b, c, 11, Some(10))),
        ];
        assert_eq!(
            restore_secrets(&chain, c).unwrap(),
            vec![(1, a, Some(5)), (11, b, Some(10)), (21, c, Some(20))]
        );
        // The wrong latest secret decrypts nothing.
        let e = restore_secrets(&chain, b).unwrap_err();
        assert!(e.contains("recorded at 20"), "{e}");
        assert!(restore_secrets(&[], c).is_err());
    }

    #[test]
    fn replay_refuses_what_is_not_a_ledger_prefix_ending_at_a_signature() {
        assert!(replay_public(None, &[]).is_err());
        assert!(replay_public(None, &[Bytes::from_static(b"not an entry")]).is_err());
    }
}

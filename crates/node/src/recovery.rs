//! Recovery shares (ccf-reference §4.5; CCF's `ShareManager`, `src/node/share_manager.h`): while
//! the service is open, `public:ccf.internal.recovery_shares` always holds the latest ledger
//! secret wrapped under a fresh wrapping key, and one share of that key per active recovery
//! participant (any `recovery_threshold` of them recover it), RSA-OAEP-SHA256 encrypted to the
//! member's encryption key; `Owner` members get the whole key (the share at x = 0).
//!
//! Shares are re-issued in the same transaction that changes who holds them: the service
//! opening, a recovery member becoming active (or leaving), the threshold changing, or
//! `trigger_recovery_shares_refresh`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coco_codec::tables;
use coco_crypto::Drbg;
use coco_crypto::sharing;
use coco_kv::Tx;

/// Who holds shares, and how many recover: compared before and after a transaction to decide
/// whether shares must be re-issued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Holders {
    pub(crate) open: bool,
    /// Active recovery participants: member id → encryption public key (PEM).
    pub(crate) participants: BTreeMap<String, String>,
    /// Active recovery owners: member id → encryption public key (PEM).
    pub(crate) owners: BTreeMap<String, String>,
    pub(crate) threshold: u64,
}

/// The share holders as `tx` sees them (CCF's `get_active_recovery_participants` / `_owners`).
pub(crate) fn holders(tx: &mut Tx) -> Holders {
    let open = tx
        .get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
        .and_then(|v| tables::from_ccf_json::<tables::ServiceInfo>(&v).ok())
        .is_some_and(|i| i.status == tables::ServiceStatus::Open);
    let threshold = tx
        .get(tables::SERVICE_CONFIG, &tables::SINGLETON_KEY)
        .and_then(|v| tables::from_ccf_json::<tables::ServiceConfiguration>(&v).ok())
        .map_or(0, |c| c.recovery_threshold);
    let mut keys = Vec::new();
    tx.for_each(tables::MEMBERS_ENCRYPTION_PUBLIC_KEYS, |k, v| {
        keys.push((k.clone(), v.clone()));
        true
    });
    let (mut participants, mut owners) = (BTreeMap::new(), BTreeMap::new());
    for (id, pem) in keys {
        let Some(info) = tx
            .get(tables::MEMBERS_INFO, &id)
            .and_then(|v| tables::from_ccf_json::<tables::MemberInfo>(&v).ok())
        else {
            continue;
        };
        if info.status != tables::MemberStatus::Active {
            continue;
        }
        let id = String::from_utf8_lossy(&id).into_owned();
        let pem = String::from_utf8_lossy(&pem).into_owned();
        match info
            .recovery_role
            .unwrap_or(tables::MemberRecoveryRole::Participant)
        {
            tables::MemberRecoveryRole::Participant => {
                participants.insert(id, pem);
            }
            tables::MemberRecoveryRole::Owner => {
                owners.insert(id, pem);
            }
            tables::MemberRecoveryRole::NonParticipant => {}
        }
    }
    Holders {
        open,
        participants,
        owners,
        threshold,
    }
}

/// Writes fresh recovery shares of `ledger_secret` for `holders` into `tx` (CCF's
/// `shuffle_recovery_shares`), with the same refusals as CCF. `previous_stored` is where the
/// secret before it is stored (recovery walks back from there).
pub(crate) fn issue(
    tx: &mut Tx,
    holders: &Holders,
    ledger_secret: &[u8; 32],
    previous_stored: Option<u64>,
    rng: &mut Drbg,
) -> Result<(), String> {
    if holders.participants.is_empty() && holders.owners.is_empty() {
        return Err(
            "There should be at least one active recovery member to issue recovery shares".into(),
        );
    }
    if holders.threshold == 0 {
        return Err("Recovery threshold should be set before recovery shares are computed".into());
    }
    let count = if holders.participants.is_empty() {
        if holders.threshold > 1 {
            return Err(format!(
                "Recovery threshold {} cannot be greater than 1 when the consortium consists of \
                 only active recovery owner members ({})",
                holders.threshold,
                holders.owners.len()
            ));
        }
        1
    } else {
        if holders.threshold > holders.participants.len() as u64 {
            return Err(format!(
                "Recovery threshold {} should be equal to or less than the number of active \
                 recovery members {}",
                holders.threshold,
                holders.participants.len()
            ));
        }
        holders.participants.len()
    };
    let (secret, shares) = sharing::split(holders.threshold as usize, count, rng)
        .map_err(|e| format!("splitting the wrapping key: {e}"))?;
    let wrapped = sharing::wrap_ledger_secret(&secret, ledger_secret)
        .map_err(|e| format!("wrapping the ledger secret: {e}"))?;
    let mut encrypted_shares = BTreeMap::new();
    let encrypt = |pem: &str, share: &sharing::Share| {
        coco_crypto::rsa_oaep_sha256_encrypt(pem, &share.to_bytes())
            .map(|c| B64.encode(c))
            .map_err(|e| format!("encrypting a recovery share: {e}"))
    };
    for ((id, pem), share) in holders.participants.iter().zip(&shares) {
        encrypted_shares.insert(id.clone(), encrypt(pem, share)?);
    }
    for (id, pem) in &holders.owners {
        encrypted_shares.insert(id.clone(), encrypt(pem, &secret)?);
    }
    let info = tables::RecoverySharesInfo {
        wrapped_latest_ledger_secret: wrapped,
        encrypted_shares,
        previous_secret_stored_version: previous_stored,
    };
    tx.put(
        tables::RECOVERY_SHARES,
        Bytes::from_static(&tables::SINGLETON_KEY),
        Bytes::from(tables::to_ccf_json(&info).map_err(|e| e.to_string())?),
    );
    Ok(())
}

fn put_singleton<T: serde::Serialize>(tx: &mut Tx, map: &str, value: &T) -> Result<(), String> {
    tx.put(
        map,
        Bytes::from_static(&tables::SINGLETON_KEY),
        Bytes::from(tables::to_ccf_json(value).map_err(|e| e.to_string())?),
    );
    Ok(())
}

/// The start of the chain of ledger secrets (CCF writes it when the service opens): the
/// current secret applies from `applies_from`.
pub(crate) fn record_first_secret(tx: &mut Tx, applies_from: u64) -> Result<(), String> {
    put_singleton(
        tx,
        tables::HISTORICAL_ENCRYPTED_LEDGER_SECRET,
        &tables::EncryptedLedgerSecretInfo {
            previous_ledger_secret: None,
            next_version: Some(applies_from),
        },
    )
}

/// A rekey in the transaction `tx` at seqno `seqno` (CCF's `rekey_ledger`): `new_secret`, which
/// applies from `seqno + 1`, wrapped for every trusted node in `encrypted_ledger_secrets`; the
/// current secret encrypted under it in `historical_encrypted_ledger_secret`; recovery shares of
/// the new secret for `holders`.
pub(crate) fn rekey(
    tx: &mut Tx,
    holders: &Holders,
    current: &crate::secrets::LedgerSecret,
    new_secret: &[u8; 32],
    seqno: u64,
    rng: &mut Drbg,
) -> Result<(), String> {
    if !holders.open {
        return Err("Cannot rekey ledger while the service is not open".into());
    }
    send_to_trusted_nodes(tx, &[(None, *new_secret, Some(seqno))])?;
    let mut iv = [0u8; coco_crypto::GCM_IV_SIZE_BYTES];
    rng.fill(&mut iv);
    let stored_before = tx.get_version_of_previous_write(
        tables::HISTORICAL_ENCRYPTED_LEDGER_SECRET,
        &tables::SINGLETON_KEY,
    );
    put_singleton(
        tx,
        tables::HISTORICAL_ENCRYPTED_LEDGER_SECRET,
        &tables::EncryptedLedgerSecretInfo {
            previous_ledger_secret: Some(tables::PreviousLedgerSecretInfo {
                encrypted_data: seal_tag_iv_ct(new_secret, iv, current.raw()),
                version: current.applies_from(),
                previous_secret_stored_version: stored_before,
            }),
            next_version: None,
        },
    )?;
    issue(tx, holders, new_secret, Some(seqno), rng)
}

/// Writes `secrets` — (version, raw secret, where its predecessor is stored) — RSA-OAEP-wrapped
/// for every trusted node into `encrypted_ledger_secrets` (CCF's `LedgerSecretsBroadcast`); a
/// `None` version applies from the transaction after this one.
pub(crate) fn send_to_trusted_nodes(
    tx: &mut Tx,
    secrets: &[(Option<u64>, [u8; 32], Option<u64>)],
) -> Result<(), String> {
    let mut nodes = Vec::new();
    tx.for_each(tables::NODES_INFO, |k, v| {
        nodes.push((k.clone(), v.clone()));
        true
    });
    let mut for_nodes = tables::LedgerSecretsForNodes::new();
    for (id, info) in nodes {
        let info: tables::NodeInfo =
            tables::from_ccf_json(&info).map_err(|e| format!("nodes.info: {e}"))?;
        if info.status != tables::NodeStatus::Trusted {
            continue;
        }
        let mut list = Vec::with_capacity(secrets.len());
        for (version, raw, stored) in secrets {
            list.push(tables::EncryptedLedgerSecret {
                version: *version,
                encrypted_secret: coco_crypto::rsa_oaep_sha256_encrypt(
                    &info.encryption_pub_key,
                    raw,
                )
                .map_err(|e| format!("wrapping a ledger secret for a node: {e}"))?,
                previous_secret_stored_version: *stored,
            });
        }
        for_nodes.insert(String::from_utf8_lossy(&id).into_owned(), list);
    }
    put_singleton(tx, tables::ENCRYPTED_LEDGER_SECRETS, &for_nodes)
}

/// AES-256-GCM under `key` as CCF's `GcmCipher` serialises it: tag ‖ IV ‖ ciphertext, no AAD.
pub(crate) fn seal_tag_iv_ct(
    key: &[u8; 32],
    iv: [u8; coco_crypto::GCM_IV_SIZE_BYTES],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut ct = plaintext.to_vec();
    let tag = coco_crypto::AesGcmKey::new(key).seal_in_place_detached(&iv, &[], &mut ct);
    [&tag[..], &iv[..], &ct[..]].concat()
}

/// The inverse of [`seal_tag_iv_ct`].
pub(crate) fn open_tag_iv_ct(key: &[u8; 32], data: &[u8]) -> Result<Vec<u8>, String> {
    use coco_crypto::{GCM_IV_SIZE_BYTES, GCM_TAG_SIZE_BYTES};
    if data.len() < GCM_TAG_SIZE_BYTES + GCM_IV_SIZE_BYTES {
        return Err(format!("{} bytes is too short", data.len()));
    }
    let (tag, rest) = data.split_at(GCM_TAG_SIZE_BYTES);
    let (iv, ct) = rest.split_at(GCM_IV_SIZE_BYTES);
    let mut pt = ct.to_vec();
    coco_crypto::AesGcmKey::new(key)
        .open_in_place_detached(
            iv.try_into().expect("split above"),
            &[],
            &mut pt,
            tag.try_into().expect("split above"),
        )
        .map_err(|e| e.to_string())?;
    Ok(pt)
}

/// Whether the transaction in `tx` must (re-)issue shares: it opens the service (then the
/// second value is true), or changes the holders or the threshold of an open service. `before`
/// is the store it started from.
pub(crate) fn due(tx: &mut Tx, before: &mut Tx) -> Option<(Holders, bool)> {
    let touched = tx.written_maps().any(|m| {
        [
            tables::SERVICE_INFO,
            tables::SERVICE_CONFIG,
            tables::MEMBERS_INFO,
            tables::MEMBERS_ENCRYPTION_PUBLIC_KEYS,
        ]
        .contains(&m)
    });
    if !touched {
        return None;
    }
    let after = holders(tx);
    let before = holders(before);
    let opening = after.open && !before.open;
    (after.open && after != before).then_some((after, opening))
}

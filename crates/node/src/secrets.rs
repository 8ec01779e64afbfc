//! The ledger secret and what CCF derives from it (`src/node/ledger_secret.h`,
//! `src/kv/encryptor.h`, `src/kv/committable_tx.h`; ccf-reference §1.6–1.7).

use std::sync::Arc;

use coco_crypto::{AesGcmKey, HmacSha256Key, hmac_sha256, sha256};
use coco_types::TxId;

/// CCF's commit-secret label. The C++ passes `sizeof` of a pointer to a C string as the data
/// length, so only the first 8 bytes, `"Commit S"`, are MACed; we do the same so that commit
/// evidence matches what a CCF node derives from the same ledger secret.
const COMMIT_SECRET_LABEL_AS_CCF_USES_IT: &[u8] = b"Commit S";

/// A ledger secret: the AES-256-GCM key for private domains, and the commit secret derived from
/// it. Cheap to clone (shared): the expanded keys are prepared once.
#[derive(Clone)]
pub struct LedgerSecret(Arc<Prepared>);

struct Prepared {
    /// The first seqno this secret encrypts (CCF's ledger secret version; the genesis secret
    /// applies from 1).
    applies_from: u64,
    raw: [u8; 32],
    key: AesGcmKey,
    /// HMAC key of the commit secret, which MACs every transaction id.
    commit_key: HmacSha256Key,
}

impl LedgerSecret {
    /// The genesis secret (it applies from seqno 1, as CCF's `LedgerSecrets::init`).
    pub fn new(raw: [u8; 32]) -> Self {
        Self::applying_from(1, raw)
    }

    pub fn applying_from(applies_from: u64, raw: [u8; 32]) -> Self {
        let commit_secret = hmac_sha256(&raw, COMMIT_SECRET_LABEL_AS_CCF_USES_IT);
        LedgerSecret(Arc::new(Prepared {
            applies_from,
            key: AesGcmKey::new(&raw),
            raw,
            commit_key: HmacSha256Key::new(&commit_secret),
        }))
    }

    pub fn applies_from(&self) -> u64 {
        self.0.applies_from
    }

    pub fn raw(&self) -> &[u8; 32] {
        &self.0.raw
    }

    pub fn key(&self) -> &AesGcmKey {
        &self.0.key
    }

    /// CCF's commit evidence string for `txid`: `ce:<view>.<seqno>:<hex HMAC(commit_secret, "v.s")>`.
    pub fn commit_evidence(&self, txid: TxId) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(3 + 41 + 1 + 64);
        write!(out, "ce:{txid}:").expect("writing to a String cannot fail");
        let nonce = self.0.commit_key.sign(&out.as_bytes()[3..out.len() - 1]);
        let mut hex = [0u8; 64];
        hex::encode_to_slice(nonce, &mut hex).expect("64 hex digits for 32 bytes");
        out.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
        out
    }

    /// SHA-256 of the commit evidence string, as stored in the public domain.
    pub fn commit_evidence_digest(&self, txid: TxId) -> [u8; 32] {
        sha256(self.commit_evidence(txid).as_bytes())
    }
}

/// Every ledger secret of the service, by the seqno each first applies to (CCF's
/// `LedgerSecrets`): a rekey at seqno r adds one applying from r + 1; older entries stay
/// readable with the secret that applies to them.
#[derive(Clone)]
pub struct LedgerSecrets {
    /// Ascending `applies_from`; never empty.
    secrets: Vec<LedgerSecret>,
    /// Where the previous secret of each (by `applies_from`) is stored encrypted under it
    /// (`previous_secret_stored_version`).
    stored: std::collections::BTreeMap<u64, u64>,
}

impl From<[u8; 32]> for LedgerSecrets {
    /// Just the genesis secret.
    fn from(raw: [u8; 32]) -> Self {
        LedgerSecrets {
            secrets: vec![LedgerSecret::new(raw)],
            stored: Default::default(),
        }
    }
}

impl LedgerSecrets {
    /// Secrets by `applies_from`, each with where its predecessor is stored (if known).
    pub fn from_versions(
        versions: impl IntoIterator<Item = (u64, [u8; 32], Option<u64>)>,
    ) -> Result<Self, String> {
        let mut secrets: Vec<LedgerSecret> = Vec::new();
        let mut stored = std::collections::BTreeMap::new();
        for (from, raw, previous_stored) in versions {
            if secrets.last().is_some_and(|l| l.applies_from() >= from) {
                return Err(format!("ledger secret versions must ascend (at {from})"));
            }
            secrets.push(LedgerSecret::applying_from(from, raw));
            if let Some(v) = previous_stored {
                stored.insert(from, v);
            }
        }
        if secrets.is_empty() {
            return Err("no ledger secret".into());
        }
        Ok(LedgerSecrets { secrets, stored })
    }

    pub fn latest(&self) -> &LedgerSecret {
        self.secrets.last().expect("never empty")
    }

    /// The secret that encrypts the entry at `seqno`.
    pub fn for_seqno(&self, seqno: u64) -> &LedgerSecret {
        let k = self.secrets.partition_point(|s| s.applies_from() <= seqno);
        &self.secrets[k.saturating_sub(1)]
    }

    pub fn all(&self) -> &[LedgerSecret] {
        &self.secrets
    }

    /// Where the predecessor of the secret applying from `applies_from` is stored.
    pub fn previous_stored(&self, applies_from: u64) -> Option<u64> {
        self.stored.get(&applies_from).copied()
    }

    /// Adds a secret applying from `applies_from` (after every known one); a secret already
    /// known at that version is kept.
    pub fn add(&mut self, applies_from: u64, raw: [u8; 32], previous_stored: Option<u64>) {
        if self
            .secrets
            .iter()
            .any(|s| s.applies_from() == applies_from)
        {
            return;
        }
        assert!(
            applies_from > self.latest().applies_from(),
            "a new ledger secret applies after the latest"
        );
        self.secrets
            .push(LedgerSecret::applying_from(applies_from, raw));
        if let Some(v) = previous_stored {
            self.stored.insert(applies_from, v);
        }
    }

    /// Puts `older` — a previous service's secrets, recovered, all applying before every secret
    /// here — in front of these.
    pub fn prepend(&mut self, older: LedgerSecrets) {
        assert!(
            older.latest().applies_from() < self.secrets[0].applies_from(),
            "recovered secrets apply before the recovered service's"
        );
        let mut secrets = older.secrets;
        secrets.append(&mut self.secrets);
        self.secrets = secrets;
        self.stored.extend(older.stored);
    }

    /// Records where the predecessor of the secret applying from `applies_from` is stored.
    pub fn set_previous_stored(&mut self, applies_from: u64, stored: u64) {
        self.stored.insert(applies_from, stored);
    }

    /// Forgets secrets installed by transactions after `seqno` (rolled back).
    pub fn roll_back(&mut self, seqno: u64) {
        while self.secrets.len() > 1 && self.latest().applies_from() > seqno + 1 {
            let s = self.secrets.pop().expect("more than one");
            self.stored.remove(&s.applies_from());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_apply_by_seqno_and_roll_back_with_their_rekey() {
        let mut s = LedgerSecrets::from([1; 32]);
        s.add(11, [2; 32], Some(10));
        s.add(31, [3; 32], Some(30));
        assert_eq!(s.for_seqno(1).raw(), &[1; 32]);
        assert_eq!(s.for_seqno(10).raw(), &[1; 32]);
        assert_eq!(s.for_seqno(11).raw(), &[2; 32]);
        assert_eq!(s.for_seqno(1_000).raw(), &[3; 32]);
        assert_eq!(s.previous_stored(31), Some(30));
        s.roll_back(30);
        assert_eq!(s.latest().raw(), &[3; 32], "the rekey at 30 is kept");
        s.roll_back(29);
        assert_eq!(s.latest().raw(), &[2; 32]);
        assert_eq!(s.previous_stored(31), None);
        s.roll_back(0);
        assert_eq!(s.all().len(), 1, "the genesis secret always stays");
        assert!(LedgerSecrets::from_versions([(5, [1; 32], None), (5, [2; 32], None)]).is_err());
    }

    #[test]
    fn commit_evidence_shape_and_determinism() {
        let s = LedgerSecret::new([7u8; 32]);
        let ce = s.commit_evidence(TxId::new(2, 500));
        assert!(ce.starts_with("ce:2.500:"), "{ce}");
        assert_eq!(ce.len(), "ce:2.500:".len() + 64);
        assert_eq!(
            ce,
            LedgerSecret::new([7u8; 32]).commit_evidence(TxId::new(2, 500))
        );
        assert_ne!(ce, s.commit_evidence(TxId::new(3, 500)));
        // Golden value computed independently with Python's hmac module:
        // cs = hmac.new(bytes([7]*32), b"Commit S", sha256).digest()
        // hmac.new(cs, b"2.500", sha256).hexdigest()
        assert_eq!(ce, format!("ce:2.500:{}", GOLDEN_NONCE_2_500));
    }

    const GOLDEN_NONCE_2_500: &str =
        "b0125df1a37f5a1cbeaf2d6804d4c4c0cac575268cb2a8e5ebb114e2b8f6ba24";
}

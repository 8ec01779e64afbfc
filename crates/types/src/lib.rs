//! Shared vocabulary of coco: transaction ids, entity ids and limits.
//!
//! Architecture invariant: this crate depends on nothing of ours and does no I/O. Every other
//! crate may depend on it.

pub mod limits;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A view (Raft term). Views start at 2, as in CCF (`aft::starting_view_change`).
pub type View = u64;
/// A sequence number: the index of a transaction in the ledger, 1-based.
pub type SeqNo = u64;

/// The first view of a new service.
pub const FIRST_VIEW: View = 2;

/// How far past a dead service's last view its recovery starts (CCF `aft::starting_view_change`):
/// the recovered service's first transaction is `(last view + 2).(last seqno + 1)`, which is how
/// endorsements of earlier service identities name the end of the epoch they endorse.
pub const RECOVERY_VIEW_CHANGE: View = 2;

/// A transaction id, written `view.seqno` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TxId {
    pub view: View,
    pub seqno: SeqNo,
}

impl TxId {
    pub const fn new(view: View, seqno: SeqNo) -> Self {
        Self { view, seqno }
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.view, self.seqno)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid transaction id {0:?}: expected <view>.<seqno> with two unsigned integers")]
pub struct TxIdParseError(pub String);

impl FromStr for TxId {
    type Err = TxIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TxIdParseError(s.to_owned());
        let (v, n) = s.split_once('.').ok_or_else(err)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(v) || !digits(n) {
            return Err(err());
        }
        Ok(TxId {
            view: v.parse().map_err(|_| err())?,
            seqno: n.parse().map_err(|_| err())?,
        })
    }
}

impl Serialize for TxId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TxId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hex SHA-256 of something: a member/user id (of the certificate DER) or a node id (of the
/// public key SPKI DER). Stored as the 64-character lowercase hex string CCF uses.
macro_rules! hex_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Id of a ", $what, ": 64 lowercase hex characters.")]
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a lowercase hex digest; returns `None` unless it is 64 lowercase hex chars.
            pub fn from_hex(s: &str) -> Option<Self> {
                (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

hex_id!(NodeId, "node (SHA-256 of its public key DER)");
hex_id!(MemberId, "member (SHA-256 of its certificate DER)");
hex_id!(UserId, "user (SHA-256 of its certificate DER)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txid_parse_table() {
        let cases: &[(&str, Option<(u64, u64)>)] = &[
            ("2.1", Some((2, 1))),
            ("10.500", Some((10, 500))),
            ("0.0", Some((0, 0))),
            ("2", None),
            ("2.", None),
            (".1", None),
            ("a.1", None),
            ("2.1.3", None),
            ("-2.1", None),
            ("+2.1", None),
            (" 2.1", None),
            ("99999999999999999999.1", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<TxId>().ok().map(|t| (t.view, t.seqno));
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn txid_display_roundtrip() {
        let t = TxId::new(3, 42);
        assert_eq!(t.to_string(), "3.42");
        assert_eq!(t.to_string().parse::<TxId>().unwrap(), t);
        assert_eq!(
            serde_json::to_string(&t).ok(),
            None.or(Some("\"3.42\"".to_owned()))
        );
    }

    #[test]
    fn hex_ids_validate() {
        assert!(NodeId::from_hex(&"a".repeat(64)).is_some());
        assert!(NodeId::from_hex(&"A".repeat(64)).is_none());
        assert!(MemberId::from_hex(&"a".repeat(63)).is_none());
    }
}

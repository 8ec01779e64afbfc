//! The node-to-node encoding of consensus messages: a small, versioned, little-endian binary
//! format (CCF sends packed structs; wire compatibility with CCF nodes is not a goal, ccf-reference
//! §5.4). Every length is bounded before anything is allocated, and every malformed input is a
//! [`DecodeError`], never a panic.
//!
//! ```text
//! message  = version:u8 kind:u8 body
//! AE       = term:u64 prev_idx:u64 prev_term:u64 leader_commit:u64 count:u32 entry*
//! entry    = term:u64 flags:u8 [config] len:u32 data
//! config   = count:u16 (len:u8 id)*          (present when flags & HAS_CONFIGURATION)
//! AER      = term:u64 last_log_idx:u64 success:u8
//! RV       = term:u64 last_committable_idx:u64 term_of_last_committable_idx:u64 election:u8
//! RVR      = term:u64 granted:u8 election:u8
//! PRV      = term:u64
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use coco_types::limits::{
    CONFIGURATION_NODE_COUNT_MAX, CONSENSUS_MESSAGE_BYTES_MAX, NODE_ID_BYTES_MAX,
};

use crate::{ElectionType, Entry, Message};

const VERSION: u8 = 1;
const AE: u8 = 1;
const AER: u8 = 2;
const RV: u8 = 3;
const RVR: u8 = 4;
const PRV: u8 = 5;
const COMMITTABLE: u8 = 1;
const HAS_CONFIGURATION: u8 = 2;

/// Why bytes are not a consensus message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message truncated: needed {needed} more bytes at offset {at}")]
    Truncated { at: usize, needed: usize },
    #[error("unsupported message version {0}")]
    Version(u8),
    #[error("unknown message kind {0}")]
    Kind(u8),
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: u64 },
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

impl Message {
    /// Encodes the message for a node-to-node channel.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(VERSION);
        match self {
            Message::AppendEntries {
                term,
                prev_idx,
                prev_term,
                leader_commit_idx,
                entries,
            } => {
                out.push(AE);
                for v in [*term, *prev_idx, *prev_term, *leader_commit_idx] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
                for e in entries {
                    out.extend_from_slice(&e.term.to_le_bytes());
                    let mut flags = 0;
                    if e.committable {
                        flags |= COMMITTABLE;
                    }
                    if e.configuration.is_some() {
                        flags |= HAS_CONFIGURATION;
                    }
                    out.push(flags);
                    if let Some(c) = &e.configuration {
                        assert!(
                            c.len() <= CONFIGURATION_NODE_COUNT_MAX,
                            "configuration too large"
                        );
                        out.extend_from_slice(&(c.len() as u16).to_le_bytes());
                        for id in c.iter() {
                            assert!(id.len() <= NODE_ID_BYTES_MAX, "node id too long");
                            out.push(id.len() as u8);
                            out.extend_from_slice(id.as_bytes());
                        }
                    }
                    out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
                    out.extend_from_slice(&e.data);
                }
            }
            Message::AppendEntriesResponse {
                term,
                last_log_idx,
                success,
            } => {
                out.push(AER);
                out.extend_from_slice(&term.to_le_bytes());
                out.extend_from_slice(&last_log_idx.to_le_bytes());
                out.push(u8::from(*success));
            }
            Message::RequestVote {
                term,
                last_committable_idx,
                term_of_last_committable_idx,
                election_type,
            } => {
                out.push(RV);
                for v in [*term, *last_committable_idx, *term_of_last_committable_idx] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.push(election_byte(*election_type));
            }
            Message::RequestVoteResponse {
                term,
                vote_granted,
                election_type,
            } => {
                out.push(RVR);
                out.extend_from_slice(&term.to_le_bytes());
                out.push(u8::from(*vote_granted));
                out.push(election_byte(*election_type));
            }
            Message::ProposeRequestVote { term } => {
                out.push(PRV);
                out.extend_from_slice(&term.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a message received on a node-to-node channel.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > CONSENSUS_MESSAGE_BYTES_MAX {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let message = match r.u8()? {
            AE => {
                let (term, prev_idx, prev_term, leader_commit_idx) =
                    (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
                let count = r.u32()? as usize;
                // Each entry takes at least 13 bytes: bound the count before allocating.
                if count > r.remaining() / 13 {
                    return Err(DecodeError::Invalid {
                        what: "entry count",
                        value: count as u64,
                    });
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let term = r.u64()?;
                    let flags = r.u8()?;
                    if flags & !(COMMITTABLE | HAS_CONFIGURATION) != 0 {
                        return Err(DecodeError::Invalid {
                            what: "entry flags",
                            value: flags.into(),
                        });
                    }
                    let configuration = if flags & HAS_CONFIGURATION != 0 {
                        let n = r.u16()? as usize;
                        if n > CONFIGURATION_NODE_COUNT_MAX {
                            return Err(DecodeError::Invalid {
                                what: "configuration size",
                                value: n as u64,
                            });
                        }
                        let mut ids = BTreeSet::new();
                        for _ in 0..n {
                            let len = r.u8()? as usize;
                            let id = std::str::from_utf8(r.take(len)?).map_err(|_| {
                                DecodeError::Invalid {
                                    what: "node id (not UTF-8)",
                                    value: len as u64,
                                }
                            })?;
                            if !ids.insert(id.to_owned()) {
                                return Err(DecodeError::Invalid {
                                    what: "configuration (duplicate node)",
                                    value: n as u64,
                                });
                            }
                        }
                        Some(Arc::new(ids))
                    } else {
                        None
                    };
                    let len = r.u32()? as usize;
                    let data = Bytes::copy_from_slice(r.take(len)?);
                    entries.push(Entry {
                        term,
                        committable: flags & COMMITTABLE != 0,
                        configuration,
                        data,
                    });
                }
                Message::AppendEntries {
                    term,
                    prev_idx,
                    prev_term,
                    leader_commit_idx,
                    entries,
                }
            }
            AER => Message::AppendEntriesResponse {
                term: r.u64()?,
                last_log_idx: r.u64()?,
                success: r.bool("success")?,
            },
            RV => Message::RequestVote {
                term: r.u64()?,
                last_committable_idx: r.u64()?,
                term_of_last_committable_idx: r.u64()?,
                election_type: r.election()?,
            },
            RVR => Message::RequestVoteResponse {
                term: r.u64()?,
                vote_granted: r.bool("vote_granted")?,
                election_type: r.election()?,
            },
            PRV => Message::ProposeRequestVote { term: r.u64()? },
            kind => return Err(DecodeError::Kind(kind)),
        };
        if r.remaining() != 0 {
            return Err(DecodeError::Trailing(r.remaining()));
        }
        Ok(message)
    }
}

fn election_byte(e: ElectionType) -> u8 {
    match e {
        ElectionType::Regular => 0,
        ElectionType::PreVote => 1,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                at: self.at,
                needed: n - self.remaining(),
            });
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::Invalid {
                what,
                value: v.into(),
            }),
        }
    }
    fn election(&mut self) -> Result<ElectionType, DecodeError> {
        match self.u8()? {
            0 => Ok(ElectionType::Regular),
            1 => Ok(ElectionType::PreVote),
            v => Err(DecodeError::Invalid {
                what: "election type",
                value: v.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Entry> {
        (
            any::<u64>(),
            any::<bool>(),
            proptest::option::of(proptest::collection::btree_set("[a-f0-9]{1,64}", 0..6)),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(term, committable, configuration, data)| Entry {
                term,
                committable,
                configuration: configuration.map(Arc::new),
                data: Bytes::from(data),
            })
    }

    fn election() -> impl Strategy<Value = ElectionType> {
        prop_oneof![Just(ElectionType::Regular), Just(ElectionType::PreVote)]
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                proptest::collection::vec(entry(), 0..5)
            )
                .prop_map(|(term, prev_idx, prev_term, leader_commit_idx, entries)| {
                    Message::AppendEntries {
                        term,
                        prev_idx,
                        prev_term,
                        leader_commit_idx,
                        entries,
                    }
                }),
            (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
                |(term, last_log_idx, success)| Message::AppendEntriesResponse {
                    term,
                    last_log_idx,
                    success
                }
            ),
            (any::<u64>(), any::<u64>(), any::<u64>(), election()).prop_map(|(a, b, c, e)| {
                Message::RequestVote {
                    term: a,
                    last_committable_idx: b,
                    term_of_last_committable_idx: c,
                    election_type: e,
                }
            }),
            (any::<u64>(), any::<bool>(), election()).prop_map(|(term, vote_granted, e)| {
                Message::RequestVoteResponse {
                    term,
                    vote_granted,
                    election_type: e,
                }
            }),
            any::<u64>().prop_map(|term| Message::ProposeRequestVote { term }),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(m in message()) {
            prop_assert_eq!(Message::decode(&m.encode()), Ok(m));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn every_strict_prefix_is_refused(m in message()) {
            let bytes = m.encode();
            for n in 0..bytes.len() {
                prop_assert!(Message::decode(&bytes[..n]).is_err());
            }
        }
    }

    #[test]
    fn malformed_inputs_have_precise_errors() {
        let ok = Message::ProposeRequestVote { term: 7 }.encode();
        let mut v2 = ok.clone();
        v2[0] = 2;
        assert_eq!(Message::decode(&v2), Err(DecodeError::Version(2)));
        let mut kind = ok.clone();
        kind[1] = 9;
        assert_eq!(Message::decode(&kind), Err(DecodeError::Kind(9)));
        let mut trailing = ok.clone();
        trailing.push(0);
        assert_eq!(Message::decode(&trailing), Err(DecodeError::Trailing(1)));
        // An entry count that the remaining bytes cannot hold is refused before allocating.
        let mut huge = vec![VERSION, AE];
        huge.extend_from_slice(&[0; 32]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Message::decode(&huge),
            Err(DecodeError::Invalid {
                what: "entry count",
                ..
            })
        ));
        let bad_bool = {
            let mut b = Message::AppendEntriesResponse {
                term: 1,
                last_log_idx: 2,
                success: true,
            }
            .encode();
            *b.last_mut().unwrap() = 2;
            b
        };
        assert!(matches!(
            Message::decode(&bad_bool),
            Err(DecodeError::Invalid {
                what: "success",
                ..
            })
        ));
        assert_eq!(
            Message::decode(&vec![0; CONSENSUS_MESSAGE_BYTES_MAX + 1]),
            Err(DecodeError::TooLarge(CONSENSUS_MESSAGE_BYTES_MAX + 1))
        );
    }
}

//! What `coco ledger show DIR` prints: every entry of a ledger directory in order, with its
//! transaction id, flags, and the public maps it writes (keys and values, shortened), and the
//! size of its encrypted private domain. Unreadable bytes are reported where they are, never a
//! crash.

use coco_codec::chunk::ChunkName;
use coco_codec::domain::parse_public_domain;
use coco_codec::entry::parse_entry;
use serde::Serialize;

/// Values longer than this are shortened in the output.
const SHOWN_VALUE_CHARS: usize = 120;

/// One entry as shown.
#[derive(Clone, Debug, Serialize)]
pub struct ShownEntry {
    pub file: String,
    pub offset: u64,
    pub txid: String,
    pub flags: u8,
    pub size: u64,
    /// Public maps written: map → [(key, value or `null` for a removal)].
    pub public: std::collections::BTreeMap<String, Vec<(String, Option<String>)>>,
    pub private_bytes: u64,
}

/// Something unreadable, with where it is.
#[derive(Clone, Debug, Serialize)]
pub struct ShowError {
    pub file: String,
    pub offset: u64,
    pub message: String,
}

/// Printable text for a key or value: UTF-8 if it is printable, else hex; shortened.
fn printable(bytes: &[u8]) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n') => s.to_owned(),
        _ => format!("0x{}", hex::encode(bytes)),
    };
    if text.chars().count() > SHOWN_VALUE_CHARS {
        let cut: String = text.chars().take(SHOWN_VALUE_CHARS).collect();
        format!("{cut}… ({} bytes)", bytes.len())
    } else {
        text
    }
}

/// The entries of `files` (name, bytes) in seqno order; stops at the first unreadable place.
pub fn show(files: Vec<(String, Vec<u8>)>) -> (Vec<ShownEntry>, Option<ShowError>) {
    let mut chunks: Vec<(ChunkName, String, Vec<u8>)> = files
        .into_iter()
        .filter_map(|(name, bytes)| ChunkName::parse(&name).map(|c| (c, name, bytes)))
        .filter(|(c, _, _)| !c.ignored)
        .collect();
    chunks.sort_by_key(|(c, _, _)| (c.start, c.recovery));
    let mut shown = Vec::new();
    for (_, name, bytes) in chunks {
        let scan = match coco_codec::chunk::scan_chunk(&bytes) {
            Ok(s) => s,
            Err(e) => {
                return (
                    shown,
                    Some(ShowError {
                        file: name,
                        offset: 0,
                        message: e.to_string(),
                    }),
                );
            }
        };
        for e in &scan.entries {
            let data = &bytes[e.range()];
            let fail = |message: String| ShowError {
                file: name.clone(),
                offset: e.offset,
                message,
            };
            let view = match parse_entry(data) {
                Ok(v) => v,
                Err(err) => return (shown, Some(fail(err.to_string()))),
            };
            let public = match parse_public_domain(view.public) {
                Ok(p) => p,
                Err(err) => return (shown, Some(fail(format!("public domain: {err}")))),
            };
            shown.push(ShownEntry {
                file: name.clone(),
                offset: e.offset,
                txid: view.tx_id().to_string(),
                flags: e.flags.bits(),
                size: e.len_bytes,
                public: public
                    .maps
                    .iter()
                    .map(|(map, changes)| {
                        (
                            map.clone(),
                            changes
                                .writes
                                .iter()
                                .map(|(k, v)| (printable(k), v.as_deref().map(printable)))
                                .collect(),
                        )
                    })
                    .collect(),
                private_bytes: view.private.len() as u64,
            });
        }
        if let coco_codec::chunk::ChunkState::Open {
            torn_tail: Some(t), ..
        } = &scan.state
        {
            return (
                shown,
                Some(ShowError {
                    file: name,
                    offset: t.offset,
                    message: format!(
                        "torn final entry ({:?}); `coco ledger repair` truncates it",
                        t.kind
                    ),
                }),
            );
        }
    }
    (shown, None)
}

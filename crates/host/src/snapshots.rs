//! Snapshot files on disk (`snapshots.directory`): the worker that serialises, writes and
//! commits them for the core, the `/node/snapshot` endpoints that serve them (CCF's, in
//! `src/node/rpc/node_frontend.h`), and the joiner's download.
//!
//! A snapshot is written as `snapshot_<seqno>_<evidence>` and fsynced; once its evidence commits
//! the receipt is appended, the file fsynced again and renamed `…​.committed` (then the directory
//! fsynced), so a `.committed` name always labels a complete file with its receipt.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};

use coco_app_api::{ApiError, ErrorCode, Method, Request, Response, StatusCode};
use coco_codec::snapshot::SnapshotName;
use coco_node::snapshot::SnapshotAction;
use coco_types::SeqNo;

use crate::core_thread::CoreMsg;

/// The snapshot directory, as the HTTP endpoints and the worker see it.
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    pub dir: PathBuf,
}

impl SnapshotDir {
    /// The latest committed snapshot with a seqno above `since`.
    pub fn latest_committed(&self, since: SeqNo) -> Option<SnapshotName> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
            .filter_map(|e| SnapshotName::parse(e.file_name().to_str()?))
            .filter(|n| n.committed && n.seqno > since)
            .max()
    }

    /// Answers `GET|HEAD /node/snapshot[?since=N]` and `GET|HEAD /node/snapshot/{name}`.
    pub fn serve(&self, request: &Request) -> Option<Response> {
        if request.method != Method::GET && request.method != Method::HEAD {
            return None;
        }
        if request.path == "/node/snapshot" {
            // Without a committed snapshot here, the core answers (a backup redirects to the
            // primary).
            return match self.find(request) {
                Ok(r) => Some(r),
                Err(e) if e.status == StatusCode::NOT_FOUND => None,
                Err(e) => Some(e.into_response()),
            };
        }
        let name = request.path.strip_prefix("/node/snapshot/")?;
        Some(
            self.file(request, name)
                .unwrap_or_else(|e| e.into_response()),
        )
    }

    fn find(&self, request: &Request) -> Result<Response, ApiError> {
        let since = match coco_app_api::parse_query(&request.query).get("since") {
            None => 0,
            Some(v) => v.parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidQueryParameterValue,
                    format!("Invalid value for 'since': {v:?} is not a seqno."),
                )
            })?,
        };
        let latest = self.latest_committed(since).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::ResourceNotFound,
                format!("This node has no committed snapshots since {since}"),
            )
        })?;
        // CCF answers with an absolute URL on this node; a relative one names the same node
        // without this host having to know the address the client used.
        Ok(Response::new(StatusCode::PERMANENT_REDIRECT)
            .with_header("location", format!("/node/snapshot/{}", latest.file_name())))
    }

    fn file(&self, request: &Request, name: &str) -> Result<Response, ApiError> {
        let not_found = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::ResourceNotFound,
                format!("This node does not have a snapshot named {name}"),
            )
        };
        // Only snapshot file names: never a path out of the directory.
        SnapshotName::parse(name).ok_or_else(not_found)?;
        let path = self.dir.join(name);
        let mut f = std::fs::File::open(&path).map_err(|_| not_found())?;
        let total = f.metadata().map_err(|_| not_found())?.len();
        let base = Response::new(StatusCode::OK)
            .with_header("accept-ranges", "bytes")
            .with_header("x-ms-ccf-snapshot-name", name);
        if request.method == Method::HEAD {
            return Ok(base.with_header("content-length", total.to_string()));
        }
        let (start, end) = match request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("range"))
        {
            Some((_, v)) => parse_range(v, total)?,
            None => (0, total),
        };
        let len = usize::try_from(end - start).map_err(|_| bad_range("range too large"))?;
        let mut body = vec![0u8; len];
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(&mut body))
            .map_err(|e| ApiError::internal(format!("Cannot read snapshot {name}: {e}")))?;
        let mut r = base
            .with_header("content-type", "application/octet-stream")
            .with_header("content-range", format!("bytes {start}-{end}/{total}"));
        r.status = StatusCode::PARTIAL_CONTENT;
        r.body = body.into();
        Ok(r)
    }
}

fn bad_range(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidHeaderValue,
        message.to_owned(),
    )
}

/// CCF's range semantics (`node_frontend.h`): `bytes=X-Y` is the half-open range [X, Y) with Y
/// shrunk to the file size, `bytes=X-` runs to the end, `bytes=-N` is the last N bytes. Only
/// one range. The answer's `content-range` uses the same half-open form.
fn parse_range(header: &str, total: u64) -> Result<(u64, u64), ApiError> {
    let ranges = header
        .strip_prefix("bytes=")
        .ok_or_else(|| bad_range("Only 'bytes' is supported as a Range header unit"))?;
    if ranges.contains(',') {
        return Err(bad_range("Multiple ranges are not supported"));
    }
    let (s, e) = ranges
        .split_once('-')
        .ok_or_else(|| bad_range(&format!("Invalid format, cannot parse range in {header}")))?;
    let number = |v: &str, what: &str| {
        v.parse::<u64>()
            .map_err(|_| bad_range(&format!("Unable to parse {what} value {v} in {header}")))
    };
    match (s.is_empty(), e.is_empty()) {
        (false, _) => {
            let start = number(s, "start of range")?;
            if start > total {
                return Err(bad_range(&format!(
                    "Start of range {start} is larger than total file size {total}"
                )));
            }
            let end = if e.is_empty() {
                total
            } else {
                number(e, "end of range")?.min(total)
            };
            if end < start {
                return Err(bad_range(&format!(
                    "Invalid range: Start ({start}) and end ({end}) out of order"
                )));
            }
            Ok((start, end))
        }
        (true, false) => {
            let n = number(e, "end of range offset")?;
            Ok((total.saturating_sub(n), total))
        }
        (true, true) => Err(bad_range(
            "Invalid range: Must contain range-start or range-end",
        )),
    }
}

/// Starts the worker: it serialises snapshots off the core thread and owns the files.
pub(crate) fn spawn_worker(dir: PathBuf, core: Sender<CoreMsg>) -> Sender<SnapshotAction> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("coco-snapshots".into())
        .spawn(move || worker(dir, rx, core))
        .expect("spawning the snapshot thread");
    tx
}

fn worker(dir: PathBuf, rx: Receiver<SnapshotAction>, core: Sender<CoreMsg>) {
    // Serialised entries waiting for their evidence seqno (the file name).
    let mut serialised: BTreeMap<SeqNo, Vec<u8>> = BTreeMap::new();
    while let Ok(action) = rx.recv() {
        match action {
            SnapshotAction::Serialise(job) => {
                let started = std::time::Instant::now();
                let bytes = job.serialise();
                let digest = coco_crypto::sha256(&bytes);
                tracing::info!(
                    seqno = job.seqno,
                    entries = job.store.len(),
                    bytes = bytes.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot serialised"
                );
                serialised.insert(job.seqno, bytes);
                // Snapshots the core abandoned (rolled back, leadership lost) never get a name.
                while serialised.len() > coco_types::limits::SNAPSHOTS_PENDING_COUNT_MAX {
                    serialised.pop_first();
                }
                if core
                    .send(CoreMsg::SnapshotSerialised {
                        seqno: job.seqno,
                        digest,
                    })
                    .is_err()
                {
                    return;
                }
            }
            SnapshotAction::Write {
                seqno,
                evidence_seqno,
            } => {
                let Some(bytes) = serialised.remove(&seqno) else {
                    continue;
                };
                let name = SnapshotName {
                    seqno,
                    evidence_seqno,
                    committed: false,
                };
                if let Err(e) = write_new(&dir.join(name.file_name()), &bytes) {
                    tracing::error!(file = %name.file_name(), error = %e, "cannot write snapshot");
                }
            }
            SnapshotAction::Commit {
                seqno,
                evidence_seqno,
                receipt,
            } => {
                let mut name = SnapshotName {
                    seqno,
                    evidence_seqno,
                    committed: false,
                };
                let from = dir.join(name.file_name());
                name.committed = true;
                let to = dir.join(name.file_name());
                match commit_file(&dir, &from, &to, &receipt) {
                    Ok(()) => tracing::info!(file = %name.file_name(), "snapshot committed"),
                    Err(e) => {
                        tracing::error!(file = %name.file_name(), error = %e, "cannot commit snapshot")
                    }
                }
            }
        }
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

fn commit_file(dir: &Path, from: &Path, to: &Path, receipt: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(from)?;
    f.write_all(receipt)?;
    f.sync_data()?;
    std::fs::rename(from, to)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_ccf() {
        assert_eq!(parse_range("bytes=0-4", 10).unwrap(), (0, 4));
        assert_eq!(parse_range("bytes=4-", 10).unwrap(), (4, 10));
        assert_eq!(parse_range("bytes=2-100", 10).unwrap(), (2, 10));
        assert_eq!(parse_range("bytes=-3", 10).unwrap(), (7, 10));
        assert_eq!(parse_range("bytes=-30", 10).unwrap(), (0, 10));
        for bad in [
            "items=0-1",
            "bytes=0-1,2-3",
            "bytes=5",
            "bytes=x-1",
            "bytes=11-",
            "bytes=5-4",
            "bytes=-",
        ] {
            assert!(parse_range(bad, 10).is_err(), "{bad}");
        }
    }
}

//! The two threads that sit around the deterministic core: the core thread (owns `Node`, feeds
//! it inputs, routes its outputs) and the storage thread (owns the ledger files, group-commits
//! fsyncs and reports durability back).
//!
//! Requests reach the core through one channel; the host bounds how many are queued
//! (`CORE_REQUEST_QUEUE_COUNT_MAX`) and answers 503 past it rather than letting memory grow.
//! Read-only requests mostly do not: whenever the core has stepped, it publishes a [`ReadView`]
//! into a [`ReadSlot`] before any reply goes out, and the I/O threads answer reads from it
//! ([`CoreHandle::try_read`]) — so a read sees every write answered before it, on any session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use coco_app_api::{Request, Response};
use coco_node::{Input, Node, Now, Output, ReadView, RequestId};
use coco_types::{SeqNo, TxId, limits};
use tokio::sync::oneshot;

use crate::storage::{Disk, LedgerWriter};

/// Messages into the core thread.
pub enum CoreMsg {
    Request {
        request: Request,
        session: coco_node::Session,
        reply: oneshot::Sender<Response>,
    },
    /// A client connection closed.
    SessionClosed(u64),
    /// Everything up to `seqno` is durable, as of the `truncations`-th truncation: a report made
    /// before a later truncation speaks of entries that no longer exist and is ignored.
    Persisted {
        seqno: SeqNo,
        truncations: u64,
    },
    /// Entries read back from the ledger for a lagging peer.
    Fetched {
        peer: String,
        from_idx: SeqNo,
        entries: Vec<Bytes>,
    },
    /// Entries read back for historical queries and receipts.
    LedgerRead {
        from_idx: SeqNo,
        entries: Vec<Bytes>,
    },
    /// A message from a peer, authenticated by its node-to-node channel.
    Peer {
        from: String,
        message: coco_node::PeerMessage,
    },
    StorageFailed(String),
    /// The snapshot worker serialised the snapshot at `seqno`.
    SnapshotSerialised {
        seqno: SeqNo,
        digest: [u8; 32],
    },
    /// Stop after answering everything queued before this message.
    Shutdown,
}

/// Messages into the storage thread, sent in batches.
#[derive(Debug)]
pub enum StorageOp {
    Append {
        txid: TxId,
        bytes: Bytes,
        force_chunk_after: bool,
    },
    Commit(SeqNo),
    /// Drop every entry after this seqno (a rolled-back, never committed suffix).
    Truncate(SeqNo),
    /// Read entries back (answered with `CoreMsg::Fetched` for a peer, `CoreMsg::LedgerRead`
    /// for historical queries).
    Read {
        peer: Option<String>,
        from_idx: SeqNo,
        to_idx: SeqNo,
    },
    /// A disaster recovery ended: rename the `.recovery` files.
    CompleteRecovery,
}

/// The request queue is full.
#[derive(Debug)]
pub struct Overloaded;

/// The latest [`ReadView`] the core published.
#[derive(Default)]
pub struct ReadSlot(Mutex<Option<Arc<ReadView>>>);

impl ReadSlot {
    fn publish(&self, view: ReadView) {
        let view = Arc::new(view);
        // The previous view is dropped outside the lock.
        let _previous = self.lock().replace(view);
    }

    fn latest(&self) -> Option<Arc<ReadView>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<ReadView>>> {
        // A view is a plain value: a panic elsewhere cannot leave it half-written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cloneable handle for submitting requests to the core.
#[derive(Clone)]
pub struct CoreHandle {
    tx: Sender<CoreMsg>,
    queued: Arc<AtomicUsize>,
    reads: Arc<ReadSlot>,
}

impl CoreHandle {
    /// Answers `request` on the calling thread from the latest published view, if it is a read
    /// the view can serve. `None`: submit it.
    pub fn try_read(&self, request: &Request, session: &coco_node::Session) -> Option<Response> {
        let view = self.reads.latest()?;
        let unix_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        view.execute(request, session, unix_seconds)
    }

    pub fn submit(
        &self,
        request: Request,
        session: coco_node::Session,
    ) -> Result<oneshot::Receiver<Response>, Overloaded> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= limits::CORE_REQUEST_QUEUE_COUNT_MAX {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded);
        }
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(CoreMsg::Request {
                request,
                session,
                reply,
            })
            .is_err()
        {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded);
        }
        Ok(rx)
    }

    pub fn shutdown(&self) {
        let _ = self.tx.send(CoreMsg::Shutdown);
    }

    /// Delivers a message from an authenticated peer. Returns false once the core has stopped.
    pub fn peer(&self, from: String, message: coco_node::PeerMessage) -> bool {
        self.tx.send(CoreMsg::Peer { from, message }).is_ok()
    }

    pub fn session_closed(&self, session: u64) {
        let _ = self.tx.send(CoreMsg::SessionClosed(session));
    }
}

/// How the core thread reads time: monotonic from a fixed origin, wall clock for COSE `iat`.
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }
    pub fn now(&self) -> Now {
        let unix_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Now {
            monotonic_ms: self.origin.elapsed().as_millis() as u64,
            unix_seconds,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Handles to the running threads.
pub struct Threads {
    pub core: std::thread::JoinHandle<()>,
    pub storage: std::thread::JoinHandle<()>,
    pub handle: CoreHandle,
}

/// What the core thread acts on besides storage and replies: the TLS certificate it may renew
/// and the node-to-node channels its consensus messages go out on.
#[derive(Default)]
pub struct Edges {
    pub cert_slot: Option<Arc<crate::tls::NodeCertSlot>>,
    pub network: Option<crate::n2n::Network>,
    /// Where snapshots are written (`snapshots.directory`, created by the caller); a worker
    /// thread serialises and writes them.
    pub snapshot_dir: Option<std::path::PathBuf>,
}

/// Starts the storage and core threads. `initial` are the outputs of genesis.
pub fn spawn<D: Disk>(
    node: Node,
    initial: Vec<Output>,
    writer: LedgerWriter<D>,
    clock: Clock,
    tick_ms: u64,
    edges: Edges,
) -> Threads {
    let (core_tx, core_rx) = mpsc::channel::<CoreMsg>();
    let (storage_tx, storage_rx) = mpsc::channel::<Vec<StorageOp>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(ReadSlot::default());
    let snapshots = edges
        .snapshot_dir
        .clone()
        .map(|dir| crate::snapshots::spawn_worker(dir, core_tx.clone()));
    let storage = {
        let core_tx = core_tx.clone();
        std::thread::Builder::new()
            .name("coco-storage".into())
            .spawn(move || storage_loop(writer, storage_rx, core_tx))
            .expect("spawning the storage thread")
    };
    let core = {
        let queued = queued.clone();
        let reads = reads.clone();
        std::thread::Builder::new()
            .name("coco-core".into())
            .spawn(move || {
                let channels = CoreChannels {
                    rx: core_rx,
                    storage: storage_tx,
                    queued,
                    reads,
                };
                core_loop(node, initial, channels, clock, tick_ms, edges, snapshots)
            })
            .expect("spawning the core thread")
    };
    Threads {
        core,
        storage,
        handle: CoreHandle {
            tx: core_tx,
            queued,
            reads,
        },
    }
}

/// The core thread's ends of its channels.
struct CoreChannels {
    rx: Receiver<CoreMsg>,
    storage: Sender<Vec<StorageOp>>,
    /// Requests queued for the core (shared with [`CoreHandle`]).
    queued: Arc<AtomicUsize>,
    /// Where read-only requests find the core's state (shared with [`CoreHandle`]).
    reads: Arc<ReadSlot>,
}

fn core_loop(
    mut node: Node,
    initial: Vec<Output>,
    channels: CoreChannels,
    clock: Clock,
    tick_ms: u64,
    edges: Edges,
    snapshots: Option<Sender<coco_node::snapshot::SnapshotAction>>,
) {
    let mut core = CoreState {
        router: Router {
            replies: HashMap::new(),
            ops: Vec::new(),
            truncations_sent: 0,
            edges,
            snapshots,
        },
        storage: channels.storage,
        queued: channels.queued,
        reads: channels.reads,
        next_id: 0,
        stepped: true,
    };
    let rx = channels.rx;
    let mut out = initial;
    let mut last_tick = Instant::now();
    let tick = Duration::from_millis(tick_ms.max(1));
    let mut stopping = false;
    loop {
        core.flush(&mut node, &clock, &mut out);
        if stopping {
            return;
        }
        let first = match rx.recv_timeout(tick.saturating_sub(last_tick.elapsed())) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = clock.now();
        if let Some(m) = first {
            stopping |= core.handle(&mut node, now, m, &mut out);
            // Drain what is already queued so one storage batch covers many transactions, but
            // hand over what accumulates every so often: a long queue (a backup catching up)
            // would otherwise keep storage idle, and acknowledgements waiting, until the end.
            for _ in 0..limits::LEDGER_WRITE_BATCH_COUNT_MAX {
                match rx.try_recv() {
                    Ok(m) => stopping |= core.handle(&mut node, now, m, &mut out),
                    Err(_) => break,
                }
                if out.len() >= limits::CORE_OUTPUTS_FLUSH_COUNT {
                    core.flush(&mut node, &clock, &mut out);
                }
            }
        }
        if last_tick.elapsed() >= tick {
            node.step(now, Input::Tick, &mut out);
            core.stepped = true;
            last_tick = Instant::now();
        }
    }
}

/// What the core thread keeps between inputs, besides the node.
struct CoreState {
    router: Router,
    storage: Sender<Vec<StorageOp>>,
    /// Requests queued for the core (shared with [`CoreHandle`]).
    queued: Arc<AtomicUsize>,
    /// Where read-only requests find the core's state (shared with [`CoreHandle`]).
    reads: Arc<ReadSlot>,
    next_id: RequestId,
    /// Whether the node stepped since the read view was last published.
    stepped: bool,
}

impl CoreState {
    /// Feeds one message to the node. Returns true on `Shutdown`.
    fn handle(&mut self, node: &mut Node, now: Now, msg: CoreMsg, out: &mut Vec<Output>) -> bool {
        self.stepped = true;
        let input = match msg {
            CoreMsg::Request {
                request,
                session,
                reply,
            } => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                let id = self.next_id;
                self.next_id += 1;
                self.router.replies.insert(id, reply);
                Input::Request {
                    id,
                    request,
                    session,
                }
            }
            CoreMsg::SessionClosed(session) => Input::SessionClosed { session },
            CoreMsg::Persisted { seqno, truncations } => {
                if truncations != self.router.truncations_sent {
                    return false;
                }
                Input::Persisted { seqno }
            }
            CoreMsg::Fetched {
                peer,
                from_idx,
                entries,
            } => Input::Fetched {
                peer,
                from_idx,
                entries,
            },
            CoreMsg::Peer { from, message } => Input::Peer { from, message },
            CoreMsg::LedgerRead { from_idx, entries } => Input::LedgerRead { from_idx, entries },
            CoreMsg::StorageFailed(reason) => {
                tracing::error!(%reason, "ledger storage failed: refusing writes, commit frozen");
                Input::StorageFailed { reason }
            }
            CoreMsg::SnapshotSerialised { seqno, digest } => {
                Input::SnapshotSerialised { seqno, digest }
            }
            CoreMsg::Shutdown => return true,
        };
        node.step(now, input, out);
        false
    }

    /// Publishes the read view if the node stepped, then acts on its outputs: replies go out
    /// only after a view including their effects is published, so a read sees every write
    /// answered before it, on any session.
    fn flush(&mut self, node: &mut Node, clock: &Clock, out: &mut Vec<Output>) {
        if std::mem::take(&mut self.stepped) {
            self.reads.publish(node.read_view());
        }
        self.router.route(out);
        if !self.router.ops.is_empty()
            && self
                .storage
                .send(std::mem::take(&mut self.router.ops))
                .is_err()
        {
            // The storage thread is gone: nothing can become durable any more.
            node.step(
                clock.now(),
                Input::StorageFailed {
                    reason: "storage thread exited".into(),
                },
                out,
            );
            self.stepped = true;
        }
    }
}

/// Where the core's outputs go.
struct Router {
    replies: HashMap<RequestId, oneshot::Sender<Response>>,
    /// Storage operations for the next batch.
    ops: Vec<StorageOp>,
    /// Truncations handed to storage so far (see `CoreMsg::Persisted`).
    truncations_sent: u64,
    edges: Edges,
    snapshots: Option<Sender<coco_node::snapshot::SnapshotAction>>,
}

impl Router {
    fn route(&mut self, out: &mut Vec<Output>) {
        let ops = &mut self.ops;
        for o in out.drain(..) {
            match o {
                Output::Respond { id, response } => {
                    if let Some(r) = self.replies.remove(&id) {
                        // The client may have gone away; that is not an error.
                        let _ = r.send(response);
                    }
                }
                Output::Append {
                    txid,
                    bytes,
                    force_chunk_after,
                    ..
                } => ops.push(StorageOp::Append {
                    txid,
                    bytes,
                    force_chunk_after,
                }),
                Output::GlobalCommit { txid } => ops.push(StorageOp::Commit(txid.seqno)),
                Output::NodeCertificate { pem } => {
                    match self.edges.cert_slot.as_ref().map(|slot| slot.replace(&pem)) {
                        Some(Ok(())) => tracing::info!("serving the renewed node certificate"),
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "renewed node certificate refused; keeping the old one")
                        }
                        None => {}
                    }
                }
                Output::Truncate { seqno } => {
                    self.truncations_sent += 1;
                    ops.push(StorageOp::Truncate(seqno));
                }
                Output::FetchEntries {
                    peer,
                    from_idx,
                    to_idx,
                } => ops.push(StorageOp::Read {
                    peer: Some(peer),
                    from_idx,
                    to_idx,
                }),
                Output::ReadLedger { from_idx, to_idx } => ops.push(StorageOp::Read {
                    peer: None,
                    from_idx,
                    to_idx,
                }),
                Output::Peer {
                    to,
                    address,
                    message,
                } => match self.edges.network.as_mut() {
                    Some(network) => {
                        if !network.send(&to, address.as_deref(), &message) {
                            tracing::debug!(peer = %to, "consensus message dropped (no route or queue full)");
                        }
                    }
                    None => {
                        tracing::warn!(peer = %to, "no node-to-node interface: consensus message dropped")
                    }
                },
                Output::ServiceCertificate { .. } => {
                    tracing::info!("the service certificate was renewed by governance")
                }
                Output::RecoveryComplete => {
                    tracing::info!("the recovered service is open");
                    ops.push(StorageOp::CompleteRecovery);
                }
                Output::Snapshot(action) => {
                    if let Some(worker) = &self.snapshots
                        && worker.send(action).is_err()
                    {
                        tracing::error!("the snapshot worker stopped: snapshot dropped");
                    }
                }
            }
        }
    }
}

fn storage_loop<D: Disk>(
    mut writer: LedgerWriter<D>,
    rx: Receiver<Vec<StorageOp>>,
    core: Sender<CoreMsg>,
) {
    let mut failed = false;
    let mut truncations = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        while let Ok(more) = rx.try_recv() {
            batches.push(more);
        }
        if failed {
            continue;
        }
        let mut commit_to = None;
        let mut result = Ok(());
        for op in batches.into_iter().flatten() {
            match op {
                StorageOp::Append {
                    txid,
                    bytes,
                    force_chunk_after,
                } => {
                    result = writer.append(txid.seqno, &bytes, force_chunk_after);
                }
                StorageOp::Commit(s) => commit_to = Some(s),
                StorageOp::Truncate(s) => {
                    truncations += 1;
                    result = writer.truncate(s);
                }
                StorageOp::CompleteRecovery => result = writer.complete_recovery(),
                StorageOp::Read {
                    peer,
                    from_idx,
                    to_idx,
                } => match (writer.read_entries(from_idx, to_idx), peer) {
                    (Ok(entries), Some(peer)) => {
                        let _ = core.send(CoreMsg::Fetched {
                            peer,
                            from_idx,
                            entries,
                        });
                    }
                    (Ok(entries), None) => {
                        let _ = core.send(CoreMsg::LedgerRead { from_idx, entries });
                    }
                    // The reader asks again (a peer on its next probe, a historical query after
                    // a while); a read failure is not a reason to stop this node's own storage.
                    (Err(e), peer) => {
                        tracing::warn!(?peer, from_idx, to_idx, error = %e, "cannot read ledger entries back")
                    }
                },
            }
            if result.is_err() {
                break;
            }
        }
        let result = result.and_then(|()| writer.sync()).and_then(|seqno| {
            // Commit notifications only ever cover seqnos already reported durable.
            if let Some(c) = commit_to {
                writer.commit(c)?;
            }
            Ok(seqno)
        });
        match result {
            Ok(seqno) => {
                if seqno > 0
                    && core
                        .send(CoreMsg::Persisted { seqno, truncations })
                        .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                failed = true;
                let _ = core.send(CoreMsg::StorageFailed(e.to_string()));
            }
        }
    }
}

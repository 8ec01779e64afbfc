//! Commit latency: how long until a write the node answered early is committed.
//!
//! Workers hand each write's transaction id (with the time its request was due) to one poller,
//! which asks `/node/commit` every [`POLL_INTERVAL`]: a transaction at or below the commit seqno
//! in the same view is committed (CCF's rule); one from another view is looked up in
//! `/node/tx` (an election may have rolled it back: it then counts as lost). The poller has a
//! thread and connection of its own, so that it does not queue behind the workers' tasks (which
//! would add the client's own scheduling delays to every commit latency).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use coco_types::TxId;
use tokio::sync::{mpsc, watch};

use super::stats::Recorder;

/// How often the poller asks for the commit index (the resolution of commit latencies).
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Hands transaction ids to the poller.
#[derive(Clone)]
pub struct Sender(mpsc::UnboundedSender<(TxId, Instant)>);

impl Sender {
    /// Follow `txid`, whose request was due at `t0`.
    pub fn follow(&self, txid: TxId, t0: Instant) {
        // The poller outlives every worker; if it failed, its error is reported at the end.
        let _ = self.0.send((txid, t0));
    }
}

/// What following the writes found.
pub struct Followed {
    /// Writes followed.
    pub followed: u64,
    /// Their commit latencies (`ok`: committed; errors: `lost` ones rolled back).
    pub recorder: Recorder,
    /// Writes not yet committed when the load stopped.
    pub backlog_at_end: u64,
    /// Writes committed while the load ran.
    pub committed_during_load: u64,
}

pub struct Follower {
    sender: Sender,
    stop: watch::Sender<Option<Instant>>,
    thread: std::thread::JoinHandle<anyhow::Result<Polled>>,
}

/// What the poller saw: commit latencies with when they were seen, and counts.
struct Polled {
    followed: u64,
    samples: Vec<(u64, Instant)>,
    backlog_at_end: u64,
    committed_during_load: u64,
    lost: u64,
}

impl Follower {
    /// Connects to `address` and starts polling it.
    pub async fn start(
        config: coco_client::ClientConfig,
        address: std::net::SocketAddr,
    ) -> anyhow::Result<Follower> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(TxId, Instant)>();
        let (stop, mut stopped) = watch::channel::<Option<Instant>>(None);
        let (connected_tx, connected) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("commit-poller".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mut conn = match config.connect(address).await {
                        Ok(c) => {
                            let _ = connected_tx.send(Ok(()));
                            c
                        }
                        Err(e) => {
                            let e = anyhow::Error::from(e);
                            let _ = connected_tx.send(Err(anyhow::anyhow!("{e:#}")));
                            return Err(e);
                        }
                    };
                    let mut pending: BTreeMap<u64, Vec<(TxId, Instant)>> = BTreeMap::new();
                    let mut pending_count = 0u64;
                    let mut followed = 0u64;
                    let mut samples: Vec<(u64, Instant)> = Vec::new();
                    let mut lost = 0u64;
                    let mut at_end: Option<(u64, u64)> = None;
                    loop {
                        while let Ok((txid, t0)) = rx.try_recv() {
                            pending.entry(txid.seqno).or_default().push((txid, t0));
                            pending_count += 1;
                            followed += 1;
                        }
                        let drain_until = *stopped.borrow_and_update();
                        if let Some(until) = drain_until {
                            at_end.get_or_insert((pending_count, samples.len() as u64));
                            if pending_count == 0 || Instant::now() >= until {
                                break;
                            }
                        }
                        let r = conn.get("/node/commit").await?;
                        let commit: Option<TxId> = r.json()["transaction_id"]
                            .as_str()
                            .and_then(|t| t.parse().ok());
                        let now = Instant::now();
                        if let Some(commit) = commit {
                            let done: Vec<u64> =
                                pending.range(..=commit.seqno).map(|(s, _)| *s).collect();
                            for seqno in done {
                                let txs = pending.remove(&seqno).expect("listed above");
                                for (txid, t0) in txs {
                                    let committed = if txid.view == commit.view {
                                        Some(true)
                                    } else {
                                        let r = conn
                                            .get(&format!("/node/tx?transaction_id={txid}"))
                                            .await?;
                                        match r.json()["status"].as_str() {
                                            Some("Committed") => Some(true),
                                            Some("Invalid") => Some(false),
                                            _ => None,
                                        }
                                    };
                                    match committed {
                                        Some(true) => {
                                            samples.push(((now - t0).as_micros() as u64, now));
                                            pending_count -= 1;
                                        }
                                        Some(false) => {
                                            lost += 1;
                                            pending_count -= 1;
                                        }
                                        None => pending.entry(seqno).or_default().push((txid, t0)),
                                    }
                                }
                            }
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(POLL_INTERVAL) => {}
                            _ = stopped.changed() => {}
                        }
                    }
                    let (backlog_at_end, committed_during_load) =
                        at_end.unwrap_or((pending_count, 0));
                    Ok(Polled {
                        followed,
                        samples,
                        backlog_at_end,
                        committed_during_load,
                        lost,
                    })
                })
            })?;
        connected.await??;
        Ok(Follower {
            sender: Sender(tx),
            stop,
            thread,
        })
    }

    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// The load stopped: wait up to `drain` for the writes still pending, then report, with
    /// seconds counted from `start`.
    pub async fn finish(self, start: Instant, drain: Duration) -> anyhow::Result<Followed> {
        drop(self.sender);
        let _ = self.stop.send(Some(Instant::now() + drain));
        let Polled {
            followed,
            samples,
            backlog_at_end,
            committed_during_load,
            lost,
        } = tokio::task::spawn_blocking(move || self.thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the commit poller panicked"))??;
        let mut recorder = Recorder::default();
        for (micros, at) in samples {
            recorder.ok(micros, at.saturating_duration_since(start).as_secs());
        }
        for _ in 0..lost {
            recorder.error("lost");
        }
        Ok(Followed {
            followed,
            recorder,
            backlog_at_end,
            committed_during_load,
        })
    }
}

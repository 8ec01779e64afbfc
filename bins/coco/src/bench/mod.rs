//! `coco bench`: a load generator for coco, CCF and etcd's v3 JSON gateway.
//!
//! `--connections` connections (HTTP/1.1 keep-alive or HTTP/2, client certificates) each keep
//! one request in flight (HTTP/2: `--streams` of them, multiplexed): closed loop by default, or open loop at `--rate` requests per second
//! (latency then counts from when a request was due, so a slow server is not hidden by the
//! client waiting for it — coordinated omission). A run lasts `--duration-s` or `--requests`.
//! With `--commit-latency`, each coco write's transaction id is followed until the node reports
//! it committed (one poller on `/node/commit`, `/node/tx` after a view change): the latency that
//! compares with an etcd put, which returns once committed. Results: JSON on stdout (and
//! `--json FILE`), and with `--report FILE` an HTML page with latency over time and histograms.

mod commit;
mod report;
mod stats;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use coco_client::{ClientConfig, Method};

use stats::Recorder;
use workload::{Kind, Target, Template, Workload};

#[derive(clap::Args)]
pub struct Args {
    /// Node address, host:port.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub address: SocketAddr,
    /// Service certificate (trust root); for etcd, its CA.
    #[arg(long)]
    pub cacert: PathBuf,
    /// Client certificate (a user's); with --key.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// The service: coco (or CCF) running the logging app, or etcd's v3 JSON gateway.
    #[arg(long, value_enum, default_value = "coco")]
    pub target: Target,
    /// Concurrent connections, one request in flight each (HTTP/2: --streams each).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Requests in flight on each HTTP/2 connection (multiplexed streams).
    #[arg(long, default_value_t = 1, requires = "http2")]
    pub streams: usize,
    /// Run this many seconds (unless --requests is given).
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Send this many requests in all instead of running for a duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Open loop: send this many requests per second in all, whatever the answers take.
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, value_enum, default_value = "private-write")]
    pub workload: Kind,
    /// Share of reads in the mixed workload (0 to 1).
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Distinct keys.
    #[arg(long, default_value_t = 20_000)]
    pub keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 20)]
    pub value_size: usize,
    /// Template workload: method.
    #[arg(long, default_value = "POST")]
    pub template_method: String,
    /// Template workload: path, e.g. "/app/log/public?x={id}" ({id}, {value}, {n} substituted).
    #[arg(long)]
    pub template_path: Option<String>,
    /// Template workload: body, e.g. '{"id": {id}, "msg": "{value}"}'.
    #[arg(long, default_value = "")]
    pub template_body: String,
    /// Use HTTP/2 instead of HTTP/1.1 keep-alive.
    #[arg(long)]
    pub http2: bool,
    /// Follow every write until it is committed and report commit latency (coco/CCF).
    #[arg(long)]
    pub commit_latency: bool,
    /// Also write the JSON results to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an HTML report (latency over time, histograms) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Do not write every key before a read or mixed workload (they exist already).
    #[arg(long)]
    pub skip_preload: bool,
}

/// How long to wait, after the load stops, for writes still uncommitted.
const COMMIT_DRAIN: Duration = Duration::from_secs(30);

pub fn run(args: Args) -> anyhow::Result<()> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let ca = read(&args.cacert)?;
    let identity = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    let config = ClientConfig::new(
        &ca,
        identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        args.http2,
    )?;
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.streams > 0, "--streams must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.read_ratio),
        "--read-ratio must be between 0 and 1"
    );
    anyhow::ensure!(args.rate.is_none_or(|r| r > 0.0), "--rate must be positive");
    let template = match (args.workload, &args.template_path) {
        (Kind::Template, None) => anyhow::bail!("the template workload needs --template-path"),
        (_, path) => path.as_ref().map(|path| -> anyhow::Result<Template> {
            Ok(Template {
                method: Method::from_bytes(args.template_method.as_bytes())
                    .context("--template-method")?,
                path: path.clone(),
                body: args.template_body.clone(),
            })
        }),
    }
    .transpose()?;
    let workload = Arc::new(Workload {
        target: args.target,
        kind: args.workload,
        keys: args.keys,
        value: "v".repeat(args.value_size),
        read_permille: (args.read_ratio * 1000.0).round() as u64,
        template,
    });
    let follow_commits = args.commit_latency && args.target == Target::Coco;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(drive(&args, &config, workload.clone(), follow_commits))?;
    let summary = summary(&args, &outcome);
    let text = serde_json::to_string_pretty(&summary)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.report {
        let page = report::html(
            &summary,
            &outcome.requests,
            outcome.commits.as_ref().map(|c| &c.recorder),
        );
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

struct Outcome {
    requests: Recorder,
    elapsed: Duration,
    commits: Option<commit::Followed>,
}

/// Counters the progress bar reads while workers run.
#[derive(Default)]
struct Live {
    ok: AtomicU64,
    errors: AtomicU64,
}

async fn drive(
    args: &Args,
    config: &ClientConfig,
    workload: Arc<Workload>,
    follow_commits: bool,
) -> anyhow::Result<Outcome> {
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        conns.push(config.connect(args.address).await?);
    }
    // Keys a read workload reads exist first: written over every connection at once.
    if !args.skip_preload {
        let specs: Vec<_> = workload.preload().collect();
        let mut loaders = Vec::new();
        for (k, mut c) in conns.drain(..).enumerate() {
            let mine: Vec<_> = specs
                .iter()
                .skip(k)
                .step_by(args.connections)
                .cloned()
                .collect();
            loaders.push(tokio::spawn(async move {
                for spec in mine {
                    let path = spec.path.clone();
                    let r = send(&mut c, spec).await?;
                    anyhow::ensure!(
                        r.status.is_success(),
                        "preloading {path}: {} {}",
                        r.status,
                        r.text()
                    );
                }
                Ok(c)
            }));
        }
        for l in loaders {
            conns.push(l.await??);
        }
    }
    let follower = if follow_commits {
        Some(commit::Follower::start(config.clone(), args.address).await?)
    } else {
        None
    };
    // One worker per request in flight: each HTTP/2 connection carries --streams of them.
    let mut workers = Vec::with_capacity(conns.len() * args.streams);
    for conn in conns {
        for _ in 1..args.streams {
            workers.push(conn.another_stream().context("--streams needs --http2")?);
        }
        workers.push(conn);
    }
    let in_flight = workers.len();
    let live = Arc::new(Live::default());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration_s);
    let per_worker_interval = args
        .rate
        .map(|r| Duration::from_secs_f64(in_flight as f64 / r));
    let progress = progress_bar(args, live.clone(), start);
    let mut tasks = Vec::new();
    for (worker, mut conn) in workers.into_iter().enumerate() {
        let live = live.clone();
        let next = next.clone();
        let workload = workload.clone();
        let limit = args.requests;
        let sender = follower.as_ref().map(|f| f.sender());
        // Open loop: workers start staggered over one interval.
        let first_due =
            per_worker_interval.map(|i| start + i.mul_f64(worker as f64 / in_flight as f64));
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let mut due = first_due;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if limit.is_some_and(|l| n >= l) || (limit.is_none() && Instant::now() >= deadline)
                {
                    break;
                }
                let t0 = match (due, per_worker_interval) {
                    (Some(d), Some(interval)) => {
                        tokio::time::sleep_until(d.into()).await;
                        due = Some(d + interval);
                        d
                    }
                    _ => Instant::now(),
                };
                let spec = workload.request(n);
                let is_write = spec.is_write;
                let result = send(&mut conn, spec).await;
                let done = Instant::now();
                match result {
                    Ok(r) if r.status.is_success() => {
                        rec.ok((done - t0).as_micros() as u64, (done - start).as_secs());
                        live.ok.fetch_add(1, Ordering::Relaxed);
                        if is_write
                            && let Some(sender) = &sender
                            && let Some(txid) = r
                                .header("x-ms-ccf-transaction-id")
                                .and_then(|t| t.parse().ok())
                        {
                            sender.follow(txid, t0);
                        }
                    }
                    Ok(r) => {
                        rec.error(r.status.as_u16().to_string());
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        rec.error("connection");
                        live.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            rec
        }));
    }
    let mut requests = Recorder::default();
    for t in tasks {
        requests.merge(&t.await?);
    }
    let elapsed = start.elapsed();
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    let commits = match follower {
        Some(f) => Some(f.finish(start, COMMIT_DRAIN).await?),
        None => None,
    };
    Ok(Outcome {
        requests,
        elapsed,
        commits,
    })
}

async fn send(
    conn: &mut coco_client::Connection,
    spec: workload::RequestSpec,
) -> Result<coco_client::Reply, coco_client::ClientError> {
    conn.request(
        spec.method,
        &spec.path,
        &[("content-type", "application/json")],
        spec.body,
    )
    .await
}

/// A progress bar with the live rate, redrawn four times a second (hidden when stderr is not a
/// terminal, or with --quiet).
fn progress_bar(args: &Args, live: Arc<Live>, start: Instant) -> Option<indicatif::ProgressBar> {
    if args.quiet {
        return None;
    }
    let bar = match args.requests {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new(args.duration_s),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .expect("a valid template"),
    );
    let by_count = args.requests.is_some();
    let handle = bar.clone();
    tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        while !handle.is_finished() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let ok = live.ok.load(Ordering::Relaxed);
            let errors = live.errors.load(Ordering::Relaxed);
            let now = Instant::now();
            let rate = (ok - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
            last = (now, ok);
            handle.set_position(if by_count {
                ok + errors
            } else {
                start.elapsed().as_secs()
            });
            handle.set_message(format!("{ok} ok, {errors} errors, {rate:.0}/s"));
        }
    });
    Some(bar)
}

fn summary(args: &Args, outcome: &Outcome) -> serde_json::Value {
    let secs = outcome.elapsed.as_secs_f64();
    let mut v = serde_json::json!({
        "target": format!("{:?}", args.target).to_lowercase(),
        "workload": format!("{:?}", args.workload),
        "connections": args.connections,
        "http2": args.http2,
        "streams": args.streams,
        "mode": if args.rate.is_some() { "open-loop" } else { "closed-loop" },
        "rate_per_s": args.rate,
        "duration_s": secs,
        "requests_ok": outcome.requests.ok,
        "errors": outcome.requests.error_count(),
        "errors_by_status": outcome.requests.errors,
        "throughput_per_s": outcome.requests.ok as f64 / secs,
        "latency_us": stats::percentiles(&outcome.requests.latency),
    });
    if let Some(c) = &outcome.commits {
        v["commit"] = serde_json::json!({
            "followed": c.followed,
            "committed": c.recorder.ok,
            // Writes not yet committed when the load stopped: a growing backlog means the
            // commit index does not keep up.
            "backlog_at_end": c.backlog_at_end,
            "uncommitted_after_drain": c.followed - c.recorder.ok,
            "committed_per_s": c.committed_during_load as f64 / secs,
            "latency_us": stats::percentiles(&c.recorder.latency),
        });
    }
    v
}

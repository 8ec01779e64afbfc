//! `coco bench`: a closed-loop load generator for coco (and CCF) nodes.
//!
//! N connections each keep one request in flight for a fixed duration; latencies go into an HDR
//! histogram. Workloads: the logging app's private or public write, and read. This is the first
//! cut of the benchmark tool (issue: performance) — open-loop mode, commit latency and reports
//! come later.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use coco_client::{ClientConfig, Method};
use hdrhistogram::Histogram;

#[derive(clap::Args)]
pub struct Args {
    /// Node address, host:port.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub address: SocketAddr,
    /// Service certificate (trust root).
    #[arg(long)]
    pub cacert: PathBuf,
    /// Client certificate and key (a user's).
    #[arg(long)]
    pub cert: PathBuf,
    #[arg(long)]
    pub key: PathBuf,
    /// Concurrent connections, one request in flight each.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Test duration in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// private-write, public-write or read.
    #[arg(long, default_value = "private-write", value_parser = ["private-write", "public-write", "read"])]
    pub workload: String,
    /// Distinct keys.
    #[arg(long, default_value_t = 20_000)]
    pub keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 20)]
    pub value_size: usize,
    /// Use HTTP/2 instead of HTTP/1.1 keep-alive.
    #[arg(long)]
    pub http2: bool,
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    errors: AtomicU64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ca = std::fs::read_to_string(&args.cacert)
        .with_context(|| format!("reading {}", args.cacert.display()))?;
    let cert = std::fs::read_to_string(&args.cert)
        .with_context(|| format!("reading {}", args.cert.display()))?;
    let key = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading {}", args.key.display()))?;
    let config = ClientConfig::new(&ca, Some((&cert, &key)), args.http2)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let counters = Arc::new(Counters::default());
    let duration = Duration::from_secs(args.duration_s);
    let value = "v".repeat(args.value_size);
    let args = Arc::new(args);
    let (hist, elapsed) = rt.block_on(async {
        if args.workload == "read" {
            // Make sure every key exists before reading.
            let mut c = config.connect(args.address).await?;
            for id in 0..args.keys {
                let body = serde_json::json!({"id": id, "msg": value}).to_string();
                c.request(
                    Method::POST,
                    "/app/log/private",
                    &[("content-type", "application/json")],
                    Bytes::from(body),
                )
                .await?;
            }
        }
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = Vec::new();
        for worker in 0..args.connections {
            let mut conn = config.connect(args.address).await?;
            let counters = counters.clone();
            let args = args.clone();
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                let mut hist =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
                let mut i = worker as u64;
                while Instant::now() < deadline {
                    let id = i % args.keys;
                    i += args.connections as u64;
                    let t0 = Instant::now();
                    let result = match args.workload.as_str() {
                        "read" => {
                            conn.request(
                                Method::GET,
                                &format!("/app/log/private?id={id}"),
                                &[],
                                Bytes::new(),
                            )
                            .await
                        }
                        w => {
                            let path = if w == "public-write" {
                                "/app/log/public"
                            } else {
                                "/app/log/private"
                            };
                            let body = format!(r#"{{"id":{id},"msg":"{value}"}}"#);
                            conn.request(
                                Method::POST,
                                path,
                                &[("content-type", "application/json")],
                                Bytes::from(body),
                            )
                            .await
                        }
                    };
                    let micros = t0.elapsed().as_micros() as u64;
                    match result {
                        Ok(r) if r.status.is_success() => {
                            counters.ok.fetch_add(1, Ordering::Relaxed);
                            let _ = hist.record(micros.max(1));
                        }
                        Ok(_) => {
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
                hist
            }));
        }
        let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        for t in tasks {
            total.add(t.await?)?;
        }
        Ok::<_, anyhow::Error>((total, start.elapsed()))
    })?;
    let ok = counters.ok.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "workload": args.workload,
        "connections": args.connections,
        "http2": args.http2,
        "duration_s": elapsed.as_secs_f64(),
        "requests_ok": ok,
        "errors": errors,
        "throughput_per_s": ok as f64 / elapsed.as_secs_f64(),
        "latency_us": {
            "p50": hist.value_at_quantile(0.50),
            "p90": hist.value_at_quantile(0.90),
            "p99": hist.value_at_quantile(0.99),
            "p99_9": hist.value_at_quantile(0.999),
            "max": hist.max(),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

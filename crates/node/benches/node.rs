//! The write path of one transaction through the core: route, authenticate, execute the logging
//! app's handler, KV commit, serialise, AES-GCM seal, hash, Merkle append.

#[path = "../tests/common/mod.rs"]
mod common;

use coco_app_api::Method;
use coco_node::{CoreConfig, Input, Output};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    // Production cadence: a signature every 5,000 transactions (its cost is amortised into the
    // figure), durability acknowledged every 1,000 so commit and compaction keep memory bounded.
    let config = CoreConfig {
        signature_interval_ms: u64::MAX,
        ..CoreConfig::default()
    };
    let mut f = common::fixture(config);
    let mut out: Vec<Output> = Vec::with_capacity(4);
    let mut i = 0u64;
    c.bench_function("node/POST /app/log/private (execute + ledger entry)", |b| {
        b.iter(|| {
            i += 1;
            let body = format!(r#"{{"id":{},"msg":"a twenty byte value"}}"#, i % 20_000);
            let request = common::request(Method::POST, "/app/log/private", &body, Some(&f.user));
            f.node.step(
                common::now(1),
                Input::Request {
                    id: i,
                    request,
                    session: Default::default(),
                },
                &mut out,
            );
            if i.is_multiple_of(1000) {
                let seqno = f.node.consensus().last_seqno;
                f.node
                    .step(common::now(1), Input::Persisted { seqno }, &mut out);
            }
            out.clear();
        })
    });
    c.bench_function("node/GET /app/log/private (read)", |b| {
        b.iter(|| {
            i += 1;
            let request = common::request(
                Method::GET,
                &format!("/app/log/private?id={}", i % 20_000),
                "",
                Some(&f.user),
            );
            f.node.step(
                common::now(1),
                Input::Request {
                    id: i,
                    request,
                    session: Default::default(),
                },
                &mut out,
            );
            out.clear();
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

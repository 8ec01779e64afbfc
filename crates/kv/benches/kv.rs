//! KV micro-benchmarks: the per-transaction costs on the node's write path.

use bytes::Bytes;
use coco_kv::{Store, WriteSet};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn filled(n: u64) -> Store {
    let mut s = Store::new();
    let mut ws = WriteSet::default();
    for i in 0..n {
        ws.put(
            "records",
            Bytes::from(i.to_string()),
            Bytes::from_static(b"\"a twenty byte value\""),
        );
    }
    s.apply(&ws, 1).unwrap();
    s.compact(1);
    s
}

fn bench(c: &mut Criterion) {
    let base = filled(100_000);
    c.bench_function("kv/commit 1-key write tx into 100k keys", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |s| {
                let mut tx = s.begin();
                tx.put(
                    "records",
                    Bytes::from_static(b"42"),
                    Bytes::from_static(b"\"hello\""),
                );
                let next = s.current_version() + 1;
                s.commit(tx, next).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    // The whole life of a version on the primary: 1,000 one-key transactions over distinct
    // keys, then the commit point passes them all (`compact`).
    // The store is built afresh for each run, so it shares nothing (as on a node between
    // snapshots).
    let mut group = c.benchmark_group("kv");
    group.sample_size(20);
    group.bench_function("1,000 write txs into 100k keys, then compact", |b| {
        b.iter_batched_ref(
            || filled(100_000),
            |s| {
                for i in 0..1_000u64 {
                    let mut tx = s.begin();
                    tx.put(
                        "records",
                        Bytes::from((i * 97 % 100_000).to_string()),
                        Bytes::from_static(b"\"a twenty byte value\""),
                    );
                    let next = s.current_version() + 1;
                    s.commit(tx, next).unwrap();
                }
                s.compact(s.current_version());
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    c.bench_function("kv/begin + get in 100k keys", |b| {
        b.iter(|| {
            let mut tx = base.begin();
            tx.get("records", b"4242")
        })
    });
    let mut ws = WriteSet::default();
    ws.put(
        "records",
        Bytes::from_static(b"7"),
        Bytes::from_static(b"\"x\""),
    );
    c.bench_function("kv/apply 1-key write set", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |s| s.apply(&ws, 2).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

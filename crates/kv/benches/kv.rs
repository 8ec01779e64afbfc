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

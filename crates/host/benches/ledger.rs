//! Ledger append on the real file system: a batch of entries written then made durable with one
//! fsync (the storage thread's group commit), and the per-entry cost without fsync.

use coco_codec::WriteSet;
use coco_codec::entry::{EntryBuilder, EntryFlags};
use coco_host::storage::{LedgerWriter, RealDisk};
use coco_types::TxId;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn entry(seqno: u64) -> Vec<u8> {
    let mut ws = WriteSet::default();
    ws.put(
        "records",
        bytes::Bytes::from(seqno.to_string()),
        bytes::Bytes::from_static(b"\"a twenty byte value\""),
    );
    EntryBuilder::for_write_set(
        EntryFlags::NONE,
        TxId::new(2, seqno),
        &[0; 32],
        &[1; 32],
        &ws,
    )
    .unwrap()
    .finish(&[7; 16])
}

fn bench(c: &mut Criterion) {
    let entries: Vec<Vec<u8>> = (1..=1000).map(entry).collect();
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append 1000 entries + 1 fsync", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let w = LedgerWriter::create(&dir.path().join("ledger"), RealDisk).unwrap();
                (dir, w)
            },
            |(dir, mut w)| {
                for (i, e) in entries.iter().enumerate() {
                    w.append(i as u64 + 1, e, false).unwrap();
                }
                w.sync().unwrap();
                drop(dir);
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("append 1000 entries, no fsync", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let w = LedgerWriter::create(&dir.path().join("ledger"), RealDisk).unwrap();
                (dir, w)
            },
            |(dir, mut w)| {
                for (i, e) in entries.iter().enumerate() {
                    w.append(i as u64 + 1, e, false).unwrap();
                }
                drop(dir);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

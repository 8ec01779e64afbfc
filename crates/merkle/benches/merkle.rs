//! Benchmarks of the Merkle tree operations on the transaction path: appending a leaf per
//! transaction, computing the root at each signature, and producing receipt paths.
//!
//! Run with `cargo bench -p coco-merkle`.

use std::hint::black_box;

use coco_merkle::MerkleTree;
use criterion::{Criterion, criterion_group, criterion_main};

const LEAF_COUNT: u64 = 100_000;

fn leaf(i: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&i.to_le_bytes());
    h
}

fn append_and_root(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle");
    group.sample_size(10);
    group.bench_function("append_100k_then_root", |b| {
        b.iter(|| {
            let mut t = MerkleTree::new();
            for i in 0..LEAF_COUNT {
                t.append(leaf(i));
            }
            black_box(t.root())
        })
    });
    group.finish();

    let mut t = MerkleTree::new();
    for i in 0..LEAF_COUNT {
        t.append(leaf(i));
    }
    c.bench_function("merkle_root_of_100k", |b| b.iter(|| black_box(&t).root()));
    c.bench_function("merkle_path_in_100k", |b| {
        let mut index = 0u64;
        b.iter(|| {
            index = (index + 7919) % LEAF_COUNT;
            t.path(index, LEAF_COUNT).unwrap()
        })
    });
    c.bench_function("merkle_serialise_flushed_100k", |b| {
        let mut flushed = t.clone();
        flushed.flush_to(LEAF_COUNT - 5_000).unwrap();
        b.iter(|| black_box(&flushed).serialise())
    });
}

criterion_group!(benches, append_and_root);
criterion_main!(benches);

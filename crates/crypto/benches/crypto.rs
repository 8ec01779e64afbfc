//! Micro-benchmarks of the primitives on coco's hot paths: ledger entry encryption (AES-GCM),
//! hashing (SHA-256 of entries, HMAC for commit nonces) and signature transactions (prehashed
//! ECDSA P-384 over the Merkle root).
//!
//! Run with `cargo bench -p coco-crypto`.

use std::hint::black_box;

use coco_crypto::{AesGcmKey, Curve, EcKeyPair, hmac_sha256, sha256};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn aes_gcm(c: &mut Criterion) {
    let key = AesGcmKey::new(&[0x42; 32]);
    let iv = [7u8; 12];
    let aad = [1u8; 64];
    let mut group = c.benchmark_group("aes_256_gcm_seal");
    for size_bytes in [200usize, 16 * 1024] {
        let mut buf = vec![0u8; size_bytes];
        group.throughput(Throughput::Bytes(size_bytes as u64));
        group.bench_function(format!("{size_bytes}B"), |b| {
            b.iter(|| key.seal_in_place_detached(&iv, &aad, black_box(&mut buf)))
        });
    }
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let data = vec![0xa5u8; 1024];
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Bytes(1024));
    group.bench_function("sha256_1KiB", |b| b.iter(|| sha256(black_box(&data))));
    group.finish();
    c.bench_function("hmac_sha256_commit_nonce", |b| {
        b.iter(|| hmac_sha256(black_box(&[0x11; 32]), black_box(b"2.500")))
    });
}

fn ecdsa(c: &mut Criterion) {
    let key = EcKeyPair::generate(Curve::P384).unwrap();
    let root = sha256(b"merkle root");
    c.bench_function("ecdsa_p384_sign_prehashed_sha256", |b| {
        b.iter(|| key.sign_prehashed_sha256_der(black_box(&root)))
    });
    let spki = key.public_key_spki_der();
    let sig = key.sign_prehashed_sha256_der(&root);
    c.bench_function("ecdsa_p384_verify_prehashed_sha256", |b| {
        b.iter(|| coco_crypto::verify_prehashed_sha256_der(&spki, black_box(&root), &sig))
    });
}

criterion_group!(benches, aes_gcm, hashing, ecdsa);
criterion_main!(benches);

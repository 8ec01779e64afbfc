//! SHA-256 and HMAC-SHA256.
//!
//! CCF hashes everything in the ledger with SHA-256: Merkle leaves and nodes, write sets, commit
//! evidence, certificate fingerprints (`src/crypto/sha256_hash.cpp`). HMAC-SHA256 derives the
//! commit secret and commit nonces from the ledger secret (`src/node/ledger_secret.h`,
//! `src/kv/encryptor.h`).

use aws_lc_rs::{digest, hmac};

/// Size of a SHA-256 digest.
pub const SHA256_SIZE_BYTES: usize = 32;

/// Size of an HMAC-SHA256 tag.
pub const HMAC_SHA256_SIZE_BYTES: usize = 32;

/// Returns the SHA-256 digest of `data`.
pub fn sha256(data: &[u8]) -> [u8; SHA256_SIZE_BYTES] {
    to_array(digest::digest(&digest::SHA256, data).as_ref())
}

/// An incremental SHA-256, for data that arrives in pieces (e.g. a ledger entry assembled from
/// header, public and private domains) without first copying it into one buffer.
#[derive(Clone)]
pub struct Sha256 {
    context: digest::Context,
}

impl Sha256 {
    /// Starts a new digest.
    pub fn new() -> Self {
        Self {
            context: digest::Context::new(&digest::SHA256),
        }
    }

    /// Feeds `data` into the digest.
    pub fn update(&mut self, data: &[u8]) {
        self.context.update(data);
    }

    /// Finishes the digest; the same as [`sha256`] over everything passed to [`Sha256::update`].
    pub fn finish(self) -> [u8; SHA256_SIZE_BYTES] {
        to_array(self.context.finish().as_ref())
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256 { .. }")
    }
}

/// Returns HMAC-SHA256 of `data` under `key` (any key length, as RFC 2104 allows).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; HMAC_SHA256_SIZE_BYTES] {
    HmacSha256Key::new(key).sign(data)
}

/// An HMAC-SHA256 key prepared once (its padded inner and outer states), for a key that MACs
/// many messages — the commit secret MACs every transaction id.
pub struct HmacSha256Key(hmac::Key);

impl HmacSha256Key {
    pub fn new(key: &[u8]) -> Self {
        HmacSha256Key(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// HMAC-SHA256 of `data`; the same as [`hmac_sha256`] with this key.
    pub fn sign(&self, data: &[u8]) -> [u8; HMAC_SHA256_SIZE_BYTES] {
        to_array(hmac::sign(&self.0, data).as_ref())
    }
}

impl std::fmt::Debug for HmacSha256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSha256Key { .. }")
    }
}

fn to_array(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // Both algorithms always produce exactly 32 bytes; anything else is a library bug.
    assert_eq!(bytes.len(), 32, "SHA-256 output is 32 bytes");
    out.copy_from_slice(bytes);
    out
}

/// HKDF-SHA256 (RFC 5869) with a 32-byte output.
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    use aws_lc_rs::hkdf;
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, Len32)
        .expect("32 bytes is within HKDF-SHA256's output limit");
    let mut out = [0u8; 32];
    okm.fill(&mut out)
        .expect("the output buffer has the requested length");
    out
}

/// A deterministic random bit generator for the deterministic core: HMAC-SHA256 in counter mode
/// under a 256-bit seed the host draws from the OS CSPRNG (the simulator fixes it, so runs
/// replay). Block i is HMAC(seed, "coco-drbg" ‖ i as u64 LE).
#[derive(Clone)]
pub struct Drbg {
    seed: [u8; 32],
    counter: u64,
}

impl Drbg {
    pub fn new(seed: [u8; 32]) -> Self {
        Drbg { seed, counter: 0 }
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            let mut input = [0u8; 17];
            input[..9].copy_from_slice(b"coco-drbg");
            input[9..].copy_from_slice(&self.counter.to_le_bytes());
            self.counter += 1;
            let block = hmac_sha256(&self.seed, &input);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

impl std::fmt::Debug for Drbg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drbg { .. }")
    }
}

/// Fills `out` from the operating system's CSPRNG (through aws-lc). Used by the host for ledger
/// secrets and the seeds of the core's [`Drbg`]; the deterministic core never calls it.
pub fn random_bytes(out: &mut [u8]) -> Result<(), crate::CryptoError> {
    use aws_lc_rs::rand::SecureRandom;
    aws_lc_rs::rand::SystemRandom::new()
        .fill(out)
        .map_err(|_| crate::CryptoError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_sha256(input: &[u8], expected_hex: &str) {
        assert_eq!(
            hex::encode(sha256(input)),
            expected_hex,
            "sha256({input:?})"
        );
        // The incremental form must agree for every split point.
        for split in 0..=input.len() {
            let mut h = Sha256::new();
            h.update(&input[..split]);
            h.update(&input[split..]);
            assert_eq!(hex::encode(h.finish()), expected_hex, "split at {split}");
        }
    }

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 examples and the empty string.
        let cases: &[(&[u8], &str)] = &[
            (
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        for (input, expected) in cases {
            check_sha256(input, expected);
        }
    }

    #[test]
    fn sha256_million_a() {
        let mut h = Sha256::default();
        for _ in 0..1000 {
            h.update(&[b'a'; 1000]);
        }
        assert_eq!(
            hex::encode(h.finish()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn hmac_sha256_rfc4231() {
        // RFC 4231 test cases 1, 2, 3, 6 (6 has a key longer than the block size).
        let cases: &[(Vec<u8>, &[u8], &str)] = &[
            (
                vec![0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                &[0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(
                hex::encode(hmac_sha256(key, data)),
                *expected,
                "key {key:02x?}"
            );
        }
    }

    #[test]
    fn hmac_depends_on_key_and_data() {
        let base = hmac_sha256(b"key", b"data");
        assert_ne!(base, hmac_sha256(b"kez", b"data"));
        assert_ne!(base, hmac_sha256(b"key", b"datb"));
        assert_eq!(base, hmac_sha256(b"key", b"data"));
    }
}

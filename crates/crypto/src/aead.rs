//! AES-256-GCM with a caller-chosen IV and a detached tag.
//!
//! CCF encrypts the private domain of every ledger entry with the current ledger secret
//! (`src/crypto/symmetric_key.cpp`, `src/node/encryptor.h`):
//!
//! | Part | Size | Value |
//! |---|---|---|
//! | key | 32 | the ledger secret |
//! | IV | 12 | seqno as u64 LE, then view as u32 LE (top bit set for snapshots) |
//! | AAD | any | the serialised public domain |
//! | tag | 16 | stored before the IV in the entry's GCM header |
//!
//! CCF derives the IV deterministically so that every replica produces byte-identical entries,
//! which is why this API takes the IV explicitly instead of generating one.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::CryptoError;

/// Size of an AES-256 key.
pub const GCM_KEY_SIZE_BYTES: usize = 32;
/// Size of the GCM IV CCF uses.
pub const GCM_IV_SIZE_BYTES: usize = 12;
/// Size of the GCM authentication tag.
pub const GCM_TAG_SIZE_BYTES: usize = 16;

/// An AES-256-GCM key.
pub struct AesGcmKey {
    key: LessSafeKey,
}

impl AesGcmKey {
    /// Builds a key from 32 raw bytes (a CCF ledger secret).
    pub fn new(raw_key: &[u8; GCM_KEY_SIZE_BYTES]) -> Self {
        // aws-lc only rejects keys of the wrong length, which the type rules out.
        let unbound =
            UnboundKey::new(&AES_256_GCM, raw_key).expect("a 32-byte key is a valid AES-256 key");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    ///
    /// The caller must never reuse an `iv` with the same key for different plaintexts; CCF's IV
    /// scheme (seqno, view) guarantees that.
    pub fn seal_in_place_detached(
        &self,
        iv: &[u8; GCM_IV_SIZE_BYTES],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; GCM_TAG_SIZE_BYTES] {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*iv), Aad::from(aad), buf)
            // aws-lc fails only for inputs longer than GCM's limit (~64 GiB), far beyond any
            // ledger entry; treat it as a broken invariant.
            .expect("AES-GCM seal of an in-memory buffer");
        let mut out = [0u8; GCM_TAG_SIZE_BYTES];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Verifies `tag` and decrypts `buf` in place.
    ///
    /// On error the contents of `buf` are unspecified and must not be used.
    pub fn open_in_place_detached(
        &self,
        iv: &[u8; GCM_IV_SIZE_BYTES],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; GCM_TAG_SIZE_BYTES],
    ) -> Result<(), CryptoError> {
        self.key
            .open_in_place_separate_tag(Nonce::assume_unique_for_key(*iv), Aad::from(aad), tag, buf)
            .map(|_| ())
            .map_err(|_| CryptoError::AeadOpen)
    }
}

impl std::fmt::Debug for AesGcmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("AesGcmKey { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// NIST GCM test vectors (gcmEncryptExtIV256.rsp / McGrew-Viega test case 16).
    #[test]
    fn nist_vectors() {
        struct Case {
            key: &'static str,
            iv: &'static str,
            pt: &'static str,
            aad: &'static str,
            ct: &'static str,
            tag: &'static str,
        }
        let cases = [
            // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 13 (all empty).
            Case {
                key: "0000000000000000000000000000000000000000000000000000000000000000",
                iv: "000000000000000000000000",
                pt: "",
                aad: "",
                ct: "",
                tag: "530f8afbc74536b9a963b4f1c4cb738b",
            },
            // Test case 14: one zero block.
            Case {
                key: "0000000000000000000000000000000000000000000000000000000000000000",
                iv: "000000000000000000000000",
                pt: "00000000000000000000000000000000",
                aad: "",
                ct: "cea7403d4d606b6e074ec5d3baf39d18",
                tag: "d0d1c8a799996bf0265b98b5d48ab919",
            },
            // Test case 16: 60-byte plaintext with 20 bytes of AAD.
            Case {
                key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                iv: "cafebabefacedbaddecaf888",
                pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
                aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
                ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                tag: "76fc6ece0f4e1768cddf8853bb2d551b",
            },
        ];
        for c in cases {
            let key = AesGcmKey::new(&unhex(c.key));
            let iv = unhex(c.iv);
            let aad = hex::decode(c.aad).unwrap();
            let mut buf = hex::decode(c.pt).unwrap();
            let tag = key.seal_in_place_detached(&iv, &aad, &mut buf);
            assert_eq!(hex::encode(&buf), c.ct);
            assert_eq!(hex::encode(tag), c.tag);
            key.open_in_place_detached(&iv, &aad, &mut buf, &tag)
                .unwrap();
            assert_eq!(hex::encode(&buf), c.pt);
        }
    }

    /// Every single-bit change to key, IV, AAD, ciphertext or tag must be rejected.
    #[test]
    fn tamper_detection() {
        let raw_key = [7u8; 32];
        let iv = [1u8; 12];
        let aad = b"public domain".to_vec();
        let plaintext = b"private domain bytes".to_vec();
        let mut ct = plaintext.clone();
        let tag = AesGcmKey::new(&raw_key).seal_in_place_detached(&iv, &aad, &mut ct);

        #[derive(Debug)]
        enum Field {
            Key,
            Iv,
            Aad,
            Ciphertext,
            Tag,
        }
        let cases = [
            (Field::Key, 0usize),
            (Field::Key, 31),
            (Field::Iv, 0),
            (Field::Iv, 11),
            (Field::Aad, 0),
            (Field::Aad, 12),
            (Field::Ciphertext, 0),
            (Field::Ciphertext, 19),
            (Field::Tag, 0),
            (Field::Tag, 15),
        ];
        for (field, byte) in cases {
            let (mut k, mut i, mut a, mut c, mut t) = (raw_key, iv, aad.clone(), ct.clone(), tag);
            match field {
                Field::Key => k[byte] ^= 1,
                Field::Iv => i[byte] ^= 1,
                Field::Aad => a[byte] ^= 1,
                Field::Ciphertext => c[byte] ^= 1,
                Field::Tag => t[byte] ^= 1,
            }
            let result = AesGcmKey::new(&k).open_in_place_detached(&i, &a, &mut c, &t);
            assert_eq!(result, Err(CryptoError::AeadOpen), "{field:?}[{byte}]");
        }
        // Dropping AAD entirely or truncating the ciphertext is also rejected.
        let key = AesGcmKey::new(&raw_key);
        assert!(
            key.open_in_place_detached(&iv, b"", &mut ct.clone(), &tag)
                .is_err()
        );
        assert!(
            key.open_in_place_detached(&iv, &aad, &mut ct[..19].to_vec(), &tag)
                .is_err()
        );
        // And the untampered input opens.
        let mut c = ct.clone();
        key.open_in_place_detached(&iv, &aad, &mut c, &tag).unwrap();
        assert_eq!(c, plaintext);
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(
            raw_key in any::<[u8; 32]>(),
            iv in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
            plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let key = AesGcmKey::new(&raw_key);
            let mut buf = plaintext.clone();
            let tag = key.seal_in_place_detached(&iv, &aad, &mut buf);
            prop_assert_eq!(buf.len(), plaintext.len());
            key.open_in_place_detached(&iv, &aad, &mut buf, &tag).unwrap();
            prop_assert_eq!(buf, plaintext);
        }
    }
}

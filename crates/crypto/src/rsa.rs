//! RSA keys and RSA-OAEP with SHA-256 (and MGF1-SHA-256), no label.
//!
//! CCF wraps ledger secrets for recovery members and encrypts recovery shares to each member's
//! `encryption_public_keys` entry this way (`src/crypto/openssl/rsa_key_pair.cpp`,
//! `src/node/share_manager.h`); CCF's Python client unwraps with
//! `padding.OAEP(mgf=MGF1(SHA256()), algorithm=SHA256(), label=None)`.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};

use crate::CryptoError;
use crate::cert::{pem_decode_one, pem_encode};

/// The RSA key size CCF uses for member encryption keys.
pub const RSA_DEFAULT_SIZE_BITS: u32 = 2048;

/// An RSA private key used for OAEP decryption.
pub struct RsaKeyPair {
    key: PrivateDecryptingKey,
}

impl RsaKeyPair {
    /// Generates a fresh key of `size_bits` (2048, 3072 or 4096) with aws-lc's CSPRNG.
    pub fn generate(size_bits: u32) -> Result<Self, CryptoError> {
        let size = match size_bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => return Err(CryptoError::UnsupportedRsaKeySize(other)),
        };
        let key = PrivateDecryptingKey::generate(size).map_err(|_| CryptoError::Internal)?;
        Ok(Self { key })
    }

    /// Parses a PKCS#8 `PRIVATE KEY` PEM block holding an RSA key.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, CryptoError> {
        let block = pem_decode_one(pem_text, &["PRIVATE KEY"], "PRIVATE KEY")?;
        let key = PrivateDecryptingKey::from_pkcs8(block.contents())
            .map_err(|_| CryptoError::InvalidPrivateKey)?;
        Ok(Self { key })
    }

    /// Returns the private key as a PKCS#8 `PRIVATE KEY` PEM block.
    pub fn to_pkcs8_pem(&self) -> String {
        let der: Pkcs8V1Der<'static> = self
            .key
            .as_der()
            .expect("PKCS#8 serialisation of a valid key");
        pem_encode("PRIVATE KEY", der.as_ref().to_vec())
    }

    /// Returns the public key as DER `SubjectPublicKeyInfo`.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        let der: PublicKeyX509Der<'static> = self
            .key
            .public_key()
            .as_der()
            .expect("SPKI serialisation of a valid key");
        der.as_ref().to_vec()
    }

    /// Returns the public key as a `PUBLIC KEY` (SPKI) PEM block, the form CCF stores in
    /// `public:ccf.gov.members.encryption_public_keys`.
    pub fn public_key_pem(&self) -> String {
        pem_encode("PUBLIC KEY", self.public_key_spki_der())
    }

    /// The modulus size.
    pub fn size_bits(&self) -> usize {
        self.key.key_size_bits()
    }

    /// Decrypts an RSA-OAEP-SHA256 ciphertext made with this key's public key.
    pub fn rsa_oaep_sha256_decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key =
            OaepPrivateDecryptingKey::new(self.key.clone()).map_err(|_| CryptoError::RsaDecrypt)?;
        let mut out = vec![0u8; key.min_output_size()];
        let len = key
            .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)
            .map_err(|_| CryptoError::RsaDecrypt)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

impl std::fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("RsaKeyPair")
            .field("size_bits", &self.size_bits())
            .finish_non_exhaustive()
    }
}

/// Checks that `public_pem` is an RSA public key usable for OAEP (as member encryption keys
/// must be) and returns its size in bits.
pub fn rsa_public_key_size_bits(public_pem: &str) -> Result<usize, CryptoError> {
    let block = pem_decode_one(public_pem, &["PUBLIC KEY"], "PUBLIC KEY")?;
    let public = PublicEncryptingKey::from_der(block.contents())
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    let key = OaepPublicEncryptingKey::new(public).map_err(|_| CryptoError::InvalidPublicKey)?;
    Ok(key.key_size_bits())
}

/// Encrypts `plaintext` to an RSA public key given as `PUBLIC KEY` (SPKI) PEM.
///
/// Fails if the key is not RSA or the plaintext is longer than OAEP-SHA256 allows
/// (`modulus_bytes - 66`, e.g. 190 bytes for RSA-2048).
pub fn rsa_oaep_sha256_encrypt(public_pem: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let block = pem_decode_one(public_pem, &["PUBLIC KEY"], "PUBLIC KEY")?;
    let public = PublicEncryptingKey::from_der(block.contents())
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    let key = OaepPublicEncryptingKey::new(public).map_err(|_| CryptoError::InvalidPublicKey)?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
        .map_err(|_| CryptoError::RsaEncrypt)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// Signs `msg` with RS256 using a PKCS#8 RSA private key (test and tooling support: coco itself
/// only verifies JWTs). Returns the signature and the key's (modulus, exponent).
pub fn sign_rs256(
    private_pkcs8_pem: &str,
    msg: &[u8],
) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>), CryptoError> {
    use aws_lc_rs::signature::KeyPair as _;
    let block = pem_decode_one(private_pkcs8_pem, &["PRIVATE KEY"], "PRIVATE KEY")?;
    let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(block.contents())
        .map_err(|_| CryptoError::InvalidPrivateKey)?;
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        msg,
        &mut sig,
    )
    .map_err(|_| CryptoError::Internal)?;
    let public = key.public_key();
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    Ok((sig, n, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oaep_round_trip_and_tamper() {
        let key = RsaKeyPair::generate(RSA_DEFAULT_SIZE_BITS).unwrap();
        assert_eq!(key.size_bits(), 2048);
        let public_pem = key.public_key_pem();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));

        assert_eq!(rsa_public_key_size_bits(&public_pem).unwrap(), 2048);
        assert!(
            rsa_public_key_size_bits(
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
            )
            .is_err()
        );
        for plaintext in [&b""[..], b"ledger secret: 32 bytes of key..", &[0xab; 190]] {
            let ct = rsa_oaep_sha256_encrypt(&public_pem, plaintext).unwrap();
            assert_eq!(ct.len(), 256);
            assert_eq!(key.rsa_oaep_sha256_decrypt(&ct).unwrap(), plaintext);
            let mut bad = ct.clone();
            bad[100] ^= 1;
            assert_eq!(
                key.rsa_oaep_sha256_decrypt(&bad),
                Err(CryptoError::RsaDecrypt)
            );
            assert_eq!(
                key.rsa_oaep_sha256_decrypt(&ct[1..]),
                Err(CryptoError::RsaDecrypt)
            );
        }
        // One byte more than OAEP-SHA256 allows for a 2048-bit modulus.
        assert_eq!(
            rsa_oaep_sha256_encrypt(&public_pem, &[0; 191]),
            Err(CryptoError::RsaEncrypt)
        );
        // Another key cannot decrypt.
        let other = RsaKeyPair::generate(2048).unwrap();
        let ct = rsa_oaep_sha256_encrypt(&public_pem, b"secret").unwrap();
        assert_eq!(
            other.rsa_oaep_sha256_decrypt(&ct),
            Err(CryptoError::RsaDecrypt)
        );
    }

    #[test]
    fn pem_round_trip() {
        let key = RsaKeyPair::generate(2048).unwrap();
        let again = RsaKeyPair::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(again.public_key_pem(), key.public_key_pem());
        let ct = rsa_oaep_sha256_encrypt(&key.public_key_pem(), b"x").unwrap();
        assert_eq!(again.rsa_oaep_sha256_decrypt(&ct).unwrap(), b"x");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            RsaKeyPair::generate(1024).unwrap_err(),
            CryptoError::UnsupportedRsaKeySize(1024)
        );
        let ec = crate::EcKeyPair::generate(crate::Curve::P256).unwrap();
        assert_eq!(
            rsa_oaep_sha256_encrypt(&ec.public_key_pem(), b"x"),
            Err(CryptoError::InvalidPublicKey)
        );
        assert!(rsa_oaep_sha256_encrypt("not pem", b"x").is_err());
        assert_eq!(
            RsaKeyPair::from_pkcs8_pem(&ec.to_pkcs8_pem()).unwrap_err(),
            CryptoError::InvalidPrivateKey
        );
    }

    /// Python `cryptography` (what CCF's client tooling uses) must be able to decrypt what we
    /// encrypt and vice versa; this vector was made by Python with the key below.
    #[test]
    fn decrypts_python_oaep_ciphertext() {
        let key = RsaKeyPair::from_pkcs8_pem(PY_RSA_PEM).unwrap();
        let ct = hex::decode(PY_OAEP_CT_HEX).unwrap();
        assert_eq!(
            key.rsa_oaep_sha256_decrypt(&ct).unwrap(),
            b"coco ledger secret"
        );
    }

    const PY_RSA_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCwQOoTJq4UJz3Z\n\
pDh99JePw4SxgILfrRyzSBKDTp/WItMPbbB+48cFleTjo8oQdkpJNsbPvSIGrAM9\n\
fq2K6lUAvTOkyu8+as3W3g/9VAsm4voSziZi4rA8u4TjaR/w2YfraM7ghpljSxJd\n\
xtEK/fnvBLed56uedtAQh8zUg7+PlhVQMxg4UMsbZ/Y53tN1cNEqc9H8QJ9HVQuv\n\
irMWm9jkKhnOI60hWH8fbO6LsQ398ME+rUM9n0qC0y14s+ucmB2Hq3kIPU30dVAg\n\
aB9lFyqhJpG/Qb7R7s8W2xZHY5+JX51J8JfMNc9K4ZnOAXFaAgjm4ZmvlJqqHzeu\n\
z27vUDjpAgMBAAECggEAFBWRltUViR5foelgtpmkm7E/8aofP7XOS2+vDF9tP02A\n\
l4V8UzlJeI14I6iKYg3YsTcYuJtowTHgvKUuyWGihg8JT4IAeTBafF2ZnNhy3N+I\n\
d5QeM655PrJvlipohV2Ea4Lp8BPmbrYjRaReNc5zKJV1Bv1bRRds5jVTVfQdZBMZ\n\
nAJCI2kVqX8pB1M00X9xgDZTjgDOsPQ257kcquYvRfKl4FzvDnUOgeQt8cspCM5m\n\
xojGfoKKDqXodfsDlYfbLhaPqVUsEp/dc3xd6ZxR2zne9GSVKMIZBgg4DXmkMHWU\n\
t0jLYWEtJRkYVjdpC5D3Ob2Z/TUKioWccaAgYDnjsQKBgQDjkplybuVS86YlDeRa\n\
C1x2cZ1WMv1wGM4a8gMSFr2bxibKv6FDKmlb9m3K98cirohi2NyDuobq+ds3B7DO\n\
E0w49BQuE5qOeKtQIYOgFiG/uj7hvITlNc5clqZnoCMKRIkzX7cu/e79HDZMdhiN\n\
dbWTaCNqDEh/GxzH3/6fw8wuAwKBgQDGRTb8Y24syfCf/4tEMDTiwVhXtnb9wj25\n\
WL9JGzGrWxoTlMoCdgn6vwyVC05Ueyr0PGvLMRAga31Fsx8IrPdnUiA2zYdGsHHU\n\
jSi7++zvPJ0FOIEDYpAAI77TeuesXrE24JL+U8+UIHgbl9DIXbdz5N4k2Ktp3kI7\n\
dG9i+LRPowKBgQCNrbosfQ/2WcwpK4Hr8UDKWKdsf+g6vqaqLdttiozXC0EhXrZm\n\
G2RmpX/rKeFnHSO57msy85CFf7JTi00uruL4XjSmDvxdEJEPHR5WLxEpzSjS3swZ\n\
6yqjiALnZtIJ1WtZeZCRB/Sezc6cQbW9c/fsYpwRrL4Bq/56DWD3VC2swwKBgDyx\n\
p3lvfqSbVNvFwH4pO6dGhKKlKpvXwEliz3uzpWrNQphH7eb+92MY5OMjSOE3qxiE\n\
/oJ/DG7AOOMDSDbBrCKm01GzbPvIu6/TXmrdXdSGe5LDj0rX+zjvuFTIxO7RNfKU\n\
oKrWQS8ZGWto9/K+LZB+uToSUbbg4OmOZSKo+5l9AoGBAKuqwzFexKIZbHiDbWQk\n\
z2iWcbfQsizA69zran7eW91TspbcpEt+ZSY9xPEiczklAH4Bs+5u4ZOPWAJv1iJE\n\
QFdzTGn5x37DM2FJZggvU6jeAC65/dxPZyFGgrE/u/vhCB/2NoN0Ayc4h1VjSzD3\n\
WMU7pMjCley+Fr9KWB0hnb1A\n\
-----END PRIVATE KEY-----\n";
    const PY_OAEP_CT_HEX: &str = "105a7343a496602eb4580c733f2e81b33ea5ab0224990c6a99212031249d3af8da5a207e40c2a602e4e345f39b99230cb476413bd6cf3289cc9393e6fabaa93a4a7f0da9ef6bbcdcecebf37f3cd4eea32a0d7275df16d35b1471b15fc536730c1f5a3acc04ec06965cc862cdf083f4271913641e35649848c92072b9af49ee1485eebf19f5505b265856876d9d1fdd13b9fb95fd2a135f1bd006c4b6189c0ed40adefbe87e71386e2f76fa3ef45b8f713d8634d9eb77a044979cbc53ab7e12b82505141cfd036d4d3b589bdb2c013e7784ab2aa4f7ab99fc4cccef40e1f31c19a85b2aac0ab2fe76499affb4b56d72ac6d6157b0709f8a2f3a510206c23d8733";
}

//! Elliptic-curve keys (P-256, P-384) and the three ECDSA signature shapes CCF uses.
//!
//! | Operation | Hash | Encoding | Where CCF uses it |
//! |---|---|---|---|
//! | [`EcKeyPair::sign_prehashed_sha256_der`] | none: the 32 input bytes *are* the digest | DER `ECDSA-Sig-Value` | node signature over the Merkle root in `ccf.internal.signatures` (`src/node/history.h`, `kp.sign_hash`); Python verifies with `ECDSA(Prehashed(SHA256()))` |
//! | [`EcKeyPair::sign_cose`] | the curve's COSE hash (ES256: SHA-256, ES384: SHA-384) | fixed `r ‖ s` (RFC 9053 §2.1) | COSE_Sign1 by the service key in `ccf.internal.cose_signatures`, governance COSE requests |
//! | [`verify_der`] | the curve's own hash | DER | TLS-style checks and certificate signatures |
//!
//! Public keys cross module boundaries as DER `SubjectPublicKeyInfo` (SPKI), because CCF derives
//! node ids and COSE key ids from exactly those bytes.
//!
//! # Prehashed SHA-256 on P-384
//!
//! CCF's node keys are P-384 but the value signed is a 32-byte SHA-256 Merkle root. OpenSSL's
//! `EVP_PKEY_sign` takes it as a digest and ECDSA converts it to the integer `e` (a 32-byte
//! digest is shorter than the 48-byte group order, so no truncation happens). aws-lc-rs only
//! signs digests of the key's own hash size, so we left-pad the 32 bytes with 16 zero bytes and
//! present them as a SHA-384 digest: the big-endian integer is the same `e`, so the signature is
//! exactly an ECDSA signature of the prehashed SHA-256 value. The test
//! `prehashed_verifies_with_independent_implementation` checks this against RustCrypto's
//! `p384` crate.

use aws_lc_rs::digest::{Digest, SHA256, SHA384};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair as _,
    UnparsedPublicKey,
};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::CryptoError;
use crate::cert::{pem_decode_one, pem_encode};

/// The curves CCF uses for node, service, member and user identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Curve {
    /// NIST P-256 (secp256r1), paired with SHA-256 / COSE ES256.
    P256,
    /// NIST P-384 (secp384r1), CCF's default, paired with SHA-384 / COSE ES384.
    P384,
}

impl Curve {
    /// The COSE algorithm identifier of ECDSA on this curve with its natural hash (RFC 9053).
    pub fn cose_alg(self) -> i64 {
        match self {
            Curve::P256 => -7,
            Curve::P384 => -35,
        }
    }

    /// Size of one scalar (and so half of a fixed `r ‖ s` signature).
    pub fn scalar_size_bytes(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    fn asn1_signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        }
    }

    fn fixed_signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        }
    }

    fn asn1_verification(self) -> &'static EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1,
        }
    }

    fn fixed_verification(self) -> &'static EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        }
    }

    pub(crate) fn rcgen_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Curve::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Curve::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    /// Presents a 32-byte prehashed SHA-256 value as a digest aws-lc accepts for this curve
    /// (see the module docs for why zero-padding preserves the signed integer).
    fn prehashed_sha256_digest(self, digest: &[u8; 32]) -> Digest {
        let imported = match self {
            Curve::P256 => Digest::import_less_safe(digest, &SHA256),
            Curve::P384 => {
                let mut padded = [0u8; 48];
                padded[16..].copy_from_slice(digest);
                Digest::import_less_safe(&padded, &SHA384)
            }
        };
        // Lengths match the algorithms by construction.
        imported.expect("digest length matches its algorithm")
    }
}

/// An ECDSA key pair on [`Curve::P256`] or [`Curve::P384`].
///
/// It holds the key twice inside aws-lc (once for DER and once for fixed-size signatures)
/// because aws-lc-rs binds the signature encoding to the key object.
pub struct EcKeyPair {
    curve: Curve,
    asn1: EcdsaKeyPair,
    fixed: EcdsaKeyPair,
}

impl EcKeyPair {
    /// Generates a fresh key pair with aws-lc's CSPRNG.
    pub fn generate(curve: Curve) -> Result<Self, CryptoError> {
        let asn1 =
            EcdsaKeyPair::generate(curve.asn1_signing()).map_err(|_| CryptoError::Internal)?;
        let pkcs8 = asn1.to_pkcs8v1().map_err(|_| CryptoError::Internal)?;
        let fixed = EcdsaKeyPair::from_pkcs8(curve.fixed_signing(), pkcs8.as_ref())
            .map_err(|_| CryptoError::Internal)?;
        Ok(Self { curve, asn1, fixed })
    }

    /// Parses a `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1 / RFC 5915) PEM block, as
    /// written by OpenSSL, Python `cryptography` or [`EcKeyPair::to_pkcs8_pem`].
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, CryptoError> {
        let block = pem_decode_one(pem_text, &["PRIVATE KEY", "EC PRIVATE KEY"], "PRIVATE KEY")?;
        if block.tag() == "PRIVATE KEY" {
            Self::from_pkcs8_der(block.contents())
        } else {
            Self::from_sec1_der(block.contents())
        }
    }

    /// Parses a DER PKCS#8 `PrivateKeyInfo` holding a P-256 or P-384 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        for curve in [Curve::P384, Curve::P256] {
            if let Ok(asn1) = EcdsaKeyPair::from_pkcs8(curve.asn1_signing(), der) {
                let fixed = EcdsaKeyPair::from_pkcs8(curve.fixed_signing(), der)
                    .map_err(|_| CryptoError::InvalidPrivateKey)?;
                return Ok(Self { curve, asn1, fixed });
            }
        }
        Err(CryptoError::InvalidPrivateKey)
    }

    fn from_sec1_der(der: &[u8]) -> Result<Self, CryptoError> {
        for curve in [Curve::P384, Curve::P256] {
            if let Ok(asn1) = EcdsaKeyPair::from_private_key_der(curve.asn1_signing(), der) {
                let pkcs8 = asn1
                    .to_pkcs8v1()
                    .map_err(|_| CryptoError::InvalidPrivateKey)?;
                return Self::from_pkcs8_der(pkcs8.as_ref());
            }
        }
        Err(CryptoError::InvalidPrivateKey)
    }

    /// Returns the private key as a PKCS#8 `PRIVATE KEY` PEM block.
    pub fn to_pkcs8_pem(&self) -> String {
        pem_encode("PRIVATE KEY", self.to_pkcs8_der())
    }

    /// Returns the private key as DER PKCS#8 (v1, as OpenSSL writes it).
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.asn1
            .to_pkcs8v1()
            // Serialising a key aws-lc already holds cannot fail short of memory exhaustion.
            .expect("PKCS#8 serialisation of a valid key")
            .as_ref()
            .to_vec()
    }

    /// Returns the public key as DER `SubjectPublicKeyInfo`.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        let der: PublicKeyX509Der<'static> = self
            .asn1
            .public_key()
            .as_der()
            .expect("SPKI serialisation of a valid key");
        der.as_ref().to_vec()
    }

    /// Returns the public key as a `PUBLIC KEY` (SPKI) PEM block.
    pub fn public_key_pem(&self) -> String {
        pem_encode("PUBLIC KEY", self.public_key_spki_der())
    }

    /// Returns the uncompressed SEC1 point (`04 ‖ x ‖ y`), as used by COSE keys and rcgen.
    pub fn public_key_sec1_uncompressed(&self) -> &[u8] {
        self.asn1.public_key().as_ref()
    }

    /// The curve of this key.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The COSE algorithm of [`EcKeyPair::sign_cose`]: -7 (ES256) or -35 (ES384).
    pub fn cose_alg(&self) -> i64 {
        self.curve.cose_alg()
    }

    /// Signs a 32-byte value taken as an already-computed SHA-256 digest; returns DER.
    ///
    /// This is how CCF nodes sign Merkle roots (see the module docs).
    pub fn sign_prehashed_sha256_der(&self, digest: &[u8; 32]) -> Vec<u8> {
        let digest = self.curve.prehashed_sha256_digest(digest);
        self.asn1
            .sign_digest(&digest)
            .expect("ECDSA signing with a valid key")
            .as_ref()
            .to_vec()
    }

    /// Signs `msg` with the curve's COSE hash and returns the fixed-size `r ‖ s` encoding.
    pub fn sign_cose(&self, msg: &[u8]) -> Vec<u8> {
        self.fixed
            .sign(&SystemRandom::new(), msg)
            .expect("ECDSA signing with a valid key")
            .as_ref()
            .to_vec()
    }

    /// Signs `msg` with the curve's own hash and returns DER, as in X.509 and TLS.
    pub fn sign_der(&self, msg: &[u8]) -> Vec<u8> {
        self.asn1
            .sign(&SystemRandom::new(), msg)
            .expect("ECDSA signing with a valid key")
            .as_ref()
            .to_vec()
    }
}

impl std::fmt::Debug for EcKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("EcKeyPair")
            .field("curve", &self.curve)
            .field("public_key_spki", &hex::encode(self.public_key_spki_der()))
            .finish_non_exhaustive()
    }
}

/// Lets rcgen sign certificates with our key without ever exporting it.
impl rcgen::PublicKeyData for EcKeyPair {
    fn der_bytes(&self) -> &[u8] {
        self.public_key_sec1_uncompressed()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.curve.rcgen_algorithm()
    }
}

impl rcgen::SigningKey for EcKeyPair {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.sign_der(msg))
    }
}

/// Returns the curve of an EC `SubjectPublicKeyInfo`, rejecting anything else (RSA keys,
/// other curves, trailing bytes, raw points without the SPKI wrapper).
pub fn spki_curve(spki_der: &[u8]) -> Result<Curve, CryptoError> {
    let (rest, spki) =
        SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| CryptoError::InvalidPublicKey)?;
    if !rest.is_empty() || spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(CryptoError::InvalidPublicKey);
    }
    let curve_oid = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .ok_or(CryptoError::InvalidPublicKey)?;
    if curve_oid == OID_EC_P256 {
        Ok(Curve::P256)
    } else if curve_oid == OID_NIST_EC_P384 {
        Ok(Curve::P384)
    } else {
        Err(CryptoError::InvalidPublicKey)
    }
}

/// Verifies a DER signature made by [`EcKeyPair::sign_prehashed_sha256_der`] (or by CCF's
/// `sign_hash`, or Python's `ECDSA(Prehashed(SHA256()))`) over the 32-byte `digest`.
pub fn verify_prehashed_sha256_der(
    spki_der: &[u8],
    digest: &[u8; 32],
    sig_der: &[u8],
) -> Result<(), CryptoError> {
    let curve = spki_curve(spki_der)?;
    UnparsedPublicKey::new(curve.asn1_verification(), spki_der)
        .verify_digest(&curve.prehashed_sha256_digest(digest), sig_der)
        .map_err(|_| CryptoError::BadSignature)
}

/// Verifies a fixed-size `r ‖ s` signature over `msg` with the curve's COSE hash (ES256/ES384).
pub fn verify_cose(spki_der: &[u8], msg: &[u8], sig_fixed: &[u8]) -> Result<(), CryptoError> {
    let curve = spki_curve(spki_der)?;
    UnparsedPublicKey::new(curve.fixed_verification(), spki_der)
        .verify(msg, sig_fixed)
        .map_err(|_| CryptoError::BadSignature)
}

/// Verifies a DER signature over `msg` with the curve's own hash (SHA-256 for P-256, SHA-384
/// for P-384).
pub fn verify_der(spki_der: &[u8], msg: &[u8], sig_der: &[u8]) -> Result<(), CryptoError> {
    let curve = spki_curve(spki_der)?;
    UnparsedPublicKey::new(curve.asn1_verification(), spki_der)
        .verify(msg, sig_der)
        .map_err(|_| CryptoError::BadSignature)
}

/// Verifies a DER ECDSA signature with an explicitly chosen hash (for certificates, whose
/// signature algorithm names the hash independently of the key's curve).
pub(crate) fn verify_der_with_hash(
    spki_der: &[u8],
    hash_size_bytes: usize,
    msg: &[u8],
    sig_der: &[u8],
) -> Result<(), CryptoError> {
    let curve = spki_curve(spki_der)?;
    let algorithm: &'static EcdsaVerificationAlgorithm = match (curve, hash_size_bytes) {
        (Curve::P256, 32) => &signature::ECDSA_P256_SHA256_ASN1,
        (Curve::P256, 48) => &signature::ECDSA_P256_SHA384_ASN1,
        (Curve::P384, 32) => &signature::ECDSA_P384_SHA256_ASN1,
        (Curve::P384, 48) => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return Err(CryptoError::BadSignature),
    };
    UnparsedPublicKey::new(algorithm, spki_der)
        .verify(msg, sig_der)
        .map_err(|_| CryptoError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{rsa::RsaKeyPair, sha256};

    const CURVES: [Curve; 2] = [Curve::P256, Curve::P384];

    #[test]
    fn sign_verify_round_trips() {
        for curve in CURVES {
            let key = EcKeyPair::generate(curve).unwrap();
            let spki = key.public_key_spki_der();
            assert_eq!(spki_curve(&spki), Ok(curve));
            let digest = sha256(b"merkle root");

            let sig = key.sign_prehashed_sha256_der(&digest);
            verify_prehashed_sha256_der(&spki, &digest, &sig).unwrap();

            let sig = key.sign_cose(b"cose payload");
            assert_eq!(sig.len(), 2 * curve.scalar_size_bytes());
            verify_cose(&spki, b"cose payload", &sig).unwrap();

            let sig = key.sign_der(b"tls transcript");
            verify_der(&spki, b"tls transcript", &sig).unwrap();
        }
    }

    /// Each verifier must reject: another message, another key, a flipped signature byte, a
    /// signature of the other shape, and garbage.
    #[test]
    fn verification_rejects_tampering() {
        for curve in CURVES {
            let key = EcKeyPair::generate(curve).unwrap();
            let other = EcKeyPair::generate(curve).unwrap();
            let spki = key.public_key_spki_der();
            let other_spki = other.public_key_spki_der();
            let digest = sha256(b"root");
            let mut other_digest = digest;
            other_digest[31] ^= 1;

            let pre = key.sign_prehashed_sha256_der(&digest);
            let cose = key.sign_cose(b"msg");
            let der = key.sign_der(b"msg");
            let flip = |s: &[u8], i: usize| {
                let mut s = s.to_vec();
                s[i] ^= 0x01;
                s
            };

            type Check<'a> = (&'a str, Result<(), CryptoError>);
            let cases: Vec<Check> = vec![
                (
                    "pre other digest",
                    verify_prehashed_sha256_der(&spki, &other_digest, &pre),
                ),
                (
                    "pre other key",
                    verify_prehashed_sha256_der(&other_spki, &digest, &pre),
                ),
                (
                    "pre flipped",
                    verify_prehashed_sha256_der(&spki, &digest, &flip(&pre, pre.len() - 1)),
                ),
                (
                    "pre given fixed",
                    verify_prehashed_sha256_der(&spki, &digest, &cose),
                ),
                (
                    "pre empty",
                    verify_prehashed_sha256_der(&spki, &digest, &[]),
                ),
                ("cose other msg", verify_cose(&spki, b"msh", &cose)),
                ("cose other key", verify_cose(&other_spki, b"msg", &cose)),
                ("cose flipped", verify_cose(&spki, b"msg", &flip(&cose, 5))),
                ("cose given der", verify_cose(&spki, b"msg", &der)),
                ("cose truncated", verify_cose(&spki, b"msg", &cose[1..])),
                ("der other msg", verify_der(&spki, b"msh", &der)),
                ("der other key", verify_der(&other_spki, b"msg", &der)),
                (
                    "der flipped",
                    verify_der(&spki, b"msg", &flip(&der, der.len() - 2)),
                ),
                ("der given fixed", verify_der(&spki, b"msg", &cose)),
            ];
            for (name, result) in cases {
                assert_eq!(result, Err(CryptoError::BadSignature), "{curve:?} {name}");
            }
            // On P-256 a prehashed SHA-256 signature *is* an ordinary signature of the message
            // (same hash); on P-384 the curve's own hash is SHA-384, so it is not.
            let as_message = verify_der(&spki, b"root", &pre);
            match curve {
                Curve::P256 => assert_eq!(as_message, Ok(())),
                Curve::P384 => assert_eq!(as_message, Err(CryptoError::BadSignature)),
            }
        }
    }

    #[test]
    fn bad_public_keys_are_errors() {
        let rsa = RsaKeyPair::generate(2048).unwrap();
        let ec = EcKeyPair::generate(Curve::P256).unwrap();
        let mut trailing = ec.public_key_spki_der();
        trailing.push(0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("garbage", vec![0x30, 0x03, 0x01, 0x02, 0x03]),
            ("raw point", ec.public_key_sec1_uncompressed().to_vec()),
            ("rsa spki", rsa.public_key_spki_der()),
            ("trailing byte", trailing),
        ];
        for (name, spki) in cases {
            assert_eq!(
                spki_curve(&spki),
                Err(CryptoError::InvalidPublicKey),
                "{name}"
            );
            assert_eq!(
                verify_der(&spki, b"m", &[0x30, 0x00]),
                Err(CryptoError::InvalidPublicKey),
                "{name}"
            );
        }
    }

    #[test]
    fn pem_round_trips() {
        for curve in CURVES {
            let key = EcKeyPair::generate(curve).unwrap();
            let pem = key.to_pkcs8_pem();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let again = EcKeyPair::from_pkcs8_pem(&pem).unwrap();
            assert_eq!(again.curve(), curve);
            assert_eq!(again.public_key_spki_der(), key.public_key_spki_der());
            assert!(
                key.public_key_pem()
                    .starts_with("-----BEGIN PUBLIC KEY-----")
            );
            // A signature by the reloaded key verifies under the original public key.
            let sig = again.sign_cose(b"x");
            verify_cose(&key.public_key_spki_der(), b"x", &sig).unwrap();
            assert_eq!(key.cose_alg(), curve.cose_alg());
        }
        assert_eq!(Curve::P256.cose_alg(), -7);
        assert_eq!(Curve::P384.cose_alg(), -35);
    }

    #[test]
    fn bad_private_keys_are_errors() {
        let rsa_pem = RsaKeyPair::generate(2048).unwrap().to_pkcs8_pem();
        let cases = [
            ("empty", String::new()),
            ("not pem", "hello".to_string()),
            (
                "wrong label",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string(),
            ),
            (
                "bad base64",
                "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".to_string(),
            ),
            (
                "garbage der",
                "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n".to_string(),
            ),
            ("rsa key", rsa_pem),
        ];
        for (name, pem) in cases {
            assert!(EcKeyPair::from_pkcs8_pem(&pem).is_err(), "{name}");
        }
    }

    /// A P-384 key and prehashed signature produced by Python `cryptography` (the library CCF's
    /// Python tooling verifies ledgers with), generated once with:
    ///
    /// ```python
    /// k = ec.generate_private_key(ec.SECP384R1())
    /// d = hashlib.sha256(b"coco").digest()
    /// sig = k.sign(d, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    /// ```
    #[test]
    fn verifies_python_prehashed_p384_signature() {
        let spki = hex::decode(PY_P384_SPKI_HEX).unwrap();
        let sig = hex::decode(PY_P384_PREHASHED_SIG_HEX).unwrap();
        let digest = sha256(b"coco");
        verify_prehashed_sha256_der(&spki, &digest, &sig).unwrap();
        let mut wrong = digest;
        wrong[0] ^= 0x80;
        assert_eq!(
            verify_prehashed_sha256_der(&spki, &wrong, &sig),
            Err(CryptoError::BadSignature)
        );
        // The Python SEC1-encoded private key loads too and signs compatibly.
        let key = EcKeyPair::from_pkcs8_pem(PY_P384_SEC1_PEM).unwrap();
        assert_eq!(key.public_key_spki_der(), spki);
        let ours = key.sign_prehashed_sha256_der(&digest);
        verify_prehashed_sha256_der(&spki, &digest, &ours).unwrap();
    }

    /// Independent check of the zero-padding argument in the module docs: RustCrypto's `p384`
    /// and `p256` verify our signatures as prehashed 32-byte digests.
    #[test]
    fn prehashed_verifies_with_independent_implementation() {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        use p256::pkcs8::DecodePublicKey as _;

        for i in 0u8..8 {
            let digest = sha256(&[i]);

            let key = EcKeyPair::generate(Curve::P384).unwrap();
            let sig_der = key.sign_prehashed_sha256_der(&digest);
            let vk =
                p384::ecdsa::VerifyingKey::from_public_key_der(&key.public_key_spki_der()).unwrap();
            let sig = p384::ecdsa::Signature::from_der(&sig_der).unwrap();
            vk.verify_prehash(&digest, &sig).unwrap();
            let mut wrong = digest;
            wrong[i as usize] ^= 1;
            assert!(vk.verify_prehash(&wrong, &sig).is_err());

            let key = EcKeyPair::generate(Curve::P256).unwrap();
            let sig_der = key.sign_prehashed_sha256_der(&digest);
            let vk =
                p256::ecdsa::VerifyingKey::from_public_key_der(&key.public_key_spki_der()).unwrap();
            let sig = p256::ecdsa::Signature::from_der(&sig_der).unwrap();
            vk.verify_prehash(&digest, &sig).unwrap();
        }
    }

    /// COSE signatures must be plain ES384/ES256 over the message, checked independently.
    #[test]
    fn cose_verifies_with_independent_implementation() {
        use p256::ecdsa::signature::Verifier as _;
        use p256::pkcs8::DecodePublicKey as _;

        let key = EcKeyPair::generate(Curve::P384).unwrap();
        let sig = key.sign_cose(b"to be signed");
        let vk =
            p384::ecdsa::VerifyingKey::from_public_key_der(&key.public_key_spki_der()).unwrap();
        let sig = p384::ecdsa::Signature::from_slice(&sig).unwrap();
        vk.verify(b"to be signed", &sig).unwrap();

        let key = EcKeyPair::generate(Curve::P256).unwrap();
        let sig = key.sign_cose(b"to be signed");
        let vk =
            p256::ecdsa::VerifyingKey::from_public_key_der(&key.public_key_spki_der()).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        vk.verify(b"to be signed", &sig).unwrap();
    }

    const PY_P384_SPKI_HEX: &str = "3076301006072a8648ce3d020106052b81040022036200046387bcbe078b83a3291868f84ef3d8480afd31c866ff40bf46314ce84aa82f32471fda45289959089e2a9c8ab09c50db2cc8e449cb6e4c379d108f954711ec9bd4f0fe5535f7e1f89dcaf447765a060a4db6399da4b082fa47d88d61b35ddd09";
    const PY_P384_PREHASHED_SIG_HEX: &str = "3066023100e9d0ca455e52e4700566edd3270bf2cb7638b3f62bf8f0938c94805ee4af1f8ab80ce06de6f3f20e1770c79d08b934ec023100f9acc4867c3bec4176a68053da7098257f2a62bf9c402c06888a67c03915f441a08a982e54f621d8a48833e723a8d595";
    const PY_P384_SEC1_PEM: &str = "-----BEGIN EC PRIVATE KEY-----\n\
MIGkAgEBBDBIOlADjjKPHQh0VTV1Kzg8udQ40FaE3h55HJ67vwMSp3JmUQXlRb8L\n\
Zb6cbGlqj9ygBwYFK4EEACKhZANiAARjh7y+B4uDoykYaPhO89hICv0xyGb/QL9G\n\
MUzoSqgvMkcf2kUomVkIniqcirCcUNssyORJy25MN50Qj5VHEeyb1PD+VTX34fid\n\
yvRHdloGCk22OZ2ksIL6R9iNYbNd3Qk=\n\
-----END EC PRIVATE KEY-----\n\
";
}

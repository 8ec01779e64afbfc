//! The one crate of coco that links cryptographic libraries.
//!
//! Every primitive CCF's ledger, governance and TLS layers need lives here, behind small
//! functions whose byte formats match what CCF (C++, OpenSSL) and its Python tooling
//! (`cryptography`) produce and accept. Everything else in coco depends on this crate instead of
//! on `aws-lc-rs`, `rcgen` or `x509-parser` directly, so the crypto surface is reviewable in one
//! place.
//!
//! | Module | What | CCF source of the convention |
//! |---|---|---|
//! | [`hash`] | SHA-256, incremental SHA-256, HMAC-SHA256 | `src/crypto/sha256_hash.cpp`, `src/crypto/hmac.cpp` |
//! | [`aead`] | AES-256-GCM with caller-chosen IV and detached tag | `src/crypto/symmetric_key.cpp`, `src/node/encryptor.h` |
//! | [`ec`] | P-256/P-384 keys; prehashed, COSE and DER ECDSA | `src/crypto/openssl/key_pair.cpp`, `src/node/history.h` |
//! | [`rsa`] | RSA keys and RSA-OAEP-SHA256 wrapping | `src/crypto/openssl/rsa_key_pair.cpp`, `src/node/share_manager.h` |
//! | [`cert`] | X.509 generation (rcgen) and parsing (x509-parser), fingerprints | `src/crypto/certs.h`, `src/node/identity.h` |
//! | [`jws`] | JWT issuer keys as SPKI DER (from JWK `n`/`e`, `crv`/`x`/`y`, `x5c`), RS256/ES256/ES384 | `src/node/rpc/jwt_management.h`, `src/http/http_jwt.h` |
//! | [`sharing`] | recovery shares: per-limb Shamir over GF(2^31−1), wrapping key, wrapped ledger secret | `src/crypto/sharing.{h,cpp}`, `src/node/share_manager.h` |
//! | [`issuance`] | CSRs, endorsement and renewal by governance, CCF time strings | `src/js/extensions/ccf/network.cpp`, `include/ccf/ds/x509_time_fmt.h` |
//!
//! **Architecture invariant:** this crate never reads a clock or a file. Certificate validity is
//! always an explicit argument. Key generation and ECDSA nonces use aws-lc's internal CSPRNG,
//! which is the only source of randomness here (aws-lc-rs offers no way to inject one); nothing
//! else in the crate is non-deterministic, so certificate serial numbers are derived from their
//! contents.
//!
//! Bad input (malformed PEM/DER, wrong key type, invalid signature) always yields a
//! [`CryptoError`], never a panic.

pub mod aead;
pub mod cert;
pub mod ec;
mod error;
pub mod hash;
pub mod issuance;
pub mod jws;
pub mod rsa;
pub mod sharing;

pub use aead::{AesGcmKey, GCM_IV_SIZE_BYTES, GCM_KEY_SIZE_BYTES, GCM_TAG_SIZE_BYTES};
pub use cert::{
    SubjectAltName, Validity, cert_der_fingerprint_hex, cert_public_key_spki_der, cert_validity,
    der_to_pem_cert, endorsed_cert, pem_to_der_certs, self_signed_ca_cert, self_signed_cert,
    spki_der_to_pem, spki_fingerprint_hex, verify_cert_signed_by,
};
pub use ec::{Curve, EcKeyPair, spki_curve, verify_cose, verify_der, verify_prehashed_sha256_der};
pub use error::CryptoError;
pub use hash::{
    Drbg, HMAC_SHA256_SIZE_BYTES, HmacSha256Key, SHA256_SIZE_BYTES, Sha256, hkdf_sha256,
    hmac_sha256, random_bytes, sha256,
};
pub use issuance::{
    certificate_signing_request, csr_public_key_spki_der, endorse_csr,
    endorse_previous_service_cert, format_ccf_time, parse_ccf_time, renew_self_signed_ca_cert,
    validity_for_days,
};
pub use jws::{ec_spki_der, rsa_spki_der, verify_jws, x5c_spki_der};
pub use rsa::{
    RSA_DEFAULT_SIZE_BITS, RsaKeyPair, rsa_oaep_sha256_encrypt, rsa_public_key_size_bits,
    sign_rs256,
};

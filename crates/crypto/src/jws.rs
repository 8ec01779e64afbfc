//! Public keys of JWT issuers and JWS signature verification.
//!
//! CCF stores each JWT signing key as the DER `SubjectPublicKeyInfo` of the key a JWK describes
//! (`public:ccf.gov.jwt.public_signing_keys_metadata_v2`, built by `src/node/rpc/jwt_management.h`
//! from RSA `n`/`e`, EC `crv`/`x`/`y`, or the first certificate of `x5c`). These functions build
//! those DER keys and verify tokens against them.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, ParsedPublicKey};

use crate::CryptoError;
use crate::cert::cert_public_key_spki_der;
use crate::ec::{Curve, spki_curve};

/// The SPKI DER of an RSA public key given as JWK components (`n`, `e`: big-endian bytes).
pub fn rsa_spki_der(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let components = signature::RsaPublicKeyComponents {
        n: modulus,
        e: exponent,
    };
    let der = components
        .as_der()
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    Ok(der.as_ref().to_vec())
}

/// DER prefixes of `SubjectPublicKeyInfo` for id-ecPublicKey on P-256 / P-384 with an uncompressed
/// point (RFC 5480): the point `04 ‖ x ‖ y` follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

/// The SPKI DER of an EC public key given as JWK coordinates; `crv` is the JWK curve name
/// (`P-256` or `P-384`). The point must lie on the curve.
pub fn ec_spki_der(crv: &str, x: &[u8], y: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (prefix, size, verification): (
        &[u8],
        usize,
        &'static signature::EcdsaVerificationAlgorithm,
    ) = match crv {
        "P-256" => (&P256_SPKI_PREFIX, 32, &signature::ECDSA_P256_SHA256_FIXED),
        "P-384" => (&P384_SPKI_PREFIX, 48, &signature::ECDSA_P384_SHA384_FIXED),
        _ => return Err(CryptoError::InvalidPublicKey),
    };
    if x.len() != size || y.len() != size {
        return Err(CryptoError::InvalidPublicKey);
    }
    let mut der = Vec::with_capacity(prefix.len() + 1 + 2 * size);
    der.extend_from_slice(prefix);
    der.push(0x04);
    der.extend_from_slice(x);
    der.extend_from_slice(y);
    // Parsing checks that the point is on the curve.
    ParsedPublicKey::new(verification, &der).map_err(|_| CryptoError::InvalidPublicKey)?;
    Ok(der)
}

/// The SPKI DER of the key in a certificate (a JWK's `x5c[0]`, DER).
pub fn x5c_spki_der(cert_der: &[u8]) -> Result<Vec<u8>, CryptoError> {
    cert_public_key_spki_der(cert_der)
}

/// Verifies a JWS signature (`alg` as in the JOSE header) over `signing_input` with a key given as
/// SPKI DER: RS256 (RSASSA-PKCS1-v1_5, SHA-256, 2048–8192-bit keys), ES256 (P-256) and ES384
/// (P-384) with fixed-size `r ‖ s` signatures.
pub fn verify_jws(
    spki_der: &[u8],
    alg: &str,
    signing_input: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    let verification: &'static dyn signature::VerificationAlgorithm = match alg {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "ES256" if spki_curve(spki_der) == Ok(Curve::P256) => &signature::ECDSA_P256_SHA256_FIXED,
        "ES384" if spki_curve(spki_der) == Ok(Curve::P384) => &signature::ECDSA_P384_SHA384_FIXED,
        _ => return Err(CryptoError::UnsupportedSignatureAlgorithm(alg.to_owned())),
    };
    let key =
        ParsedPublicKey::new(verification, spki_der).map_err(|_| CryptoError::InvalidPublicKey)?;
    key.verify_sig(signing_input, sig)
        .map_err(|_| CryptoError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec::EcKeyPair;
    use crate::rsa::{RsaKeyPair, sign_rs256};

    #[test]
    fn rsa_components_round_trip_to_the_keys_own_spki() {
        let key = RsaKeyPair::generate(2048).unwrap();
        let (sig, n, e) = sign_rs256(&key.to_pkcs8_pem(), b"h.p").unwrap();
        let der = rsa_spki_der(&n, &e).unwrap();
        assert_eq!(der, key.public_key_spki_der());
        verify_jws(&der, "RS256", b"h.p", &sig).unwrap();
        assert_eq!(
            verify_jws(&der, "RS256", b"h.q", &sig),
            Err(CryptoError::BadSignature)
        );
        assert!(verify_jws(&der, "ES256", b"h.p", &sig).is_err());
        assert!(verify_jws(&der, "none", b"h.p", &sig).is_err());
        assert!(rsa_spki_der(&[], &e).is_err());
    }

    #[test]
    fn ec_coordinates_round_trip_to_the_keys_own_spki() {
        for (curve, crv, alg) in [
            (Curve::P256, "P-256", "ES256"),
            (Curve::P384, "P-384", "ES384"),
        ] {
            let key = EcKeyPair::generate(curve).unwrap();
            let point = key.public_key_sec1_uncompressed();
            let size = (point.len() - 1) / 2;
            let (x, y) = (&point[1..1 + size], &point[1 + size..]);
            let der = ec_spki_der(crv, x, y).unwrap();
            assert_eq!(der, key.public_key_spki_der(), "{crv}");
            let sig = key.sign_cose(b"h.p");
            verify_jws(&der, alg, b"h.p", &sig).unwrap();
            assert!(verify_jws(&der, alg, b"h.P", &sig).is_err());
            assert!(verify_jws(&der, "RS256", b"h.p", &sig).is_err());
            // A point off the curve, the wrong curve name, truncated coordinates.
            let mut bad_y = y.to_vec();
            bad_y[size - 1] ^= 1;
            assert!(ec_spki_der(crv, x, &bad_y).is_err());
            assert!(ec_spki_der("P-521", x, y).is_err());
            assert!(ec_spki_der(crv, &x[1..], y).is_err());
        }
        // ES256 with a P-384 key is refused (the algorithm fixes the curve).
        let key = EcKeyPair::generate(Curve::P384).unwrap();
        let sig = key.sign_cose(b"m");
        assert!(verify_jws(&key.public_key_spki_der(), "ES256", b"m", &sig).is_err());
    }
}

//! X.509 certificates: generation (rcgen), parsing (x509-parser), fingerprints, and PEM helpers.
//!
//! The identities CCF builds (`src/node/identity.h`, `src/crypto/certs.h`):
//!
//! | Certificate | Issuer | Extensions | Function |
//! |---|---|---|---|
//! | service identity | itself | BasicConstraints CA:TRUE (critical), KeyUsage keyCertSign+digitalSignature, SubjectKeyIdentifier | [`self_signed_ca_cert`] |
//! | node certificate | service identity | BasicConstraints CA:FALSE (critical), SubjectKeyIdentifier, AuthorityKeyIdentifier, SubjectAltName (IP/DNS) | [`endorsed_cert`] |
//! | member / user identity | itself | BasicConstraints CA:FALSE (critical), SubjectKeyIdentifier | [`self_signed_cert`] |
//!
//! The signature algorithm follows the signer's curve (ecdsa-with-SHA384 for P-384 keys).
//!
//! Identifiers derived from these (`src/crypto/verifier.h`, `src/node/node_id.h`):
//! - member and user ids are the hex SHA-256 of the certificate DER ([`cert_der_fingerprint_hex`]);
//! - node ids and the COSE `kid` of the service key are the hex SHA-256 of the DER
//!   `SubjectPublicKeyInfo` ([`spki_fingerprint_hex`]).
//!
//! Serial numbers are derived from the certificate's contents (subject key, name and validity)
//! instead of randomness, so generation is deterministic apart from the ECDSA nonce.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyUsagePurpose, SanType,
    SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::oid_registry::{OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::CryptoError;
use crate::ec::{EcKeyPair, spki_curve, verify_der_with_hash};
use crate::hash::{Sha256, sha256};

/// A certificate validity period, in seconds since the Unix epoch (both ends inclusive, as in
/// X.509). Callers pass the time explicitly because this crate never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Validity {
    /// First second at which the certificate is valid.
    pub not_before_unix_s: i64,
    /// Last second at which the certificate is valid.
    pub not_after_unix_s: i64,
}

impl Validity {
    fn to_offset(self) -> Result<(OffsetDateTime, OffsetDateTime), CryptoError> {
        let err = CryptoError::InvalidValidity {
            not_before_unix_s: self.not_before_unix_s,
            not_after_unix_s: self.not_after_unix_s,
        };
        if self.not_before_unix_s > self.not_after_unix_s {
            return Err(err);
        }
        // X.509 times can express years 0..=9999 (GeneralizedTime); rcgen handles the choice
        // between UTCTime and GeneralizedTime.
        let to = |s: i64| match OffsetDateTime::from_unix_timestamp(s) {
            Ok(t) if (0..=9999).contains(&t.year()) => Ok(t),
            _ => Err(err.clone()),
        };
        Ok((to(self.not_before_unix_s)?, to(self.not_after_unix_s)?))
    }
}

/// A subject alternative name of a node certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectAltName {
    /// An IP address (`iPAddress` SAN), e.g. the node's RPC address.
    Ip(IpAddr),
    /// A DNS name (`dNSName` SAN).
    Dns(String),
}

/// Builds the self-signed CA certificate of a service identity; returns PEM.
pub fn self_signed_ca_cert(
    key: &EcKeyPair,
    subject_cn: &str,
    validity: Validity,
) -> Result<String, CryptoError> {
    let mut params = base_params(&key.public_key_spki_der(), subject_cn, validity)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(key).map_err(gen_err)?;
    Ok(cert.pem())
}

/// Builds a self-signed leaf certificate (member and user identities); returns PEM.
pub fn self_signed_cert(
    key: &EcKeyPair,
    subject_cn: &str,
    validity: Validity,
) -> Result<String, CryptoError> {
    let params = base_params(&key.public_key_spki_der(), subject_cn, validity)?;
    let cert = params.self_signed(key).map_err(gen_err)?;
    Ok(cert.pem())
}

/// Builds a leaf certificate for `subject_public_spki_der`, signed by `issuer_key` whose
/// certificate is `issuer_cert_pem` (a node certificate endorsed by the service identity);
/// returns PEM.
///
/// Only the subject's public key is needed, so the service can endorse a joining node's key
/// without ever holding its private key. The issuer name and the AuthorityKeyIdentifier are
/// copied from the issuer certificate so that chain building matches them exactly.
pub fn endorsed_cert(
    subject_public_spki_der: &[u8],
    subject_cn: &str,
    sans: &[SubjectAltName],
    issuer_key: &EcKeyPair,
    issuer_cert_pem: &str,
    validity: Validity,
) -> Result<String, CryptoError> {
    let subject = SubjectKey::from_spki(subject_public_spki_der)?;
    let issuer = issuer_of(issuer_key, issuer_cert_pem)?;

    let mut params = base_params(subject_public_spki_der, subject_cn, validity)?;
    params.use_authority_key_identifier_extension = true;
    params.subject_alt_names = san_types(sans)?;
    let cert = params.signed_by(&subject, &issuer).map_err(gen_err)?;
    Ok(cert.pem())
}

pub(crate) fn san_types(sans: &[SubjectAltName]) -> Result<Vec<SanType>, CryptoError> {
    sans.iter()
        .map(|san| match san {
            SubjectAltName::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            SubjectAltName::Dns(name) => name
                .as_str()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e: rcgen::Error| CryptoError::CertGeneration(e.to_string())),
        })
        .collect()
}

/// The issuer of endorsed certificates: the service key and its certificate, checked to belong
/// together (otherwise the result would carry an AuthorityKeyIdentifier and issuer name that do
/// not match its signature).
pub(crate) fn issuer_of<'a>(
    issuer_key: &'a EcKeyPair,
    issuer_cert_pem: &str,
) -> Result<Issuer<'static, &'a EcKeyPair>, CryptoError> {
    let issuer_der = first_cert_der(issuer_cert_pem)?;
    if cert_public_key_spki_der(&issuer_der)? != issuer_key.public_key_spki_der() {
        return Err(CryptoError::CertGeneration(
            "issuer certificate does not match the issuer key".into(),
        ));
    }
    Issuer::from_ca_cert_der(&issuer_der.as_slice().into(), issuer_key)
        .map_err(|e| CryptoError::Certificate(e.to_string()))
}

/// Parameters shared by all three kinds: CN, validity, a content-derived serial number, and an
/// explicit `CA:FALSE` (which also makes rcgen emit the SubjectKeyIdentifier).
fn base_params(
    subject_spki_der: &[u8],
    subject_cn: &str,
    validity: Validity,
) -> Result<CertificateParams, CryptoError> {
    let mut name = rcgen::DistinguishedName::new();
    name.push(DnType::CommonName, subject_cn);
    named_params(subject_spki_der, name, subject_cn.as_bytes(), validity)
}

/// [`base_params`] for an arbitrary subject name; `name_bytes` identifies the name in the
/// serial-number derivation.
pub(crate) fn named_params(
    subject_spki_der: &[u8],
    name: rcgen::DistinguishedName,
    name_bytes: &[u8],
    validity: Validity,
) -> Result<CertificateParams, CryptoError> {
    let (not_before, not_after) = validity.to_offset()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;

    let mut h = Sha256::new();
    for part in [
        subject_spki_der,
        name_bytes,
        &validity.not_before_unix_s.to_be_bytes(),
        &validity.not_after_unix_s.to_be_bytes(),
    ] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let mut serial = h.finish()[..16].to_vec();
    // A positive 16-byte integer whose top byte is non-zero: DER-minimal and never zero.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

pub(crate) fn gen_err(e: rcgen::Error) -> CryptoError {
    CryptoError::CertGeneration(e.to_string())
}

/// A public key rcgen can put in a certificate it does not sign itself.
pub(crate) struct SubjectKey {
    sec1_point: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl SubjectKey {
    pub(crate) fn from_spki(spki_der: &[u8]) -> Result<Self, CryptoError> {
        let curve = spki_curve(spki_der)?;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|_| CryptoError::InvalidPublicKey)?;
        Ok(Self {
            sec1_point: spki.subject_public_key.data.to_vec(),
            algorithm: curve.rcgen_algorithm(),
        })
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.sec1_point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

/// Returns the DER of every `CERTIFICATE` block in `pem_text`, in order, ignoring blocks with
/// other labels (e.g. a key stored alongside). Fails if the text is malformed or holds no
/// certificate.
pub fn pem_to_der_certs(pem_text: &str) -> Result<Vec<Vec<u8>>, CryptoError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| CryptoError::Pem(e.to_string()))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err(CryptoError::PemLabel("CERTIFICATE"));
    }
    Ok(certs)
}

pub(crate) fn first_cert_der(pem_text: &str) -> Result<Vec<u8>, CryptoError> {
    let mut certs = pem_to_der_certs(pem_text)?;
    Ok(certs.swap_remove(0))
}

/// Encodes certificate DER as a `CERTIFICATE` PEM block (64-column base64, `\n` line ends, as
/// OpenSSL writes them and CCF stores them in the KV).
pub fn der_to_pem_cert(der: &[u8]) -> String {
    pem_encode("CERTIFICATE", der.to_vec())
}

/// Encodes a DER `SubjectPublicKeyInfo` as a `PUBLIC KEY` PEM block.
pub fn spki_der_to_pem(der: &[u8]) -> String {
    pem_encode("PUBLIC KEY", der.to_vec())
}

/// Returns the lowercase hex SHA-256 of a certificate's DER: CCF's member and user id.
pub fn cert_der_fingerprint_hex(der: &[u8]) -> String {
    hex::encode(sha256(der))
}

/// Returns the lowercase hex SHA-256 of a DER `SubjectPublicKeyInfo`: CCF's node id, and the
/// COSE `kid` of the service key.
pub fn spki_fingerprint_hex(spki_der: &[u8]) -> String {
    hex::encode(sha256(spki_der))
}

pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, CryptoError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CryptoError::Certificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CryptoError::Certificate(
            "trailing bytes after certificate".into(),
        ));
    }
    Ok(cert)
}

/// Returns the DER `SubjectPublicKeyInfo` of a certificate.
pub fn cert_public_key_spki_der(der: &[u8]) -> Result<Vec<u8>, CryptoError> {
    Ok(parse_cert(der)?.public_key().raw.to_vec())
}

/// Returns a certificate's validity period.
pub fn cert_validity(der: &[u8]) -> Result<Validity, CryptoError> {
    let cert = parse_cert(der)?;
    let validity = cert.validity();
    Ok(Validity {
        not_before_unix_s: validity.not_before.timestamp(),
        not_after_unix_s: validity.not_after.timestamp(),
    })
}

/// Checks that `cert_der` carries a valid ECDSA signature (SHA-256 or SHA-384) by the key
/// `issuer_spki_der`. Only the signature is checked: names, validity and extensions are the
/// caller's business.
pub fn verify_cert_signed_by(cert_der: &[u8], issuer_spki_der: &[u8]) -> Result<(), CryptoError> {
    let cert = parse_cert(cert_der)?;
    let oid = &cert.signature_algorithm.algorithm;
    let hash_size_bytes = if *oid == OID_SIG_ECDSA_WITH_SHA256 {
        32
    } else if *oid == OID_SIG_ECDSA_WITH_SHA384 {
        48
    } else {
        return Err(CryptoError::UnsupportedSignatureAlgorithm(
            oid.to_id_string(),
        ));
    };
    verify_der_with_hash(
        issuer_spki_der,
        hash_size_bytes,
        cert.tbs_certificate.as_ref(),
        &cert.signature_value.data,
    )
}

pub(crate) fn pem_encode(label: &str, der: Vec<u8>) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Returns the first PEM block whose label is one of `labels`.
pub(crate) fn pem_decode_one(
    pem_text: &str,
    labels: &[&str],
    wanted: &'static str,
) -> Result<pem::Pem, CryptoError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| CryptoError::Pem(e.to_string()))?;
    blocks
        .into_iter()
        .find(|b| labels.contains(&b.tag()))
        .ok_or(CryptoError::PemLabel(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec::Curve;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    const VALIDITY: Validity = Validity {
        not_before_unix_s: 1_700_000_000,
        not_after_unix_s: 1_700_000_000 + 365 * 24 * 3600,
    };

    fn der_of(pem_text: &str) -> Vec<u8> {
        let certs = pem_to_der_certs(pem_text).unwrap();
        assert_eq!(certs.len(), 1);
        certs.into_iter().next().unwrap()
    }

    /// What a test expects to find in a generated certificate.
    #[derive(Debug, PartialEq)]
    struct Shape {
        is_ca: bool,
        basic_constraints_critical: bool,
        key_cert_sign: Option<bool>,
        has_ski: bool,
        has_aki: bool,
        sig_alg: String,
        subject: String,
        issuer: String,
        sans: Vec<String>,
    }

    fn shape(der: &[u8]) -> Shape {
        let cert = parse_cert(der).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap();
        let mut sans = vec![];
        if let Some(san) = cert.subject_alternative_name().unwrap() {
            for name in &san.value.general_names {
                sans.push(match name {
                    GeneralName::DNSName(d) => format!("dns:{d}"),
                    GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
                    other => format!("{other:?}"),
                });
            }
        }
        let exts = cert.extensions();
        Shape {
            is_ca: bc.value.ca,
            basic_constraints_critical: bc.critical,
            key_cert_sign: cert.key_usage().unwrap().map(|ku| ku.value.key_cert_sign()),
            has_ski: exts.iter().any(|e| {
                matches!(
                    e.parsed_extension(),
                    ParsedExtension::SubjectKeyIdentifier(_)
                )
            }),
            has_aki: exts.iter().any(|e| {
                matches!(
                    e.parsed_extension(),
                    ParsedExtension::AuthorityKeyIdentifier(_)
                )
            }),
            sig_alg: cert.signature_algorithm.algorithm.to_id_string(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sans,
        }
    }

    #[test]
    fn service_node_member_certificates() {
        const SHA384: &str = "1.2.840.10045.4.3.3";
        const SHA256: &str = "1.2.840.10045.4.3.2";
        for (curve, sig_alg) in [(Curve::P384, SHA384), (Curve::P256, SHA256)] {
            let service_key = EcKeyPair::generate(curve).unwrap();
            let service_pem = self_signed_ca_cert(&service_key, "CCF Service", VALIDITY).unwrap();
            let service_der = der_of(&service_pem);
            let service_spki = service_key.public_key_spki_der();

            // The node's private key stays with the node: only its public key is endorsed.
            let node_key = EcKeyPair::generate(Curve::P384).unwrap();
            let node_pem = endorsed_cert(
                &node_key.public_key_spki_der(),
                "CCF Node",
                &[
                    SubjectAltName::Ip("127.0.0.1".parse().unwrap()),
                    SubjectAltName::Dns("node0.example".into()),
                ],
                &service_key,
                &service_pem,
                VALIDITY,
            )
            .unwrap();
            let node_der = der_of(&node_pem);

            let member_key = EcKeyPair::generate(curve).unwrap();
            let member_der = der_of(&self_signed_cert(&member_key, "member0", VALIDITY).unwrap());

            let cases = [
                (
                    "service",
                    &service_der,
                    Shape {
                        is_ca: true,
                        basic_constraints_critical: true,
                        key_cert_sign: Some(true),
                        has_ski: true,
                        has_aki: false,
                        sig_alg: sig_alg.into(),
                        subject: "CN=CCF Service".into(),
                        issuer: "CN=CCF Service".into(),
                        sans: vec![],
                    },
                ),
                (
                    "node",
                    &node_der,
                    Shape {
                        is_ca: false,
                        basic_constraints_critical: true,
                        key_cert_sign: None,
                        has_ski: true,
                        has_aki: true,
                        // Signed by the service key, so the service key's curve decides.
                        sig_alg: sig_alg.into(),
                        subject: "CN=CCF Node".into(),
                        issuer: "CN=CCF Service".into(),
                        sans: vec!["ip:[127, 0, 0, 1]".into(), "dns:node0.example".into()],
                    },
                ),
                (
                    "member",
                    &member_der,
                    Shape {
                        is_ca: false,
                        basic_constraints_critical: true,
                        key_cert_sign: None,
                        has_ski: true,
                        has_aki: false,
                        sig_alg: sig_alg.into(),
                        subject: "CN=member0".into(),
                        issuer: "CN=member0".into(),
                        sans: vec![],
                    },
                ),
            ];
            for (name, der, expected) in cases {
                assert_eq!(shape(der), expected, "{curve:?} {name}");
                assert_eq!(cert_validity(der).unwrap(), VALIDITY, "{name}");
            }

            // Signature checks, positive and negative.
            verify_cert_signed_by(&service_der, &service_spki).unwrap();
            verify_cert_signed_by(&node_der, &service_spki).unwrap();
            verify_cert_signed_by(&member_der, &member_key.public_key_spki_der()).unwrap();
            let node_spki = node_key.public_key_spki_der();
            assert_eq!(
                verify_cert_signed_by(&node_der, &node_spki),
                Err(CryptoError::BadSignature)
            );
            assert_eq!(
                verify_cert_signed_by(&member_der, &service_spki),
                Err(CryptoError::BadSignature)
            );

            // The node certificate carries the node's key, and its AKI is the service SKI.
            assert_eq!(cert_public_key_spki_der(&node_der).unwrap(), node_spki);
            let ski = |der: &[u8]| {
                parse_cert(der).unwrap().extensions().iter().find_map(|e| {
                    match e.parsed_extension() {
                        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                        _ => None,
                    }
                })
            };
            let aki = parse_cert(&node_der)
                .unwrap()
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::AuthorityKeyIdentifier(a) => {
                        a.key_identifier.as_ref().map(|k| k.0.to_vec())
                    }
                    _ => None,
                });
            assert_eq!(aki, ski(&service_der));
        }
    }

    #[test]
    fn tampered_certificate_fails_verification() {
        let key = EcKeyPair::generate(Curve::P384).unwrap();
        let der = der_of(&self_signed_cert(&key, "user", VALIDITY).unwrap());
        let spki = key.public_key_spki_der();
        // Flip a byte inside the subject CN ("user" appears once, inside the TBS).
        let pos = der.windows(4).position(|w| w == b"user").unwrap();
        let mut bad = der.clone();
        bad[pos] = b'v';
        assert_eq!(
            verify_cert_signed_by(&bad, &spki),
            Err(CryptoError::BadSignature)
        );
        verify_cert_signed_by(&der, &spki).unwrap();
    }

    #[test]
    fn endorsement_requires_matching_issuer() {
        let service_key = EcKeyPair::generate(Curve::P384).unwrap();
        let other_key = EcKeyPair::generate(Curve::P384).unwrap();
        let service_pem = self_signed_ca_cert(&service_key, "svc", VALIDITY).unwrap();
        let subject = EcKeyPair::generate(Curve::P384)
            .unwrap()
            .public_key_spki_der();
        let result = endorsed_cert(&subject, "n", &[], &other_key, &service_pem, VALIDITY);
        assert!(
            matches!(result, Err(CryptoError::CertGeneration(_))),
            "{result:?}"
        );
        let result = endorsed_cert(&[1, 2, 3], "n", &[], &service_key, &service_pem, VALIDITY);
        assert_eq!(result, Err(CryptoError::InvalidPublicKey));
        let result = endorsed_cert(&subject, "n", &[], &service_key, "garbage", VALIDITY);
        assert!(result.is_err());
        let bad_dns = [SubjectAltName::Dns("bad\u{e9}name".into())];
        let result = endorsed_cert(
            &subject,
            "n",
            &bad_dns,
            &service_key,
            &service_pem,
            VALIDITY,
        );
        assert!(
            matches!(result, Err(CryptoError::CertGeneration(_))),
            "{result:?}"
        );
    }

    #[test]
    fn validity_edges() {
        let key = EcKeyPair::generate(Curve::P256).unwrap();
        let cases = [
            // (not_before, not_after, accepted)
            (0, 0, true),
            (1_000, 999, false),
            (-1, 10, true),
            // 2050 and later need GeneralizedTime; rcgen chooses it.
            (1_700_000_000, 4_102_444_800, true),
            (0, 253_402_300_799, true), // 9999-12-31T23:59:59Z
            (0, 253_402_300_800, false),
            (i64::MIN, 0, false),
        ];
        for (nb, na, ok) in cases {
            let v = Validity {
                not_before_unix_s: nb,
                not_after_unix_s: na,
            };
            let result = self_signed_cert(&key, "v", v);
            assert_eq!(result.is_ok(), ok, "{v:?}: {result:?}");
            if let Ok(pem_text) = result {
                assert_eq!(cert_validity(&der_of(&pem_text)).unwrap(), v);
            }
        }
    }

    #[test]
    fn fingerprints_are_stable() {
        // Fingerprints are plain SHA-256 hex of the bytes: pinned against known digests.
        assert_eq!(
            cert_der_fingerprint_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            spki_fingerprint_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // A member id survives a PEM round trip and is the same for the same certificate.
        let key = EcKeyPair::generate(Curve::P384).unwrap();
        let pem_text = self_signed_cert(&key, "member", VALIDITY).unwrap();
        let der = der_of(&pem_text);
        assert_eq!(der_to_pem_cert(&der), pem_text);
        assert_eq!(
            cert_der_fingerprint_hex(&der_of(&der_to_pem_cert(&der))),
            cert_der_fingerprint_hex(&der)
        );
        assert_eq!(cert_der_fingerprint_hex(&der).len(), 64);
        // The node id from the certificate equals the node id from the key.
        assert_eq!(
            spki_fingerprint_hex(&cert_public_key_spki_der(&der).unwrap()),
            spki_fingerprint_hex(&key.public_key_spki_der())
        );
    }

    #[test]
    fn pem_parsing_cases() {
        let key = EcKeyPair::generate(Curve::P256).unwrap();
        let a = self_signed_cert(&key, "a", VALIDITY).unwrap();
        let b = self_signed_cert(&key, "b", VALIDITY).unwrap();
        let chain = format!("{a}{}{b}", key.to_pkcs8_pem());
        let got = pem_to_der_certs(&chain).unwrap();
        assert_eq!(got, vec![der_of(&a), der_of(&b)]);

        let cases = [
            ("empty", ""),
            (
                "key only",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ),
            (
                "bad base64",
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            ),
            ("unterminated", "-----BEGIN CERTIFICATE-----\nAAAA\n"),
        ];
        for (name, text) in cases {
            assert!(pem_to_der_certs(text).is_err(), "{name}");
        }
    }

    #[test]
    fn malformed_der_is_an_error() {
        let key = EcKeyPair::generate(Curve::P256).unwrap();
        let der = der_of(&self_signed_cert(&key, "x", VALIDITY).unwrap());
        let mut trailing = der.clone();
        trailing.push(0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("truncated", der[..der.len() - 1].to_vec()),
            ("trailing", trailing),
            ("garbage", vec![0x30, 0x80, 0xff]),
        ];
        for (name, bad) in cases {
            assert!(cert_public_key_spki_der(&bad).is_err(), "{name}");
            assert!(cert_validity(&bad).is_err(), "{name}");
            assert!(
                verify_cert_signed_by(&bad, &key.public_key_spki_der()).is_err(),
                "{name}"
            );
        }
    }

    proptest::proptest! {
        /// No input may panic the DER parsers.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = cert_public_key_spki_der(&bytes);
            let _ = cert_validity(&bytes);
            let _ = spki_curve(&bytes);
            let _ = crate::verify_der(&bytes, b"m", &bytes);
        }
    }
}

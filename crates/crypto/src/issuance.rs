//! Certificates issued by governance: node certificate signing requests, their endorsement by the
//! service identity, renewal of the service certificate, and the time strings CCF's proposals use.
//!
//! CCF's constitution calls `ccf.network.generateEndorsedCertificate(csr, valid_from, days)` and
//! `ccf.network.generateNetworkCertificate(valid_from, days)` (`src/js/extensions/ccf/network.cpp`);
//! the validity period runs from `valid_from` for `days` days, ending one second early because
//! X.509's `notAfter` is inclusive (`compute_cert_valid_to_string`, `include/ccf/crypto/certs.h`).

use rcgen::{CertificateParams, CertificateSigningRequestParams, DnType};
use time::{Date, Month, PrimitiveDateTime, Time};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::CryptoError;
use crate::cert::{
    SubjectAltName, SubjectKey, Validity, first_cert_der, gen_err, issuer_of, named_params,
    parse_cert, san_types, self_signed_ca_cert,
};
use crate::ec::EcKeyPair;

/// A certificate signing request for `key` with subject `CN=<subject_cn>` and the given subject
/// alternative names (what a node records in `nodes.info.certificate_signing_request`); PEM.
pub fn certificate_signing_request(
    key: &EcKeyPair,
    subject_cn: &str,
    sans: &[SubjectAltName],
) -> Result<String, CryptoError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, subject_cn);
    params.subject_alt_names = san_types(sans)?;
    let csr = params.serialize_request(key).map_err(gen_err)?;
    csr.pem().map_err(gen_err)
}

/// The public key (SubjectPublicKeyInfo DER) a CSR asks to have certified. Only parses: the
/// CSR's own signature is checked when it is endorsed ([`endorse_csr`]).
pub fn csr_public_key_spki_der(csr_pem: &str) -> Result<Vec<u8>, CryptoError> {
    let block = pem::parse(csr_pem).map_err(|e| CryptoError::Pem(e.to_string()))?;
    if block.tag() != "CERTIFICATE REQUEST" {
        return Err(CryptoError::PemLabel("CERTIFICATE REQUEST"));
    }
    let (rest, parsed) = X509CertificationRequest::from_der(block.contents())
        .map_err(|e| CryptoError::Certificate(format!("malformed CSR: {e}")))?;
    if !rest.is_empty() {
        return Err(CryptoError::Certificate(
            "trailing bytes after the CSR".into(),
        ));
    }
    Ok(parsed.certification_request_info.subject_pki.raw.to_vec())
}

/// Issues the certificate a CSR asks for, signed by the service identity (`issuer_key`, whose
/// certificate is `issuer_cert_pem`): the CSR's subject name, key and subject alternative names,
/// `CA:FALSE`, subject and authority key identifiers. The CSR's own signature must verify.
pub fn endorse_csr(
    csr_pem: &str,
    issuer_key: &EcKeyPair,
    issuer_cert_pem: &str,
    validity: Validity,
) -> Result<String, CryptoError> {
    let block = pem::parse(csr_pem).map_err(|e| CryptoError::Pem(e.to_string()))?;
    if block.tag() != "CERTIFICATE REQUEST" {
        return Err(CryptoError::PemLabel("CERTIFICATE REQUEST"));
    }
    let der = block.contents();
    let (rest, parsed) = X509CertificationRequest::from_der(der)
        .map_err(|e| CryptoError::Certificate(format!("malformed CSR: {e}")))?;
    if !rest.is_empty() {
        return Err(CryptoError::Certificate(
            "trailing bytes after the CSR".into(),
        ));
    }
    let info = &parsed.certification_request_info;
    let spki = info.subject_pki.raw.to_vec();
    let subject_name_der = info.subject.as_raw().to_vec();
    // rcgen verifies the CSR's signature and converts its name and extensions.
    let requested = CertificateSigningRequestParams::from_der(&der.into())
        .map_err(|e| CryptoError::Certificate(format!("CSR refused: {e}")))?;
    let subject = SubjectKey::from_spki(&spki)?;
    let issuer = issuer_of(issuer_key, issuer_cert_pem)?;
    let mut params = named_params(
        &spki,
        requested.params.distinguished_name.clone(),
        &subject_name_der,
        validity,
    )?;
    params.use_authority_key_identifier_extension = true;
    params.subject_alt_names = requested.params.subject_alt_names.clone();
    let cert = params.signed_by(&subject, &issuer).map_err(gen_err)?;
    Ok(cert.pem())
}

/// The current service identity's endorsement of an earlier one (CCF's receipts after a
/// disaster recovery, `populate_service_endorsements`): a CA certificate for the earlier
/// certificate's key and subject name, valid as long as the current service certificate, signed
/// by the current service key. A node certificate the earlier service endorsed then chains to
/// the current service certificate through it.
pub fn endorse_previous_service_cert(
    previous_cert_pem: &str,
    issuer_key: &EcKeyPair,
    issuer_cert_pem: &str,
) -> Result<String, CryptoError> {
    let previous_der = first_cert_der(previous_cert_pem)?;
    let previous = parse_cert(&previous_der)?;
    let spki = previous.public_key().raw.to_vec();
    let name_der = previous.subject().as_raw().to_vec();
    let name = distinguished_name(previous.subject())?;
    let validity = crate::cert::cert_validity(&first_cert_der(issuer_cert_pem)?)?;
    let subject = SubjectKey::from_spki(&spki)?;
    let issuer = issuer_of(issuer_key, issuer_cert_pem)?;
    let mut params = named_params(&spki, name, &name_der, validity)?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&subject, &issuer).map_err(gen_err)?;
    Ok(cert.pem())
}

/// A certificate's subject as rcgen writes it back: the same attributes, in order, with their
/// string types kept (so that chain builders match issuer and subject names exactly).
fn distinguished_name(
    name: &x509_parser::x509::X509Name<'_>,
) -> Result<rcgen::DistinguishedName, CryptoError> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let unsupported = |what: &str| CryptoError::Certificate(format!("subject name: {what}"));
    let mut dn = rcgen::DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| unsupported("attribute type out of range"))?
            .collect();
        let text = std::str::from_utf8(attr.attr_value().data)
            .map_err(|_| unsupported("attribute value is not UTF-8"))?;
        let value = match attr.attr_value().header.tag() {
            Tag::PrintableString => rcgen::DnValue::PrintableString(
                text.try_into()
                    .map_err(|_| unsupported("invalid PrintableString"))?,
            ),
            Tag::Utf8String => rcgen::DnValue::Utf8String(text.to_owned()),
            other => return Err(unsupported(&format!("attribute string type {other}"))),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

/// Re-issues a self-signed service certificate with a new validity period: same key, same
/// common name, so certificates it endorsed still chain to it.
pub fn renew_self_signed_ca_cert(
    key: &EcKeyPair,
    current_cert_pem: &str,
    validity: Validity,
) -> Result<String, CryptoError> {
    let der = first_cert_der(current_cert_pem)?;
    let cert = parse_cert(&der)?;
    if cert.public_key().raw != key.public_key_spki_der().as_slice() {
        return Err(CryptoError::CertGeneration(
            "the certificate to renew does not belong to the key".into(),
        ));
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| CryptoError::Certificate("certificate has no common name".into()))?
        .to_owned();
    self_signed_ca_cert(key, &cn, validity)
}

/// CCF's validity period for a certificate valid from `valid_from_unix_s` for `days` days:
/// `notAfter` is inclusive, so it is one second before the end of the last day.
pub fn validity_for_days(valid_from_unix_s: i64, days: u64) -> Result<Validity, CryptoError> {
    let span = i64::try_from(days)
        .ok()
        .and_then(|d| d.checked_mul(86_400))
        .and_then(|s| valid_from_unix_s.checked_add(s));
    let err = CryptoError::InvalidValidity {
        not_before_unix_s: valid_from_unix_s,
        not_after_unix_s: i64::MAX,
    };
    let end = span.ok_or(err.clone())?;
    if days == 0 {
        return Err(err);
    }
    Ok(Validity {
        not_before_unix_s: valid_from_unix_s,
        not_after_unix_s: end - 1,
    })
}

/// Formats a time as ASN.1 GeneralizedTime `YYYYMMDDHHMMSSZ`, one of the forms
/// [`parse_ccf_time`] (and CCF's `valid_from`) accepts.
pub fn format_ccf_time(unix_s: i64) -> Result<String, CryptoError> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| CryptoError::Certificate(format!("time {unix_s} is out of range")))?;
    Ok(format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Parses a time as CCF accepts `valid_from` (`ccf::ds::time_point_from_string`): ASN.1
/// `YYMMDDHHMMSSZ` (years 50–99 are 19xx), `YYYYMMDDHHMMSSZ`, or `YYYY-MM-DD HH:MM:SS` with a
/// space or `T`, optional fractional seconds (dropped) and an optional UTC offset `±HH:MM`
/// (`Z` too). Returns seconds since the Unix epoch.
pub fn parse_ccf_time(text: &str) -> Result<i64, CryptoError> {
    let bad =
        || CryptoError::CertGeneration(format!("'{text}' does not match any accepted time format"));
    let s = text.trim();
    let digits = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    // Compact ASN.1 forms.
    if let Some(body) = s
        .strip_suffix('Z')
        .filter(|b| b.bytes().all(|c| c.is_ascii_digit()))
    {
        let (year, rest) = match body.len() {
            12 => {
                let yy = digits(&body[..2]).ok_or_else(bad)?;
                (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &body[2..])
            }
            14 => (digits(&body[..4]).ok_or_else(bad)?, &body[4..]),
            _ => return Err(bad()),
        };
        let f = |i: usize| digits(&rest[i..i + 2]).ok_or_else(bad);
        return civil_to_unix(year, f(0)?, f(2)?, f(4)?, f(6)?, f(8)?, 0).ok_or_else(bad);
    }
    // YYYY-MM-DD[ T]HH:MM:SS[.frac][Z|±HH:MM]
    if s.len() < 19 || !s.is_char_boundary(19) {
        return Err(bad());
    }
    let (head, tail) = s.split_at(19);
    let b = head.as_bytes();
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let n = |from: usize, to: usize| digits(&head[from..to]).ok_or_else(bad);
    let (year, month, day) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hour, minute, second) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    let mut rest = tail;
    if let Some(frac) = rest.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if end == 0 {
            return Err(bad());
        }
        rest = &frac[end..];
    }
    let rest = rest.trim_start();
    let offset_s = if rest.is_empty() || rest == "Z" {
        0
    } else {
        let sign = match rest.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(bad()),
        };
        let hm = &rest[1..];
        let (h, m) = hm.split_once(':').ok_or_else(bad)?;
        let (h, m) = (digits(h).ok_or_else(bad)?, digits(m).ok_or_else(bad)?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        sign * (h * 3600 + m * 60)
    };
    civil_to_unix(year, month, day, hour, minute, second, offset_s).ok_or_else(bad)
}

fn civil_to_unix(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    offset_s: i64,
) -> Option<i64> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp()
            - offset_s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{cert_public_key_spki_der, cert_validity, verify_cert_signed_by};
    use crate::ec::Curve;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::X509Certificate;

    #[test]
    fn ccf_time_formats() {
        // 2024-03-01T12:34:56Z = 1709296496
        let t = 1_709_296_496;
        for (text, want) in [
            ("240301123456Z", Some(t)),
            ("20240301123456Z", Some(t)),
            ("2024-03-01 12:34:56", Some(t)),
            ("2024-03-01T12:34:56", Some(t)),
            ("2024-03-01 12:34:56.123456", Some(t)),
            ("2024-03-01 12:34:56.5+00:00", Some(t)),
            ("2024-03-01 14:34:56+02:00", Some(t)),
            ("2024-03-01T10:34:56-02:00", Some(t)),
            ("2024-03-01T12:34:56Z", Some(t)),
            ("991231235959Z", Some(946_684_799)),
            ("500101000000Z", Some(-631_152_000)),
            ("2024-02-30 00:00:00", None),
            ("2024-03-01 24:00:00", None),
            ("2024-03-01", None),
            ("20240301123456", None),
            ("2024-03-01 12:34:56+0200", None),
            ("2024-03-01 12:34:56 junk", None),
            ("", None),
            ("2024-03-01 12:34:5é", None),
        ] {
            assert_eq!(parse_ccf_time(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn formatted_times_parse_back() {
        for t in [0, 946_684_799, 1_709_296_496, 253_402_300_799] {
            assert_eq!(parse_ccf_time(&format_ccf_time(t).unwrap()).unwrap(), t);
        }
        assert_eq!(format_ccf_time(1_709_296_496).unwrap(), "20240301123456Z");
        assert!(format_ccf_time(253_402_300_800).is_err());
    }

    #[test]
    fn validity_ends_one_second_before_the_last_day() {
        let v = validity_for_days(1_000, 2).unwrap();
        assert_eq!(
            (v.not_before_unix_s, v.not_after_unix_s),
            (1_000, 1_000 + 2 * 86_400 - 1)
        );
        assert!(validity_for_days(0, 0).is_err());
        assert!(validity_for_days(i64::MAX - 10, 1).is_err());
        assert!(validity_for_days(0, u64::MAX).is_err());
    }

    fn service() -> (EcKeyPair, String) {
        let key = EcKeyPair::generate(Curve::P384).unwrap();
        let cert = self_signed_ca_cert(
            &key,
            "CCF Service",
            validity_for_days(1_700_000_000, 1).unwrap(),
        )
        .unwrap();
        (key, cert)
    }

    #[test]
    fn a_csr_is_endorsed_with_its_name_key_and_sans() {
        let (service_key, service_cert) = service();
        let node = EcKeyPair::generate(Curve::P256).unwrap();
        let sans = [
            SubjectAltName::Ip("127.0.0.1".parse().unwrap()),
            SubjectAltName::Dns("node0.example".into()),
        ];
        let csr = certificate_signing_request(&node, "CCF Node", &sans).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let validity = validity_for_days(1_750_000_000, 30).unwrap();
        let pem_cert = endorse_csr(&csr, &service_key, &service_cert, validity).unwrap();
        let der = first_cert_der(&pem_cert).unwrap();
        assert_eq!(
            cert_public_key_spki_der(&der).unwrap(),
            node.public_key_spki_der()
        );
        assert_eq!(cert_validity(&der).unwrap(), validity);
        verify_cert_signed_by(&der, &service_key.public_key_spki_der()).unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject().to_string(), "CN=CCF Node");
        assert_eq!(cert.issuer().to_string(), "CN=CCF Service");
        let mut seen = Vec::new();
        for ext in cert.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for name in &san.general_names {
                    seen.push(match name {
                        GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
                        GeneralName::DNSName(d) => format!("dns:{d}"),
                        other => format!("{other:?}"),
                    });
                }
            }
        }
        assert_eq!(
            seen,
            vec![
                "ip:[127, 0, 0, 1]".to_owned(),
                "dns:node0.example".to_owned()
            ]
        );
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    }

    /// After a recovery the new service key endorses the old one, so a node certificate the old
    /// service issued chains to the new service certificate.
    #[test]
    fn a_previous_service_identity_is_endorsed_as_a_ca_under_the_current_one() {
        let (old_key, old_cert) = service();
        let node = EcKeyPair::generate(Curve::P384).unwrap();
        let csr = certificate_signing_request(&node, "CCF Node", &[]).unwrap();
        let node_cert = endorse_csr(
            &csr,
            &old_key,
            &old_cert,
            validity_for_days(1_700_000_000, 1).unwrap(),
        )
        .unwrap();
        let new_key = EcKeyPair::generate(Curve::P384).unwrap();
        let new_validity = validity_for_days(1_800_000_000, 7).unwrap();
        let new_cert = self_signed_ca_cert(&new_key, "Recovered Service", new_validity).unwrap();

        let endorsement = endorse_previous_service_cert(&old_cert, &new_key, &new_cert).unwrap();
        let der = first_cert_der(&endorsement).unwrap();
        let old_der = first_cert_der(&old_cert).unwrap();
        assert_eq!(
            cert_public_key_spki_der(&der).unwrap(),
            old_key.public_key_spki_der()
        );
        assert_eq!(cert_validity(&der).unwrap(), new_validity);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let (_, old) = X509Certificate::from_der(&old_der).unwrap();
        assert_eq!(cert.subject().as_raw(), old.subject().as_raw());
        assert_eq!(cert.issuer().to_string(), "CN=Recovered Service");
        assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
        // node --(old key)--> endorsement --(new key)--> current service certificate.
        verify_cert_signed_by(
            &first_cert_der(&node_cert).unwrap(),
            &cert_public_key_spki_der(&der).unwrap(),
        )
        .unwrap();
        verify_cert_signed_by(&der, &new_key.public_key_spki_der()).unwrap();
        // The issuer certificate must be the issuer key's; the previous one must be a certificate.
        assert!(endorse_previous_service_cert(&old_cert, &new_key, &old_cert).is_err());
        assert!(endorse_previous_service_cert("junk", &new_key, &new_cert).is_err());
    }

    #[test]
    fn bad_csrs_are_refused() {
        let (service_key, service_cert) = service();
        let node = EcKeyPair::generate(Curve::P384).unwrap();
        let csr = certificate_signing_request(&node, "CCF Node", &[]).unwrap();
        let validity = validity_for_days(1_750_000_000, 1).unwrap();
        // Tampered body: the CSR's self-signature no longer verifies.
        let mut block = pem::parse(&csr).unwrap();
        let mut der = block.contents().to_vec();
        let at = der.len() / 3;
        der[at] ^= 0x01;
        block = pem::Pem::new("CERTIFICATE REQUEST", der);
        let tampered = pem::encode(&block);
        assert!(endorse_csr(&tampered, &service_key, &service_cert, validity).is_err());
        // A certificate is not a CSR; garbage is not PEM.
        assert!(endorse_csr(&service_cert, &service_key, &service_cert, validity).is_err());
        assert!(endorse_csr("not pem", &service_key, &service_cert, validity).is_err());
        // The issuer certificate must belong to the issuer key.
        let (_, other_cert) = service();
        assert!(endorse_csr(&csr, &service_key, &other_cert, validity).is_err());
    }

    #[test]
    fn renewal_keeps_key_and_name() {
        let (key, cert) = service();
        let validity = validity_for_days(1_800_000_000, 10).unwrap();
        let renewed = renew_self_signed_ca_cert(&key, &cert, validity).unwrap();
        let der = first_cert_der(&renewed).unwrap();
        assert_eq!(
            cert_public_key_spki_der(&der).unwrap(),
            key.public_key_spki_der()
        );
        assert_eq!(cert_validity(&der).unwrap(), validity);
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(parsed.subject().to_string(), "CN=CCF Service");
        let (other, _) = service();
        assert!(renew_self_signed_ca_cert(&other, &cert, validity).is_err());
    }
}

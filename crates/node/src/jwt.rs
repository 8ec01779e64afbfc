//! JWT issuers and keys (`set_jwt_issuer`, `set_jwt_public_signing_keys`, `remove_jwt_issuer`)
//! and CCF's `jwt` authentication policy.
//!
//! Keys live as CCF stores them (`src/node/rpc/jwt_management.h`, `include/ccf/service/tables/jwt.h`):
//! `public:ccf.gov.jwt.public_signing_keys_metadata_v2` maps a `kid` to a JSON list of
//! `{"public_key": base64 DER SubjectPublicKeyInfo, "issuer": ..., "constraint"?: ...}`, one entry
//! per issuer that published the kid. The constitution writes them through
//! `ccf.setJwtPublicSigningKeys(issuer, metadata, jwks)` / `ccf.removeJwtPublicSigningKeys(issuer)`,
//! implemented by [`set_public_signing_keys`] and [`remove_public_signing_keys`].
//!
//! A request authenticates with `Authorization: Bearer <header.payload.signature>`: the header's
//! `kid` names stored keys, one of which must verify the signature (RS256, ES256, ES384); `exp`
//! and `nbf` are required and checked against the host's time; if the key carries an issuer
//! constraint, the token's `iss` must match it.

use base64::Engine as _;
use bytes::Bytes;
use coco_app_api::{Caller, Request};
use coco_kv::Tx;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const JWT_ISSUERS: &str = "public:ccf.gov.jwt.issuers";
pub const JWT_KEYS: &str = "public:ccf.gov.jwt.public_signing_keys_metadata_v2";

/// One stored key of a `kid` (CCF `OpenIDJWKMetadata`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMetadata {
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

fn b64url(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| "not base64url".to_owned())
}

/// The stored keys of `kid`.
pub fn keys_of(tx: &mut Tx, kid: &str) -> Result<Vec<KeyMetadata>, String> {
    match tx.get(JWT_KEYS, kid.as_bytes()) {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_slice(&raw)
            .map_err(|e| format!("stored JWT key metadata of {kid} does not parse: {e}")),
    }
}

fn put_keys(tx: &mut Tx, kid: &str, keys: &[KeyMetadata]) {
    if keys.is_empty() {
        tx.remove(JWT_KEYS, kid.as_bytes());
    } else {
        let value = serde_json::to_vec(keys).expect("key metadata serialises");
        tx.put(JWT_KEYS, Bytes::from(kid.to_owned()), Bytes::from(value));
    }
}

fn all_kids(tx: &mut Tx) -> Vec<String> {
    let mut kids = Vec::new();
    tx.for_each(JWT_KEYS, |k, _| {
        kids.push(String::from_utf8_lossy(k).into_owned());
        true
    });
    kids
}

/// The DER public key a JWK describes: RSA `n`/`e`, EC `crv`/`x`/`y`, else the first `x5c`
/// certificate's key (CCF `try_parse_jwk`).
fn jwk_public_key(jwk: &Value, kid: &str) -> Result<Vec<u8>, String> {
    let field = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let decode =
        |name: &str, v: &str| b64url(v).map_err(|e| format!("JWKS kid {kid}: field {name} is {e}"));
    if let (Some(n), Some(e)) = (field("n"), field("e")) {
        return coco_crypto::rsa_spki_der(&decode("n", n)?, &decode("e", e)?)
            .map_err(|e| format!("Failed to construct RSA public key: {e}"));
    }
    if let (Some(crv), Some(x), Some(y)) = (field("crv"), field("x"), field("y")) {
        return coco_crypto::ec_spki_der(crv, &decode("x", x)?, &decode("y", y)?)
            .map_err(|e| format!("Failed to construct EC public key: {e}"));
    }
    if let Some(first) = jwk
        .get("x5c")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
    {
        let der = base64::engine::general_purpose::STANDARD
            .decode(first)
            .map_err(|e| format!("Could not parse x5c of key id {kid}: {e}"))?;
        return coco_crypto::x5c_spki_der(&der)
            .map_err(|e| format!("JWKS kid {kid} has an invalid X.509 certificate: {e}"));
    }
    Err(format!(
        "JWKS kid {kid} has neither RSA/EC public key or x5c"
    ))
}

/// The host of a URL (`scheme://host[:port]/…`), lowercased; empty if there is none.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

/// CCF's `check_issuer_constraint`: a key may constrain tokens to its issuer's domain or a
/// parent domain of it, never to another domain.
fn issuer_constraint_allowed(issuer: &str, constraint: &str) -> bool {
    let issuer_domain = url_host(issuer);
    let constraint_domain = url_host(constraint);
    !constraint_domain.is_empty()
        && (issuer_domain == constraint_domain
            || issuer_domain.ends_with(&format!(".{constraint_domain}")))
}

/// `ccf.setJwtPublicSigningKeys(issuer, metadata, jwks)`: replaces `issuer`'s keys with the keys of
/// the JSON Web Key Set `jwks` (`{"keys": [...]}`); other issuers' keys under the same kids are
/// kept. Refuses an empty set, a key without `kid` or key material, and constraints outside the
/// issuer's domain, leaving the stored keys untouched.
pub fn set_public_signing_keys(tx: &mut Tx, issuer: &str, jwks: &Value) -> Result<(), String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be an object with a 'keys' array")?;
    if keys.is_empty() {
        return Err("JWKS has no keys".into());
    }
    let mut new_keys = std::collections::BTreeMap::new();
    for jwk in keys {
        let kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .ok_or("Missing kid for JWT signing key")?;
        let public_key = jwk_public_key(jwk, kid)?;
        let constraint = match jwk.get("issuer").and_then(Value::as_str) {
            None => None,
            Some(c) if issuer_constraint_allowed(issuer, c) => Some(c.to_owned()),
            Some(c) => {
                return Err(format!(
                    "JWKS kid {kid} with issuer constraint {c} fails validation against issuer {issuer}"
                ));
            }
        };
        new_keys.insert(
            kid.to_owned(),
            KeyMetadata {
                public_key,
                issuer: issuer.to_owned(),
                constraint,
            },
        );
    }
    for kid in all_kids(tx) {
        if !new_keys.contains_key(&kid) {
            let mut existing = keys_of(tx, &kid)?;
            let before = existing.len();
            existing.retain(|m| m.issuer != issuer);
            if existing.len() != before {
                put_keys(tx, &kid, &existing);
            }
        }
    }
    for (kid, value) in new_keys {
        let mut existing = keys_of(tx, &kid)?;
        match existing.iter_mut().find(|m| m.issuer == issuer) {
            // Unchanged: no write (as CCF, to keep refreshes quiet in the ledger).
            Some(m) if *m == value => continue,
            Some(m) => *m = value,
            None => existing.push(value),
        }
        put_keys(tx, &kid, &existing);
    }
    Ok(())
}

/// `ccf.removeJwtPublicSigningKeys(issuer)`: removes every key of `issuer`.
pub fn remove_public_signing_keys(tx: &mut Tx, issuer: &str) -> Result<(), String> {
    for kid in all_kids(tx) {
        let mut existing = keys_of(tx, &kid)?;
        let before = existing.len();
        existing.retain(|m| m.issuer != issuer);
        if existing.len() != before {
            put_keys(tx, &kid, &existing);
        }
    }
    Ok(())
}

/// Whether the token's `iss` satisfies a key's constraint. Microsoft Entra keys constrain to
/// `https://login.microsoftonline.com/{tenantid}/v2.0`; `{tenantid}` stands for the token's `tid`.
fn issuer_matches(constraint: &str, payload: &Value) -> bool {
    let Some(iss) = payload.get("iss").and_then(Value::as_str) else {
        return false;
    };
    if constraint.contains("{tenantid}") {
        return payload
            .get("tid")
            .and_then(Value::as_str)
            .is_some_and(|tid| constraint.replace("{tenantid}", tid) == iss);
    }
    constraint == iss
}

/// Authenticates a bearer token at time `now_unix_seconds`.
pub fn authenticate(
    tx: &mut Tx,
    request: &Request,
    now_unix_seconds: i64,
) -> Result<Caller, String> {
    let auth = request
        .header("authorization")
        .ok_or("No Authorization header.")?;
    let token = auth
        .strip_prefix("Bearer ")
        .ok_or("The Authorization header is not a Bearer token.")?
        .trim();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("A JWT has three dot-separated parts.".into());
    };
    let not_b64 = |what: &str| format!("The JWT {what} is not base64url.");
    let header: Value = serde_json::from_slice(&b64url(h).map_err(|_| not_b64("header"))?)
        .map_err(|_| "The JWT header is not JSON.".to_owned())?;
    let payload: Value = serde_json::from_slice(&b64url(p).map_err(|_| not_b64("payload"))?)
        .map_err(|_| "The JWT payload is not JSON.".to_owned())?;
    let signature = b64url(s).map_err(|_| not_b64("signature"))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("The JWT header has no alg.")?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or("The JWT header has no kid.")?;
    let keys = keys_of(tx, kid)?;
    if keys.is_empty() {
        return Err(format!("JWT signing key not found for kid {kid}."));
    }
    let signing_input = format!("{h}.{p}");
    let mut last_error = String::new();
    for key in keys {
        if let Err(e) =
            coco_crypto::verify_jws(&key.public_key, alg, signing_input.as_bytes(), &signature)
        {
            last_error = format!("The token's signature does not verify with kid {kid}: {e}.");
            continue;
        }
        if let Some(constraint) = &key.constraint
            && !issuer_matches(constraint, &payload)
        {
            last_error = format!("Kid {kid} failed issuer constraint validation {constraint}.");
            continue;
        }
        let claim = |name: &str| payload.get(name).and_then(Value::as_i64);
        let exp = claim("exp").ok_or("The token has no exp claim.")?;
        let nbf = claim("nbf").ok_or("The token has no nbf claim.")?;
        if exp < now_unix_seconds {
            return Err("The token has expired.".into());
        }
        if nbf > now_unix_seconds {
            return Err("The token is not yet valid (nbf).".into());
        }
        return Ok(Caller::Jwt {
            key_issuer: key.issuer,
            header,
            payload,
        });
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coco_kv::Store;
    use serde_json::json;

    fn b64u(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    fn ec_jwk(kid: &str) -> (coco_crypto::EcKeyPair, Value) {
        let key = coco_crypto::EcKeyPair::generate(coco_crypto::Curve::P256).unwrap();
        let point = key.public_key_sec1_uncompressed().to_vec();
        let jwk = json!({"kty": "EC", "kid": kid, "crv": "P-256",
            "x": b64u(&point[1..33]), "y": b64u(&point[33..])});
        (key, jwk)
    }

    #[test]
    fn constraint_domains() {
        for (issuer, constraint, ok) in [
            (
                "https://login.example.com",
                "https://login.example.com",
                true,
            ),
            ("https://limited.facebook.com", "https://facebook.com", true),
            (
                "https://login.example.com:443/v2",
                "https://login.example.com/other",
                true,
            ),
            ("https://example.com", "https://limited.example.com", false),
            ("https://a.example", "https://b.example", false),
            ("https://notfacebook.com", "https://facebook.com", false),
            ("https://a.example", "", false),
        ] {
            assert_eq!(
                issuer_constraint_allowed(issuer, constraint),
                ok,
                "{issuer} {constraint}"
            );
        }
    }

    #[test]
    fn keys_are_stored_as_der_per_issuer_and_replaced_per_issuer() {
        let store = Store::new();
        let mut tx = store.begin();
        let (k1, jwk1) = ec_jwk("k1");
        let (_, jwk2) = ec_jwk("k2");
        set_public_signing_keys(
            &mut tx,
            "https://a.example",
            &json!({"keys": [jwk1.clone(), jwk2]}),
        )
        .unwrap();
        // Another issuer publishes the same kid.
        let (_, jwk1b) = ec_jwk("k1");
        let mut constrained = jwk1b.clone();
        constrained["issuer"] = json!("https://b.example");
        set_public_signing_keys(
            &mut tx,
            "https://b.example",
            &json!({"keys": [constrained]}),
        )
        .unwrap();
        let k1_keys = keys_of(&mut tx, "k1").unwrap();
        assert_eq!(k1_keys.len(), 2);
        assert_eq!(k1_keys[0].public_key, k1.public_key_spki_der());
        assert_eq!(k1_keys[0].constraint, None);
        assert_eq!(k1_keys[1].constraint.as_deref(), Some("https://b.example"));
        // The stored JSON is CCF's: base64 DER under public_key, no constraint field when absent.
        let raw: Value = serde_json::from_slice(&tx.get(JWT_KEYS, b"k1").unwrap()).unwrap();
        assert_eq!(raw[0].as_object().unwrap().len(), 2, "{raw}");
        assert!(
            raw[0]["public_key"].as_str().unwrap().starts_with("MFkw"),
            "{raw}"
        );
        // Issuer a republishes only k1: its k2 goes, b's k1 stays.
        set_public_signing_keys(&mut tx, "https://a.example", &json!({"keys": [jwk1]})).unwrap();
        assert!(keys_of(&mut tx, "k2").unwrap().is_empty());
        assert_eq!(keys_of(&mut tx, "k1").unwrap().len(), 2);
        remove_public_signing_keys(&mut tx, "https://a.example").unwrap();
        let left = keys_of(&mut tx, "k1").unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].issuer, "https://b.example");
        remove_public_signing_keys(&mut tx, "https://b.example").unwrap();
        assert!(tx.get(JWT_KEYS, b"k1").is_none());
    }

    #[test]
    fn bad_key_sets_are_refused_without_writes() {
        let store = Store::new();
        let (_, good) = ec_jwk("k1");
        let mut off_domain = good.clone();
        off_domain["issuer"] = json!("https://evil.example");
        let mut no_kid = good.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        for (what, jwks) in [
            ("empty", json!({"keys": []})),
            ("not a set", json!([good.clone()])),
            ("no kid", json!({"keys": [no_kid]})),
            ("no material", json!({"keys": [{"kid": "k", "kty": "oct"}]})),
            ("bad x5c", json!({"keys": [{"kid": "k", "x5c": ["AAAA"]}]})),
            (
                "bad point",
                json!({"keys": [{"kid": "k", "crv": "P-256", "x": "AA", "y": "AA"}]}),
            ),
            (
                "constraint off-domain",
                json!({"keys": [good.clone(), off_domain]}),
            ),
        ] {
            let mut tx = store.begin();
            assert!(
                set_public_signing_keys(&mut tx, "https://a.example", &jwks).is_err(),
                "{what}"
            );
            assert_eq!(tx.written_maps().count(), 0, "{what}");
        }
    }

    #[test]
    fn tenant_constraints() {
        let c = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(issuer_matches(
            c,
            &json!({"iss": "https://login.microsoftonline.com/t1/v2.0", "tid": "t1"})
        ));
        assert!(!issuer_matches(
            c,
            &json!({"iss": "https://login.microsoftonline.com/t1/v2.0", "tid": "t2"})
        ));
        assert!(!issuer_matches(
            c,
            &json!({"iss": "https://login.microsoftonline.com/t1/v2.0"})
        ));
        assert!(issuer_matches("https://a", &json!({"iss": "https://a"})));
        assert!(!issuer_matches("https://a", &json!({})));
    }
}

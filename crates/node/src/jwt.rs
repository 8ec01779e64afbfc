//! CCF's `jwt` authentication policy: `Authorization: Bearer <header.payload.signature>`, the
//! header's `kid` naming a key that governance stored (`set_jwt_issuer`,
//! `set_jwt_public_signing_keys`), RS256 or ES256 signatures, `exp` required and `nbf` honoured
//! against the host's time, and the token's `iss` matching the key's issuer constraint.
//!
//! Keys live in `public:ccf.gov.jwt.public_signing_keys_metadata_v2` under their `kid`, as a
//! JSON list of `{issuer, constraint, jwk}` (coco keeps the JWK itself; CCF stores DER).

use base64::Engine as _;
use coco_app_api::{Caller, Request};
use coco_kv::Tx;
use serde_json::Value;

pub const JWT_ISSUERS: &str = "public:ccf.gov.jwt.issuers";
pub const JWT_KEYS: &str = "public:ccf.gov.jwt.public_signing_keys_metadata_v2";

fn b64url(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| "the token is not base64url".to_owned())
}

fn jwk_bytes(jwk: &Value, field: &str) -> Result<Vec<u8>, String> {
    b64url(
        jwk.get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("stored JWK lacks '{field}'"))?,
    )
}

fn verify_with(
    jwk: &Value,
    alg: &str,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    match (alg, jwk.get("kty").and_then(Value::as_str)) {
        ("RS256", Some("RSA")) => coco_crypto::verify_rs256(
            &jwk_bytes(jwk, "n")?,
            &jwk_bytes(jwk, "e")?,
            signing_input,
            signature,
        )
        .map_err(|_| "the token's signature does not verify".to_owned()),
        ("ES256", Some("EC")) if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
            coco_crypto::verify_es256_xy(
                &jwk_bytes(jwk, "x")?,
                &jwk_bytes(jwk, "y")?,
                signing_input,
                signature,
            )
            .map_err(|_| "the token's signature does not verify".to_owned())
        }
        (alg, kty) => Err(format!(
            "algorithm {alg} does not match the stored key type {kty:?}"
        )),
    }
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
    let header: Value = serde_json::from_slice(&b64url(h)?)
        .map_err(|_| "The JWT header is not JSON.".to_owned())?;
    let payload: Value = serde_json::from_slice(&b64url(p)?)
        .map_err(|_| "The JWT payload is not JSON.".to_owned())?;
    let signature = b64url(s)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("The JWT header has no alg.")?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or("The JWT header has no kid.")?;
    let stored = tx
        .get(JWT_KEYS, kid.as_bytes())
        .ok_or_else(|| format!("Unknown JWT signing key '{kid}'."))?;
    let entries: Vec<Value> = serde_json::from_slice(&stored)
        .map_err(|_| "Stored JWT key metadata does not parse.".to_owned())?;
    let signing_input = format!("{h}.{p}");
    let mut last_error = String::from("No usable key.");
    for entry in entries {
        let Some(jwk) = entry.get("jwk") else {
            continue;
        };
        if let Err(e) = verify_with(jwk, alg, signing_input.as_bytes(), &signature) {
            last_error = e;
            continue;
        }
        let issuer = entry
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let constraint = entry
            .get("constraint")
            .and_then(Value::as_str)
            .unwrap_or(&issuer)
            .to_owned();
        if payload.get("iss").and_then(Value::as_str) != Some(constraint.as_str()) {
            return Err(format!(
                "The token's issuer does not match the key's issuer constraint '{constraint}'."
            ));
        }
        let exp = payload
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or("The token has no exp claim.")?;
        if exp <= now_unix_seconds {
            return Err("The token has expired.".into());
        }
        if let Some(nbf) = payload.get("nbf").and_then(Value::as_i64)
            && nbf > now_unix_seconds
        {
            return Err("The token is not yet valid (nbf).".into());
        }
        return Ok(Caller::Jwt {
            key_issuer: issuer,
            header,
            payload,
        });
    }
    Err(last_error)
}

//! Request authentication (CCF's `src/endpoints/authentication/`): an endpoint's policies are
//! tried in order and the first that accepts the caller wins. Everything it looks up (user and
//! member certificates, member status, JWT issuers and keys) is read through the transaction
//! it is given, so the core thread and the read path authenticate the same way.

use bytes::Bytes;
use coco_app_api::{ApiError, AuthPolicy, Caller, ErrorCode, Request, SignedRequest, StatusCode};
use coco_codec::tables;
use coco_kv::Tx;

use crate::jwt;

/// Tries the endpoint's policies in order (CCF semantics: first success wins). The 401 lists
/// every policy's reason, and carries CCF's `WWW-Authenticate` hint if a COSE policy was tried.
pub(crate) fn authenticate(
    tx: &mut Tx,
    request: &Request,
    policies: &[AuthPolicy],
    unix_seconds: i64,
) -> Result<Caller, ApiError> {
    let mut reasons: Vec<String> = Vec::new();
    let mut tried_cose = false;
    for policy in policies {
        let result = match policy {
            AuthPolicy::NoAuth => Ok(Caller::Anonymous),
            AuthPolicy::AnyCert => match &request.peer_cert {
                Some(cert) => Ok(Caller::AnyCert { cert: cert.clone() }),
                None => Err("No TLS client certificate presented.".to_owned()),
            },
            AuthPolicy::UserCert | AuthPolicy::MemberCert => cert_auth(tx, request, *policy),
            AuthPolicy::Jwt => jwt::authenticate(tx, request, unix_seconds),
            AuthPolicy::MemberCoseSign1
            | AuthPolicy::ActiveMemberCoseSign1
            | AuthPolicy::UserCoseSign1 => {
                tried_cose = true;
                cose_auth(tx, request, *policy)
            }
        };
        match result {
            Ok(caller) => return Ok(caller),
            Err(reason) => {
                if !reasons.contains(&reason) {
                    reasons.push(reason);
                }
            }
        }
    }
    let error = ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidAuthenticationInfo,
        reasons.join(" "),
    );
    Err(if tried_cose {
        error.with_header(
            "www-authenticate",
            coco_app_api::error::COSE_WWW_AUTHENTICATE,
        )
    } else {
        error
    })
}

fn cert_auth(tx: &mut Tx, request: &Request, policy: AuthPolicy) -> Result<Caller, String> {
    let cert = request
        .peer_cert
        .as_ref()
        .ok_or("No TLS client certificate presented.")?;
    let (map, missing) = if policy == AuthPolicy::UserCert {
        (
            tables::USERS_CERTS,
            "Could not find matching user certificate.",
        )
    } else {
        (
            tables::MEMBERS_CERTS,
            "Could not find matching member certificate.",
        )
    };
    // The id is the SHA-256 of the DER, so a matching key means a matching certificate.
    tx.get(map, cert.fingerprint_hex.as_bytes())
        .ok_or(missing)?;
    let id = cert.fingerprint_hex.clone();
    Ok(if policy == AuthPolicy::UserCert {
        Caller::User {
            id,
            cert: cert.clone(),
        }
    } else {
        Caller::Member {
            id,
            cert: cert.clone(),
        }
    })
}

/// CCF's COSE Sign1 request authentication (`src/endpoints/authentication/cose_auth.cpp`):
/// a tagged COSE_Sign1 body whose `kid` names a member (or user) certificate in the KV, an
/// algorithm matching that key, the CCF message headers, and a signature that verifies.
fn cose_auth(tx: &mut Tx, request: &Request, policy: AuthPolicy) -> Result<Caller, String> {
    let content_type = request.header("content-type").unwrap_or("");
    if !content_type.starts_with("application/cose") {
        return Err(format!(
            "Expected a COSE Sign1 body with content type application/cose, got {content_type:?}."
        ));
    }
    let parsed = coco_codec::cose::parse_sign1(&request.body)
        .map_err(|e| format!("Body is not a COSE Sign1 message: {e}."))?;
    let user = policy == AuthPolicy::UserCoseSign1;
    let kid = std::str::from_utf8(&parsed.kid)
        .ok()
        .filter(|k| coco_types::MemberId::from_hex(k).is_some());
    let kid = kid.ok_or("The COSE kid must be the hex SHA-256 of the signer's certificate.")?;
    let map = if user {
        tables::USERS_CERTS
    } else {
        tables::MEMBERS_CERTS
    };
    let pem = tx
        .get(map, kid.as_bytes())
        .ok_or_else(|| format!("Unknown {} {kid}.", if user { "user" } else { "member" }))?;
    let spki = std::str::from_utf8(&pem)
        .ok()
        .and_then(|p| coco_crypto::pem_to_der_certs(p).ok())
        .and_then(|ders| ders.into_iter().next())
        .and_then(|der| coco_crypto::cert_public_key_spki_der(&der).ok())
        .ok_or("The signer's stored certificate does not parse.")?;
    let curve =
        coco_crypto::spki_curve(&spki).map_err(|e| format!("Unsupported signer key: {e}."))?;
    if parsed.alg != Some(curve.cose_alg()) {
        return Err(format!(
            "COSE alg {:?} does not match the signer's key (expected {}).",
            parsed.alg,
            curve.cose_alg()
        ));
    }
    let prefix = if user {
        coco_codec::cose::USER_MSG_PREFIX
    } else {
        coco_codec::cose::GOV_MSG_PREFIX
    };
    let headers = coco_codec::cose::request_headers(&parsed, prefix)
        .map_err(|e| format!("Invalid COSE header: {e}."))?;
    let msg_type = headers
        .msg_type
        .ok_or_else(|| format!("Missing {prefix}type header."))?;
    let created_at = headers
        .created_at
        .ok_or_else(|| format!("Missing {prefix}created_at header."))?;
    if created_at < 0 {
        return Err(format!("{prefix}created_at must not be negative."));
    }
    let payload = parsed
        .payload
        .clone()
        .ok_or("A signed request must carry its payload (detached payloads are not accepted).")?;
    let tbs = coco_codec::cose::sig_structure(&parsed.protected, &payload);
    coco_crypto::verify_cose(&spki, &tbs, &parsed.signature)
        .map_err(|_| "The COSE signature does not verify.".to_owned())?;
    let signed = SignedRequest {
        msg_type,
        created_at,
        proposal_id: headers.proposal_id,
        payload: Bytes::from(payload),
        envelope: request.body.clone(),
        signature: Bytes::from(parsed.signature),
    };
    let id = kid.to_owned();
    if user {
        return Ok(Caller::UserCose { id, signed });
    }
    let active = tx
        .get(tables::MEMBERS_INFO, id.as_bytes())
        .and_then(|v| tables::from_ccf_json::<tables::MemberInfo>(&v).ok())
        .is_some_and(|i| i.status == tables::MemberStatus::Active);
    if policy == AuthPolicy::ActiveMemberCoseSign1 && !active {
        return Err(format!("Member {id} is not active."));
    }
    Ok(Caller::MemberCose { id, active, signed })
}

//! CCF's logging sample (`samples/apps/logging/logging.cpp`), the app CCF's own test suite uses.
//!
//! Records live in the private map `records` and the public map `public:records` (`?scope=x`
//! selects `records-x` / `public:records-x`). As in the C++ sample, keys and values are stored in
//! JSON form: the key `42` as the bytes `42`, the message `hello` as `"hello"`.

use bytes::Bytes;
use coco_app_api::{
    ApiError, AuthPolicy, EndpointContext, EndpointMode, ErrorCode, Method, Registry, Response,
    StatusCode,
};
use serde::Deserialize;

const PRIVATE_MAP: &str = "records";
const PUBLIC_MAP: &str = "public:records";

/// Who may call the logging endpoints: as CCF's C++ sample, `jwt`, `user_cert` and
/// `user_cose_sign1`.
const USER_AUTH: &[AuthPolicy] = &[
    AuthPolicy::Jwt,
    AuthPolicy::UserCert,
    AuthPolicy::UserCoseSign1,
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogRecord {
    id: u64,
    msg: String,
    #[serde(default)]
    record_claim: bool,
}

#[derive(Clone, Copy)]
enum Visibility {
    Private,
    Public,
}

impl Visibility {
    fn prefix(self) -> &'static str {
        match self {
            Visibility::Private => "/app/log/private",
            Visibility::Public => "/app/log/public",
        }
    }

    fn map_name(self, scope: Option<&str>) -> String {
        let base = match self {
            Visibility::Private => PRIVATE_MAP,
            Visibility::Public => PUBLIC_MAP,
        };
        match scope {
            Some(s) => format!("{base}-{s}"),
            None => base.to_owned(),
        }
    }
}

/// The logging app's endpoints, under `/app`.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.index_seqnos_by_key(PUBLIC_MAP);
    r.index_seqnos_by_key(PRIVATE_MAP);
    r.route_fn(
        Method::GET,
        "/app/log/public/historical/range",
        USER_AUTH,
        EndpointMode::ReadOnly,
        "Every version of a public record written in a seqno range (paginated, @nextLink)",
        historical_range,
    );
    r.route_fn(
        Method::GET,
        "/app/log/private/historical/sparse",
        USER_AUTH,
        EndpointMode::ReadOnly,
        "The versions of a private record written at the given seqnos (`seqnos=a,b-c`)",
        historical_sparse,
    );
    for vis in [Visibility::Private, Visibility::Public] {
        let p = vis.prefix();
        r.route_fn(
            Method::POST,
            p,
            USER_AUTH,
            EndpointMode::ReadWrite,
            "Record a message under an id",
            move |ctx| post(ctx, vis),
        );
        r.route_fn(
            Method::GET,
            p,
            USER_AUTH,
            EndpointMode::ReadOnly,
            "Read the message recorded under an id",
            move |ctx| get(ctx, vis),
        );
        r.route_fn(
            Method::DELETE,
            p,
            USER_AUTH,
            EndpointMode::ReadWrite,
            "Delete the message recorded under an id",
            move |ctx| delete(ctx, vis),
        );
        r.route_fn(
            Method::GET,
            &format!("{p}/count"),
            USER_AUTH,
            EndpointMode::ReadOnly,
            "Number of records",
            move |ctx| count(ctx, vis),
        );
        r.route_fn(
            Method::DELETE,
            &format!("{p}/all"),
            USER_AUTH,
            EndpointMode::ReadWrite,
            "Delete all records",
            move |ctx| delete_all(ctx, vis),
        );
        r.route_fn(
            Method::GET,
            &format!("{p}/historical"),
            USER_AUTH,
            EndpointMode::Historical,
            "The message recorded under an id by the transaction in x-ms-ccf-transaction-id",
            move |ctx| historical(ctx, vis, false),
        );
        r.route_fn(
            Method::GET,
            &format!("{p}/historical_receipt"),
            USER_AUTH,
            EndpointMode::Historical,
            "The message recorded under an id by that transaction, with its receipt",
            move |ctx| historical(ctx, vis, true),
        );
    }
    r.route_fn(
        Method::GET,
        "/app/log/public/cose_receipt",
        USER_AUTH,
        EndpointMode::Historical,
        "COSE receipt of the transaction in x-ms-ccf-transaction-id",
        |ctx| {
            let h = ctx.historical()?;
            let receipt = h.cose_receipt.clone().ok_or_else(|| no_cose(h.txid))?;
            Ok(binary(receipt, "application/cose"))
        },
    );
    r.route_fn(
        Method::GET,
        "/app/log/public/cbor_merkle_proof",
        USER_AUTH,
        EndpointMode::Historical,
        "CBOR inclusion proof of the transaction in x-ms-ccf-transaction-id",
        |ctx| {
            let h = ctx.historical()?;
            let proof = h.cbor_merkle_proof.clone().ok_or_else(|| no_cose(h.txid))?;
            Ok(binary(proof, "application/cbor"))
        },
    );
    r.route_fn(
        Method::GET,
        "/app/log/public/cose_signature",
        USER_AUTH,
        EndpointMode::Historical,
        "COSE root signature covering the transaction in x-ms-ccf-transaction-id",
        |ctx| {
            use base64::Engine as _;
            let h = ctx.historical()?;
            Ok(Response::ok_json(&serde_json::json!({
                "cose_signature": base64::engine::general_purpose::STANDARD.encode(&h.cose_signature),
            })))
        },
    );
    r.route_fn(
        Method::GET,
        "/app/log/public/cose_endorsements",
        USER_AUTH,
        EndpointMode::Historical,
        "COSE endorsements from the current service identity to the earlier one that signed \
         the transaction in x-ms-ccf-transaction-id (404 for transactions of the current service)",
        |ctx| {
            use base64::Engine as _;
            let h = ctx.historical()?;
            let endorsements = h.cose_endorsements.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::ResourceNotFound,
                    "No COSE endorsements available for this transaction",
                )
            })?;
            let b64 = base64::engine::general_purpose::STANDARD;
            Ok(Response::ok_json(&serde_json::json!({
                "endorsements": endorsements.iter().map(|e| b64.encode(e)).collect::<Vec<_>>(),
            })))
        },
    );
    r
}

fn seqno_param(ctx: &EndpointContext<'_>, name: &str) -> Result<Option<u64>, ApiError> {
    match ctx.request.query_params().get(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_query(format!("Invalid query parameter '{name}': {v:?}."))),
    }
}

/// `{seqno, id, msg}` for each of `states` that wrote `id` in `map` (removals are skipped).
fn versions(
    states: Vec<(coco_types::TxId, coco_kv::Store)>,
    map: &str,
    id: u64,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let mut entries = Vec::new();
    for (txid, store) in states {
        if let Some(v) = store.begin().get(map, &key(id)) {
            let msg: String = serde_json::from_slice(&v).map_err(|e| {
                ApiError::internal(format!("Record {id} at {txid} is not a JSON string: {e}"))
            })?;
            entries.push(serde_json::json!({ "seqno": txid.seqno, "id": id, "msg": msg }));
        }
    }
    Ok(entries)
}

/// CCF's `historical/range`: the versions of public record `id` in `from_seqno..=to_seqno`
/// (defaults: 1 and the last committed seqno), found through the seqnos-by-key index; a page
/// covers at most `HISTORICAL_RANGE_SEQNOS_PER_PAGE` seqnos and links to the next.
fn historical_range(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    use coco_types::limits::HISTORICAL_RANGE_SEQNOS_PER_PAGE;
    let id = id_param(ctx)?;
    let scope = scope(ctx)?;
    let map = Visibility::Public.map_name(scope.as_deref());
    let from = seqno_param(ctx, "from_seqno")?.unwrap_or(1);
    let requested_to = seqno_param(ctx, "to_seqno")?;
    let history = ctx.history()?;
    let commit = history.committed_seqno();
    let to = requested_to.unwrap_or(commit);
    if from == 0 || from > to {
        return Err(ApiError::bad_query(format!(
            "Invalid range: from_seqno {from} to to_seqno {to}."
        )));
    }
    if to > commit {
        return Err(ApiError::bad_query(format!(
            "to_seqno {to} is not committed yet (commit is {commit})."
        )));
    }
    let page_to = to.min(from.saturating_add(HISTORICAL_RANGE_SEQNOS_PER_PAGE - 1));
    let seqnos = history.seqnos_by_key(&map, &key(id), from, page_to)?;
    let Some(states) = history.writes_at(&seqnos)? else {
        return Ok(coco_app_api::historical_loading());
    };
    let mut body = serde_json::json!({ "entries": versions(states, &map, id)? });
    if page_to < to {
        let scope = scope.map(|s| format!("&scope={s}")).unwrap_or_default();
        body["@nextLink"] = serde_json::json!(format!(
            "/app/log/public/historical/range?from_seqno={}&to_seqno={to}&id={id}{scope}",
            page_to + 1
        ));
    }
    Ok(Response::ok_json(&body))
}

/// CCF's `historical/sparse`: the versions of private record `id` written at `seqnos`
/// (`a,b-c`, committed, at most a page's worth).
fn historical_sparse(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    use coco_types::limits::HISTORICAL_RANGE_SEQNOS_PER_PAGE;
    let id = id_param(ctx)?;
    let map = Visibility::Private.map_name(scope(ctx)?.as_deref());
    let raw = ctx
        .request
        .query_params()
        .remove("seqnos")
        .ok_or_else(|| ApiError::bad_query("Missing query parameter 'seqnos'."))?;
    let bad = || ApiError::bad_query(format!("Invalid seqnos {raw:?}: expected a,b-c."));
    let mut seqnos: Vec<u64> = Vec::new();
    for part in raw.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u64, u64) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a == 0 || a > b || seqnos.len() as u64 + (b - a + 1) > HISTORICAL_RANGE_SEQNOS_PER_PAGE {
            return Err(bad());
        }
        seqnos.extend(a..=b);
    }
    seqnos.sort_unstable();
    seqnos.dedup();
    let history = ctx.history()?;
    let Some(states) = history.writes_at(&seqnos)? else {
        return Ok(coco_app_api::historical_loading());
    };
    Ok(Response::ok_json(
        &serde_json::json!({ "entries": versions(states, &map, id)? }),
    ))
}

fn no_cose(txid: coco_types::TxId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ResourceNotFound,
        format!("{txid} is a signature transaction: it has a JSON receipt only."),
    )
}

fn binary(body: Bytes, content_type: &str) -> Response {
    Response {
        status: StatusCode::OK,
        headers: vec![("content-type".into(), content_type.into())],
        body,
    }
}

/// CCF's `historical` and `historical_receipt`: the record as written by that transaction
/// (404 if it did not write the id).
fn historical(
    ctx: &mut EndpointContext<'_>,
    vis: Visibility,
    with_receipt: bool,
) -> Result<Response, ApiError> {
    let id = id_param(ctx)?;
    let map = vis.map_name(scope(ctx)?.as_deref());
    let h = ctx.historical()?;
    let value = h.store.begin().get(&map, &key(id));
    let Some(v) = value else {
        return Err(ApiError::not_found(format!(
            "Transaction {} did not write record {id}.",
            h.txid
        )));
    };
    let msg: String = serde_json::from_slice(&v)
        .map_err(|e| ApiError::internal(format!("Stored record {id} is not a JSON string: {e}")))?;
    Ok(Response::ok_json(&if with_receipt {
        serde_json::json!({ "msg": msg, "receipt": h.receipt })
    } else {
        serde_json::json!({ "msg": msg })
    }))
}

fn scope(ctx: &EndpointContext<'_>) -> Result<Option<String>, ApiError> {
    match ctx.request.query_params().remove("scope") {
        None => Ok(None),
        Some(s)
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(Some(s))
        }
        Some(s) => Err(ApiError::bad_query(format!(
            "Invalid scope {s:?}: expected letters, digits, '-' or '_'."
        ))),
    }
}

fn id_param(ctx: &EndpointContext<'_>) -> Result<u64, ApiError> {
    let params = ctx.request.query_params();
    let raw = params
        .get("id")
        .ok_or_else(|| ApiError::bad_query("Missing query parameter 'id'."))?;
    raw.parse::<u64>().map_err(|_| {
        ApiError::bad_query(format!(
            "Invalid query parameter 'id': {raw:?} is not an unsigned integer."
        ))
    })
}

fn key(id: u64) -> Bytes {
    Bytes::from(id.to_string())
}

fn post(ctx: &mut EndpointContext<'_>, vis: Visibility) -> Result<Response, ApiError> {
    let content_type = ctx
        .request
        .header("content-type")
        .unwrap_or("application/json");
    // A COSE-signed request carries its JSON as the signed payload (checked by authentication).
    if ctx.caller.signed().is_none() && !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedContentType,
            format!("Unsupported content type {content_type:?}: expected application/json."),
        ));
    }
    let rec: LogRecord = ctx.json_body()?;
    if rec.msg.is_empty() {
        return Err(ApiError::invalid_input(
            "Cannot record an empty log message.",
        ));
    }
    let map = vis.map_name(scope(ctx)?.as_deref());
    let value = serde_json::to_vec(&rec.msg).expect("a string always serialises");
    ctx.tx.put(&map, key(rec.id), Bytes::from(value));
    if rec.record_claim {
        ctx.claims_digest = Some(coco_crypto::sha256(rec.msg.as_bytes()));
    }
    Ok(Response::ok_json(&true))
}

fn get(ctx: &mut EndpointContext<'_>, vis: Visibility) -> Result<Response, ApiError> {
    let id = id_param(ctx)?;
    let map = vis.map_name(scope(ctx)?.as_deref());
    match ctx.tx.get(&map, &key(id)) {
        Some(v) => {
            let msg: String = serde_json::from_slice(&v).map_err(|e| {
                ApiError::internal(format!("Stored record {id} is not a JSON string: {e}"))
            })?;
            Ok(Response::ok_json(&serde_json::json!({ "msg": msg })))
        }
        None => Err(ApiError::not_found(format!("No such record: {id}."))),
    }
}

fn delete(ctx: &mut EndpointContext<'_>, vis: Visibility) -> Result<Response, ApiError> {
    let id = id_param(ctx)?;
    let map = vis.map_name(scope(ctx)?.as_deref());
    ctx.tx.remove(&map, &key(id));
    Ok(Response::ok_json(&true))
}

fn count(ctx: &mut EndpointContext<'_>, vis: Visibility) -> Result<Response, ApiError> {
    let map = vis.map_name(scope(ctx)?.as_deref());
    Ok(Response::ok_json(&ctx.tx.size(&map)))
}

fn delete_all(ctx: &mut EndpointContext<'_>, vis: Visibility) -> Result<Response, ApiError> {
    let map = vis.map_name(scope(ctx)?.as_deref());
    ctx.tx.clear(&map);
    Ok(Response::ok_json(&true))
}

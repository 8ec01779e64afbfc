//! CCF's governance API at `api-version=2024-07-01` (ccf-reference §3.3): the parts that exist so
//! far — member state digests and acknowledgements (Accepted → Active), and service views.
//! Proposals, ballots and the JavaScript constitution follow in the governance issue.

use base64::Engine as _;
use bytes::Bytes;
use coco_app_api::{
    ApiError, AuthPolicy, Caller, EndpointContext, EndpointMode, ErrorCode, Method, Registry,
    Response, StatusCode,
};
use coco_codec::tables;
use serde_json::{Value, json};

/// API versions CCF's `/gov` accepts.
const API_VERSIONS: &[&str] = &["2024-07-01", "2023-06-01-preview"];

const NO_AUTH: &[AuthPolicy] = &[AuthPolicy::NoAuth];
const MEMBER_COSE: &[AuthPolicy] = &[AuthPolicy::MemberCoseSign1];
const ACTIVE_MEMBER_COSE: &[AuthPolicy] = &[AuthPolicy::ActiveMemberCoseSign1];

/// Placeholder handler of endpoints the node itself runs (proposals need the constitution): the
/// registry still routes, authenticates and documents them.
fn run_by_node(_: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    Err(ApiError::internal("this endpoint is executed by the node"))
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.route_fn(
        Method::POST,
        "/gov/members/state-digests/{memberId}:update",
        MEMBER_COSE,
        EndpointMode::ReadWrite,
        "Record the current state digest for a member to acknowledge",
        update_state_digest,
    );
    r.route_fn(
        Method::GET,
        "/gov/members/state-digests/{memberId}",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "The state digest a member must acknowledge",
        get_state_digest,
    );
    r.route_fn(
        Method::POST,
        "/gov/members/state-digests/{memberId}:ack",
        MEMBER_COSE,
        EndpointMode::ReadWrite,
        "Acknowledge the state digest: the member becomes Active",
        ack_state_digest,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/members",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "All members",
        members,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/members/{memberId}",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "One member",
        member,
    );
    r.route_fn(
        Method::POST,
        "/gov/members/proposals:create",
        ACTIVE_MEMBER_COSE,
        EndpointMode::ReadWrite,
        "Submit a proposal",
        run_by_node,
    );
    r.route_fn(
        Method::GET,
        "/gov/members/proposals",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "All proposals",
        run_by_node,
    );
    r.route_fn(
        Method::GET,
        "/gov/members/proposals/{proposalId}",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "One proposal",
        run_by_node,
    );
    r.route_fn(
        Method::GET,
        "/gov/members/proposals/{proposalId}/actions",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "A proposal's actions",
        run_by_node,
    );
    r.route_fn(
        Method::POST,
        "/gov/members/proposals/{proposalId}:withdraw",
        ACTIVE_MEMBER_COSE,
        EndpointMode::ReadWrite,
        "Withdraw a proposal",
        run_by_node,
    );
    r.route_fn(
        Method::POST,
        "/gov/members/proposals/{proposalId}/ballots/{memberId}:submit",
        ACTIVE_MEMBER_COSE,
        EndpointMode::ReadWrite,
        "Vote on a proposal",
        run_by_node,
    );
    r.route_fn(
        Method::GET,
        "/gov/members/proposals/{proposalId}/ballots/{memberId}",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "A member's ballot",
        run_by_node,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/jwk",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "JWT issuers and their signing keys",
        jwk,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/join-policy",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "What a joining node's attestation must match",
        join_policy,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/javascript-app",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "The JavaScript application's endpoints",
        javascript_app,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/js-modules",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "The JavaScript application's modules",
        js_modules,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/js-modules/{moduleName}",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "One JavaScript module's source",
        js_module,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/constitution",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "The constitution's JavaScript source",
        constitution,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/nodes",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "All nodes",
        nodes,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/nodes/{nodeId}",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "One node",
        node,
    );
    r.route_fn(
        Method::GET,
        "/gov/recovery/encrypted-shares/{memberId}",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "A recovery member's encrypted recovery share",
        encrypted_share,
    );
    r.route_fn(
        Method::POST,
        "/gov/recovery/members/{memberId}:recover",
        ACTIVE_MEMBER_COSE,
        EndpointMode::ReadWrite,
        "Submit a decrypted recovery share (msg type recovery_share)",
        run_by_node,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/transactions/commit",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "The latest committed transaction",
        commit,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/transactions/{transactionId}",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "Status of a transaction",
        transaction,
    );
    r.route_fn(
        Method::GET,
        "/gov/service/info",
        NO_AUTH,
        EndpointMode::ReadOnly,
        "Service status, identity and configuration",
        service_info,
    );
    r
}

/// Every versioned `/gov` call must name a supported `api-version`.
fn check_api_version(ctx: &EndpointContext<'_>) -> Result<(), ApiError> {
    check_request_api_version(ctx.request)
}

pub(crate) fn check_request_api_version(request: &coco_app_api::Request) -> Result<(), ApiError> {
    match request.query_params().get("api-version") {
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingApiVersionParameter,
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if API_VERSIONS.contains(&v.as_str()) => Ok(()),
        Some(v) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedApiVersionValue,
            format!(
                "Unsupported api-version '{v}'. The supported api-versions are: {}.",
                API_VERSIONS.join(", ")
            ),
        )),
    }
}

/// The caller's signed request, which must carry `msg_type` and be by the member in the path.
fn signed_by_path_member<'a>(
    ctx: &'a EndpointContext<'_>,
    msg_type: &str,
) -> Result<(&'a str, &'a coco_app_api::SignedRequest), ApiError> {
    signed_by_member(
        ctx.caller,
        ctx.path_params.get("memberId").map(String::as_str),
        msg_type,
    )
}

/// `caller`'s signed request, which must carry `msg_type` and be by `path_member`.
pub(crate) fn signed_by_member<'a>(
    caller: &'a Caller,
    path_member: Option<&str>,
    msg_type: &str,
) -> Result<(&'a str, &'a coco_app_api::SignedRequest), ApiError> {
    let Caller::MemberCose { id, signed, .. } = caller else {
        return Err(ApiError::cose_unauthorized(
            "A COSE Sign1 request signed by a member is required.",
        ));
    };
    if signed.msg_type != msg_type {
        return Err(ApiError::cose_unauthorized(format!(
            "Expected ccf.gov.msg.type '{msg_type}', got '{}'.",
            signed.msg_type
        )));
    }
    if path_member != Some(id.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AuthorizationFailed,
            format!(
                "Member {id} cannot act for member {}.",
                path_member.unwrap_or("")
            ),
        ));
    }
    Ok((id, signed))
}

/// The digest members acknowledge: the Merkle root of the latest signature transaction.
fn current_state_digest(ctx: &mut EndpointContext<'_>) -> Result<String, ApiError> {
    let raw = ctx
        .tx
        .get(tables::SIGNATURES, &tables::SINGLETON_KEY)
        .ok_or_else(|| {
            ApiError::internal("No signature transaction yet: nothing to acknowledge.")
        })?;
    let sig: tables::SignatureValue = tables::from_ccf_json(&raw)
        .map_err(|e| ApiError::internal(format!("Stored signature does not parse: {e}")))?;
    Ok(hex::encode(sig.root))
}

fn stored_ack(ctx: &mut EndpointContext<'_>, member_id: &str) -> Result<Option<Value>, ApiError> {
    match ctx.tx.get(tables::MEMBERS_ACKS, member_id.as_bytes()) {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("Stored ack does not parse: {e}"))),
    }
}

fn update_state_digest(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let (id, _) = signed_by_path_member(ctx, "state_digest")?;
    let id = id.to_owned();
    let digest = current_state_digest(ctx)?;
    let mut ack = stored_ack(ctx, &id)?.unwrap_or_else(|| json!({}));
    ack["state_digest"] = json!(digest);
    ctx.tx.put(
        tables::MEMBERS_ACKS,
        Bytes::from(id.clone()),
        Bytes::from(tables::to_ccf_json(&ack).expect("json")),
    );
    Ok(Response::ok_json(
        &json!({ "memberId": id, "stateDigest": digest }),
    ))
}

fn get_state_digest(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let id = ctx.path_params["memberId"].clone();
    match stored_ack(ctx, &id)?.and_then(|a| a.get("state_digest").cloned()) {
        Some(d) => Ok(Response::ok_json(
            &json!({ "memberId": id, "stateDigest": d }),
        )),
        None => Err(ApiError::not_found(format!(
            "No state digest found for member {id}."
        ))),
    }
}

fn ack_state_digest(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let (id, signed) = signed_by_path_member(ctx, "ack")?;
    let (id, signed) = (id.to_owned(), signed.clone());
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ack {
        state_digest: String,
    }
    let body: Ack = serde_json::from_slice(&signed.payload)
        .map_err(|e| ApiError::invalid_input(format!("Invalid ack payload: {e}")))?;
    let mut ack = stored_ack(ctx, &id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "No state digest to acknowledge for member {id}: call :update first."
        ))
    })?;
    if ack.get("state_digest").and_then(Value::as_str) != Some(body.state_digest.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::StateDigestMismatch,
            "Submitted state digest is not valid.",
        ));
    }
    let raw = ctx
        .tx
        .get(tables::MEMBERS_INFO, id.as_bytes())
        .ok_or_else(|| ApiError::not_found(format!("Member {id} has no info record.")))?;
    let mut info: tables::MemberInfo = tables::from_ccf_json(&raw)
        .map_err(|e| ApiError::internal(format!("members.info does not parse: {e}")))?;
    if info.status != tables::MemberStatus::Active {
        info.status = tables::MemberStatus::Active;
        ctx.tx.put(
            tables::MEMBERS_INFO,
            Bytes::from(id.clone()),
            Bytes::from(tables::to_ccf_json(&info).expect("json")),
        );
    }
    ack["cose_sign1_req"] =
        json!(base64::engine::general_purpose::STANDARD.encode(&signed.envelope));
    ctx.tx.put(
        tables::MEMBERS_ACKS,
        Bytes::from(id),
        Bytes::from(tables::to_ccf_json(&ack).expect("json")),
    );
    Ok(Response::new(StatusCode::NO_CONTENT))
}

fn describe_member(ctx: &mut EndpointContext<'_>, id: &str) -> Result<Option<Value>, ApiError> {
    let Some(cert) = ctx.tx.get(tables::MEMBERS_CERTS, id.as_bytes()) else {
        return Ok(None);
    };
    let info: Option<tables::MemberInfo> = match ctx.tx.get(tables::MEMBERS_INFO, id.as_bytes()) {
        Some(v) => Some(
            tables::from_ccf_json(&v)
                .map_err(|e| ApiError::internal(format!("members.info does not parse: {e}")))?,
        ),
        None => None,
    };
    let mut v = json!({
        "memberId": id,
        "certificate": String::from_utf8_lossy(&cert),
        "status": info.as_ref().map(|i| serde_json::to_value(i.status).expect("enum")).unwrap_or(Value::Null),
        "memberData": info.as_ref().map(|i| i.member_data.clone()).unwrap_or(Value::Null),
    });
    if let Some(role) = info.as_ref().and_then(|i| i.recovery_role) {
        v["recoveryRole"] = serde_json::to_value(role).expect("enum");
    }
    if let Some(k) = ctx
        .tx
        .get(tables::MEMBERS_ENCRYPTION_PUBLIC_KEYS, id.as_bytes())
    {
        v["publicEncryptionKey"] = json!(String::from_utf8_lossy(&k));
    }
    Ok(Some(v))
}

fn members(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let mut ids = Vec::new();
    ctx.tx.for_each(tables::MEMBERS_CERTS, |k, _| {
        ids.push(String::from_utf8_lossy(k).into_owned());
        true
    });
    let mut value = Vec::with_capacity(ids.len());
    for id in ids {
        value.extend(describe_member(ctx, &id)?);
    }
    Ok(Response::ok_json(&json!({ "value": value })))
}

fn member(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let id = ctx.path_params["memberId"].clone();
    describe_member(ctx, &id)?
        .map(|v| Response::ok_json(&v))
        .ok_or_else(|| ApiError::not_found(format!("Member {id} does not exist.")))
}

/// `GET /gov/recovery/encrypted-shares/{memberId}`: `{memberId, encryptedShare}` (base64 of
/// the RSA-OAEP ciphertext only the member can open).
fn encrypted_share(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let id = ctx.path_params["memberId"].clone();
    let share = ctx
        .tx
        .get(tables::RECOVERY_SHARES, &tables::SINGLETON_KEY)
        .and_then(|v| tables::from_ccf_json::<tables::RecoverySharesInfo>(&v).ok())
        .and_then(|info| info.encrypted_shares.get(&id).cloned())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::ResourceNotFound,
                format!("Recovery share not found for member {id}."),
            )
        })?;
    Ok(Response::ok_json(
        &json!({ "memberId": id, "encryptedShare": share }),
    ))
}

fn service_info(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let raw = ctx
        .tx
        .get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
        .ok_or_else(|| ApiError::internal("No service.info record."))?;
    let info: tables::ServiceInfo = tables::from_ccf_json(&raw)
        .map_err(|e| ApiError::internal(format!("service.info does not parse: {e}")))?;
    let config: tables::ServiceConfiguration =
        match ctx.tx.get(tables::SERVICE_CONFIG, &tables::SINGLETON_KEY) {
            Some(v) => tables::from_ccf_json(&v)
                .map_err(|e| ApiError::internal(format!("service.config does not parse: {e}")))?,
            None => tables::ServiceConfiguration::default(),
        };
    let mut body = json!({
        "status": serde_json::to_value(info.status).expect("enum"),
        "certificate": info.cert,
        "recoveryCount": info.recovery_count.unwrap_or(0),
        "serviceData": info.service_data,
        "configuration": {
            "recoveryThreshold": config.recovery_threshold,
            "maximumNodeCertificateValidityDays": config.maximum_node_certificate_validity_days,
            "reconfigurationType": config.reconfiguration_type.map(|t| serde_json::to_value(t).expect("enum")),
            "recentCoseProposalsWindowSize": config.recent_cose_proposals_window_size,
        },
    });
    if let Some(t) = info.current_service_create_txid {
        body["creationTransactionId"] = json!(t.to_string());
    }
    Ok(Response::ok_json(&body))
}

fn constitution(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let raw = ctx
        .tx
        .get(tables::CONSTITUTION, &tables::SINGLETON_KEY)
        .ok_or_else(|| ApiError::not_found("The service has no constitution."))?;
    let source: String = serde_json::from_slice(&raw).map_err(|e| {
        ApiError::internal(format!("Stored constitution is not a JSON string: {e}"))
    })?;
    Ok(Response {
        status: StatusCode::OK,
        headers: vec![("content-type".into(), "text/javascript".into())],
        body: Bytes::from(source),
    })
}

fn describe_node(id: &str, info: &tables::NodeInfo, cert: Option<Bytes>) -> Value {
    json!({
        "nodeId": id,
        "status": serde_json::to_value(info.status).expect("enum"),
        "nodeData": info.node_data,
        "certificate": cert.map(|c| String::from_utf8_lossy(&c).into_owned()),
        "quoteInfo": { "format": serde_json::to_value(info.quote_info.format).expect("enum") },
        "rpcInterfaces": serde_json::to_value(&info.rpc_interfaces).expect("interfaces"),
    })
}

fn load_node(ctx: &mut EndpointContext<'_>, id: &str) -> Result<Option<Value>, ApiError> {
    let Some(raw) = ctx.tx.get(tables::NODES_INFO, id.as_bytes()) else {
        return Ok(None);
    };
    let info: tables::NodeInfo = tables::from_ccf_json(&raw)
        .map_err(|e| ApiError::internal(format!("nodes.info of {id} does not parse: {e}")))?;
    let cert = ctx
        .tx
        .get(tables::NODES_ENDORSED_CERTIFICATES, id.as_bytes());
    Ok(Some(describe_node(id, &info, cert)))
}

fn nodes(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let mut ids = Vec::new();
    ctx.tx.for_each(tables::NODES_INFO, |k, _| {
        ids.push(String::from_utf8_lossy(k).into_owned());
        true
    });
    let mut value = Vec::with_capacity(ids.len());
    for id in ids {
        value.extend(load_node(ctx, &id)?);
    }
    Ok(Response::ok_json(&json!({ "value": value })))
}

fn node(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let id = ctx.path_params["nodeId"].clone();
    load_node(ctx, &id)?
        .map(|v| Response::ok_json(&v))
        .ok_or_else(|| ApiError::not_found(format!("Node {id} does not exist.")))
}

fn commit(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    Ok(Response::ok_json(
        &json!({ "transactionId": ctx.consensus.commit.to_string(), "status": "Committed" }),
    ))
}

fn transaction(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let raw = ctx.path_params["transactionId"].clone();
    let txid: coco_types::TxId = raw
        .parse()
        .map_err(|e: coco_types::TxIdParseError| ApiError::bad_query(e.to_string()))?;
    let status = ctx.consensus.tx_status(txid).as_str();
    Ok(Response::ok_json(
        &json!({ "transactionId": txid.to_string(), "status": status }),
    ))
}

const JS_MODULES: &str = "public:ccf.gov.modules";
const JS_ENDPOINTS: &str = "public:ccf.gov.endpoints";

fn javascript_app(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let mut raw = Vec::new();
    ctx.tx.for_each(JS_ENDPOINTS, |k, v| {
        raw.push((String::from_utf8_lossy(k).into_owned(), v.clone()));
        true
    });
    let mut endpoints = serde_json::Map::new();
    for (key, value) in raw {
        let Some((method, url)) = key.split_once(' ') else {
            continue;
        };
        let props: Value = serde_json::from_slice(&value)
            .map_err(|e| ApiError::internal(format!("endpoint {key} does not parse: {e}")))?;
        let entry = endpoints.entry(url.to_owned()).or_insert_with(|| json!({}));
        entry[method.to_lowercase()] = props;
    }
    Ok(Response::ok_json(&json!({ "endpoints": endpoints })))
}

fn js_modules(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let mut value = Vec::new();
    ctx.tx.for_each(JS_MODULES, |k, _| {
        value.push(json!({ "moduleName": String::from_utf8_lossy(k) }));
        true
    });
    Ok(Response::ok_json(&json!({ "value": value })))
}

fn js_module(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let name = ctx.path_params["moduleName"].clone();
    // Module names start with "/"; in the URL it is percent-encoded or omitted.
    let decoded = name.replace("%2F", "/").replace("%2f", "/");
    let key = if decoded.starts_with('/') {
        decoded
    } else {
        format!("/{decoded}")
    };
    let raw = ctx
        .tx
        .get(JS_MODULES, key.as_bytes())
        .ok_or_else(|| ApiError::not_found(format!("Module {key} does not exist.")))?;
    let source: String = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::internal(format!("module {key} does not parse: {e}")))?;
    Ok(Response {
        status: StatusCode::OK,
        headers: vec![("content-type".into(), "text/javascript".into())],
        body: Bytes::from(source),
    })
}

/// Every key of `map` (as UTF-8) with its value parsed as JSON.
fn json_entries(
    ctx: &mut EndpointContext<'_>,
    map: &str,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut raw = Vec::new();
    ctx.tx.for_each(map, |k, v| {
        raw.push((String::from_utf8_lossy(k).into_owned(), v.clone()));
        true
    });
    let mut out = serde_json::Map::new();
    for (k, v) in raw {
        let value = serde_json::from_slice(&v)
            .map_err(|e| ApiError::internal(format!("{map}[{k}] does not parse: {e}")))?;
        out.insert(k, value);
    }
    Ok(out)
}

const CA_CERT_BUNDLES: &str = "public:ccf.gov.tls.ca_cert_bundles";

fn jwk(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    // CCF's view: issuers in camelCase, keys as PEM, CA bundles by name.
    let mut issuers = serde_json::Map::new();
    for (name, meta) in json_entries(ctx, crate::jwt::JWT_ISSUERS)? {
        let mut view = serde_json::Map::new();
        view.insert(
            "autoRefresh".into(),
            meta.get("auto_refresh").cloned().unwrap_or(json!(false)),
        );
        if let Some(bundle) = meta.get("ca_cert_bundle_name").filter(|b| !b.is_null()) {
            view.insert("caCertBundleName".into(), bundle.clone());
        }
        issuers.insert(name, Value::Object(view));
    }
    let mut keys = serde_json::Map::new();
    let mut kids = Vec::new();
    ctx.tx.for_each(crate::jwt::JWT_KEYS, |k, _| {
        kids.push(String::from_utf8_lossy(k).into_owned());
        true
    });
    for kid in kids {
        let list = crate::jwt::keys_of(ctx.tx, &kid).map_err(ApiError::internal)?;
        let view: Vec<Value> = list
            .into_iter()
            .map(|m| {
                json!({
                    "publicKey": coco_crypto::spki_der_to_pem(&m.public_key),
                    "issuer": m.issuer,
                    "constraint": m.constraint,
                })
            })
            .collect();
        keys.insert(kid, Value::Array(view));
    }
    let mut bundles = serde_json::Map::new();
    ctx.tx.for_each(CA_CERT_BUNDLES, |k, v| {
        let pem: Value =
            serde_json::from_slice(v).unwrap_or_else(|_| json!(String::from_utf8_lossy(v)));
        bundles.insert(String::from_utf8_lossy(k).into_owned(), pem);
        true
    });
    Ok(Response::ok_json(&json!({
        "issuers": issuers,
        "keys": keys,
        "caCertBundles": bundles,
    })))
}

fn join_policy(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    check_api_version(ctx)?;
    let keys = |ctx: &mut EndpointContext<'_>, map: &str| -> Vec<String> {
        let mut out = Vec::new();
        ctx.tx.for_each(map, |k, _| {
            out.push(String::from_utf8_lossy(k).into_owned());
            true
        });
        out
    };
    let body = json!({
        "virtual": {
            "measurements": keys(ctx, tables::NODES_VIRTUAL_MEASUREMENTS),
            "hostData": keys(ctx, tables::NODES_VIRTUAL_HOST_DATA),
        },
        "snp": {
            "measurements": keys(ctx, "public:ccf.gov.nodes.snp.measurements"),
            "hostData": keys(ctx, "public:ccf.gov.nodes.snp.host_data"),
            "uvmEndorsements": json_entries(ctx, "public:ccf.gov.nodes.snp.uvm_endorsements")?,
            "tcbVersions": json_entries(ctx, "public:ccf.gov.nodes.snp.tcb_versions")?,
        },
    });
    Ok(Response::ok_json(&body))
}

/// A governance request as CCF's `ccf_cose_sign1` makes it: a tagged COSE_Sign1 over `payload`
/// (attached) with `alg`, `kid` = the signer's id, and the `ccf.gov.msg.*` headers.
pub fn sign_request(
    key: &coco_crypto::EcKeyPair,
    signer_id: &str,
    msg_type: &str,
    created_at: i64,
    proposal_id: Option<&str>,
    payload: &[u8],
) -> Vec<u8> {
    let protected = coco_codec::cose::request_protected_header(
        key.cose_alg(),
        signer_id,
        coco_codec::cose::GOV_MSG_PREFIX,
        msg_type,
        created_at,
        proposal_id,
    );
    let signature = key.sign_cose(&coco_codec::cose::sig_structure(&protected, payload));
    coco_codec::cose::assemble_sign1(&protected, &Default::default(), Some(payload), &signature)
        .expect("an empty unprotected header always encodes")
}

/// `ccf.node.transitionServiceToOpen(previous, next)` (CCF `NodeState::transition_service_to_open`
/// and `InternalTablesAccess::open_service`): opens a service that is Opening, once `next` is this
/// service's certificate and enough active recovery members exist for the recovery threshold.
/// Opening an open service again is a no-op; a recovering service moves to
/// `WaitingForRecoveryShares`. Opening writes the service key's endorsement of its own identity
/// (CCF `endorse_previous_identity`; a recovered service endorses its predecessor when the
/// recovery completes instead).
pub fn open_service(
    tx: &mut coco_kv::Tx,
    previous_identity: Option<&str>,
    next_identity: &str,
    network: &crate::proposals::NetworkIdentity,
) -> Result<(), String> {
    let raw = tx
        .get(tables::SERVICE_INFO, &tables::SINGLETON_KEY)
        .ok_or("Service information could not be found")?;
    let mut info: tables::ServiceInfo = tables::from_ccf_json(&raw)
        .map_err(|e| format!("Service information does not parse: {e}"))?;
    if next_identity.trim() != info.cert.trim() {
        return Err(
            "Unable to open service: next service identity does not match this service's certificate"
                .into(),
        );
    }
    match info.status {
        tables::ServiceStatus::Open => return Ok(()),
        tables::ServiceStatus::Opening => {}
        tables::ServiceStatus::Recovering => {
            // A recovered service opens once members have submitted enough recovery shares
            // (CCF: `WaitingForRecoveryShares`); the previous identity must be named.
            let recorded: String = tx
                .get(tables::PREVIOUS_SERVICE_IDENTITY, &tables::SINGLETON_KEY)
                .and_then(|v| tables::from_ccf_json(&v).ok())
                .ok_or("The recovering service has no previous service identity")?;
            let previous = previous_identity.ok_or(
                "Unable to open service: a recovering service needs the previous service identity",
            )?;
            if previous.trim() != recorded.trim() {
                return Err(
                    "Unable to open service: previous service identity does not match the recovered ledger's"
                        .into(),
                );
            }
            info.status = tables::ServiceStatus::WaitingForRecoveryShares;
            tx.put(
                tables::SERVICE_INFO,
                Bytes::from_static(&tables::SINGLETON_KEY),
                Bytes::from(
                    tables::to_ccf_json(&info).map_err(|e| format!("Service information: {e}"))?,
                ),
            );
            return Ok(());
        }
        other => {
            return Err(format!(
                "Could not open current service: status is {other:?}, not Opening"
            ));
        }
    }
    let threshold = tx
        .get(tables::SERVICE_CONFIG, &tables::SINGLETON_KEY)
        .and_then(|v| tables::from_ccf_json::<tables::ServiceConfiguration>(&v).ok())
        .map_or(1, |c| c.recovery_threshold);
    let mut members = Vec::new();
    tx.for_each(tables::MEMBERS_INFO, |k, v| {
        members.push((k.clone(), v.clone()));
        true
    });
    let recovery_members = members
        .into_iter()
        .filter(|(id, v)| {
            tables::from_ccf_json::<tables::MemberInfo>(v).is_ok_and(|m| {
                m.status == tables::MemberStatus::Active
                    && m.recovery_role != Some(tables::MemberRecoveryRole::NonParticipant)
            }) && tx.has(tables::MEMBERS_ENCRYPTION_PUBLIC_KEYS, id)
        })
        .count() as u64;
    if recovery_members < threshold {
        return Err(format!(
            "Cannot open network as number of active recovery members ({recovery_members}) is less than recovery threshold ({threshold})"
        ));
    }
    info.status = tables::ServiceStatus::Open;
    tx.put(
        tables::SERVICE_INFO,
        Bytes::from_static(&tables::SINGLETON_KEY),
        Bytes::from(tables::to_ccf_json(&info).map_err(|e| format!("Service information: {e}"))?),
    );
    crate::endorsement::endorse_previous_identity(
        tx,
        &network.service_key,
        network.now_unix_seconds,
    )
    .map_err(|e| format!("Service could not be opened: {e}"))
}

//! The node's built-in endpoints: CCF's node API (`/node/...`, ccf-reference §6.4) and the
//! common endpoints every frontend carries (`/{app,gov}/{commit,tx,api}`).
//!
//! All of them are read-only and unauthenticated, as in CCF; they read the service's public
//! governance maps through the same KV transaction an app would get.

use bytes::Bytes;
use coco_app_api::{
    ApiError, AuthPolicy, EndpointContext, EndpointMode, ErrorCode, Method, Registry, Response,
    StatusCode, openapi,
};
use coco_codec::tables;
use coco_types::TxId;
use serde_json::{Value, json};

const NO_AUTH: &[AuthPolicy] = &[AuthPolicy::NoAuth];
const RO: EndpointMode = EndpointMode::ReadOnly;

/// Paths under `/app` that are node-provided rather than application endpoints: they work
/// before the service opens.
fn is_common_app_path(template: &str) -> bool {
    matches!(
        template,
        "/app/commit" | "/app/tx" | "/app/api" | "/app/receipt"
    )
}

/// Whether an endpoint belongs to the application (served only while the frontend is open).
pub fn is_app_endpoint(template: &str) -> bool {
    template.starts_with("/app/") && !is_common_app_path(template)
}

/// Endpoints a session's requests reach through the primary once the session forwarded one
/// (the app and governance frontends; the node frontend reports on the node it reaches, as
/// CCF's `forwarding_required: never` endpoints do).
pub fn follows_forwarding_session(template: &str) -> bool {
    !template.starts_with("/node/")
}

/// Endpoints the node runs itself instead of through their registry handler, because they need
/// its own state (the constitution and Merkle tree, ledger secrets, old entries, the registry):
/// never executed on the read path.
pub fn is_run_by_node(template: &str) -> bool {
    template == "/node/join"
        || is_receipt_path(template)
        || template == "/gov/recovery/members/{memberId}:recover"
        || template.starts_with("/gov/members/proposals")
        || matches!(template, "/app/api" | "/gov/api" | "/node/api")
}

/// `{prefix}/receipt`, served by the node (it needs the ledger secret and old entries).
pub fn is_receipt_path(template: &str) -> bool {
    matches!(template, "/app/receipt" | "/gov/receipt" | "/node/receipt")
}

/// `GET {prefix}/commit`, `{prefix}/tx`, `{prefix}/api`, `{prefix}/receipt` for a frontend prefix.
pub fn common_registry(prefix: &'static str) -> Registry {
    let mut r = Registry::new();
    r.route_fn(
        Method::GET,
        &format!("{prefix}/commit"),
        NO_AUTH,
        RO,
        "Latest globally committed transaction",
        commit,
    );
    r.route_fn(
        Method::GET,
        &format!("{prefix}/tx"),
        NO_AUTH,
        RO,
        "Status of a transaction id",
        tx_status,
    );
    r.route_fn(
        Method::GET,
        &format!("{prefix}/receipt"),
        NO_AUTH,
        RO,
        "Receipt of a committed transaction (CCF's JSON receipt)",
        move |_ctx| {
            Err(ApiError::internal(format!(
                "{prefix}/receipt must be served by the node"
            )))
        },
    );
    r.route_fn(
        Method::GET,
        &format!("{prefix}/api"),
        NO_AUTH,
        RO,
        "OpenAPI description of this frontend",
        move |_ctx| {
            // Filled in by the node, which owns the full registry (see `Node::execute`).
            Err(ApiError::internal(format!(
                "{prefix}/api must be served by the node"
            )))
        },
    );
    r
}

/// The `/node` frontend.
pub fn node_registry() -> Registry {
    let mut r = common_registry("/node");
    r.route_fn(
        Method::GET,
        "/node/state",
        NO_AUTH,
        RO,
        "State of this node",
        state,
    );
    r.route_fn(
        Method::GET,
        "/node/network",
        NO_AUTH,
        RO,
        "Service status and identity",
        network,
    );
    r.route_fn(
        Method::GET,
        "/node/service/previous_identity",
        NO_AUTH,
        RO,
        "The service certificate before the last disaster recovery",
        |ctx| match read_json(
            ctx,
            tables::PREVIOUS_SERVICE_IDENTITY,
            &tables::SINGLETON_KEY,
        )? {
            Some(pem) => Ok(Response::ok_json(
                &json!({ "previous_service_identity": pem }),
            )),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::ResourceNotFound,
                "This service is not a recovery of a previous service.",
            )),
        },
    );
    r.route_fn(
        Method::GET,
        "/node/network/nodes",
        NO_AUTH,
        RO,
        "All nodes of the service",
        nodes,
    );
    r.route_fn(
        Method::GET,
        "/node/network/removable_nodes",
        NO_AUTH,
        RO,
        "Retired nodes whose retirement has committed: safe to stop and remove",
        removable_nodes,
    );
    r.route_fn(
        Method::DELETE,
        "/node/network/nodes/{node_id}",
        NO_AUTH,
        EndpointMode::ReadWrite,
        "Remove a node whose retirement has committed from nodes.info",
        delete_node,
    );
    r.route_fn(
        Method::GET,
        "/node/network/nodes/self",
        NO_AUTH,
        RO,
        "This node",
        |ctx| {
            let id = ctx.consensus.node_id.clone();
            one_node(ctx, &id)
        },
    );
    r.route_fn(
        Method::GET,
        "/node/network/nodes/primary",
        NO_AUTH,
        RO,
        "The primary node",
        |ctx| match ctx.consensus.primary_id.clone() {
            Some(id) => one_node(ctx, &id),
            None => Err(ApiError::not_found("No primary is known.")),
        },
    );
    r.route_fn(
        Method::GET,
        "/node/network/nodes/{node_id}",
        NO_AUTH,
        RO,
        "A node by id",
        |ctx| {
            let id = ctx.path_params["node_id"].clone();
            one_node(ctx, &id)
        },
    );
    r.route_fn(
        Method::HEAD,
        "/node/primary",
        NO_AUTH,
        RO,
        "200 on the primary, else 308 to it",
        |ctx| {
            if is_primary(ctx) {
                return Ok(Response::new(StatusCode::OK));
            }
            match primary_location(ctx, "/node/primary")? {
                Some(location) => {
                    Ok(Response::new(StatusCode::PERMANENT_REDIRECT)
                        .with_header("location", location))
                }
                None => Err(ApiError::not_found("No primary is known.")),
            }
        },
    );
    for method in [Method::GET, Method::HEAD] {
        r.route_fn(
            method,
            "/node/snapshot",
            NO_AUTH,
            RO,
            "308 to the latest committed snapshot (since=N: later than N), on this node or the \
             primary",
            find_snapshot,
        );
    }
    r.route_fn(
        Method::GET,
        "/node/primary",
        NO_AUTH,
        RO,
        "200 on the primary, else 404",
        primary,
    );
    r.route_fn(
        Method::GET,
        "/node/backup",
        NO_AUTH,
        RO,
        "200 on a backup, else 404",
        |ctx| {
            if is_primary(ctx) {
                Err(ApiError::not_found("This node is the primary."))
            } else {
                Ok(Response::new(StatusCode::OK))
            }
        },
    );
    r.route_fn(
        Method::GET,
        "/node/ready/app",
        NO_AUTH,
        RO,
        "204 when the app frontend is open",
        |ctx| {
            let open = service_info(ctx)?.get("status").and_then(Value::as_str) == Some("Open");
            Ok(Response::new(if open {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }))
        },
    );
    r.route_fn(
        Method::GET,
        "/node/ready/gov",
        NO_AUTH,
        RO,
        "204 when the governance frontend is open",
        |_ctx| Ok(Response::new(StatusCode::NO_CONTENT)),
    );
    r.route_fn(
        Method::POST,
        "/node/join",
        &[AuthPolicy::AnyCert],
        EndpointMode::ReadWrite,
        "Join the service (attested; the caller's TLS certificate is its node identity)",
        |_ctx| Err(ApiError::internal("/node/join must be served by the node")),
    );
    r.route_fn(
        Method::GET,
        "/node/index/strategies",
        NO_AUTH,
        RO,
        "Indexing strategies installed by the application and how far they have indexed",
        |ctx| {
            let history = ctx.history()?;
            let indexed = history.committed_seqno();
            let strategies: Vec<Value> = history
                .indexed_maps()
                .into_iter()
                .map(|map| {
                    json!({
                        "name": format!("SeqnosByKey {map}"),
                        "map": map,
                        "seqno_indexed": indexed,
                    })
                })
                .collect();
            Ok(Response::ok_json(&json!({ "strategies": strategies })))
        },
    );
    r.route_fn(
        Method::GET,
        "/node/version",
        NO_AUTH,
        RO,
        "Software version",
        |ctx| {
            Ok(Response::ok_json(&json!({
                "ccf_version": format!("coco-{}", ctx.service.version),
                "quickjs_version": "none",
                "unsafe": false,
            })))
        },
    );
    r.route_fn(
        Method::GET,
        "/node/self_signed_certificate",
        NO_AUTH,
        RO,
        "This node's self-signed certificate",
        |ctx| {
            Ok(Response::ok_json(
                &json!({ "self_signed_certificate": ctx.service.node_self_signed_cert_pem }),
            ))
        },
    );
    r.route_fn(Method::GET, "/node/metrics", NO_AUTH, RO, "Per-endpoint call counters", |ctx| {
        let metrics: Vec<Value> = ctx
            .metrics
            .called()
            .into_iter()
            .map(|(method, path, c)| {
                json!({"method": method, "path": path, "calls": c.calls, "errors": c.errors, "failures": c.failures, "retries": c.retries})
            })
            .collect();
        Ok(Response::ok_json(&json!({ "metrics": metrics })))
    });
    r
}

/// Builds the OpenAPI document of `prefix` from the node's full registry.
pub fn api_document(registry: &Registry, prefix: &str, version: &str) -> Response {
    let title = match prefix {
        "/app" => "coco application API",
        "/gov" => "coco governance API",
        _ => "coco node API",
    };
    Response::ok_json(&openapi::document(registry, prefix, title, version))
}

fn commit(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    let mut body = json!({ "transaction_id": ctx.consensus.commit.to_string() });
    let q = ctx.request.query_params();
    let since = match (
        q.get("view_history").map(String::as_str),
        q.get("view_history_since"),
    ) {
        (_, Some(v)) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_query(format!("Invalid view_history_since {v:?}.")))?,
        ),
        (Some("true"), None) => Some(0),
        (Some("false") | None, None) => None,
        (Some(other), None) => {
            return Err(ApiError::bad_query(format!(
                "Invalid view_history {other:?}: expected true or false."
            )));
        }
    };
    if let Some(since) = since {
        let history: Vec<String> = ctx
            .consensus
            .view_history
            .iter()
            .filter(|(v, _)| *v >= since)
            .map(|(v, s)| TxId::new(*v, *s).to_string())
            .collect();
        body["view_history"] = json!(history);
    }
    Ok(Response::ok_json(&body))
}

/// The `transaction_id=V.S` query parameter (`/tx`, `/receipt`).
pub(crate) fn txid_query(request: &coco_app_api::Request) -> Result<TxId, ApiError> {
    let q = request.query_params();
    let raw = q
        .get("transaction_id")
        .ok_or_else(|| ApiError::bad_query("Missing query parameter 'transaction_id'."))?;
    raw.parse()
        .map_err(|e: coco_types::TxIdParseError| ApiError::bad_query(e.to_string()))
}

fn tx_status(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    let txid = txid_query(ctx.request)?;
    let name = ctx.consensus.tx_status(txid).as_str();
    Ok(Response::ok_json(
        &json!({ "transaction_id": txid.to_string(), "status": name }),
    ))
}

fn state(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    Ok(Response::ok_json(&json!({
        "node_id": ctx.consensus.node_id,
        "state": "PartOfNetwork",
        "last_signed_seqno": ctx.consensus.last_signed_seqno,
        "startup_seqno": 0,
        "stop_notice": false,
    })))
}

fn read_json(
    ctx: &mut EndpointContext<'_>,
    map: &str,
    key: &[u8],
) -> Result<Option<Value>, ApiError> {
    match ctx.tx.get(map, key) {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("Stored value in {map} is not JSON: {e}"))),
    }
}

fn service_info(ctx: &mut EndpointContext<'_>) -> Result<Value, ApiError> {
    read_json(ctx, tables::SERVICE_INFO, &tables::SINGLETON_KEY)?
        .ok_or_else(|| ApiError::internal("The service has no service.info record."))
}

fn network(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    let info = service_info(ctx)?;
    let mut body = json!({
        "service_status": info.get("status").cloned().unwrap_or(Value::Null),
        "service_certificate": info.get("cert").cloned().unwrap_or(Value::Null),
        "current_view": ctx.consensus.view,
        "recovery_count": info.get("recovery_count").cloned().unwrap_or(json!(0)),
        "service_data": info.get("service_data").cloned().unwrap_or(Value::Null),
    });
    if let Some(p) = &ctx.consensus.primary_id {
        body["primary_id"] = json!(p);
    }
    if let Some(t) = info.get("current_service_create_txid") {
        body["current_service_create_txid"] = t.clone();
    }
    Ok(Response::ok_json(&body))
}

fn describe_node(ctx: &EndpointContext<'_>, node_id: &str, info: &Value) -> Value {
    json!({
        "node_id": node_id,
        "status": info.get("status").cloned().unwrap_or(Value::Null),
        "primary": ctx.consensus.primary_id.as_deref() == Some(node_id),
        "rpc_interfaces": info.get("rpc_interfaces").cloned().unwrap_or(json!({})),
        "node_data": info.get("node_data").cloned().unwrap_or(Value::Null),
        "last_written": ctx.consensus.last_seqno,
    })
}

fn nodes(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    let out: Vec<Value> = node_records(ctx)?
        .iter()
        .map(|(id, info)| describe_node(ctx, id, info))
        .collect();
    Ok(Response::ok_json(&json!({ "nodes": out })))
}

/// `nodes.info` records as (id, parsed record), in key order.
fn node_records(ctx: &mut EndpointContext<'_>) -> Result<Vec<(String, Value)>, ApiError> {
    let mut raw: Vec<(Bytes, Bytes)> = Vec::new();
    ctx.tx.for_each(tables::NODES_INFO, |k, v| {
        raw.push((k.clone(), v.clone()));
        true
    });
    raw.into_iter()
        .map(|(k, v)| {
            let id = String::from_utf8_lossy(&k).into_owned();
            serde_json::from_slice(&v)
                .map(|info| (id.clone(), info))
                .map_err(|e| ApiError::internal(format!("nodes.info of {id} is not JSON: {e}")))
        })
        .collect()
}

fn is_removable(info: &Value) -> bool {
    info["status"] == "Retired" && info["retired_committed"] == true
}

fn removable_nodes(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    let nodes: Vec<Value> = node_records(ctx)?
        .iter()
        .filter(|(_, info)| is_removable(info))
        .map(|(id, info)| describe_node(ctx, id, info))
        .collect();
    Ok(Response::ok_json(&json!({ "nodes": nodes })))
}

/// CCF's `DELETE /node/network/nodes/{node_id}`: only nodes whose retirement has committed can
/// go; their `nodes.info` record and endorsed certificate are removed.
fn delete_node(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    let id = ctx.path_params["node_id"].clone();
    match read_json(ctx, tables::NODES_INFO, id.as_bytes())? {
        None => Err(ApiError::not_found(format!("Node {id} does not exist."))),
        Some(info) if !is_removable(&info) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            coco_app_api::ErrorCode::NodeNotRetiredCommitted,
            format!("Node {id} is not retired, or its retirement has not committed yet."),
        )),
        Some(_) => {
            ctx.tx.remove(tables::NODES_INFO, id.as_bytes());
            ctx.tx
                .remove(tables::NODES_ENDORSED_CERTIFICATES, id.as_bytes());
            Ok(Response::new(StatusCode::NO_CONTENT))
        }
    }
}

fn one_node(ctx: &mut EndpointContext<'_>, node_id: &str) -> Result<Response, ApiError> {
    match read_json(ctx, tables::NODES_INFO, node_id.as_bytes())? {
        Some(info) => Ok(Response::ok_json(&describe_node(ctx, node_id, &info))),
        None => Err(ApiError::not_found(format!(
            "Node {node_id} does not exist."
        ))),
    }
}

fn is_primary(ctx: &EndpointContext<'_>) -> bool {
    ctx.consensus.primary_id.as_deref() == Some(ctx.consensus.node_id.as_str())
}

/// `https://<published RPC address of the primary><path>`, when a primary other than this node
/// is known.
fn primary_location(ctx: &mut EndpointContext<'_>, path: &str) -> Result<Option<String>, ApiError> {
    let Some(id) = ctx.consensus.primary_id.clone() else {
        return Ok(None);
    };
    if id == ctx.consensus.node_id {
        return Ok(None);
    }
    let Some(raw) = ctx.tx.get(tables::NODES_INFO, id.as_bytes()) else {
        return Ok(None);
    };
    let info: tables::NodeInfo = tables::from_ccf_json(&raw)
        .map_err(|e| ApiError::internal(format!("nodes.info of {id}: {e}")))?;
    Ok(info
        .rpc_interfaces
        .get("primary_rpc_interface")
        .or_else(|| info.rpc_interfaces.values().next())
        .map(|i| format!("https://{}{path}", crate::join::published(i))))
}

/// `/node/snapshot` reaches the core only when this node's host has no committed snapshot to
/// offer (the host serves the files): a backup points at the primary, which writes them (CCF).
fn find_snapshot(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    let query = coco_app_api::parse_query(&ctx.request.query);
    let since = match query.get("since") {
        None => 0,
        Some(v) => v.parse::<u64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQueryParameterValue,
                format!("Invalid value for 'since': {v:?} is not a seqno."),
            )
        })?,
    };
    let path = match since {
        0 => "/node/snapshot".to_owned(),
        n => format!("/node/snapshot?since={n}"),
    };
    match primary_location(ctx, &path)? {
        Some(location) => {
            Ok(Response::new(StatusCode::PERMANENT_REDIRECT).with_header("location", location))
        }
        None => Err(ApiError::not_found(format!(
            "This node has no committed snapshots since {since}"
        ))),
    }
}

fn primary(ctx: &mut EndpointContext<'_>) -> Result<Response, ApiError> {
    if is_primary(ctx) {
        Ok(Response::new(StatusCode::OK))
    } else {
        Err(ApiError::not_found("This node is not the primary."))
    }
}

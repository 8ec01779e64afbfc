//! The joining node's side of `POST /node/join` (ccf-reference §4.4): call the target over TLS,
//! trusting only the service certificate and presenting the node's self-signed certificate, and
//! poll until the primary answers Trusted with the network's secrets.

use std::net::SocketAddr;
use std::time::Duration;

use coco_client::{ClientConfig, Method, StatusCode};
use coco_node::join::{JoinRequest, JoinResponse, NetworkInfo};

use crate::StartError;
use crate::config::Join;

/// Asks to join until trusted. Pending answers, unreachable targets and backups that cannot
/// take the request are retried every `retry_timeout`; a refusal (bad attestation, CSR, …) ends
/// the attempt with the node's error message.
pub(crate) async fn join_service(
    target: &Join,
    service_cert_pem: &str,
    self_signed_cert_pem: &str,
    node_key_pem: &str,
    request: &JoinRequest,
) -> Result<(NetworkInfo, SocketAddr), StartError> {
    let client = ClientConfig::new(
        service_cert_pem,
        Some((self_signed_cert_pem, node_key_pem)),
        false,
    )
    .map_err(|e| StartError::Join(format!("TLS client: {e}")))?;
    let configured: SocketAddr = target
        .target_rpc_address
        .parse()
        .expect("validated by the config parser");
    let body = serde_json::to_vec(request).expect("a join request serialises");
    let retry = Duration::from_millis(target.retry_timeout.0);
    let mut addr = configured;
    loop {
        let reply = match client.connect(addr).await {
            Ok(mut c) => c
                .request(
                    Method::POST,
                    "/node/join",
                    &[("content-type", "application/json")],
                    body.clone().into(),
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match reply {
            Ok(r) if r.status == StatusCode::OK => {
                let answer: JoinResponse = serde_json::from_slice(&r.body)
                    .map_err(|e| StartError::Join(format!("malformed join response: {e}")))?;
                if let Some(info) = answer.network_info {
                    tracing::info!(node_id = %answer.node_id, "joined the service");
                    return Ok((info, addr));
                }
                tracing::info!(
                    node_id = %answer.node_id,
                    status = ?answer.node_status,
                    "waiting for members to trust this node (transition_node_to_trusted)"
                );
            }
            Ok(r) if r.status == StatusCode::SERVICE_UNAVAILABLE => {
                // The target is not the primary (or is busy): ask it who is.
                let primary = if target.follow_redirect {
                    primary_address(&client, addr).await
                } else {
                    None
                };
                tracing::info!(%addr, ?primary, "join target cannot take the request; retrying");
                addr = primary.unwrap_or(configured);
            }
            Ok(r) => {
                return Err(StartError::Join(format!(
                    "{addr} refused the join request: {} {}",
                    r.status,
                    r.text()
                )));
            }
            Err(e) => {
                tracing::info!(%addr, error = %e, "join target unreachable; retrying");
                addr = configured;
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// A recovered service, once open, is joined from a snapshot taken after its recovery (a
/// recovering one replicates its whole ledger instead). Before asking to join such a service, wait
/// (up to `limits::JOIN_SNAPSHOT_WAIT_MS`) until one is committed: once members trust this
/// node it counts towards commit, and a snapshot that still needed it to commit would never
/// come. A service never recovered, or a target that cannot say, needs no wait.
pub(crate) async fn wait_for_post_recovery_snapshot(target: &Join, service_cert_pem: &str) {
    if !target.fetch_recent_snapshot {
        return;
    }
    let Ok(client) = ClientConfig::new(service_cert_pem, None, false) else {
        return;
    };
    let addr: SocketAddr = target
        .target_rpc_address
        .parse()
        .expect("validated by the config parser");
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(coco_types::limits::JOIN_SNAPSHOT_WAIT_MS);
    let retry = Duration::from_millis(target.retry_timeout.0);
    loop {
        let created = async {
            let mut c = client.connect(addr).await.ok()?;
            let network = c.get("/node/network").await.ok()?.json();
            // A service still recovering is joined by replicating its whole ledger.
            if network["recovery_count"].as_u64().unwrap_or(0) == 0
                || network["service_status"] != "Open"
            {
                return Some(None);
            }
            let created: coco_types::TxId = network["current_service_create_txid"]
                .as_str()?
                .parse()
                .ok()?;
            // A committed snapshot since the recovery: the node (or the primary it points to)
            // answers with a redirect to the file.
            let r = c
                .get(&format!("/node/snapshot?since={}", created.seqno))
                .await
                .ok()?;
            (r.status != StatusCode::PERMANENT_REDIRECT).then_some(Some(created))
        }
        .await;
        match created {
            None | Some(None) => return,
            Some(Some(created)) if tokio::time::Instant::now() < deadline => {
                tracing::info!(
                    %created,
                    "the service was recovered: waiting for a snapshot taken since, before joining"
                );
            }
            Some(Some(_)) => return,
        }
        tokio::time::sleep(retry).await;
    }
}

/// The RPC address of the primary as `target` knows it.
async fn primary_address(client: &ClientConfig, target: SocketAddr) -> Option<SocketAddr> {
    let mut c = client.connect(target).await.ok()?;
    let r = c.get("/node/network/nodes/primary").await.ok()?;
    if r.status != StatusCode::OK {
        return None;
    }
    let interfaces = r.json()["rpc_interfaces"].as_object()?.clone();
    interfaces.values().find_map(|i| {
        i["published_address"]
            .as_str()
            .or(i["bind_address"].as_str())
            .and_then(|a| a.parse().ok())
    })
}

/// Downloads the latest committed snapshot of the node at `addr` (CCF's joiner: `GET
/// /node/snapshot`, follow the 308, then ranged `GET`s of 4 MiB). `None` if it has none.
pub(crate) async fn fetch_snapshot(
    service_cert_pem: &str,
    addr: SocketAddr,
    max_bytes: u64,
) -> Result<Option<(String, Vec<u8>)>, String> {
    let client = ClientConfig::new(service_cert_pem, None, false).map_err(|e| e.to_string())?;
    let mut addr = addr;
    let mut c = client.connect(addr).await.map_err(|e| e.to_string())?;
    let mut find = "/node/snapshot".to_owned();
    let mut redirects = 0;
    // A backup points at the primary's /node/snapshot; the node with the file points at it.
    let path = loop {
        let r = c.get(&find).await.map_err(|e| e.to_string())?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if r.status != StatusCode::PERMANENT_REDIRECT {
            return Err(format!("GET {find} answered {}: {}", r.status, r.text()));
        }
        let location = r
            .header("location")
            .ok_or("GET /node/snapshot redirected without a location")?
            .to_owned();
        // An absolute URL (CCF) or a path on the same node (coco).
        let (host, path) = match location.strip_prefix("https://") {
            Some(rest) => match rest.find('/') {
                Some(i) => (Some(&rest[..i]), &rest[i..]),
                None => return Err(format!("unexpected snapshot location {location}")),
            },
            None => (None, location.as_str()),
        };
        if let Some(host) = host {
            let next: SocketAddr = host
                .parse()
                .map_err(|_| format!("snapshot location {location} is not host:port"))?;
            if next != addr {
                addr = next;
                c = client.connect(addr).await.map_err(|e| e.to_string())?;
            }
        }
        if path.starts_with("/node/snapshot/") {
            break path.to_owned();
        }
        redirects += 1;
        if redirects > 3 || !path.starts_with("/node/snapshot") {
            return Err(format!("unexpected snapshot location {location}"));
        }
        find = path.to_owned();
    };
    let name = path["/node/snapshot/".len()..].to_owned();
    let mut file = Vec::new();
    loop {
        let start = file.len() as u64;
        let range = format!(
            "bytes={start}-{}",
            start + coco_types::limits::SNAPSHOT_FETCH_RANGE_BYTES
        );
        let r = c
            .request(Method::GET, &path, &[("range", &range)], Default::default())
            .await
            .map_err(|e| e.to_string())?;
        if r.status != StatusCode::PARTIAL_CONTENT {
            return Err(format!("GET {path} answered {}: {}", r.status, r.text()));
        }
        let total: u64 = r
            .header("content-range")
            .and_then(|v| v.rsplit_once('/'))
            .and_then(|(_, t)| t.parse().ok())
            .ok_or("snapshot response without a content-range total")?;
        if total > max_bytes {
            return Err(format!(
                "snapshot {name} is {total} bytes, over fetch_snapshot_max_size ({max_bytes})"
            ));
        }
        if r.body.is_empty() && start < total {
            return Err(format!(
                "snapshot {name}: empty range at {start} of {total}"
            ));
        }
        file.extend_from_slice(&r.body);
        if file.len() as u64 >= total {
            file.truncate(total as usize);
            return Ok(Some((name, file)));
        }
    }
}

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
) -> Result<NetworkInfo, StartError> {
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
                    return Ok(info);
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

//! Client-facing HTTP over TLS: an accept loop per RPC interface, HTTP/1.1 and HTTP/2 (ALPN) by
//! hyper, CCF's request limits and session caps, and conversion to the core's `Request`.
//!
//! Parsing, TLS and limit checks run on tokio's worker threads; only a fully read and checked
//! request reaches the core thread, and read-only requests are answered here from the core's
//! published read view when it can (see `CoreHandle::try_read`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use coco_app_api::{ApiError, ErrorCode, Method, PeerCert, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::core_thread::CoreHandle;
use crate::snapshots::SnapshotDir;

/// Limits of one interface (CCF `http_configuration`, `max_open_sessions_*`).
#[derive(Clone, Debug)]
pub struct InterfaceLimits {
    pub body_size_bytes_max: usize,
    pub header_size_bytes_max: usize,
    pub header_count_max: usize,
    pub sessions_soft_max: usize,
    pub sessions_hard_max: usize,
}

/// What one interface's connections share.
struct Interface {
    limits: InterfaceLimits,
    /// Served by the host itself (`/node/snapshot…`): files, not KV state.
    snapshots: Option<SnapshotDir>,
}

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Session ids, unique across this node's interfaces.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Serves the interface `name` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    name: String,
    tls: Arc<rustls::ServerConfig>,
    limits: InterfaceLimits,
    core: CoreHandle,
    snapshots: Option<SnapshotDir>,
) {
    let name: Arc<str> = Arc::from(name);
    let acceptor = TlsAcceptor::from(tls);
    let sessions = Arc::new(AtomicUsize::new(0));
    let limits = Arc::new(Interface { limits, snapshots });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let open = sessions.fetch_add(1, Ordering::AcqRel) + 1;
        if open > limits.limits.sessions_hard_max {
            sessions.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let core = core.clone();
        let limits = limits.clone();
        let sessions = sessions.clone();
        let session = coco_node::Session {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            interface: name.to_string(),
        };
        tokio::spawn(async move {
            let id = session.id;
            serve_connection(stream, peer, acceptor, core.clone(), limits, open, session).await;
            core.session_closed(id);
            sessions.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    core: CoreHandle,
    limits: Arc<Interface>,
    open_sessions: usize,
    session: coco_node::Session,
) {
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let peer_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|der| PeerCert {
            fingerprint_hex: coco_crypto::cert_der_fingerprint_hex(der.as_ref()),
            der: Bytes::copy_from_slice(der.as_ref()),
        });
    let over_soft_cap = open_sessions > limits.limits.sessions_soft_max;
    let service_limits = limits.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let core = core.clone();
        let limits = service_limits.clone();
        let peer_cert = peer_cert.clone();
        let session = session.clone();
        async move {
            let response = if over_soft_cap {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::SessionCapExhausted,
                    "Service is currently busy and unable to serve new sessions.",
                )
                .into_response()
                .with_header("connection", "close")
            } else {
                handle(req, &core, &limits, peer_cert, session).await
            };
            Ok::<_, std::convert::Infallible>(to_hyper(response))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size((limits_header_buf(&limits.limits)).max(8192))
        .max_headers(limits.limits.header_count_max.saturating_add(64));
    builder
        .http2()
        .max_header_list_size((limits.limits.header_size_bytes_max as u32).saturating_mul(4));
    if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// hyper's own buffer limit sits well above the configured header limit, so that oversized
/// headers usually reach our check and get CCF's JSON 431 rather than hyper's bare one.
fn limits_header_buf(limits: &InterfaceLimits) -> usize {
    limits
        .header_size_bytes_max
        .saturating_mul(4)
        .max(64 * 1024)
}

async fn handle(
    req: hyper::Request<Incoming>,
    core: &CoreHandle,
    interface: &Interface,
    peer_cert: Option<PeerCert>,
    session: coco_node::Session,
) -> Response {
    let limits = &interface.limits;
    let (parts, body) = req.into_parts();
    if parts.headers.len() > limits.header_count_max {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::RequestHeaderTooLarge,
            format!(
                "Too many headers: {} (limit {}).",
                parts.headers.len(),
                limits.header_count_max
            ),
        )
        .into_response();
    }
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limits.header_size_bytes_max {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::RequestHeaderTooLarge,
            format!(
                "Headers are {header_bytes} bytes (limit {}).",
                limits.header_size_bytes_max
            ),
        )
        .into_response();
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestBodyTooLarge,
            format!(
                "Request body exceeds the limit of {} bytes.",
                limits.body_size_bytes_max
            ),
        )
        .into_response()
    };
    if let Some(len) = parts.headers.get(http::header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) if n > limits.body_size_bytes_max as u64 => return too_large(),
            Some(_) => {}
            None => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidHeaderValue,
                    "Invalid Content-Length.",
                )
                .into_response();
            }
        }
    }
    let body = match Limited::new(body, limits.body_size_bytes_max)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large();
            }
            return ApiError::invalid_input(format!("Could not read the request body: {e}"))
                .into_response();
        }
    };
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (k, v) in &parts.headers {
        match v.to_str() {
            Ok(v) => headers.push((k.as_str().to_owned(), v.to_owned())),
            Err(_) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidHeaderValue,
                    format!("Header '{}' is not visible ASCII.", k.as_str()),
                )
                .into_response();
            }
        }
    }
    let request = Request {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body,
        peer_cert,
    };
    if let Some(snapshots) = interface.snapshots.clone()
        && request.path.starts_with("/node/snapshot/")
        && (request.method == Method::GET || request.method == Method::HEAD)
    {
        // Snapshot files can be large: read them off the async threads.
        return tokio::task::spawn_blocking(move || snapshots.serve(&request))
            .await
            .expect("serving a snapshot does not panic")
            .unwrap_or_else(|| ApiError::not_found("No such snapshot.").into_response());
    }
    if let Some(snapshots) = &interface.snapshots
        && let Some(response) = snapshots.serve(&request)
    {
        return response;
    }
    if let Some(response) = core.try_read(&request, &session) {
        return response;
    }
    submit(core, request, session).await
}

async fn submit(core: &CoreHandle, request: Request, session: coco_node::Session) -> Response {
    match core.submit(request, session) {
        Ok(rx) => match rx.await {
            Ok(r) => r,
            Err(_) => ApiError::internal("The node is shutting down.").into_response(),
        },
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyPendingTransactions,
            "The node's request queue is full; retry later.",
        )
        .into_response(),
    }
}

fn to_hyper(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(r.status);
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(Full::new(r.body)).unwrap_or_else(|e| {
        // Only reachable if a handler produced an invalid header; answer rather than drop.
        let mut resp = hyper::Response::new(Full::new(Bytes::from(
            ApiError::internal(format!("invalid response header: {e}")).body_bytes(),
        )));
        *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
}

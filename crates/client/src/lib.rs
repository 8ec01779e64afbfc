//! A minimal HTTPS client for coco and CCF nodes.
//!
//! It trusts exactly the service certificate (as `curl --cacert service_cert.pem` does), can
//! present a client certificate (users and members authenticate with TLS client certificates),
//! and speaks HTTP/1.1 keep-alive or HTTP/2 on one connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
pub use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(String),
}

/// Whom the client trusts and who it is.
#[derive(Clone)]
pub struct ClientConfig {
    tls: Arc<rustls::ClientConfig>,
    http2: bool,
}

/// A response, fully read.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Pem(e.to_string()))
}

impl ClientConfig {
    /// `ca_pem`: the service certificate. `identity`: (certificate PEM, PKCS#8 key PEM).
    pub fn new(
        ca_pem: &str,
        identity: Option<(&str, &str)>,
        http2: bool,
    ) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in certs_from_pem(ca_pem)? {
            roots.add(c)?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut tls = match identity {
            Some((cert_pem, key_pem)) => {
                let certs = certs_from_pem(cert_pem)?;
                let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
                    .map_err(|e| ClientError::Pem(e.to_string()))?
                    .ok_or_else(|| ClientError::Pem("no private key".into()))?;
                builder.with_client_auth_cert(certs, key)?
            }
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = if http2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(ClientConfig {
            tls: Arc::new(tls),
            http2,
        })
    }

    /// Opens one connection to `addr`, verifying the server certificate for `127.0.0.1`-style
    /// IP names or the given DNS name.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Connection, ClientError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let server_certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.as_ref().to_vec())
            .unwrap_or_default();
        let io = TokioIo::new(tls);
        let sender = if self.http2 {
            let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
            tokio::spawn(conn);
            Sender::H1(s)
        };
        Ok(Connection {
            sender,
            server_certificate,
        })
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One open connection. HTTP/2 connections may be cloned for concurrent streams.
pub struct Connection {
    sender: Sender,
    server_certificate: Vec<u8>,
}

impl Connection {
    /// The DER certificate the server presented (it verified against the configured CA).
    pub fn server_certificate_der(&self) -> &[u8] {
        &self.server_certificate
    }

    /// Another handle on this HTTP/2 connection, for requests in flight at once (each is a
    /// stream); `None` on HTTP/1.1, which carries one request at a time.
    pub fn another_stream(&self) -> Option<Connection> {
        match &self.sender {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Connection {
                sender: Sender::H2(s.clone()),
                server_certificate: self.server_certificate.clone(),
            }),
        }
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "coco");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(body))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready()
                    .await
                    .map_err(|e| ClientError::Http(e.to_string()))?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready()
                    .await
                    .map_err(|e| ClientError::Http(e.to_string()))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| ClientError::Http(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, ClientError> {
        self.request(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn post_json(
        &mut self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, ClientError> {
        self.request(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Bytes::from(body.to_string()),
        )
        .await
    }
}

/// A blocking facade for tests and simple tools: one connection, its own small runtime.
pub struct BlockingConnection {
    rt: tokio::runtime::Runtime,
    conn: Connection,
}

impl BlockingConnection {
    /// The DER certificate the server presented.
    pub fn server_certificate_der(&self) -> &[u8] {
        self.conn.server_certificate_der()
    }

    pub fn connect(config: &ClientConfig, addr: SocketAddr) -> Result<Self, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let conn = rt.block_on(config.connect(addr))?;
        Ok(BlockingConnection { rt, conn })
    }

    pub fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        let body = body.into();
        self.rt
            .block_on(self.conn.request(method, path, headers, body))
    }

    pub fn get(&mut self, path: &str) -> Result<Reply, ClientError> {
        self.rt.block_on(self.conn.get(path))
    }

    pub fn post_json(
        &mut self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, ClientError> {
        self.rt.block_on(self.conn.post_json(path, body))
    }
}

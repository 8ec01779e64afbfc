//! Node-to-node channels: mutual TLS between nodes of one service, carrying consensus messages
//! and forwarded client requests (`coco_node::PeerMessage`).
//!
//! Both ends present their service-endorsed node certificate. A certificate is accepted only if
//! the service identity signed it and it is within its validity period; the peer's identity is
//! its node id, the hex SHA-256 of the certificate's public key (CCF's node id). A dialling node
//! also checks that it reached the node it meant to. CCF uses its own ECDH channel instead of TLS
//! (ccf-reference §5.4); mixed CCF/coco clusters are not a goal, so coco uses rustls. TLS gives
//! confidentiality, integrity and replay protection per connection.
//!
//! Frames are `length:u32 LE ‖ PeerMessage` bytes, bounded by
//! `CONSENSUS_MESSAGE_BYTES_MAX`. Sending never blocks the core: each peer has a bounded queue,
//! and messages are dropped when it is full or the peer is unreachable — consensus tolerates loss.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use coco_node::PeerMessage as Message;
use coco_types::limits::{CONSENSUS_MESSAGE_BYTES_MAX, N2N_QUEUE_MESSAGE_COUNT_MAX};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::tls::{HandshakeSignatures, TlsSetupError};

/// How long to wait before dialling an unreachable peer again.
const REDIAL_DELAY: Duration = Duration::from_millis(200);

/// What a node needs to take part in node-to-node channels.
#[derive(Clone)]
pub struct ChannelIdentity {
    pub node_id: String,
    /// The node's service-endorsed certificate (PEM) and its PKCS#8 key.
    pub cert_pem: String,
    pub key_pkcs8_pem: String,
    /// The service certificate: peers' certificates must be signed by its key.
    pub service_cert_pem: String,
}

/// Checks a peer certificate: signed by the service key and valid at `now`. Returns the node id.
fn check_peer(
    service_spki: &[u8],
    cert: &CertificateDer<'_>,
    now: UnixTime,
) -> Result<String, rustls::Error> {
    let bad = |e: rustls::CertificateError| rustls::Error::InvalidCertificate(e);
    coco_crypto::verify_cert_signed_by(cert.as_ref(), service_spki)
        .map_err(|_| bad(rustls::CertificateError::BadSignature))?;
    let validity = coco_crypto::cert_validity(cert.as_ref())
        .map_err(|_| bad(rustls::CertificateError::BadEncoding))?;
    let now = now.as_secs() as i64;
    if now < validity.not_before_unix_s {
        return Err(bad(rustls::CertificateError::NotValidYet));
    }
    if now > validity.not_after_unix_s {
        return Err(bad(rustls::CertificateError::Expired));
    }
    let spki = coco_crypto::cert_public_key_spki_der(cert.as_ref())
        .map_err(|_| bad(rustls::CertificateError::BadEncoding))?;
    Ok(coco_crypto::spki_fingerprint_hex(&spki))
}

/// The peer's node id, from the certificate it presented.
fn peer_node_id(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let leaf = certs?.first()?;
    let spki = coco_crypto::cert_public_key_spki_der(leaf.as_ref()).ok()?;
    Some(coco_crypto::spki_fingerprint_hex(&spki))
}

#[derive(Debug)]
struct ServiceEndorsed {
    signatures: HandshakeSignatures,
    service_spki: Vec<u8>,
    /// For a dialling node: the node it means to reach.
    expected: Option<String>,
}

impl ServiceEndorsed {
    fn verify(&self, cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        let id = check_peer(&self.service_spki, cert, now)?;
        if let Some(expected) = &self.expected
            && *expected != id
        {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ));
        }
        Ok(())
    }
}

impl ClientCertVerifier for ServiceEndorsed {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(end_entity, now)?;
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

impl ServerCertVerifier for ServiceEndorsed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

fn certs_and_key(
    identity: &ChannelIdentity,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
        Vec<u8>,
    ),
    TlsSetupError,
> {
    let certs = coco_crypto::pem_to_der_certs(&identity.cert_pem)
        .map_err(|e| TlsSetupError::Cert(e.to_string()))?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = coco_crypto::EcKeyPair::from_pkcs8_pem(&identity.key_pkcs8_pem)
        .map_err(|e| TlsSetupError::Key(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_pkcs8_der()));
    let service_der = coco_crypto::pem_to_der_certs(&identity.service_cert_pem)
        .map_err(|e| TlsSetupError::Cert(e.to_string()))?
        .remove(0);
    let service_spki = coco_crypto::cert_public_key_spki_der(&service_der)
        .map_err(|e| TlsSetupError::Cert(e.to_string()))?;
    Ok((certs, key, service_spki))
}

fn server_config(identity: &ChannelIdentity) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (certs, key, service_spki) = certs_and_key(identity)?;
    let verifier = Arc::new(ServiceEndorsed {
        signatures: HandshakeSignatures(provider.clone()),
        service_spki,
        expected: None,
    });
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn client_config(
    identity: &ChannelIdentity,
    peer: &str,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (certs, key, service_spki) = certs_and_key(identity)?;
    let verifier = Arc::new(ServiceEndorsed {
        signatures: HandshakeSignatures(provider.clone()),
        service_spki,
        expected: Some(peer.to_owned()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(certs, key)?;
    Ok(Arc::new(config))
}

async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > CONSENSUS_MESSAGE_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

async fn write_frame<S: AsyncWrite + Unpin>(s: &mut S, payload: &[u8]) -> std::io::Result<()> {
    s.write_all(&(payload.len() as u32).to_le_bytes()).await?;
    s.write_all(payload).await
}

/// Received consensus messages go here, tagged with the sender's node id.
pub type Inbound = mpsc::Sender<(String, Message)>;

/// Connections peers opened to this node, by peer node id: the writing half, so this node can
/// answer a peer whose address it does not know yet (a joiner answering the primary; CCF's host
/// associates incoming connections the same way).
type Accepted = Arc<Mutex<BTreeMap<String, mpsc::Sender<Bytes>>>>;

/// This node's node-to-node channels: a listener for peers, one dialled connection per peer
/// whose address is known, and the connections peers opened. Every connection carries frames
/// both ways.
pub struct Network {
    identity: ChannelIdentity,
    runtime: tokio::runtime::Handle,
    inbound: Inbound,
    accepted: Accepted,
    dialled: BTreeMap<String, (String, mpsc::Sender<Bytes>)>,
}

impl Network {
    pub fn new(
        identity: ChannelIdentity,
        runtime: tokio::runtime::Handle,
        inbound: Inbound,
    ) -> Network {
        Network {
            identity,
            runtime,
            inbound,
            accepted: Arc::default(),
            dialled: BTreeMap::new(),
        }
    }

    /// Accepts channels from peers on `listener` until the runtime stops. Connections whose
    /// certificate is not service-endorsed fail the handshake.
    pub fn listen(&self, listener: std::net::TcpListener) -> Result<(), TlsSetupError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&self.identity)?);
        let inbound = self.inbound.clone();
        let accepted = self.accepted.clone();
        let _guard = self.runtime.enter();
        let listener = TcpListener::from_std(listener)
            .map_err(|e| TlsSetupError::Cert(format!("node-to-node listener: {e}")))?;
        self.runtime
            .spawn(accept_loop(listener, acceptor, inbound, accepted));
        Ok(())
    }

    /// Queues `message` for `peer`: over a connection dialled to `address` if known, else over a
    /// connection the peer opened, if any. Returns false if it was dropped (no route, or the
    /// peer's queue is full); consensus resends.
    pub fn send(&mut self, peer: &str, address: Option<&str>, message: &Message) -> bool {
        let frame = Bytes::from(message.encode());
        let Some(address) = address else {
            let accepted = self.accepted.lock().expect("accepted map lock");
            return accepted
                .get(peer)
                .is_some_and(|tx| tx.try_send(frame).is_ok());
        };
        let stale = self
            .dialled
            .get(peer)
            .is_some_and(|(a, tx)| a != address || tx.is_closed());
        if stale {
            self.dialled.remove(peer);
        }
        if !self.dialled.contains_key(peer) {
            let (tx, rx) = mpsc::channel(N2N_QUEUE_MESSAGE_COUNT_MAX);
            let identity = self.identity.clone();
            let inbound = self.inbound.clone();
            let peer_id = peer.to_owned();
            let addr = address.to_owned();
            self.runtime
                .spawn(async move { dial(identity, peer_id, addr, rx, inbound).await });
            self.dialled
                .insert(peer.to_owned(), (address.to_owned(), tx));
        }
        let (_, tx) = &self.dialled[peer];
        tx.try_send(frame).is_ok()
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    inbound: Inbound,
    accepted: Accepted,
) {
    loop {
        let Ok((tcp, addr)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let inbound = inbound.clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "node-to-node handshake refused");
                    return;
                }
            };
            let Some(peer) = peer_node_id(tls.get_ref().1.peer_certificates()) else {
                return;
            };
            let (tx, rx) = mpsc::channel(N2N_QUEUE_MESSAGE_COUNT_MAX);
            accepted
                .lock()
                .expect("accepted map lock")
                .insert(peer.clone(), tx.clone());
            run_connection(tls, &peer, rx, &inbound).await;
            let mut map = accepted.lock().expect("accepted map lock");
            if map.get(&peer).is_some_and(|t| t.same_channel(&tx)) {
                map.remove(&peer);
            }
        });
    }
}

/// Carries frames both ways on one authenticated connection until either side closes it, a
/// frame does not decode, or the local queue is dropped.
async fn run_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: &str,
    mut rx: mpsc::Receiver<Bytes>,
    inbound: &Inbound,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let read = async {
        loop {
            match read_frame(&mut reader).await {
                Ok(Some(frame)) => match Message::decode(&frame) {
                    Ok(m) => {
                        if inbound.send((peer.to_owned(), m)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "malformed consensus message; closing");
                        return;
                    }
                },
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "node-to-node read ended");
                    return;
                }
            }
        }
    };
    let write = async {
        while let Some(frame) = rx.recv().await {
            if write_frame(&mut writer, &frame).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = read => {}
        _ = write => {}
    }
}

/// Keeps a channel to `peer` at `addr` open and carries frames both ways; messages queued
/// while the peer is unreachable are dropped.
async fn dial(
    identity: ChannelIdentity,
    peer: String,
    addr: String,
    mut rx: mpsc::Receiver<Bytes>,
    inbound: Inbound,
) {
    let config = match client_config(&identity, &peer) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%peer, error = %e, "cannot configure node-to-node TLS");
            return;
        }
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    loop {
        let stream = match TcpStream::connect(addr.as_str()).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                // The peer is identified by its certificate (checked against `peer`), not by
                // a name; the server name only has to be well-formed.
                let name = s
                    .peer_addr()
                    .map(|a| ServerName::IpAddress(a.ip().into()))
                    .unwrap_or_else(|_| ServerName::try_from("node").expect("valid name"));
                connector.connect(name, s).await.ok()
            }
            Err(_) => None,
        };
        let Some(stream) = stream else {
            // Unreachable: drop what is queued (consensus resends) and try again later.
            while rx.try_recv().is_ok() {}
            tokio::time::sleep(REDIAL_DELAY).await;
            if rx.is_closed() {
                return;
            }
            continue;
        };
        let (tx_inner, rx_inner) = mpsc::channel(N2N_QUEUE_MESSAGE_COUNT_MAX);
        let forward = async {
            while let Some(frame) = rx.recv().await {
                if tx_inner.send(frame).await.is_err() {
                    return false;
                }
            }
            true
        };
        let done = tokio::select! {
            finished = forward => finished,
            _ = run_connection(stream, &peer, rx_inner, &inbound) => false,
        };
        if done {
            // The local queue was dropped: this peer is no longer dialled.
            return;
        }
    }
}

#[cfg(test)]
mod tests;

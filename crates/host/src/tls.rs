//! TLS for client-facing interfaces: rustls with the aws-lc-rs provider, HTTP/2 and HTTP/1.1 by
//! ALPN, and a client-certificate verifier that accepts any well-formed certificate whose
//! handshake signature verifies.
//!
//! CCF lets users and members present self-signed certificates; whether a certificate belongs to
//! a user or member is decided per endpoint against the KV (`users.certs`, `members.certs`), not
//! by a CA. So the verifier only proves possession of the key; authorisation happens in the core.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// Handshake-signature checks with a crypto provider's algorithms: the part of every
/// certificate verifier that does not depend on which certificates it accepts.
#[derive(Debug)]
pub(crate) struct HandshakeSignatures(pub(crate) Arc<CryptoProvider>);

impl HandshakeSignatures {
    pub(crate) fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    pub(crate) fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    pub(crate) fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Accepts any client certificate that parses as X.509 and whose handshake signature verifies;
/// a certificate is optional (`no_auth` endpoints serve anonymous clients).
#[derive(Debug)]
pub struct AnyClientCert {
    signatures: HandshakeSignatures,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        coco_crypto::cert_public_key_spki_der(end_entity.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("invalid certificate PEM: {0}")]
    Cert(String),
    #[error("invalid private key PEM: {0}")]
    Key(String),
    #[error("rustls rejected the configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The node's TLS server certificate, replaceable while the node serves: when governance renews
/// it (`set_node_certificate_validity`), new handshakes present the new certificate; open
/// connections keep theirs.
#[derive(Debug)]
pub struct NodeCertSlot {
    key: Arc<dyn rustls::sign::SigningKey>,
    current: std::sync::RwLock<Arc<CertifiedKey>>,
}

/// `cert_chain_pem` (leaf first) with the node's key, checked to belong together.
fn certified(
    key: &Arc<dyn rustls::sign::SigningKey>,
    cert_chain_pem: &str,
) -> Result<Arc<CertifiedKey>, TlsSetupError> {
    let certs: Vec<CertificateDer<'static>> = coco_crypto::pem_to_der_certs(cert_chain_pem)
        .map_err(|e| TlsSetupError::Cert(e.to_string()))?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let certified = CertifiedKey::new(certs, key.clone());
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

impl NodeCertSlot {
    /// Serves `cert_chain_pem` from the next handshake on. The certificate must be for the
    /// node's key; otherwise nothing changes.
    pub fn replace(&self, cert_chain_pem: &str) -> Result<(), TlsSetupError> {
        let certified = certified(&self.key, cert_chain_pem)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = certified;
        Ok(())
    }

    /// The certificate currently served (leaf first), as DER.
    pub fn current_der(&self) -> Vec<Vec<u8>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    }
}

impl rustls::server::ResolvesServerCert for NodeCertSlot {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Builds the server configuration for an RPC interface: `cert_chain_pem` is the node
/// certificate (endorsed by the service identity), `key_pkcs8_pem` its private key. The
/// returned slot replaces the certificate later.
pub fn server_config(
    cert_chain_pem: &str,
    key_pkcs8_pem: &str,
) -> Result<(Arc<ServerConfig>, Arc<NodeCertSlot>), TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key_der = pem_private_key_der(key_pkcs8_pem)?;
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)))?;
    let first = certified(&key, cert_chain_pem)?;
    let slot = Arc::new(NodeCertSlot {
        key,
        current: std::sync::RwLock::new(first),
    });
    let verifier = Arc::new(AnyClientCert {
        signatures: HandshakeSignatures(provider.clone()),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(slot.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), slot))
}

fn pem_private_key_der(pem: &str) -> Result<Vec<u8>, TlsSetupError> {
    let mut reader = pem.as_bytes();
    for item in rustls_pemfile::read_all(&mut reader) {
        match item.map_err(|e| TlsSetupError::Key(e.to_string()))? {
            rustls_pemfile::Item::Pkcs8Key(k) => return Ok(k.secret_pkcs8_der().to_vec()),
            _ => continue,
        }
    }
    Err(TlsSetupError::Key("no PRIVATE KEY (PKCS#8) block".into()))
}

//! The error type shared by every operation of this crate.

/// Why a cryptographic operation refused its input.
///
/// Variants carry no secret material. Parse failures keep the underlying library's message as a
/// string so that callers can log it without depending on that library's error types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The text is not well-formed PEM.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// The PEM text holds no block with the label this operation needs.
    #[error("PEM holds no {0} block")]
    PemLabel(&'static str),
    /// A private key could not be parsed, or is of a type or curve this crate does not support.
    #[error("invalid or unsupported private key")]
    InvalidPrivateKey,
    /// A public key could not be parsed, or is of a type or curve this crate does not support.
    #[error("invalid or unsupported public key")]
    InvalidPublicKey,
    /// A signature did not verify (or was not even well-formed).
    #[error("signature verification failed")]
    BadSignature,
    /// AES-GCM authentication failed: wrong key, IV, AAD, tag, or tampered ciphertext.
    #[error("authenticated decryption failed")]
    AeadOpen,
    /// RSA-OAEP encryption refused the input (typically: plaintext too long for the key).
    #[error("RSA-OAEP encryption failed")]
    RsaEncrypt,
    /// RSA-OAEP decryption failed: wrong key or corrupted ciphertext.
    #[error("RSA-OAEP decryption failed")]
    RsaDecrypt,
    /// Only 2048, 3072 and 4096-bit RSA keys are supported.
    #[error("unsupported RSA key size {0} bits")]
    UnsupportedRsaKeySize(u32),
    /// The crypto library failed to generate a key or signature (should not happen).
    #[error("key generation or signing failed inside the crypto library")]
    Internal,
    /// The operating system's random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A recovery share (or a split or combination of shares) was refused.
    #[error("recovery share: {0}")]
    BadShare(String),
    /// A certificate could not be parsed as DER X.509.
    #[error("malformed certificate: {0}")]
    Certificate(String),
    /// A certificate is signed with an algorithm this crate does not verify.
    #[error("unsupported certificate signature algorithm {0}")]
    UnsupportedSignatureAlgorithm(String),
    /// Certificate generation refused the parameters (e.g. bad name, bad validity).
    #[error("certificate generation failed: {0}")]
    CertGeneration(String),
    /// A validity period is empty or not representable as an X.509 time.
    #[error("invalid validity period {not_before_unix_s}..{not_after_unix_s}")]
    InvalidValidity {
        /// Start of the period, in seconds since the Unix epoch.
        not_before_unix_s: i64,
        /// End of the period, in seconds since the Unix epoch.
        not_after_unix_s: i64,
    },
}

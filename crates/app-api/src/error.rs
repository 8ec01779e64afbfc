//! CCF's error responses: `{"error": {"code": "...", "message": "..."}}` with CCF's status codes
//! (`include/ccf/odata_error.h`). Every error a client can see is built here, in one place.

use http::StatusCode;
use serde::Serialize;

use crate::Response;

/// CCF's `WWW-Authenticate` value for COSE Sign1 authentication failures.
pub const COSE_WWW_AUTHENTICATE: &str = "COSE-SIGN1 realm=\"Signed request access\"";

/// CCF's error codes that coco emits. The string form is the variant name, as in CCF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    AuthorizationFailed,
    InternalError,
    InvalidAuthenticationInfo,
    InvalidHeaderValue,
    InvalidInput,
    InvalidQueryParameterValue,
    InvalidResourceName,
    MissingRequiredHeader,
    ResourceNotFound,
    UnsupportedHttpVerb,
    UnsupportedContentType,
    RequestBodyTooLarge,
    RequestHeaderTooLarge,
    SessionCapExhausted,
    /// A backup cannot execute a write (and cannot forward it yet).
    NodeCannotHandleRequest,
    FrontendNotOpen,
    TransactionCommitAttemptsExceedLimit,
    TransactionReplicationFailed,
    UnknownCertificate,
    TransactionPendingOrUnknown,
    TransactionInvalid,
    TooManyPendingTransactions,
    ServiceUnavailable,
    MissingApiVersionParameter,
    UnsupportedApiVersionValue,
    StateDigestMismatch,
    ProposalReplay,
    ProposalCreatedTooLongAgo,
    InvalidCreatedAt,
    ProposalFailedToValidate,
    ProposalNotOpen,
    ProposalNotFound,
    VoteAlreadyExists,
    /// A joining node's attestation was refused (`/node/join`).
    InvalidQuote,
    /// A joining node's CSR is not for the key of its TLS certificate.
    CSRPublicKeyInvalid,
    /// Another node already publishes this node-to-node address.
    NodeAlreadyExists,
    /// A retired node tried to join again.
    NodeAlreadyRetired,
    /// The primary changed under a session forwarded to it.
    SessionConsistencyLost,
    /// A backup forwarded a request and the primary did not answer in time.
    RequestForwardingTimedOut,
    /// `DELETE /node/network/nodes/{id}` on a node that is not retired and committed as such.
    NodeNotRetiredCommitted,
    /// A recovery share submitted while the service is not waiting for them.
    ServiceNotWaitingForRecoveryShares,
    /// A recovery share submitted while this node already replays the private ledger.
    NodeAlreadyRecovering,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthorizationFailed => "AuthorizationFailed",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::InvalidAuthenticationInfo => "InvalidAuthenticationInfo",
            ErrorCode::InvalidHeaderValue => "InvalidHeaderValue",
            ErrorCode::InvalidInput => "InvalidInput",
            ErrorCode::InvalidQueryParameterValue => "InvalidQueryParameterValue",
            ErrorCode::InvalidResourceName => "InvalidResourceName",
            ErrorCode::MissingRequiredHeader => "MissingRequiredHeader",
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::UnsupportedHttpVerb => "UnsupportedHttpVerb",
            ErrorCode::UnsupportedContentType => "UnsupportedContentType",
            ErrorCode::RequestBodyTooLarge => "RequestBodyTooLarge",
            ErrorCode::RequestHeaderTooLarge => "RequestHeaderTooLarge",
            ErrorCode::SessionCapExhausted => "SessionCapExhausted",
            ErrorCode::NodeCannotHandleRequest => "NodeCannotHandleRequest",
            ErrorCode::FrontendNotOpen => "FrontendNotOpen",
            ErrorCode::TransactionCommitAttemptsExceedLimit => {
                "TransactionCommitAttemptsExceedLimit"
            }
            ErrorCode::TransactionReplicationFailed => "TransactionReplicationFailed",
            ErrorCode::UnknownCertificate => "UnknownCertificate",
            ErrorCode::TransactionPendingOrUnknown => "TransactionPendingOrUnknown",
            ErrorCode::TransactionInvalid => "TransactionInvalid",
            ErrorCode::TooManyPendingTransactions => "TooManyPendingTransactions",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
            ErrorCode::MissingApiVersionParameter => "MissingApiVersionParameter",
            ErrorCode::UnsupportedApiVersionValue => "UnsupportedApiVersionValue",
            ErrorCode::StateDigestMismatch => "StateDigestMismatch",
            ErrorCode::ProposalReplay => "ProposalReplay",
            ErrorCode::ProposalCreatedTooLongAgo => "ProposalCreatedTooLongAgo",
            ErrorCode::InvalidCreatedAt => "InvalidCreatedAt",
            ErrorCode::ProposalFailedToValidate => "ProposalFailedToValidate",
            ErrorCode::ProposalNotOpen => "ProposalNotOpen",
            ErrorCode::ProposalNotFound => "ProposalNotFound",
            ErrorCode::VoteAlreadyExists => "VoteAlreadyExists",
            ErrorCode::InvalidQuote => "InvalidQuote",
            ErrorCode::CSRPublicKeyInvalid => "CSRPublicKeyInvalid",
            ErrorCode::NodeAlreadyExists => "NodeAlreadyExists",
            ErrorCode::NodeAlreadyRetired => "NodeAlreadyRetired",
            ErrorCode::SessionConsistencyLost => "SessionConsistencyLost",
            ErrorCode::RequestForwardingTimedOut => "RequestForwardingTimedOut",
            ErrorCode::NodeNotRetiredCommitted => "NodeNotRetiredCommitted",
            ErrorCode::ServiceNotWaitingForRecoveryShares => "ServiceNotWaitingForRecoveryShares",
            ErrorCode::NodeAlreadyRecovering => "NodeAlreadyRecovering",
        }
    }
}

/// An error response: status, CCF code and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Extra headers, e.g. `WWW-Authenticate` on 401 or `Allow` on 405.
    pub headers: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::ResourceNotFound, message)
    }

    pub fn bad_query(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQueryParameterValue,
            message,
        )
    }

    /// 401 for a COSE Sign1 authentication failure, with CCF's `WWW-Authenticate` hint.
    pub fn cose_unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidAuthenticationInfo,
            message,
        )
        .with_header("www-authenticate", COSE_WWW_AUTHENTICATE)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            message,
        )
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The JSON body CCF sends: `{"error":{"code":"...","message":"..."}}`.
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Body {
            error: Inner {
                code: self.code.as_str(),
                message: &self.message,
            },
        })
        .expect("serialising an error body cannot fail")
    }

    pub fn into_response(self) -> Response {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let body = self.body_bytes();
        headers.extend(self.headers);
        Response {
            status: self.status,
            headers,
            body: body.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_ccf_shape() {
        let r = ApiError::not_found("No such record: 4.").into_response();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(
            &r.body[..],
            br#"{"error":{"code":"ResourceNotFound","message":"No such record: 4."}}"#
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

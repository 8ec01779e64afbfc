//! What nodes say to each other over node-to-node channels: consensus messages, and client
//! requests a backup forwards to the primary with the primary's responses (ccf-reference §6.3).
//!
//! Frame: `tag:u8 ‖ body`. Tag 0 = consensus (`coco_consensus::wire` bytes); 1 = forwarded
//! request (`id:u64 ‖ request`); 2 = forwarded response (`id:u64 ‖ response`). Strings and byte
//! strings are `len:u32 LE ‖ bytes`. A request carries the client's TLS certificate (DER) so the
//! primary authenticates the caller itself; the fingerprint is recomputed, never trusted.

use bytes::Bytes;
use coco_app_api::{Method, PeerCert, Request, Response, StatusCode};

/// A message between two nodes of one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMessage {
    Consensus(coco_consensus::Message),
    /// A write a backup received; the primary executes it and answers with `ForwardResponse`.
    Forward {
        id: u64,
        request: Request,
    },
    ForwardResponse {
        id: u64,
        response: Response,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerDecodeError {
    #[error("empty frame")]
    Empty,
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Consensus(#[from] coco_consensus::wire::DecodeError),
}

const TAG_CONSENSUS: u8 = 0;
const TAG_FORWARD: u8 = 1;
const TAG_FORWARD_RESPONSE: u8 = 2;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_headers(out: &mut Vec<u8>, headers: &[(String, String)]) {
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (k, v) in headers {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PeerDecodeError> {
        if self.bytes.len() - self.at < n {
            return Err(PeerDecodeError::Truncated(self.at));
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, PeerDecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, PeerDecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<&'a [u8], PeerDecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self, what: &'static str) -> Result<String, PeerDecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| PeerDecodeError::Invalid(what))
    }
    fn headers(&mut self) -> Result<Vec<(String, String)>, PeerDecodeError> {
        let n = self.u32()? as usize;
        // Each header takes at least 8 bytes: refuse counts the frame cannot hold.
        if n > (self.bytes.len() - self.at) / 8 {
            return Err(PeerDecodeError::Invalid("header count"));
        }
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            headers.push((self.string("header name")?, self.string("header value")?));
        }
        Ok(headers)
    }
    fn end(&self) -> Result<(), PeerDecodeError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            n => Err(PeerDecodeError::Trailing(n)),
        }
    }
}

impl PeerMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            PeerMessage::Consensus(m) => {
                out.push(TAG_CONSENSUS);
                out.extend_from_slice(&m.encode());
            }
            PeerMessage::Forward { id, request } => {
                out.push(TAG_FORWARD);
                out.extend_from_slice(&id.to_le_bytes());
                put_bytes(&mut out, request.method.as_str().as_bytes());
                put_bytes(&mut out, request.path.as_bytes());
                put_bytes(&mut out, request.query.as_bytes());
                put_headers(&mut out, &request.headers);
                put_bytes(&mut out, &request.body);
                match &request.peer_cert {
                    Some(c) => {
                        out.push(1);
                        put_bytes(&mut out, &c.der);
                    }
                    None => out.push(0),
                }
            }
            PeerMessage::ForwardResponse { id, response } => {
                out.push(TAG_FORWARD_RESPONSE);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&response.status.as_u16().to_le_bytes());
                put_headers(&mut out, &response.headers);
                put_bytes(&mut out, &response.body);
            }
        }
        out
    }

    pub fn decode(frame: &[u8]) -> Result<PeerMessage, PeerDecodeError> {
        let (&tag, rest) = frame.split_first().ok_or(PeerDecodeError::Empty)?;
        let mut r = Reader { bytes: rest, at: 0 };
        let message = match tag {
            TAG_CONSENSUS => {
                return Ok(PeerMessage::Consensus(coco_consensus::Message::decode(
                    rest,
                )?));
            }
            TAG_FORWARD => {
                let id = r.u64()?;
                let method = Method::from_bytes(r.bytes()?)
                    .map_err(|_| PeerDecodeError::Invalid("method"))?;
                let path = r.string("path")?;
                let query = r.string("query")?;
                let headers = r.headers()?;
                let body = Bytes::copy_from_slice(r.bytes()?);
                let peer_cert = match r.take(1)?[0] {
                    0 => None,
                    1 => {
                        let der = Bytes::copy_from_slice(r.bytes()?);
                        Some(PeerCert {
                            fingerprint_hex: coco_crypto::cert_der_fingerprint_hex(&der),
                            der,
                        })
                    }
                    _ => return Err(PeerDecodeError::Invalid("certificate flag")),
                };
                PeerMessage::Forward {
                    id,
                    request: Request {
                        method,
                        path,
                        query,
                        headers,
                        body,
                        peer_cert,
                    },
                }
            }
            TAG_FORWARD_RESPONSE => {
                let id = r.u64()?;
                let status = u16::from_le_bytes(r.take(2)?.try_into().expect("2 bytes"));
                let status =
                    StatusCode::from_u16(status).map_err(|_| PeerDecodeError::Invalid("status"))?;
                let headers = r.headers()?;
                let body = Bytes::copy_from_slice(r.bytes()?);
                PeerMessage::ForwardResponse {
                    id,
                    response: Response {
                        status,
                        headers,
                        body,
                    },
                }
            }
            other => return Err(PeerDecodeError::UnknownTag(other)),
        };
        r.end()?;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<PeerMessage> {
        let cert = coco_crypto::self_signed_cert(
            &coco_crypto::EcKeyPair::generate(coco_crypto::Curve::P256).unwrap(),
            "user",
            coco_crypto::Validity {
                not_before_unix_s: 0,
                not_after_unix_s: 4_000_000_000,
            },
        )
        .unwrap();
        let der = Bytes::from(coco_crypto::pem_to_der_certs(&cert).unwrap().remove(0));
        vec![
            PeerMessage::Consensus(coco_consensus::Message::ProposeRequestVote { term: 7 }),
            PeerMessage::Forward {
                id: 3,
                request: Request {
                    method: Method::POST,
                    path: "/app/log/private".into(),
                    query: "a=1".into(),
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Bytes::from_static(b"{\"id\":1}"),
                    peer_cert: Some(PeerCert {
                        fingerprint_hex: coco_crypto::cert_der_fingerprint_hex(&der),
                        der,
                    }),
                },
            },
            PeerMessage::Forward {
                id: u64::MAX,
                request: Request {
                    method: Method::DELETE,
                    path: "/x".into(),
                    query: String::new(),
                    headers: Vec::new(),
                    body: Bytes::new(),
                    peer_cert: None,
                },
            },
            PeerMessage::ForwardResponse {
                id: 3,
                response: Response {
                    status: StatusCode::OK,
                    headers: vec![("x-ms-ccf-transaction-id".into(), "2.10".into())],
                    body: Bytes::from_static(b"true"),
                },
            },
        ]
    }

    #[test]
    fn messages_round_trip_and_every_prefix_is_refused() {
        for m in samples() {
            let bytes = m.encode();
            assert_eq!(PeerMessage::decode(&bytes).unwrap(), m);
            for cut in 0..bytes.len() {
                assert!(
                    PeerMessage::decode(&bytes[..cut]).is_err(),
                    "{m:?} cut at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(
                PeerMessage::decode(&longer).is_err(),
                "{m:?} with a trailing byte"
            );
        }
        assert_eq!(
            PeerMessage::decode(&[9]),
            Err(PeerDecodeError::UnknownTag(9))
        );
    }
}

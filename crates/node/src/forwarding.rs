//! Writes that reach a backup (ccf-reference §6.3): redirected with 307 when the receiving
//! interface has `redirections`, otherwise forwarded to the primary over the node-to-node channel
//! and answered with the primary's response. A session that forwarded in one view and sends
//! again after the view changed gets 500 `SessionConsistencyLost`, as in CCF: its earlier writes
//! may have been rolled back.

use coco_app_api::{ApiError, ErrorCode, Request, Response, StatusCode};
use coco_codec::tables;
use coco_types::limits;

use crate::{Node, Now, Origin, Output, PeerMessage, RequestId, Routed, Session, join};

impl Node {
    /// Hands a write this backup cannot execute to the primary.
    pub(crate) fn hand_to_primary(
        &mut self,
        now: Now,
        id: RequestId,
        session: &Session,
        request: &Request,
        primary: String,
        out: &mut Vec<Output>,
    ) -> Routed {
        if let Some(location) = self.redirect_location(session, request, &primary) {
            return Routed::Answer(
                Response::new(StatusCode::TEMPORARY_REDIRECT).with_header("location", location),
            );
        }
        let view = self.consensus.view;
        match self.forwarded_sessions.get(&session.id) {
            Some(&pinned) if pinned != view => {
                return Routed::Answer(
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ErrorCode::SessionConsistencyLost,
                        format!(
                            "The primary changed (view {pinned} to {view}) since this session's \
                             first forwarded request; open a new session."
                        ),
                    )
                    .with_header("connection", "close")
                    .into_response(),
                );
            }
            Some(_) => {}
            None => {
                std::sync::Arc::make_mut(&mut self.forwarded_sessions).insert(session.id, view);
            }
        }
        let forward_id = self.next_forward_id;
        self.next_forward_id += 1;
        self.pending_forwards
            .insert(forward_id, (id, now.monotonic_ms));
        self.send_to_peer(
            primary,
            PeerMessage::Forward {
                id: forward_id,
                request: request.clone(),
            },
            out,
        );
        Routed::Forwarded
    }

    /// `https://<address><path>?<query>` for the interface's `to_primary` redirection, if the
    /// interface this request arrived on is configured to redirect.
    fn redirect_location(
        &self,
        session: &Session,
        request: &Request,
        primary: &str,
    ) -> Option<String> {
        let mut tx = self.store.begin();
        let own: tables::NodeInfo =
            tables::from_ccf_json(&tx.get(tables::NODES_INFO, self.identity.node_id.as_bytes())?)
                .ok()?;
        let redirections = own
            .rpc_interfaces
            .get(&session.interface)?
            .redirections
            .clone()?;
        let address = match redirections.to_primary.kind {
            tables::RedirectionResolutionKind::StaticAddress => {
                redirections.to_primary.target["address"]
                    .as_str()?
                    .to_owned()
            }
            tables::RedirectionResolutionKind::NodeByRole => {
                let info: tables::NodeInfo =
                    tables::from_ccf_json(&tx.get(tables::NODES_INFO, primary.as_bytes())?).ok()?;
                let interface = info
                    .rpc_interfaces
                    .get(&session.interface)
                    .or_else(|| info.rpc_interfaces.values().next())?;
                join::published(interface).to_owned()
            }
        };
        let query = if request.query.is_empty() {
            String::new()
        } else {
            format!("?{}", request.query)
        };
        Some(format!("https://{address}{}{query}", request.path))
    }

    /// Sends `message` to `to`, at its published address if this node knows it.
    pub(crate) fn send_to_peer(&self, to: String, message: PeerMessage, out: &mut Vec<Output>) {
        out.push(Output::Peer {
            address: self.peer_addresses.get(&to).cloned(),
            to,
            message,
        });
    }

    pub(crate) fn on_peer_message(
        &mut self,
        now: Now,
        from: String,
        message: PeerMessage,
        out: &mut Vec<Output>,
    ) {
        match message {
            PeerMessage::Consensus(message) => {
                self.consensus_step(now, coco_consensus::Input::Receive { from, message }, out)
            }
            PeerMessage::Forward { id, request } => {
                // Executed now, or held for admission and answered later; never forwarded again.
                let origin = Origin::Peer {
                    from: from.clone(),
                    id,
                };
                if let Some(response) = self.execute(now, &request, origin, out) {
                    self.send_to_peer(from, PeerMessage::ForwardResponse { id, response }, out);
                }
            }
            PeerMessage::ForwardResponse { id, response } => {
                // Unknown ids are answers that came after this node timed the request out.
                if let Some((request_id, _)) = self.pending_forwards.remove(&id) {
                    out.push(Output::Respond {
                        id: request_id,
                        response,
                    });
                }
            }
        }
    }

    /// Answers forwarded requests the primary has not answered in time.
    pub(crate) fn expire_forwards(&mut self, now: Now, out: &mut Vec<Output>) {
        let expired: Vec<u64> = self
            .pending_forwards
            .iter()
            .filter(|(_, (_, sent))| {
                now.monotonic_ms.saturating_sub(*sent) >= limits::FORWARDING_TIMEOUT_MS_DEFAULT
            })
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            let (id, _) = self.pending_forwards.remove(&k).expect("listed above");
            out.push(Output::Respond {
                id,
                response: ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::RequestForwardingTimedOut,
                    "The request was forwarded to the primary, which did not answer in time; \
                     its outcome is unknown (check the transaction status before retrying).",
                )
                .into_response(),
            });
        }
    }
}

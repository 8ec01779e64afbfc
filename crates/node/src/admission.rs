//! Admission of writes on the primary: flow control toward the commit latency target.
//!
//! A write is answered as soon as it executes, long before it commits, so clients in a closed
//! loop are not slowed by replication: on a busy machine the primary can run far ahead of its
//! backups and every transaction then waits behind that backlog to commit. With a commit latency
//! target (`ledger_signatures.commit_latency_target`), the primary therefore *holds* new writes —
//! queues them unexecuted, in arrival order — while its oldest signature awaiting commit has
//! waited more than `limits::ADMISSION_HOLD_TARGET_MULTIPLE` targets, and executes them as soon
//! as commits catch up. Held requests keep their clients waiting (which is the point: it slows
//! the producers instead of growing the backlog), are bounded in number
//! (`limits::ADMISSION_HELD_COUNT_MAX`) and in time (`limits::ADMISSION_HOLD_MS_MAX`), and past
//! either bound get CCF's 503 `TooManyPendingTransactions`, as past the uncommitted bound.
//! Without a target the primary admits every write, as CCF does.

use coco_app_api::{ApiError, ErrorCode, Request, StatusCode};
use coco_types::limits;

use crate::{Node, Now, Origin, Output, PeerMessage};

/// A write waiting for admission.
pub(crate) struct Held {
    request: Request,
    origin: Origin,
    since_ms: u64,
}

impl Node {
    /// Whether a write routed to this primary now must wait behind commits. Writes arriving
    /// while others are held wait too, so that they execute in arrival order.
    pub(crate) fn must_hold_writes(&self, now: Now) -> bool {
        if !self.held.is_empty() {
            return true;
        }
        self.commit_behind_target(now)
    }

    /// The primary's oldest signature awaiting commit has waited past the hold threshold.
    fn commit_behind_target(&self, now: Now) -> bool {
        let Some(target) = self.config.commit_latency_target_ms else {
            return false;
        };
        self.raft.role() == coco_consensus::Role::Leader
            && self
                .signatures_awaiting_commit
                .front()
                .is_some_and(|&(_, at)| {
                    now.monotonic_ms.saturating_sub(at)
                        > target * limits::ADMISSION_HOLD_TARGET_MULTIPLE
                })
    }

    /// Queues a write for later execution; false (not held) when the queue is full.
    pub(crate) fn hold(&mut self, now: Now, request: &Request, origin: Origin) -> bool {
        if self.held.len() >= limits::ADMISSION_HELD_COUNT_MAX {
            return false;
        }
        self.held.push_back(Held {
            request: request.clone(),
            origin,
            since_ms: now.monotonic_ms,
        });
        true
    }

    /// Executes held writes while commits keep up (all of them if this node is no longer the
    /// primary: they are then forwarded or refused as any write reaching a backup), and refuses
    /// those that waited too long.
    pub(crate) fn admit_held(&mut self, now: Now, out: &mut Vec<Output>) {
        while let Some(front) = self.held.front() {
            let waited = now.monotonic_ms.saturating_sub(front.since_ms);
            if waited < limits::ADMISSION_HOLD_MS_MAX && self.commit_behind_target(now) {
                return;
            }
            let held = self.held.pop_front().expect("front exists");
            let response = if waited >= limits::ADMISSION_HOLD_MS_MAX {
                Some(too_many_pending(format!(
                    "Held {waited} ms waiting for commits to catch up; retry later."
                )))
            } else {
                self.route_and_execute(now, &held.request, held.origin.clone(), false, out)
                    .into_answer()
            };
            if let Some(response) = response {
                self.answer(held.origin, response, out);
            }
        }
    }

    /// Sends `response` to whoever sent the request.
    pub(crate) fn answer(
        &mut self,
        origin: Origin,
        response: coco_app_api::Response,
        out: &mut Vec<Output>,
    ) {
        match origin {
            Origin::Client { id, .. } => out.push(Output::Respond { id, response }),
            Origin::Peer { from, id } => {
                self.send_to_peer(from, PeerMessage::ForwardResponse { id, response }, out)
            }
        }
    }
}

/// The answer to a write that cannot be admitted now.
pub(crate) fn too_many_pending(message: String) -> coco_app_api::Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::TooManyPendingTransactions,
        message,
    )
    .into_response()
}

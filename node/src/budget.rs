//! A node-wide budget on the request bytes clients have sent and the node has not yet decoded.
//!
//! A gRPC message is buffered until it is whole, and one may be as large as
//! [`mortar_proto::GRPC_MESSAGE_BYTES_MAX`]: a client that sends most of a large message and then
//! stalls, on every stream of every connection it may open, would otherwise hold gigabytes of the
//! node's memory. Every request to a client service ([`is_budgeted`]) takes its body's bytes from
//! one [`RequestBudget`] as they arrive and gives them back when the body is dropped (once tonic
//! has decoded the message). A request whose bytes do not fit fails with `ResourceExhausted`
//! (`mortar_node_request_bytes_refused_total`; a client may retry) and a request whose body is
//! not complete within [`REQUEST_BODY_WAIT`] fails with `DeadlineExceeded`, so a stalled request
//! cannot keep its bytes. The peer services (`mortar.internal.*`) are exempt: their streams
//! last as long as the connection, their messages are bounded by epoxy's batches, and with TLS
//! only the cluster's nodes reach them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::Status;

/// Request bytes a node holds undecoded at once, across every client connection.
pub const REQUEST_BYTES_IN_FLIGHT_MAX: usize = 256 * 1024 * 1024;
/// How long a client request's body may take to arrive whole.
pub const REQUEST_BODY_WAIT: Duration = Duration::from_secs(30);

// The largest message must fit, with room for others.
const _: () = assert!(REQUEST_BYTES_IN_FLIGHT_MAX >= 4 * mortar_proto::GRPC_MESSAGE_BYTES_MAX);

/// Whether a request to `path` (`/package.Service/Method`) draws on the budget: every service
/// but the peers'.
pub fn is_budgeted(path: &str) -> bool {
    !path.starts_with("/mortar.internal.")
}

/// The node's budget; clones share it.
#[derive(Clone, Debug)]
pub struct RequestBudget {
    permits: Arc<Semaphore>,
    body_wait: Duration,
}

impl RequestBudget {
    pub fn new(bytes_max: usize, body_wait: Duration) -> Self {
        Self { permits: Arc::new(Semaphore::new(bytes_max)), body_wait }
    }

    /// Bytes not taken at the moment.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// `request` with its body drawing on the budget, if its service is budgeted.
    pub fn apply(&self, request: http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> {
        if !is_budgeted(request.uri().path()) {
            return request;
        }
        let budget = self.clone();
        request.map(|body| tonic::body::Body::new(BudgetedBody::new(body, budget)))
    }
}

/// A request body that takes its bytes from a [`RequestBudget`] until it is dropped.
pub struct BudgetedBody {
    inner: tonic::body::Body,
    budget: RequestBudget,
    held: Option<OwnedSemaphorePermit>,
    /// Until the body has ended.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl BudgetedBody {
    pub fn new(inner: tonic::body::Body, budget: RequestBudget) -> Self {
        let deadline = Some(Box::pin(tokio::time::sleep(budget.body_wait)));
        Self { inner, budget, held: None, deadline }
    }

    fn held_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl Drop for BudgetedBody {
    fn drop(&mut self) {
        metrics::gauge!("mortar_node_request_bytes_in_flight").decrement(self.held_bytes() as f64);
    }
}

impl http_body::Body for BudgetedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.deadline = None;
            metrics::counter!("mortar_node_request_bodies_timed_out_total").increment(1);
            return Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                "the request did not arrive whole within {} s",
                this.budget.body_wait.as_secs()
            )))));
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => {
                this.deadline = None;
                return Poll::Ready(None);
            }
            Some(Err(status)) => return Poll::Ready(Some(Err(status))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let bytes = data.len();
            let taken = u32::try_from(bytes)
                .ok()
                .and_then(|n| this.budget.permits.clone().try_acquire_many_owned(n).ok());
            let Some(taken) = taken else {
                metrics::counter!("mortar_node_request_bytes_refused_total").increment(1);
                return Poll::Ready(Some(Err(Status::resource_exhausted(
                    "the node holds as many request bytes as it may at once; retry shortly",
                ))));
            };
            metrics::gauge!("mortar_node_request_bytes_in_flight").increment(bytes as f64);
            match &mut this.held {
                Some(held) => held.merge(taken),
                None => this.held = Some(taken),
            }
        }
        if this.inner.is_end_stream() {
            this.deadline = None;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "budget_test.rs"]
mod tests;

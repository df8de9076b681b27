//! Request ids across processes: a caller (the S3 gateway) runs a request inside
//! [`with_request_id`]; every RPC the client library sends from that task carries the id in the
//! `anode-request-id` gRPC metadata, and masters and chunkservers log it in the span of that
//! RPC (see `anode_common::rpc_span`). One S3 request id can then be followed through the
//! logs of every process it touched.

use std::future::Future;
use std::task::{Context, Poll};

/// The gRPC metadata key carrying the id.
pub const REQUEST_ID_METADATA_KEY: &str = "anode-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Run `fut` with `id` as the request id of every RPC it sends.
pub async fn with_request_id<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The request id of the current task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A channel that stamps the current task's request id on every request.
#[derive(Clone, Debug)]
pub struct Traced<S>(pub S);

impl<S, B> tower_service::Service<http::Request<B>> for Traced<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if let Some(v) = current_request_id().and_then(|id| id.parse().ok()) {
            req.headers_mut().insert(REQUEST_ID_METADATA_KEY, v);
        }
        self.0.call(req)
    }
}

/// The transport every client of this crate uses.
pub type TracedChannel = Traced<tonic::transport::Channel>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_are_task_scoped() {
        assert_eq!(current_request_id(), None);
        let got = with_request_id("r1".into(), async { current_request_id() }).await;
        assert_eq!(got.as_deref(), Some("r1"));
        assert_eq!(current_request_id(), None);
    }
}

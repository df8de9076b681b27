//! Request ids across processes: a caller (the S3 gateway) runs a request inside
//! [`with_request_id`]; every RPC the client library sends from that task carries the id in the
//! `anode-request-id` gRPC metadata, and masters and chunkservers log it in the span of that
//! RPC (see `anode_common::rpc_span`). One S3 request id can then be followed through the
//! logs of every process it touched. With traces on (`anode_common::otel`) each RPC also
//! carries the W3C `traceparent` of the span it is sent from, so the serving process's span
//! joins the S3 request's trace.

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

/// The request id and the tracing span of the code that creates a lazy stream, to be
/// carried into the work the stream does later: an S3 GET returns its body stream from the
/// handler, and hyper polls it (and the chunk fetches it spawns) after the handler's span and
/// task-local id are gone. Work run through [`RequestContext::run`] logs in the request's span
/// and stamps its id on every RPC, wherever and whenever it is polled.
#[derive(Clone, Debug)]
pub struct RequestContext {
    id: Option<String>,
    span: tracing::Span,
}

impl RequestContext {
    /// The context of the caller: its task's request id and its current span.
    pub fn current() -> Self {
        RequestContext {
            id: current_request_id(),
            span: tracing::Span::current(),
        }
    }

    /// The request id carried, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// `fut` run inside this context.
    pub fn run<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        use tracing::Instrument;
        let RequestContext { id, span } = self;
        async move {
            match id {
                Some(id) => with_request_id(id, fut).await,
                None => fut.await,
            }
        }
        .instrument(span)
    }
}

/// A channel that stamps the current task's request id (and trace context) on every request.
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
        // W3C `traceparent` of the caller's span (the S3 request's), when traces are on.
        anode_common::otel::inject_current(req.headers_mut());
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

    #[tokio::test]
    async fn context_follows_work_polled_outside_the_request() {
        // Captured inside the request, as a lazy body stream is built...
        let ctx = with_request_id("r7".into(), async { RequestContext::current() }).await;
        assert_eq!(ctx.request_id(), Some("r7"));
        // ...and its work polled later, in another task, outside any request.
        let got = tokio::spawn(ctx.run(async { current_request_id() }))
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some("r7"));
        let none = RequestContext::current();
        assert_eq!(none.run(async { current_request_id() }).await, None);
    }
}

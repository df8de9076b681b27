//! Watching a bucket's events (issue 15): [`Client::watch`] and [`Client::watch_with`] over
//! the master's `Watch` stream.
//!
//! The stream is opened on the leader (the master checks the bucket with a linearizable
//! read, so the call follows the leader like any other); events come as that member applies
//! them. It is not durable: events applied while nobody watches are not replayed, and the
//! stream **ends** (with an error item) when the member serving it fails, restarts or loses
//! its place (a watcher that falls too far behind is cut off with `Busy`). A caller that
//! wants to keep watching opens a new watch then, and deduplicates by event id if it reads
//! the bucket's state again. For delivery that survives failures, use a notification target
//! (`anode ctl notify target-add`), which is at least once.
//!
//! The master sends a keep-alive (an answer without an event) every
//! [`WATCH_KEEPALIVE_HINT`] of silence; these are skipped. A stream silent for
//! [`WATCH_SILENCE_LIMIT`] (no event, no keep-alive: a member that stopped answering with its
//! connection open) ends with [`ClientError::Timeout`].

use std::pin::Pin;
use std::time::Duration;

use anode_proto::{NotificationEvent, WatchRequest};
use futures::{Stream, StreamExt};

use crate::{Client, ClientError};

/// How often the master sends a keep-alive on a silent watch.
pub const WATCH_KEEPALIVE_HINT: Duration = Duration::from_secs(5);
/// Silence after which a watch is taken as dead (three missed keep-alives).
pub const WATCH_SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// The events of a watch; ends after its first error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<NotificationEvent, ClientError>> + Send>>;

/// What a watch takes: the key filters and the S3 event selectors (`s3:ObjectCreated:*`,
/// `s3:ObjectRemoved:Delete`, ...; empty = every event; see `anode_meta::notify::EVENT_NAMES`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Keys starting with this ("" = any).
    pub prefix: String,
    /// Keys ending with this ("" = any).
    pub suffix: String,
    /// S3 event selectors; empty = every event.
    pub events: Vec<String>,
}

impl Client {
    /// Watch the events of `bucket` on keys under `prefix`, as they are applied. Errors of the
    /// opening call (`NoSuchBucket`, an unknown event selector: `InvalidArgument`) are
    /// returned here; see the module docs for how the stream ends.
    pub async fn watch(&self, bucket: &str, prefix: &str) -> Result<EventStream, ClientError> {
        let opts = WatchOptions {
            prefix: prefix.to_string(),
            ..Default::default()
        };
        self.watch_with(bucket, opts).await
    }

    /// [`Client::watch`] with a suffix filter and event selectors.
    pub async fn watch_with(
        &self,
        bucket: &str,
        opts: WatchOptions,
    ) -> Result<EventStream, ClientError> {
        let req = WatchRequest {
            bucket: bucket.to_string(),
            prefix: opts.prefix,
            suffix: opts.suffix,
            events: opts.events,
        };
        let stream = self
            .master()
            .call(|mut c| {
                let req = req.clone();
                async move { c.watch(req).await }
            })
            .await?;
        Ok(events_of(stream, WATCH_SILENCE_LIMIT))
    }
}

/// The events of a raw `Watch` answer stream: keep-alives skipped, the first error (or
/// `silence` without any answer) yielded and then the end.
pub(crate) fn events_of<S>(answers: S, silence: Duration) -> EventStream
where
    S: Stream<Item = Result<anode_proto::WatchResponse, tonic::Status>> + Send + Unpin + 'static,
{
    let stream = futures::stream::unfold(Some(answers), move |state| async move {
        let mut answers = state?;
        loop {
            match tokio::time::timeout(silence, answers.next()).await {
                Err(_) => {
                    let e = ClientError::Timeout(format!(
                        "the watch stream was silent for {silence:?} (no keep-alive)"
                    ));
                    return Some((Err(e), None));
                }
                Ok(None) => return None,
                Ok(Some(Err(status))) => {
                    return Some((Err(ClientError::from_status(&status)), None));
                }
                Ok(Some(Ok(answer))) => {
                    if let Some(event) = answer.event {
                        return Some((Ok(event), Some(answers)));
                    }
                }
            }
        }
    });
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anode_proto::WatchResponse;

    fn ev(id: &str) -> WatchResponse {
        WatchResponse {
            event: Some(NotificationEvent {
                id: id.into(),
                ..Default::default()
            }),
        }
    }

    #[tokio::test]
    async fn keepalives_are_skipped_and_the_first_error_ends_the_stream() {
        let answers = futures::stream::iter(vec![
            Ok(WatchResponse { event: None }),
            Ok(ev("a")),
            Ok(WatchResponse { event: None }),
            Ok(ev("b")),
            Err(tonic::Status::unavailable("gone")),
            Ok(ev("never")),
        ]);
        let got: Vec<_> = events_of(answers, Duration::from_secs(5)).collect().await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap().id, "a");
        assert_eq!(got[1].as_ref().unwrap().id, "b");
        assert!(got[2].is_err());
    }

    #[tokio::test]
    async fn a_silent_stream_ends_with_a_timeout() {
        let answers = futures::stream::iter(vec![Ok(ev("a"))]).chain(futures::stream::pending());
        let mut s = events_of(answers, Duration::from_millis(100));
        assert_eq!(s.next().await.unwrap().unwrap().id, "a");
        assert!(matches!(s.next().await, Some(Err(ClientError::Timeout(_)))));
        assert!(s.next().await.is_none());
    }
}

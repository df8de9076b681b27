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
//! The master sends a keep-alive (an answer without an event) after a few seconds without
//! events; these are skipped. A member that stops answering with its connection open is
//! noticed by the channel's HTTP/2 keep-alive (a ping every 30 s, 10 s to answer), which ends
//! the stream with an error. (No silence limit is applied here: the master's keep-alive
//! counts silence on the whole cluster's events, so a quiet bucket in a busy cluster may see
//! no keep-alive for long.)

use std::pin::Pin;

use anode_proto::{NotificationEvent, WatchRequest};
use futures::{Stream, StreamExt};

use crate::{Client, ClientError};

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
        Ok(events_of(stream))
    }
}

/// The events of a raw `Watch` answer stream: keep-alives skipped, the first error yielded
/// and then the end.
pub(crate) fn events_of<S>(answers: S) -> EventStream
where
    S: Stream<Item = Result<anode_proto::WatchResponse, tonic::Status>> + Send + Unpin + 'static,
{
    let stream = futures::stream::unfold(Some(answers), |state| async move {
        let mut answers = state?;
        loop {
            match answers.next().await {
                None => return None,
                Some(Err(status)) => return Some((Err(stream_error(&status)), None)),
                Some(Ok(answer)) => {
                    if let Some(event) = answer.event {
                        return Some((Ok(event), Some(answers)));
                    }
                }
            }
        }
    });
    Box::pin(stream)
}

/// The error that ended a watch: a broken connection (the member died) is `Unavailable`,
/// the master's own refusals (`Busy` for a watcher left behind) keep their code.
fn stream_error(status: &tonic::Status) -> ClientError {
    match status.code() {
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Unavailable
            if crate::ErrorDetail::from_status(status).is_none() =>
        {
            ClientError::Unavailable(format!("the watch stream broke: {}", status.message()))
        }
        _ => ClientError::from_status(status),
    }
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
        let got: Vec<_> = events_of(answers).collect().await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap().id, "a");
        assert_eq!(got[1].as_ref().unwrap().id, "b");
        assert!(
            matches!(got[2], Err(ClientError::Unavailable(_))),
            "{:?}",
            got[2]
        );
    }
}

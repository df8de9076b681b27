//! S3 event notifications (issue 15), the HTTP side: Get/PutBucketNotificationConfiguration
//! (the XML is [`crate::notify_xml`]) and MinIO's ListenBucketNotification.
//!
//! **ListenBucketNotification** (`GET /BUCKET?events=...`, MinIO's API, used by minio-py's and
//! minio-go's `listen_bucket_notification`): query `prefix`, `suffix`, `events` (repeated S3
//! event selectors; none = every event) and `ping` (keep-alive interval in seconds, 1..=60,
//! default 5). The answer is `200` with `Content-Type: application/json`, chunked and open
//! until the client hangs up or the master's watch stream ends: one line per event holding
//! `{"Records":[record]}` (the S3 event record, [`anode_meta::notify::records_body`]), and a
//! keep-alive line `{"Records":[]}` first and after every `ping` seconds of silence (both
//! clients skip a line without records; minio-go needs every line to be JSON). Event
//! selectors S3 knows but Anode never makes (`s3:ObjectAccessed:*`, which minio-py asks for
//! by default, `s3:ObjectRestore:*`, ...) select nothing; a selector not starting with `s3:`
//! is `InvalidArgument`.
//!
//! Events come from the master's `Watch` ([`Backend::watch`]): live and not durable (events
//! applied while nobody listens are not replayed; when the master member serving the watch
//! fails the answer ends and the client listens again, as minio-go and minio-py do). The
//! listener holds no task of its own: the stream lives in the response body, so a client that
//! hangs up drops it (noticed at the latest at the next keep-alive write), and with it the
//! master stream. At gateway shutdown the answer ends, so the drain does not wait for it. At most [`crate::server::ServerConfig::max_listeners`] listen at once per
//! gateway (then `503 SlowDown`); each also holds one of the gateway's request permits.
//!
//! [`Backend::watch`]: crate::backend::Backend::watch

use std::sync::Arc;
use std::time::Duration;

use anode_client::{EventStream, WatchOptions};
use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;

use crate::body::{streaming, RequestBody, RespBody};
use crate::error::S3Error;
use crate::handlers::{ce, check_body_md5, set_header, status_only, xml_ok, Ctx};
use crate::notify_xml::{parse_notification, render_notification, MAX_NOTIFICATION_BODY_BYTES};

/// Default keep-alive interval of a listener.
pub const DEFAULT_PING: Duration = Duration::from_secs(5);
/// Longest keep-alive interval a listener may ask for (`ping`).
pub const MAX_PING_SECS: u64 = 60;
/// Default most listeners per gateway.
pub const DEFAULT_MAX_LISTENERS: usize = 256;
/// The keep-alive line.
const KEEPALIVE: &[u8] = b"{\"Records\":[]}\n";

/// GetBucketNotificationConfiguration (an empty configuration when there are no rules).
pub async fn get_notification(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let cfg = cx.backend.head_bucket(bucket).await.map_err(ce)?;
    Ok(xml_ok(render_notification(cfg.notification.as_ref())))
}

/// PutBucketNotificationConfiguration (a configuration without rules removes them all).
pub async fn put_notification(
    cx: &Ctx<'_>,
    bucket: &str,
    body: RequestBody,
) -> Result<Response<RespBody>, S3Error> {
    let body = body.collect(MAX_NOTIFICATION_BODY_BYTES).await?;
    check_body_md5(cx.headers, &body)?;
    let cfg = parse_notification(&body)?;
    let cfg = (!cfg.rules.is_empty()).then_some(cfg);
    let done = cx
        .backend
        .set_bucket_notification(bucket, cfg)
        .await
        .map_err(ce);
    cx.buckets.invalidate(bucket);
    done?;
    Ok(status_only(StatusCode::OK))
}

/// What a listen request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAsk {
    /// The watch to open; `None` when every selector asked for names events Anode never
    /// makes (the answer then only keeps alive).
    pub watch: Option<WatchOptions>,
    /// Keep-alive interval.
    pub ping: Duration,
}

/// Parse the query of a listen request (see the module docs). Pure.
pub fn listen_ask(query: &crate::http_util::Query) -> Result<ListenAsk, S3Error> {
    let mut events = Vec::new();
    let mut asked = false;
    for (k, v) in &query.0 {
        if k != "events" || v.is_empty() {
            continue;
        }
        asked = true;
        if !v.starts_with("s3:") || v.len() > 128 {
            return Err(S3Error::InvalidArgument(format!(
                "A specified event is not supported for notifications: {v}"
            )));
        }
        if anode_meta::notify::EVENT_NAMES.contains(&v.as_str()) && !events.contains(v) {
            events.push(v.clone());
        }
    }
    let ping = match query.get("ping").filter(|p| !p.is_empty()) {
        None => DEFAULT_PING,
        Some(p) => match p.parse::<u64>() {
            Ok(s) if (1..=MAX_PING_SECS).contains(&s) => Duration::from_secs(s),
            _ => {
                return Err(S3Error::InvalidArgument(format!(
                    "ping must be 1 to {MAX_PING_SECS} seconds"
                )))
            }
        },
    };
    let filter = |name: &str| -> Result<String, S3Error> {
        let v = query.get(name).unwrap_or_default();
        if v.len() > anode_meta::notify::MAX_FILTER_BYTES || v.chars().any(char::is_control) {
            return Err(S3Error::InvalidArgument(format!("invalid {name}")));
        }
        Ok(v.to_string())
    };
    let opts = WatchOptions {
        prefix: filter("prefix")?,
        suffix: filter("suffix")?,
        events,
    };
    let watch = (!asked || !opts.events.is_empty()).then_some(opts);
    Ok(ListenAsk { watch, ping })
}

/// ListenBucketNotification (see the module docs).
pub async fn listen(cx: &Ctx<'_>, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let ask = listen_ask(cx.query)?;
    let permit = cx
        .listeners
        .clone()
        .try_acquire_owned()
        .map_err(|_| S3Error::SlowDown)?;
    let events = match ask.watch {
        Some(opts) => Some(cx.backend.watch(bucket, opts).await.map_err(ce)?),
        None => {
            cx.backend.head_bucket(bucket).await.map_err(ce)?;
            None
        }
    };
    let lines = listen_lines(events, ask.ping, cx.region.to_string(), permit)
        .take_until(shutdown_of(cx.shutdown.clone()));
    let mut r = Response::new(streaming(lines.map(Ok::<_, std::io::Error>)));
    *r.status_mut() = StatusCode::OK;
    set_header(&mut r, "content-type", "application/json");
    set_header(&mut r, "cache-control", "no-cache");
    Ok(r)
}

struct Listening {
    events: Option<EventStream>,
    ping: Duration,
    region: String,
    started: bool,
    _slot: Slot,
}

/// A listener's slot, counted in `anode_gateway_listeners` while held.
struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit) -> Slot {
        crate::metrics::METRICS.listeners.inc();
        Slot { _permit: permit }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::metrics::METRICS.listeners.dec();
    }
}

/// The lines of a listen answer: a keep-alive first, then one line per event and a
/// keep-alive after every `ping` of silence; ends when `events` ends or fails (`None`: never).
fn listen_lines(
    events: Option<EventStream>,
    ping: Duration,
    region: String,
    permit: OwnedSemaphorePermit,
) -> impl futures::Stream<Item = Bytes> + Send {
    let state = Listening {
        events,
        ping,
        region,
        started: false,
        _slot: Slot::new(permit),
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        if !st.started {
            st.started = true;
            return Some((Bytes::from_static(KEEPALIVE), Some(st)));
        }
        let next = async {
            match st.events.as_mut() {
                Some(ev) => ev.next().await,
                None => futures::future::pending().await,
            }
        };
        match tokio::time::timeout(st.ping, next).await {
            Err(_) => Some((Bytes::from_static(KEEPALIVE), Some(st))),
            Ok(Some(Ok(e))) => {
                let mut line =
                    anode_meta::notify::records_body(std::slice::from_ref(&e), &st.region);
                line.push('\n');
                Some((Bytes::from(line), Some(st)))
            }
            Ok(Some(Err(e))) => {
                tracing::info!(error = %e, "listen: the watch stream ended with an error");
                None
            }
            Ok(None) => None,
        }
    })
}

/// Resolves when `rx` turns true (never if its sender is gone without that).
async fn shutdown_of(mut rx: tokio::sync::watch::Receiver<bool>) {
    crate::server::wait_for_true(&mut rx).await
}

/// The semaphore bounding listeners.
pub fn listener_slots(max: usize) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_util::Query;

    #[test]
    fn listen_queries() {
        let a = listen_ask(&Query::parse(
            "prefix=photos%2F&suffix=.jpg&events=s3%3AObjectCreated%3A%2A&events=s3%3AObjectRemoved%3A%2A&events=s3%3AObjectAccessed%3A%2A&ping=10",
        ))
        .unwrap();
        assert_eq!(a.ping, Duration::from_secs(10));
        let w = a.watch.unwrap();
        assert_eq!((w.prefix.as_str(), w.suffix.as_str()), ("photos/", ".jpg"));
        assert_eq!(w.events, ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]);
        // Only events Anode never makes: nothing to watch.
        let a = listen_ask(&Query::parse("events=s3%3AObjectAccessed%3AGet")).unwrap();
        assert_eq!(a.watch, None);
        assert_eq!(a.ping, DEFAULT_PING);
        // No selector (or empty ones): every event.
        let a = listen_ask(&Query::parse("events=&prefix=")).unwrap();
        assert_eq!(a.watch.unwrap().events, Vec::<String>::new());
        for bad in [
            "events=ObjectCreated",
            "events=s3:x&ping=0",
            "events=s3:x&ping=61",
            "events=&ping=x",
            "events=&prefix=%01",
        ] {
            assert_eq!(
                listen_ask(&Query::parse(bad)).unwrap_err().aws_code(),
                "InvalidArgument",
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn lines_keepalive_and_end_with_the_watch() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let events: EventStream =
            Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
        let slots = listener_slots(1);
        let permit = slots.clone().try_acquire_owned().unwrap();
        let mut lines = Box::pin(listen_lines(
            Some(events),
            Duration::from_millis(100),
            "r".into(),
            permit,
        ));
        assert_eq!(&lines.next().await.unwrap()[..], KEEPALIVE);
        // Silence: a keep-alive after the ping interval.
        assert_eq!(&lines.next().await.unwrap()[..], KEEPALIVE);
        tx.send(Ok(anode_proto::NotificationEvent {
            id: "00000000000000010000".into(),
            bucket: "b".into(),
            key: "a b".into(),
            event_name: "ObjectCreated:Put".into(),
            ..Default::default()
        }))
        .unwrap();
        let line = lines.next().await.unwrap();
        assert!(line.ends_with(b"\n"));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["Records"][0]["s3"]["object"]["key"], "a+b");
        assert_eq!(v["Records"][0]["eventName"], "ObjectCreated:Put");
        assert_eq!(slots.available_permits(), 0);
        drop(tx);
        assert!(lines.next().await.is_none());
        drop(lines);
        assert_eq!(slots.available_permits(), 1, "the slot is given back");
    }
}

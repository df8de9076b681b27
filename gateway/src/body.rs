//! Bodies on the wire: the request body as a checked payload stream (driving the sans-IO
//! [`BodyDecoder`]) or a small collected buffer, and the response body type.
//!
//! Back-pressure: the request body is pulled from hyper only as the storage layer polls the
//! payload stream, so a slow cluster slows the client's upload instead of filling memory. The
//! response body is pulled from the storage stream only as hyper writes to the socket.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;

use crate::aws_chunked::BodyDecoder;
use crate::backend::BodyStream;
use crate::checksum::PayloadChecksum;
use crate::error::S3Error;
use crate::metrics::METRICS;
use crate::stall::{MinRate, RateMeter};

/// Longest time to receive a body that is read whole (XML requests).
pub const COLLECT_TIMEOUT: Duration = Duration::from_secs(60);

/// The body of every response.
pub type RespBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A complete response body.
pub fn full(bytes: impl Into<Bytes>) -> RespBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty response body.
pub fn empty() -> RespBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A streamed response body.
pub fn streaming<S>(stream: S) -> RespBody
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

/// Where a payload stream records why it failed, so the handler can answer with the real S3
/// error (SignatureDoesNotMatch, XAmzContentSHA256Mismatch, EntityTooLarge, ...) rather than the
/// storage layer's generic "body read failed".
#[derive(Clone, Debug, Default)]
pub struct BodyError(Arc<Mutex<Option<S3Error>>>);

impl BodyError {
    /// Record `e` unless a failure is already recorded.
    pub fn set(&self, e: S3Error) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    /// The recorded failure, if any.
    pub fn take(&self) -> Option<S3Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

type RawStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// A request body with the decoder its signature mode requires.
pub struct RequestBody {
    raw: RawStream,
    decoder: BodyDecoder,
    min_rate: Option<MinRate>,
    received: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// Wrap any HTTP body (hyper's `Incoming` in production, `Full` in tests).
    pub fn new<B>(body: B, decoder: BodyDecoder) -> RequestBody
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let raw = body.into_data_stream().map_err(|e| e.to_string());
        RequestBody {
            raw: Box::pin(raw),
            decoder,
            min_rate: None,
            received: None,
        }
    }

    /// Add every body byte read from the client (as sent) to `counter` (the audit record).
    pub fn with_received_counter(mut self, counter: Arc<AtomicU64>) -> RequestBody {
        self.received = Some(counter);
        self
    }

    /// Hold the client to `rate` while the storage layer waits for body bytes: a client
    /// sending slower fails the body with `RequestTimeout` (see [`crate::stall`]).
    pub fn with_min_rate(mut self, rate: MinRate) -> RequestBody {
        self.min_rate = Some(rate);
        self
    }

    /// The payload as a stream for the storage layer. Past `max_bytes` of payload it fails with
    /// `EntityTooLarge`; any failure is recorded in `err` and surfaces as an `Err` item, never as
    /// a clean end.
    pub fn into_stream(self, max_bytes: u64, err: BodyError) -> BodyStream {
        self.into_checked_stream(max_bytes, None, err)
    }

    /// [`RequestBody::into_stream`], also checking the payload against the declared
    /// `x-amz-checksum-*` (a mismatch fails the stream with `BadDigest`).
    pub fn into_checked_stream(
        self,
        max_bytes: u64,
        checksum: Option<PayloadChecksum>,
        err: BodyError,
    ) -> BodyStream {
        let state = Decoding {
            raw: self.raw,
            decoder: self.decoder,
            checksum,
            meter: self.min_rate.map(RateMeter::new),
            pending: VecDeque::new(),
            total: 0,
            max_bytes,
            done: false,
            err,
            received: self.received,
        };
        Box::pin(futures::stream::unfold(state, |mut s| async move {
            let item = s.next_piece().await?;
            Some((item, s))
        }))
    }

    /// Read the whole payload (small XML bodies); over `max_bytes` is `EntityTooLarge`, and
    /// the whole read must finish within [`COLLECT_TIMEOUT`].
    pub async fn collect(self, max_bytes: usize) -> Result<Bytes, S3Error> {
        let err = BodyError::default();
        let mut stream = self.into_stream(max_bytes as u64, err.clone());
        let mut buf = BytesMut::new();
        let deadline = tokio::time::Instant::now() + COLLECT_TIMEOUT;
        loop {
            let piece = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(_) => {
                    return Err(S3Error::IncompleteBody(
                        "the request body was not received in time".into(),
                    ))
                }
            };
            match piece {
                Ok(p) => buf.extend_from_slice(&p),
                Err(e) => {
                    return Err(err
                        .take()
                        .unwrap_or_else(|| S3Error::IncompleteBody(e.to_string())))
                }
            }
        }
        Ok(buf.freeze())
    }
}

struct Decoding {
    raw: RawStream,
    decoder: BodyDecoder,
    checksum: Option<PayloadChecksum>,
    meter: Option<RateMeter>,
    pending: VecDeque<Bytes>,
    total: u64,
    max_bytes: u64,
    done: bool,
    err: BodyError,
    received: Option<Arc<AtomicU64>>,
}

impl Decoding {
    /// The next payload piece, an error (after which the stream ends), or `None` at a clean end.
    async fn next_piece(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if let Some(piece) = self.pending.pop_front() {
                return Some(Ok(piece));
            }
            if self.done {
                return None;
            }
            let step = match self.next_raw().await {
                Ok(Some(Ok(input))) => self.feed(input),
                Ok(Some(Err(e))) => Err(S3Error::IncompleteBody(format!(
                    "reading the request body: {e}"
                ))),
                Ok(None) => {
                    self.done = true;
                    self.finish()
                }
                Err(e) => Err(e),
            };
            if let Err(e) = step {
                self.done = true;
                self.pending.clear();
                let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
                self.err.set(e);
                return Some(Err(io));
            }
        }
    }

    /// The next piece from the client, waiting no longer than the rate meter allows
    /// (`RequestTimeout` when the client is too slow).
    async fn next_raw(&mut self) -> Result<Option<Result<Bytes, String>>, S3Error> {
        let Some(meter) = &mut self.meter else {
            return Ok(self.raw.next().await);
        };
        loop {
            let started = tokio::time::Instant::now();
            let got = tokio::time::timeout(meter.budget(), self.raw.next()).await;
            let bytes = match &got {
                Ok(Some(Ok(b))) => b.len() as u64,
                _ => 0,
            };
            meter
                .record(started.elapsed(), bytes)
                .map_err(|_| S3Error::RequestTimeout)?;
            if let Ok(item) = got {
                return Ok(item);
            }
        }
    }

    /// The input ended: the decoder's end checks, then the declared checksum.
    fn finish(&mut self) -> Result<(), S3Error> {
        self.decoder.finish()?;
        match self.checksum.take() {
            Some(c) => {
                let trailer = self.decoder.trailer(c.name());
                c.finish(trailer)
            }
            None => Ok(()),
        }
    }

    fn feed(&mut self, input: Bytes) -> Result<(), S3Error> {
        METRICS.bytes_in.inc_by(input.len() as u64);
        if let Some(r) = &self.received {
            r.fetch_add(input.len() as u64, Ordering::Relaxed);
        }
        let mut out = Vec::new();
        self.decoder.push(input, &mut out)?;
        for piece in out.into_iter().filter(|p| !p.is_empty()) {
            self.total += piece.len() as u64;
            if self.total > self.max_bytes {
                return Err(S3Error::EntityTooLarge);
            }
            if let Some(c) = &mut self.checksum {
                c.update(&piece);
            }
            self.pending.push_back(piece);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::PayloadMode;

    fn raw(data: &'static [u8]) -> RequestBody {
        RequestBody::new(Full::new(Bytes::from_static(data)), BodyDecoder::Raw)
    }

    #[tokio::test]
    async fn collect_and_limits() {
        assert_eq!(raw(b"hello").collect(10).await.unwrap(), "hello");
        assert_eq!(raw(b"hello").collect(4).await, Err(S3Error::EntityTooLarge));
        let sha = [0u8; 32];
        let body = RequestBody::new(
            Full::new(Bytes::from_static(b"x")),
            BodyDecoder::new(&PayloadMode::Sha256(sha), None, None).unwrap(),
        );
        assert_eq!(
            body.collect(10).await,
            Err(S3Error::XAmzContentSHA256Mismatch)
        );
    }

    #[tokio::test]
    async fn a_trickling_upload_times_out() {
        // 10 bytes every 50 ms (200 B/s) against 1000 B/s over 300 ms windows.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        tokio::spawn(async move {
            for _ in 0..200 {
                if tx
                    .send(Ok(Frame::data(Bytes::from_static(&[7u8; 10]))))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let rate = MinRate::per_sec(1000, Duration::from_millis(300));
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let body = RequestBody::new(StreamBody::new(stream), BodyDecoder::Raw).with_min_rate(rate);
        let started = std::time::Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(10), body.collect(1 << 20)).await;
        assert_eq!(got.expect("bounded"), Err(S3Error::RequestTimeout));
        assert!(started.elapsed() < Duration::from_secs(3));
        // The same trickle is fine under a lower bar.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        tokio::spawn(async move {
            for _ in 0..10 {
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(&[7u8; 10]))))
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let rate = MinRate::per_sec(50, Duration::from_millis(300));
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let body = RequestBody::new(StreamBody::new(stream), BodyDecoder::Raw).with_min_rate(rate);
        let got = tokio::time::timeout(Duration::from_secs(10), body.collect(1 << 20)).await;
        assert_eq!(got.expect("bounded").unwrap().len(), 100);
    }

    #[tokio::test]
    async fn stream_records_the_failure() {
        let err = BodyError::default();
        let body = RequestBody::new(
            Full::new(Bytes::from_static(b"5\r\nhello\r\n")),
            BodyDecoder::new(&PayloadMode::StreamingUnsignedTrailer, None, None).unwrap(),
        );
        let items: Vec<_> = body.into_stream(100, err.clone()).collect().await;
        assert_eq!(items.len(), 2, "the payload, then the error");
        assert_eq!(items[0].as_ref().unwrap(), "hello");
        assert!(items[1].is_err());
        assert_eq!(err.take().unwrap().aws_code(), "IncompleteBody");
    }
}

//! Minimum transfer rates, so a client trickling bytes cannot hold a connection (and a
//! concurrency permit) forever.
//!
//! [`RateMeter`] is the pure rule: over every `window` of time spent *waiting for the client*
//! (a write blocked on a full socket, or a body read with no data yet), at least `min_bytes`
//! must move. Time the gateway spends on its own work (the cluster is slow, the handler is not
//! reading) does not count, and bytes that move without waiting count in the client's favour.
//!
//! Drivers: [`StallGuard`] wraps a connection and applies the rule to writes (responses; hyper
//! has no write timeout of its own); [`crate::body::RequestBody`] applies it to request bodies
//! and answers `RequestTimeout`. Request headers are bounded by hyper's header timeout.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Default length of the measuring window.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);
/// Default minimum rate while the gateway waits for a client, in bytes per second.
pub const DEFAULT_MIN_BYTES_PER_SEC: u64 = 1024;

/// At least `min_bytes` per `window` of waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes that must move per window (at least 1).
    pub min_bytes: u64,
    /// The window, in time spent waiting for the client.
    pub window: Duration,
}

impl MinRate {
    /// `bytes_per_sec` over `window` (0 bytes/s still requires one byte per window: a
    /// complete stall always ends).
    pub fn per_sec(bytes_per_sec: u64, window: Duration) -> MinRate {
        let min = (bytes_per_sec as u128 * window.as_millis() / 1000).min(u64::MAX as u128);
        MinRate {
            min_bytes: (min as u64).max(1),
            window: window.max(Duration::from_millis(1)),
        }
    }
}

impl Default for MinRate {
    fn default() -> Self {
        MinRate::per_sec(DEFAULT_MIN_BYTES_PER_SEC, DEFAULT_RATE_WINDOW)
    }
}

/// The client moved fewer than `min_bytes` in a window of waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooSlow {
    /// Bytes moved in the window.
    pub bytes: u64,
}

/// The pure rate rule (see the module docs): waiting time and bytes in the current window.
#[derive(Clone, Debug)]
pub struct RateMeter {
    rate: MinRate,
    waited: Duration,
    bytes: u64,
}

impl RateMeter {
    /// A meter with an empty window.
    pub fn new(rate: MinRate) -> RateMeter {
        RateMeter {
            rate,
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// How much more waiting the current window allows.
    pub fn budget(&self) -> Duration {
        self.rate.window.saturating_sub(self.waited)
    }

    /// Account `waited` more time waiting and `bytes` moved. When the window is full it is
    /// judged (too few bytes: [`TooSlow`]) and a new one starts.
    pub fn record(&mut self, waited: Duration, bytes: u64) -> Result<(), TooSlow> {
        self.waited += waited;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.waited < self.rate.window {
            return Ok(());
        }
        let moved = self.bytes;
        self.waited = Duration::ZERO;
        self.bytes = 0;
        if moved < self.rate.min_bytes {
            return Err(TooSlow { bytes: moved });
        }
        Ok(())
    }
}

/// Wraps an IO object; writes (and flushes) must keep to a [`MinRate`] while they are blocked,
/// else they fail with `TimedOut`.
pub struct StallGuard<S> {
    inner: S,
    meter: RateMeter,
    blocked_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    /// Guard `inner` with `rate`.
    pub fn new(inner: S, rate: MinRate) -> Self {
        StallGuard {
            inner,
            meter: RateMeter::new(rate),
            blocked_since: None,
            timer: None,
        }
    }

    fn too_slow(e: TooSlow) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the client read {} bytes of the response in a rate window",
                e.bytes
            ),
        )
    }

    /// Map a write-side poll that moved `bytes` when ready.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
        bytes: impl FnOnce(&T) -> usize,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Ready(Ok(v)) => {
                let waited = self.blocked_since.take().map(|t| t.elapsed());
                let n = bytes(&v) as u64;
                match self.meter.record(waited.unwrap_or_default(), n) {
                    Ok(()) => Poll::Ready(Ok(v)),
                    Err(e) => Poll::Ready(Err(Self::too_slow(e))),
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.blocked(cx),
        }
    }

    /// The inner write is blocked: wait at most the meter's budget.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        loop {
            let now = Instant::now();
            let since = *self.blocked_since.get_or_insert(now);
            let deadline = since + self.meter.budget();
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // A whole window spent blocked: judge it, then keep waiting in a new one.
            let now = Instant::now();
            if let Err(e) = self.meter.record(now.saturating_duration_since(since), 0) {
                return Poll::Ready(Err(Self::too_slow(e)));
            }
            self.blocked_since = Some(now);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll, |n| *n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll, |_| 0)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn meter_judges_full_windows_of_waiting() {
        let ms = Duration::from_millis;
        let rate = MinRate {
            min_bytes: 100,
            window: ms(1000),
        };
        // (waited ms, bytes, ok?) in order, one meter.
        let steps: &[(u64, u64, bool)] = &[
            (400, 10, true),   // window open: 400 ms, 10 B
            (500, 0, true),    // 900 ms
            (100, 95, true),   // full window, 105 B: fine, new window
            (0, 5000, true),   // bytes without waiting count
            (2000, 0, true),   // one long wait, but 5000 B in the window
            (1000, 99, false), // 99 B in a full window: too slow
            (999, 0, true),    // a new window
            (1, 100, true),
        ];
        let mut m = RateMeter::new(rate);
        for (i, (waited, bytes, ok)) in steps.iter().enumerate() {
            assert_eq!(m.record(ms(*waited), *bytes).is_ok(), *ok, "step {i}");
        }
        assert_eq!(MinRate::per_sec(0, ms(5)).min_bytes, 1);
        assert_eq!(
            MinRate::per_sec(1024, Duration::from_secs(60)).min_bytes,
            61_440
        );
    }

    #[tokio::test]
    async fn a_stalled_write_times_out() {
        // A duplex pipe with a 16-byte buffer that nobody reads.
        let (a, _b) = tokio::io::duplex(16);
        let mut g = StallGuard::new(a, MinRate::per_sec(0, Duration::from_millis(100)));
        g.write_all(&[0u8; 16]).await.unwrap();
        let err = tokio::time::timeout(Duration::from_secs(5), g.write_all(&[0u8; 1]))
            .await
            .expect("bounded")
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    /// A reader taking 8 bytes every 20 ms: 400 B/s.
    fn trickle_reader(mut b: tokio::io::DuplexStream, total: usize) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let mut got = 0;
            while got < total {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match b.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
        })
    }

    #[tokio::test]
    async fn a_reader_above_the_rate_is_fine() {
        let (a, b) = tokio::io::duplex(16);
        let reader = trickle_reader(b, 256);
        let rate = MinRate::per_sec(100, Duration::from_millis(300));
        let mut g = StallGuard::new(a, rate);
        tokio::time::timeout(Duration::from_secs(10), g.write_all(&[0u8; 256]))
            .await
            .expect("bounded")
            .unwrap();
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn a_trickling_reader_is_cut_off() {
        let (a, b) = tokio::io::duplex(16);
        let _reader = trickle_reader(b, 1 << 20);
        // 400 B/s is under the 2000 B/s asked for.
        let rate = MinRate::per_sec(2000, Duration::from_millis(300));
        let mut g = StallGuard::new(a, rate);
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(5), g.write_all(&[0u8; 1 << 20]))
            .await
            .expect("bounded")
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

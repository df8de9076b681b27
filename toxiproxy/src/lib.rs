//! `anode-toxiproxy`: a fault-injection TCP proxy with the Toxiproxy 2.x HTTP API, for Anode's
//! chaos scripts and tests (issue 6). No Toxiproxy server is packaged for our machines.
//!
//! # What comes from `noxious` and what is ours
//!
//! The [`noxious`] crate (1.0.4, a Rust port of Toxiproxy's core) is a real library and builds
//! with our toolchain, so the data path is noxious: [`noxious::proxy::ProxyRunner`] binds,
//! accepts, connects upstream and pumps bytes through the toxic chain, and its toxics
//! (`latency`, `bandwidth`, `slow_close`, `timeout`, `slicer`, `limit_data`) do the damage.
//! Toxic changes reach live connections through noxious's toxic-event channel, and a stop
//! signal closes the listener and every connection.
//!
//! noxious has no HTTP API (that lives in its separate `noxious-server` binary crate, which we
//! do not use), so this crate writes its own: [`model`] (Toxiproxy wire JSON, defaults and
//! validation), [`registry`] (proxies, enable/disable as start/stop of noxious tasks,
//! populate, reset) and [`http`] (routes, `{error, status}` bodies).
//!
//! Gaps in noxious and how they are handled:
//! - No `reset_peer` toxic, and noxious owns the sockets (its stream wrappers cannot be built
//!   outside the crate), so SO_LINGER=0 cannot be set to send a real RST. `reset_peer` is
//!   accepted with Toxiproxy's JSON and runs as a noxious `timeout` (data dropped, connection
//!   closed after `timeout` ms) or, for `timeout: 0`, a `limit_data` of 0 bytes (closed at
//!   once). Clients see EOF/"connection closed" instead of "connection reset by peer".
//! - noxious does not report the port it bound; a listen port of 0 is turned into a concrete
//!   free port first (see [`registry`]).
//! - noxious 1.0.4's `bandwidth` forwards 100-byte pieces every 100 ms (1 KB/s) and then
//!   panics on a `Duration` underflow whenever a chunk exceeds `rate * 100` bytes (any rate
//!   below ~330 KB/s with 32 KiB reads). Each bandwidth toxic therefore runs behind a hidden
//!   noxious `slicer` (no delay) cutting chunks to `rate * 100` bytes, which keeps noxious on
//!   its correct path: sleep `len / rate` per piece.
//! - Observed, not root-caused: when an upstream writes a few bytes and closes at once,
//!   a client of a noxious proxy sometimes gets EOF without those bytes (about 1 run in 3
//!   in `slow_close_delays_the_close` before its upstream waited 100 ms before closing).
//!   Scenarios relying on the last bytes before an upstream close may see them dropped.
//! - noxious's latency jitter must not exceed the latency (unsigned arithmetic); it is capped.
//!
//! Architecture invariant: only [`http`] knows HTTP; only [`registry`] touches noxious tasks;
//! [`model`] is pure.

pub mod error;
pub mod http;
pub mod model;
pub mod registry;

pub use error::ApiError;
pub use registry::Registry;

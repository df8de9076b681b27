//! Traces: OpenTelemetry export over OTLP/gRPC, off unless an endpoint is configured.
//!
//! - Endpoint: `--otlp-endpoint URL` (`ANODE_OTLP_ENDPOINT`), else the standard
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` ([`resolve_endpoint`]).
//!   Without one no tracer provider, exporter, batch thread or connection exists, and the
//!   propagation helpers below do nothing.
//! - With one, the `tracing` spans the log filter lets through (the gateway's `s3` span, the
//!   `rpc` span of every gRPC call a master or chunkserver serves, and their children) become
//!   OpenTelemetry spans, batched and sent to the endpoint, sampled by
//!   `ParentBased(root)`: a request's root decides, every process follows. A trace starts
//!   only at a span named in [`OtelOptions::root_spans`] (the gateway's `s3` span), kept with
//!   the sampling ratio; other spans without a parent (a chunkserver's heartbeat arriving at
//!   a master, a raft message, an operator's call) are not recorded.
//! - Propagation: W3C `traceparent`. The gateway takes the S3 client's as the parent of its
//!   request span ([`set_parent_from_headers`]; a new root without one), the client library
//!   writes the current span's into every gRPC call ([`inject_current`]), and
//!   [`crate::rpc_span`] makes the serving span a child of it. One S3 request is one trace
//!   across gateway, masters and chunkservers.
//! - [`shutdown`] flushes what is buffered; the binaries call it when a role stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Context;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::CommonError;

/// The standard variables naming an OTLP endpoint, most specific first.
pub const OTEL_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// What the process asked for at start-up.
#[derive(Clone, Debug, PartialEq)]
pub struct OtelOptions {
    /// Where spans go (an OTLP/gRPC URL such as `http://collector:4317`).
    pub endpoint: String,
    /// The `service.name` resource attribute (`anode-gateway`, ...).
    pub service_name: String,
    /// The fraction of new traces (requests without a parent) that are recorded.
    pub sample_ratio: f64,
    /// The names of the spans that may start a trace (`["s3"]`).
    pub root_spans: Vec<String>,
}

/// The sampler of spans without a parent: those named in `names` with probability `ratio`
/// (by trace id), all others never.
#[derive(Clone, Debug)]
struct RootSampler {
    names: Vec<String>,
    ratio: Sampler,
}

impl ShouldSample for RootSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: opentelemetry::trace::TraceId,
        name: &str,
        span_kind: &opentelemetry::trace::SpanKind,
        attributes: &[opentelemetry::KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        if self.names.iter().any(|n| n == name) {
            self.ratio
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
        } else {
            SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: Default::default(),
            }
        }
    }
}

/// The sampler of a process: a parent's decision, else [`RootSampler`].
fn sampler(opts: &OtelOptions) -> Sampler {
    Sampler::ParentBased(Box::new(RootSampler {
        names: opts.root_spans.clone(),
        ratio: Sampler::TraceIdRatioBased(opts.sample_ratio),
    }))
}

/// The endpoint in force (pure): the flag (or `ANODE_OTLP_ENDPOINT`), else the first
/// non-empty standard variable among `otel_env` (the values of [`OTEL_ENDPOINT_VARS`]).
/// `None`: traces are off.
pub fn resolve_endpoint(flag: Option<&str>, otel_env: &[Option<String>]) -> Option<String> {
    flag.map(str::to_string)
        .into_iter()
        .chain(otel_env.iter().flatten().cloned())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// [`resolve_endpoint`] with the standard variables read from the environment.
pub fn endpoint_from_env(flag: Option<&str>) -> Option<String> {
    let env: Vec<Option<String>> = OTEL_ENDPOINT_VARS
        .iter()
        .map(|v| std::env::var(v).ok())
        .collect();
    resolve_endpoint(flag, &env)
}

/// Parse a sampling ratio: a number in `[0, 1]`.
pub fn parse_sample_ratio(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|e| format!("sampling ratio {s:?}: {e}"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("sampling ratio {s:?}: not within 0..=1"))
    }
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported by this process.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Build the exporter and tracer provider for `opts` and return the tracer to hand to the
/// `tracing` layer. Must run inside a Tokio runtime (the gRPC channel's worker is spawned on
/// it, and export runs there until [`shutdown`]). A second call returns an error.
pub(crate) fn start(opts: &OtelOptions) -> Result<opentelemetry_sdk::trace::Tracer, CommonError> {
    let bad = |reason: String| CommonError::Otel {
        endpoint: opts.endpoint.clone(),
        reason,
    };
    if PROVIDER.get().is_some() {
        return Err(bad("traces already started".into()));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(opts.endpoint.clone())
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler(opts))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(opts.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("anode");
    PROVIDER
        .set(provider)
        .map_err(|_| bad("traces already started".into()))?;
    ENABLED.store(true, Ordering::Relaxed);
    Ok(tracer)
}

/// Export what is buffered and stop the exporter (waits for the last export; a no-op when
/// traces are off). Call it while the Tokio runtime still runs, once the role stopped.
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = p.shutdown() {
            eprintln!("traces: flush on shutdown: {e}");
        }
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Write the `traceparent` (and `tracestate`) of `cx` into `headers` (nothing when `cx` has
/// no valid span).
pub fn inject_context(cx: &Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// The context a W3C `traceparent` in `headers` names; an empty context (a new root) when
/// there is none or it does not parse.
pub fn extract_context(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

/// Stamp the current `tracing` span's trace context on an outgoing request (the client
/// library calls this for every gRPC call). A no-op when traces are off.
pub fn inject_current(headers: &mut http::HeaderMap) {
    if enabled() {
        inject_context(&tracing::Span::current().context(), headers);
    }
}

/// Make `span` (just created, not yet entered) a child of the `traceparent` in `headers`,
/// or the root of a new trace when there is none, whatever span encloses it. A no-op when
/// traces are off.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if enabled() {
        let _ = span.set_parent(extract_context(headers));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
    use opentelemetry::trace::{SpanId, TraceId};

    #[test]
    fn endpoint_flag_then_standard_variables() {
        let env = |a: Option<&str>, b: Option<&str>| vec![a.map(String::from), b.map(String::from)];
        assert_eq!(
            resolve_endpoint(Some("http://a:4317"), &env(None, Some("http://b:4317"))).as_deref(),
            Some("http://a:4317")
        );
        assert_eq!(
            resolve_endpoint(None, &env(Some("http://t:4317"), Some("http://b:4317"))).as_deref(),
            Some("http://t:4317")
        );
        assert_eq!(
            resolve_endpoint(Some(" "), &env(None, Some("http://b:4317"))).as_deref(),
            Some("http://b:4317")
        );
        assert_eq!(resolve_endpoint(None, &env(None, Some(""))), None);
        assert_eq!(resolve_endpoint(None, &env(None, None)), None);
    }

    #[test]
    fn traces_start_only_at_root_spans_and_follow_parents() {
        use opentelemetry::trace::SpanKind;
        let opts = |ratio| OtelOptions {
            endpoint: String::new(),
            service_name: String::new(),
            sample_ratio: ratio,
            root_spans: vec!["s3".into()],
        };
        let decide = |ratio: f64, parent: Option<&Context>, name: &str| {
            sampler(&opts(ratio))
                .should_sample(
                    parent,
                    TraceId::from(7u128),
                    name,
                    &SpanKind::Internal,
                    &[],
                    &[],
                )
                .decision
        };
        assert_eq!(decide(1.0, None, "s3"), SamplingDecision::RecordAndSample);
        assert_eq!(decide(0.0, None, "s3"), SamplingDecision::Drop);
        // A heartbeat's or raft message's span: no parent, not a root span.
        assert_eq!(decide(1.0, None, "rpc"), SamplingDecision::Drop);
        // An RPC of a sampled request is recorded whatever the local ratio; of an unsampled
        // one, never.
        let parent = |flags| {
            Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(7u128),
                SpanId::from(9u64),
                flags,
                true,
                TraceState::default(),
            ))
        };
        let sampled = parent(TraceFlags::SAMPLED);
        let unsampled = parent(TraceFlags::default());
        assert_eq!(
            decide(0.0, Some(&sampled), "rpc"),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(decide(1.0, Some(&unsampled), "rpc"), SamplingDecision::Drop);
    }

    #[test]
    fn sample_ratio_bounds() {
        assert_eq!(parse_sample_ratio("0.25"), Ok(0.25));
        assert_eq!(parse_sample_ratio("1"), Ok(1.0));
        assert!(parse_sample_ratio("1.5").is_err());
        assert!(parse_sample_ratio("-0.1").is_err());
        assert!(parse_sample_ratio("all").is_err());
    }

    #[test]
    fn traceparent_round_trips_through_headers() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let mut h = http::HeaderMap::new();
        inject_context(&Context::new().with_remote_span_context(sc.clone()), &mut h);
        assert_eq!(
            h.get("traceparent").unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let back = extract_context(&h);
        assert_eq!(back.span().span_context().trace_id(), sc.trace_id());
        assert_eq!(back.span().span_context().span_id(), sc.span_id());
        assert!(back.span().span_context().is_remote());
        // No header, or a malformed one: no parent.
        assert!(!extract_context(&http::HeaderMap::new())
            .span()
            .span_context()
            .is_valid());
        let mut junk = http::HeaderMap::new();
        junk.insert("traceparent", http::HeaderValue::from_static("00-zz-yy-01"));
        assert!(!extract_context(&junk).span().span_context().is_valid());
        // Off: the current span injects nothing.
        let mut none = http::HeaderMap::new();
        inject_current(&mut none);
        assert!(none.is_empty());
    }
}

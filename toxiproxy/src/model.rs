//! Toxiproxy 2.x wire types and their validation: pure data, no IO.
//!
//! A toxic on the wire is `{name, type, stream, toxicity, attributes}`. Requests may leave out
//! every field but `type`; defaults follow Toxiproxy: `stream` = downstream, `toxicity` = 1.0,
//! `name` = `{type}_{stream}`, missing attributes = 0 (except where noted).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Direction a toxic acts on: `upstream` (client -> server) or `downstream` (server -> client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to upstream server.
    Upstream,
    /// Upstream server to client.
    Downstream,
}

impl Stream {
    fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "upstream" => Ok(Stream::Upstream),
            "downstream" => Ok(Stream::Downstream),
            other => Err(ApiError::BadRequest(format!("invalid stream {other:?}"))),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    /// The matching noxious direction.
    pub fn to_noxious(self) -> noxious::toxic::StreamDirection {
        match self {
            Stream::Upstream => noxious::toxic::StreamDirection::Upstream,
            Stream::Downstream => noxious::toxic::StreamDirection::Downstream,
        }
    }
}

/// A toxic type with its typed attributes. Units are in the field names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToxicKind {
    /// Delay every chunk by `latency_ms` +/- `jitter_ms`.
    Latency {
        /// Added delay.
        latency_ms: u64,
        /// Random variation around the delay.
        jitter_ms: u64,
    },
    /// Limit throughput to `rate_kbps` kilobytes (1000 bytes) per second; 0 = unlimited.
    Bandwidth {
        /// Rate in KB/s.
        rate_kbps: u64,
    },
    /// Delay the close of the connection by `delay_ms` after the source closes.
    SlowClose {
        /// Close delay.
        delay_ms: u64,
    },
    /// Stop all data and close the connection after `timeout_ms`; 0 = hold forever.
    Timeout {
        /// Time until close, 0 = never.
        timeout_ms: u64,
    },
    /// Cut data into pieces of `average_size` +/- `size_variation` bytes, `delay_us` apart.
    Slicer {
        /// Mean piece size in bytes.
        average_size: u64,
        /// Variation of the piece size in bytes.
        size_variation: u64,
        /// Delay between pieces in microseconds.
        delay_us: u64,
    },
    /// Close the connection once `bytes` bytes went through in this direction.
    LimitData {
        /// Byte budget of the connection.
        bytes: u64,
    },
    /// Drop data and close the connection after `timeout_ms` (0 = at once). See the crate doc
    /// for why this closes with FIN rather than RST.
    ResetPeer {
        /// Time until the close.
        timeout_ms: u64,
    },
}

/// Every toxic type name this server accepts.
pub const TOXIC_TYPES: [&str; 7] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "slicer",
    "limit_data",
    "reset_peer",
];

impl ToxicKind {
    /// The wire type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::ResetPeer { .. } => "reset_peer",
        }
    }

    /// Build a kind from its wire type name and attribute map (missing attributes are 0).
    pub fn from_wire(type_name: &str, attrs: &Map<String, Value>) -> Result<Self, ApiError> {
        let a = |key: &str| attr_u64(attrs, key);
        let kind = match type_name {
            "latency" => ToxicKind::Latency {
                latency_ms: a("latency")?,
                jitter_ms: a("jitter")?,
            },
            "bandwidth" => ToxicKind::Bandwidth {
                rate_kbps: a("rate")?,
            },
            "slow_close" => ToxicKind::SlowClose {
                delay_ms: a("delay")?,
            },
            "timeout" => ToxicKind::Timeout {
                timeout_ms: a("timeout")?,
            },
            "slicer" => ToxicKind::Slicer {
                average_size: a("average_size")?,
                size_variation: a("size_variation")?,
                delay_us: a("delay")?,
            },
            "limit_data" => ToxicKind::LimitData { bytes: a("bytes")? },
            "reset_peer" => ToxicKind::ResetPeer {
                timeout_ms: a("timeout")?,
            },
            other => {
                return Err(ApiError::BadRequest(format!(
                    "invalid toxic type {other:?}"
                )))
            }
        };
        kind.validate()?;
        Ok(kind)
    }

    fn validate(&self) -> Result<(), ApiError> {
        if let ToxicKind::Slicer {
            average_size,
            size_variation,
            ..
        } = *self
        {
            if average_size == 0 {
                return Err(ApiError::BadRequest(
                    "slicer average_size must be > 0".into(),
                ));
            }
            if size_variation >= average_size {
                return Err(ApiError::BadRequest(
                    "slicer size_variation must be less than average_size".into(),
                ));
            }
        }
        Ok(())
    }

    /// The attribute map as sent on the wire (Toxiproxy names).
    pub fn attributes(&self) -> BTreeMap<&'static str, u64> {
        let pairs: Vec<(&'static str, u64)> = match *self {
            ToxicKind::Latency {
                latency_ms,
                jitter_ms,
            } => vec![("latency", latency_ms), ("jitter", jitter_ms)],
            ToxicKind::Bandwidth { rate_kbps } => vec![("rate", rate_kbps)],
            ToxicKind::SlowClose { delay_ms } => vec![("delay", delay_ms)],
            ToxicKind::Timeout { timeout_ms } => vec![("timeout", timeout_ms)],
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay_us,
            } => vec![
                ("average_size", average_size),
                ("size_variation", size_variation),
                ("delay", delay_us),
            ],
            ToxicKind::LimitData { bytes } => vec![("bytes", bytes)],
            ToxicKind::ResetPeer { timeout_ms } => vec![("timeout", timeout_ms)],
        };
        pairs.into_iter().collect()
    }

    /// The noxious toxic that realises this kind.
    ///
    /// `reset_peer` has no noxious counterpart: it becomes a `timeout` (data dropped, link
    /// closed after the delay) or, for 0, a `limit_data` of 0 bytes (closed at once). Latency
    /// jitter is capped at the latency because noxious computes `latency + r - jitter` in
    /// unsigned arithmetic.
    pub fn to_noxious(&self) -> noxious::toxic::ToxicKind {
        use noxious::toxic::ToxicKind as N;
        match *self {
            ToxicKind::Latency {
                latency_ms,
                jitter_ms,
            } => N::Latency {
                latency: latency_ms,
                jitter: jitter_ms.min(latency_ms),
            },
            ToxicKind::Bandwidth { rate_kbps } => N::Bandwidth { rate: rate_kbps },
            ToxicKind::SlowClose { delay_ms } => N::SlowClose { delay: delay_ms },
            ToxicKind::Timeout { timeout_ms } => N::Timeout {
                timeout: timeout_ms,
            },
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay_us,
            } => N::Slicer {
                average_size,
                size_variation,
                delay: delay_us,
            },
            ToxicKind::LimitData { bytes } => N::LimitData { bytes },
            ToxicKind::ResetPeer { timeout_ms: 0 } => N::LimitData { bytes: 0 },
            ToxicKind::ResetPeer { timeout_ms } => N::Timeout {
                timeout: timeout_ms,
            },
        }
    }
}

fn attr_u64(attrs: &Map<String, Value>, key: &str) -> Result<u64, ApiError> {
    match attrs.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| {
            ApiError::BadRequest(format!(
                "attribute {key} must be a non-negative integer, got {v}"
            ))
        }),
    }
}

/// A toxic installed on a proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct Toxic {
    /// Unique name within the proxy.
    pub name: String,
    /// Direction it acts on.
    pub stream: Stream,
    /// Probability in [0, 1] that it applies to a given connection.
    pub toxicity: f32,
    /// Type and attributes.
    pub kind: ToxicKind,
}

/// The loose request body for creating or updating a toxic: every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct ToxicRequest {
    /// Toxic name.
    pub name: Option<String>,
    /// Toxic type name.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// `upstream` or `downstream`.
    pub stream: Option<String>,
    /// Probability in [0, 1].
    pub toxicity: Option<f32>,
    /// Type-specific attributes.
    pub attributes: Option<Map<String, Value>>,
}

impl Toxic {
    /// Build a new toxic from a create request, applying Toxiproxy's defaults.
    pub fn from_create(req: ToxicRequest) -> Result<Self, ApiError> {
        let type_name = req
            .type_name
            .ok_or_else(|| ApiError::BadRequest("missing required field: type".into()))?;
        let stream = Stream::parse(req.stream.as_deref().unwrap_or("downstream"))?;
        let toxicity = check_toxicity(req.toxicity.unwrap_or(1.0))?;
        let kind = ToxicKind::from_wire(&type_name, &req.attributes.unwrap_or_default())?;
        let name = match req.name {
            Some(n) if !n.is_empty() => n,
            _ => format!("{}_{}", kind.type_name(), stream.as_str()),
        };
        Ok(Toxic {
            name,
            stream,
            toxicity,
            kind,
        })
    }

    /// Apply an update request: attributes are merged over the current ones, toxicity replaced.
    /// The name, type and stream of a toxic never change.
    pub fn updated(&self, req: ToxicRequest) -> Result<Self, ApiError> {
        if let Some(t) = &req.type_name {
            if t != self.kind.type_name() {
                return Err(ApiError::BadRequest("a toxic's type cannot change".into()));
            }
        }
        let mut attrs: Map<String, Value> = self
            .kind
            .attributes()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect();
        attrs.extend(req.attributes.unwrap_or_default());
        Ok(Toxic {
            name: self.name.clone(),
            stream: self.stream,
            toxicity: check_toxicity(req.toxicity.unwrap_or(self.toxicity))?,
            kind: ToxicKind::from_wire(self.kind.type_name(), &attrs)?,
        })
    }

    /// The noxious toxics that run this one, in pipeline order (see [`ToxicKind::to_noxious`]).
    ///
    /// `bandwidth` gets a helper slicer in front of it: noxious 1.0.4's bandwidth toxic
    /// mishandles chunks larger than `rate * 100` bytes (it forwards 100-byte pieces every
    /// 100 ms, i.e. 1 KB/s whatever the rate, and then panics on a `Duration` underflow), so
    /// chunks are first cut to at most `rate * 100` bytes, the size Toxiproxy's own bandwidth
    /// toxic sends per 100 ms. The helper always applies (toxicity 1) and has no delay.
    pub fn to_noxious(&self) -> Vec<noxious::toxic::Toxic> {
        let main = noxious::toxic::Toxic {
            kind: self.kind.to_noxious(),
            name: self.name.clone(),
            toxicity: self.toxicity,
            direction: self.stream.to_noxious(),
        };
        let ToxicKind::Bandwidth { rate_kbps } = self.kind else {
            return vec![main];
        };
        let helper = noxious::toxic::Toxic {
            kind: noxious::toxic::ToxicKind::Slicer {
                average_size: bandwidth_slice_bytes(rate_kbps),
                size_variation: 0,
                delay: 0,
            },
            name: format!("{}{BANDWIDTH_SLICER_SUFFIX}", self.name),
            toxicity: 1.0,
            direction: self.stream.to_noxious(),
        };
        vec![helper, main]
    }

    /// The Toxiproxy wire JSON.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }
}

/// Name suffix of the helper slicer in front of a bandwidth toxic (never shown on the API).
pub const BANDWIDTH_SLICER_SUFFIX: &str = "::bandwidth-slicer";

/// Largest piece noxious's bandwidth toxic handles correctly: `rate * 100` bytes; for an
/// unlimited rate (0) one full 32 KiB read.
fn bandwidth_slice_bytes(rate_kbps: u64) -> u64 {
    if rate_kbps == 0 {
        32 * 1024
    } else {
        rate_kbps.saturating_mul(100)
    }
}

fn check_toxicity(t: f32) -> Result<f32, ApiError> {
    if (0.0..=1.0).contains(&t) {
        Ok(t)
    } else {
        Err(ApiError::BadRequest(format!(
            "toxicity must be within [0, 1], got {t}"
        )))
    }
}

/// The body of `POST /proxies` and of each `POST /populate` entry.
#[derive(Clone, Debug, Deserialize)]
pub struct ProxyCreate {
    /// Unique proxy name.
    #[serde(default)]
    pub name: String,
    /// Address the proxy listens on (`host:port`; port 0 picks a free port).
    #[serde(default)]
    pub listen: String,
    /// Address the proxy connects to.
    #[serde(default)]
    pub upstream: String,
    /// Whether the proxy listens; default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

impl ProxyCreate {
    /// Toxiproxy's required-field checks.
    pub fn validate(&self) -> Result<(), ApiError> {
        for (field, value) in [
            ("name", &self.name),
            ("listen", &self.listen),
            ("upstream", &self.upstream),
        ] {
            if value.is_empty() {
                return Err(ApiError::BadRequest(format!(
                    "missing required field: {field}"
                )));
            }
        }
        Ok(())
    }
}

/// The body of `POST /proxies/{name}`: every field optional.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ProxyUpdate {
    /// New listen address.
    pub listen: Option<String>,
    /// New upstream address.
    pub upstream: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// `POST /populate` accepts a bare array or `{"proxies": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PopulateBody {
    /// `[proxy, ...]`
    List(Vec<ProxyCreate>),
    /// `{"proxies": [proxy, ...]}`
    Wrapped {
        /// The proxies.
        proxies: Vec<ProxyCreate>,
    },
}

impl PopulateBody {
    /// The proxies in request order.
    pub fn into_list(self) -> Vec<ProxyCreate> {
        match self {
            PopulateBody::List(l) => l,
            PopulateBody::Wrapped { proxies } => proxies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> ToxicRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn create_applies_toxiproxy_defaults() {
        let t =
            Toxic::from_create(req(r#"{"type":"latency","attributes":{"latency":50}}"#)).unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(
            t.kind,
            ToxicKind::Latency {
                latency_ms: 50,
                jitter_ms: 0
            }
        );
        let json = t.to_json();
        assert_eq!(json["attributes"]["latency"], 50);
        assert_eq!(json["attributes"]["jitter"], 0);
        assert_eq!(json["stream"], "downstream");
        assert_eq!(json["type"], "latency");
    }

    #[test]
    fn every_type_round_trips_through_wire_attributes() {
        for type_name in TOXIC_TYPES {
            let mut attrs = Map::new();
            attrs.insert("average_size".into(), Value::from(10));
            attrs.insert("size_variation".into(), Value::from(3));
            let kind = ToxicKind::from_wire(type_name, &attrs).unwrap();
            assert_eq!(kind.type_name(), type_name);
            let back: Map<String, Value> = kind
                .attributes()
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::from(v)))
                .collect();
            assert_eq!(ToxicKind::from_wire(type_name, &back).unwrap(), kind);
        }
    }

    #[test]
    fn rejects_bad_requests() {
        for body in [
            r#"{"attributes":{}}"#,
            r#"{"type":"nope"}"#,
            r#"{"type":"latency","stream":"sideways"}"#,
            r#"{"type":"latency","toxicity":1.5}"#,
            r#"{"type":"latency","attributes":{"latency":-1}}"#,
            r#"{"type":"slicer","attributes":{"average_size":4,"size_variation":4}}"#,
        ] {
            let err = Toxic::from_create(req(body)).unwrap_err();
            assert_eq!(err.status(), 400, "{body}: {err}");
        }
    }

    #[test]
    fn update_merges_attributes_and_keeps_identity() {
        let t = Toxic::from_create(req(
            r#"{"name":"lag","type":"latency","stream":"upstream","attributes":{"latency":10,"jitter":2}}"#,
        ))
        .unwrap();
        let u = t
            .updated(req(r#"{"attributes":{"latency":99},"toxicity":0.5}"#))
            .unwrap();
        assert_eq!(u.name, "lag");
        assert_eq!(u.stream, Stream::Upstream);
        assert_eq!(u.toxicity, 0.5);
        assert_eq!(
            u.kind,
            ToxicKind::Latency {
                latency_ms: 99,
                jitter_ms: 2
            }
        );
        assert!(t.updated(req(r#"{"type":"timeout"}"#)).is_err());
    }

    #[test]
    fn reset_peer_maps_to_a_closing_noxious_toxic() {
        use noxious::toxic::ToxicKind as N;
        assert_eq!(
            ToxicKind::ResetPeer { timeout_ms: 0 }.to_noxious(),
            N::LimitData { bytes: 0 }
        );
        assert_eq!(
            ToxicKind::ResetPeer { timeout_ms: 30 }.to_noxious(),
            N::Timeout { timeout: 30 }
        );
        assert_eq!(
            ToxicKind::Latency {
                latency_ms: 5,
                jitter_ms: 50
            }
            .to_noxious(),
            N::Latency {
                latency: 5,
                jitter: 5
            }
        );
    }

    #[test]
    fn bandwidth_runs_behind_a_helper_slicer() {
        let t = Toxic::from_create(req(
            r#"{"name":"bw","type":"bandwidth","stream":"upstream","toxicity":0.5,"attributes":{"rate":7}}"#,
        ))
        .unwrap();
        let n = t.to_noxious();
        assert_eq!(n.len(), 2);
        assert_eq!(
            n[0].kind,
            noxious::toxic::ToxicKind::Slicer {
                average_size: 700,
                size_variation: 0,
                delay: 0
            }
        );
        assert_eq!(n[0].toxicity, 1.0);
        assert_eq!(n[1].name, "bw");
        assert_eq!(n[1].kind, noxious::toxic::ToxicKind::Bandwidth { rate: 7 });
        assert_eq!(n[1].toxicity, 0.5);
        assert!(n
            .iter()
            .all(|x| x.direction == Stream::Upstream.to_noxious()));
        let lat = Toxic::from_create(req(r#"{"type":"latency"}"#)).unwrap();
        assert_eq!(lat.to_noxious().len(), 1);
    }

    #[test]
    fn populate_accepts_both_shapes() {
        let a: PopulateBody =
            serde_json::from_str(r#"[{"name":"a","listen":"x:1","upstream":"y:2"}]"#).unwrap();
        let b: PopulateBody = serde_json::from_str(
            r#"{"proxies":[{"name":"a","listen":"x:1","upstream":"y:2","enabled":false}]}"#,
        )
        .unwrap();
        let (a, b) = (a.into_list(), b.into_list());
        assert_eq!((a[0].name.as_str(), a[0].enabled), ("a", true));
        assert_eq!((b[0].name.as_str(), b[0].enabled), ("a", false));
        let missing = ProxyCreate {
            name: "a".into(),
            listen: String::new(),
            upstream: "y:2".into(),
            enabled: true,
        };
        assert_eq!(missing.validate().unwrap_err().status(), 400);
    }
}

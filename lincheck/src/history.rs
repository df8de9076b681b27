//! The history format (JSON Lines, one event per line) and its pairing into operations.
//!
//! ```text
//! {"process":1,"op_id":7,"type":"invoke","f":"put","key":"k","value":"v1","time_ns":100}
//! {"process":1,"op_id":7,"type":"ok","f":"put","key":"k","value":null,"time_ns":250}
//! ```
//! `type` is `invoke`, `ok` (took effect, `value` is a get's result), `fail` (definitely did
//! not take effect) or `info` (unknown: may or may not have taken effect, at any time after
//! the invoke). An invoke without a completion counts as `info`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Event kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client sent the request.
    Invoke,
    /// The request succeeded.
    Ok,
    /// The request definitely had no effect.
    Fail,
    /// The outcome is unknown (timeout, crash).
    Info,
}

/// Operation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Func {
    /// `put(key, value)`.
    Put,
    /// `get(key) -> value | null`.
    Get,
    /// `delete(key)`.
    Delete,
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Client process (or thread) id.
    pub process: u64,
    /// Operation id, unique in the history; pairs an invoke with its completion.
    pub op_id: u64,
    /// Event kind.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Function.
    pub f: Func,
    /// The key.
    pub key: String,
    /// Put: the value written (on the invoke). Get: the value read (on `ok`; null = absent).
    pub value: Option<String>,
    /// Monotonic time of the event in nanoseconds.
    pub time_ns: u64,
}

/// Errors reading a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A line is not a valid event.
    #[error("line {line}: {source}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// Parse error.
        source: serde_json::Error,
    },
    /// The events do not pair up into operations.
    #[error("line {line}: {message}")]
    Pairing {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A recorded history: events in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The events.
    pub events: Vec<Event>,
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect (put/delete) or read this value (get; `None` = absent).
    Ok(Option<String>),
    /// May or may not have taken effect; its return time is +infinity.
    Unknown,
}

/// A paired operation, ready for checking. Failed operations are dropped when pairing:
/// they had no effect and returned nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Client process.
    pub process: u64,
    /// Operation id.
    pub op_id: u64,
    /// Function.
    pub f: Func,
    /// Key.
    pub key: String,
    /// The value a put writes.
    pub input: Option<String>,
    /// Result.
    pub outcome: Outcome,
    /// Invoke time.
    pub call_ns: u64,
    /// Return time; `u64::MAX` for unknown outcomes.
    pub return_ns: u64,
}

impl Operation {
    /// A one-line human description, e.g. `p3 op 17 put(k, "v") -> ok [100, 250]`.
    pub fn describe(&self) -> String {
        let call = match (self.f, &self.input) {
            (Func::Put, Some(v)) => format!("put({:?}, {v:?})", self.key),
            (Func::Put, None) => format!("put({:?}, null)", self.key),
            (Func::Get, _) => format!("get({:?})", self.key),
            (Func::Delete, _) => format!("delete({:?})", self.key),
        };
        let ret = match (&self.outcome, self.f) {
            (Outcome::Unknown, _) => "unknown".to_string(),
            (Outcome::Ok(Some(v)), Func::Get) => format!("{v:?}"),
            (Outcome::Ok(None), Func::Get) => "null".to_string(),
            (Outcome::Ok(_), _) => "ok".to_string(),
        };
        let end = if self.return_ns == u64::MAX {
            "inf".to_string()
        } else {
            self.return_ns.to_string()
        };
        format!(
            "p{} op {} {call} -> {ret} [{}, {end}]",
            self.process, self.op_id, self.call_ns
        )
    }
}

impl History {
    /// Parse JSON Lines; blank lines are skipped.
    pub fn parse(text: &str) -> Result<Self, HistoryError> {
        let mut events = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let ev: Event = serde_json::from_str(line).map_err(|source| HistoryError::Json {
                line: i + 1,
                source,
            })?;
            events.push(ev);
        }
        Ok(History { events })
    }

    /// Serialize as JSON Lines (one event per line, trailing newline).
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for ev in &self.events {
            // An Event always serializes: plain strings and integers.
            out.push_str(&serde_json::to_string(ev).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Pair invokes with completions into operations (in invoke order). `fail` operations and
    /// reads with unknown outcome are dropped: they constrain nothing.
    pub fn operations(&self) -> Result<Vec<Operation>, HistoryError> {
        let mut open: BTreeMap<u64, (usize, Operation)> = BTreeMap::new();
        let mut done: Vec<(usize, Operation)> = Vec::new();
        for (i, ev) in self.events.iter().enumerate() {
            let line = i + 1;
            let err = |message: String| HistoryError::Pairing { line, message };
            if ev.kind == EventType::Invoke {
                let op = Operation {
                    process: ev.process,
                    op_id: ev.op_id,
                    f: ev.f,
                    key: ev.key.clone(),
                    input: ev.value.clone(),
                    outcome: Outcome::Unknown,
                    call_ns: ev.time_ns,
                    return_ns: u64::MAX,
                };
                if open.insert(ev.op_id, (i, op)).is_some() {
                    return Err(err(format!("op_id {} invoked twice", ev.op_id)));
                }
                continue;
            }
            let (idx, mut op) = open
                .remove(&ev.op_id)
                .ok_or_else(|| err(format!("op_id {} completes without invoke", ev.op_id)))?;
            if op.process != ev.process || op.f != ev.f || op.key != ev.key {
                return Err(err(format!(
                    "op_id {} completion differs from its invoke (process, f or key)",
                    ev.op_id
                )));
            }
            if ev.time_ns < op.call_ns {
                return Err(err(format!(
                    "op_id {} completes before its invoke",
                    ev.op_id
                )));
            }
            match ev.kind {
                EventType::Ok => {
                    op.outcome = Outcome::Ok(if op.f == Func::Get {
                        ev.value.clone()
                    } else {
                        None
                    });
                    op.return_ns = ev.time_ns;
                }
                EventType::Fail => continue,
                EventType::Info | EventType::Invoke => {}
            }
            done.push((idx, op));
        }
        done.extend(open.into_values());
        done.retain(|(_, op)| !(op.f == Func::Get && op.outcome == Outcome::Unknown));
        done.sort_by_key(|(idx, _)| *idx);
        Ok(done.into_iter().map(|(_, op)| op).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"process":1,"op_id":1,"type":"invoke","f":"put","key":"k","value":"a","time_ns":10}
{"process":2,"op_id":2,"type":"invoke","f":"get","key":"k","value":null,"time_ns":11}
{"process":1,"op_id":1,"type":"ok","f":"put","key":"k","value":null,"time_ns":20}

{"process":2,"op_id":2,"type":"ok","f":"get","key":"k","value":"a","time_ns":30}
{"process":3,"op_id":3,"type":"invoke","f":"put","key":"k","value":"b","time_ns":40}
{"process":3,"op_id":3,"type":"info","f":"put","key":"k","value":null,"time_ns":50}
{"process":4,"op_id":4,"type":"invoke","f":"delete","key":"k","value":null,"time_ns":60}
{"process":4,"op_id":4,"type":"fail","f":"delete","key":"k","value":null,"time_ns":70}
{"process":5,"op_id":5,"type":"invoke","f":"get","key":"k","value":null,"time_ns":80}
{"process":6,"op_id":6,"type":"invoke","f":"delete","key":"k","value":null,"time_ns":90}
"#;

    #[test]
    fn parse_serialize_round_trip() {
        let h = History::parse(TEXT).unwrap();
        assert_eq!(h.events.len(), 10);
        assert_eq!(History::parse(&h.to_jsonl()).unwrap(), h);
    }

    #[test]
    fn pairs_into_operations() {
        let ops = History::parse(TEXT).unwrap().operations().unwrap();
        let summary: Vec<(u64, Outcome, u64)> = ops
            .iter()
            .map(|o| (o.op_id, o.outcome.clone(), o.return_ns))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, Outcome::Ok(None), 20),
                (2, Outcome::Ok(Some("a".into())), 30),
                (3, Outcome::Unknown, u64::MAX),
                // 4 failed: dropped. 5 is a get without completion: dropped.
                (6, Outcome::Unknown, u64::MAX),
            ]
        );
        assert_eq!(ops[0].input.as_deref(), Some("a"));
        assert_eq!(ops[1].describe(), "p2 op 2 get(\"k\") -> \"a\" [11, 30]");
        assert_eq!(
            ops[2].describe(),
            "p3 op 3 put(\"k\", \"b\") -> unknown [40, inf]"
        );
    }

    #[test]
    fn rejects_malformed_histories() {
        let cases = [
            (r#"{"process":1}"#, 1),
            (
                r#"{"process":1,"op_id":1,"type":"ok","f":"put","key":"k","value":null,"time_ns":1}"#,
                1,
            ),
            (
                "{\"process\":1,\"op_id\":1,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"value\":\"a\",\"time_ns\":5}\n{\"process\":1,\"op_id\":1,\"type\":\"ok\",\"f\":\"put\",\"key\":\"k\",\"value\":null,\"time_ns\":4}",
                2,
            ),
            (
                "{\"process\":1,\"op_id\":1,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"value\":\"a\",\"time_ns\":5}\n{\"process\":1,\"op_id\":1,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"value\":null,\"time_ns\":6}",
                2,
            ),
        ];
        for (text, line) in cases {
            let err = History::parse(text)
                .and_then(|h| h.operations())
                .unwrap_err();
            let got = match err {
                HistoryError::Json { line, .. } | HistoryError::Pairing { line, .. } => line,
            };
            assert_eq!(got, line, "{text}");
        }
    }
}

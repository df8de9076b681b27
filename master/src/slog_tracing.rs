//! A `slog` drain that forwards raft-rs log records to `tracing`.

use std::fmt::Write as _;

struct TracingDrain;

struct KvCollector(String);

impl slog::Serializer for KvCollector {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        // Check the level first: raft-rs attaches whole messages (`"msg" => ?m`, every entry's
        // bytes in protobuf text format) to debug records, and formatting them for nothing
        // stalled the raft thread of a leader for seconds when a thawed old leader flooded it
        // with stale appends (test_scripts/sigstop.sh).
        if !level_enabled(record.level()) {
            return Ok(());
        }
        let mut kv = KvCollector(String::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
        let _ = slog::KV::serialize(values, record, &mut kv);
        let msg = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{msg}{}", kv.0)
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{msg}{}", kv.0),
            slog::Level::Info => tracing::info!(target: "raft", "{msg}{}", kv.0),
            slog::Level::Debug => tracing::debug!(target: "raft", "{msg}{}", kv.0),
            slog::Level::Trace => tracing::trace!(target: "raft", "{msg}{}", kv.0),
        }
        Ok(())
    }
}

/// Whether `tracing` would record a `raft` event at this slog level.
fn level_enabled(level: slog::Level) -> bool {
    use tracing::Level;
    match level {
        slog::Level::Critical | slog::Level::Error => {
            tracing::enabled!(target: "raft", Level::ERROR)
        }
        slog::Level::Warning => tracing::enabled!(target: "raft", Level::WARN),
        slog::Level::Info => tracing::enabled!(target: "raft", Level::INFO),
        slog::Level::Debug => tracing::enabled!(target: "raft", Level::DEBUG),
        slog::Level::Trace => tracing::enabled!(target: "raft", Level::TRACE),
    }
}

/// A raft-rs logger tagged with the member id.
pub fn logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("raft_id" => id))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A value that counts how often it is serialized.
    struct Counted(Arc<AtomicUsize>);

    impl slog::Value for Counted {
        fn serialize(
            &self,
            _record: &slog::Record<'_>,
            key: slog::Key,
            serializer: &mut dyn slog::Serializer,
        ) -> slog::Result {
            self.0.fetch_add(1, Ordering::SeqCst);
            serializer.emit_str(key, "v")
        }
    }

    #[test]
    fn disabled_levels_do_not_format_their_values() {
        let n = Arc::new(AtomicUsize::new(0));
        let log = super::logger(1);
        let info_only = tracing::subscriber::NoSubscriber::default();
        tracing::subscriber::with_default(info_only, || {
            slog::debug!(log, "dropped"; "msg" => Counted(n.clone()));
            slog::info!(log, "dropped too"; "msg" => Counted(n.clone()));
        });
        assert_eq!(n.load(Ordering::SeqCst), 0, "values formatted for nothing");

        let debug = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(debug, || {
            slog::debug!(log, "kept"; "msg" => Counted(n.clone()));
            slog::trace!(log, "dropped"; "msg" => Counted(n.clone()));
        });
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "the enabled record is formatted once"
        );
    }
}

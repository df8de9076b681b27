//! Logs: one `tracing` subscriber per process writing to stderr, as JSON lines or as text,
//! with a filter that SIGHUP can replace at run time.
//!
//! - Format: `--log-format json|text` (`ANODE_LOG_FORMAT`); without it, JSON when stderr is
//!   not a terminal (a file, a pipe, journald, a container runtime) and text on a terminal.
//!   Text written anywhere but a terminal carries no ANSI colour codes.
//! - Filter: `--log-level SPEC` (`ANODE_LOG_LEVEL`, or `log-level` in the `--config` file), in
//!   the `RUST_LOG` syntax (`info`, `anode_master=debug,info`); else `RUST_LOG`; else `info`.
//! - SIGHUP ([`spawn_sighup_log_reloader`]): the `log-level` key of the `--config` file is read
//!   again and becomes the filter; without a config file, or without that key, the filter goes
//!   back to the one the process started with. One line says what was reloaded.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;

use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::CommonError;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, `span`, `spans`).
    Json,
    /// Human-readable text (ANSI colours only on a terminal).
    Text,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!("unknown log format {other:?} (json or text)")),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        })
    }
}

/// The format when none is asked for: JSON unless stderr is a terminal.
pub fn default_format(stderr_is_terminal: bool) -> LogFormat {
    if stderr_is_terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    }
}

/// What the process asked for at start-up.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// `--log-format`, if given.
    pub format: Option<LogFormat>,
    /// `--log-level`, if given (a `RUST_LOG`-style filter).
    pub level: Option<String>,
    /// Trace export ([`crate::otel`]), when an OTLP endpoint is configured. The spans the
    /// filter lets through are exported; this needs a Tokio runtime (enter it first).
    pub otel: Option<crate::otel::OtelOptions>,
}

/// The filter spec at start-up: `--log-level`, else `RUST_LOG`, else `info` (pure).
pub fn initial_filter_spec(level: Option<&str>, rust_log: Option<&str>) -> String {
    level
        .or(rust_log)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info")
        .to_string()
}

/// The filter spec after a SIGHUP (pure): the config file's `log-level` key when the file
/// has one, else `startup` (the spec the process started with).
pub fn reloaded_filter_spec(
    config_text: Option<&str>,
    startup: &str,
) -> Result<(String, &'static str), toml::de::Error> {
    let Some(text) = config_text else {
        return Ok((startup.to_string(), "start-up value (no --config file)"));
    };
    let table: toml::Table = text.parse()?;
    let level = table
        .get("log-level")
        .or_else(|| table.get("log_level"))
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    Ok(match level {
        Some(l) => (l.to_string(), "config file"),
        None => (
            startup.to_string(),
            "start-up value (no log-level in the config file)",
        ),
    })
}

struct Reloadable {
    handle: reload::Handle<EnvFilter, Registry>,
    startup: String,
}

static RELOAD: OnceLock<Reloadable> = OnceLock::new();

/// Install the process's subscriber: stderr, `opts.format` (else [`default_format`]), filtered
/// by [`initial_filter_spec`]. Later calls (and a second subscriber) are ignored.
pub fn init_logging(opts: &LogOptions) -> Result<(), CommonError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let spec = initial_filter_spec(opts.level.as_deref(), rust_log.as_deref());
    let filter = EnvFilter::try_new(&spec).map_err(|e| CommonError::LogFilter {
        spec: spec.clone(),
        reason: e.to_string(),
    })?;
    let tty = std::io::stderr().is_terminal();
    let format = opts.format.unwrap_or_else(|| default_format(tty));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(tty)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let otel = match &opts.otel {
        Some(o) => Some(tracing_opentelemetry::layer().with_tracer(crate::otel::start(o)?)),
        None => None,
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok()
    {
        let _ = RELOAD.set(Reloadable {
            handle,
            startup: spec,
        });
    }
    Ok(())
}

/// Replace the filter of the subscriber [`init_logging`] installed.
pub fn set_filter(spec: &str) -> Result<(), CommonError> {
    let bad = |reason: String| CommonError::LogFilter {
        spec: spec.to_string(),
        reason,
    };
    let filter = EnvFilter::try_new(spec).map_err(|e| bad(e.to_string()))?;
    let r = RELOAD
        .get()
        .ok_or_else(|| bad("no reloadable subscriber installed".into()))?;
    r.handle.reload(filter).map_err(|e| bad(e.to_string()))
}

/// Read the config file again and set the filter it names (see the module docs); returns
/// the new spec and where it came from.
pub fn reload_from_config(config: Option<&PathBuf>) -> Result<(String, String), CommonError> {
    let startup = RELOAD.get().map(|r| r.startup.clone()).unwrap_or_default();
    let text = match config {
        Some(path) => {
            Some(
                std::fs::read_to_string(path).map_err(|source| CommonError::ReadConfig {
                    path: path.display().to_string(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let (spec, from) = reloaded_filter_spec(text.as_deref(), &startup).map_err(|source| {
        CommonError::ParseConfig {
            path: config.map(|p| p.display().to_string()).unwrap_or_default(),
            source,
        }
    })?;
    set_filter(&spec)?;
    let from = match config {
        Some(p) if from == "config file" => format!("{}", p.display()),
        _ => from.to_string(),
    };
    Ok((spec, from))
}

/// On every SIGHUP until `shutdown` turns true, reload the log filter from `config` and log
/// one line saying what it became (or why it did not change). Other SIGHUP handlers of the
/// process (the gateway's certificate reload) run as well.
pub fn spawn_sighup_log_reloader(
    config: Option<PathBuf>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    crate::on_sighup(shutdown, move || {
        match reload_from_config(config.as_ref()) {
            Ok((spec, from)) => {
                tracing::info!(filter = %spec, from = %from, "SIGHUP: log filter reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP: log filter unchanged");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parses_and_defaults_by_terminal() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" Text ".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
        assert_eq!(default_format(true), LogFormat::Text);
        assert_eq!(default_format(false), LogFormat::Json);
        assert_eq!(LogFormat::Json.to_string(), "json");
    }

    #[test]
    fn initial_spec_prefers_flag_then_rust_log() {
        assert_eq!(initial_filter_spec(Some("debug"), Some("warn")), "debug");
        assert_eq!(initial_filter_spec(None, Some("warn")), "warn");
        assert_eq!(initial_filter_spec(Some(" "), None), "info");
        assert_eq!(initial_filter_spec(None, None), "info");
    }

    #[test]
    fn reload_reads_log_level_or_falls_back() {
        let (s, from) = reloaded_filter_spec(Some("log-level = \"debug\"\n"), "info").unwrap();
        assert_eq!((s.as_str(), from), ("debug", "config file"));
        let (s, _) = reloaded_filter_spec(Some("log_level = \"anode=trace\""), "info").unwrap();
        assert_eq!(s, "anode=trace");
        let (s, from) = reloaded_filter_spec(Some("data = \"/x\""), "warn").unwrap();
        assert_eq!(s, "warn");
        assert!(from.contains("no log-level"));
        let (s, from) = reloaded_filter_spec(None, "info").unwrap();
        assert_eq!(s, "info");
        assert!(from.contains("no --config"));
        assert!(reloaded_filter_spec(Some("not toml ="), "info").is_err());
    }
}

//! SIGHUP reloads of the master's run-time settings: the repair limits (`repair-per-server`,
//! `repair-total`, `rebalance-spread`) read again from the `--config` file. The log filter
//! is reloaded by `anode_common::logging` on the same signal.

use anode_common::cli::{config_f64, config_u64};
use anode_meta::planner::Limits;

/// The repair limits after a reload (pure): the table's `repair-per-server`, `repair-total`
/// and `rebalance-spread` where present (task limits at least 1, the spread in 0..=1), the
/// current values elsewhere; with one `name: old -> new` line per change.
pub fn reloaded_limits(
    table: &toml::Table,
    current: &Limits,
) -> Result<(Limits, Vec<String>), String> {
    let mut next = current.clone();
    let mut changes = Vec::new();
    if let Some(v) = config_u64(table, "repair-per-server")? {
        next.per_server = (v as usize).max(1);
    }
    if let Some(v) = config_u64(table, "repair-total")? {
        next.total = (v as usize).max(1);
    }
    if let Some(v) = config_f64(table, "rebalance-spread")? {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("rebalance-spread: {v} is not within 0..=1"));
        }
        next.rebalance_spread = v;
    }
    if next.per_server != current.per_server {
        changes.push(format!(
            "repair-per-server: {} -> {}",
            current.per_server, next.per_server
        ));
    }
    if next.total != current.total {
        changes.push(format!("repair-total: {} -> {}", current.total, next.total));
    }
    if next.rebalance_spread != current.rebalance_spread {
        changes.push(format!(
            "rebalance-spread: {} -> {}",
            current.rebalance_spread, next.rebalance_spread
        ));
    }
    Ok((next, changes))
}

/// On every SIGHUP: read the `--config` file again and apply the repair limits it sets;
/// one log line says what changed (or why nothing did).
pub fn spawn_limits_reloader(
    service: crate::service::MasterService,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let Some(path) = anode_common::cli::config_file() else {
        return Ok(());
    };
    anode_common::on_sighup(shutdown, move || {
        let table = match anode_common::cli::read_config_table(&path) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP: repair limits unchanged");
                return;
            }
        };
        match service.reload_repair_limits(|cur| reloaded_limits(&table, cur)) {
            Ok(changes) if changes.is_empty() => {
                tracing::info!(config = %path.display(), "SIGHUP: repair limits unchanged (same values)");
            }
            Ok(changes) => {
                tracing::info!(config = %path.display(), changes = %changes.join(", "), "SIGHUP: repair limits reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "SIGHUP: repair limits unchanged"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_file_where_it_speaks() {
        let cur = Limits::default();
        let t: toml::Table = "repair-per-server = 4\nrebalance_spread = 0.25\n"
            .parse()
            .unwrap();
        let (next, changes) = reloaded_limits(&t, &cur).unwrap();
        assert_eq!(next.per_server, 4);
        assert_eq!(next.total, cur.total);
        assert_eq!(next.rebalance_spread, 0.25);
        assert_eq!(changes.len(), 2, "{changes:?}");
        let (same, none) = reloaded_limits(&toml::Table::new(), &next).unwrap();
        assert_eq!(same.per_server, 4);
        assert!(none.is_empty());
        let zero: toml::Table = "repair-total = 0\n".parse().unwrap();
        assert_eq!(reloaded_limits(&zero, &cur).unwrap().0.total, 1);
        let bad: toml::Table = "rebalance-spread = 3.0\n".parse().unwrap();
        assert!(reloaded_limits(&bad, &cur).is_err());
        let wrong: toml::Table = "repair-total = \"many\"\n".parse().unwrap();
        assert!(reloaded_limits(&wrong, &cur).is_err());
    }
}

//! Start-up plumbing shared by the `anode` and `anode-tools` binaries: `--config FILE` turned
//! into `ANODE_*` environment variables before clap parses, and abort on any panic.

use crate::CommonError;

/// Turn `--config FILE` (or `--config=FILE`, or `ANODE_CONFIG`) entries into `ANODE_*`
/// environment variables (flags and real environment variables win), before clap parses
/// flags for real. Call it while the process is still single-threaded.
pub fn apply_config_file() -> Result<(), CommonError> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = config_path(&args).or_else(|| std::env::var("ANODE_CONFIG").ok()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| CommonError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    for (var, val) in config_env_vars(&text).map_err(|source| CommonError::ParseConfig {
        path: path.clone(),
        source,
    })? {
        if std::env::var_os(&var).is_some() {
            continue;
        }
        // SAFETY: the caller runs this single-threaded (before the runtime starts).
        unsafe { std::env::set_var(var, val) };
    }
    Ok(())
}

/// This process's `--config FILE` (from its command line, else `ANODE_CONFIG`), if any: the
/// file SIGHUP reloads read again.
pub fn config_file() -> Option<std::path::PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    config_path(&args)
        .or_else(|| std::env::var("ANODE_CONFIG").ok())
        .map(std::path::PathBuf::from)
}

/// Read and parse a `--config` file (for a reload).
pub fn read_config_table(path: &std::path::Path) -> Result<toml::Table, CommonError> {
    let text = std::fs::read_to_string(path).map_err(|source| CommonError::ReadConfig {
        path: path.display().to_string(),
        source,
    })?;
    text.parse().map_err(|source| CommonError::ParseConfig {
        path: path.display().to_string(),
        source,
    })
}

/// A setting of a config table by its flag name, spelt with `-` or `_`.
pub fn config_key<'a>(table: &'a toml::Table, flag: &str) -> Option<&'a toml::Value> {
    table
        .get(flag)
        .or_else(|| table.get(&flag.replace('-', "_")))
}

/// A non-negative integer setting (`Err` names the key when it is of another type).
pub fn config_u64(table: &toml::Table, flag: &str) -> Result<Option<u64>, String> {
    match config_key(table, flag) {
        None => Ok(None),
        Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as u64)),
        Some(toml::Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{flag}: not a non-negative integer: {s:?}")),
        Some(other) => Err(format!("{flag}: not a non-negative integer: {other}")),
    }
}

/// A number setting (integers accepted).
pub fn config_f64(table: &toml::Table, flag: &str) -> Result<Option<f64>, String> {
    match config_key(table, flag) {
        None => Ok(None),
        Some(toml::Value::Float(f)) => Ok(Some(*f)),
        Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
        Some(toml::Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{flag}: not a number: {s:?}")),
        Some(other) => Err(format!("{flag}: not a number: {other}")),
    }
}

/// The value of `--config FILE` or `--config=FILE` in a command line, if any.
fn config_path(args: &[String]) -> Option<String> {
    args.iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--config=").map(String::from))
        })
}

/// The `ANODE_*` variables a TOML config sets: key `data-dir` becomes `ANODE_DATA_DIR`,
/// strings are taken as they are, arrays are joined with `,`, other values printed as TOML.
fn config_env_vars(text: &str) -> Result<Vec<(String, String)>, toml::de::Error> {
    let table: toml::Table = text.parse()?;
    Ok(table
        .into_iter()
        .map(|(k, v)| {
            let var = format!("ANODE_{}", k.to_uppercase().replace('-', "_"));
            let val = match v {
                toml::Value::String(s) => s,
                toml::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            (var, val)
        })
        .collect())
}

/// A panic anywhere (the raft thread, a tokio worker, a blocking-pool thread) ends the whole
/// process at once, like `kill -9`: after printing the usual message, `abort`. Without this a
/// panicking raft thread would leave a member that still holds its port and answers but never
/// makes progress, and a panicking task would just fail one request while its process keeps
/// whatever half-done state it left. Recovery from a crash is what the on-disk formats are
/// built for; recovery from an unknown in-memory state is not.
pub fn abort_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        std::process::abort();
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_settings_by_flag_name() {
        let t: toml::Table =
            "repair-per-server = 4\nrepair_total = \"9\"\nspread = 0.2\nbad = -1\nname = \"x\"\n"
                .parse()
                .unwrap();
        assert_eq!(config_u64(&t, "repair-per-server"), Ok(Some(4)));
        assert_eq!(config_u64(&t, "repair-total"), Ok(Some(9)));
        assert_eq!(config_u64(&t, "missing"), Ok(None));
        assert!(config_u64(&t, "bad").is_err());
        assert!(config_u64(&t, "name").is_err());
        assert_eq!(config_f64(&t, "spread"), Ok(Some(0.2)));
        assert_eq!(config_f64(&t, "repair-per-server"), Ok(Some(4.0)));
    }

    #[test]
    fn config_path_forms() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config_path(&argv(&["anode", "--config", "a.toml", "master"])).as_deref(),
            Some("a.toml")
        );
        assert_eq!(
            config_path(&argv(&["anode", "master", "--config=b.toml"])).as_deref(),
            Some("b.toml")
        );
        assert_eq!(config_path(&argv(&["anode", "master"])), None);
    }

    #[test]
    fn config_keys_become_anode_vars() {
        let vars = config_env_vars(
            "data = \"/srv/anode\"\nadmin-listen = \"127.0.0.1:1\"\nmasters = [\"a:1\", \"b:2\"]\nid = 3\n",
        )
        .unwrap();
        let get = |k: &str| vars.iter().find(|(v, _)| v == k).map(|(_, x)| x.as_str());
        assert_eq!(get("ANODE_DATA"), Some("/srv/anode"));
        assert_eq!(get("ANODE_ADMIN_LISTEN"), Some("127.0.0.1:1"));
        assert_eq!(get("ANODE_MASTERS"), Some("a:1,b:2"));
        assert_eq!(get("ANODE_ID"), Some("3"));
        assert!(config_env_vars("not toml =").is_err());
    }
}

//! Secret-key lookup with a short-lived cache, so SigV4 verification does not cost a master
//! round trip per request. Unknown keys are cached too (briefly), so a client with a bad key
//! cannot turn every request into a master call. A deleted key stops working within
//! `ttl` at the latest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::S3Error;

/// How long a found secret is trusted.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long "no such key" is remembered.
pub const KEY_CACHE_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Most cached entries; past this the cache is cleared (keys are few in practice).
pub const KEY_CACHE_MAX_ENTRIES: usize = 10_000;

/// The cache. `None` secrets are remembered misses.
#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    negative_ttl: Duration,
    entries: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new(KEY_CACHE_TTL, KEY_CACHE_NEGATIVE_TTL)
    }
}

impl KeyCache {
    /// A cache with explicit lifetimes.
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        KeyCache {
            ttl,
            negative_ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The secret of `access_key` at `now`: cached, else fetched from `backend`.
    /// Unknown keys are `InvalidAccessKeyId`; an unreachable cluster is `ServiceUnavailable`
    /// (not cached).
    pub async fn secret(
        &self,
        backend: &dyn Backend,
        access_key: &str,
        now: Instant,
    ) -> Result<String, S3Error> {
        if let Some(hit) = self.lookup(access_key, now) {
            return hit.ok_or(S3Error::InvalidAccessKeyId);
        }
        match backend.get_access_key(access_key).await {
            Ok(k) => {
                self.insert(access_key, Some(k.secret_key.clone()), now);
                Ok(k.secret_key)
            }
            Err(e) => {
                let err = S3Error::from_client_error(&e);
                if err == S3Error::InvalidAccessKeyId {
                    self.insert(access_key, None, now);
                }
                Err(err)
            }
        }
    }

    /// `Some(Some(secret))` hit, `Some(None)` remembered miss, `None` not cached or expired.
    fn lookup(&self, access_key: &str, now: Instant) -> Option<Option<String>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (secret, at) = entries.get(access_key)?;
        let ttl = if secret.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        (now.saturating_duration_since(*at) < ttl).then(|| secret.clone())
    }

    fn insert(&self, access_key: &str, secret: Option<String>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= KEY_CACHE_MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(access_key.to_string(), (secret, now));
    }
}

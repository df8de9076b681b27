//! Key lookup with a short-lived cache, so SigV4 verification and the principal of a request
//! do not cost a master round trip per request. What the master says about a key (its secret,
//! its user and that user's admin flag, disabled, expiry) is trusted for [`KEY_CACHE_TTL`]
//! (10 s): a deleted or disabled key, or a user's changed admin flag, takes effect on every
//! gateway within 10 s. Expiry is checked on every request against the gateway's clock.
//!
//! Limits (a client can send any access key id it likes):
//! - malformed ids never get here ([`anode_meta::validate::access_key`] refuses them first);
//! - found secrets live in an LRU bounded in bytes ([`KEY_CACHE_MAX_BYTES`]);
//! - unknown ids are remembered briefly in a second LRU bounded in entries
//!   ([`KEY_CACHE_NEGATIVE_MAX_ENTRIES`]), so a flood of unknown ids cannot push out the
//!   secrets in use;
//! - at most [`KEY_LOOKUPS_MAX_IN_FLIGHT`] master lookups run at once; past that, requests
//!   with uncached ids wait, so a flood of fresh unknown ids costs the masters a bounded rate.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;
use tokio::sync::Semaphore;

use crate::authz::Principal;
use crate::backend::Backend;
use crate::error::S3Error;

/// How long a found key (secret, principal, disabled flag) is trusted.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long "no such key" is remembered.
pub const KEY_CACHE_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Most bytes of cached secrets (ids + secrets + [`KEY_CACHE_ENTRY_OVERHEAD_BYTES`] each).
pub const KEY_CACHE_MAX_BYTES: usize = 1 << 20;
/// Bytes counted per cached entry beside its strings (the map node, the instant).
pub const KEY_CACHE_ENTRY_OVERHEAD_BYTES: usize = 64;
/// Most remembered unknown ids (each at most 128 bytes: under 1 MiB in all).
pub const KEY_CACHE_NEGATIVE_MAX_ENTRIES: usize = 4096;
/// Most master lookups of secrets in flight at once.
pub const KEY_LOOKUPS_MAX_IN_FLIGHT: usize = 16;

/// Cache sizes, for [`KeyCache::with_limits`].
#[derive(Clone, Copy, Debug)]
pub struct KeyCacheLimits {
    /// How long a found secret is trusted.
    pub ttl: Duration,
    /// How long an unknown id is remembered.
    pub negative_ttl: Duration,
    /// Most bytes of found secrets.
    pub max_bytes: usize,
    /// Most remembered unknown ids.
    pub negative_max_entries: usize,
}

impl Default for KeyCacheLimits {
    fn default() -> Self {
        KeyCacheLimits {
            ttl: KEY_CACHE_TTL,
            negative_ttl: KEY_CACHE_NEGATIVE_TTL,
            max_bytes: KEY_CACHE_MAX_BYTES,
            negative_max_entries: KEY_CACHE_NEGATIVE_MAX_ENTRIES,
        }
    }
}

/// What a request needs of its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The secret (for SigV4).
    pub secret: String,
    /// Who the key acts as.
    pub principal: Principal,
    /// Disabled by an operator: refused.
    pub disabled: bool,
    /// Wall-clock expiry, ms since the epoch (0 = never).
    pub expires_ms: u64,
}

impl KeyInfo {
    /// May the key be used at wall-clock `now_ms`? Disabled and expired keys are refused as
    /// S3 refuses an inactive key: 403 `InvalidAccessKeyId`.
    pub fn check_usable(&self, now_ms: u64) -> Result<(), S3Error> {
        if self.disabled || (self.expires_ms != 0 && now_ms >= self.expires_ms) {
            return Err(S3Error::InvalidAccessKeyId);
        }
        Ok(())
    }
}

struct Entries {
    found: LruCache<String, (KeyInfo, Instant)>,
    found_bytes: usize,
    missing: LruCache<String, Instant>,
}

/// The cache.
pub struct KeyCache {
    limits: KeyCacheLimits,
    entries: Mutex<Entries>,
    lookups: Semaphore,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::with_limits(KeyCacheLimits::default())
    }
}

fn entry_bytes(access_key: &str, info: &KeyInfo) -> usize {
    access_key.len()
        + info.secret.len()
        + info.principal.access_key.len()
        + info.principal.user.len()
        + KEY_CACHE_ENTRY_OVERHEAD_BYTES
}

impl KeyCache {
    /// A cache with explicit lifetimes and default sizes.
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        KeyCache::with_limits(KeyCacheLimits {
            ttl,
            negative_ttl,
            ..KeyCacheLimits::default()
        })
    }

    /// A cache with explicit limits.
    pub fn with_limits(limits: KeyCacheLimits) -> Self {
        let negative = NonZeroUsize::new(limits.negative_max_entries).unwrap_or(NonZeroUsize::MIN);
        KeyCache {
            limits,
            entries: Mutex::new(Entries {
                found: LruCache::unbounded(),
                found_bytes: 0,
                missing: LruCache::new(negative),
            }),
            lookups: Semaphore::new(KEY_LOOKUPS_MAX_IN_FLIGHT),
        }
    }

    /// The secret of `access_key` at `now` (see [`KeyCache::key`]).
    pub async fn secret(
        &self,
        backend: &dyn Backend,
        access_key: &str,
        now: Instant,
    ) -> Result<String, S3Error> {
        self.key(backend, access_key, now).await.map(|k| k.secret)
    }

    /// What the master says of `access_key` at `now`: cached, else fetched from `backend`.
    /// Malformed and unknown ids are `InvalidAccessKeyId`; an unreachable cluster is
    /// `ServiceUnavailable` (not cached). Disabled and expired keys are returned: the caller
    /// decides with [`KeyInfo::check_usable`].
    pub async fn key(
        &self,
        backend: &dyn Backend,
        access_key: &str,
        now: Instant,
    ) -> Result<KeyInfo, S3Error> {
        anode_meta::validate::access_key(access_key).map_err(|_| S3Error::InvalidAccessKeyId)?;
        if let Some(hit) = self.lookup(access_key, now) {
            return hit.ok_or(S3Error::InvalidAccessKeyId);
        }
        let _permit = self
            .lookups
            .acquire()
            .await
            .map_err(|_| S3Error::ServiceUnavailable("key lookups closed".into()))?;
        // Another request may have fetched it while this one waited.
        if let Some(hit) = self.lookup(access_key, now) {
            return hit.ok_or(S3Error::InvalidAccessKeyId);
        }
        match backend.get_principal(access_key).await {
            Ok((k, user)) => {
                let info = KeyInfo {
                    principal: Principal::of_key(&k, user.as_ref()),
                    secret: k.secret_key,
                    disabled: k.disabled,
                    expires_ms: k.expires_ms,
                };
                self.insert_found(access_key, &info, now);
                Ok(info)
            }
            Err(e) => {
                let err = S3Error::from_client_error(&e);
                if err == S3Error::InvalidAccessKeyId {
                    self.insert_missing(access_key, now);
                }
                Err(err)
            }
        }
    }

    /// `Some(Some(key))` hit, `Some(None)` remembered miss, `None` not cached or expired.
    fn lookup(&self, access_key: &str, now: Instant) -> Option<Option<KeyInfo>> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |at: &Instant, ttl| now.saturating_duration_since(*at) < ttl;
        if let Some((info, at)) = e.found.get(access_key) {
            if fresh(at, self.limits.ttl) {
                return Some(Some(info.clone()));
            }
        }
        if let Some(at) = e.missing.get(access_key) {
            if fresh(at, self.limits.negative_ttl) {
                return Some(None);
            }
        }
        None
    }

    fn insert_found(&self, access_key: &str, info: &KeyInfo, now: Instant) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.missing.pop(access_key);
        let add = entry_bytes(access_key, info);
        if let Some((old, _)) = e.found.put(access_key.to_string(), (info.clone(), now)) {
            e.found_bytes -= entry_bytes(access_key, &old);
        }
        e.found_bytes += add;
        while e.found_bytes > self.limits.max_bytes {
            let Some((k, (s, _))) = e.found.pop_lru() else {
                break;
            };
            e.found_bytes -= entry_bytes(&k, &s);
        }
    }

    fn insert_missing(&self, access_key: &str, now: Instant) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.missing.put(access_key.to_string(), now);
    }

    /// Bytes of found secrets held, and remembered unknown ids (for tests and metrics).
    pub fn usage(&self) -> (usize, usize) {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        (e.found_bytes, e.missing.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemBackend, NOW_MS};
    use std::sync::atomic::Ordering;

    fn id(i: usize) -> String {
        format!("AK{i:018}")
    }

    #[tokio::test]
    async fn found_secrets_are_bounded_in_bytes() {
        let backend = MemBackend::default();
        for i in 0..50 {
            backend.add_key(&id(i), &"s".repeat(40));
        }
        let info = KeyInfo {
            secret: "s".repeat(40),
            principal: Principal::of_key(
                &anode_client::AccessKey {
                    access_key: id(0),
                    ..Default::default()
                },
                None,
            ),
            disabled: false,
            expires_ms: 0,
        };
        let per = entry_bytes(&id(0), &info);
        let cache = KeyCache::with_limits(KeyCacheLimits {
            max_bytes: per * 10,
            ..KeyCacheLimits::default()
        });
        let now = Instant::now();
        for i in 0..50 {
            cache.secret(&backend, &id(i), now).await.unwrap();
            assert!(
                cache.usage().0 <= per * 10,
                "after {i}: {:?}",
                cache.usage()
            );
        }
        assert_eq!(cache.usage().0, per * 10);
        // The 10 most recent are cached, the first one was evicted.
        let before = backend.key_lookups.load(Ordering::Relaxed);
        cache.secret(&backend, &id(49), now).await.unwrap();
        assert_eq!(backend.key_lookups.load(Ordering::Relaxed), before);
        cache.secret(&backend, &id(0), now).await.unwrap();
        assert_eq!(backend.key_lookups.load(Ordering::Relaxed), before + 1);
    }

    #[tokio::test]
    async fn unknown_ids_are_bounded_and_do_not_evict_secrets() {
        let backend = MemBackend::default();
        backend.add_key(&id(0), "secret");
        let cache = KeyCache::with_limits(KeyCacheLimits {
            negative_max_entries: 8,
            ..KeyCacheLimits::default()
        });
        let now = Instant::now();
        cache.secret(&backend, &id(0), now).await.unwrap();
        for i in 1..1000 {
            let e = cache.secret(&backend, &id(i), now).await.unwrap_err();
            assert_eq!(e, S3Error::InvalidAccessKeyId);
        }
        assert_eq!(cache.usage().1, 8);
        // A remembered miss costs no lookup; the real key is still cached.
        let before = backend.key_lookups.load(Ordering::Relaxed);
        assert!(cache.secret(&backend, &id(999), now).await.is_err());
        assert_eq!(cache.secret(&backend, &id(0), now).await.unwrap(), "secret");
        assert_eq!(backend.key_lookups.load(Ordering::Relaxed), before);
        // Misses expire.
        let later = now + KEY_CACHE_NEGATIVE_TTL + Duration::from_millis(1);
        assert!(cache.secret(&backend, &id(999), later).await.is_err());
        assert_eq!(backend.key_lookups.load(Ordering::Relaxed), before + 1);
    }

    #[tokio::test]
    async fn malformed_ids_cost_no_lookup() {
        let backend = MemBackend::default();
        let cache = KeyCache::default();
        let long = "A".repeat(129);
        for bad in ["", "NOPE", "AKIAIOSFODNN7EXAMP/E", long.as_str()] {
            let e = cache.secret(&backend, bad, Instant::now()).await;
            assert_eq!(e, Err(S3Error::InvalidAccessKeyId), "{bad:?}");
        }
        assert_eq!(backend.key_lookups.load(Ordering::Relaxed), 0);
        assert_eq!(cache.usage(), (0, 0));
    }

    #[tokio::test]
    async fn keys_carry_their_principal_and_disabled_or_expired_keys_are_unusable() {
        let backend = MemBackend::default();
        backend.add_user("alice", false);
        backend.add_user_key(&id(1), "sa", "alice", 0);
        backend.add_user_key(&id(2), "sb", "alice", NOW_MS + 1000);
        backend.add_key(&id(3), "sc");
        let cache = KeyCache::default();
        let now = Instant::now();
        let a = cache.key(&backend, &id(1), now).await.unwrap();
        assert_eq!(
            (a.principal.user.as_str(), a.principal.admin),
            ("alice", false)
        );
        assert_eq!(a.check_usable(NOW_MS), Ok(()));
        let b = cache.key(&backend, &id(2), now).await.unwrap();
        assert_eq!(b.check_usable(NOW_MS + 999), Ok(()));
        assert_eq!(
            b.check_usable(NOW_MS + 1000),
            Err(S3Error::InvalidAccessKeyId)
        );
        let c = cache.key(&backend, &id(3), now).await.unwrap();
        assert!(c.principal.admin && c.principal.user.is_empty());
        // Disabling takes effect when the cached entry expires (KEY_CACHE_TTL), not before.
        backend.set_key_disabled(&id(1), true);
        let cached = cache.key(&backend, &id(1), now).await.unwrap();
        assert_eq!(cached.check_usable(NOW_MS), Ok(()));
        let later = now + KEY_CACHE_TTL;
        let fresh = cache.key(&backend, &id(1), later).await.unwrap();
        assert_eq!(fresh.check_usable(NOW_MS), Err(S3Error::InvalidAccessKeyId));
    }
}

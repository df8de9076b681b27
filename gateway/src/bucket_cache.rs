//! What authorization needs of a bucket (its owner and access configuration), cached for a
//! short time so a request does not cost a master round trip per bucket it touches.
//!
//! Consistency: an entry is trusted for [`BUCKET_CACHE_TTL`] (2 s by default,
//! `--bucket-cache-ttl-ms`; 0 turns the cache off). A change made through this gateway
//! (CreateBucket, DeleteBucket, a policy, ACL, ownership or PublicAccessBlock change) drops
//! the entry at once; a change made through another gateway or `anode ctl` takes effect here
//! within the TTL. S3 documents the same kind of delay for policy changes; docs/security.md
//! says so. A missing bucket is remembered as missing for the same time.
//!
//! Limits: at most [`BUCKET_CACHE_MAX_ENTRIES`] buckets (LRU); bucket names are validated
//! before they get here, and the stored record is at most 64 KiB, so the cache holds at most a
//! few hundred MiB in the worst case and a few MiB in practice. Anonymous requests reach this
//! cache with any bucket name they like, so at most [`BUCKET_LOOKUPS_MAX_IN_FLIGHT`] master
//! lookups run at once (the rest wait): a flood of made-up names costs the masters a bounded
//! rate, as for unknown access keys ([`crate::auth`]).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anode_client::BucketConfig;
use anode_meta::authz::{BucketAccess, BucketAccessRecord};
use lru::LruCache;

use crate::backend::Backend;
use crate::error::S3Error;

/// How long a bucket's owner and access configuration are trusted.
pub const BUCKET_CACHE_TTL: Duration = Duration::from_secs(2);
/// Most buckets cached.
pub const BUCKET_CACHE_MAX_ENTRIES: usize = 4096;
/// Most master lookups of buckets in flight at once.
pub const BUCKET_LOOKUPS_MAX_IN_FLIGHT: usize = 16;

/// A bucket as authorization sees it.
#[derive(Clone, Debug)]
pub struct BucketInfo {
    /// The stored configuration.
    pub config: BucketConfig,
    /// The stored access record (the default one when the bucket has none).
    pub record: BucketAccessRecord,
    /// The record parsed for evaluation.
    pub access: BucketAccess,
}

impl BucketInfo {
    /// Parse a stored configuration. A bucket without an access record (made before records
    /// existed) has the default: no policy, private ACL owned by its owner, ObjectWriter,
    /// nothing blocked.
    pub fn from_config(config: BucketConfig) -> Result<BucketInfo, S3Error> {
        let record =
            BucketAccessRecord::load(&config.access, &config.owner_user).map_err(|e| {
                tracing::error!(bucket = %config.name, error = %e, "stored bucket access record does not decode");
                S3Error::InternalError(format!("bucket access record: {e}"))
            })?;
        let access = BucketAccess::from_record(&record, &config.name).map_err(|e| {
            tracing::error!(bucket = %config.name, error = %e, "stored bucket policy does not parse");
            S3Error::InternalError(format!("bucket policy: {e}"))
        })?;
        Ok(BucketInfo {
            config,
            record,
            access,
        })
    }
}

type Entry = (Option<Arc<BucketInfo>>, Instant);

/// The cache (see the module docs).
pub struct BucketCache {
    ttl: Duration,
    entries: Mutex<LruCache<String, Entry>>,
    lookups: tokio::sync::Semaphore,
}

impl std::fmt::Debug for BucketCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for BucketCache {
    fn default() -> Self {
        BucketCache::new(BUCKET_CACHE_TTL)
    }
}

impl BucketCache {
    /// A cache trusting entries for `ttl` (zero: every request reads the master).
    pub fn new(ttl: Duration) -> BucketCache {
        let cap = NonZeroUsize::new(BUCKET_CACHE_MAX_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        BucketCache {
            ttl,
            entries: Mutex::new(LruCache::new(cap)),
            lookups: tokio::sync::Semaphore::new(BUCKET_LOOKUPS_MAX_IN_FLIGHT),
        }
    }

    /// Bucket `name` at `now`: `None` when it does not exist. An unreachable cluster is an
    /// error (not cached).
    pub async fn get(
        &self,
        backend: &dyn Backend,
        name: &str,
        now: Instant,
    ) -> Result<Option<Arc<BucketInfo>>, S3Error> {
        if let Some(hit) = self.lookup(name, now) {
            return Ok(hit);
        }
        let _permit = self
            .lookups
            .acquire()
            .await
            .map_err(|_| S3Error::ServiceUnavailable("bucket lookups closed".into()))?;
        // Another request may have fetched it while this one waited.
        if let Some(hit) = self.lookup(name, now) {
            return Ok(hit);
        }
        let found = match backend.head_bucket(name).await {
            Ok(cfg) => Some(Arc::new(BucketInfo::from_config(cfg)?)),
            Err(e) if e.code() == anode_client::ErrorCode::NoSuchBucket => None,
            Err(e) => return Err(S3Error::from_client_error(&e)),
        };
        if !self.ttl.is_zero() {
            let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            e.put(name.to_string(), (found.clone(), now));
        }
        Ok(found)
    }

    fn lookup(&self, name: &str, now: Instant) -> Option<Option<Arc<BucketInfo>>> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match e.get(name) {
            Some((info, at)) if now.saturating_duration_since(*at) < self.ttl => Some(info.clone()),
            _ => None,
        }
    }

    /// Forget `name` (this gateway changed it).
    pub fn invalidate(&self, name: &str) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.pop(name);
    }

    /// Number of cached buckets (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The object's own ACL (`None`: the default, private to the bucket owner). A stored ACL that
/// does not decode is an internal error (the state machine validated it when it was stored).
pub fn object_acl(
    manifest: &anode_client::Manifest,
) -> Result<Option<anode_meta::authz::Acl>, S3Error> {
    anode_meta::authz::record::decode_acl(&manifest.acl).map_err(|e| {
        tracing::error!(error = %e, "stored object ACL does not decode");
        S3Error::InternalError(format!("object ACL: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemBackend;
    use anode_meta::authz::canonical_id;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn entries_live_for_the_ttl_and_changes_here_drop_them() {
        let backend = MemBackend::default();
        backend.add_user("alice", false);
        backend
            .create_bucket("bkt", "AKTESTAKTEST0001", "alice", Vec::new(), false)
            .await
            .unwrap();
        let lookups = || backend.bucket_lookups.load(Ordering::Relaxed);
        let cache = BucketCache::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let b = cache
            .get(&backend, "bkt", t0)
            .await
            .unwrap()
            .expect("exists");
        assert_eq!(b.config.owner_user, "alice");
        // The default record of a bucket that stores none: private to its owner.
        assert_eq!(b.record.acl.owner, canonical_id("alice"));
        assert!(b.access.policy.is_none());
        cache
            .get(&backend, "bkt", t0 + Duration::from_millis(1999))
            .await
            .unwrap();
        assert_eq!(lookups(), 1);
        cache
            .get(&backend, "bkt", t0 + Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(lookups(), 2);
        cache.invalidate("bkt");
        cache
            .get(&backend, "bkt", t0 + Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(lookups(), 3);
        // A missing bucket is remembered as missing for the TTL too.
        assert!(cache
            .get(&backend, "nope-bucket", t0)
            .await
            .unwrap()
            .is_none());
        assert!(cache
            .get(&backend, "nope-bucket", t0)
            .await
            .unwrap()
            .is_none());
        assert_eq!(lookups(), 4);
        assert_eq!(cache.len(), 2);
        // TTL 0: no cache at all.
        let off = BucketCache::new(Duration::ZERO);
        off.get(&backend, "bkt", t0).await.unwrap();
        off.get(&backend, "bkt", t0).await.unwrap();
        assert_eq!(lookups(), 6);
        assert!(off.is_empty());
    }

    #[tokio::test]
    async fn a_record_that_does_not_decode_is_an_internal_error() {
        let cfg = BucketConfig {
            name: "bkt".into(),
            owner_user: "alice".into(),
            access: b"{not json".to_vec(),
            ..Default::default()
        };
        let e = BucketInfo::from_config(cfg).unwrap_err();
        assert_eq!(e.aws_code(), "InternalError");
    }
}

//! S3 lifecycle rules (issue 14): validation of a bucket's configuration and the one pure
//! decision of what a rule set does to a key's versions at a given time.
//!
//! The leader's worker ([`crate::sm`]`::lifecycle_plan`) scans a bucket and proposes the
//! actions [`decide_key`] finds, in batches through raft; the state machine runs
//! [`decide_key`] again on the state at apply time and carries out only the proposed actions
//! it finds again. So a batch that arrives late (a deposed leader, a retried proposal) can
//! never delete what no longer qualifies, and the worker and the state machine cannot
//! disagree on what a rule means.
//!
//! Time: a rule's "day" is `day_ms` (86,400,000; the master's debug setting shortens it, as
//! RGW's `rgw_lc_debug_interval` does, so tests do not wait for days). Days count from the
//! version's creation (current versions) or from when it became noncurrent (the creation of
//! the next newer version); unlike AWS, they are not rounded up to the next midnight UTC.

use anode_proto::*;

use crate::sm::versions::seq_of;

/// Most rules in one configuration (S3's limit).
pub const MAX_RULES: usize = 1000;
/// Longest rule id (S3's limit).
pub const MAX_ID_CHARS: usize = 255;
/// A real day.
pub const DAY_MS: u64 = 86_400_000;

/// What a lifecycle action does (`LifecycleAction.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionKind {
    /// Expire the current version: the S3 simple delete (a delete marker in a versioned
    /// bucket, removal in an unversioned one).
    ExpireCurrent = 1,
    /// Delete a noncurrent version (object or delete marker) for good.
    DeleteNoncurrent = 2,
    /// Remove a delete marker that is the only version left of its key.
    RemoveExpiredMarker = 3,
    /// Abort an incomplete multipart upload.
    AbortUpload = 4,
}

impl ActionKind {
    /// From the wire number.
    pub fn from_u32(v: u32) -> Option<ActionKind> {
        Some(match v {
            1 => ActionKind::ExpireCurrent,
            2 => ActionKind::DeleteNoncurrent,
            3 => ActionKind::RemoveExpiredMarker,
            4 => ActionKind::AbortUpload,
            _ => return None,
        })
    }
}

/// A lifecycle configuration S3 would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid lifecycle configuration: {0}")]
pub struct LifecycleError(pub String);

fn bad(msg: impl Into<String>) -> LifecycleError {
    LifecycleError(msg.into())
}

/// Check a configuration as PutBucketLifecycleConfiguration must: 1 to 1,000 rules, unique
/// ids of at most 255 characters, at least one action per rule, positive day counts, a
/// size range that is not empty, and no expiration by both days and date.
pub fn validate(cfg: &LifecycleConfig) -> Result<(), LifecycleError> {
    if cfg.rules.is_empty() {
        return Err(bad("at least one rule is needed"));
    }
    if cfg.rules.len() > MAX_RULES {
        return Err(bad(format!(
            "{} rules, at most {MAX_RULES}",
            cfg.rules.len()
        )));
    }
    let mut ids = std::collections::BTreeSet::new();
    for r in &cfg.rules {
        if r.id.chars().count() > MAX_ID_CHARS {
            return Err(bad(format!(
                "rule id longer than {MAX_ID_CHARS} characters"
            )));
        }
        if !r.id.is_empty() && !ids.insert(r.id.as_str()) {
            return Err(bad(format!("rule id {:?} is used twice", r.id)));
        }
        if r.expiration_days > 0 && r.expiration_date_ms > 0 {
            return Err(bad("an expiration has Days or Date, not both"));
        }
        if r.expired_object_delete_marker && (r.expiration_days > 0 || r.expiration_date_ms > 0) {
            return Err(bad(
                "ExpiredObjectDeleteMarker cannot be given with Days or Date",
            ));
        }
        if r.newer_noncurrent_versions > 0 && r.noncurrent_days == 0 {
            return Err(bad("NewerNoncurrentVersions needs NoncurrentDays"));
        }
        if r.size_less_than > 0 && r.size_greater_than >= r.size_less_than {
            return Err(bad(
                "ObjectSizeGreaterThan must be below ObjectSizeLessThan",
            ));
        }
        if r.tags.len() > 10 || r.tags.iter().any(|t| t.key.is_empty()) {
            return Err(bad("a filter has at most 10 tags, each with a key"));
        }
        let acts = r.expiration_days > 0
            || r.expiration_date_ms > 0
            || r.expired_object_delete_marker
            || r.noncurrent_days > 0
            || r.abort_multipart_days > 0;
        if !acts {
            return Err(bad(format!("rule {:?} has no action", r.id)));
        }
    }
    Ok(())
}

/// One version of a key as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionView {
    /// Its order among the key's versions.
    pub seq: u64,
    /// A delete marker.
    pub delete_marker: bool,
    /// Body size.
    pub size: u64,
    /// When it was written.
    pub mtime_ms: u64,
    /// Its tags (a rule's tag filter is matched per version).
    pub tags: Vec<Tag>,
}

impl From<&Manifest> for VersionView {
    fn from(m: &Manifest) -> Self {
        VersionView {
            seq: seq_of(m),
            delete_marker: m.delete_marker,
            size: m.size,
            mtime_ms: m.mtime_ms,
            tags: m.tags.clone(),
        }
    }
}

fn filter_matches(r: &LifecycleRule, key: &str) -> bool {
    r.enabled && key.starts_with(&r.prefix)
}

/// Whether the rule's tag filter takes version `v`: every tag of the filter is on it with an
/// equal value. A delete marker has no tags, so a rule with a tag filter never takes one.
fn tags_match(r: &LifecycleRule, v: &VersionView) -> bool {
    crate::tagging::filter_matches(&r.tags, &v.tags)
}

fn size_matches(r: &LifecycleRule, size: u64) -> bool {
    size > r.size_greater_than && (r.size_less_than == 0 || size < r.size_less_than)
}

fn after_days(from_ms: u64, days: u32, day_ms: u64) -> u64 {
    from_ms.saturating_add(u64::from(days).saturating_mul(day_ms))
}

/// What the rules do now to one key, whose versions are `versions`, newest first: a list of
/// (kind, seq) without duplicates, in a fixed order.
pub fn decide_key(
    rules: &[LifecycleRule],
    key: &str,
    versions: &[VersionView],
    now_ms: u64,
    day_ms: u64,
) -> Vec<(ActionKind, u64)> {
    let mut out = Vec::new();
    let Some(newest) = versions.first() else {
        return out;
    };
    for r in rules.iter().filter(|r| filter_matches(r, key)) {
        // The current version.
        if !newest.delete_marker && size_matches(r, newest.size) && tags_match(r, newest) {
            let by_days = r.expiration_days > 0
                && now_ms >= after_days(newest.mtime_ms, r.expiration_days, day_ms);
            let by_date = r.expiration_date_ms > 0 && now_ms >= r.expiration_date_ms;
            if by_days || by_date {
                out.push((ActionKind::ExpireCurrent, newest.seq));
            }
        }
        // A lone delete marker.
        if r.expired_object_delete_marker
            && versions.len() == 1
            && newest.delete_marker
            && r.tags.is_empty()
        {
            out.push((ActionKind::RemoveExpiredMarker, newest.seq));
        }
        // Noncurrent versions: each became noncurrent when the next newer one was written.
        if r.noncurrent_days > 0 {
            for (i, pair) in versions.windows(2).enumerate() {
                let (newer, v) = (&pair[0], &pair[1]);
                let rank = i as u64; // noncurrent versions newer than `v`
                if rank < u64::from(r.newer_noncurrent_versions) {
                    continue;
                }
                if !v.delete_marker && !size_matches(r, v.size) {
                    continue;
                }
                if !tags_match(r, v) {
                    continue;
                }
                if now_ms >= after_days(newer.mtime_ms, r.noncurrent_days, day_ms) {
                    out.push((ActionKind::DeleteNoncurrent, v.seq));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Should the upload of `key` started at `initiated_ms` be aborted now?
pub fn abort_upload_due(
    rules: &[LifecycleRule],
    key: &str,
    initiated_ms: u64,
    now_ms: u64,
    day_ms: u64,
) -> bool {
    // S3 refuses a tag filter on a rule that aborts uploads (uploads have no tags yet); a
    // rule with one never aborts.
    rules.iter().any(|r| {
        filter_matches(r, key)
            && r.tags.is_empty()
            && r.abort_multipart_days > 0
            && now_ms >= after_days(initiated_ms, r.abort_multipart_days, day_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> LifecycleRule {
        LifecycleRule {
            id: "r".into(),
            enabled: true,
            ..Default::default()
        }
    }

    fn v(seq: u64, marker: bool, mtime_ms: u64) -> VersionView {
        VersionView {
            seq,
            delete_marker: marker,
            size: 10,
            mtime_ms,
            tags: Vec::new(),
        }
    }

    #[test]
    fn validation_refuses_what_s3_refuses() {
        let ok = LifecycleConfig {
            rules: vec![LifecycleRule {
                expiration_days: 1,
                ..rule()
            }],
        };
        assert!(validate(&ok).is_ok());
        assert!(validate(&LifecycleConfig::default()).is_err());
        let no_action = LifecycleConfig {
            rules: vec![rule()],
        };
        assert!(validate(&no_action).is_err());
        let twice = LifecycleConfig {
            rules: vec![ok.rules[0].clone(), ok.rules[0].clone()],
        };
        assert!(validate(&twice).is_err());
        let both = LifecycleConfig {
            rules: vec![LifecycleRule {
                expiration_days: 1,
                expiration_date_ms: 5,
                ..rule()
            }],
        };
        assert!(validate(&both).is_err());
    }

    #[test]
    fn current_expiry_by_days_prefix_and_size() {
        let r = LifecycleRule {
            prefix: "logs/".into(),
            expiration_days: 2,
            size_greater_than: 5,
            ..rule()
        };
        let vs = [v(7, false, 1000)];
        let day = 100;
        assert!(decide_key(std::slice::from_ref(&r), "logs/a", &vs, 1199, day).is_empty());
        assert_eq!(
            decide_key(std::slice::from_ref(&r), "logs/a", &vs, 1200, day),
            vec![(ActionKind::ExpireCurrent, 7)]
        );
        assert!(decide_key(std::slice::from_ref(&r), "data/a", &vs, 5000, day).is_empty());
        let small = [VersionView {
            size: 5,
            ..vs[0].clone()
        }];
        assert!(decide_key(std::slice::from_ref(&r), "logs/a", &small, 5000, day).is_empty());
        let disabled = LifecycleRule {
            enabled: false,
            ..r
        };
        assert!(decide_key(&[disabled], "logs/a", &vs, 5000, day).is_empty());
    }

    #[test]
    fn noncurrent_versions_count_from_their_successor_and_keep_the_newest() {
        let r = LifecycleRule {
            noncurrent_days: 1,
            newer_noncurrent_versions: 1,
            ..rule()
        };
        // Newest first: current (seq 4), then noncurrent 3 (since 400), 2 (since 300), 1.
        let vs = [
            v(4, false, 400),
            v(3, false, 300),
            v(2, true, 200),
            v(1, false, 100),
        ];
        let day = 50;
        // Version 3 is the newest noncurrent one: kept. 2 became noncurrent at 300, 1 at 200.
        assert_eq!(
            decide_key(std::slice::from_ref(&r), "k", &vs, 260, day),
            vec![(ActionKind::DeleteNoncurrent, 1)]
        );
        assert_eq!(
            decide_key(&[r], "k", &vs, 350, day),
            vec![
                (ActionKind::DeleteNoncurrent, 1),
                (ActionKind::DeleteNoncurrent, 2)
            ]
        );
    }

    #[test]
    fn only_a_lone_marker_is_removed() {
        let r = LifecycleRule {
            expired_object_delete_marker: true,
            ..rule()
        };
        assert_eq!(
            decide_key(std::slice::from_ref(&r), "k", &[v(2, true, 0)], 0, 1),
            vec![(ActionKind::RemoveExpiredMarker, 2)]
        );
        assert!(decide_key(&[r], "k", &[v(2, true, 0), v(1, false, 0)], 0, 1).is_empty());
    }

    #[test]
    fn uploads_abort_after_their_days() {
        let r = LifecycleRule {
            abort_multipart_days: 2,
            ..rule()
        };
        assert!(!abort_upload_due(
            std::slice::from_ref(&r),
            "k",
            100,
            299,
            100
        ));
        assert!(abort_upload_due(&[r], "k", 100, 300, 100));
    }

    #[test]
    fn tag_filters_match_each_versions_own_tags() {
        use crate::tagging::tag;
        let r = LifecycleRule {
            expiration_days: 1,
            noncurrent_days: 1,
            tags: vec![LifecycleTag {
                key: "class".into(),
                value: "tmp".into(),
            }],
            ..rule()
        };
        let tagged = |seq, value: &str| VersionView {
            tags: vec![tag("other", "x"), tag("class", value)],
            ..v(seq, false, 0)
        };
        let rules = std::slice::from_ref(&r);
        // The current version: only with the tag and its value.
        assert_eq!(
            decide_key(rules, "k", &[tagged(3, "tmp")], 10, 1),
            vec![(ActionKind::ExpireCurrent, 3)]
        );
        assert!(decide_key(rules, "k", &[tagged(3, "keep")], 10, 1).is_empty());
        assert!(decide_key(rules, "k", &[v(3, false, 0)], 10, 1).is_empty());
        // Noncurrent versions are judged by their own tags, not the current one's.
        assert_eq!(
            decide_key(
                rules,
                "k",
                &[tagged(5, "keep"), tagged(4, "tmp"), v(3, false, 0)],
                10,
                1
            ),
            vec![(ActionKind::DeleteNoncurrent, 4)]
        );
        // A delete marker has no tags: a tag rule never removes one.
        let markers = LifecycleRule {
            expired_object_delete_marker: true,
            expiration_days: 0,
            noncurrent_days: 0,
            ..r.clone()
        };
        assert!(decide_key(&[markers], "k", &[v(2, true, 0)], 10, 1).is_empty());
        // Nor aborts an upload.
        let uploads = LifecycleRule {
            abort_multipart_days: 1,
            ..r
        };
        assert!(!abort_upload_due(&[uploads], "k", 0, 10, 1));
    }
}

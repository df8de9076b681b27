//! Lifecycle in the state machine: the rules' record, the worker's planning scan, and the
//! apply step of its batches (see [`crate::lifecycle`] for what the rules mean).
//!
//! | key | value |
//! |---|---|
//! | `y/<bucket>` | `LifecycleProgress`: the worker's cursor and counters for the bucket |

use anode_proto::*;
use prost::Message;

use super::records::{get_msg, must_decode};
use super::versions::{self, seq_of, stored_versions};
use super::{
    bucket_key, get_bucket, object_key, object_prefix, prefix_end, upload_prefix, Res, StateError,
};
use crate::kv::{KvRead, Overlay};
use crate::lifecycle::{self, ActionKind, VersionView};

fn progress_key(bucket: &str) -> Vec<u8> {
    [b"y/", bucket.as_bytes()].concat()
}

/// The worker's progress on `bucket` (the default before its first batch).
pub fn lifecycle_progress(kv: &dyn KvRead, bucket: &str) -> LifecycleProgress {
    get_msg(kv, &progress_key(bucket)).unwrap_or(LifecycleProgress {
        version: RECORD_VERSION,
        ..Default::default()
    })
}

/// Replace or delete (config absent) a bucket's lifecycle rules.
pub(super) fn set_lifecycle(o: &mut Overlay<'_>, c: &SetBucketLifecycleCmd) -> Res {
    let mut cfg = get_bucket(o, &c.name).ok_or_else(|| StateError::NoSuchBucket(c.name.clone()))?;
    if let Some(l) = &c.config {
        lifecycle::validate(l).map_err(|e| StateError::InvalidArgument(e.to_string()))?;
    }
    cfg.lifecycle = c.config.clone();
    o.put(bucket_key(&c.name), cfg.encode_to_vec());
    if c.config.is_none() {
        o.delete(progress_key(&c.name));
    }
    Ok(CommandResult::default())
}

/// Every version of `key`, newest first.
fn key_versions(kv: &dyn KvRead, bucket: &str, key: &str) -> Vec<Manifest> {
    let mut all: Vec<Manifest> = get_msg(kv, &object_key(bucket, key)).into_iter().collect();
    all.extend(stored_versions(kv, bucket, key, usize::MAX));
    all
}

fn views(vs: &[Manifest]) -> Vec<VersionView> {
    vs.iter().map(VersionView::from).collect()
}

/// The first key of the bucket strictly after `after` ("" = from the start) that has any
/// version, from the current objects (`o/`) and the versions (`v/`).
fn next_key(kv: &dyn KvRead, bucket: &str, after: &str) -> Option<String> {
    let op = object_prefix(bucket);
    let vp = versions::versions_prefix(bucket);
    let from_o = {
        let start = if after.is_empty() {
            op.clone()
        } else {
            [object_key(bucket, after).as_slice(), b"\0"].concat()
        };
        kv.scan(&start, prefix_end(&op).as_deref(), 1)
            .pop()
            .map(|(k, _)| String::from_utf8_lossy(&k[op.len()..]).into_owned())
    };
    let from_v = {
        let start = if after.is_empty() {
            vp.clone()
        } else {
            let p = versions::key_versions_prefix(bucket, after);
            prefix_end(&p).unwrap_or(p)
        };
        kv.scan(&start, prefix_end(&vp).as_deref(), 1)
            .pop()
            .map(|(k, _)| String::from_utf8_lossy(&k[vp.len()..k.len() - 9]).into_owned())
    };
    match (from_o, from_v) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The worker's next batch for `bucket` at `now_ms`: from the stored progress, examine up to
/// `max_keys` keys (then uploads) and collect at most `max_actions` actions. `None` when the
/// bucket has no rules, or its last pass finished less than `pass_interval_ms` ago.
pub fn lifecycle_plan(
    kv: &dyn KvRead,
    bucket: &str,
    now_ms: u64,
    day_ms: u64,
    pass_interval_ms: u64,
    max_keys: usize,
    max_actions: usize,
) -> Option<LifecycleBatchCmd> {
    let cfg = get_bucket(kv, bucket)?;
    let rules = cfg.lifecycle.as_ref()?.rules.clone();
    let from = lifecycle_progress(kv, bucket);
    let mut p = from.clone();
    if from.pass_started_ms == 0 || from.pass_done {
        if from.pass_done && now_ms < from.last_pass_done_ms.saturating_add(pass_interval_ms) {
            return None;
        }
        p = LifecycleProgress {
            version: RECORD_VERSION,
            pass_started_ms: now_ms,
            pass_done: false,
            phase: 0,
            after_key: String::new(),
            ..from.clone()
        };
    }
    let mut actions = Vec::new();
    let mut examined = 0usize;
    if p.phase == 0 {
        loop {
            if examined >= max_keys || actions.len() >= max_actions {
                break;
            }
            let Some(key) = next_key(kv, bucket, &p.after_key) else {
                p.phase = 1;
                p.after_key.clear();
                break;
            };
            examined += 1;
            let vs = key_versions(kv, bucket, &key);
            for (kind, seq) in lifecycle::decide_key(&rules, &key, &views(&vs), now_ms, day_ms) {
                actions.push(LifecycleAction {
                    kind: kind as u32,
                    key: key.clone(),
                    version_seq: seq,
                    upload_id: String::new(),
                });
            }
            p.after_key = key;
        }
    }
    if p.phase == 1 && examined < max_keys && actions.len() < max_actions {
        let up = upload_prefix(bucket);
        let start = if p.after_key.is_empty() {
            up.clone()
        } else {
            [up.as_slice(), p.after_key.as_bytes(), b"\0"].concat()
        };
        let rows = kv.scan(&start, prefix_end(&up).as_deref(), max_keys - examined);
        let full = rows.len() == max_keys - examined;
        for (k, v) in rows {
            let u: MultipartUpload = must_decode(&k, &v);
            if lifecycle::abort_upload_due(&rules, &u.key, u.initiated_ms, now_ms, day_ms) {
                actions.push(LifecycleAction {
                    kind: ActionKind::AbortUpload as u32,
                    key: u.key.clone(),
                    version_seq: 0,
                    upload_id: u.upload_id.clone(),
                });
            }
            // Resume after this upload: its key and id, as the upload key orders them.
            p.after_key = format!("{}\0{}", u.key, u.upload_id);
        }
        if !full {
            p.pass_done = true;
            p.after_key.clear();
        }
    }
    Some(LifecycleBatchCmd {
        bucket: bucket.to_string(),
        actions,
        progress: Some(p),
        day_ms,
        from: Some(from),
    })
}

/// Apply one worker batch: only when the stored progress is still the one it started from;
/// each action only when [`lifecycle::decide_key`] finds it again now (and locks allow).
pub(super) fn apply_batch(o: &mut Overlay<'_>, index: u64, now: u64, c: &LifecycleBatchCmd) -> Res {
    let Some(cfg) = get_bucket(o, &c.bucket) else {
        return Ok(CommandResult::default());
    };
    let Some(rules) = cfg.lifecycle.as_ref().map(|l| l.rules.clone()) else {
        return Ok(CommandResult::default());
    };
    let stored = lifecycle_progress(o, &c.bucket);
    let from = c.from.clone().unwrap_or_default();
    let same = |a: &LifecycleProgress, b: &LifecycleProgress| {
        (a.pass_started_ms, a.phase, &a.after_key, a.pass_done)
            == (b.pass_started_ms, b.phase, &b.after_key, b.pass_done)
    };
    if !same(&stored, &from) || c.day_ms == 0 {
        return Ok(CommandResult::default());
    }
    let mut p = c.progress.clone().unwrap_or_default();
    // Counters are the state machine's, not the proposer's.
    p.version = RECORD_VERSION;
    p.expired = stored.expired;
    p.noncurrent_deleted = stored.noncurrent_deleted;
    p.markers_removed = stored.markers_removed;
    p.uploads_aborted = stored.uploads_aborted;
    // A pass ends when a batch finishes it: also the batch that starts and ends a pass at
    // once (a small bucket), whose stored progress was the previous pass's end.
    let ends_a_pass =
        p.pass_done && (!stored.pass_done || p.pass_started_ms != stored.pass_started_ms);
    p.passes = stored.passes + u64::from(ends_a_pass);
    if p.pass_done {
        p.last_pass_done_ms = now;
    }
    let mut result = CommandResult::default();
    for a in &c.actions {
        let Some(kind) = ActionKind::from_u32(a.kind) else {
            continue;
        };
        if kind == ActionKind::AbortUpload {
            let Some(u) = super::get_upload(o, &c.bucket, &a.key, &a.upload_id) else {
                continue;
            };
            if lifecycle::abort_upload_due(&rules, &u.key, u.initiated_ms, now, c.day_ms) {
                let abort = AbortMultipartCmd {
                    bucket: c.bucket.clone(),
                    key: a.key.clone(),
                    upload_id: a.upload_id.clone(),
                };
                if super::abort_multipart(o, now, &abort).is_ok() {
                    p.uploads_aborted += 1;
                }
            }
            continue;
        }
        let vs = key_versions(o, &c.bucket, &a.key);
        let again = lifecycle::decide_key(&rules, &a.key, &views(&vs), now, c.day_ms);
        if !again.contains(&(kind, a.version_seq)) {
            continue;
        }
        let Some(m) = vs.iter().find(|m| seq_of(m) == a.version_seq) else {
            continue;
        };
        let vid = match kind {
            ActionKind::ExpireCurrent => None,
            _ => Some(versions::version_id_of(m).to_string()),
        };
        let entry = [(a.key.clone(), vid)];
        // A locked version is skipped (its outcome carries the refusal), never forced.
        let mode = super::DeleteMode {
            lifecycle: true,
            ..Default::default()
        };
        let r = super::delete_objects(o, index, now, &c.bucket, &entry, &mode)?;
        if r.deletions.iter().all(|d| d.error.is_none()) {
            match kind {
                ActionKind::ExpireCurrent => p.expired += 1,
                ActionKind::DeleteNoncurrent => p.noncurrent_deleted += 1,
                ActionKind::RemoveExpiredMarker => p.markers_removed += 1,
                ActionKind::AbortUpload => {}
            }
        }
        result.deletions.extend(r.deletions);
    }
    o.put(progress_key(&c.bucket), p.encode_to_vec());
    Ok(result)
}

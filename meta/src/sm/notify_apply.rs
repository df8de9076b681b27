//! Event notifications in the state machine (issue 15, command version 7): the bucket rules
//! and cluster targets, the per-target event queues (`q/<target>\0<index be><n be>`, with
//! counters `x/nq/<target>` queued and `x/nd/<target>` dropped), and their read queries. See
//! [`crate::notify`] for the flow.

use anode_proto::*;
use prost::Message;

use super::records::{get_msg, scan_msgs};
use super::{bucket_key, get_bucket, get_u64, prefix_end, Res, StateError};
use crate::kv::{KvRead, Overlay};
use crate::notify;

fn target_key(name: &str) -> Vec<u8> {
    [b"e/", name.as_bytes()].concat()
}
fn queue_prefix(target: &str) -> Vec<u8> {
    [b"q/", target.as_bytes(), b"\0"].concat()
}
fn queue_key(target: &str, index: u64, n: u32) -> Vec<u8> {
    [
        queue_prefix(target).as_slice(),
        &index.to_be_bytes(),
        &n.to_be_bytes(),
    ]
    .concat()
}
fn queued_key(target: &str) -> Vec<u8> {
    [b"x/nq/", target.as_bytes()].concat()
}
fn dropped_key(target: &str) -> Vec<u8> {
    [b"x/nd/", target.as_bytes()].concat()
}

/// Record that the command changed `bucket/key` (event `name`, as in records), with the
/// version `m` (absent for removals, whose `version_id` is given instead).
pub(super) fn object_event(
    o: &mut Overlay<'_>,
    name: &str,
    bucket: &str,
    key: &str,
    m: Option<&Manifest>,
    version_id: &str,
) {
    let (size, etag, vid) = match m {
        Some(m) => (m.size, m.etag.clone(), super::versions::version_id_of(m)),
        None => (0, String::new(), version_id),
    };
    o.events.push(NotificationEvent {
        version: RECORD_VERSION,
        bucket: bucket.to_string(),
        key: key.to_string(),
        event_name: name.to_string(),
        size,
        etag,
        version_id: if vid == "null" {
            String::new()
        } else {
            vid.to_string()
        },
        ..Default::default()
    });
}

/// Number the command's events (ids from `index`), stamp their time, and queue a copy for
/// every target a matching rule of the bucket names (one per target: the first matching
/// rule's id goes with it). Returns the numbered events, for watchers.
pub(super) fn enqueue(
    o: &mut Overlay<'_>,
    index: u64,
    now: u64,
    mut events: Vec<NotificationEvent>,
) -> Vec<NotificationEvent> {
    let mut configs: std::collections::BTreeMap<String, Option<NotificationConfig>> =
        Default::default();
    for (n, e) in events.iter_mut().enumerate() {
        e.id = notify::event_id(index, n as u32);
        e.time_ms = now;
        let cfg = configs
            .entry(e.bucket.clone())
            .or_insert_with(|| get_bucket(o, &e.bucket).and_then(|b| b.notification));
        let Some(cfg) = cfg else { continue };
        let mut done: Vec<&str> = Vec::new();
        for r in notify::matching_rules(cfg, &e.event_name, &e.key) {
            if done.contains(&r.target.as_str()) {
                continue;
            }
            done.push(&r.target);
            if get_u64(o, &queued_key(&r.target)) >= notify::MAX_QUEUED_PER_TARGET {
                super::add_u64(o, &dropped_key(&r.target), 1);
                continue;
            }
            let q = NotificationEvent {
                target: r.target.clone(),
                configuration_id: r.id.clone(),
                ..e.clone()
            };
            o.put(queue_key(&r.target, index, n as u32), q.encode_to_vec());
            super::add_u64(o, &queued_key(&r.target), 1);
        }
    }
    events
}

/// Replace or delete (config absent) a bucket's rules; every target named must exist.
pub(super) fn set_bucket_notification(o: &mut Overlay<'_>, c: &SetBucketNotificationCmd) -> Res {
    let mut cfg = get_bucket(o, &c.name).ok_or_else(|| StateError::NoSuchBucket(c.name.clone()))?;
    if let Some(n) = &c.config {
        notify::validate_config(n).map_err(|e| StateError::InvalidArgument(e.to_string()))?;
        if let Some(r) = n
            .rules
            .iter()
            .find(|r| o.get(&target_key(&r.target)).is_none())
        {
            return Err(StateError::InvalidArgument(format!(
                "Unable to validate the following destination configurations: {} (no notification target {:?})",
                r.arn, r.target
            )));
        }
    }
    cfg.notification = c.config.clone().filter(|n| !n.rules.is_empty());
    o.put(bucket_key(&c.name), cfg.encode_to_vec());
    Ok(CommandResult::default())
}

/// Add, replace or remove a target. A target some bucket's rules name is not removed.
/// Removing one drops its queue and counters.
pub(super) fn set_target(o: &mut Overlay<'_>, now: u64, c: &SetNotificationTargetCmd) -> Res {
    notify::validate_target_name(&c.name)
        .map_err(|e| StateError::InvalidArgument(e.to_string()))?;
    let key = target_key(&c.name);
    match &c.target {
        Some(t) => {
            notify::validate_target(t).map_err(|e| StateError::InvalidArgument(e.to_string()))?;
            if t.name != c.name {
                return Err(StateError::InvalidArgument("target name differs".into()));
            }
            let created_ms =
                get_msg::<NotificationTarget>(o, &key).map_or(now, |old| old.created_ms);
            let t = NotificationTarget {
                version: RECORD_VERSION,
                created_ms,
                ..t.clone()
            };
            o.put(key, t.encode_to_vec());
        }
        None => {
            if o.get(&key).is_none() {
                return Err(StateError::NoSuchConfiguration(format!(
                    "no notification target {:?}",
                    c.name
                )));
            }
            if let Some(b) = super::list_buckets(o).into_iter().find(|b| {
                b.notification
                    .as_ref()
                    .is_some_and(|n| n.rules.iter().any(|r| r.target == c.name))
            }) {
                return Err(StateError::InvalidBucketState(format!(
                    "notification target {:?} is used by bucket {}",
                    c.name, b.name
                )));
            }
            o.delete(key);
            let prefix = queue_prefix(&c.name);
            for (k, _) in o.scan(&prefix, prefix_end(&prefix).as_deref(), usize::MAX) {
                o.delete(k);
            }
            o.delete(queued_key(&c.name));
            o.delete(dropped_key(&c.name));
        }
    }
    Ok(CommandResult::default())
}

/// Remove the queued events of a target up to and including `up_to_id` (at most
/// [`notify::MAX_ACK`]); a stale acknowledgement removes nothing more.
pub(super) fn ack(o: &mut Overlay<'_>, c: &AckNotificationsCmd) -> Res {
    let (index, n) = notify::parse_event_id(&c.up_to_id)
        .ok_or_else(|| StateError::InvalidArgument(format!("bad event id {:?}", c.up_to_id)))?;
    let prefix = queue_prefix(&c.target);
    let end = [queue_key(&c.target, index, n), vec![0]].concat();
    let gone = o.scan(&prefix, Some(&end), notify::MAX_ACK);
    let count = gone.len() as i64;
    for (k, _) in gone {
        o.delete(k);
    }
    if count > 0 {
        super::add_u64(o, &queued_key(&c.target), -count);
    }
    Ok(CommandResult::default())
}

/// Every target with its queue figures.
pub fn list_targets(kv: &dyn KvRead) -> Vec<NotificationTargetStatus> {
    scan_msgs::<NotificationTarget>(kv, b"e/", usize::MAX)
        .into_iter()
        .map(|t| {
            let oldest_id = queued_events(kv, &t.name, None, 1)
                .pop()
                .map(|e| e.id)
                .unwrap_or_default();
            NotificationTargetStatus {
                queued: get_u64(kv, &queued_key(&t.name)),
                dropped: get_u64(kv, &dropped_key(&t.name)),
                oldest_id,
                target: Some(t),
            }
        })
        .collect()
}

/// One target.
pub fn get_target(kv: &dyn KvRead, name: &str) -> Option<NotificationTarget> {
    get_msg(kv, &target_key(name))
}

/// Up to `limit` queued events of `target`, oldest first, after the event `after_id` (None:
/// from the oldest).
pub fn queued_events(
    kv: &dyn KvRead,
    target: &str,
    after_id: Option<&str>,
    limit: usize,
) -> Vec<NotificationEvent> {
    let prefix = queue_prefix(target);
    let start = match after_id.and_then(notify::parse_event_id) {
        Some((index, n)) => [queue_key(target, index, n), vec![0]].concat(),
        None => prefix.clone(),
    };
    kv.scan(&start, prefix_end(&prefix).as_deref(), limit)
        .into_iter()
        .map(|(k, v)| super::records::must_decode(&k, &v))
        .collect()
}

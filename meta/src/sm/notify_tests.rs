//! Event notifications in the state machine: which events each command makes and what they
//! carry, the per-target queues (filters, one copy per target, the cap, acknowledgements,
//! removal of a target), session duplicates, and the command version that expresses them.

use anode_proto::command::Op;
use anode_proto::*;
use proptest::prelude::*;

use super::mem::MemState;
use super::versions::ENABLED;
use super::*;
use crate::notify;

const B: &str = "nbkt";

fn state() -> MemState {
    let mut st = MemState::new(1_700_000_000_000);
    st.propose(Op::CreateBucket(CreateBucketCmd {
        config: Some(BucketConfig {
            name: B.into(),
            ..Default::default()
        }),
    }))
    .unwrap();
    st
}

fn put_src(st: &mut MemState, key: &str, source: &str) -> Result<CommandResult, ErrorDetail> {
    st.propose(Op::PutObject(PutObjectCmd {
        parquet: None,
        parquet_copy: None,
        bucket: B.into(),
        key: key.into(),
        manifest: Some(Manifest {
            size: key.len() as u64,
            etag: format!("{:032x}", key.len()),
            inline_data: key.as_bytes().to_vec(),
            ..Default::default()
        }),
        if_match_etag: None,
        source: source.into(),
    }))
}

fn put(st: &mut MemState, key: &str) {
    put_src(st, key, "").unwrap();
}

fn delete(st: &mut MemState, key: &str) {
    st.propose(Op::DeleteObject(DeleteObjectCmd {
        bucket: B.into(),
        key: key.into(),
        ..Default::default()
    }))
    .unwrap();
}

fn add_target(st: &mut MemState, name: &str) {
    st.propose(Op::SetNotificationTarget(SetNotificationTargetCmd {
        name: name.into(),
        target: Some(NotificationTarget {
            name: name.into(),
            url: format!("http://127.0.0.1:1/{name}"),
            ..Default::default()
        }),
    }))
    .unwrap();
}

fn rule(id: &str, target: &str, events: &[&str], prefix: &str, suffix: &str) -> NotificationRule {
    NotificationRule {
        id: id.into(),
        kind: 1,
        arn: format!("arn:anode:sqs::{target}"),
        target: target.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        prefix: prefix.into(),
        suffix: suffix.into(),
    }
}

fn set_rules(
    st: &mut MemState,
    rules: Vec<NotificationRule>,
) -> Result<CommandResult, ErrorDetail> {
    st.propose(Op::SetBucketNotification(SetBucketNotificationCmd {
        name: B.into(),
        config: Some(NotificationConfig { rules }),
    }))
}

fn names(events: &[NotificationEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e.event_name.clone(), e.key.clone()))
        .collect()
}

fn queue(st: &MemState, target: &str) -> Vec<NotificationEvent> {
    queued_events(&st.kv, target, None, usize::MAX)
}

#[test]
fn every_object_change_makes_one_event_with_an_id_from_its_index() {
    let mut st = state();
    put(&mut st, "a");
    put_src(&mut st, "b", "Copy").unwrap();
    put_src(&mut st, "c", "Post").unwrap();
    delete(&mut st, "a");
    delete(&mut st, "missing"); // nothing removed: no event
    st.propose(Op::SetObjectTagging(SetObjectTaggingCmd {
        bucket: B.into(),
        key: "b".into(),
        tags: vec![Tag {
            key: "k".into(),
            value: "v".into(),
        }],
        ..Default::default()
    }))
    .unwrap();
    st.propose(Op::SetObjectTagging(SetObjectTaggingCmd {
        bucket: B.into(),
        key: "b".into(),
        ..Default::default()
    }))
    .unwrap();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        names(&st.events),
        [
            s("ObjectCreated:Put", "a"),
            s("ObjectCreated:Copy", "b"),
            s("ObjectCreated:Post", "c"),
            s("ObjectRemoved:Delete", "a"),
            s("ObjectTagging:Put", "b"),
            s("ObjectTagging:Delete", "b"),
        ]
    );
    // Ids: the raft index (bucket creation was index 1) and the place in the command.
    assert_eq!(st.events[0].id, notify::event_id(2, 0));
    assert_eq!(st.events[3].id, notify::event_id(5, 0));
    assert!(st.events.windows(2).all(|w| w[0].id < w[1].id));
    let e = &st.events[0];
    assert_eq!(
        (e.size, e.etag.as_str()),
        (1, format!("{:032x}", 1).as_str())
    );
    assert_eq!(e.time_ms, 1_700_000_000_000);
    assert!(e.version_id.is_empty(), "unversioned: no version id");
    // An unknown source is refused and makes nothing.
    let before = st.events.len();
    assert_eq!(
        put_src(&mut st, "d", "Teleport").unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    assert_eq!(st.events.len(), before);
    // No rules: nothing is queued.
    assert!(st
        .kv
        .scan(b"q/", prefix_end(b"q/").as_deref(), usize::MAX)
        .is_empty());
}

#[test]
fn versioned_deletes_markers_bulk_and_multipart() {
    let mut st = state();
    st.propose(Op::SetBucketVersioning(SetBucketVersioningCmd {
        name: B.into(),
        state: ENABLED,
    }))
    .unwrap();
    put(&mut st, "k");
    let vid = st.events[0].version_id.clone();
    assert!(!vid.is_empty());
    delete(&mut st, "k"); // a delete marker
    let marker = st.events[1].clone();
    assert_eq!(marker.event_name, "ObjectRemoved:DeleteMarkerCreated");
    assert!(!marker.version_id.is_empty() && marker.version_id != vid);
    // Deleting a version for good.
    st.propose(Op::DeleteObject(DeleteObjectCmd {
        bucket: B.into(),
        key: "k".into(),
        version_id: Some(vid.clone()),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(st.events[2].event_name, "ObjectRemoved:Delete");
    assert_eq!(st.events[2].version_id, vid);
    // A bulk delete: one event per entry, numbered within the command.
    put(&mut st, "x");
    put(&mut st, "y");
    st.events.clear();
    st.propose(Op::DeleteObjects(DeleteObjectsCmd {
        bucket: B.into(),
        keys: vec!["x".into(), "y".into()],
        ..Default::default()
    }))
    .unwrap();
    let idx = st.index;
    let ids: Vec<&str> = st.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [notify::event_id(idx, 0), notify::event_id(idx, 1)]);
    // A multipart completion.
    st.events.clear();
    let upload = "0123456789abcdef0123456789abcdef";
    st.propose(Op::CreateMultipart(CreateMultipartCmd {
        upload: Some(MultipartUpload {
            bucket: B.into(),
            key: "mp".into(),
            upload_id: upload.into(),
            ..Default::default()
        }),
    }))
    .unwrap();
    st.propose(Op::PutPart(PutPartCmd {
        bucket: B.into(),
        key: "mp".into(),
        upload_id: upload.into(),
        part: Some(PartRecord {
            part_number: 1,
            size: 3,
            etag: format!("{:032x}", 7),
            chunks: vec![ChunkRef {
                sha256: vec![9; 32],
                length: 3,
                servers: vec![1],
                uploaded_ms: 1,
            }],
            ..Default::default()
        }),
    }))
    .unwrap();
    st.propose(Op::CompleteMultipart(CompleteMultipartCmd {
        bucket: B.into(),
        key: "mp".into(),
        upload_id: upload.into(),
        parts: vec![CompletePart {
            part_number: 1,
            etag: format!("{:032x}", 7),
        }],
        if_match_etag: None,
    }))
    .unwrap();
    assert_eq!(
        names(&st.events),
        [(
            "ObjectCreated:CompleteMultipartUpload".to_string(),
            "mp".to_string()
        )]
    );
    assert!(st.events[0].etag.ends_with("-1"));
}

#[test]
fn rules_queue_one_copy_per_target_with_filters() {
    let mut st = state();
    // Rules need existing targets.
    let r = vec![rule(
        "logs",
        "hooks",
        &["s3:ObjectCreated:*"],
        "logs/",
        ".gz",
    )];
    assert_eq!(
        set_rules(&mut st, r.clone()).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    add_target(&mut st, "hooks");
    add_target(&mut st, "audit");
    set_rules(
        &mut st,
        vec![
            r[0].clone(),
            // Same target, overlapping: still one copy, the first rule's id.
            rule("all-hooks", "hooks", &["s3:ObjectCreated:Put"], "", ""),
            rule("audit", "audit", &["s3:ObjectRemoved:*"], "", ""),
        ],
    )
    .unwrap();
    put(&mut st, "logs/a.gz");
    put(&mut st, "logs/b.txt");
    put_src(&mut st, "other.gz", "Copy").unwrap(); // no rule takes a copy outside logs/
    delete(&mut st, "logs/a.gz");
    let hooks = queue(&st, "hooks");
    let got: Vec<(&str, &str)> = hooks
        .iter()
        .map(|e| (e.key.as_str(), e.configuration_id.as_str()))
        .collect();
    assert_eq!(got, [("logs/a.gz", "logs"), ("logs/b.txt", "all-hooks")]);
    assert!(hooks.iter().all(|e| e.target == "hooks"));
    let audit = queue(&st, "audit");
    assert_eq!(
        names(&audit),
        [("ObjectRemoved:Delete".into(), "logs/a.gz".into())]
    );
    let status = list_targets(&st.kv);
    let q: Vec<(String, u64)> = status
        .iter()
        .map(|s| (s.target.clone().unwrap().name, s.queued))
        .collect();
    assert_eq!(q, [("audit".to_string(), 1), ("hooks".to_string(), 2)]);
    assert_eq!(status[1].oldest_id, hooks[0].id);
    // The same events, queued and watched, carry the same ids.
    assert!(hooks.iter().all(|q| st.events.iter().any(|e| e.id == q.id)));

    // Acknowledgements remove up to the id, idempotently; a bad id is refused.
    let ack = |st: &mut MemState, id: &str| {
        st.propose(Op::AckNotifications(AckNotificationsCmd {
            target: "hooks".into(),
            up_to_id: id.into(),
        }))
    };
    ack(&mut st, &hooks[0].id).unwrap();
    assert_eq!(queue(&st, "hooks").len(), 1);
    ack(&mut st, &hooks[0].id).unwrap();
    assert_eq!(queue(&st, "hooks").len(), 1);
    assert_eq!(
        queued_events(&st.kv, "hooks", Some(&hooks[0].id), 10)[0].id,
        hooks[1].id
    );
    assert_eq!(
        ack(&mut st, "nonsense").unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    ack(&mut st, &hooks[1].id).unwrap();
    assert!(queue(&st, "hooks").is_empty());
    assert_eq!(list_targets(&st.kv)[1].queued, 0);

    // A target in use stays; without rules it goes, with its queue and counters.
    let rm = |st: &mut MemState, name: &str| {
        st.propose(Op::SetNotificationTarget(SetNotificationTargetCmd {
            name: name.into(),
            target: None,
        }))
    };
    assert_eq!(
        rm(&mut st, "audit").unwrap_err().code(),
        ErrorCode::InvalidBucketState
    );
    st.propose(Op::SetBucketNotification(SetBucketNotificationCmd {
        name: B.into(),
        config: None,
    }))
    .unwrap();
    assert!(get_bucket(&st.kv, B).unwrap().notification.is_none());
    rm(&mut st, "audit").unwrap();
    assert!(queue(&st, "audit").is_empty());
    assert!(st.kv.get(b"x/nq/audit").is_none());
    assert_eq!(
        rm(&mut st, "audit").unwrap_err().code(),
        ErrorCode::NoSuchConfiguration
    );
}

#[test]
fn a_session_duplicate_queues_nothing_twice_and_a_refusal_nothing() {
    let mut st = state();
    add_target(&mut st, "hooks");
    set_rules(
        &mut st,
        vec![rule("r", "hooks", &["s3:ObjectCreated:*"], "", "")],
    )
    .unwrap();
    let session = ClientSession {
        client_id: vec![7; 16],
        seq: 1,
        ..Default::default()
    };
    let op = Op::PutObject(PutObjectCmd {
        bucket: B.into(),
        key: "k".into(),
        manifest: Some(Manifest {
            size: 1,
            etag: format!("{:032x}", 1),
            inline_data: vec![1],
            ..Default::default()
        }),
        ..Default::default()
    });
    st.propose_in(Some(session.clone()), op.clone()).unwrap();
    st.propose_in(Some(session), op).unwrap();
    assert_eq!(queue(&st, "hooks").len(), 1);
    assert_eq!(st.events.len(), 1);
    // A refused write (conditional, the object exists) makes no event.
    let refused = st.propose(Op::PutObject(PutObjectCmd {
        parquet: None,
        parquet_copy: None,
        bucket: B.into(),
        key: "k".into(),
        manifest: Some(Manifest {
            size: 1,
            etag: format!("{:032x}", 1),
            inline_data: vec![1],
            ..Default::default()
        }),
        if_match_etag: Some(String::new()),
        source: String::new(),
    }));
    assert!(refused.is_err());
    assert_eq!(queue(&st, "hooks").len(), 1);
}

#[test]
fn the_notification_commands_need_version_7() {
    let set = Op::SetBucketNotification(SetBucketNotificationCmd::default());
    assert_eq!(command_version_for(&set), 7);
    let t = Op::SetNotificationTarget(SetNotificationTargetCmd::default());
    assert_eq!(command_version_for(&t), 7);
    let a = Op::AckNotifications(AckNotificationsCmd::default());
    assert_eq!(command_version_for(&a), 7);
    // A put naming its source stays at version 4: only events depend on it.
    let p = Op::PutObject(PutObjectCmd {
        source: "Copy".into(),
        manifest: Some(Manifest::default()),
        ..Default::default()
    });
    assert_eq!(command_version_for(&p), 4);
    let b = Op::CreateBucket(CreateBucketCmd {
        config: Some(BucketConfig {
            notification: Some(NotificationConfig::default()),
            ..Default::default()
        }),
    });
    assert_eq!(command_version_for(&b), 7);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a model: the queue of a target holds, in order, exactly the events whose key
    /// and name a rule of that target takes, minus what was acknowledged.
    #[test]
    fn queues_match_a_model(
        ops in proptest::collection::vec((0u8..4, 0u8..6), 1..40),
        ack_at in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let mut st = state();
        add_target(&mut st, "t");
        set_rules(&mut st, vec![
            rule("a", "t", &["s3:ObjectCreated:*"], "p/", ""),
            rule("b", "t", &["s3:ObjectRemoved:Delete"], "", ".x"),
        ]).unwrap();
        let mut model: Vec<String> = Vec::new();
        for (i, (kind, k)) in ops.iter().enumerate() {
            let key = match k % 3 { 0 => format!("p/{k}"), 1 => format!("q/{k}.x"), _ => format!("p/{k}.x") };
            st.events.clear();
            if *kind < 3 {
                put(&mut st, &key);
            } else {
                delete(&mut st, &key);
            }
            for e in &st.events {
                let takes = (e.event_name.starts_with("ObjectCreated:") && e.key.starts_with("p/"))
                    || (e.event_name == "ObjectRemoved:Delete" && e.key.ends_with(".x"));
                if takes {
                    model.push(e.id.clone());
                }
            }
            if ack_at[i] && !model.is_empty() {
                let upto = model[model.len() / 2].clone();
                st.propose(Op::AckNotifications(AckNotificationsCmd {
                    target: "t".into(),
                    up_to_id: upto.clone(),
                })).unwrap();
                model.retain(|id| *id > upto);
            }
            let got: Vec<String> = queue(&st, "t").into_iter().map(|e| e.id).collect();
            prop_assert_eq!(&got, &model);
            let queued = list_targets(&st.kv)[0].queued;
            prop_assert_eq!(queued, model.len() as u64);
        }
    }
}

#[test]
fn a_full_queue_drops_and_counts_new_events() {
    let mut st = state();
    add_target(&mut st, "hooks");
    set_rules(
        &mut st,
        vec![rule("r", "hooks", &["s3:ObjectCreated:*"], "", "")],
    )
    .unwrap();
    // As if MAX_QUEUED_PER_TARGET events were waiting.
    let full = notify::MAX_QUEUED_PER_TARGET.to_be_bytes().to_vec();
    st.kv
        .apply(&[crate::kv::Mutation::Put(b"x/nq/hooks".to_vec(), full)]);
    put(&mut st, "k");
    assert!(queue(&st, "hooks").is_empty());
    let s = &list_targets(&st.kv)[0];
    assert_eq!((s.queued, s.dropped), (notify::MAX_QUEUED_PER_TARGET, 1));
    // The watchers still get it.
    assert_eq!(st.events.last().unwrap().key, "k");
}

#[test]
fn lifecycle_expirations_are_named_as_such() {
    let mut st = state();
    add_target(&mut st, "hooks");
    set_rules(
        &mut st,
        vec![rule("lc", "hooks", &["s3:LifecycleExpiration:*"], "", "")],
    )
    .unwrap();
    put(&mut st, "tmp/a");
    put(&mut st, "keep/b");
    st.propose(Op::SetBucketLifecycle(SetBucketLifecycleCmd {
        name: B.into(),
        config: Some(LifecycleConfig {
            rules: vec![LifecycleRule {
                id: "r".into(),
                enabled: true,
                prefix: "tmp/".into(),
                expiration_days: 1,
                ..Default::default()
            }],
        }),
    }))
    .unwrap();
    let day = 1_000;
    let now = st.now_ms + 2 * day;
    st.now_ms = now;
    let batch = lifecycle_plan(&st.kv, B, now, day, 1, 1000, 100).expect("a pass is due");
    st.propose(Op::LifecycleBatch(batch)).unwrap();
    let q = queue(&st, "hooks");
    assert_eq!(
        names(&q),
        [(
            "LifecycleExpiration:Delete".to_string(),
            "tmp/a".to_string()
        )]
    );
    assert_eq!(q[0].time_ms, now);
}

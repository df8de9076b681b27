//! Client sessions: exactly-once application of retried writes (raft thesis 6.3).
//!
//! A client whose write reached a leader that crashed before answering cannot tell whether
//! the write committed, so it retries it on the new leader. Without sessions the retry is a
//! second command and applies a second time, possibly after later writes of other clients
//! (an overwrite reappearing). With sessions every mutating request carries a
//! [`ClientSession`]: a random 16-byte client id, the write's sequence number (the same on
//! every retry of one logical write) and the lowest sequence number the client still awaits.
//! The state machine keeps, per client, the answers of the writes it applied and returns the
//! recorded answer to a duplicate without applying it again.
//!
//! | key | value |
//! |---|---|
//! | `l/<client id>` | [`ClientSessionRecord`]: last activity, floor, number of answers |
//! | `a/<client id><seq u64be>` | [`SessionAnswer`]: the result of write `seq` |
//! | `t/<last active ms u64be><client id>` | empty: sessions in order of last activity |
//! | `x/sessions`, `x/session_answers` | numbers of sessions and of answers (u64be) |
//!
//! Decisions for a command with session `(c, seq, first_unanswered)` (all in [`apply`]):
//! - an answer is held for `(c, seq)`: a duplicate, answered with it, nothing applied;
//! - `seq` is below the session's floor: the client already had an answer (or gave up), or
//!   the answer was dropped to bound the table: refused with `SessionExpired`, not applied;
//! - otherwise the operation applies (a refusal too is an answer and is recorded).
//!
//! Then the session is touched: `last_active_ms`, the floor rises to `first_unanswered`, and
//! answers below the floor are deleted (the client holds no retry for them).
//!
//! Bounds, all decided by the command's `now_ms`, never a local clock (so every member
//! decides the same): a session idle for [`SESSION_IDLE_EXPIRY_MS`] is deleted (at most
//! [`EXPIRE_PER_COMMAND`] per command, oldest first); at most [`MAX_SESSIONS`] sessions (a new
//! one evicts the longest idle); at most [`MAX_ANSWERS_PER_SESSION`] answers per session (the
//! lowest is dropped and the floor raised past it, so its retry is refused, never reapplied);
//! at most [`MAX_ANSWERS_TOTAL`] answers in all (the longest idle other sessions are evicted).
//!
//! Limit: a retry that arrives after its session was expired or evicted finds no session and
//! applies as a new write. The client's retry budget (seconds) is far below the idle hour, and
//! eviction takes the longest idle session.

use anode_proto::*;
use prost::Message;

use super::records::{get_msg, must_decode};
use super::{add_u64, get_u64, prefix_end, Overlay, StateError};
use crate::kv::KvRead;

/// Length of a client id.
pub const CLIENT_ID_BYTES: usize = 16;
/// A session without a command for this long (by the commands' `now_ms`) is deleted.
pub const SESSION_IDLE_EXPIRY_MS: u64 = 60 * 60 * 1000;
/// Most sessions held; a new session beyond it evicts the one idle longest.
pub const MAX_SESSIONS: u64 = 4096;
/// Most answers held per session; beyond it the lowest is dropped (its retry is refused).
/// An answer stays until the client's `first_unanswered` passes it, so one write waiting on a
/// retry keeps every later answer of its client: a busy gateway at 500 writes/s fills this in
/// 16 s, longer than the client's retry budget (15 s).
pub const MAX_ANSWERS_PER_SESSION: u64 = 8192;
/// Most answers held over all sessions; beyond it the sessions idle longest (other than the
/// writing one) are evicted whole.
pub const MAX_ANSWERS_TOTAL: u64 = 65_536;
/// Most idle sessions deleted by one command (bounds the work of one apply).
pub const EXPIRE_PER_COMMAND: usize = 4;

const STAT_SESSIONS: &[u8] = b"x/sessions";
const STAT_ANSWERS: &[u8] = b"x/session_answers";

fn session_key(client: &[u8]) -> Vec<u8> {
    [b"l/", client].concat()
}
fn answer_prefix(client: &[u8]) -> Vec<u8> {
    [b"a/", client].concat()
}
fn answer_key(client: &[u8], seq: u64) -> Vec<u8> {
    [answer_prefix(client).as_slice(), &seq.to_be_bytes()].concat()
}
fn idle_key(ms: u64, client: &[u8]) -> Vec<u8> {
    [b"t/".as_slice(), &ms.to_be_bytes(), client].concat()
}

/// Length of an `l/` key, an `a/` key and a `t/` key.
pub(super) const SESSION_KEY_LEN: usize = 2 + CLIENT_ID_BYTES;
pub(super) const ANSWER_KEY_LEN: usize = 2 + CLIENT_ID_BYTES + 8;
pub(super) const IDLE_KEY_LEN: usize = 2 + 8 + CLIENT_ID_BYTES;

/// A session as the command carries it, checked: what [`apply`] may act on.
pub(super) fn validate(s: &ClientSession) -> Result<&ClientSession, StateError> {
    if s.client_id.len() != CLIENT_ID_BYTES {
        return Err(StateError::BadCommand(format!(
            "client id of {} bytes (want {CLIENT_ID_BYTES})",
            s.client_id.len()
        )));
    }
    if s.seq == 0 || s.first_unanswered > s.seq {
        return Err(StateError::BadCommand(format!(
            "session sequence {} with first unanswered {}",
            s.seq, s.first_unanswered
        )));
    }
    Ok(s)
}

/// What to do with a command of session `s`.
pub(super) enum Check {
    /// Not seen: apply it.
    Apply,
    /// Applied before: this is its recorded result.
    Duplicate(Box<CommandResult>),
    /// Below the floor: refuse without applying.
    Forgotten,
}

/// Decide on a command of session `s` (see the module docs).
pub(super) fn check(kv: &dyn KvRead, s: &ClientSession) -> Check {
    let Some(rec) = get_msg::<ClientSessionRecord>(kv, &session_key(&s.client_id)) else {
        return Check::Apply;
    };
    if let Some(a) = get_msg::<SessionAnswer>(kv, &answer_key(&s.client_id, s.seq)) {
        return Check::Duplicate(Box::new(a.result.unwrap_or_default()));
    }
    if s.seq < rec.floor_seq {
        return Check::Forgotten;
    }
    Check::Apply
}

/// After a command of session `s` at `now`: record `answer` (the result of a write applied
/// now; `None` for a duplicate or a refused one), refresh the session's activity, raise its
/// floor and drop the answers below it, and keep the bounds.
pub(super) fn touch(
    o: &mut Overlay<'_>,
    now: u64,
    s: &ClientSession,
    answer: Option<&CommandResult>,
) {
    let client = s.client_id.as_slice();
    let key = session_key(client);
    let mut rec = match get_msg::<ClientSessionRecord>(o, &key) {
        Some(rec) => {
            o.delete(idle_key(rec.last_active_ms, client));
            rec
        }
        None => {
            if get_u64(o, STAT_SESSIONS) >= MAX_SESSIONS {
                evict_idlest(o);
            }
            add_u64(o, STAT_SESSIONS, 1);
            ClientSessionRecord {
                version: RECORD_VERSION,
                client_id: client.to_vec(),
                ..Default::default()
            }
        }
    };
    // Never backwards (a new leader's clock may be behind): the idle index stays ordered.
    rec.last_active_ms = rec.last_active_ms.max(now);
    o.put(idle_key(rec.last_active_ms, client), Vec::new());
    if let Some(result) = answer {
        let a = SessionAnswer {
            version: RECORD_VERSION,
            seq: s.seq,
            result: Some(result.clone()),
        };
        let key = answer_key(client, s.seq);
        if o.get(&key).is_none() {
            rec.answers += 1;
            add_u64(o, STAT_ANSWERS, 1);
        }
        o.put(key, a.encode_to_vec());
    }
    if s.first_unanswered > rec.floor_seq {
        rec.floor_seq = s.first_unanswered;
        drop_answers_below(o, &mut rec);
    }
    while rec.answers > MAX_ANSWERS_PER_SESSION {
        let Some(lowest) = lowest_answer(o, client) else {
            break;
        };
        rec.floor_seq = rec.floor_seq.max(lowest + 1);
        drop_answers_below(o, &mut rec);
    }
    o.put(key, rec.encode_to_vec());
    while get_u64(o, STAT_ANSWERS) > MAX_ANSWERS_TOTAL {
        let Some(victim) = idlest_other_than(o, client) else {
            break;
        };
        remove(o, &victim);
    }
}

/// The client of the session idle longest, other than `client`.
fn idlest_other_than(kv: &dyn KvRead, client: &[u8]) -> Option<Vec<u8>> {
    kv.scan(b"t/", prefix_end(b"t/").as_deref(), 2)
        .into_iter()
        .map(|(k, _)| client_of_idle_key(&k).to_vec())
        .find(|c| c != client)
}

/// The sequence number of the lowest answer held for `client`.
fn lowest_answer(kv: &dyn KvRead, client: &[u8]) -> Option<u64> {
    let prefix = answer_prefix(client);
    let (k, _) = kv
        .scan(&prefix, prefix_end(&prefix).as_deref(), 1)
        .into_iter()
        .next()?;
    Some(u64::from_be_bytes(k[prefix.len()..].try_into().ok()?))
}

/// Delete the answers of `rec`'s client below its floor.
fn drop_answers_below(o: &mut Overlay<'_>, rec: &mut ClientSessionRecord) {
    if rec.answers == 0 {
        return;
    }
    let start = answer_key(&rec.client_id, 0);
    let end = answer_key(&rec.client_id, rec.floor_seq);
    let limit = usize::try_from(rec.answers).unwrap_or(usize::MAX);
    for (k, _) in o.scan(&start, Some(&end), limit) {
        o.delete(k);
        rec.answers = rec.answers.saturating_sub(1);
        add_u64(o, STAT_ANSWERS, -1);
    }
}

/// Delete one session with its answers and index entry.
fn remove(o: &mut Overlay<'_>, client: &[u8]) {
    let key = session_key(client);
    let Some(rec) = get_msg::<ClientSessionRecord>(o, &key) else {
        return;
    };
    let prefix = answer_prefix(client);
    let limit = usize::try_from(rec.answers).unwrap_or(usize::MAX);
    for (k, _) in o.scan(&prefix, prefix_end(&prefix).as_deref(), limit) {
        o.delete(k);
    }
    o.delete(idle_key(rec.last_active_ms, client));
    o.delete(key);
    add_u64(o, STAT_SESSIONS, -1);
    add_u64(o, STAT_ANSWERS, -(rec.answers as i64));
}

fn client_of_idle_key(k: &[u8]) -> &[u8] {
    &k[2 + 8..]
}

/// Evict the session idle longest (the table is full).
fn evict_idlest(o: &mut Overlay<'_>) {
    if let Some((k, _)) = o.scan(b"t/", prefix_end(b"t/").as_deref(), 1).pop() {
        remove(o, client_of_idle_key(&k));
    }
}

/// Delete up to [`EXPIRE_PER_COMMAND`] sessions idle for [`SESSION_IDLE_EXPIRY_MS`] at `now`.
pub(super) fn expire(o: &mut Overlay<'_>, now: u64) {
    let Some(cutoff) = now.checked_sub(SESSION_IDLE_EXPIRY_MS) else {
        return;
    };
    let end = idle_key(cutoff, &[0; CLIENT_ID_BYTES]);
    for (k, _) in o.scan(b"t/", Some(&end), EXPIRE_PER_COMMAND) {
        remove(o, client_of_idle_key(&k));
    }
}

/// The session of `client`, if held (for tests and `anode ctl`).
pub fn get_session(kv: &dyn KvRead, client: &[u8]) -> Option<ClientSessionRecord> {
    get_msg(kv, &session_key(client))
}

/// Check the session table: every session has its index entry and its count of answers, no
/// answer or index entry lacks a session, no answer is below its session's floor, the
/// counter matches, and the bounds hold. Part of [`super::check_invariants`].
pub(super) fn check_all(kv: &dyn KvRead) -> Result<(), String> {
    let sessions = kv.scan(b"l/", prefix_end(b"l/").as_deref(), usize::MAX);
    let n = sessions.len() as u64;
    if n != get_u64(kv, STAT_SESSIONS) || n > MAX_SESSIONS {
        return Err(format!(
            "{n} sessions, counter {} (max {MAX_SESSIONS})",
            get_u64(kv, STAT_SESSIONS)
        ));
    }
    let mut answers_total = 0u64;
    for (k, v) in &sessions {
        let rec: ClientSessionRecord = must_decode(k, v);
        let client = &k[2..];
        if kv.get(&idle_key(rec.last_active_ms, client)).is_none() {
            return Err(format!("session {} has no idle entry", hex::encode(client)));
        }
        let prefix = answer_prefix(client);
        let answers = kv.scan(&prefix, prefix_end(&prefix).as_deref(), usize::MAX);
        if answers.len() as u64 != rec.answers || rec.answers > MAX_ANSWERS_PER_SESSION {
            return Err(format!(
                "session {} counts {} answers, holds {}",
                hex::encode(client),
                rec.answers,
                answers.len()
            ));
        }
        for (ak, av) in &answers {
            let a: SessionAnswer = must_decode(ak, av);
            if a.seq < rec.floor_seq || ak[prefix.len()..] != a.seq.to_be_bytes() {
                return Err(format!("answer {} below floor {}", a.seq, rec.floor_seq));
            }
        }
        answers_total += rec.answers;
    }
    let all_answers = kv
        .scan(b"a/", prefix_end(b"a/").as_deref(), usize::MAX)
        .len() as u64;
    let counted = get_u64(kv, STAT_ANSWERS);
    if counted != answers_total || counted > MAX_ANSWERS_TOTAL {
        return Err(format!(
            "answer counter {counted}, {answers_total} held (max {MAX_ANSWERS_TOTAL})"
        ));
    }
    let all_idle = kv
        .scan(b"t/", prefix_end(b"t/").as_deref(), usize::MAX)
        .len() as u64;
    if all_answers != answers_total || all_idle != n {
        return Err(format!(
            "{all_answers} answers and {all_idle} idle entries for {n} sessions holding \
             {answers_total} answers"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use anode_proto::command::Op;
    use proptest::prelude::*;

    use super::*;
    use crate::kv::MemKv;
    use crate::sm::{apply, check_invariants, get_object, StateError};

    /// The state machine over a `MemKv`, with a clock the test moves.
    struct St {
        kv: MemKv,
        index: u64,
        now: u64,
    }

    impl St {
        fn new() -> St {
            let mut st = St {
                kv: MemKv::new(),
                index: 0,
                now: 1_000,
            };
            let b = Op::CreateBucket(CreateBucketCmd {
                config: Some(BucketConfig {
                    name: "bkt".into(),
                    ..Default::default()
                }),
            });
            assert_eq!(st.run(None, b).error, None);
            st
        }

        fn run(&mut self, session: Option<ClientSession>, op: Op) -> CommandResult {
            let res = self.run_unchecked(session, op);
            check_invariants(&self.kv).unwrap_or_else(|e| panic!("after {}: {e}", self.index));
            res
        }

        /// [`St::run`] without the full invariant scan (for long runs; check at the end).
        fn run_unchecked(&mut self, session: Option<ClientSession>, op: Op) -> CommandResult {
            self.index += 1;
            self.now += 10;
            let cmd = Command {
                version: COMMAND_VERSION,
                now_ms: self.now,
                session,
                op: Some(op),
            };
            let (muts, res) = apply(&self.kv, self.index, &cmd);
            self.kv.apply(&muts);
            res
        }

        /// The namespace: every key but the session table's.
        fn namespace(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
            let session_key = |k: &[u8]| {
                [&b"l/"[..], b"a/", b"t/"].contains(&k.get(..2).unwrap_or_default())
                    || k == STAT_SESSIONS
                    || k == STAT_ANSWERS
            };
            let mut ns = self.kv.map.clone();
            ns.retain(|k, _| !session_key(k));
            ns
        }
    }

    fn client(n: u8) -> Vec<u8> {
        vec![n; CLIENT_ID_BYTES]
    }

    fn s(c: u8, seq: u64, first_unanswered: u64) -> Option<ClientSession> {
        Some(ClientSession {
            client_id: client(c),
            seq,
            first_unanswered,
        })
    }

    fn put(key: &str, etag: &str) -> Op {
        Op::PutObject(PutObjectCmd {
            parquet: None,
            parquet_copy: None,
            bucket: "bkt".into(),
            key: key.into(),
            manifest: Some(Manifest {
                size: 1,
                etag: etag.into(),
                inline_data: b"x".to_vec(),
                ..Default::default()
            }),
            if_match_etag: None,
            source: String::new(),
        })
    }

    fn del(key: &str) -> Op {
        Op::DeleteObject(DeleteObjectCmd {
            bucket: "bkt".into(),
            key: key.into(),
            ..Default::default()
        })
    }

    fn etag(st: &St, key: &str) -> Option<String> {
        get_object(&st.kv, "bkt", key).ok().map(|m| m.etag)
    }

    /// The leader-failover anomaly: a put whose answer was lost is retried after another
    /// client overwrote the key; the retry must not bring the old value back.
    #[test]
    fn a_retried_put_after_a_later_overwrite_is_not_applied_again() {
        let mut st = St::new();
        let first = st.run(s(1, 1, 1), put("k", "aaa"));
        assert_eq!(first.error, None);
        assert_eq!(st.run(s(2, 1, 1), put("k", "bbb")).error, None);
        let before = st.namespace();
        let retry = st.run(s(1, 1, 1), put("k", "aaa"));
        assert_eq!(retry, first, "the duplicate gets the first answer");
        assert_eq!(st.namespace(), before, "and changes nothing");
        assert_eq!(etag(&st, "k").as_deref(), Some("bbb"));
        // The next write of client 1 is new.
        assert_eq!(st.run(s(1, 2, 2), del("k")).deleted_keys, vec!["k"]);
        assert_eq!(etag(&st, "k"), None);
    }

    #[test]
    fn a_refusal_is_an_answer_too() {
        let mut st = St::new();
        let ok = st.run(s(1, 1, 1), put("k", "aaa"));
        assert_eq!(ok.error, None);
        let cond = |etag: &str| {
            Op::PutObject(PutObjectCmd {
                if_match_etag: Some(etag.into()),
                ..match put("k", "ccc") {
                    Op::PutObject(c) => c,
                    _ => unreachable!(),
                }
            })
        };
        // "Must not exist" fails; its retry after a delete must still fail, not apply.
        let refused = st.run(s(1, 2, 2), cond(""));
        assert_eq!(
            refused.error.as_ref().unwrap().code(),
            ErrorCode::PreconditionFailed
        );
        assert_eq!(st.run(s(2, 1, 1), del("k")).error, None);
        assert_eq!(st.run(s(1, 2, 2), cond("")), refused);
        assert_eq!(etag(&st, "k"), None);
    }

    #[test]
    fn answers_below_the_first_unanswered_are_forgotten_and_their_copies_refused() {
        let mut st = St::new();
        assert_eq!(st.run(s(1, 1, 1), put("k", "aaa")).error, None);
        // Writes 2 and 3 are in flight together; 3 is answered first.
        assert_eq!(st.run(s(1, 3, 2), put("k", "ccc")).error, None);
        assert_eq!(st.run(s(1, 2, 2), put("j", "bbb")).error, None);
        let rec = get_session(&st.kv, &client(1)).unwrap();
        assert_eq!((rec.floor_seq, rec.answers), (2, 2));
        // Write 4 says everything below it was answered: 2 and 3 are dropped.
        assert_eq!(st.run(s(1, 4, 4), del("j")).error, None);
        let rec = get_session(&st.kv, &client(1)).unwrap();
        assert_eq!((rec.floor_seq, rec.answers), (4, 1));
        // A late copy of write 3 (say, a proposal of the old leader) is refused, not applied.
        let before = st.namespace();
        let late = st.run(s(1, 3, 2), put("k", "ccc"));
        assert_eq!(late.error.unwrap().code(), ErrorCode::SessionExpired);
        assert_eq!(st.namespace(), before);
    }

    #[test]
    fn malformed_sessions_are_refused_before_anything_applies() {
        let mut st = St::new();
        let before = st.kv.clone();
        for bad in [
            Some(ClientSession {
                client_id: vec![1; 3],
                seq: 1,
                first_unanswered: 1,
            }),
            s(1, 0, 0),
            s(1, 2, 3),
        ] {
            let r = st.run(bad, put("k", "aaa"));
            assert_eq!(r.error.unwrap().code(), ErrorCode::BadCommand);
        }
        assert_eq!(st.kv, before);
    }

    #[test]
    fn idle_sessions_expire_by_command_time() {
        let mut st = St::new();
        assert_eq!(st.run(s(1, 1, 1), put("k", "aaa")).error, None);
        assert_eq!(st.run(s(2, 1, 1), put("j", "aaa")).error, None);
        st.now += SESSION_IDLE_EXPIRY_MS - 15;
        // Client 2 is still within the hour (it ran 10 ms after client 1).
        assert_eq!(st.run(None, del("x")).error, None);
        assert!(get_session(&st.kv, &client(1)).is_none());
        assert!(get_session(&st.kv, &client(2)).is_some());
        st.now += 10;
        assert_eq!(st.run(None, del("x")).error, None);
        assert!(get_session(&st.kv, &client(2)).is_none());
        assert!(st
            .kv
            .map
            .keys()
            .all(|k| !k.starts_with(b"a/") && !k.starts_with(b"t/")));
        assert_eq!(get_u64(&st.kv, STAT_SESSIONS), 0);
        assert_eq!(get_u64(&st.kv, STAT_ANSWERS), 0);
    }

    #[test]
    fn the_table_is_bounded_by_sessions_and_answers() {
        let mut st = St::new();
        // MAX_ANSWERS_PER_SESSION + 1 writes in flight at once: the lowest answer goes.
        for seq in 1..=MAX_ANSWERS_PER_SESSION + 1 {
            let r = st.run_unchecked(s(1, seq, 1), put("k", "aaa"));
            assert_eq!(r.error, None);
        }
        check_invariants(&st.kv).unwrap();
        let rec = get_session(&st.kv, &client(1)).unwrap();
        assert_eq!((rec.answers, rec.floor_seq), (MAX_ANSWERS_PER_SESSION, 2));
        let r = st.run(s(1, 1, 1), put("k", "zzz"));
        assert_eq!(r.error.unwrap().code(), ErrorCode::SessionExpired);
        assert_eq!(etag(&st, "k").as_deref(), Some("aaa"));
        // More sessions than the table holds: the idlest goes first.
        for n in 0..MAX_SESSIONS {
            let mut id = [0u8; CLIENT_ID_BYTES];
            id[..8].copy_from_slice(&(n + 1_000).to_be_bytes());
            let session = ClientSession {
                client_id: id.to_vec(),
                seq: 1,
                first_unanswered: 1,
            };
            assert_eq!(st.run_unchecked(Some(session), del("x")).error, None);
        }
        check_invariants(&st.kv).unwrap();
        assert_eq!(get_u64(&st.kv, STAT_SESSIONS), MAX_SESSIONS);
        assert!(get_session(&st.kv, &client(1)).is_none(), "idlest evicted");
    }

    #[test]
    fn answers_over_all_sessions_are_bounded_by_evicting_idle_sessions() {
        let mut st = St::new();
        let per = MAX_ANSWERS_PER_SESSION;
        let sessions = MAX_ANSWERS_TOTAL / per;
        // `sessions` clients each with a full table of unanswered writes: at the limit.
        for c in 1..=sessions as u8 {
            for seq in 1..=per {
                st.run_unchecked(s(c, seq, 1), Op::Noop(NoopCmd {}));
            }
        }
        check_invariants(&st.kv).unwrap();
        assert_eq!(get_u64(&st.kv, STAT_ANSWERS), MAX_ANSWERS_TOTAL);
        // One more answer: client 1, idle longest, goes; the writer keeps its answer.
        let writer = sessions as u8 + 1;
        assert_eq!(st.run(s(writer, 1, 1), Op::Noop(NoopCmd {})).error, None);
        assert!(get_session(&st.kv, &client(1)).is_none());
        assert!(get_session(&st.kv, &client(2)).is_some());
        assert_eq!(get_session(&st.kv, &client(writer)).unwrap().answers, 1);
        assert_eq!(get_u64(&st.kv, STAT_ANSWERS), MAX_ANSWERS_TOTAL - per + 1);
    }

    #[test]
    fn a_retried_create_multipart_names_the_upload_of_its_first_copy() {
        let mut st = St::new();
        let create = |id: &str| {
            Op::CreateMultipart(CreateMultipartCmd {
                upload: Some(MultipartUpload {
                    bucket: "bkt".into(),
                    key: "k".into(),
                    upload_id: id.into(),
                    ..Default::default()
                }),
            })
        };
        let id1 = "0123456789abcdef0123456789abcdef";
        let id2 = "fedcba9876543210fedcba9876543210";
        assert_eq!(st.run(s(1, 1, 1), create(id1)).upload_id, id1);
        // The leader picks a new random id for the retry; the answer is the first one.
        assert_eq!(st.run(s(1, 1, 1), create(id2)).upload_id, id1);
        assert!(crate::sm::get_upload(&st.kv, "bkt", "k", id2).is_none());
    }

    #[test]
    fn a_retried_create_key_names_the_first_key_and_no_secret_is_kept() {
        let mut st = St::new();
        let create = |ak: &str| {
            Op::CreateKey(CreateKeyCmd {
                key: Some(AccessKey {
                    access_key: ak.into(),
                    secret_key: "s3cr3t".into(),
                    ..Default::default()
                }),
            })
        };
        let first = st.run(s(1, 1, 1), create("AK1"));
        assert_eq!(first.access_key.as_ref().unwrap().access_key, "AK1");
        let retry = st.run(s(1, 1, 1), create("AK2"));
        assert_eq!(retry, first);
        assert!(crate::sm::get_key(&st.kv, "AK2").is_none());
        assert_eq!(
            crate::sm::get_key(&st.kv, "AK1").unwrap().secret_key,
            "s3cr3t"
        );
        let secret_kept = st
            .kv
            .map
            .iter()
            .any(|(k, v)| k.starts_with(b"a/") && v.windows(6).any(|w| w == b"s3cr3t"));
        assert!(!secret_kept, "a session answer holds the secret");
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// A new write of `client` on `key` (put when `put`, else delete).
        Write { client: u8, key: u8, put: bool },
        /// A retry of the `back`-th latest still-unacknowledged write of `client`.
        Retry { client: u8, back: usize },
        /// `client` acknowledges all its writes (its next write says so).
        Ack { client: u8 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..3, 0u8..3, any::<bool>())
                .prop_map(|(client, key, put)| Step::Write { client, key, put }),
            3 => (0u8..3, 0usize..4).prop_map(|(client, back)| Step::Retry { client, back }),
            1 => (0u8..3).prop_map(|client| Step::Ack { client }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Any interleaving of writes and retries of unanswered writes leaves the namespace
        /// as applying each write once (the model, without sessions), and every retry is
        /// answered with the result of its first application.
        #[test]
        fn duplicates_apply_once(steps in prop::collection::vec(step(), 1..60)) {
            let mut st = St::new();
            let mut model = St::new();
            let mut next_seq = [1u64; 3];
            let mut first_unanswered = [1u64; 3];
            // Per client: (seq, op, first answer) of writes not yet acknowledged.
            let mut open: [Vec<(u64, Op, CommandResult)>; 3] = Default::default();
            for step in steps {
                match step {
                    Step::Write { client, key, put: is_put } => {
                        let c = client as usize;
                        let key = format!("k{key}");
                        let seq = next_seq[c];
                        next_seq[c] += 1;
                        let op = if is_put { put(&key, &format!("{c}-{seq}")) } else { del(&key) };
                        let r = st.run(s(client, seq, first_unanswered[c]), op.clone());
                        let m = model.run(None, op.clone());
                        prop_assert_eq!(&r, &m);
                        open[c].push((seq, op, r));
                    }
                    Step::Retry { client, back } => {
                        let c = client as usize;
                        let Some(i) = open[c].len().checked_sub(back + 1) else { continue };
                        let (seq, op, first) = open[c][i].clone();
                        let r = st.run(s(client, seq, first_unanswered[c]), op);
                        prop_assert_eq!(r, first);
                        // The model's clock and index move on as if a no-op had committed.
                        model.run(None, Op::Noop(NoopCmd {}));
                    }
                    Step::Ack { client } => {
                        let c = client as usize;
                        open[c].clear();
                        first_unanswered[c] = next_seq[c];
                    }
                }
                prop_assert_eq!(st.namespace(), model.namespace());
            }
        }
    }

    #[test]
    fn forgotten_is_reported_as_session_expired() {
        let e = StateError::SessionExpired(7);
        assert_eq!(e.code(), ErrorCode::SessionExpired);
        assert_eq!(e.detail().resource, "7");
    }
}

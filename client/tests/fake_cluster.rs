//! The client against an in-process fake cluster (real gRPC on loopback): write path durability
//! and failover, verified reads with read repair, ranges, leader redirects, multipart, copy,
//! listing. Every test is bounded in time.

mod support;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anode_client::chunker::{etag_hex, md5};
use anode_client::{Client, ClientConfig, ClientError, CompletePart, ErrorCode, PutOptions};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng};
use support::{Cluster, BUCKET};

const CHUNK: usize = 8 << 10;
const INLINE: usize = 1 << 10;

fn cfg() -> ClientConfig {
    ClientConfig {
        chunk_size_bytes: CHUNK,
        inline_max_bytes: INLINE,
        put_parallelism: 4,
        rpc_timeout: Duration::from_secs(2),
        retry_budget: Duration::from_secs(2),
        tls: Some(support::tls(anode_tls::Role::Client, "1")),
        ..ClientConfig::default()
    }
}

async fn client(c: &Cluster) -> Client {
    Client::with_config(vec![c.master_addr.clone()], cfg())
        .await
        .unwrap()
}

fn seed() -> u64 {
    let seed = std::env::var("ANODE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("ANODE_SEED={seed}");
    seed
}

fn body(len: usize, seed: u64) -> Bytes {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    Bytes::from(v)
}

/// Split `data` into a stream of random-sized pieces.
fn pieces(
    data: Bytes,
    seed: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = rng.gen_range(1..=3 * CHUNK / 2).min(data.len() - at);
        out.push(Ok(data.slice(at..at + n)));
        at += n;
    }
    futures::stream::iter(out)
}

async fn read_all(s: anode_client::ByteStream) -> Result<Vec<u8>, ClientError> {
    let parts: Vec<Bytes> = s.try_collect().await?;
    Ok(parts.concat())
}

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_round_trip_around_boundaries() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        let cl = client(&c).await;
        let seed = seed();
        for (i, len) in [
            0,
            1,
            INLINE,
            INLINE + 1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 7,
        ]
        .into_iter()
        .enumerate()
        {
            let data = body(len, seed + i as u64);
            let key = format!("k{len}");
            let m = cl
                .put_object(
                    BUCKET,
                    &key,
                    pieces(data.clone(), seed),
                    PutOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(m.size, len as u64);
            assert_eq!(m.etag, etag_hex(&md5(&data)));
            assert!(m.object_version > 0);
            if len <= INLINE {
                assert!(m.chunks.is_empty(), "len {len} should be inline");
                assert_eq!(m.inline_data, data.to_vec());
            } else {
                assert!(m.inline_data.is_empty());
                assert_eq!(m.chunks.len(), len.div_ceil(CHUNK));
                for ch in &m.chunks {
                    let mut ids = ch.servers.clone();
                    ids.sort_unstable();
                    ids.dedup();
                    assert_eq!(
                        ids.len(),
                        3,
                        "every chunk needs 3 distinct copies: {:?}",
                        ch.servers
                    );
                    for id in ids {
                        assert!(c.server(id).blobs.lock().contains_key(&ch.sha256));
                    }
                }
            }
            let (head, stream) = cl.get_object(BUCKET, &key, None).await.unwrap();
            assert_eq!(head.etag, m.etag);
            assert_eq!(
                read_all(stream).await.unwrap(),
                data.to_vec(),
                "len {len} seed {seed}"
            );
        }
    })
    .await
}

/// The body stream of a GET is built inside the request (its id in scope) and read after the
/// handler returned, as hyper writes an S3 response: every chunk read still carries the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_reads_of_a_streamed_body_carry_the_request_id() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        let cl = client(&c).await;
        let data = body(4 * CHUNK + 3, seed());
        cl.put_object(
            BUCKET,
            "streamed",
            pieces(data.clone(), 1),
            PutOptions::default(),
        )
        .await
        .unwrap();
        let (_, stream) = anode_client::trace::with_request_id("req-stream-1".into(), async {
            cl.get_object(BUCKET, "streamed", None).await.unwrap()
        })
        .await;
        assert_eq!(anode_client::trace::current_request_id(), None);
        // Polled from another task, outside the request's scope.
        let got = tokio::spawn(read_all(stream)).await.unwrap().unwrap();
        assert_eq!(got, data.to_vec());
        let ids: Vec<String> = (1..=3)
            .flat_map(|i| c.server(i).get_request_ids.lock().clone())
            .collect();
        assert!(ids.len() >= 5, "a GetChunk per chunk at least: {ids:?}");
        assert!(ids.iter().all(|id| id == "req-stream-1"), "{ids:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_read_only_what_they_need() {
    bounded(async {
        let c = Cluster::start(3, 2).await;
        let cl = client(&c).await;
        let seed = seed();
        let data = body(5 * CHUNK + 123, seed);
        let m = cl
            .put_object_bytes(BUCKET, "r", data.clone(), PutOptions::default())
            .await
            .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..40 {
            let a = rng.gen_range(0..data.len() as u64);
            let b = rng.gen_range(a..data.len() as u64 + 50);
            let gets_before: usize = c
                .servers
                .iter()
                .map(|s| s.2.gets.load(Ordering::SeqCst))
                .sum();
            let got = read_all(cl.read_manifest(BUCKET, &m, Some((a, b))))
                .await
                .unwrap();
            let end = (b as usize).min(data.len() - 1);
            assert_eq!(
                got,
                data[a as usize..=end].to_vec(),
                "range {a}-{b} seed {seed}"
            );
            let gets: usize = c
                .servers
                .iter()
                .map(|s| s.2.gets.load(Ordering::SeqCst))
                .sum::<usize>()
                - gets_before;
            let needed = end / CHUNK - a as usize / CHUNK + 1;
            assert_eq!(
                gets, needed,
                "range {a}-{b} fetched {gets} chunks, needs {needed}"
            );
        }
        let err = read_all(cl.read_manifest(
            BUCKET,
            &m,
            Some((data.len() as u64, data.len() as u64 + 5)),
        ))
        .await;
        assert!(matches!(err, Err(ClientError::InvalidArgument(_))));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_is_replaced_before_commit() {
    bounded(async {
        let c = Cluster::start(4, 3).await;
        c.server(2).down.store(true, Ordering::SeqCst);
        let cl = client(&c).await;
        let data = body(4 * CHUNK, seed());
        let m = cl
            .put_object_bytes(BUCKET, "x", data.clone(), PutOptions::default())
            .await
            .unwrap();
        for ch in &m.chunks {
            assert_eq!(ch.servers.len(), 3);
            assert!(!ch.servers.contains(&2), "{:?}", ch.servers);
        }
        let (_, s) = cl.get_object(BUCKET, "x", None).await.unwrap();
        assert_eq!(read_all(s).await.unwrap(), data.to_vec());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_servers_commits_nothing() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        c.server(1).down.store(true, Ordering::SeqCst);
        let cl = client(&c).await;
        let err = cl
            .put_object_bytes(BUCKET, "x", body(2 * CHUNK, 1), PutOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::InsufficientServers { need: 3, have: 2 }),
            "{err:?}"
        );
        assert_eq!(err.code(), ErrorCode::InsufficientServers);
        assert!(err.is_retryable());
        let err = cl.head_object(BUCKET, "x").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoSuchKey);
        assert_eq!(c.master.lock().calls.get("put_object"), None);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_digest_commits_nothing() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        let cl = client(&c).await;
        for len in [10, 3 * CHUNK] {
            let opts = PutOptions {
                content_md5: Some([0u8; 16]),
                ..Default::default()
            };
            let err = cl
                .put_object_bytes(BUCKET, "x", body(len, 2), opts)
                .await
                .unwrap_err();
            assert!(matches!(err, ClientError::BadDigest), "{err:?}");
        }
        assert_eq!(c.master.lock().calls.get("put_object"), None);
        let data = body(3 * CHUNK, 2);
        let opts = PutOptions {
            content_md5: Some(md5(&data)),
            ..Default::default()
        };
        cl.put_object_bytes(BUCKET, "x", data, opts).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replica_is_skipped_and_reported() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        let cl = client(&c).await;
        let data = body(3 * CHUNK, seed());
        let m = cl
            .put_object_bytes(BUCKET, "x", data.clone(), PutOptions::default())
            .await
            .unwrap();
        // Corrupt all but one server, keeping the replica of the first chunk that LocateChunks
        // lists last (the reader tries them in that order), so at least that chunk is read from
        // a bad copy first whatever the placement of this run's body.
        let located = c.master.lock().locate(&m.chunks[0].sha256);
        assert_eq!(located.len(), 3, "{located:?}");
        let good = located[2];
        let bad: Vec<u64> = (1..=3).filter(|id| *id != good).collect();
        for id in &bad {
            c.server(*id).corrupt.store(true, Ordering::SeqCst);
        }
        let got = read_all(cl.read_manifest(BUCKET, &m, None)).await.unwrap();
        assert_eq!(got, data.to_vec());
        // Partial reads ask the server to verify, and skip DATA_LOSS answers too.
        let got = read_all(cl.read_manifest(BUCKET, &m, Some((5, CHUNK as u64 + 9))))
            .await
            .unwrap();
        assert_eq!(got, data[5..CHUNK + 10].to_vec());
        // Reports are sent in the background.
        let mut reported = 0;
        for _ in 0..100 {
            reported = c.master.lock().reports.len();
            if reported > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(reported > 0, "bad copies should be reported");
        assert!(c
            .master
            .lock()
            .reports
            .iter()
            .all(|(_, id)| bad.contains(id)));
        // With every replica bad, the read fails with ChunkUnavailable.
        c.server(good).corrupt.store(true, Ordering::SeqCst);
        let err = read_all(cl.read_manifest(BUCKET, &m, None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::ChunkUnavailable { .. }),
            "{err:?}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_leader_and_does_not_retry_remote_errors() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        let follower = support::serve_master(c.master.clone(), Some(c.master_addr.clone())).await;
        let cl = Client::with_config(vec![follower.clone(), "127.0.0.1:1".into()], cfg())
            .await
            .unwrap();
        assert!(cl
            .list_buckets()
            .await
            .unwrap()
            .iter()
            .any(|b| b.name == BUCKET));
        assert_eq!(
            cl.master().leader_hint(),
            Some(format!("http://{}", c.master_addr))
        );
        let start = std::time::Instant::now();
        let err = cl.head_object(BUCKET, "missing").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoSuchKey);
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "remote errors are not retried"
        );
        assert_eq!(
            cl.head_bucket("nope").await.unwrap_err().code(),
            ErrorCode::NoSuchBucket
        );
        // A dead first master: the call moves on to the next one within the budget.
        let cl = Client::with_config(vec!["127.0.0.1:1".into(), c.master_addr.clone()], cfg())
            .await
            .unwrap();
        assert_eq!(cl.list_buckets().await.unwrap().len(), 1);
        assert_eq!(
            cl.master().leader_hint(),
            Some(format!("http://{}", c.master_addr))
        );
    })
    .await
}

/// The leader-failover anomaly, end to end through the client library: a put is applied,
/// another client overwrites the key, and the put's answer is lost. The client retries the
/// put (it cannot know it applied); the retry carries the same session and sequence number,
/// so the master answers it from the session and the later overwrite stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_answer_was_lost_is_retried_but_applied_once() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        let cl = client(&c).await;
        let other = anode_proto::command::Op::PutObject(anode_proto::PutObjectCmd {
            parquet: None,
            parquet_copy: None,
            bucket: BUCKET.into(),
            key: "k".into(),
            manifest: Some(anode_proto::Manifest {
                size: 5,
                etag: "00000000000000000000000000000b0b".into(),
                inline_data: b"later".to_vec(),
                ..Default::default()
            }),
            if_match_etag: None,
            source: String::new(),
        });
        c.master.lock().lose_put_answer_then = Some(other);
        let first = cl
            .put_object_bytes(
                BUCKET,
                "k",
                Bytes::from_static(b"first"),
                PutOptions::default(),
            )
            .await
            .expect("the retry is answered");
        assert_eq!(c.master.lock().calls["put_object"], 2, "one retry");
        let now = cl.head_object(BUCKET, "k").await.unwrap();
        assert_eq!(
            now.inline_data, b"later",
            "the put applied once, before the overwrite"
        );
        assert!(first.object_version < now.object_version);
        // The next put is a new write and applies.
        cl.put_object_bytes(
            BUCKET,
            "k",
            Bytes::from_static(b"third"),
            PutOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            cl.head_object(BUCKET, "k").await.unwrap().inline_data,
            b"third"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_keep_a_bounded_number_of_chunks_in_flight() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        for s in &c.servers {
            s.2.put_delay_ms.store(30, Ordering::SeqCst);
        }
        let cl = client(&c).await;
        let data = body(12 * CHUNK, 3);
        cl.put_object(BUCKET, "x", pieces(data, 3), PutOptions::default())
            .await
            .unwrap();
        let max = c.servers[0].2.max_in_flight.load(Ordering::SeqCst);
        // put_parallelism 4 = 3 chunks in flight + 1 being filled; 3 copies each.
        assert!(max <= 9, "{max} PutChunk calls at once");
        assert!(max > 3, "chunks should be written in parallel, saw {max}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_share_the_chunk_write_limit() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        for s in &c.servers {
            s.2.put_delay_ms.store(30, Ordering::SeqCst);
        }
        let cfg = ClientConfig {
            chunk_writes_max: 2,
            ..cfg()
        };
        let cl = Client::with_config(vec![c.master_addr.clone()], cfg)
            .await
            .unwrap();
        let puts = (0..4u64).map(|i| {
            let cl = cl.clone();
            async move {
                let data = body(6 * CHUNK, 10 + i);
                cl.put_object(
                    BUCKET,
                    &format!("p{i}"),
                    pieces(data, 3),
                    PutOptions::default(),
                )
                .await
            }
        });
        for r in futures::future::join_all(puts).await {
            r.unwrap();
        }
        let max = c.servers[0].2.max_in_flight.load(Ordering::SeqCst);
        // 4 puts could have 4 x 3 chunks in flight; the limit allows 2 chunks, 3 copies each.
        assert!(max <= 6, "{max} PutChunk calls at once");
        assert!(
            max > 3,
            "the two permitted chunks should be written together, saw {max}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_copy_list_delete() {
    bounded(async {
        let c = Cluster::start(3, 2).await;
        // Every part but the last is at least 5 MiB (the state machine's rule, as in S3):
        // 1 MiB chunks keep the first part to six of them.
        let big_chunks = ClientConfig {
            chunk_size_bytes: 1 << 20,
            ..cfg()
        };
        let cl = Client::with_config(vec![c.master_addr.clone()], big_chunks)
            .await
            .unwrap();
        let opts = PutOptions {
            content_type: "text/plain".into(),
            ..Default::default()
        };
        let id = cl.create_multipart(BUCKET, "mp", opts).await.unwrap();
        let p1 = body((5 << 20) + 5, 10);
        let p2 = body(100, 11);
        let r1 = cl
            .upload_part(BUCKET, "mp", &id, 1, pieces(p1.clone(), 1), Some(md5(&p1)))
            .await
            .unwrap();
        let r2 = cl
            .upload_part(BUCKET, "mp", &id, 2, pieces(p2.clone(), 2), None)
            .await
            .unwrap();
        assert!(
            r2.inline_data.is_empty() && r2.chunks.len() == 1,
            "parts never go inline"
        );
        let err = cl
            .upload_part(BUCKET, "mp", &id, 3, pieces(p2.clone(), 2), Some([9; 16]))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::BadDigest));
        let r3 = cl
            .upload_part(BUCKET, "mp", &id, 3, pieces(p2.clone(), 2), None)
            .await
            .unwrap();
        let small_first = vec![
            CompletePart {
                part_number: 2,
                etag: r2.etag.clone(),
            },
            CompletePart {
                part_number: 3,
                etag: r3.etag.clone(),
            },
        ];
        let err = cl
            .complete_multipart(BUCKET, "mp", &id, small_first, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::EntityTooSmall, "{err:?}");
        let parts = vec![
            CompletePart {
                part_number: 1,
                etag: r1.etag.clone(),
            },
            CompletePart {
                part_number: 2,
                etag: r2.etag.clone(),
            },
        ];
        let m = cl
            .complete_multipart(BUCKET, "mp", &id, parts, None)
            .await
            .unwrap();
        assert!(m.etag.ends_with("-2"));
        assert_eq!(m.content_type, "text/plain");
        let (_, s) = cl.get_object(BUCKET, "mp", None).await.unwrap();
        assert_eq!(read_all(s).await.unwrap(), [&p1[..], &p2[..]].concat());

        // Copy is metadata only: no chunk is written again.
        let puts = c.total_puts();
        let copy = cl
            .copy_object(BUCKET, "mp", BUCKET, "mp2", None)
            .await
            .unwrap();
        assert_eq!(c.total_puts(), puts);
        assert_eq!(copy.chunks, m.chunks);
        let (_, s) = cl.get_object(BUCKET, "mp2", None).await.unwrap();
        assert_eq!(read_all(s).await.unwrap(), [&p1[..], &p2[..]].concat());

        // Listing pages through everything.
        c.master.lock().list_page_max = 2;
        for k in ["a1", "a2", "a3", "z"] {
            cl.put_object_bytes(BUCKET, k, Bytes::from_static(b"hi"), PutOptions::default())
                .await
                .unwrap();
        }
        let keys: Vec<String> = cl
            .list_all(BUCKET, "")
            .map_ok(|e| e.key)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(keys, ["a1", "a2", "a3", "mp", "mp2", "z"]);
        let keys: Vec<String> = cl
            .list_all(BUCKET, "a")
            .map_ok(|e| e.key)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(keys, ["a1", "a2", "a3"]);

        assert!(cl.cached_manifest(BUCKET, "z").is_some());
        assert!(cl.delete_object(BUCKET, "z").await.unwrap());
        assert!(cl.cached_manifest(BUCKET, "z").is_none());
        assert!(!cl.delete_object(BUCKET, "z").await.unwrap());
        let deleted = cl
            .delete_objects(BUCKET, vec!["a1".into(), "nope".into()])
            .await
            .unwrap();
        assert_eq!(deleted, ["a1"]);
        let n = cl.list_all(BUCKET, "").count().await;
        assert_eq!(n, 4);
    })
    .await
}

/// Hedging (chaos finding, test_scripts/sigstop.sh): a chunkserver that accepts calls and never
/// answers must not hold a put or a get for the transfer timeout. The timeout here is 60 s and
/// the test's bound 20 s, so only hedging can pass it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_chunkserver_is_hedged_around() {
    let c = Cluster::start(4, 3).await;
    let cfg = ClientConfig {
        rpc_timeout: Duration::from_secs(60),
        hedge_after: Duration::from_millis(100),
        ..cfg()
    };
    let cl = Client::with_config(vec![c.master_addr.clone()], cfg)
        .await
        .unwrap();
    let data = body(4 * CHUNK, seed());
    let put = async {
        c.server(2).frozen.store(true, Ordering::SeqCst);
        cl.put_object_bytes(BUCKET, "w", data.clone(), PutOptions::default())
            .await
            .unwrap()
    };
    let m = tokio::time::timeout(Duration::from_secs(20), put)
        .await
        .expect("a put waited on the frozen server");
    for ch in &m.chunks {
        assert_eq!(ch.servers.len(), 3, "{:?}", ch.servers);
        assert!(!ch.servers.contains(&2), "{:?}", ch.servers);
    }
    c.server(2).frozen.store(false, Ordering::SeqCst);
    // Reads: freeze the replica tried first for the first chunk of a fresh object.
    let m = cl
        .put_object_bytes(BUCKET, "r", data.clone(), PutOptions::default())
        .await
        .unwrap();
    let first = c.master.lock().locate(&m.chunks[0].sha256)[0];
    c.server(first).frozen.store(true, Ordering::SeqCst);
    let get = async {
        let (_, s) = cl.get_object(BUCKET, "r", None).await.unwrap();
        read_all(s).await.unwrap()
    };
    let got = tokio::time::timeout(Duration::from_secs(20), get)
        .await
        .expect("a get waited on the frozen server");
    assert_eq!(got, data.to_vec());
}

/// A master that accepts calls and never answers (SIGSTOPped leader): after `probe_after` the
/// client asks the other masters who leads and moves the waiting call there, long before the
/// 60 s attempt timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_is_left_for_the_one_the_others_report() {
    let c = Cluster::start(3, 3).await;
    let frozen = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let frozen_addr = frozen.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut socks = Vec::new();
        while let Ok((s, _)) = frozen.accept().await {
            socks.push(s);
        }
    });
    let cfg = ClientConfig {
        master_rpc_timeout: Duration::from_secs(60),
        master_probe_after: Duration::from_millis(200),
        retry_budget: Duration::from_secs(120),
        ..cfg()
    };
    let cl = Client::with_config(vec![frozen_addr, c.master_addr.clone()], cfg)
        .await
        .unwrap();
    let buckets = tokio::time::timeout(Duration::from_secs(20), cl.list_buckets())
        .await
        .expect("the call waited on the frozen master")
        .unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(
        cl.master().leader_hint(),
        Some(format!("http://{}", c.master_addr))
    );
    held.abort();
}

/// One master read per GET: a client that learned the servers (from its own put) reads a
/// chunked object from the manifest's servers without `LocateChunks`; a client that knows none
/// of them asks once. When every server the manifest lists lost a chunk (moved elsewhere by a
/// repair), the reader reports them, asks the master and reads the copy it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_skip_locate_until_the_manifests_servers_fail() {
    bounded(async {
        let c = Cluster::start(4, 3).await;
        let cl = client(&c).await;
        let data = body(2 * CHUNK + 5, seed());
        let m = cl
            .put_object_bytes(BUCKET, "x", data.clone(), PutOptions::default())
            .await
            .unwrap();
        let locates = || c.master.lock().calls.get("locate_chunks").copied();
        let (_, s) = cl.get_object(BUCKET, "x", None).await.unwrap();
        assert_eq!(read_all(s).await.unwrap(), data.to_vec());
        assert_eq!(locates(), None, "a fresh directory needs no LocateChunks");
        // A client that never saw the servers asks the master once for the batch.
        let other = client(&c).await;
        let (_, s) = other.get_object(BUCKET, "x", None).await.unwrap();
        assert_eq!(read_all(s).await.unwrap(), data.to_vec());
        assert_eq!(locates(), Some(1));
        // Move the first chunk off every server the manifest lists, to the fourth server.
        let moved = &m.chunks[0];
        let spare = c
            .servers
            .iter()
            .map(|s| s.0)
            .find(|id| !moved.servers.contains(id))
            .unwrap();
        let mut blob = None;
        for id in &moved.servers {
            blob = c.server(*id).blobs.lock().remove(&moved.sha256);
        }
        c.server(spare)
            .blobs
            .lock()
            .insert(moved.sha256.clone(), blob.unwrap());
        let cid = anode_meta::locations::chunk_id(&moved.sha256).unwrap();
        c.master.lock().control.learn_copies(&[(spare, cid)]);
        let (_, s) = cl.get_object(BUCKET, "x", None).await.unwrap();
        assert_eq!(read_all(s).await.unwrap(), data.to_vec());
        assert_eq!(locates(), Some(2), "only the failed span asks the master");
        let mut reported = Vec::new();
        for _ in 0..100 {
            reported = c.master.lock().reports.clone();
            if reported.len() >= moved.servers.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut ids: Vec<u64> = reported.iter().map(|r| r.1).collect();
        ids.sort_unstable();
        let mut want = moved.servers.clone();
        want.sort_unstable();
        assert_eq!(ids, want, "every missing copy is reported");
        assert!(reported.iter().all(|r| r.0 == moved.sha256));
    })
    .await
}

/// A reader that stops reading (its S3 client's socket is full) must not stall the other reads
/// sharing its connections to the chunkservers: its chunk fetches run as tasks that drain their
/// streams into its read-ahead, instead of leaving the data unread in HTTP/2 buffers, where it
/// holds the connection's flow-control window (5 MiB) and no other stream on that connection
/// can receive (issue 18: 16 MiB GETs at 64 in flight all finishing together, late). Four
/// stalled readers of a 16 MiB object ask each of 3 servers for ~21 MiB; the other read needs
/// 2 MiB. With fetches that progress only when polled, it waits for `rpc_timeout` (60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_stall_the_others() {
    bounded(async {
        let c = Cluster::start(3, 3).await;
        let cfg = ClientConfig {
            chunk_size_bytes: 1 << 20,
            rpc_timeout: Duration::from_secs(60),
            hedge_after: Duration::from_millis(200),
            ..cfg()
        };
        let cl = Client::with_config(vec![c.master_addr.clone()], cfg)
            .await
            .unwrap();
        let seed = seed();
        let big = body(16 << 20, seed);
        let small = body(2 << 20, seed ^ 1);
        for (key, data) in [("big", &big), ("small", &small)] {
            cl.put_object_bytes(BUCKET, key, data.clone(), PutOptions::default())
                .await
                .unwrap();
        }
        let mut stalled = Vec::new();
        for _ in 0..4 {
            let (_, mut s) = cl.get_object(BUCKET, "big", None).await.unwrap();
            let first = s.next().await.unwrap().unwrap();
            assert_eq!(first[..], big[..first.len()]);
            stalled.push((first.len(), s));
        }
        let read = async {
            let (_, s) = cl.get_object(BUCKET, "small", None).await.unwrap();
            read_all(s).await.unwrap()
        };
        let got = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a read waited behind readers that stopped reading");
        assert_eq!(got, small.to_vec());
        // The stalled readers still read their objects whole.
        for (read, s) in stalled {
            let rest = read_all(s).await.unwrap();
            assert_eq!(rest[..], big[read..]);
        }
    })
    .await
}

/// Access configuration through the client (issue 19): the bucket record with its
/// compare-and-set, object ACLs written with the object, carried through multipart uploads,
/// set on a copy only when given, and replaced in place. The calls take the gateway role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_access_and_object_acls() {
    use anode_meta::authz::{canonical_id, encode_acl, BucketAccessRecord, CannedAcl};
    bounded(async {
        let c = Cluster::start(3, 2).await;
        let gw = ClientConfig {
            tls: Some(support::tls(anode_tls::Role::Gateway, "1")),
            ..cfg()
        };
        let cl = Client::with_config(vec![c.master_addr.clone()], gw)
            .await
            .unwrap();
        let alice = canonical_id("alice");
        let record = |canned: CannedAcl| BucketAccessRecord::new_bucket(&alice, canned).encode();

        // The initial record comes back with the bucket.
        let initial = record(CannedAcl::PublicRead);
        let b = cl
            .create_bucket_owned("acl-bucket", 0, "", "", initial.clone())
            .await
            .unwrap();
        assert_eq!(b.access, initial);
        assert_eq!(cl.head_bucket("acl-bucket").await.unwrap().access, initial);
        // Compare-and-set: a stale expectation is refused and changes nothing.
        let next = record(CannedAcl::Private);
        let err = cl
            .set_bucket_access("acl-bucket", next.clone(), Some(Vec::new()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PreconditionFailed, "{err:?}");
        assert_eq!(cl.head_bucket("acl-bucket").await.unwrap().access, initial);
        cl.set_bucket_access("acl-bucket", next.clone(), Some(initial))
            .await
            .unwrap();
        assert_eq!(cl.head_bucket("acl-bucket").await.unwrap().access, next);
        let err = cl
            .set_bucket_access("acl-bucket", b"{".to_vec(), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err:?}");

        // An object's ACL is written with it and replaced in place.
        let acl = encode_acl(&CannedAcl::PublicRead.expand(&alice, &alice));
        let opts = PutOptions {
            acl: acl.clone(),
            ..Default::default()
        };
        let m = cl
            .put_object_bytes(BUCKET, "o", Bytes::from_static(b"hello"), opts)
            .await
            .unwrap();
        assert_eq!(m.acl, acl);
        assert_eq!(cl.cached_manifest(BUCKET, "o").unwrap().acl, acl);
        let private = encode_acl(&CannedAcl::Private.expand(&alice, &alice));
        let err = cl
            .set_object_acl(BUCKET, "o", private.clone(), Some(m.object_version + 1))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PreconditionFailed, "{err:?}");
        cl.set_object_acl(BUCKET, "o", private.clone(), Some(m.object_version))
            .await
            .unwrap();
        assert!(
            cl.cached_manifest(BUCKET, "o").is_none(),
            "the cached manifest had the old ACL"
        );
        let after = cl.head_object(BUCKET, "o").await.unwrap();
        assert_eq!(after.acl, private);
        assert_eq!(
            (after.etag.as_str(), after.mtime_ms, after.object_version),
            (m.etag.as_str(), m.mtime_ms, m.object_version)
        );
        let err = cl
            .set_object_acl(BUCKET, "missing", private.clone(), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoSuchKey, "{err:?}");

        // A copy gets the ACL of its request, never the source's.
        let plain = cl
            .copy_object(BUCKET, "o", BUCKET, "c1", None)
            .await
            .unwrap();
        assert!(plain.acl.is_empty());
        let replaced = PutOptions {
            acl: acl.clone(),
            ..Default::default()
        };
        let c2 = cl
            .copy_object(BUCKET, "o", BUCKET, "c2", Some(replaced))
            .await
            .unwrap();
        assert_eq!(c2.acl, acl);

        // A multipart upload keeps its ACL until completion.
        let opts = PutOptions {
            acl: acl.clone(),
            ..Default::default()
        };
        let id = cl.create_multipart(BUCKET, "mp", opts).await.unwrap();
        let part = body(100, 3);
        let r1 = cl
            .upload_part(BUCKET, "mp", &id, 1, pieces(part.clone(), 1), None)
            .await
            .unwrap();
        let parts = vec![CompletePart {
            part_number: 1,
            etag: r1.etag,
        }];
        let done = cl
            .complete_multipart(BUCKET, "mp", &id, parts, None)
            .await
            .unwrap();
        assert_eq!(done.acl, acl);

        // The client role may not change access configuration.
        let plain_client = client(&c).await;
        let err = plain_client
            .set_object_acl(BUCKET, "o", Vec::new(), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err:?}");
    })
    .await
}

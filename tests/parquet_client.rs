//! Parquet through the client library (issue 16), on a real cluster (1 master, 3 chunkservers,
//! each an `anode` process):
//!
//! - `parquet_files_read_back_through_anode_store`: Parquet files written with arrow's
//!   `ArrowWriter` (several row groups, a sorted `ts` column, a string column) are put through
//!   the client, then read back with parquet's async reader over
//!   `anode_client::objstore::AnodeStore`: every batch equals what was written, the footer
//!   reads were answered from the master's stored tail (no chunk read at or past the footer),
//!   a read of two row groups read no more chunk bytes than their column chunks, and the scan
//!   planner's byte ranges (`plan_file`, `read_ranges`) are the ones the footer names, with
//!   the same bytes.
//! - `object_store_operations`: the `ObjectStore` trait over Anode: put modes, get ranges and
//!   conditions, head, list (paged), list_with_delimiter, copy, copy_if_not_exists, rename,
//!   delete, a multipart upload over S3's 5 MiB part minimum, reads of a named version in a
//!   versioned bucket, and the error mapping.
//! - `pruned_listing_and_scan_plan`: `with_where` lists only the files whose `ts` range
//!   overlaps the predicate (and the file without statistics), a bad predicate is an error,
//!   and `plan_scan` picks just the row groups that may match, with their byte ranges.

mod support;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anode_client::objstore::AnodeStore;
use anode_client::parquet::ParquetOutcome;
use anode_client::{Client, ClientConfig, PutOptions as ClientPut};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, Error as OsError, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, UpdateVersion,
};
// Deprecated in parquet 60.2 in favour of hand-written `AsyncFileReader`s, but still the
// reader most `ObjectStore` users have: the one to test AnodeStore with.
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::{ArrowWriter, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::properties::WriterProperties;
use support::*;

const BUCKET: &str = "tables";
/// Rows per row group of the files written here.
const RG_ROWS: usize = 10_000;
/// Row groups per file.
const RGS: usize = 5;

struct Cluster {
    _dir: tempfile::TempDir,
    master: String,
    _procs: Vec<Proc>,
}

async fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (mp, ma) = (free_port(), free_port());
    let master = format!("127.0.0.1:{mp}");
    let mut procs = vec![Proc::spawn(
        &root,
        "master-1",
        master_args(1, &root, mp, ma, &format!("1={master}"), false),
    )];
    for i in 1..=3 {
        let args = chunkserver_args(&root, i, &master, None);
        procs.push(Proc::spawn(&root, &format!("chunkserver-{i}"), args));
    }
    wait_alive(&master, 3, "chunkservers alive", Duration::from_secs(30)).await;
    Cluster {
        _dir: dir,
        master,
        _procs: procs,
    }
}

/// A client with 64 KiB chunks, so a file's column chunks span several chunks.
async fn client(c: &Cluster) -> Client {
    let cfg = ClientConfig {
        chunk_size_bytes: SMALL_CHUNK,
        ..client_config()
    };
    let cl = Client::with_config(vec![c.master.clone()], cfg)
        .await
        .unwrap();
    cl.create_bucket(BUCKET, 0, "").await.unwrap();
    cl
}

/// `RGS * RG_ROWS` rows with `ts` = `first_ts..`, a string and a float column.
fn table(first_ts: i64) -> RecordBatch {
    let n = RGS * RG_ROWS;
    let ts: Vec<i64> = (0..n as i64).map(|i| first_ts + i).collect();
    let names: Vec<String> = (0..n)
        .map(|i| format!("sensor-{:05}-{}", (i * 7919) % 10_007, i % 13))
        .collect();
    let vals: Vec<f64> = (0..n).map(|i| (i as f64).sin() * 100.0).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("val", DataType::Float64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ts)),
        Arc::new(StringArray::from(names)),
        Arc::new(Float64Array::from(vals)),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

/// The Parquet file of `batch`, `RG_ROWS` rows per row group.
fn parquet_file(batch: &RecordBatch) -> Bytes {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(RG_ROWS))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    Bytes::from(out)
}

/// The byte ranges of `rgs`' column chunks as the footer of `file` names them, merged.
fn local_ranges(file: &Bytes, rgs: &[usize]) -> Vec<Range<u64>> {
    let meta = ParquetMetaDataReader::new().parse_and_finish(file).unwrap();
    let mut rs: Vec<Range<u64>> = rgs
        .iter()
        .flat_map(|&rg| meta.row_group(rg).columns().to_vec())
        .map(|c| {
            let (start, len) = c.byte_range();
            start..start + len
        })
        .collect();
    rs.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in rs {
        match merged.last_mut() {
            Some(l) if r.start <= l.end => l.end = l.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// The footer's first byte: a reader whose footer reads hit the stored tail never reads a
/// chunk at or past it.
fn footer_start(file: &Bytes) -> u64 {
    let n = file.len();
    let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as u64;
    n as u64 - 8 - len
}

/// Read `path` with parquet's async reader over `store` (only `row_groups` when given) and
/// check every batch against `written`.
async fn read_back(
    store: &AnodeStore,
    path: &str,
    size: Option<u64>,
    row_groups: Option<Vec<usize>>,
    written: &RecordBatch,
) {
    #[allow(deprecated)]
    let mut reader = ParquetObjectReader::new(Arc::new(store.clone()), Path::from(path));
    if let Some(size) = size {
        reader = reader.with_file_size(size);
    }
    let mut builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .unwrap()
        .with_batch_size(RG_ROWS);
    assert_eq!(builder.metadata().num_row_groups(), RGS, "{path}");
    let rgs = row_groups.clone().unwrap_or_else(|| (0..RGS).collect());
    if let Some(r) = row_groups {
        builder = builder.with_row_groups(r);
    }
    let got: Vec<RecordBatch> = builder.build().unwrap().try_collect().await.unwrap();
    assert_eq!(got.len(), rgs.len(), "{path}: one batch per row group");
    for (batch, rg) in got.iter().zip(&rgs) {
        let want = written.slice(rg * RG_ROWS, RG_ROWS);
        assert_eq!(batch.num_rows(), RG_ROWS);
        assert_eq!(batch.columns(), want.columns(), "{path} row group {rg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parquet_files_read_back_through_anode_store() {
    let c = start_cluster().await;
    let cl = client(&c).await;
    let mut files = Vec::new();
    for (i, key) in ["t/2026/a.parquet", "t/2026/b.parquet", "t/2027/c.parquet"]
        .iter()
        .enumerate()
    {
        let batch = table((i * RGS * RG_ROWS) as i64);
        let body = parquet_file(&batch);
        assert!(body.len() > 512 << 10, "{key}: {} bytes", body.len());
        let opts = ClientPut::default();
        let outcome = opts.parquet_outcome.clone();
        let m = cl
            .put_object_bytes(BUCKET, key, body.clone(), opts)
            .await
            .unwrap();
        assert_eq!(outcome.get(), Some(ParquetOutcome::Indexed), "{key}");
        assert!(m.parquet.is_some(), "{key}: the manifest names its index");
        files.push((key.to_string(), batch, body));
    }

    for (i, (key, batch, body)) in files.iter().enumerate() {
        // A store per file, so its counters are this file's.
        let store = AnodeStore::new(cl.clone(), BUCKET);
        let meta = store.head(&Path::from(key.as_str())).await.unwrap();
        assert_eq!(meta.size, body.len() as u64);
        // With the size known the reader asks bounded ranges; without, suffix ranges.
        let size = (i % 2 == 0).then_some(meta.size);
        read_back(&store, key, size, None, batch).await;
        let s = store.stats();
        eprintln!("{key}: {s:?}");
        assert!(
            s.tail_hits >= 1,
            "{key}: the footer came from the tail: {s:?}"
        );
        assert!(
            s.chunk_reads >= 1,
            "{key}: the data came from chunks: {s:?}"
        );
        assert!(
            s.chunk_read_end <= footer_start(body),
            "{key}: a chunk read reached into the footer: {s:?}"
        );
    }

    // Through the store: a put and a multipart upload are indexed too (the multipart one
    // after completion), so their footers come from the tail as well.
    let store = AnodeStore::new(cl.clone(), BUCKET);
    let (_, batch, body) = &files[0];
    store
        .put(&Path::from("u/put.parquet"), PutPayload::from(body.clone()))
        .await
        .unwrap();
    let mut up = store
        .put_multipart(&Path::from("u/multipart.parquet"))
        .await
        .unwrap();
    for piece in body.chunks(300_000) {
        let piece = PutPayload::from(Bytes::copy_from_slice(piece));
        up.put_part(piece).await.unwrap();
    }
    up.complete().await.unwrap();
    for key in ["u/put.parquet", "u/multipart.parquet"] {
        let m = cl.head_object(BUCKET, key).await.unwrap();
        assert!(m.parquet.is_some(), "{key} is indexed");
        let store = AnodeStore::new(cl.clone(), BUCKET);
        read_back(&store, key, None, None, batch).await;
        let s = store.stats();
        assert!(s.tail_hits >= 1, "{key}: {s:?}");
        assert!(s.chunk_read_end <= footer_start(body), "{key}: {s:?}");
    }

    // Two row groups of one file: no more chunk bytes than their column chunks.
    let (key, batch, body) = &files[1];
    let store = AnodeStore::new(cl.clone(), BUCKET);
    read_back(&store, key, None, Some(vec![1, 3]), batch).await;
    let want = local_ranges(body, &[1, 3]);
    let want_bytes: u64 = want.iter().map(|r| r.end - r.start).sum();
    let s = store.stats();
    assert!(s.tail_hits >= 1, "{s:?}");
    assert!(
        s.chunk_bytes <= want_bytes,
        "read {} chunk bytes for {want_bytes} bytes of row groups 1 and 3",
        s.chunk_bytes
    );

    // The scan planner's ranges are the footer's, and read_ranges returns their bytes.
    let plan = cl.plan_file(BUCKET, key, Some(vec![3, 1])).await.unwrap();
    assert_eq!(plan.ranges, want);
    assert_eq!(plan.size, body.len() as u64);
    let got: Vec<(Range<u64>, Bytes)> = cl.read_ranges(BUCKET, &plan).try_collect().await.unwrap();
    assert_eq!(got.len(), want.len());
    for (r, b) in &got {
        assert_eq!(b, &body.slice(r.start as usize..r.end as usize), "{r:?}");
    }
    let whole = cl.plan_file(BUCKET, key, None).await.unwrap();
    assert!(whole.row_groups.is_none() && whole.ranges.is_empty());
    let all: Vec<(Range<u64>, Bytes)> = cl.read_ranges(BUCKET, &whole).try_collect().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1, *body);
    let err = cl
        .plan_file(BUCKET, key, Some(vec![RGS as u32]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row group"), "{err}");

    // An empty predicate plans every file whole (no statistics are asked for).
    let plan = cl.plan_scan(BUCKET, "t/", "").await.unwrap();
    let keys: Vec<&str> = plan.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        ["t/2026/a.parquet", "t/2026/b.parquet", "t/2027/c.parquet"]
    );
    assert!(plan.iter().all(|f| f.row_groups.is_none()));
    assert_eq!(plan[2].bytes_to_read(), files[2].2.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_store_operations() {
    let c = start_cluster().await;
    let cl = client(&c).await;
    let store = AnodeStore::new(cl.clone(), BUCKET);
    let p = |s: &str| Path::from(s);
    let body = Bytes::from(pattern_body(7, 300_000));

    // Put with attributes; get whole, ranges, head.
    let attrs = Attributes::from_iter([
        (Attribute::ContentType, "application/octet-stream"),
        (Attribute::CacheControl, "max-age=60"),
        (Attribute::Metadata("origin".into()), "test"),
    ]);
    let put = store
        .put_opts(
            &p("d/x.bin"),
            PutPayload::from(body.clone()),
            PutOptions::from(attrs.clone()),
        )
        .await
        .unwrap();
    let got = store.get(&p("d/x.bin")).await.unwrap();
    assert_eq!(got.attributes, attrs);
    assert_eq!(got.meta.e_tag, put.e_tag);
    assert_eq!(got.bytes().await.unwrap(), body);
    let sl = |r: Range<usize>| body.slice(r);
    assert_eq!(
        store
            .get_range(&p("d/x.bin"), 70_000..200_001)
            .await
            .unwrap(),
        sl(70_000..200_001)
    );
    for (range, want) in [
        (GetRange::Bounded(5..9), sl(5..9)),
        (GetRange::Bounded(299_990..400_000), sl(299_990..300_000)),
        (GetRange::Offset(123_456), sl(123_456..300_000)),
        (GetRange::Suffix(1000), sl(299_000..300_000)),
        (GetRange::Suffix(1 << 30), body.clone()),
    ] {
        let opts = GetOptions::new().with_range(Some(range.clone()));
        let r = store.get_opts(&p("d/x.bin"), opts).await.unwrap();
        assert_eq!(r.bytes().await.unwrap(), want, "{range}");
    }
    let ranges = [0..10, 250_000..250_100, 5..20, 299_999..300_000, 7..7];
    let got = store.get_ranges(&p("d/x.bin"), &ranges).await.unwrap();
    for (r, b) in ranges.iter().zip(&got) {
        assert_eq!(b, &sl(r.start as usize..r.end as usize), "{r:?}");
    }
    let bad = GetOptions::new().with_range(Some(GetRange::Offset(300_000)));
    assert!(matches!(
        store.get_opts(&p("d/x.bin"), bad).await,
        Err(OsError::Generic { .. })
    ));
    let head = store.head(&p("d/x.bin")).await.unwrap();
    assert_eq!(head.size, 300_000);
    assert_eq!(head.e_tag, put.e_tag);

    // Conditions on reads.
    let etag = put.e_tag.clone().unwrap();
    let ok = GetOptions::new().with_if_match(Some(etag.clone()));
    assert!(store.get_opts(&p("d/x.bin"), ok).await.is_ok());
    let stale = GetOptions::new().with_if_match(Some("0123"));
    assert!(matches!(
        store.get_opts(&p("d/x.bin"), stale).await,
        Err(OsError::Precondition { .. })
    ));
    let same = GetOptions::new().with_if_none_match(Some(etag.clone()));
    assert!(matches!(
        store.get_opts(&p("d/x.bin"), same).await,
        Err(OsError::NotModified { .. })
    ));
    let later = GetOptions::new().with_if_modified_since(Some(head.last_modified));
    assert!(matches!(
        store.get_opts(&p("d/x.bin"), later).await,
        Err(OsError::NotModified { .. })
    ));

    // Put modes.
    let create = PutOptions::from(PutMode::Create);
    let e = store
        .put_opts(
            &p("d/x.bin"),
            PutPayload::from_static(b"new"),
            create.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, OsError::AlreadyExists { .. }), "{e}");
    let v1 = store
        .put_opts(&p("d/new.txt"), PutPayload::from_static(b"one"), create)
        .await
        .unwrap();
    let upd = |v: &object_store::PutResult| {
        PutOptions::from(PutMode::Update(UpdateVersion::from(v.clone())))
    };
    let v2 = store
        .put_opts(&p("d/new.txt"), PutPayload::from_static(b"two"), upd(&v1))
        .await
        .unwrap();
    let e = store
        .put_opts(&p("d/new.txt"), PutPayload::from_static(b"three"), upd(&v1))
        .await
        .unwrap_err();
    assert!(matches!(e, OsError::Precondition { .. }), "{e}");
    let b = store.get(&p("d/new.txt")).await.unwrap().bytes().await;
    assert_eq!(b.unwrap(), &b"two"[..]);
    assert_ne!(v1.e_tag, v2.e_tag);

    // NotFound everywhere.
    for e in [
        store.get(&p("d/none")).await.unwrap_err(),
        store.head(&p("d/none")).await.unwrap_err(),
        store.get_range(&p("d/none"), 0..1).await.unwrap_err(),
        store.copy(&p("d/none"), &p("d/none2")).await.unwrap_err(),
        store
            .get_ranges(&p("d/none"), &[0..1, 2..3])
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, OsError::NotFound { .. }), "{e}");
    }

    // Copies.
    store.copy(&p("d/x.bin"), &p("e/copy.bin")).await.unwrap();
    assert_eq!(
        store
            .get(&p("e/copy.bin"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        body
    );
    let e = store
        .copy_if_not_exists(&p("d/new.txt"), &p("e/copy.bin"))
        .await
        .unwrap_err();
    assert!(matches!(e, OsError::AlreadyExists { .. }), "{e}");
    store
        .copy_if_not_exists(&p("d/x.bin"), &p("e/kept.bin"))
        .await
        .unwrap();
    let kept = store.get(&p("e/kept.bin")).await.unwrap();
    assert_eq!(
        kept.attributes, attrs,
        "copy_if_not_exists keeps the metadata"
    );
    store
        .rename(&p("e/kept.bin"), &p("e/moved.bin"))
        .await
        .unwrap();
    assert!(matches!(
        store.head(&p("e/kept.bin")).await,
        Err(OsError::NotFound { .. })
    ));

    // A multipart upload: 3 MiB payloads become 6 MiB parts (S3's minimum is 5 MiB).
    let big = Bytes::from(pattern_body(9, 13 << 20));
    let mut up = store.put_multipart(&p("m/big.bin")).await.unwrap();
    for piece in big.chunks(3 << 20) {
        up.put_part(PutPayload::from(Bytes::copy_from_slice(piece)))
            .await
            .unwrap();
    }
    let done = up.complete().await.unwrap();
    let m = cl.head_object(BUCKET, "m/big.bin").await.unwrap();
    assert_eq!(m.part_sizes, vec![6 << 20, 6 << 20, 1 << 20]);
    assert_eq!(done.e_tag.as_deref(), Some(m.etag.as_str()));
    assert_eq!(
        store
            .get(&p("m/big.bin"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        big
    );
    // Empty objects, both ways.
    store.put(&p("m/empty"), PutPayload::new()).await.unwrap();
    let mut up = store.put_multipart(&p("m/empty-mp")).await.unwrap();
    up.complete().await.unwrap();
    for key in ["m/empty", "m/empty-mp"] {
        let got = store.get(&p(key)).await.unwrap();
        assert_eq!(got.meta.size, 0, "{key}");
        assert!(got.bytes().await.unwrap().is_empty(), "{key}");
    }
    let mut aborted = store.put_multipart(&p("m/aborted.bin")).await.unwrap();
    aborted
        .put_part(PutPayload::from(big.slice(0..(6 << 20))))
        .await
        .unwrap();
    aborted.abort().await.unwrap();
    assert!(matches!(
        store.head(&p("m/aborted.bin")).await,
        Err(OsError::NotFound { .. })
    ));

    // Listings: more keys than one page, with and without a delimiter, with an offset.
    let many: Vec<(String, Bytes)> = (0..1205)
        .map(|i| {
            (
                format!("l/{:02}/k{i:05}", i % 3),
                Bytes::from(format!("{i}")),
            )
        })
        .collect();
    for batch in many.chunks(500) {
        cl.put_small_objects(BUCKET, batch.to_vec()).await.unwrap();
    }
    let listed: Vec<_> = store.list(Some(&p("l"))).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1205);
    let mut want_keys: Vec<String> = many.iter().map(|(k, _)| k.clone()).collect();
    want_keys.sort();
    let keys: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(keys, want_keys);
    let after: Vec<_> = store
        .list_with_offset(Some(&p("l")), &p(&want_keys[1000]))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(after.len(), 204);
    // `l/0` is no prefix of `l/00/...` in object_store's path sense.
    let none: Vec<_> = store.list(Some(&p("l/0"))).try_collect().await.unwrap();
    assert!(none.is_empty());
    let top = store.list_with_delimiter(None).await.unwrap();
    let dirs: Vec<String> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(dirs, ["d", "e", "l", "m"]);
    assert!(top.objects.is_empty());
    let d = store.list_with_delimiter(Some(&p("d"))).await.unwrap();
    let names: Vec<String> = d.objects.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(names, ["d/new.txt", "d/x.bin"]);
    assert_eq!(d.objects[1].size, 300_000);
    let l = store.list_with_delimiter(Some(&p("l"))).await.unwrap();
    assert_eq!(l.common_prefixes.len(), 3);

    // A versioned bucket: puts answer their version ids, and a get names one.
    cl.create_bucket("versioned", 0, "").await.unwrap();
    // Versioning is configured by the gateway or an operator, not by `client-1`.
    let admin_cfg = ClientConfig {
        tls: Some(tls(anode_tls::Role::Admin, "1")),
        ..Default::default()
    };
    let admin = Client::with_config(vec![c.master.clone()], admin_cfg)
        .await
        .unwrap();
    admin.set_bucket_versioning("versioned", 1).await.unwrap();
    let vstore = AnodeStore::new(cl.clone(), "versioned");
    let first = vstore
        .put(&p("v"), PutPayload::from_static(b"first"))
        .await
        .unwrap();
    let second = vstore
        .put(&p("v"), PutPayload::from_static(b"second"))
        .await
        .unwrap();
    assert!(first.version.is_some() && first.version != second.version);
    let old = GetOptions::new().with_version(first.version.clone());
    let got = vstore.get_opts(&p("v"), old).await.unwrap();
    assert_eq!(got.meta.version, first.version);
    assert_eq!(got.bytes().await.unwrap(), &b"first"[..]);
    let head = vstore.head(&p("v")).await.unwrap();
    assert_eq!(head.version, second.version);
    // A version deleted for good is NotFound; a malformed id is the caller's error.
    cl.delete_version("versioned", "v", first.version.as_deref(), false)
        .await
        .unwrap();
    let missing = GetOptions::new().with_version(first.version.clone());
    let e = vstore.get_opts(&p("v"), missing).await.unwrap_err();
    assert!(matches!(e, OsError::NotFound { .. }), "{e}");
    let bad = GetOptions::new().with_version(Some("no-such-version"));
    let e = vstore.get_opts(&p("v"), bad).await.unwrap_err();
    assert!(matches!(e, OsError::Generic { .. }), "{e}");

    // Deletes (a missing key deletes fine, as object_store expects).
    store.delete(&p("d/x.bin")).await.unwrap();
    store.delete(&p("d/x.bin")).await.unwrap();
    assert!(matches!(
        store.get(&p("d/x.bin")).await,
        Err(OsError::NotFound { .. })
    ));
    let doomed: Vec<object_store::Result<Path>> =
        listed.iter().map(|m| Ok(m.location.clone())).collect();
    let gone: Vec<Path> = store
        .delete_stream(Box::pin(futures::stream::iter(doomed)))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(gone.len(), 1205);
    let left: Vec<_> = store.list(Some(&p("l"))).try_collect().await.unwrap();
    assert!(left.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pruned_listing_and_scan_plan() {
    let c = start_cluster().await;
    let cl = client(&c).await;
    // ts: a 0..50000, b 50000..100000, c 100000..150000; and one file that is no Parquet.
    let mut bodies = Vec::new();
    for (i, key) in ["p/a.parquet", "p/b.parquet", "p/c.parquet"]
        .iter()
        .enumerate()
    {
        let body = parquet_file(&table((i * RGS * RG_ROWS) as i64));
        cl.put_object_bytes(BUCKET, key, body.clone(), ClientPut::default())
            .await
            .unwrap();
        bodies.push(body);
    }
    cl.put_object_bytes(
        BUCKET,
        "p/readme.txt",
        Bytes::from_static(b"hi"),
        ClientPut::default(),
    )
    .await
    .unwrap();

    let store = AnodeStore::new(cl.clone(), BUCKET);
    let keys = |metas: Vec<object_store::ObjectMeta>| {
        metas
            .iter()
            .map(|m| m.location.to_string())
            .collect::<Vec<_>>()
    };
    let all = keys(
        store
            .list(Some(&Path::from("p")))
            .try_collect()
            .await
            .unwrap(),
    );
    assert_eq!(all.len(), 4);
    // Only c's ts range reaches 120000; the text file has no statistics and is listed.
    let pruned = store.with_where("ts >= 120000");
    let listed = keys(
        pruned
            .list(Some(&Path::from("p")))
            .try_collect()
            .await
            .unwrap(),
    );
    assert_eq!(listed, ["p/c.parquet", "p/readme.txt"]);
    let listed = keys(
        store
            .with_where("ts BETWEEN 40000 AND 60000")
            .list(Some(&Path::from("p")))
            .try_collect()
            .await
            .unwrap(),
    );
    assert_eq!(listed, ["p/a.parquet", "p/b.parquet", "p/readme.txt"]);
    let bad = store.with_where("ts >=");
    let e = bad
        .list(Some(&Path::from("p")))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(e, OsError::Generic { .. }), "{e}");

    // The scan plan: c's row groups 2..5 (ts 120000..), with their byte ranges.
    let plan = cl.plan_scan(BUCKET, "p/", "ts >= 120000").await.unwrap();
    assert_eq!(plan.len(), 2);
    assert_eq!(plan[0].key, "p/c.parquet");
    assert_eq!(plan[0].row_groups, Some(vec![2, 3, 4]));
    assert_eq!(plan[0].ranges, local_ranges(&bodies[2], &[2, 3, 4]));
    let got: Vec<(Range<u64>, Bytes)> = cl
        .read_ranges(BUCKET, &plan[0])
        .try_collect()
        .await
        .unwrap();
    for (r, b) in &got {
        assert_eq!(b, &bodies[2].slice(r.start as usize..r.end as usize));
    }
    assert_eq!(plan[1].key, "p/readme.txt");
    assert!(plan[1].row_groups.is_none());
}

//! Listing: S3 ListObjects semantics over the ordered key space, seeking past rolled-up
//! common prefixes instead of scanning their contents.

use super::records::must_decode;
use super::{
    get_bucket, object_prefix, part_prefix, prefix_end, upload_prefix, versions, StateError,
};
use crate::kv::{KvRead, Step};
use anode_proto::*;

/// Default and maximum page size.
pub const MAX_KEYS: u32 = 1000;

/// The page size a request's `max_keys` (or `max_parts`, `max_uploads`) asks for: 0 is the
/// default, anything above it is capped to it.
fn page_limit(asked: u32) -> usize {
    if asked == 0 {
        MAX_KEYS as usize
    } else {
        asked.min(MAX_KEYS) as usize
    }
}

/// Where the listing of `prefix` resumes after `start_after` (exclusive), as a key suffix
/// relative to the bucket's object range. When `start_after` is (inside) a common prefix,
/// resume after that whole prefix.
fn resume_point(prefix: &str, delimiter: &str, start_after: &str) -> Vec<u8> {
    let mut from = prefix.as_bytes().to_vec();
    if start_after.is_empty() || start_after.as_bytes() < prefix.as_bytes() {
        return from;
    }
    let mut after = start_after.as_bytes().to_vec();
    after.push(0);
    if !delimiter.is_empty() && start_after.starts_with(prefix) {
        let rest = &start_after[prefix.len()..];
        if let Some(i) = rest.find(delimiter) {
            let cp = &start_after[..prefix.len() + i + delimiter.len()];
            if let Some(end) = prefix_end(cp.as_bytes()) {
                after = after.max(end);
            }
        }
    }
    if after > from {
        from = after;
    }
    from
}

/// How many entries a listing with a predicate reads for one page at most: past it, the page
/// ends early (truncated, with the last key read as its continuation), so a predicate that
/// matches nothing costs bounded work per request.
pub const MAX_SCANNED_WITH_PREDICATE: usize = 10_000;

/// One page of a bucket listing. With `req.where` (issue 16), only objects whose Parquet
/// statistics may hold a matching row are listed, each with the row groups that may
/// (objects without statistics are listed, not `indexed`).
pub fn list_objects(
    kv: &dyn KvRead,
    req: &ListObjectsRequest,
) -> Result<ListObjectsResponse, StateError> {
    list_objects_scanning(kv, req, MAX_SCANNED_WITH_PREDICATE)
}

/// [`list_objects`] reading at most `max_scanned` entries per page with a predicate.
pub(super) fn list_objects_scanning(
    kv: &dyn KvRead,
    req: &ListObjectsRequest,
    max_scanned: usize,
) -> Result<ListObjectsResponse, StateError> {
    get_bucket(kv, &req.bucket).ok_or_else(|| StateError::NoSuchBucket(req.bucket.clone()))?;
    let predicate = match req.r#where.as_str() {
        "" => None,
        text => Some(
            crate::pq::parse(text)
                .map_err(|e| StateError::InvalidArgument(format!("x-anode-where: {e}")))?,
        ),
    };
    let max = page_limit(req.max_keys);
    let mut scanned = 0usize;
    let base = object_prefix(&req.bucket);
    let end = match prefix_end(req.prefix.as_bytes()) {
        Some(e) if !req.prefix.is_empty() => [base.as_slice(), &e].concat(),
        _ => prefix_end(&base).expect("bucket prefix ends with 0 byte"),
    };
    let cursor = [
        base.as_slice(),
        &resume_point(&req.prefix, &req.delimiter, &req.start_after),
    ]
    .concat();
    let mut out = ListObjectsResponse::default();
    let mut count = 0usize;
    // One walk for the page: objects step to the next key, a common prefix seeks past
    // itself (its keys are never read), and the entry after a full page stops it.
    kv.walk(&cursor, Some(&end), &mut |k, v| {
        if count == max || (predicate.is_some() && scanned == max_scanned) {
            out.is_truncated = true;
            return Step::Stop;
        }
        scanned += 1;
        let key = String::from_utf8_lossy(&k[base.len()..]).into_owned();
        let rest = &key[req.prefix.len().min(key.len())..];
        if let Some(i) = (!req.delimiter.is_empty())
            .then(|| rest.find(&req.delimiter))
            .flatten()
        {
            let cp = key[..req.prefix.len() + i + req.delimiter.len()].to_string();
            count += 1;
            out.next_start_after = cp.clone();
            let next = prefix_end(cp.as_bytes()).map(|e| [base.as_slice(), &e].concat());
            out.common_prefixes.push(cp);
            return match next {
                Some(e) => Step::Seek(e),
                None => Step::Stop,
            };
        }
        let m: Manifest = must_decode(k, v);
        let (indexed, row_groups) = match &predicate {
            None => (false, Vec::new()),
            Some(p) => match pruned(kv, &req.bucket, &key, &m, p) {
                Some(rgs) if rgs.is_empty() => {
                    // No row group may match: skipped, but the page continues after it.
                    out.next_start_after = key;
                    return Step::Next;
                }
                Some(rgs) => (true, rgs),
                None => (false, Vec::new()),
            },
        };
        out.objects.push(ObjectEntry {
            key: key.clone(),
            size: m.size,
            etag: m.etag,
            mtime_ms: m.mtime_ms,
            indexed,
            row_groups,
            object_version: m.object_version,
        });
        count += 1;
        out.next_start_after = key;
        Step::Next
    });
    if !out.is_truncated {
        out.next_start_after.clear();
    }
    Ok(out)
}

/// The row groups of `m` that may match `p` by its statistics; `None` when it has none.
fn pruned(
    kv: &dyn KvRead,
    bucket: &str,
    key: &str,
    m: &Manifest,
    p: &crate::pq::Predicate,
) -> Option<Vec<u32>> {
    let info = m.parquet.as_ref().filter(|i| i.has_stats)?;
    let _ = info;
    let stats = super::get_parquet_stats(kv, bucket, key, m.object_version)?;
    Some(crate::pq::prune(p, &stats))
}

/// One page of S3 ListObjectVersions: every version of the bucket's keys (current objects
/// from `o/`, the rest from `v/`), by key, newest first within a key, with the S3 markers
/// (`key_marker` alone: after every version of that key; with `version_id_marker`: after that
/// version), prefix, delimiter (a common prefix counts as one entry) and max-keys.
pub fn list_object_versions(
    kv: &dyn KvRead,
    req: &ListObjectVersionsRequest,
) -> Result<ListObjectVersionsResponse, StateError> {
    get_bucket(kv, &req.bucket).ok_or_else(|| StateError::NoSuchBucket(req.bucket.clone()))?;
    let max = page_limit(req.max_keys);
    let ob = object_prefix(&req.bucket);
    let vb = versions::versions_prefix(&req.bucket);
    let range_end = |base: &[u8]| match prefix_end(req.prefix.as_bytes()) {
        Some(e) if !req.prefix.is_empty() => [base, &e].concat(),
        _ => prefix_end(base).expect("bucket prefix ends with 0 byte"),
    };
    let (o_end, v_end) = (range_end(&ob), range_end(&vb));
    // Cursors in both ranges.
    let mut o_cur = [ob.as_slice(), req.prefix.as_bytes()].concat();
    let mut v_cur = [vb.as_slice(), req.prefix.as_bytes()].concat();
    if !req.key_marker.is_empty() {
        let skip_key = |o_cur: &mut Vec<u8>, v_cur: &mut Vec<u8>, key: &str| {
            let oc = [ob.as_slice(), key.as_bytes(), b"\0"].concat();
            let vp = versions::key_versions_prefix(&req.bucket, key);
            let vc = prefix_end(&vp).unwrap_or(vp);
            *o_cur = (*o_cur).clone().max(oc);
            *v_cur = (*v_cur).clone().max(vc);
        };
        match req.version_id_marker.as_str() {
            "" => skip_key(&mut o_cur, &mut v_cur, &req.key_marker),
            vid => {
                // After that version: the current object (if it is the marker's version, or
                // newer) is passed; versions older than it follow.
                let seq = marker_seq(kv, &req.bucket, &req.key_marker, vid)?;
                let oc = [ob.as_slice(), req.key_marker.as_bytes(), b"\0"].concat();
                o_cur = o_cur.max(oc);
                match seq.checked_sub(1) {
                    Some(next) if next > 0 => {
                        let vc = [
                            versions::key_versions_prefix(&req.bucket, &req.key_marker).as_slice(),
                            &(!next).to_be_bytes(),
                        ]
                        .concat();
                        v_cur = v_cur.max(vc);
                    }
                    _ => skip_key(&mut o_cur, &mut v_cur, &req.key_marker),
                }
            }
        }
        // A marker inside a common prefix resumes after the whole prefix.
        if !req.delimiter.is_empty() && req.key_marker.starts_with(&req.prefix) {
            let rest = &req.key_marker[req.prefix.len()..];
            if let Some(i) = rest.find(&req.delimiter) {
                let cp = &req.key_marker[..req.prefix.len() + i + req.delimiter.len()];
                if let Some(e) = prefix_end(cp.as_bytes()) {
                    o_cur = o_cur.max([ob.as_slice(), &e].concat());
                    v_cur = v_cur.max([vb.as_slice(), &e].concat());
                }
            }
        }
    }
    let mut out = ListObjectVersionsResponse::default();
    let mut count = 0usize;
    // The newest version of the key whose versions are being listed, to mark is_latest.
    let mut latest_of: Option<(String, u64)> = None;
    loop {
        let o_next = kv.scan(&o_cur, Some(&o_end), 1).pop();
        let v_next = kv.scan(&v_cur, Some(&v_end), 1).pop();
        let o_key = o_next.as_ref().map(|(k, _)| &k[ob.len()..]);
        let v_key = v_next.as_ref().map(|(k, _)| &k[vb.len()..k.len() - 9]);
        let take_o = match (o_key, v_key) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            // The current object of a key comes before its other versions.
            (Some(a), Some(b)) => a <= b,
        };
        let key_bytes = if take_o { o_key } else { v_key }.expect("one side has an entry");
        let key = String::from_utf8_lossy(key_bytes).into_owned();
        if count == max {
            out.is_truncated = true;
            break;
        }
        let rest = &key[req.prefix.len().min(key.len())..];
        if let Some(i) = (!req.delimiter.is_empty())
            .then(|| rest.find(&req.delimiter))
            .flatten()
        {
            let cp = key[..req.prefix.len() + i + req.delimiter.len()].to_string();
            count += 1;
            out.next_key_marker = cp.clone();
            out.next_version_id_marker.clear();
            let Some(e) = prefix_end(cp.as_bytes()) else {
                out.common_prefixes.push(cp);
                break;
            };
            o_cur = [ob.as_slice(), &e].concat();
            v_cur = [vb.as_slice(), &e].concat();
            out.common_prefixes.push(cp);
            continue;
        }
        let (k, v) = if take_o { o_next } else { v_next }.expect("entry");
        let m: Manifest = must_decode(&k, &v);
        let seq = versions::seq_of(&m);
        let is_latest = match &latest_of {
            Some((lk, _)) if *lk == key => false,
            _ => {
                // First entry seen of this key in this page: the newest unless the page
                // resumed inside the key.
                let newest = newest_seq(kv, &req.bucket, &key);
                latest_of = Some((key.clone(), newest));
                newest == seq
            }
        };
        let vid = versions::version_id_of(&m).to_string();
        out.versions.push(VersionEntry {
            key: key.clone(),
            version_id: vid.clone(),
            is_latest,
            delete_marker: m.delete_marker,
            size: m.size,
            etag: m.etag,
            mtime_ms: m.mtime_ms,
        });
        count += 1;
        out.next_key_marker = key;
        out.next_version_id_marker = vid;
        let mut next = k.clone();
        next.push(0);
        if take_o {
            o_cur = next;
        } else {
            v_cur = next;
        }
    }
    if !out.is_truncated {
        out.next_key_marker.clear();
        out.next_version_id_marker.clear();
    }
    Ok(out)
}

/// The seq of the newest version of a key.
fn newest_seq(kv: &dyn KvRead, bucket: &str, key: &str) -> u64 {
    if let Some(m) = super::get_msg::<Manifest>(kv, &super::object_key(bucket, key)) {
        return versions::seq_of(&m);
    }
    versions::stored_versions(kv, bucket, key, 1)
        .first()
        .map_or(0, versions::seq_of)
}

/// The seq a version-id-marker names (the null version's is looked up).
fn marker_seq(kv: &dyn KvRead, bucket: &str, key: &str, vid: &str) -> Result<u64, StateError> {
    match versions::parse_version_id(vid)? {
        Some(seq) => Ok(seq),
        None => Ok(versions::get_version(kv, bucket, key, Some(vid), true)
            .map(|m| versions::seq_of(&m))
            // A null marker of a version gone meanwhile: resume after the whole key.
            .unwrap_or(1)),
    }
}

/// One page of an upload's parts.
pub fn list_parts(
    kv: &dyn KvRead,
    req: &ListPartsRequest,
) -> Result<ListPartsResponse, StateError> {
    let upload = super::get_upload(kv, &req.bucket, &req.key, &req.upload_id)
        .ok_or_else(|| StateError::NoSuchUpload(req.upload_id.clone()))?;
    let max = page_limit(req.max_parts);
    let prefix = part_prefix(&req.bucket, &req.key, &req.upload_id);
    let start = [
        prefix.as_slice(),
        &(req.part_number_marker.saturating_add(1)).to_be_bytes(),
    ]
    .concat();
    let rows = kv.scan(&start, prefix_end(&prefix).as_deref(), max + 1);
    let mut parts: Vec<PartRecord> = rows
        .into_iter()
        .map(|(k, v)| must_decode::<PartRecord>(&k, &v))
        .collect();
    let is_truncated = parts.len() > max;
    parts.truncate(max);
    let next = if is_truncated {
        parts.last().map(|p| p.part_number).unwrap_or(0)
    } else {
        0
    };
    Ok(ListPartsResponse {
        upload: Some(upload),
        parts,
        is_truncated,
        next_part_number_marker: next,
    })
}

/// One page of a bucket's in-progress uploads, ordered by key then upload id.
pub fn list_uploads(
    kv: &dyn KvRead,
    req: &ListMultipartUploadsRequest,
) -> Result<ListMultipartUploadsResponse, StateError> {
    get_bucket(kv, &req.bucket).ok_or_else(|| StateError::NoSuchBucket(req.bucket.clone()))?;
    let max = page_limit(req.max_uploads);
    let base = upload_prefix(&req.bucket);
    let mut start = [base.as_slice(), req.prefix.as_bytes()].concat();
    if !req.key_marker.is_empty() {
        let marker = if req.upload_id_marker.is_empty() {
            // After every upload of key_marker.
            prefix_end(&[base.as_slice(), req.key_marker.as_bytes(), b"\0"].concat())
                .unwrap_or_default()
        } else {
            [
                base.as_slice(),
                req.key_marker.as_bytes(),
                b"\0",
                req.upload_id_marker.as_bytes(),
                b"\0",
            ]
            .concat()
        };
        start = start.max(marker);
    }
    let end = if req.prefix.is_empty() {
        prefix_end(&base)
    } else {
        prefix_end(&[base.as_slice(), req.prefix.as_bytes()].concat())
    };
    let rows = kv.scan(&start, end.as_deref(), max + 1);
    let mut uploads: Vec<MultipartUpload> = rows
        .into_iter()
        .map(|(k, v)| must_decode::<MultipartUpload>(&k, &v))
        .collect();
    let is_truncated = uploads.len() > max;
    uploads.truncate(max);
    Ok(ListMultipartUploadsResponse {
        uploads,
        is_truncated,
    })
}

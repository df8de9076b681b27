//! Listing: S3 ListObjects semantics over the ordered key space, seeking past rolled-up
//! common prefixes instead of scanning their contents.

use super::records::must_decode;
use super::{get_bucket, object_prefix, part_prefix, prefix_end, upload_prefix, StateError};
use crate::kv::{KvRead, Step};
use anode_proto::*;

/// Default and maximum page size.
pub const MAX_KEYS: u32 = 1000;

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

/// One page of a bucket listing.
pub fn list_objects(
    kv: &dyn KvRead,
    req: &ListObjectsRequest,
) -> Result<ListObjectsResponse, StateError> {
    get_bucket(kv, &req.bucket).ok_or_else(|| StateError::NoSuchBucket(req.bucket.clone()))?;
    let max = if req.max_keys == 0 {
        MAX_KEYS
    } else {
        req.max_keys.min(MAX_KEYS)
    } as usize;
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
        if count == max {
            out.is_truncated = true;
            return Step::Stop;
        }
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
        out.objects.push(ObjectEntry {
            key: key.clone(),
            size: m.size,
            etag: m.etag,
            mtime_ms: m.mtime_ms,
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

/// One page of an upload's parts.
pub fn list_parts(
    kv: &dyn KvRead,
    req: &ListPartsRequest,
) -> Result<ListPartsResponse, StateError> {
    let upload = super::get_upload(kv, &req.bucket, &req.key, &req.upload_id)
        .ok_or_else(|| StateError::NoSuchUpload(req.upload_id.clone()))?;
    let max = if req.max_parts == 0 {
        MAX_KEYS
    } else {
        req.max_parts.min(MAX_KEYS)
    } as usize;
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
    let max = if req.max_uploads == 0 {
        MAX_KEYS
    } else {
        req.max_uploads.min(MAX_KEYS)
    } as usize;
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

//! Test support: an in-memory [`Backend`] with the master's semantics that matter to the
//! gateway, and a signed-request helper.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use anode_client::{
    AccessKey, BucketConfig, ByteStream, ClientError, CompletePart, ErrorCode,
    ListMultipartUploadsRequest, ListMultipartUploadsResponse, ListObjectsRequest,
    ListObjectsResponse, ListPartsRequest, ListPartsResponse, Manifest, ObjectEntry, PartRecord,
    PutOptions,
};
use anode_proto::MultipartUpload;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use md5::{Digest, Md5};

use crate::backend::{Backend, BodyStream};

/// Fixed test clock: 2013-05-24T00:00:00Z in milliseconds.
pub const NOW_MS: u64 = 1_369_353_600_000;

fn remote(code: ErrorCode) -> ClientError {
    ClientError::Remote {
        code,
        message: format!("{code} (memory backend)"),
        resource: String::new(),
    }
}

#[derive(Default)]
struct Bucket {
    config: BucketConfig,
    objects: BTreeMap<String, Manifest>,
}

struct Upload {
    record: MultipartUpload,
    parts: BTreeMap<u32, (PartRecord, Bytes)>,
}

#[derive(Default)]
struct State {
    buckets: BTreeMap<String, Bucket>,
    uploads: BTreeMap<(String, String, String), Upload>,
    keys: HashMap<String, String>,
    next_id: u64,
}

/// The in-memory backend. Object bodies live in `Manifest::inline_data`.
#[derive(Default)]
pub struct MemBackend {
    state: Mutex<State>,
    /// Number of `get_access_key` calls (to observe the key cache).
    pub key_lookups: std::sync::atomic::AtomicUsize,
}

impl MemBackend {
    /// A backend knowing one access key.
    pub fn with_key(ak: &str, sk: &str) -> MemBackend {
        let b = MemBackend::default();
        b.state.lock().unwrap().keys.insert(ak.into(), sk.into());
        b
    }

    /// The stored body of an object, if any.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Manifest> {
        let s = self.state.lock().unwrap();
        s.buckets.get(bucket)?.objects.get(key).cloned()
    }
}

async fn collect(mut body: BodyStream) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    while let Some(piece) = body.next().await {
        buf.extend_from_slice(&piece?);
    }
    Ok(buf.freeze())
}

fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

#[async_trait::async_trait]
impl Backend for MemBackend {
    async fn create_bucket(&self, name: &str, owner: &str) -> Result<(), ClientError> {
        let mut s = self.state.lock().unwrap();
        if let Some(b) = s.buckets.get(name) {
            return Err(remote(if b.config.owner_access_key == owner {
                ErrorCode::BucketAlreadyOwnedByYou
            } else {
                ErrorCode::BucketAlreadyExists
            }));
        }
        let config = BucketConfig {
            name: name.into(),
            owner_access_key: owner.into(),
            created_ms: NOW_MS,
            ..Default::default()
        };
        s.buckets.insert(
            name.into(),
            Bucket {
                config,
                ..Default::default()
            },
        );
        Ok(())
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), ClientError> {
        let mut s = self.state.lock().unwrap();
        let b = s
            .buckets
            .get(name)
            .ok_or_else(|| remote(ErrorCode::NoSuchBucket))?;
        if !b.objects.is_empty() || s.uploads.keys().any(|(bk, _, _)| bk == name) {
            return Err(remote(ErrorCode::BucketNotEmpty));
        }
        s.buckets.remove(name);
        Ok(())
    }

    async fn list_buckets(&self) -> Result<Vec<BucketConfig>, ClientError> {
        let s = self.state.lock().unwrap();
        Ok(s.buckets.values().map(|b| b.config.clone()).collect())
    }

    async fn head_bucket(&self, name: &str) -> Result<BucketConfig, ClientError> {
        let s = self.state.lock().unwrap();
        s.buckets
            .get(name)
            .map(|b| b.config.clone())
            .ok_or_else(|| remote(ErrorCode::NoSuchBucket))
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        opts: PutOptions,
    ) -> Result<Manifest, ClientError> {
        let data = collect(body).await?;
        let digest = md5(&data);
        if opts.content_md5.is_some_and(|m| m != digest) {
            return Err(ClientError::BadDigest);
        }
        let manifest = Manifest {
            version: 1,
            size: data.len() as u64,
            etag: hex::encode(digest),
            content_type: opts.content_type,
            user_metadata: opts.user_metadata,
            system_metadata: opts.system_metadata,
            inline_data: data.to_vec(),
            mtime_ms: NOW_MS,
            ..Default::default()
        };
        self.commit(bucket, key, manifest, opts.if_match_etag)
    }

    async fn head_object(&self, bucket: &str, key: &str) -> Result<Manifest, ClientError> {
        let s = self.state.lock().unwrap();
        let b = s
            .buckets
            .get(bucket)
            .ok_or_else(|| remote(ErrorCode::NoSuchBucket))?;
        b.objects
            .get(key)
            .cloned()
            .ok_or_else(|| remote(ErrorCode::NoSuchKey))
    }

    fn read_manifest(
        &self,
        _bucket: &str,
        manifest: &Manifest,
        range: Option<(u64, u64)>,
    ) -> ByteStream {
        let data = Bytes::from(manifest.inline_data.clone());
        let (start, end) = range.unwrap_or((0, data.len().saturating_sub(1) as u64));
        let slice = if data.is_empty() {
            data
        } else {
            data.slice(start as usize..=(end as usize).min(data.len() - 1))
        };
        // Small pieces for small objects, to exercise streaming.
        let piece = if slice.len() < 1024 { 7 } else { 64 << 10 };
        let pieces: Vec<Result<Bytes, ClientError>> = (0..slice.len())
            .step_by(piece)
            .map(|i| Ok(slice.slice(i..(i + piece).min(slice.len()))))
            .collect();
        futures::stream::iter(pieces).boxed()
    }

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        replace: Option<PutOptions>,
    ) -> Result<Manifest, ClientError> {
        let mut m = self.head_object(src_bucket, src_key).await?;
        let mut cond = None;
        if let Some(o) = replace {
            m.content_type = o.content_type;
            m.user_metadata = o.user_metadata;
            m.system_metadata = o.system_metadata;
            cond = o.if_match_etag;
        }
        self.commit(dst_bucket, dst_key, m, cond)
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool, ClientError> {
        let mut s = self.state.lock().unwrap();
        let b = s
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| remote(ErrorCode::NoSuchBucket))?;
        Ok(b.objects.remove(key).is_some())
    }

    async fn delete_objects(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<String>, ClientError> {
        let mut s = self.state.lock().unwrap();
        let b = s
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| remote(ErrorCode::NoSuchBucket))?;
        Ok(keys
            .into_iter()
            .filter(|k| b.objects.remove(k).is_some())
            .collect())
    }

    async fn list_objects(
        &self,
        req: ListObjectsRequest,
    ) -> Result<ListObjectsResponse, ClientError> {
        let s = self.state.lock().unwrap();
        let b = s
            .buckets
            .get(&req.bucket)
            .ok_or_else(|| remote(ErrorCode::NoSuchBucket))?;
        Ok(list(&b.objects, &req))
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<String, ClientError> {
        let mut s = self.state.lock().unwrap();
        if !s.buckets.contains_key(bucket) {
            return Err(remote(ErrorCode::NoSuchBucket));
        }
        s.next_id += 1;
        let id = format!("upload-{}", s.next_id);
        let record = MultipartUpload {
            version: 1,
            bucket: bucket.into(),
            key: key.into(),
            upload_id: id.clone(),
            initiated_ms: NOW_MS,
            content_type: opts.content_type,
            user_metadata: opts.user_metadata,
            system_metadata: opts.system_metadata,
        };
        s.uploads.insert(
            (bucket.into(), key.into(), id.clone()),
            Upload {
                record,
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: BodyStream,
        content_md5: Option<[u8; 16]>,
    ) -> Result<PartRecord, ClientError> {
        let data = collect(body).await?;
        let digest = md5(&data);
        if content_md5.is_some_and(|m| m != digest) {
            return Err(ClientError::BadDigest);
        }
        let mut s = self.state.lock().unwrap();
        let up = s
            .uploads
            .get_mut(&(bucket.into(), key.into(), upload_id.into()))
            .ok_or_else(|| remote(ErrorCode::NoSuchUpload))?;
        let part = PartRecord {
            version: 1,
            part_number,
            etag: hex::encode(digest),
            size: data.len() as u64,
            mtime_ms: NOW_MS,
            ..Default::default()
        };
        up.parts.insert(part_number, (part.clone(), data));
        Ok(part)
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletePart>,
        if_match_etag: Option<String>,
    ) -> Result<Manifest, ClientError> {
        if let Some(cond) = &if_match_etag {
            // Like the master: a failed condition leaves the upload open.
            let s = self.state.lock().unwrap();
            let current = s.buckets.get(bucket).and_then(|b| b.objects.get(key));
            if current.map(|m| m.etag.as_str()).unwrap_or("") != cond {
                return Err(remote(ErrorCode::PreconditionFailed));
            }
        }
        let up = {
            let mut s = self.state.lock().unwrap();
            s.uploads
                .remove(&(bucket.into(), key.into(), upload_id.into()))
                .ok_or_else(|| remote(ErrorCode::NoSuchUpload))?
        };
        let mut data = BytesMut::new();
        let mut md5s = Vec::new();
        let mut sizes = Vec::new();
        for p in &parts {
            let (rec, bytes) = up
                .parts
                .get(&p.part_number)
                .filter(|(r, _)| r.etag == p.etag)
                .ok_or_else(|| remote(ErrorCode::InvalidPart))?;
            data.extend_from_slice(bytes);
            md5s.extend_from_slice(&hex::decode(&rec.etag).unwrap());
            sizes.push(rec.size);
        }
        let m = Manifest {
            version: 1,
            size: data.len() as u64,
            etag: format!("{}-{}", hex::encode(md5(&md5s)), parts.len()),
            content_type: up.record.content_type,
            user_metadata: up.record.user_metadata,
            system_metadata: up.record.system_metadata,
            inline_data: data.to_vec(),
            mtime_ms: NOW_MS,
            part_sizes: sizes,
            ..Default::default()
        };
        self.commit(bucket, key, m, if_match_etag)
    }

    async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ClientError> {
        let mut s = self.state.lock().unwrap();
        s.uploads
            .remove(&(bucket.into(), key.into(), upload_id.into()))
            .map(|_| ())
            .ok_or_else(|| remote(ErrorCode::NoSuchUpload))
    }

    async fn list_parts(&self, req: ListPartsRequest) -> Result<ListPartsResponse, ClientError> {
        let s = self.state.lock().unwrap();
        let up = s
            .uploads
            .get(&(req.bucket, req.key, req.upload_id))
            .ok_or_else(|| remote(ErrorCode::NoSuchUpload))?;
        let max = req.max_parts.max(1) as usize;
        let mut parts: Vec<PartRecord> = up
            .parts
            .range(req.part_number_marker + 1..)
            .map(|(_, (p, _))| p.clone())
            .take(max + 1)
            .collect();
        let is_truncated = parts.len() > max;
        parts.truncate(max);
        let next = if is_truncated {
            parts.last().map_or(0, |p| p.part_number)
        } else {
            0
        };
        Ok(ListPartsResponse {
            upload: Some(up.record.clone()),
            parts,
            is_truncated,
            next_part_number_marker: next,
        })
    }

    async fn list_multipart_uploads(
        &self,
        req: ListMultipartUploadsRequest,
    ) -> Result<ListMultipartUploadsResponse, ClientError> {
        let s = self.state.lock().unwrap();
        if !s.buckets.contains_key(&req.bucket) {
            return Err(remote(ErrorCode::NoSuchBucket));
        }
        let max = req.max_uploads.max(1) as usize;
        let mut uploads: Vec<MultipartUpload> = s
            .uploads
            .values()
            .map(|u| u.record.clone())
            .filter(|u| u.bucket == req.bucket && u.key.starts_with(&req.prefix))
            .filter(|u| {
                req.key_marker.is_empty()
                    || (u.key.as_str(), u.upload_id.as_str())
                        > (req.key_marker.as_str(), req.upload_id_marker.as_str())
            })
            .take(max + 1)
            .collect();
        let is_truncated = uploads.len() > max;
        uploads.truncate(max);
        Ok(ListMultipartUploadsResponse {
            uploads,
            is_truncated,
        })
    }

    async fn get_access_key(&self, access_key: &str) -> Result<AccessKey, ClientError> {
        self.key_lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let s = self.state.lock().unwrap();
        let secret = s
            .keys
            .get(access_key)
            .ok_or_else(|| remote(ErrorCode::NoSuchAccessKey))?;
        Ok(AccessKey {
            access_key: access_key.into(),
            secret_key: secret.clone(),
            ..Default::default()
        })
    }
}

impl MemBackend {
    fn commit(
        &self,
        bucket: &str,
        key: &str,
        manifest: Manifest,
        if_match: Option<String>,
    ) -> Result<Manifest, ClientError> {
        let mut s = self.state.lock().unwrap();
        let b = s
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| remote(ErrorCode::NoSuchBucket))?;
        if let Some(cond) = if_match {
            let current = b.objects.get(key).map(|m| m.etag.as_str()).unwrap_or("");
            if current != cond {
                return Err(remote(ErrorCode::PreconditionFailed));
            }
        }
        b.objects.insert(key.into(), manifest.clone());
        Ok(manifest)
    }
}

/// S3 listing semantics over a map (the master's behaviour, simplified).
fn list(objects: &BTreeMap<String, Manifest>, req: &ListObjectsRequest) -> ListObjectsResponse {
    let max = if req.max_keys == 0 {
        1000
    } else {
        req.max_keys
    } as usize;
    let mut out = ListObjectsResponse::default();
    let mut count = 0;
    let start = Bound::Excluded(req.start_after.clone());
    for (k, m) in objects.range((start, Bound::Unbounded)) {
        if !k.starts_with(&req.prefix) {
            continue;
        }
        let rest = &k[req.prefix.len()..];
        let cp = (!req.delimiter.is_empty())
            .then(|| rest.find(&req.delimiter))
            .flatten()
            .map(|i| k[..req.prefix.len() + i + req.delimiter.len()].to_string());
        if let Some(cp) = &cp {
            if out.common_prefixes.last() == Some(cp) || cp.as_str() <= req.start_after.as_str() {
                continue;
            }
        }
        if count == max {
            out.is_truncated = true;
            break;
        }
        count += 1;
        match cp {
            Some(cp) => {
                out.next_start_after = cp.clone();
                out.common_prefixes.push(cp);
            }
            None => {
                out.next_start_after = k.clone();
                out.objects.push(ObjectEntry {
                    key: k.clone(),
                    size: m.size,
                    etag: m.etag.clone(),
                    mtime_ms: m.mtime_ms,
                });
            }
        }
    }
    if !out.is_truncated {
        out.next_start_after.clear();
    }
    out
}

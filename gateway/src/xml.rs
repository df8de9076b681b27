//! S3 XML: rendering response documents and parsing request bodies. Pure functions over plain
//! data; nothing here does IO.
//!
//! Every response document carries `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"` on its
//! root, times are ISO 8601 with milliseconds (`2009-10-12T17:50:30.000Z`) and ETags are quoted.
//! Request bodies go through a small element tree ([`parse_tree`]) so every document type is
//! validated the same way; anything unparsable is `MalformedXML`.

use anode_proto::{BucketConfig, MultipartUpload, ObjectEntry, PartRecord};
use quick_xml::events::Event;

use crate::error::S3Error;
use crate::http_util::url_encode_s3;

/// The S3 document namespace.
pub const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// Most objects one DeleteObjects request may name.
pub const MAX_DELETE_OBJECTS: usize = 1000;
/// Deepest element nesting accepted in a request body.
const MAX_XML_DEPTH: usize = 16;

/// A minimal XML writer: elements and escaped text into a `String`.
#[derive(Debug)]
pub struct XmlWriter {
    buf: String,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    /// A document starting with the XML declaration.
    pub fn new() -> Self {
        XmlWriter {
            buf: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        }
    }

    /// `<name>`.
    pub fn open(&mut self, name: &str) {
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push('>');
    }

    /// `<name xmlns="...">`: the root of an S3 response document.
    pub fn open_root(&mut self, name: &str) {
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push_str(" xmlns=\"");
        self.buf.push_str(S3_XMLNS);
        self.buf.push_str("\">");
    }

    /// `<name k="v" ...>` with the attribute values escaped.
    pub fn open_with_attrs(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.buf.push('<');
        self.buf.push_str(name);
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("=\"");
            push_escaped(&mut self.buf, v);
            self.buf.push('"');
        }
        self.buf.push('>');
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
    }

    /// `<name>text</name>` with `text` escaped.
    pub fn elem(&mut self, name: &str, text: &str) {
        self.open(name);
        push_escaped(&mut self.buf, text);
        self.close(name);
    }

    /// [`XmlWriter::elem`] only when `text` is `Some`.
    pub fn elem_opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text {
            self.elem(name, t);
        }
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.buf
    }
}

/// Escape text for element content. Control characters other than tab/newline/CR cannot appear
/// in XML 1.0 at all; they are written as numeric references (clients wanting exact keys use
/// `encoding-type=url`).
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                out.push_str(&format!("&#x{:X};", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// `2009-10-12T17:50:30.000Z` for milliseconds since the Unix epoch.
pub fn iso8601_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ms % 1000
    )
}

/// An ETag as S3 writes it: in double quotes.
pub fn quote_etag(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

/// The owner shown in listings (Anode has no accounts: the access key stands in for one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// Canonical id.
    pub id: String,
    /// Display name.
    pub display_name: String,
}

impl Owner {
    fn write(&self, w: &mut XmlWriter, tag: &str) {
        w.open(tag);
        w.elem("ID", &self.id);
        w.elem("DisplayName", &self.display_name);
        w.close(tag);
    }
}

/// Encode a key-like value for a listing when `encoding-type=url` was asked for.
fn enc(url: bool, s: &str) -> String {
    if url {
        url_encode_s3(s)
    } else {
        s.to_string()
    }
}

// ---- responses ------------------------------------------------------------------------------

/// `ListAllMyBucketsResult`.
pub fn list_all_my_buckets(owner: &Owner, buckets: &[BucketConfig]) -> String {
    let mut w = XmlWriter::new();
    w.open_root("ListAllMyBucketsResult");
    owner.write(&mut w, "Owner");
    w.open("Buckets");
    for b in buckets {
        w.open("Bucket");
        w.elem("Name", &b.name);
        w.elem("CreationDate", &iso8601_ms(b.created_ms));
        w.close("Bucket");
    }
    w.close("Buckets");
    w.close("ListAllMyBucketsResult");
    w.finish()
}

/// One page of a bucket listing, as both ListObjects versions render it.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// Bucket name.
    pub bucket: String,
    /// `prefix` asked for.
    pub prefix: String,
    /// `delimiter` asked for, if any.
    pub delimiter: Option<String>,
    /// `max-keys` in force.
    pub max_keys: u32,
    /// Whether `encoding-type=url` was asked for.
    pub encoding_url: bool,
    /// Whether more results follow.
    pub is_truncated: bool,
    /// Objects of the page.
    pub objects: Vec<ObjectEntry>,
    /// Rolled-up common prefixes of the page.
    pub common_prefixes: Vec<String>,
    /// Owner to show in each `Contents` (v1 always; v2 with `fetch-owner=true`).
    pub owner: Option<Owner>,
}

/// The listing-version-specific fields.
#[derive(Clone, Debug)]
pub enum ListVersion {
    /// ListObjects (v1).
    V1 {
        /// `marker` asked for.
        marker: String,
        /// Where the next page starts (only when truncated).
        next_marker: Option<String>,
    },
    /// ListObjectsV2.
    V2 {
        /// `start-after` asked for.
        start_after: Option<String>,
        /// `continuation-token` given.
        continuation_token: Option<String>,
        /// Token for the next page (only when truncated).
        next_continuation_token: Option<String>,
    },
}

/// `ListBucketResult` (v1 or v2).
pub fn list_bucket_result(page: &ListPage, version: &ListVersion) -> String {
    let url = page.encoding_url;
    let mut w = XmlWriter::new();
    w.open_root("ListBucketResult");
    w.elem("Name", &page.bucket);
    w.elem("Prefix", &enc(url, &page.prefix));
    match version {
        ListVersion::V1 {
            marker,
            next_marker,
        } => {
            w.elem("Marker", &enc(url, marker));
            if page.is_truncated {
                w.elem_opt(
                    "NextMarker",
                    next_marker.as_ref().map(|m| enc(url, m)).as_deref(),
                );
            }
        }
        ListVersion::V2 {
            start_after,
            continuation_token,
            next_continuation_token,
        } => {
            w.elem_opt(
                "StartAfter",
                start_after.as_ref().map(|s| enc(url, s)).as_deref(),
            );
            w.elem_opt("ContinuationToken", continuation_token.as_deref());
            if page.is_truncated {
                w.elem_opt("NextContinuationToken", next_continuation_token.as_deref());
            }
            let count = page.objects.len() + page.common_prefixes.len();
            w.elem("KeyCount", &count.to_string());
        }
    }
    w.elem("MaxKeys", &page.max_keys.to_string());
    if let Some(d) = &page.delimiter {
        w.elem("Delimiter", &enc(url, d));
    }
    if url {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", bool_str(page.is_truncated));
    for o in &page.objects {
        w.open("Contents");
        w.elem("Key", &enc(url, &o.key));
        w.elem("LastModified", &iso8601_ms(o.mtime_ms));
        w.elem("ETag", &quote_etag(&o.etag));
        w.elem("Size", &o.size.to_string());
        if let Some(owner) = &page.owner {
            owner.write(&mut w, "Owner");
        }
        w.elem("StorageClass", "STANDARD");
        if o.indexed {
            // Issue 16 (`x-anode-where`): the row groups that may match (docs/parquet.md).
            let rgs: Vec<String> = o.row_groups.iter().map(u32::to_string).collect();
            w.elem("AnodeRowGroups", &rgs.join(","));
        }
        w.close("Contents");
    }
    write_common_prefixes(&mut w, url, &page.common_prefixes);
    w.close("ListBucketResult");
    w.finish()
}

fn write_common_prefixes(w: &mut XmlWriter, url: bool, prefixes: &[String]) {
    for p in prefixes {
        w.open("CommonPrefixes");
        w.elem("Prefix", &enc(url, p));
        w.close("CommonPrefixes");
    }
}

/// `InitiateMultipartUploadResult`.
pub fn initiate_multipart_upload(bucket: &str, key: &str, upload_id: &str) -> String {
    let mut w = XmlWriter::new();
    w.open_root("InitiateMultipartUploadResult");
    w.elem("Bucket", bucket);
    w.elem("Key", key);
    w.elem("UploadId", upload_id);
    w.close("InitiateMultipartUploadResult");
    w.finish()
}

/// `CompleteMultipartUploadResult`.
pub fn complete_multipart_upload(location: &str, bucket: &str, key: &str, etag: &str) -> String {
    complete_multipart_upload_checksum(location, bucket, key, etag, None)
}

/// A checksum in an S3 document: element (`ChecksumCRC32`...), base64 value, type.
pub type ChecksumElem<'a> = (&'a str, &'a str, &'a str);

/// [`complete_multipart_upload`] with the object's checksum and its type.
pub fn complete_multipart_upload_checksum(
    location: &str,
    bucket: &str,
    key: &str,
    etag: &str,
    checksum: Option<ChecksumElem<'_>>,
) -> String {
    let mut w = XmlWriter::new();
    w.open_root("CompleteMultipartUploadResult");
    w.elem("Location", location);
    w.elem("Bucket", bucket);
    w.elem("Key", key);
    w.elem("ETag", &quote_etag(etag));
    if let Some((name, value, kind)) = checksum {
        w.elem(name, value);
        w.elem("ChecksumType", kind);
    }
    w.close("CompleteMultipartUploadResult");
    w.finish()
}

/// The XML element of an algorithm's checksum (`CRC32` -> `ChecksumCRC32`); None for none.
pub fn checksum_elem(algorithm: &str) -> Option<&'static str> {
    match algorithm {
        "CRC32" => Some("ChecksumCRC32"),
        "CRC32C" => Some("ChecksumCRC32C"),
        "CRC64NVME" => Some("ChecksumCRC64NVME"),
        "SHA1" => Some("ChecksumSHA1"),
        "SHA256" => Some("ChecksumSHA256"),
        _ => None,
    }
}

/// What GetObjectAttributes answers (each part only when asked for).
#[derive(Clone, Debug, Default)]
pub struct ObjectAttributes {
    /// ETag (unquoted, as S3 writes it here).
    pub etag: Option<String>,
    /// The checksum: algorithm, value, type.
    pub checksum: Option<(String, String, String)>,
    /// ObjectParts: (total parts, part number marker, next marker, max parts, truncated,
    /// parts as (number, size, checksum value)).
    pub parts: Option<PartsAttr>,
    /// StorageClass.
    pub storage_class: bool,
    /// ObjectSize.
    pub size: Option<u64>,
}

/// The `ObjectParts` of GetObjectAttributes.
#[derive(Clone, Debug, Default)]
pub struct PartsAttr {
    /// Parts of the object.
    pub total: usize,
    /// `x-amz-part-number-marker` given.
    pub marker: u32,
    /// Where the next page starts.
    pub next_marker: u32,
    /// `x-amz-max-parts` in force.
    pub max_parts: u32,
    /// More parts follow.
    pub truncated: bool,
    /// The checksum algorithm of the parts ("" none).
    pub algorithm: String,
    /// This page: (part number, size, checksum value).
    pub parts: Vec<(u32, u64, String)>,
}

/// `GetObjectAttributesResponse`.
pub fn object_attributes(a: &ObjectAttributes) -> String {
    let mut w = XmlWriter::new();
    w.open_root("GetObjectAttributesResponse");
    if let Some(e) = &a.etag {
        w.elem("ETag", e);
    }
    if let Some((alg, value, kind)) = &a.checksum {
        if let Some(name) = checksum_elem(alg) {
            w.open("Checksum");
            w.elem(name, value);
            w.elem("ChecksumType", kind);
            w.close("Checksum");
        }
    }
    if let Some(p) = &a.parts {
        w.open("ObjectParts");
        w.elem("PartsCount", &p.total.to_string());
        w.elem("TotalPartsCount", &p.total.to_string());
        w.elem("PartNumberMarker", &p.marker.to_string());
        w.elem("NextPartNumberMarker", &p.next_marker.to_string());
        w.elem("MaxParts", &p.max_parts.to_string());
        w.elem("IsTruncated", bool_str(p.truncated));
        for (n, size, sum) in &p.parts {
            w.open("Part");
            w.elem("PartNumber", &n.to_string());
            w.elem("Size", &size.to_string());
            if let Some(name) = checksum_elem(&p.algorithm).filter(|_| !sum.is_empty()) {
                w.elem(name, sum);
            }
            w.close("Part");
        }
        w.close("ObjectParts");
    }
    if a.storage_class {
        w.elem("StorageClass", "STANDARD");
    }
    if let Some(n) = a.size {
        w.elem("ObjectSize", &n.to_string());
    }
    w.close("GetObjectAttributesResponse");
    w.finish()
}

/// The request side of a `ListPartsResult`.
#[derive(Clone, Debug, Default)]
pub struct PartsPage {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// `part-number-marker` given.
    pub part_number_marker: u32,
    /// Next marker (when truncated).
    pub next_part_number_marker: u32,
    /// `max-parts` in force.
    pub max_parts: u32,
    /// Whether more parts follow.
    pub is_truncated: bool,
    /// The parts.
    pub parts: Vec<PartRecord>,
    /// Initiator and owner.
    pub owner: Owner,
}

/// `ListPartsResult`.
pub fn list_parts_result(page: &PartsPage) -> String {
    let mut w = XmlWriter::new();
    w.open_root("ListPartsResult");
    w.elem("Bucket", &page.bucket);
    w.elem("Key", &page.key);
    w.elem("UploadId", &page.upload_id);
    page.owner.write(&mut w, "Initiator");
    page.owner.write(&mut w, "Owner");
    w.elem("StorageClass", "STANDARD");
    w.elem("PartNumberMarker", &page.part_number_marker.to_string());
    w.elem(
        "NextPartNumberMarker",
        &page.next_part_number_marker.to_string(),
    );
    w.elem("MaxParts", &page.max_parts.to_string());
    w.elem("IsTruncated", bool_str(page.is_truncated));
    for p in &page.parts {
        w.open("Part");
        w.elem("PartNumber", &p.part_number.to_string());
        w.elem("LastModified", &iso8601_ms(p.mtime_ms));
        w.elem("ETag", &quote_etag(&p.etag));
        w.elem("Size", &p.size.to_string());
        if let Some(name) = checksum_elem(&p.checksum_algorithm) {
            w.elem(name, &p.checksum_value);
        }
        w.close("Part");
    }
    w.close("ListPartsResult");
    w.finish()
}

/// One page of `ListMultipartUploadsResult`.
#[derive(Clone, Debug, Default)]
pub struct UploadsPage {
    /// Bucket.
    pub bucket: String,
    /// `key-marker` given.
    pub key_marker: String,
    /// `upload-id-marker` given.
    pub upload_id_marker: String,
    /// `prefix` given.
    pub prefix: String,
    /// `delimiter` given.
    pub delimiter: Option<String>,
    /// `max-uploads` in force.
    pub max_uploads: u32,
    /// Whether `encoding-type=url` was asked for.
    pub encoding_url: bool,
    /// Whether more uploads follow.
    pub is_truncated: bool,
    /// `(NextKeyMarker, NextUploadIdMarker)` when truncated.
    pub next_markers: Option<(String, String)>,
    /// The uploads.
    pub uploads: Vec<MultipartUpload>,
    /// Rolled-up prefixes (when a delimiter was given).
    pub common_prefixes: Vec<String>,
    /// Initiator and owner.
    pub owner: Owner,
}

/// `ListMultipartUploadsResult`.
pub fn list_multipart_uploads_result(page: &UploadsPage) -> String {
    let url = page.encoding_url;
    let mut w = XmlWriter::new();
    w.open_root("ListMultipartUploadsResult");
    w.elem("Bucket", &page.bucket);
    w.elem("KeyMarker", &enc(url, &page.key_marker));
    w.elem("UploadIdMarker", &page.upload_id_marker);
    if page.is_truncated {
        if let Some((key, upload_id)) = &page.next_markers {
            w.elem("NextKeyMarker", &enc(url, key));
            w.elem("NextUploadIdMarker", upload_id);
        }
    }
    w.elem("Prefix", &enc(url, &page.prefix));
    if let Some(d) = &page.delimiter {
        w.elem("Delimiter", &enc(url, d));
    }
    w.elem("MaxUploads", &page.max_uploads.to_string());
    if url {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", bool_str(page.is_truncated));
    for u in &page.uploads {
        w.open("Upload");
        w.elem("Key", &enc(url, &u.key));
        w.elem("UploadId", &u.upload_id);
        page.owner.write(&mut w, "Initiator");
        page.owner.write(&mut w, "Owner");
        w.elem("StorageClass", "STANDARD");
        w.elem("Initiated", &iso8601_ms(u.initiated_ms));
        w.close("Upload");
    }
    write_common_prefixes(&mut w, url, &page.common_prefixes);
    w.close("ListMultipartUploadsResult");
    w.finish()
}

/// `CopyObjectResult`.
pub fn copy_object_result(etag: &str, mtime_ms: u64) -> String {
    copy_result("CopyObjectResult", etag, mtime_ms)
}

/// `CopyPartResult`.
/// With the part's checksum (`checksum` = (S3 algorithm name, value); None when the upload
/// declared none), as `Checksum<ALG>`.
pub fn copy_part_result(etag: &str, mtime_ms: u64, checksum: Option<(&str, &str)>) -> String {
    let mut w = XmlWriter::new();
    w.open_root("CopyPartResult");
    w.elem("LastModified", &iso8601_ms(mtime_ms));
    w.elem("ETag", &quote_etag(etag));
    if let Some((alg, value)) = checksum.filter(|(a, v)| !a.is_empty() && !v.is_empty()) {
        w.elem(&format!("Checksum{alg}"), value);
    }
    w.close("CopyPartResult");
    w.finish()
}

fn copy_result(root: &str, etag: &str, mtime_ms: u64) -> String {
    let mut w = XmlWriter::new();
    w.open_root(root);
    w.elem("LastModified", &iso8601_ms(mtime_ms));
    w.elem("ETag", &quote_etag(etag));
    w.close(root);
    w.finish()
}

/// One failed key of a DeleteObjects request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteError {
    /// The key.
    pub key: String,
    /// The version id the request named, if any.
    pub version_id: Option<String>,
    /// S3 error code.
    pub code: String,
    /// Message.
    pub message: String,
}

/// `LocationConstraint` (empty for us-east-1, as S3 does).
pub fn location_constraint(region: &str) -> String {
    let mut w = XmlWriter::new();
    w.open_root("LocationConstraint");
    if region != "us-east-1" {
        push_escaped(&mut w.buf, region);
    }
    w.close("LocationConstraint");
    w.finish()
}

/// An empty `VersioningConfiguration` (versioning never enabled).
/// `VersioningConfiguration`: no `Status` for a bucket never versioned, else `Enabled` or
/// `Suspended`.
pub fn versioning_configuration(status: Option<&str>) -> String {
    let mut w = XmlWriter::new();
    w.open_root("VersioningConfiguration");
    if let Some(s) = status {
        w.elem("Status", s);
    }
    w.close("VersioningConfiguration");
    w.finish()
}

/// Parse a PutBucketVersioning body: its `Status` (`Enabled` -> 1, `Suspended` -> 2).
/// `MfaDelete` Enabled is refused (Anode has no MFA); a missing or other status is
/// `MalformedXML`, as S3 answers.
pub fn parse_versioning(body: &[u8]) -> Result<u32, S3Error> {
    let tree = parse_tree(body)?;
    let root = expect_root(&tree, "VersioningConfiguration")?;
    if root
        .child("MfaDelete")
        .is_some_and(|m| m.text.trim() == "Enabled")
    {
        return Err(S3Error::NotImplemented(
            "MFA delete is not supported".into(),
        ));
    }
    match root.child("Status").map(|s| s.text.trim()) {
        Some("Enabled") => Ok(1),
        Some("Suspended") => Ok(2),
        _ => Err(S3Error::MalformedXML),
    }
}

/// One entry of a versions listing page, with `ListVersionsResult`'s paging fields.
pub struct VersionsPage {
    /// The common fields (bucket, prefix, delimiter, max-keys, encoding, owner, truncation,
    /// common prefixes; `objects` unused).
    pub page: ListPage,
    /// `key-marker` and `version-id-marker` asked for.
    pub key_marker: String,
    /// See above.
    pub version_id_marker: String,
    /// Where the next page starts (when truncated).
    pub next_key_marker: String,
    /// See above.
    pub next_version_id_marker: String,
    /// The versions and delete markers, in order.
    pub versions: Vec<anode_client::VersionEntry>,
}

/// `ListVersionsResult` of real versions: `Version` and `DeleteMarker` entries in order.
pub fn list_object_versions_result(v: &VersionsPage) -> String {
    let page = &v.page;
    let url = page.encoding_url;
    let mut w = XmlWriter::new();
    w.open_root("ListVersionsResult");
    w.elem("Name", &page.bucket);
    w.elem("Prefix", &enc(url, &page.prefix));
    w.elem("KeyMarker", &enc(url, &v.key_marker));
    w.elem("VersionIdMarker", &v.version_id_marker);
    if page.is_truncated {
        w.elem("NextKeyMarker", &enc(url, &v.next_key_marker));
        if !v.next_version_id_marker.is_empty() {
            w.elem("NextVersionIdMarker", &v.next_version_id_marker);
        }
    }
    w.elem("MaxKeys", &page.max_keys.to_string());
    if let Some(d) = &page.delimiter {
        w.elem("Delimiter", &enc(url, d));
    }
    if url {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", bool_str(page.is_truncated));
    for e in &v.versions {
        let tag = if e.delete_marker {
            "DeleteMarker"
        } else {
            "Version"
        };
        w.open(tag);
        w.elem("Key", &enc(url, &e.key));
        w.elem("VersionId", &e.version_id);
        w.elem("IsLatest", bool_str(e.is_latest));
        w.elem("LastModified", &iso8601_ms(e.mtime_ms));
        if !e.delete_marker {
            w.elem("ETag", &quote_etag(&e.etag));
            w.elem("Size", &e.size.to_string());
        }
        if let Some(owner) = &page.owner {
            owner.write(&mut w, "Owner");
        }
        if !e.delete_marker {
            w.elem("StorageClass", "STANDARD");
        }
        w.close(tag);
    }
    write_common_prefixes(&mut w, url, &page.common_prefixes);
    w.close("ListVersionsResult");
    w.finish()
}

/// One `Deleted` entry of a DeleteObjects answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Key.
    pub key: String,
    /// The version deleted (when the request named one).
    pub version_id: Option<String>,
    /// A delete marker was deleted or created.
    pub delete_marker: bool,
    /// The delete marker created (simple deletes in versioned buckets).
    pub delete_marker_version_id: Option<String>,
}

/// `DeleteResult` with version details.
pub fn delete_result_versions(deleted: &[Deleted], errors: &[DeleteError], quiet: bool) -> String {
    let mut w = XmlWriter::new();
    w.open_root("DeleteResult");
    if !quiet {
        for d in deleted {
            w.open("Deleted");
            w.elem("Key", &d.key);
            if let Some(v) = &d.version_id {
                w.elem("VersionId", v);
            }
            if d.delete_marker {
                w.elem("DeleteMarker", "true");
            }
            if let Some(v) = &d.delete_marker_version_id {
                w.elem("DeleteMarkerVersionId", v);
            }
            w.close("Deleted");
        }
    }
    for e in errors {
        w.open("Error");
        w.elem("Key", &e.key);
        if let Some(v) = &e.version_id {
            w.elem("VersionId", v);
        }
        w.elem("Code", &e.code);
        w.elem("Message", &e.message);
        w.close("Error");
    }
    w.close("DeleteResult");
    w.finish()
}

pub(crate) fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

// ---- request bodies -------------------------------------------------------------------------

/// One element of a parsed request body: local name (namespace prefix dropped), attributes,
/// text content (unescaped, not trimmed) and child elements in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XmlNode {
    /// Local element name.
    pub name: String,
    /// Attributes as (local name, unescaped value), in document order; namespace declarations
    /// (`xmlns`, `xmlns:p`) are left out. `xsi:type="Group"` is `("type", "Group")`.
    pub attrs: Vec<(String, String)>,
    /// Concatenated text content.
    pub text: String,
    /// Child elements.
    pub children: Vec<XmlNode>,
}

impl XmlNode {
    /// The value of the first attribute with local name `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&XmlNode> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a XmlNode> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The child named `name` if there is one; two of them is `MalformedXML` (S3's
    /// configuration documents allow most elements once).
    pub fn single_child(&self, name: &str) -> Result<Option<&XmlNode>, S3Error> {
        let mut it = self.children.iter().filter(|c| c.name == name);
        let first = it.next();
        if it.next().is_some() {
            return Err(S3Error::MalformedXML);
        }
        Ok(first)
    }
}

/// Parse `body` into its root element. Malformed documents, more than one root, or nesting
/// deeper than 16 are `MalformedXML`.
pub fn parse_tree(body: &[u8]) -> Result<XmlNode, S3Error> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<XmlNode> = Vec::new();
    let mut root: Option<XmlNode> = None;
    loop {
        let event = reader.read_event().map_err(|_| S3Error::MalformedXML)?;
        match event {
            Event::Start(e) => {
                if root.is_some() || stack.len() >= MAX_XML_DEPTH {
                    return Err(S3Error::MalformedXML);
                }
                stack.push(element(&e)?);
            }
            Event::Empty(e) => {
                let node = element(&e)?;
                attach(&mut stack, &mut root, node)?;
            }
            Event::End(_) => {
                let node = stack.pop().ok_or(S3Error::MalformedXML)?;
                attach(&mut stack, &mut root, node)?;
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|_| S3Error::MalformedXML)?;
                push_text(&mut stack, &root, &text)?;
            }
            Event::CData(c) => {
                let text = std::str::from_utf8(&c).map_err(|_| S3Error::MalformedXML)?;
                push_text(&mut stack, &root, text)?;
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    root.ok_or(S3Error::MalformedXML)
}

/// Most attributes one element may carry.
const MAX_XML_ATTRS: usize = 16;

/// A new node for a start (or empty) tag: its local name and attributes, namespace
/// declarations left out. Duplicate or unparsable attributes are `MalformedXML`.
fn element(e: &quick_xml::events::BytesStart<'_>) -> Result<XmlNode, S3Error> {
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|_| S3Error::MalformedXML)?;
        let key = a.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        if attrs.len() >= MAX_XML_ATTRS {
            return Err(S3Error::MalformedXML);
        }
        let value = a.unescape_value().map_err(|_| S3Error::MalformedXML)?;
        attrs.push((local_name(a.key.local_name().as_ref())?, value.into_owned()));
    }
    Ok(XmlNode {
        name: local_name(e.local_name().as_ref())?,
        attrs,
        ..Default::default()
    })
}

fn local_name(raw: &[u8]) -> Result<String, S3Error> {
    std::str::from_utf8(raw)
        .map(str::to_string)
        .map_err(|_| S3Error::MalformedXML)
}

fn attach(stack: &mut [XmlNode], root: &mut Option<XmlNode>, node: XmlNode) -> Result<(), S3Error> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => return Err(S3Error::MalformedXML),
    }
    Ok(())
}

fn push_text(stack: &mut [XmlNode], root: &Option<XmlNode>, text: &str) -> Result<(), S3Error> {
    match stack.last_mut() {
        Some(node) => node.text.push_str(text),
        // Whitespace around the root is fine; other text is not.
        None if text.trim().is_empty() => {}
        None => return Err(S3Error::MalformedXML),
    }
    let _ = root;
    Ok(())
}

pub(crate) fn expect_root<'a>(node: &'a XmlNode, name: &str) -> Result<&'a XmlNode, S3Error> {
    if node.name == name {
        Ok(node)
    } else {
        Err(S3Error::MalformedXML)
    }
}

/// One `<Part>` of a CompleteMultipartUpload body: number and ETag without quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletePartSpec {
    /// Part number (1..=10000).
    pub part_number: u32,
    /// ETag, quotes removed.
    pub etag: String,
    /// The part checksums given (`ChecksumCRC32` ... element name, base64 value).
    pub checksums: Vec<(String, String)>,
}

/// Parse a `CompleteMultipartUpload` body. No parts, or a part without a number or ETag, is
/// `MalformedXML`; order is left to the caller (`InvalidPartOrder`).
pub fn parse_complete_multipart(body: &[u8]) -> Result<Vec<CompletePartSpec>, S3Error> {
    let tree = parse_tree(body)?;
    let root = expect_root(&tree, "CompleteMultipartUpload")?;
    let mut parts = Vec::new();
    for p in root.children_named("Part") {
        let number = p
            .child("PartNumber")
            .and_then(|n| n.text.trim().parse::<u32>().ok())
            .ok_or(S3Error::MalformedXML)?;
        let etag = p.child("ETag").ok_or(S3Error::MalformedXML)?;
        let etag = etag.text.trim().trim_matches('"').to_string();
        let checksums = p
            .children
            .iter()
            .filter(|c| c.name.starts_with("Checksum"))
            .map(|c| (c.name.clone(), c.text.trim().to_string()))
            .collect();
        parts.push(CompletePartSpec {
            part_number: number,
            etag,
            checksums,
        });
    }
    if parts.is_empty() {
        return Err(S3Error::MalformedXML);
    }
    Ok(parts)
}

/// A parsed `Delete` body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Quiet mode: report only errors.
    pub quiet: bool,
    /// Keys to delete, in request order, with their version id if any.
    pub objects: Vec<(String, Option<String>)>,
    /// Each object's conditions (`ETag`, `LastModifiedTime`, `Size`), in the same order.
    pub conditions: Vec<DeleteCond>,
}

/// The conditions of one DeleteObjects entry, as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteCond {
    /// `ETag`.
    pub etag: Option<String>,
    /// `LastModifiedTime` (ISO 8601).
    pub last_modified: Option<String>,
    /// `Size`.
    pub size: Option<String>,
}

/// Parse a `Delete` body (1..=1000 objects).
pub fn parse_delete(body: &[u8]) -> Result<DeleteRequest, S3Error> {
    let tree = parse_tree(body)?;
    let root = expect_root(&tree, "Delete")?;
    let quiet = match root.child("Quiet").map(|q| q.text.trim()) {
        None => false,
        Some(q) if q.eq_ignore_ascii_case("true") => true,
        Some(q) if q.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(S3Error::MalformedXML),
    };
    let mut objects = Vec::new();
    let mut conditions = Vec::new();
    for o in root.children_named("Object") {
        let key = o.child("Key").ok_or(S3Error::MalformedXML)?.text.clone();
        let version = o.child("VersionId").map(|v| v.text.trim().to_string());
        objects.push((key, version));
        let text = |n: &str| o.child(n).map(|v| v.text.trim().to_string());
        conditions.push(DeleteCond {
            etag: text("ETag"),
            last_modified: text("LastModifiedTime"),
            size: text("Size"),
        });
    }
    if objects.is_empty() || objects.len() > MAX_DELETE_OBJECTS {
        return Err(S3Error::MalformedXML);
    }
    Ok(DeleteRequest {
        quiet,
        objects,
        conditions,
    })
}

/// Parse an optional `CreateBucketConfiguration` body; returns its `LocationConstraint` (empty
/// body or element = none).
pub fn parse_create_bucket(body: &[u8]) -> Result<Option<String>, S3Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let tree = parse_tree(body)?;
    let root = expect_root(&tree, "CreateBucketConfiguration")?;
    Ok(root
        .child("LocationConstraint")
        .map(|l| l.text.trim().to_string())
        .filter(|l| !l.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

    #[test]
    fn times_and_etags() {
        assert_eq!(iso8601_ms(1_255_369_830_000), "2009-10-12T17:50:30.000Z");
        assert_eq!(iso8601_ms(1_255_369_830_042), "2009-10-12T17:50:30.042Z");
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(quote_etag("abc"), "\"abc\"");
        assert_eq!(quote_etag("\"abc\""), "\"abc\"");
    }

    #[test]
    fn list_buckets_document() {
        let owner = Owner {
            id: "AK".into(),
            display_name: "AK".into(),
        };
        let buckets = vec![BucketConfig {
            name: "b1".into(),
            created_ms: 1_255_369_830_000,
            ..Default::default()
        }];
        let xml = list_all_my_buckets(&owner, &buckets);
        assert_eq!(
            xml,
            format!(
                "{DECL}<ListAllMyBucketsResult xmlns=\"{S3_XMLNS}\"><Owner><ID>AK</ID>\
                 <DisplayName>AK</DisplayName></Owner><Buckets><Bucket><Name>b1</Name>\
                 <CreationDate>2009-10-12T17:50:30.000Z</CreationDate></Bucket></Buckets>\
                 </ListAllMyBucketsResult>"
            )
        );
    }

    fn page() -> ListPage {
        ListPage {
            bucket: "b".into(),
            prefix: "p/".into(),
            delimiter: Some("/".into()),
            max_keys: 2,
            encoding_url: false,
            is_truncated: true,
            objects: vec![ObjectEntry {
                indexed: false,
                object_version: 0,
                row_groups: Vec::new(),
                key: "p/a b".into(),
                size: 3,
                etag: "e1".into(),
                mtime_ms: 1000,
            }],
            common_prefixes: vec!["p/d/".into()],
            owner: None,
        }
    }

    #[test]
    fn list_v2_document() {
        let xml = list_bucket_result(
            &page(),
            &ListVersion::V2 {
                start_after: None,
                continuation_token: Some("tok".into()),
                next_continuation_token: Some("next".into()),
            },
        );
        assert_eq!(
            xml,
            format!(
                "{DECL}<ListBucketResult xmlns=\"{S3_XMLNS}\"><Name>b</Name><Prefix>p/</Prefix>\
                 <ContinuationToken>tok</ContinuationToken>\
                 <NextContinuationToken>next</NextContinuationToken><KeyCount>2</KeyCount>\
                 <MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>\
                 <Contents><Key>p/a b</Key><LastModified>1970-01-01T00:00:01.000Z</LastModified>\
                 <ETag>&quot;e1&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass>\
                 </Contents><CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes>\
                 </ListBucketResult>"
            )
        );
    }

    #[test]
    fn list_v1_url_encoded_with_owner() {
        let mut p = page();
        p.encoding_url = true;
        p.owner = Some(Owner {
            id: "o".into(),
            display_name: "o".into(),
        });
        let xml = list_bucket_result(
            &p,
            &ListVersion::V1 {
                marker: "m k".into(),
                next_marker: Some("p/d/".into()),
            },
        );
        assert!(
            xml.contains("<Marker>m%20k</Marker><NextMarker>p/d/</NextMarker>"),
            "{xml}"
        );
        assert!(xml.contains("<Key>p/a%20b</Key>"), "{xml}");
        assert!(xml.contains("<EncodingType>url</EncodingType>"), "{xml}");
        assert!(xml.contains("<Owner><ID>o</ID><DisplayName>o</DisplayName></Owner>"));
        assert!(!xml.contains("KeyCount"));
        // Not truncated: no NextMarker.
        p.is_truncated = false;
        let xml = list_bucket_result(
            &p,
            &ListVersion::V1 {
                marker: String::new(),
                next_marker: Some("x".into()),
            },
        );
        assert!(!xml.contains("NextMarker"), "{xml}");
    }

    #[test]
    fn multipart_documents() {
        let xml = initiate_multipart_upload("b", "k&", "u1");
        assert!(xml.ends_with(
            "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Bucket>b</Bucket><Key>k&amp;</Key><UploadId>u1</UploadId>\
             </InitiateMultipartUploadResult>"
        ));
        let xml = complete_multipart_upload("/b/k", "b", "k", "abc-2");
        assert!(xml.contains("<ETag>&quot;abc-2&quot;</ETag>"));
        let xml = list_parts_result(&PartsPage {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "u".into(),
            max_parts: 1000,
            parts: vec![PartRecord {
                part_number: 1,
                etag: "e".into(),
                size: 5,
                mtime_ms: 0,
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(xml.contains("<Part><PartNumber>1</PartNumber>"), "{xml}");
        assert!(xml.contains("<IsTruncated>false</IsTruncated>"));
        let xml = list_multipart_uploads_result(&UploadsPage {
            bucket: "b".into(),
            max_uploads: 1,
            is_truncated: true,
            next_markers: Some(("k".into(), "u".into())),
            uploads: vec![MultipartUpload {
                key: "k".into(),
                upload_id: "u".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(xml.contains(
            "<NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker>"
        ));
        assert!(xml.contains("<Upload><Key>k</Key><UploadId>u</UploadId>"));
    }

    #[test]
    fn delete_and_misc_documents() {
        let errors = vec![DeleteError {
            key: "x".into(),
            version_id: Some("000000000000002a".into()),
            code: "AccessDenied".into(),
            message: "no".into(),
        }];
        let deleted = [
            Deleted {
                key: "a".into(),
                ..Default::default()
            },
            Deleted {
                key: "b".into(),
                delete_marker: true,
                delete_marker_version_id: Some("000000000000002b".into()),
                ..Default::default()
            },
        ];
        let loud = delete_result_versions(&deleted, &errors, false);
        assert!(loud.contains(
            "<Deleted><Key>a</Key></Deleted><Deleted><Key>b</Key><DeleteMarker>true</DeleteMarker>\
             <DeleteMarkerVersionId>000000000000002b</DeleteMarkerVersionId></Deleted>\
             <Error><Key>x</Key><VersionId>000000000000002a</VersionId>"
        ));
        let quiet = delete_result_versions(&deleted, &errors, true);
        assert!(!quiet.contains("Deleted") && quiet.contains("<Error>"));
        assert!(location_constraint("us-east-1").ends_with(&format!(
            "<LocationConstraint xmlns=\"{S3_XMLNS}\"></LocationConstraint>"
        )));
        assert!(location_constraint("eu-west-1").contains(">eu-west-1</"));
        assert!(copy_object_result("e", 0).contains("<ETag>&quot;e&quot;</ETag>"));
        assert!(copy_part_result("e", 0, None).contains("<CopyPartResult"));
        assert!(copy_part_result("e", 0, Some(("CRC32", "AAAAAA==")))
            .contains("<ChecksumCRC32>AAAAAA==</ChecksumCRC32>"));
    }

    #[test]
    fn escaping_control_characters() {
        let mut s = String::new();
        push_escaped(&mut s, "a\u{1}b\tc<");
        assert_eq!(s, "a&#x1;b\tc&lt;");
    }

    #[test]
    fn parse_complete() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><PartNumber>1</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag></Part>
  <Part><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber> 2 </PartNumber>
    <ChecksumCRC32>x</ChecksumCRC32></Part>
</CompleteMultipartUpload>"#;
        let parts = parse_complete_multipart(body).unwrap();
        assert_eq!(
            parts,
            vec![
                CompletePartSpec {
                    part_number: 1,
                    etag: "a54357aff0632cce46d942af68356b38".into(),
                    checksums: vec![],
                },
                CompletePartSpec {
                    part_number: 2,
                    etag: "0c78aef83f66abc1fa1e8477f296d394".into(),
                    checksums: vec![("ChecksumCRC32".into(), "x".into())],
                },
            ]
        );
    }

    #[test]
    fn malformed_bodies() {
        let bad: &[&[u8]] = &[
            b"",
            b"not xml",
            b"<CompleteMultipartUpload>",
            b"<CompleteMultipartUpload></CompleteMultipartUpload>",
            b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
            b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
            b"<Other><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Other>",
            b"<a></b>",
            b"<a/><b/>",
        ];
        for body in bad {
            assert_eq!(
                parse_complete_multipart(body),
                Err(S3Error::MalformedXML),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert_eq!(parse_tree(deep.as_bytes()), Err(S3Error::MalformedXML));
    }

    #[test]
    fn parse_delete_body() {
        let body = br#"<Delete><Quiet>true</Quiet>
            <Object><Key> spaced key </Key></Object>
            <Object><Key>a&amp;b</Key><VersionId>null</VersionId></Object></Delete>"#;
        let d = parse_delete(body).unwrap();
        assert!(d.quiet);
        assert_eq!(
            d.objects,
            vec![
                (" spaced key ".to_string(), None),
                ("a&b".to_string(), Some("null".to_string()))
            ]
        );
        assert_eq!(
            parse_delete(b"<Delete></Delete>"),
            Err(S3Error::MalformedXML)
        );
        assert_eq!(
            parse_delete(b"<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>"),
            Err(S3Error::MalformedXML)
        );
        let many = format!(
            "<Delete>{}</Delete>",
            "<Object><Key>k</Key></Object>".repeat(MAX_DELETE_OBJECTS + 1)
        );
        assert_eq!(parse_delete(many.as_bytes()), Err(S3Error::MalformedXML));
    }

    #[test]
    fn attributes_by_local_name() {
        let tree = parse_tree(
            br#"<a xmlns="urn:x" xmlns:xsi="urn:y" xsi:type="Group" b='1&amp;2'><c/></a>"#,
        )
        .unwrap();
        assert_eq!(
            tree.attrs,
            vec![
                ("type".to_string(), "Group".to_string()),
                ("b".to_string(), "1&2".to_string())
            ]
        );
        assert_eq!(tree.attr("type"), Some("Group"));
        assert_eq!(tree.attr("xsi"), None);
        assert_eq!(tree.children[0].attrs, vec![]);
        let bad: &[&[u8]] = &[b"<a b=\"1\" b=\"2\"/>", b"<a b=1/>", b"<a b=\"&bogus;\"/>"];
        for body in bad {
            assert_eq!(parse_tree(body), Err(S3Error::MalformedXML), "{body:?}");
        }
        let many: String = (0..=MAX_XML_ATTRS).map(|i| format!(" a{i}=\"\"")).collect();
        assert_eq!(
            parse_tree(format!("<a{many}/>").as_bytes()),
            Err(S3Error::MalformedXML)
        );
    }

    #[test]
    fn parse_create_bucket_body() {
        assert_eq!(parse_create_bucket(b""), Ok(None));
        assert_eq!(parse_create_bucket(b"  \n"), Ok(None));
        let body = br#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"#;
        assert_eq!(parse_create_bucket(body), Ok(Some("eu-west-1".into())));
        assert_eq!(parse_create_bucket(b"<Bogus/>"), Err(S3Error::MalformedXML));
    }
}

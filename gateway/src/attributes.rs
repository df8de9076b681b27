//! GetObjectAttributes (`GET /b/k?attributes`): the attributes named in
//! `x-amz-object-attributes` (ETag, Checksum, ObjectParts, StorageClass, ObjectSize) of the
//! newest version or of `versionId`, without the body.

use http::{HeaderMap, Response, StatusCode};

use crate::body::RespBody;
use crate::error::S3Error;
use crate::handlers::{set_header, xml_ok, Ctx};
use crate::http_util::{check_key, http_date_ms};
use crate::xml::{self, ObjectAttributes, PartsAttr};

/// Most parts one answer lists (S3: 1000).
pub const MAX_PARTS: u32 = 1000;

/// The attributes asked for, as flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// ETag.
    pub etag: bool,
    /// Checksum.
    pub checksum: bool,
    /// ObjectParts.
    pub parts: bool,
    /// StorageClass.
    pub storage_class: bool,
    /// ObjectSize.
    pub size: bool,
}

/// Parse `x-amz-object-attributes` (comma-separated, at least one; the header may repeat).
/// An unknown name or none is `InvalidArgument`.
pub fn wanted(h: &HeaderMap) -> Result<Wanted, S3Error> {
    let mut w = Wanted::default();
    let mut any = false;
    for v in h.get_all("x-amz-object-attributes") {
        let v = v
            .to_str()
            .map_err(|_| S3Error::InvalidArgument("Invalid attribute name specified.".into()))?;
        for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            any = true;
            match name {
                "ETag" => w.etag = true,
                "Checksum" => w.checksum = true,
                "ObjectParts" => w.parts = true,
                "StorageClass" => w.storage_class = true,
                "ObjectSize" => w.size = true,
                _ => {
                    return Err(S3Error::InvalidArgument(
                        "Invalid attribute name specified.".into(),
                    ))
                }
            }
        }
    }
    if !any {
        return Err(S3Error::InvalidArgument(
            "Missing required header for this request: x-amz-object-attributes".into(),
        ));
    }
    Ok(w)
}

/// `x-amz-max-parts` (default and cap 1000) and `x-amz-part-number-marker` (default 0).
pub fn part_paging(h: &HeaderMap) -> Result<(u32, u32), S3Error> {
    let num = |n: &str| -> Result<Option<u32>, S3Error> {
        h.get(n)
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .ok_or_else(|| S3Error::InvalidArgument(format!("Invalid {n}")))
            })
            .transpose()
    };
    let max = num("x-amz-max-parts")?.unwrap_or(MAX_PARTS).min(MAX_PARTS);
    let marker = num("x-amz-part-number-marker")?.unwrap_or(0);
    Ok((max, marker))
}

/// The `ObjectParts` page of a multipart object: parts after `marker`, at most `max`.
pub fn parts_page(
    sizes: &[u64],
    checksums: &[String],
    algorithm: &str,
    max: u32,
    marker: u32,
) -> PartsAttr {
    let all: Vec<(u32, u64, String)> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sum = checksums.get(i).cloned().unwrap_or_default();
            (i as u32 + 1, *s, sum)
        })
        .filter(|(n, _, _)| *n > marker)
        .collect();
    let truncated = all.len() > max as usize;
    let parts: Vec<_> = all.into_iter().take(max as usize).collect();
    let next_marker = parts.last().map_or(marker, |p| p.0);
    PartsAttr {
        total: sizes.len(),
        marker,
        next_marker,
        max_parts: max,
        truncated,
        algorithm: algorithm.to_string(),
        parts,
    }
}

/// GetObjectAttributes. A delete marker answers as GET does (404 `NoSuchKey` for the newest
/// version, 405 for a version id, both with `x-amz-delete-marker: true`).
pub async fn get_object_attributes(
    cx: &Ctx<'_>,
    bucket: &str,
    key: &str,
) -> Result<Response<RespBody>, S3Error> {
    check_key(key)?;
    let w = wanted(cx.headers)?;
    let (max, marker) = part_paging(cx.headers)?;
    let m = crate::handlers::read_version(cx, bucket, key).await?;
    let attrs = ObjectAttributes {
        etag: w.etag.then(|| m.etag.clone()),
        checksum: (w.checksum && !m.checksum_algorithm.is_empty()).then(|| {
            (
                m.checksum_algorithm.clone(),
                m.checksum_value.clone(),
                m.checksum_type.clone(),
            )
        }),
        parts: (w.parts && !m.part_sizes.is_empty()).then(|| {
            parts_page(
                &m.part_sizes,
                &m.part_checksums,
                &m.checksum_algorithm,
                max,
                marker,
            )
        }),
        storage_class: w.storage_class,
        size: w.size.then_some(m.size),
    };
    let mut r = xml_ok(xml::object_attributes(&attrs));
    *r.status_mut() = StatusCode::OK;
    set_header(&mut r, "last-modified", &http_date_ms(m.mtime_ms));
    if !m.version_id.is_empty() || cx.query.get("versionId").is_some() {
        set_header(
            &mut r,
            "x-amz-version-id",
            anode_meta::state::versions::version_id_of(&m),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn attribute_names() {
        let w = wanted(&headers(&[("x-amz-object-attributes", "ETag, ObjectSize")])).unwrap();
        assert!(w.etag && w.size && !w.parts && !w.checksum && !w.storage_class);
        let w = wanted(&headers(&[
            ("x-amz-object-attributes", "Checksum"),
            ("x-amz-object-attributes", "ObjectParts,StorageClass"),
        ]))
        .unwrap();
        assert!(w.checksum && w.parts && w.storage_class && !w.etag);
        assert!(wanted(&headers(&[("x-amz-object-attributes", "Etag")])).is_err());
        assert!(wanted(&headers(&[("x-amz-object-attributes", " , ")])).is_err());
        assert!(wanted(&HeaderMap::new()).is_err());
    }

    #[test]
    fn paging_of_parts() {
        let sizes = [5, 5, 5, 5, 5, 3];
        let sums: Vec<String> = (1..=6).map(|i| format!("c{i}")).collect();
        let p = parts_page(&sizes, &sums, "CRC32", 1, 3);
        assert_eq!(p.parts, vec![(4, 5, "c4".to_string())]);
        assert!(p.truncated);
        assert_eq!((p.next_marker, p.total, p.marker), (4, 6, 3));
        let p = parts_page(&sizes, &[], "", 10, 4);
        assert_eq!(p.parts.len(), 2);
        assert!(!p.truncated);
        assert_eq!(p.parts[1], (6, 3, String::new()));
        let p = parts_page(&sizes, &[], "", 10, 6);
        assert!(p.parts.is_empty() && !p.truncated);
        assert_eq!(p.next_marker, 6);
        assert_eq!(
            part_paging(&headers(&[("x-amz-max-parts", "5000")])).unwrap(),
            (1000, 0)
        );
        assert!(part_paging(&headers(&[("x-amz-part-number-marker", "x")])).is_err());
    }
}

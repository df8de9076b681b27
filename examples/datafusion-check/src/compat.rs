//! [`Compat`]: an object_store 0.14 store (AnodeStore) behind the object_store 0.13 trait that
//! DataFusion 55 takes. Reads and listings are forwarded; writes and copies are refused
//! (`NotImplemented`): this check only queries.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use os14::ObjectStore as _;

/// An object_store 0.14 store as an object_store 0.13 one (reads only).
#[derive(Debug)]
pub struct Compat(pub anode_client::objstore::AnodeStore);

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Compat({})", self.0)
    }
}

fn p14(p: &os13::path::Path) -> os14::path::Path {
    // A 0.13 path is already valid (parsed); the same string is a valid 0.14 path.
    os14::path::Path::parse(p.as_ref()).unwrap_or_else(|_| os14::path::Path::from(p.as_ref()))
}

fn p13(p: &os14::path::Path) -> os13::path::Path {
    os13::path::Path::parse(p.as_ref()).unwrap_or_else(|_| os13::path::Path::from(p.as_ref()))
}

fn err(e: os14::Error) -> os13::Error {
    match e {
        os14::Error::NotFound { path, source } => os13::Error::NotFound { path, source },
        os14::Error::AlreadyExists { path, source } => os13::Error::AlreadyExists { path, source },
        os14::Error::Precondition { path, source } => os13::Error::Precondition { path, source },
        os14::Error::NotModified { path, source } => os13::Error::NotModified { path, source },
        other => os13::Error::Generic {
            store: "Anode",
            source: Box::new(other),
        },
    }
}

fn meta(m: os14::ObjectMeta) -> os13::ObjectMeta {
    os13::ObjectMeta {
        location: p13(&m.location),
        last_modified: m.last_modified,
        size: m.size,
        e_tag: m.e_tag,
        version: m.version,
    }
}

fn refused(operation: &str) -> os13::Error {
    os13::Error::NotImplemented {
        operation: operation.to_string(),
        implementer: "datafusion-check Compat (read only)".to_string(),
    }
}

#[async_trait]
impl os13::ObjectStore for Compat {
    async fn put_opts(
        &self,
        _: &os13::path::Path,
        _: os13::PutPayload,
        _: os13::PutOptions,
    ) -> os13::Result<os13::PutResult> {
        Err(refused("put_opts"))
    }

    async fn put_multipart_opts(
        &self,
        _: &os13::path::Path,
        _: os13::PutMultipartOptions,
    ) -> os13::Result<Box<dyn os13::MultipartUpload>> {
        Err(refused("put_multipart_opts"))
    }

    async fn get_opts(
        &self,
        location: &os13::path::Path,
        o: os13::GetOptions,
    ) -> os13::Result<os13::GetResult> {
        let range = o.range.map(|r| match r {
            os13::GetRange::Bounded(b) => os14::GetRange::Bounded(b),
            os13::GetRange::Offset(x) => os14::GetRange::Offset(x),
            os13::GetRange::Suffix(x) => os14::GetRange::Suffix(x),
        });
        let o14 = os14::GetOptions {
            if_match: o.if_match,
            if_none_match: o.if_none_match,
            if_modified_since: o.if_modified_since,
            if_unmodified_since: o.if_unmodified_since,
            range,
            version: o.version,
            head: o.head,
            ..Default::default()
        };
        let r = self.0.get_opts(&p14(location), o14).await.map_err(err)?;
        let (m, range) = (meta(r.meta.clone()), r.range.clone());
        let stream = r.into_stream().map_err(err).boxed();
        Ok(os13::GetResult {
            payload: os13::GetResultPayload::Stream(stream),
            meta: m,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &os13::path::Path,
        ranges: &[Range<u64>],
    ) -> os13::Result<Vec<Bytes>> {
        self.0.get_ranges(&p14(location), ranges).await.map_err(err)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, os13::Result<os13::path::Path>>,
    ) -> BoxStream<'static, os13::Result<os13::path::Path>> {
        locations.map(|_| Err(refused("delete_stream"))).boxed()
    }

    fn list(
        &self,
        prefix: Option<&os13::path::Path>,
    ) -> BoxStream<'static, os13::Result<os13::ObjectMeta>> {
        let prefix = prefix.map(p14);
        self.0
            .list(prefix.as_ref())
            .map_ok(meta)
            .map_err(err)
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&os13::path::Path>,
        offset: &os13::path::Path,
    ) -> BoxStream<'static, os13::Result<os13::ObjectMeta>> {
        let prefix = prefix.map(p14);
        self.0
            .list_with_offset(prefix.as_ref(), &p14(offset))
            .map_ok(meta)
            .map_err(err)
            .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&os13::path::Path>,
    ) -> os13::Result<os13::ListResult> {
        let prefix = prefix.map(p14);
        let r = self
            .0
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(err)?;
        Ok(os13::ListResult {
            common_prefixes: r.common_prefixes.iter().map(p13).collect(),
            objects: r.objects.into_iter().map(meta).collect(),
        })
    }

    async fn copy_opts(
        &self,
        _: &os13::path::Path,
        _: &os13::path::Path,
        _: os13::CopyOptions,
    ) -> os13::Result<()> {
        Err(refused("copy_opts"))
    }
}

//! `anode-tools bench fill` and `anode-tools bench list`: metadata at scale.
//!
//! - `fill` builds a large bucket of small inline objects through the client library (each
//!   object one PUT, committed through raft like any other; many in flight, which the
//!   master's group commit packs into few log writes). Keys are laid out as
//!   `d{dir:06}/k{n:06}` with `--keys-per-dir` keys per "directory", so the same bucket serves
//!   listings with and without a delimiter. `--start` resumes or extends a fill.
//! - `list` measures 1,000-key pages of that bucket at random positions (so pages come from
//!   the whole key space, not the cached first page), with or without `/` as delimiter, and
//!   prints p50/p99/max latency as one JSON line. Every page is checked: full (unless it is
//!   the last), in order, and starting after its marker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anode_proto::ListObjectsRequest;
use futures::StreamExt;
use rand::{Rng, SeedableRng};

/// Where the cluster is and how to reach it.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// Master addresses.
    #[arg(
        long,
        env = "ANODE_MASTERS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001"
    )]
    pub masters: Vec<String>,
    /// Mutual TLS (`--certs-dir`, a client certificate) or `--insecure-no-tls`.
    #[command(flatten)]
    pub tls: anode_tls::TlsArgs,
    /// Bucket.
    #[arg(long, default_value = "bench-scale")]
    pub bucket: String,
    /// Keys per directory (`d{dir:06}/` prefix) of the key layout.
    #[arg(long, default_value_t = 1000)]
    pub keys_per_dir: u64,
}

/// Flags of `anode-tools bench fill`.
#[derive(clap::Args, Debug, Clone)]
pub struct FillArgs {
    /// Cluster, bucket and key layout.
    #[command(flatten)]
    pub target: Target,
    /// Objects to write.
    #[arg(long, default_value_t = 10_000)]
    pub objects: u64,
    /// Index of the first object (to extend a fill).
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Object size in bytes (inline in the manifest up to the client's inline limit).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// PUTs in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Objects per master command: above 1, `--batch` objects go in one `PutObjects` bulk
    /// command (inline bodies only; at most 1,000) instead of one PUT each through the
    /// client's write path. Builds a 10 M-key bucket in minutes, not hours.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch: u64,
}

/// Flags of `anode-tools bench list`.
#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    /// Cluster, bucket and key layout (as filled).
    #[command(flatten)]
    pub target: Target,
    /// Objects in the bucket (as filled): pages start at random keys below this index.
    #[arg(long)]
    pub objects: u64,
    /// Pages to fetch.
    #[arg(long, default_value_t = 500)]
    pub pages: usize,
    /// Pages in flight.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// List with `/` as delimiter (pages of common prefixes `d…/`).
    #[arg(long)]
    pub delimiter: bool,
    /// Seed of the random page positions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The key of object `n` in the layout.
pub fn key_of(n: u64, keys_per_dir: u64) -> String {
    let per = keys_per_dir.max(1);
    format!("d{:06}/k{:06}", n / per, n % per)
}

/// Fill the bucket; prints one JSON line.
pub async fn fill(a: FillArgs) -> anyhow::Result<()> {
    let tls = a.target.tls.load_as(anode_tls::Role::Client, None)?;
    let cl = anode_client::Client::connect(a.target.masters.clone(), tls).await?;
    crate::bench::ensure_bucket(&cl, &a.target.bucket, 0).await?;
    let errors = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut last_report = Instant::now();
    let mut done = 0u64;
    let end = a.start + a.objects;
    let batches = (a.start..end).step_by(a.batch as usize);
    let mut stream = futures::stream::iter(batches)
        .map(|first| {
            let (cl, bucket, errors) = (cl.clone(), a.target.bucket.clone(), errors.clone());
            let (size, batch, per_dir) = (a.size, a.batch, a.target.keys_per_dir);
            async move {
                let objects: Vec<(String, bytes::Bytes)> = (first..(first + batch).min(end))
                    .map(|n| {
                        let mut body = vec![0u8; size];
                        rand::thread_rng().fill(&mut body[..]);
                        (key_of(n, per_dir), bytes::Bytes::from(body))
                    })
                    .collect();
                let count = objects.len() as u64;
                let first_key = objects[0].0.clone();
                let r = if batch == 1 {
                    let (key, body) = objects.into_iter().next().expect("one object");
                    cl.put_object_bytes(&bucket, &key, body, Default::default())
                        .await
                        .map(|_| ())
                } else {
                    cl.put_small_objects(&bucket, objects).await.map(|_| ())
                };
                if let Err(e) = r {
                    if errors.fetch_add(count, Ordering::Relaxed) == 0 {
                        eprintln!("first error: {first_key}: {e}");
                    }
                }
                count
            }
        })
        .buffer_unordered(a.concurrency.max(1));
    while let Some(count) = stream.next().await {
        done += count;
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "{done} of {} ({:.0}/s)",
                a.objects,
                done as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{{\"bench\":\"fill\",\"objects\":{},\"start\":{},\"size\":{},\"concurrency\":{},\"batch\":{},\"errors\":{},\"seconds\":{secs:.1},\"per_sec\":{:.1}}}",
        a.objects,
        a.start,
        a.size,
        a.concurrency,
        a.batch,
        errors.load(Ordering::Relaxed),
        a.objects as f64 / secs
    );
    Ok(())
}

/// Check one page: at most `max` entries, in order, after the marker, full unless last.
fn check_page(
    page: &anode_proto::ListObjectsResponse,
    start_after: &str,
    max: usize,
) -> anyhow::Result<usize> {
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    let prefixes: Vec<&str> = page.common_prefixes.iter().map(String::as_str).collect();
    let n = keys.len() + prefixes.len();
    anyhow::ensure!(n <= max, "page of {n} entries, max {max}");
    anyhow::ensure!(
        !page.is_truncated || n == max,
        "truncated page of {n} entries"
    );
    for names in [&keys, &prefixes] {
        anyhow::ensure!(names.windows(2).all(|w| w[0] < w[1]), "page out of order");
        anyhow::ensure!(
            names.first().is_none_or(|f| *f > start_after),
            "page starts at or before its marker"
        );
    }
    Ok(n)
}

/// Latency percentile (nearest rank) of sorted samples, in ms.
fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

/// Measure list pages; prints one JSON line.
pub async fn list(a: ListArgs) -> anyhow::Result<()> {
    const MAX: usize = 1000;
    anyhow::ensure!(a.objects > 0, "--objects must be the bucket's object count");
    let tls = a.target.tls.load_as(anode_tls::Role::Client, None)?;
    let cl = anode_client::Client::connect(a.target.masters.clone(), tls).await?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let per = a.target.keys_per_dir.max(1);
    let dirs = a.objects.div_ceil(per);
    // Start markers: a random object key, or (delimiter) a random directory's prefix.
    let markers: Vec<String> = (0..a.pages)
        .map(|_| {
            if a.delimiter {
                let d = rng.gen_range(0..dirs);
                if d == 0 {
                    String::new()
                } else {
                    format!("d{:06}/", d - 1)
                }
            } else {
                key_of(rng.gen_range(0..a.objects), per)
            }
        })
        .collect();
    // One warm-up page: connections and leader discovery are not part of the figure.
    let warm = ListObjectsRequest {
        bucket: a.target.bucket.clone(),
        max_keys: MAX as u32,
        ..Default::default()
    };
    cl.list_objects(warm).await?;
    let t = Instant::now();
    let results: Vec<anyhow::Result<(Duration, usize)>> = futures::stream::iter(markers)
        .map(|start_after| {
            let cl = cl.clone();
            let req = ListObjectsRequest {
                bucket: a.target.bucket.clone(),
                delimiter: if a.delimiter {
                    "/".into()
                } else {
                    String::new()
                },
                start_after: start_after.clone(),
                max_keys: MAX as u32,
                ..Default::default()
            };
            async move {
                let t = Instant::now();
                let page = cl.list_objects(req).await?;
                let took = t.elapsed();
                Ok((took, check_page(&page, &start_after, MAX)?))
            }
        })
        .buffer_unordered(a.concurrency.max(1))
        .collect()
        .await;
    let secs = t.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(results.len());
    let mut entries = 0usize;
    let mut errors = 0usize;
    for r in results {
        match r {
            Ok((d, n)) => {
                lat.push(d);
                entries += n;
            }
            Err(e) => {
                if errors == 0 {
                    eprintln!("first error: {e:#}");
                }
                errors += 1;
            }
        }
    }
    lat.sort();
    println!(
        "{{\"bench\":\"list\",\"objects\":{},\"delimiter\":{},\"pages\":{},\"concurrency\":{},\"errors\":{errors},\"entries_per_page\":{:.0},\"pages_per_sec\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        a.objects,
        a.delimiter,
        a.pages,
        a.concurrency,
        entries as f64 / lat.len().max(1) as f64,
        lat.len() as f64 / secs,
        pct_ms(&lat, 50.0),
        pct_ms(&lat, 99.0),
        pct_ms(&lat, 100.0),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_fill_order_and_group_by_directory() {
        let keys: Vec<String> = (0..2_500).map(|n| key_of(n, 1000)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(keys[999], "d000000/k000999");
        assert_eq!(keys[1000], "d000001/k000000");
        assert_eq!(key_of(7, 0), "d000007/k000000");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct_ms(&v, 50.0), 50.0);
        assert_eq!(pct_ms(&v, 99.0), 99.0);
        assert_eq!(pct_ms(&v, 100.0), 100.0);
        assert_eq!(pct_ms(&[], 99.0), 0.0);
    }

    #[test]
    fn page_checks_catch_short_unordered_and_early_pages() {
        let entry = |k: &str| anode_proto::ObjectEntry {
            key: k.into(),
            ..Default::default()
        };
        let mut page = anode_proto::ListObjectsResponse {
            objects: vec![entry("b"), entry("c")],
            is_truncated: true,
            ..Default::default()
        };
        assert_eq!(check_page(&page, "a", 2).unwrap(), 2);
        assert!(check_page(&page, "a", 3).is_err(), "truncated but short");
        assert!(check_page(&page, "b", 2).is_err(), "starts at its marker");
        page.objects.reverse();
        assert!(check_page(&page, "a", 2).is_err(), "out of order");
    }
}

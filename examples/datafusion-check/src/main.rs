//! DataFusion SQL over an Anode bucket through `anode_client::objstore::AnodeStore`, checked
//! against the same query over the same files on local disk.
//!
//! ```text
//! anode dev --data /tmp/dev --listen 127.0.0.1:19100 --base-port 17101 &
//! cargo run -- 127.0.0.1:17101 /tmp/dev/certs/client-1
//! ```
//!
//! DataFusion 55.2 (the newest release) is built on object_store 0.13 while AnodeStore
//! implements 0.14, hence [`compat::Compat`]. Not in the workspace: DataFusion takes about
//! 20 minutes to build here.
//!
//! Writes three Parquet files (5 row groups of 10,000 rows each: a sorted `ts`, a `name`
//! string, a `val` float) to a new bucket and to a temporary directory, registers both as
//! tables, runs a few queries on each, and fails unless every answer is the same; then the
//! same over a table whose listing the master pruned (`AnodeStore::with_where`), which must
//! list one file of three and still agree. Prints the store's read counters (footer reads
//! answered from the master's stored tail).

mod compat;

use std::sync::Arc;

use anode_client::objstore::AnodeStore;
use anode_client::{Client, ClientConfig, PutOptions};
use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::TryStreamExt;

const RG_ROWS: usize = 10_000;
const RGS: usize = 5;

fn table(first_ts: i64) -> RecordBatch {
    let n = RGS * RG_ROWS;
    let ts: Vec<i64> = (0..n as i64).map(|i| first_ts + i).collect();
    let names: Vec<String> = (0..n)
        .map(|i| format!("sensor-{:05}-{}", (i * 7919) % 10_007, i % 13))
        .collect();
    let vals: Vec<f64> = (0..n).map(|i| ((i % 1000) as f64) * 0.5).collect();
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
    RecordBatch::try_new(schema, cols).expect("batch")
}

fn parquet_file(batch: &RecordBatch) -> Result<Bytes, Box<dyn std::error::Error>> {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(RG_ROWS))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(Bytes::from(out))
}

async fn answer(ctx: &SessionContext, sql: &str) -> Result<String, Box<dyn std::error::Error>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok(pretty_format_batches(&batches)?.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, master, certs] = &args[..] else {
        return Err("usage: datafusion-check MASTER_ADDR CLIENT_CERTS_DIR".into());
    };
    let cfg = ClientConfig {
        tls: Some(anode_tls::Tls::load(std::path::Path::new(certs))?),
        ..Default::default()
    };
    let client = Client::with_config(vec![master.clone()], cfg).await?;
    let bucket = format!("dfcheck-{}", std::process::id());
    client.create_bucket(&bucket, 0, "").await?;

    let local = tempfile::tempdir()?;
    std::fs::create_dir_all(local.path().join("t"))?;
    for i in 0..3 {
        let key = format!("t/part-{i}.parquet");
        let body = parquet_file(&table((i * RGS * RG_ROWS) as i64))?;
        std::fs::write(local.path().join(&key), &body)?;
        client
            .put_object_bytes(&bucket, &key, body, PutOptions::default())
            .await?;
    }

    let store = AnodeStore::new(client.clone(), bucket.clone());
    let ctx = SessionContext::new();
    let url = url::Url::parse(&format!("anode://{bucket}"))?;
    ctx.register_object_store(&url, Arc::new(compat::Compat(store.clone())));
    ctx.register_parquet(
        "remote",
        format!("anode://{bucket}/t/"),
        ParquetReadOptions::default(),
    )
    .await?;
    ctx.register_parquet(
        "local",
        format!("{}/t/", local.path().display()),
        ParquetReadOptions::default(),
    )
    .await?;

    let queries = [
        "SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi, sum(val) AS total FROM {t}",
        "SELECT count(*) AS n, sum(val) AS total, count(DISTINCT name) AS names FROM {t} \
         WHERE ts >= 120000",
        "SELECT name, count(*) AS n FROM {t} WHERE ts BETWEEN 40000 AND 60000 \
         GROUP BY name ORDER BY n DESC, name LIMIT 5",
    ];
    let started = std::time::Instant::now();
    for q in queries {
        let remote = answer(&ctx, &q.replace("{t}", "remote")).await?;
        let local = answer(&ctx, &q.replace("{t}", "local")).await?;
        println!("{q}\n{remote}");
        if remote != local {
            return Err(format!("answers differ:\nremote\n{remote}\nlocal\n{local}").into());
        }
    }
    // A table over the pruned listing: DataFusion's ListingTable sees only the files whose
    // statistics may hold `ts >= 120000`, and the answer stays the same.
    let pred = "ts >= 120000";
    let pruned = store.with_where(pred);
    let listed: Vec<os14::ObjectMeta> = os14::ObjectStore::list(&pruned, Some(&"t".into()))
        .try_collect()
        .await?;
    let pruned_url = url::Url::parse(&format!("anode-where://{bucket}"))?;
    ctx.register_object_store(&pruned_url, Arc::new(compat::Compat(pruned)));
    ctx.register_parquet(
        "pruned",
        format!("anode-where://{bucket}/t/"),
        ParquetReadOptions::default(),
    )
    .await?;
    let q = "SELECT count(*) AS n, sum(val) AS total, count(DISTINCT name) AS names FROM {t} \
             WHERE ts >= 120000";
    let remote = answer(&ctx, &q.replace("{t}", "pruned")).await?;
    let local = answer(&ctx, &q.replace("{t}", "local")).await?;
    println!(
        "over the listing pruned with `{pred}` ({} of 3 files listed):\n{remote}",
        listed.len()
    );
    if remote != local || listed.len() != 1 {
        return Err(format!("pruned answer differs:\nremote\n{remote}\nlocal\n{local}").into());
    }
    println!(
        "all {} queries agree ({:?}); store reads: {:?}",
        queries.len(),
        started.elapsed(),
        store.stats()
    );
    Ok(())
}

//! Connect to an Anode cluster, create a bucket, put an object, read it back (whole and a
//! range), and list the bucket.
//!
//! ```text
//! cargo run -p anode-client --example put_get -- 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
//! ```
//! The masters also come from `ANODE_MASTERS`; the default is `127.0.0.1:7001`. The client
//! certificate comes from `ANODE_CERTS_DIR` (`anode ctl certs issue --role client ...`).

use anode_client::{Client, ClientError, ErrorCode, PutOptions};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let masters = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("ANODE_MASTERS").ok())
        .unwrap_or_else(|| "127.0.0.1:7001".to_string());
    let certs = std::env::var("ANODE_CERTS_DIR").unwrap_or_else(|_| "certs/client".into());
    let tls = anode_tls::Tls::load(std::path::Path::new(&certs))
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    let client = Client::connect(masters.split(',').map(str::to_string).collect(), tls).await?;

    // Create the bucket (replication 0 = the cluster default); fine if it already exists.
    match client.create_bucket("example", 0, "").await {
        Ok(cfg) => println!(
            "created bucket {} (replication {})",
            cfg.name, cfg.replication
        ),
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::BucketAlreadyOwnedByYou | ErrorCode::BucketAlreadyExists
            ) =>
        {
            println!("bucket exists")
        }
        Err(e) => return Err(e),
    }

    // A 10 MiB body: three chunks at the default 4 MiB chunk size, each stored on R servers.
    let body: Bytes = (0..10u32 << 20)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let opts = PutOptions {
        content_type: "application/octet-stream".into(),
        ..Default::default()
    };
    let m = client
        .put_object_bytes("example", "hello.bin", body.clone(), opts)
        .await?;
    println!(
        "put hello.bin: {} bytes, etag {}, {} chunks",
        m.size,
        m.etag,
        m.chunks.len()
    );

    // Read it back, streaming.
    let (manifest, mut stream) = client.get_object("example", "hello.bin", None).await?;
    let mut read = 0usize;
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        assert_eq!(&piece[..], &body[read..read + piece.len()]);
        read += piece.len();
    }
    println!("got {read} of {} bytes, verified", manifest.size);

    // A range read fetches only the chunks it needs.
    let (_, ranged) = client
        .get_object("example", "hello.bin", Some((4_194_300, 4_194_310)))
        .await?;
    let ranged: Vec<Bytes> = ranged.try_collect().await?;
    println!("bytes 4194300-4194310: {:?}", ranged.concat());

    // List the bucket.
    let mut objects = std::pin::pin!(client.list_all("example", ""));
    while let Some(entry) = objects.next().await {
        let entry = entry?;
        println!("{:>12} {} {}", entry.size, entry.etag, entry.key);
    }
    Ok(())
}

//! The Anode S3 gateway (work in progress).

#![warn(missing_docs)]

pub mod aws_chunked;
pub mod error;
pub mod http_util;
pub mod router;
pub mod sigv4;
pub mod xml;

pub use error::S3Error;

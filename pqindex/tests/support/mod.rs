//! Small Parquet files written with the `parquet` crate's own writer, for the tests.

#![allow(dead_code)]

use std::sync::Arc;

use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// One row of the flat test table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub i: Option<i64>,
    pub f: Option<f64>,
    pub s: Option<String>,
    pub b: Option<bool>,
}

pub const FLAT_SCHEMA: &str = "message t {
  optional int64 i;
  optional double f;
  optional binary s (STRING);
  optional boolean b;
}";

/// Writer properties: chunk statistics, the writer's own truncation of byte-array statistics
/// at `truncate` bytes (None: never).
pub fn props(truncate: Option<usize>) -> Arc<WriterProperties> {
    Arc::new(
        WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_statistics_truncate_length(truncate)
            .build(),
    )
}

/// Def levels (0 = null, 1 = present) and the present values.
fn split<T: Clone>(col: impl Iterator<Item = Option<T>>) -> (Vec<i16>, Vec<T>) {
    let mut defs = Vec::new();
    let mut vals = Vec::new();
    for v in col {
        defs.push(v.is_some() as i16);
        vals.extend(v);
    }
    (defs, vals)
}

/// The flat table as a Parquet file, one row group per element of `groups`.
pub fn write_flat(groups: &[Vec<Row>], truncate: Option<usize>) -> Vec<u8> {
    let schema = Arc::new(parse_message_type(FLAT_SCHEMA).expect("schema"));
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, schema, props(truncate)).expect("writer");
    for rows in groups {
        let mut rg = w.next_row_group().expect("row group");
        let (d, v) = split(rows.iter().map(|r| r.i));
        let mut c = rg.next_column().expect("col").expect("i");
        c.typed::<Int64Type>()
            .write_batch(&v, Some(&d), None)
            .expect("i");
        c.close().expect("close");
        let (d, v) = split(rows.iter().map(|r| r.f));
        let mut c = rg.next_column().expect("col").expect("f");
        c.typed::<DoubleType>()
            .write_batch(&v, Some(&d), None)
            .expect("f");
        c.close().expect("close");
        let (d, v) = split(rows.iter().map(|r| r.s.as_deref().map(ByteArray::from)));
        let mut c = rg.next_column().expect("col").expect("s");
        c.typed::<ByteArrayType>()
            .write_batch(&v, Some(&d), None)
            .expect("s");
        c.close().expect("close");
        let (d, v) = split(rows.iter().map(|r| r.b));
        let mut c = rg.next_column().expect("col").expect("b");
        c.typed::<BoolType>()
            .write_batch(&v, Some(&d), None)
            .expect("b");
        c.close().expect("close");
        rg.close().expect("rg close");
    }
    w.close().expect("close");
    out
}

pub const NESTED_SCHEMA: &str = "message n {
  optional group a {
    optional int32 b;
  }
  repeated int64 r;
  required int32 u (INTEGER(32, false));
  required int32 d (DECIMAL(9, 2));
}";

/// A file with a nested leaf `a.b`, a repeated leaf `r`, an unsigned `u` and a decimal `d`:
/// two row groups of two rows each.
pub fn write_nested() -> Vec<u8> {
    let schema = Arc::new(parse_message_type(NESTED_SCHEMA).expect("schema"));
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, schema, props(None)).expect("writer");
    for g in 0..2i32 {
        let mut rg = w.next_row_group().expect("row group");
        // a.b: row 0 = 10*g+1, row 1: a present, b null.
        let mut c = rg.next_column().expect("col").expect("a.b");
        c.typed::<Int32Type>()
            .write_batch(&[10 * g + 1], Some(&[2, 1]), None)
            .expect("a.b");
        c.close().expect("close");
        // r: row 0 = [1, 2, 3], row 1 = [] (empty list).
        let mut c = rg.next_column().expect("col").expect("r");
        c.typed::<Int64Type>()
            .write_batch(&[1, 2, 3], Some(&[1, 1, 1, 0]), Some(&[0, 1, 1, 0]))
            .expect("r");
        c.close().expect("close");
        // u: 3_000_000_000 as u32 (negative as i32) and 5.
        let mut c = rg.next_column().expect("col").expect("u");
        c.typed::<Int32Type>()
            .write_batch(&[3_000_000_000u32 as i32, 5], None, None)
            .expect("u");
        c.close().expect("close");
        // d: 1.25 and 2.50 (unscaled 125, 250), plus g.
        let mut c = rg.next_column().expect("col").expect("d");
        c.typed::<Int32Type>()
            .write_batch(&[125 + g, 250 + g], None, None)
            .expect("d");
        c.close().expect("close");
        rg.close().expect("rg close");
    }
    w.close().expect("close");
    out
}

/// The last `n` bytes of `file`.
pub fn last(file: &[u8], n: usize) -> &[u8] {
    &file[file.len() - n.min(file.len())..]
}

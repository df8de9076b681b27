#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| anode_fuzz::parquet_predicate(data));

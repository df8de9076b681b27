#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| anode_fuzz::range_copy_source(data));

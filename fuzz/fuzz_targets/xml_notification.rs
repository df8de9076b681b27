#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| anode_fuzz::xml_notification(data));

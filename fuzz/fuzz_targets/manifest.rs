#![no_main]
//! See `driveback_engine::fuzzing::manifest`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = driveback_engine::fuzzing::manifest(data);
});

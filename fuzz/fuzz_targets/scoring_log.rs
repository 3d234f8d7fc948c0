//! The scoring-box log parsers (`referee_engine::signal::parse`, `referee_engine::v2::parse_log`)
//! on any bytes, and both engines on what they read; the invariants are in
//! `referee_engine::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| referee_engine::fuzzing::check_input(data));

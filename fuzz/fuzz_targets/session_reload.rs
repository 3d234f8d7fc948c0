//! A session's directory reloaded as the server reloads it after a restart
//! (`referee_store::FrameStore::open`), from fuzz-chosen files; the invariants are in
//! `referee_store::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| referee_store::fuzzing::check_input(data));

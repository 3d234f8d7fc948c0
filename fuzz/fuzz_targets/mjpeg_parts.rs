//! The streamed multipart frame parser (`referee_wire::mjpeg`), fed in fuzz-chosen chunks with
//! small limits, and its boundary helpers; the invariants are in `referee_wire::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| referee_wire::fuzzing::check_input(data));

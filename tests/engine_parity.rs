//! `ai-referee parse-signal`, `decide` and `track` against the legacy's own outputs
//! (tests/fixtures): the engine crate's CLI checks (`engine/tests/cli/legacy.rs`) run through
//! this binary, so its engine subcommands keep the engine's flags, output and exit statuses. The
//! library itself is checked in `engine/tests/parity.rs`.

/// The fixtures folder.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_ai-referee");

#[path = "../engine/tests/common/mod.rs"]
mod common;
#[path = "../engine/tests/cli/legacy.rs"]
mod cli;

//! `ai-referee decide --engine v2` and `evaluate` on the 100 recorded phrases
//! (tests/fixtures/phrases.jsonl): the engine crate's CLI checks (`engine/tests/cli/v2.rs`) run
//! through this binary: blind to the referee's call, and `evaluate`'s figures the same as those
//! recomputed from `decide`'s output. The library itself is checked in `engine/tests/v2.rs`.

/// The fixtures folder.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_ai-referee");

#[path = "../engine/tests/common/mod.rs"]
mod common;
#[path = "../engine/tests/cli/v2.rs"]
mod cli;
#[path = "../engine/tests/cli/v3.rs"]
mod cli_v3;

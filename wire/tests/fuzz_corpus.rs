//! Replays the `mjpeg_parts` fuzz target's kept corpus and its fixed crash inputs
//! (`fuzz/corpus/mjpeg_parts`, `fuzz/regressions/mjpeg_parts`) through the same invariant checks, on the
//! stable toolchain, so that what the fuzzer found stays found.

use std::path::Path;

#[test]
fn the_mjpeg_parts_corpus_keeps_its_invariants() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let (mut checked, mut broken) = (0, Vec::new());
    for dir in ["corpus/mjpeg_parts", "regressions/mjpeg_parts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir)) else { continue };
        let mut paths: Vec<_> = entries.map(|e| e.expect("a corpus entry").path()).filter(|p| p.is_file()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).expect("a corpus file");
            let outcome = std::panic::catch_unwind(|| referee_wire::fuzzing::check_input(&data));
            if outcome.is_err() {
                broken.push(path.display().to_string());
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no corpus files under {}", fuzz.display());
    assert!(broken.is_empty(), "{} of {checked} inputs break an invariant: {broken:#?}", broken.len());
}

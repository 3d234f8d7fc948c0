//! `pose-bench`, the libtorch-only replay of pose: frames letterboxed by `ai-referee pose
//! --save-tensors` give the same detections when replayed, it prints ms/frame at batch 1, 8 and
//! 32, and it links no OpenCV (the GPU machine has none). Run on CPU here; on a GPU machine the
//! same binary checks CUDA against these CPU results.

mod common;

use std::process::Command;

use common::{default_model, repo, TempDir};

/// `pose-bench` belongs to the `referee-pose` crate: found beside this test's own binaries
/// (`cargo build --workspace`, which scripts/test.sh runs first, builds it).
fn pose_bench() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bench = dir.join("pose-bench");
    assert!(bench.is_file(), "{} is missing: build the workspace (cargo build --workspace)", bench.display());
    bench
}

#[test]
fn replayed_frames_match_and_timings_are_printed() {
    let dir = TempDir::new("pose-bench");
    let frames = dir.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(repo().join("data/demo.mp4"))
        .args(["-vf", "select=not(mod(n\\,57))", "-vsync", "0"])
        .arg(frames.join("f%02d.png"))
        .status()
        .unwrap();
    assert!(status.success());
    let saved = dir.path().join("bench");
    let model = default_model();
    let pose = Command::new(env!("CARGO_BIN_EXE_ai-referee"))
        .args(["pose", "--device", "cpu", "--model", model.to_str().unwrap(), "--save-tensors", saved.to_str().unwrap()])
        .arg(&frames)
        .output()
        .unwrap();
    assert!(pose.status.success(), "{}", String::from_utf8_lossy(&pose.stderr));
    assert!(saved.join("frames.ot").is_file() && saved.join("reference.jsonl").is_file());

    let bench = Command::new(pose_bench())
        .arg(&saved)
        .args(["--device", "cpu", "--rounds", "1", "--model", model.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&bench.stdout);
    eprintln!("{stdout}");
    assert!(bench.status.success(), "{stdout}{}", String::from_utf8_lossy(&bench.stderr));
    assert!(stdout.contains("parity with the CPU") && stdout.contains(": match"), "{stdout}");
    for batch in ["batch  1:", "batch  8:", "batch 32:"] {
        assert!(stdout.contains(batch), "no {batch} timing in:\n{stdout}");
    }

    let ldd = Command::new("ldd").arg(pose_bench()).output().unwrap();
    let libs = String::from_utf8_lossy(&ldd.stdout);
    assert!(libs.contains("libtorch"), "{libs}");
    assert!(!libs.contains("opencv"), "pose-bench must not need OpenCV:\n{libs}");
}

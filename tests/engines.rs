//! The engines through the server over real sockets: every answer carries the legacy, `v2` and
//! `v3` decisions under `decisions`; `--engine`/`REFEREE_ENGINE`, the `engine` form field and
//! `?engine=` choose which one is `decision`; the server's `v2` and `v3` calls equal `ai-referee
//! decide` on the same keypoints and frame times. Recorded phrases rendered as markers (the
//! marker model checks plumbing here, not accuracy; `ai-referee evaluate` measures that).
//! `?engine=` on `/stream` is in `tests/stream.rs`.

mod common;

use common::Served;

use std::process::Command;

use common::{marker_server_with, phrase, render, Rendered, Server, TempDir};
use serde_json::{json, Value};

/// `POST /analyze` of the rendered phrase with its keypoints, and `engine` if given.
fn analyze(server: &Server, rendered: &Rendered, engine: Option<&str>) -> Value {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-F"])
        .arg(format!("video=@{}", rendered.avi.display()))
        .arg("-F")
        .arg(format!("signal=@{}", rendered.log.display()))
        .args(["-F", "save_overlay=false", "-F", "include_keypoints=true"]);
    if let Some(engine) = engine {
        curl.args(["-F", &format!("engine={engine}")]);
    }
    let out = curl.arg(format!("{}/analyze", server.url())).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Equal JSON, numbers within `1e-9` (frame times computed two ways differ in the last bit).
fn assert_close(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{path}: {a} vs {b}");
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{path}: keys");
            for (k, v) in a {
                assert_close(v, &b[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: length");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_close(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

#[test]
fn every_answer_carries_every_decision_and_the_chosen_one_answers() {
    let out = TempDir::new("engines");
    let server = marker_server_with(&out.path().join("results"), &["--engine", "v2"]);
    let rendered = render(0, out.path());

    // The server's default (--engine v2) answers with v2; the legacy call rides along.
    let by_v2 = analyze(&server, &rendered, None);
    assert_eq!(by_v2["engine"], "v2", "{by_v2}");
    assert_eq!(by_v2["decision"], by_v2["decisions"]["v2"]);
    let v2 = &by_v2["decisions"]["v2"];
    assert!(matches!(v2["winner"].as_str(), Some("left" | "right")), "{v2}");
    let confidence = v2["confidence"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&confidence), "{confidence}");
    assert!(v2["uncertain"].is_boolean());
    assert!(v2["explanation"].as_str().unwrap().len() > 20, "{v2}");
    assert_eq!(v2["time_source"], "timestamps", "the video's own frame times");
    assert_eq!(by_v2["decisions"]["legacy"]["winner"], phrase(0)["legacy_decision"]["winner"]);

    // The form field chooses per request; the same video gives the same two calls.
    let by_legacy = analyze(&server, &rendered, Some("legacy"));
    assert_eq!(by_legacy["engine"], "legacy");
    assert_eq!(by_legacy["decision"], by_legacy["decisions"]["legacy"]);
    assert_eq!(by_legacy["decisions"], by_v2["decisions"]);
    // As saved beside the artifacts.
    let saved: Value = serde_json::from_slice(&std::fs::read(by_legacy["artifacts"]["result_json"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(saved["decisions"], by_legacy["decisions"]);

    // The server's v2 is the CLI's v2 on the same keypoints and frame times (15 fps render).
    let keypoints = &by_v2["keypoints"];
    let frames = keypoints["left_x"].as_array().unwrap().len();
    let line = json!({
        "id": "served",
        "signal": std::fs::read_to_string(&rendered.log).unwrap(),
        "keypoints": keypoints,
        "normalisation_constant": by_v2["metadata"]["normalisation_constant"],
        "frame_times": (0..frames).map(|i| i as f64 / 15.0).collect::<Vec<_>>(),
    });
    let file = out.path().join("served.jsonl");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let cli = Command::new(env!("CARGO_BIN_EXE_ai-referee")).args(["decide", "--engine", "v2", "--phrases"]).arg(&file).output().unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_close(&v2.clone(), &cli["decision"], "v2");

    // v3 answers when chosen, with the same calls beside it, and is the CLI's v3 too.
    let by_v3 = analyze(&server, &rendered, Some("v3"));
    assert_eq!(by_v3["engine"], "v3", "{by_v3}");
    assert_eq!(by_v3["decision"], by_v3["decisions"]["v3"]);
    assert_eq!(by_v3["decisions"], by_v2["decisions"]);
    let v3 = &by_v3["decisions"]["v3"];
    let confidence = v3["confidence"].as_f64().unwrap();
    assert!((0.5..1.0).contains(&confidence), "{v3}");
    assert_eq!(v3["uncertain"], confidence < 0.9 || !v3["doubts"].as_array().unwrap().is_empty(), "{v3}");
    let cli = Command::new(env!("CARGO_BIN_EXE_ai-referee")).args(["decide", "--engine", "v3", "--phrases"]).arg(&file).output().unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_close(&v3.clone(), &cli["decision"], "v3");

    // An engine nobody knows: 422 naming the ones there are.
    let unknown = analyze(&server, &rendered, Some("v4"));
    assert!(unknown["detail"].as_str().unwrap().contains("legacy, v2, v3"), "{unknown}");
}

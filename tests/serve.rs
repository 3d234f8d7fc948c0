//! The real `ai-referee serve` on an ephemeral port, with the real TorchScript loaded by
//! libtorch: health in the legacy shape, the legacy environment variables, and clear failures
//! for models it cannot use.

mod common;

use common::Served;

use std::time::Duration;

use common::{default_model, serve_until_exit, venv_python, Server, TempDir};

#[test]
fn health_is_ok_once_the_model_is_warm() {
    let server = Server::start_ready(&[], &[]);
    let response = server.get("/health");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let health = response.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["model_loaded"], true);
    assert_eq!(health["model_path"], default_model().to_str().unwrap());
    // Still serving afterwards (the model loader's end must not stop the accept loop).
    assert_eq!(server.get("/health").json()["status"], "ok");
}

#[test]
fn legacy_environment_variables_configure_the_server() {
    let model = default_model();
    let out = TempDir::new("env");
    // No flags at all: host, port, model, output dir and log level come from REFEREE_*.
    let mut server = Server::start(
        &[],
        &[
            ("REFEREE_YOLO_MODEL", model.to_str().unwrap()),
            ("REFEREE_OUTPUT_DIR", out.path().to_str().unwrap()),
            ("REFEREE_LOG_LEVEL", "DEBUG"),
            ("REFEREE_FISHEYE_ENABLED", "off"),
        ],
    );
    assert!(server.addr.ip().is_loopback(), "REFEREE_HOST=127.0.0.1 was ignored: {}", server.addr);
    assert_ne!(server.addr.port(), 0);
    let config_line = server.wait_for("configuration", common::STARTUP);
    assert!(config_line.contains("fisheye_enabled=false"), "{config_line}");
    server.wait_for("model ready", common::STARTUP);
    assert_eq!(server.get("/health").json()["model_path"], model.to_str().unwrap());
}

#[test]
fn unknown_routes_answer_404_with_detail() {
    let server = Server::start_ready(&[], &[]);
    let response = server.get("/nope");
    assert_eq!(response.status, 404);
    assert!(response.json()["detail"].as_str().unwrap().contains("/nope"));
    let response = server.request("POST", "/health", &[], b"");
    assert_eq!(response.status, 405);
    assert!(response.json()["detail"].is_string());
}

#[test]
fn a_missing_model_stops_serve_with_a_clear_message() {
    let (status, log) = serve_until_exit(&["--model", "/nonexistent/pose.torchscript"], &[], Duration::from_secs(60));
    assert!(!status.success(), "serve should fail; log:\n{log}");
    assert!(log.contains("/nonexistent/pose.torchscript does not exist"), "{log}");
}

#[test]
fn a_file_that_is_not_torchscript_stops_serve() {
    let dir = TempDir::new("not-ts");
    let path = dir.path().join("weights.torchscript");
    std::fs::write(&path, b"these are not weights").unwrap();
    let (status, log) = serve_until_exit(&["--model", path.to_str().unwrap()], &[], Duration::from_secs(60));
    assert!(!status.success(), "serve should fail; log:\n{log}");
    assert!(log.contains("is not a loadable TorchScript module"), "{log}");
}

#[test]
fn a_torchscript_that_is_not_a_pose_model_stops_serve() {
    let dir = TempDir::new("not-pose");
    let path = dir.path().join("classifier.torchscript");
    // A real TorchScript whose output is [1, 3], not [1, 56, N]: made by the venv's torch.
    let script = format!(
        "import torch\nm = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n\
         torch.jit.script(m).save({:?})\n",
        path.to_str().unwrap()
    );
    let made = std::process::Command::new(venv_python()).args(["-c", &script]).status().unwrap();
    assert!(made.success());
    let (status, log) = serve_until_exit(&["--model", path.to_str().unwrap()], &[], Duration::from_secs(120));
    assert!(!status.success(), "serve should fail; log:\n{log}");
    assert!(log.contains("is not a YOLO pose model: its output is [1, 3]"), "{log}");
}

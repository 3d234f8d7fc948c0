//! Two `serve` replicas behind the shipped nginx config: phrases spread over both, and every
//! request about a phrase (upload, resume, log, events, files) reaches the replica holding it.

mod common;

use common::Served;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{http_request, marker_server, phrase, render, Nginx, Rendered, Server, TempDir};
use referee_wire::PartWriter;

/// Which of the replicas holds session `id` (asked directly, not through nginx); exactly one must.
fn holder(replicas: &[&Server], id: &str) -> usize {
    let holding: Vec<usize> = replicas.iter().enumerate().filter(|(_, r)| r.get(&format!("/sessions/{id}")).status == 200).map(|(i, _)| i).collect();
    assert_eq!(holding.len(), 1, "session {id} is on replicas {holding:?}");
    holding[0]
}

fn frames_body(parts: &mut PartWriter, rendered: &Rendered, range: std::ops::Range<usize>) -> Vec<u8> {
    range.flat_map(|i| parts.frame(i as u64, i as f64 / 15.0, &rendered.jpegs[i]).to_vec()).collect()
}

#[test]
fn phrases_spread_over_replicas_and_each_phrase_stays_on_its_own() {
    let out = TempDir::new("replicas");
    let (a, b) = (marker_server(&out.path().join("replica-a")), marker_server(&out.path().join("replica-b")));
    let replicas = [&a, &b];
    let nginx = Nginx::start_replicas(&[a.addr, b.addr], &out.path().join("nginx"));
    let rendered = render(8, out.path());
    let n = rendered.jpegs.len();
    let log = std::fs::read(&rendered.log).unwrap();
    let expected = phrase(8)["legacy_decision"]["winner"].clone();

    // Ten phrases, frames then the log by PUT (a second request that must find the same replica).
    let mut on = [0usize; 2];
    for k in 0..10 {
        let id = format!("piste-{k}");
        let mut parts = PartWriter::new();
        let mut body = frames_body(&mut parts, &rendered, 0..n);
        body.extend_from_slice(format!("--{}--\r\n", parts.boundary()).as_bytes());
        let r = http_request(nginx.addr, "POST", &format!("/stream?session={id}"), &[("Content-Type", &parts.content_type())], &body);
        assert_eq!(r.status, 202, "{id}: {}", String::from_utf8_lossy(&r.body));
        let r = http_request(nginx.addr, "PUT", &format!("/sessions/{id}/signal"), &[], &log);
        assert_eq!(r.status, 200, "{id}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["decision"]["winner"], expected, "{id}");
        on[holder(&replicas, &id)] += 1;
        let view = http_request(nginx.addr, "GET", &format!("/referee/sessions/{id}/artifacts/analysis_result.json"), &[], b"");
        assert_eq!(view.status, 200, "{id}: its files, through the sub-path, from its replica");
    }
    assert!(on[0] > 0 && on[1] > 0, "ten phrases all went to one replica: {on:?}");

    // A cut upload, resumed through nginx, lands on the replica that has its first half.
    let mut parts = PartWriter::new();
    let mut cut = TcpStream::connect(nginx.addr).unwrap();
    let first = frames_body(&mut parts, &rendered, 0..n / 2);
    let head = format!("POST /stream?session=cut HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", parts.content_type(), first.len());
    cut.write_all(head.as_bytes()).unwrap();
    cut.write_all(&first).unwrap();
    cut.write_all(b"\r\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while http_request(nginx.addr, "GET", "/sessions/cut", &[], b"").json()["frames_received"].as_u64().unwrap_or(0) + 1 < (n / 2) as u64 {
        assert!(std::time::Instant::now() < deadline, "the first half never arrived");
        // A paced poll (of an HTTP route or /proc): the server sends no event for this; the loop ends on what it observes.
        std::thread::sleep(common::POLL_PACE);
    }
    drop(cut);
    let holding = holder(&replicas, "cut");
    while replicas[holding].get("/sessions/cut").json()["state"] != "interrupted" {
        assert!(std::time::Instant::now() < deadline, "the cut was never seen");
        // A paced poll (of an HTTP route or /proc): the server sends no event for this; the loop ends on what it observes.
        std::thread::sleep(common::POLL_PACE);
    }
    let from = http_request(nginx.addr, "GET", "/sessions/cut", &[], b"").json()["next_frame_index"].as_u64().unwrap() as usize;
    let mut parts = PartWriter::new(); // a new body opens with its own first delimiter
    let mut body = frames_body(&mut parts, &rendered, from..n);
    body.extend_from_slice(&parts.signal_and_close(&log));
    let r = http_request(nginx.addr, "POST", "/stream?session=cut", &[("Content-Type", &parts.content_type())], &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"]["frames_received"], n, "resumed on the replica holding the first half");
    assert_eq!(r.json()["decision"]["winner"], expected);
    assert_eq!(holder(&replicas, "cut"), holding);

    // A phrase that lets the server choose its id: nginx's request id becomes it, and the
    // phrase's later requests find it.
    let mut parts = PartWriter::new();
    let mut body = frames_body(&mut parts, &rendered, 0..n);
    body.extend_from_slice(format!("--{}--\r\n", parts.boundary()).as_bytes());
    let r = http_request(nginx.addr, "POST", "/stream", &[("Content-Type", &parts.content_type())], &body);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.header(referee_wire::SESSION_ID_HEADER).expect("the session id header").to_owned();
    let r = http_request(nginx.addr, "PUT", &format!("/sessions/{id}/signal"), &[], &log);
    assert_eq!(r.status, 200, "{id}: {}", String::from_utf8_lossy(&r.body));
    holder(&replicas, &id);

    // Events through nginx come from the holder too.
    let mut events = TcpStream::connect(nginx.addr).unwrap();
    write!(events, "GET /sessions/piste-3/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    events.read_to_string(&mut text).unwrap();
    assert!(text.contains("event: verdict"), "{text}");
}

#[test]
fn the_compose_deployments_nginx_is_the_shipped_one_with_its_replicas() {
    let shipped = std::fs::read_to_string(common::repo().join("deploy/nginx.conf")).unwrap();
    let compose = std::fs::read_to_string(common::repo().join("deploy/triton/nginx.conf")).unwrap();
    let expected = shipped.replace("        server 127.0.0.1:8080;", "        server referee-1:8080;\n        server referee-2:8080;");
    let body: String = compose.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(body, expected, "regenerate deploy/triton/nginx.conf from deploy/nginx.conf (see its first line)");
    let services = std::fs::read_to_string(common::repo().join("deploy/triton/compose.yaml")).unwrap();
    assert!(services.contains("referee-1:") && services.contains("referee-2:") && services.contains("REFEREE_TRITON_INPUT: INPUT__0"));
    let model = std::fs::read_to_string(common::repo().join("deploy/triton/model_repository/yolo_pose/config.pbtxt")).unwrap();
    assert!(model.contains("name: \"INPUT__0\"") && model.contains("name: \"OUTPUT__0\"") && model.contains("platform: \"pytorch_libtorch\""));
}

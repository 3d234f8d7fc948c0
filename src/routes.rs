//! The one route table: every path the server answers, the methods it takes there, its label
//! in metrics and logs, and whether it is open without the token. The router (`server.rs`), the
//! metrics and access-log layer (`layers.rs`) and the token check (`auth.rs`) all read it, so a
//! route is added in one place. Also the one reader of query strings (percent-decoded).

use hyper::{Method, Uri};

/// A route the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/`: the sessions index page.
    Index,
    /// `/assets/{name}`: the pages' styles.
    Asset,
    /// `/health`.
    Health,
    /// `/stats`.
    Stats,
    /// `/metrics` (Prometheus).
    Metrics,
    /// `/analyze`: the legacy drop-in.
    Analyze,
    /// `/stream`: a streamed phrase (POST), or the piste GUI's WebSocket (GET with Upgrade).
    Stream,
    /// `/sessions`: the index's list.
    Sessions,
    /// `/sessions/{id}`: a phrase's progress.
    Session,
    /// `/sessions/{id}/signal`: its log, PUT whole.
    SessionSignal,
    /// `/sessions/{id}/call`: the referee's own call, PUT (`left`, `right` or `none`).
    SessionCall,
    /// `/sessions/{id}/events`: its server-sent events.
    SessionEvents,
    /// `/sessions/{id}/view`: its page.
    SessionView,
    /// `/sessions/{id}/artifacts/{name}`: one of its files.
    SessionArtifact,
}

/// One row of the table.
#[derive(Debug)]
pub struct RouteSpec {
    /// The route.
    pub route: Route,
    /// Its path, by segment; `{…}` is a parameter.
    pub segments: &'static [&'static str],
    /// The methods it takes (any other is 405).
    pub methods: &'static [Method],
    /// Whether it is served without the token: the health check (load balancers, the legacy
    /// uploader) and the metrics (Prometheus).
    pub open: bool,
    /// Its pattern, the label of its metrics and log lines (never an id).
    pub label: &'static str,
}

/// Every route, once.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec { route: Route::Index, segments: &[""], methods: &[Method::GET], open: false, label: "/" },
    RouteSpec { route: Route::Asset, segments: &["assets", "{name}"], methods: &[Method::GET], open: false, label: "/assets/{name}" },
    RouteSpec { route: Route::Health, segments: &["health"], methods: &[Method::GET], open: true, label: "/health" },
    RouteSpec { route: Route::Stats, segments: &["stats"], methods: &[Method::GET], open: false, label: "/stats" },
    RouteSpec { route: Route::Metrics, segments: &["metrics"], methods: &[Method::GET], open: true, label: "/metrics" },
    RouteSpec { route: Route::Analyze, segments: &["analyze"], methods: &[Method::POST], open: false, label: "/analyze" },
    RouteSpec { route: Route::Stream, segments: &["stream"], methods: &[Method::POST, Method::GET], open: false, label: "/stream" },
    RouteSpec { route: Route::Sessions, segments: &["sessions"], methods: &[Method::GET], open: false, label: "/sessions" },
    RouteSpec { route: Route::Session, segments: &["sessions", "{id}"], methods: &[Method::GET], open: false, label: "/sessions/{id}" },
    RouteSpec { route: Route::SessionSignal, segments: &["sessions", "{id}", "signal"], methods: &[Method::PUT], open: false, label: "/sessions/{id}/signal" },
    RouteSpec { route: Route::SessionCall, segments: &["sessions", "{id}", "call"], methods: &[Method::PUT], open: false, label: "/sessions/{id}/call" },
    RouteSpec { route: Route::SessionEvents, segments: &["sessions", "{id}", "events"], methods: &[Method::GET], open: false, label: "/sessions/{id}/events" },
    RouteSpec { route: Route::SessionView, segments: &["sessions", "{id}", "view"], methods: &[Method::GET], open: false, label: "/sessions/{id}/view" },
    RouteSpec {
        route: Route::SessionArtifact,
        segments: &["sessions", "{id}", "artifacts", "{name}"],
        methods: &[Method::GET],
        open: false,
        label: "/sessions/{id}/artifacts/{name}",
    },
];

/// A path matched against the table: its row and its parameters, in order.
#[derive(Debug)]
pub struct Matched<'a> {
    /// The row.
    pub spec: &'static RouteSpec,
    /// The `{…}` segments' values, as in the path.
    pub params: Vec<&'a str>,
}

impl Matched<'_> {
    /// Whether the route takes `method`.
    pub fn allows(&self, method: &Method) -> bool {
        self.spec.methods.contains(method)
    }
}

/// The row a path belongs to, if any.
pub fn find(path: &str) -> Option<Matched<'_>> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    ROUTES.iter().find_map(|spec| {
        if spec.segments.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (pattern, segment) in spec.segments.iter().zip(&segments) {
            if pattern.starts_with('{') {
                params.push(*segment);
            } else if pattern != segment {
                return None;
            }
        }
        Some(Matched { spec, params })
    })
}

/// The label of a path's route (`other` for none).
pub fn label_of(path: &str) -> &'static str {
    find(path).map_or("other", |m| m.spec.label)
}

/// Whether a path's route is open without the token.
pub fn is_open(path: &str) -> bool {
    find(path).is_some_and(|m| m.spec.open)
}

/// A query parameter's value, percent-decoded (`+` is a space, as forms send it); the first
/// one of that name. A value that does not decode to UTF-8 is taken as absent.
pub fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key).as_deref() == Some(name)).then(|| percent_decode(value)).flatten()
    })
}

/// `%XX` escapes and `+` decoded; `None` when the bytes are not UTF-8. A `%` not followed by two
/// hex digits is kept as it is.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_with_its_parameters_and_nothing_else_is() {
        let m = find("/sessions/abc/artifacts/frames.idx").unwrap();
        assert_eq!((m.spec.route, m.params.as_slice()), (Route::SessionArtifact, &["abc", "frames.idx"][..]));
        assert_eq!(find("/").unwrap().spec.route, Route::Index);
        assert_eq!(find("/sessions").unwrap().spec.route, Route::Sessions);
        assert!(find("/sessions/a/b").is_none());
        assert!(find("/nope").is_none());
        assert_eq!(label_of("/sessions/s123/events"), "/sessions/{id}/events");
        assert_eq!(label_of("/x/y"), "other");
        assert_eq!(label_of("/sessions/p-1/artifacts/frames.mjpeg"), "/sessions/{id}/artifacts/{name}");
        assert_eq!(label_of("/nope/x"), "other");
        assert!(is_open("/health") && is_open("/metrics") && !is_open("/stats") && !is_open("/sessions"));
        assert!(find("/stream").unwrap().allows(&Method::GET) && !find("/stream").unwrap().allows(&Method::PUT));
        let call = find("/sessions/p-1/call").unwrap();
        assert_eq!((call.spec.route, call.params.as_slice(), call.spec.label), (Route::SessionCall, &["p-1"][..], "/sessions/{id}/call"));
        assert!(call.allows(&Method::PUT) && !call.allows(&Method::GET) && !is_open("/sessions/p-1/call"), "PUT only, and behind the token");
        // Every label is its own pattern, and no two rows share a path.
        for spec in ROUTES {
            assert_eq!(spec.label.trim_start_matches('/'), spec.segments.join("/"));
            assert_eq!(ROUTES.iter().filter(|s| s.segments == spec.segments).count(), 1);
        }
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let uri: Uri = "/stream?session=a%2Db&token=x%2By%3D&fps=15&name=a+b&bad=%zz&end=%4".parse().unwrap();
        assert_eq!(query_param(&uri, "session").as_deref(), Some("a-b"));
        assert_eq!(query_param(&uri, "token").as_deref(), Some("x+y="));
        assert_eq!(query_param(&uri, "fps").as_deref(), Some("15"));
        assert_eq!(query_param(&uri, "name").as_deref(), Some("a b"));
        assert_eq!(query_param(&uri, "bad").as_deref(), Some("%zz"));
        assert_eq!(query_param(&uri, "end").as_deref(), Some("%4"));
        assert_eq!(query_param(&uri, "missing"), None);
        let invalid: Uri = "/stream?session=%FF".parse().unwrap();
        assert_eq!(query_param(&invalid, "session"), None);
    }
}

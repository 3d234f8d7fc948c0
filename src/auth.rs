//! The optional bearer token (`--token` / `REFEREE_TOKEN`). With one set, every route but
//! `/health` and `/metrics` wants it, presented as `Authorization: Bearer <token>` (clients), as `?token=<token>`
//! (a link to the piste view), or as the `referee_token` cookie that a request carrying the
//! query token gets back, so that a page opened once with `?token=` keeps working (its fetches,
//! event streams and images send the cookie by themselves). Tokens are compared in constant time.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::Uri;

use crate::error::ApiError;

/// The cookie that carries the token for the pages.
pub const COOKIE: &str = "referee_token";

/// Checks the token a request presents against `expected`. `Ok(Some(cookie))`: it came in the
/// query, and this `Set-Cookie` value keeps the browser signed in; `Ok(None)`: it came by header
/// or cookie; 401 when it is missing or wrong.
pub fn check(headers: &HeaderMap, uri: &Uri, expected: &str) -> Result<Option<HeaderValue>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let query = crate::routes::query_param(uri, "token");
    let query = query.as_deref();
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')));
    let presented = bearer.or(query).or(cookie);
    match presented {
        None => Err(ApiError::Unauthorized("this server wants a token: send Authorization: Bearer <token> (or open the page with ?token=<token>)".into())),
        Some(token) if !same_secret(token.as_bytes(), expected.as_bytes()) => Err(ApiError::Unauthorized("wrong token".into())),
        Some(_) if bearer.is_none() && query.is_some() => {
            let value = format!("{COOKIE}={expected}; Path=/; HttpOnly; SameSite=Strict");
            Ok(HeaderValue::from_str(&value).ok())
        }
        Some(_) => Ok(None),
    }
}

/// Equal secrets, in time that depends on their lengths only.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut differ = given.len() ^ expected.len();
    for (i, b) in expected.iter().enumerate() {
        differ |= usize::from(b ^ given.get(i).copied().unwrap_or(!b));
    }
    differ == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], uri: &str) -> (HeaderMap, Uri) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        (map, uri.parse().unwrap())
    }

    #[test]
    fn the_token_is_taken_from_the_header_the_query_or_the_cookie() {
        let (h, u) = request(&[("authorization", "Bearer s3cret")], "/stream");
        assert!(matches!(check(&h, &u, "s3cret"), Ok(None)));
        let (h, u) = request(&[], "/sessions/p1/view?x=1&token=s3cret");
        let cookie = check(&h, &u, "s3cret").unwrap().expect("a cookie for the page");
        assert!(cookie.to_str().unwrap().starts_with("referee_token=s3cret;") && cookie.to_str().unwrap().contains("HttpOnly"));
        let (h, u) = request(&[("cookie", "a=b; referee_token=s3cret")], "/sessions");
        assert!(matches!(check(&h, &u, "s3cret"), Ok(None)));
    }

    #[test]
    fn a_missing_or_wrong_token_is_401() {
        for (headers, uri) in [
            (vec![], "/stream"),
            (vec![("authorization", "Bearer s3cre")], "/stream"),
            (vec![("authorization", "Bearer s3cret2")], "/stream"),
            (vec![("cookie", "referee_token=nope")], "/sessions"),
            (vec![], "/sessions?token="),
        ] {
            let (h, u) = request(&headers, uri);
            let got = check(&h, &u, "s3cret");
            assert!(matches!(got, Err(ApiError::Unauthorized(_))), "{headers:?} {uri}: {got:?}");
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}

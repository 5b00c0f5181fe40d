//! The HTTP pieces the session API and the dashboard share: response bodies,
//! queries, and the checks every request passes (loopback `Host`, same
//! `Origin`, the session token in a header or cookie).

use std::collections::HashMap;
use std::convert::Infallible;

use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

/// Every response's body.
pub type Body = BoxBody<Bytes, Infallible>;

/// A query string's values by key (`a=1&a=2` gives both), decoded.
pub type Query = HashMap<String, Vec<String>>;

pub fn parse_query(query: &str) -> Query {
    let mut out = Query::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

/// A key's first value.
pub fn first<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query.get(key)?.first().map(String::as_str)
}

/// A percent-encoded path segment, decoded (`+` stays `+`).
pub fn decode_segment(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether the request carries the token (header or cookie).
pub fn authorized<B>(req: &Request<B>, token: &str) -> bool {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let header_token = headers.get("x-loop-token").and_then(|v| v.to_str().ok());
    let cookie = cookie_token(headers.get(header::COOKIE));
    let matches = |given: Option<&str>| given.is_some_and(|g| same_token(g, token));
    matches(bearer) || matches(header_token) || matches(cookie.as_deref())
}

/// The `loop_token` cookie's value.
pub fn cookie_token(cookie: Option<&HeaderValue>) -> Option<String> {
    cookie?
        .to_str()
        .ok()?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "loop_token")
        .map(|(_, v)| v.to_owned())
}

/// Compares a given token with the session's in constant time.
pub fn same_token(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// Whether `Host` names a loopback address with this port.
pub fn loopback_host(host: Option<&HeaderValue>, port: u16) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    LOOPBACK_NAMES
        .iter()
        .any(|name| host == format!("{name}:{port}"))
}

/// Whether a state-changing request's `Origin` (if any) is this server.
pub fn same_origin(origin: Option<&HeaderValue>, port: u16) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    LOOPBACK_NAMES
        .iter()
        .any(|name| origin == format!("http://{name}:{port}"))
}

pub fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed(Full::new(body.into()))
}

/// A response with a body of the given content type.
pub fn typed(status: StatusCode, body: impl Into<Bytes>, kind: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}

pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    typed(status, body.to_owned(), "text/plain; charset=utf-8")
}

pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    typed(status, body, "application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_origins_and_queries() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(loopback_host(Some(&h("127.0.0.1:10360")), 10360));
        assert!(loopback_host(Some(&h("localhost:10360")), 10360));
        assert!(!loopback_host(Some(&h("evil.example:10360")), 10360));
        assert!(!loopback_host(Some(&h("127.0.0.1:80")), 10360));
        assert!(!loopback_host(None, 10360));
        assert!(same_origin(None, 1));
        assert!(same_origin(Some(&h("http://localhost:1")), 1));
        assert!(!same_origin(Some(&h("http://evil.example")), 1));
        let q = parse_query("resource=a%3Ab&resource=c&since=5&x&y=a+b");
        assert_eq!(q["resource"], ["a:b", "c"]);
        assert_eq!(q["since"], ["5"]);
        assert_eq!(q["y"], ["a b"]);
        assert_eq!(decode_segment("100%"), "100%");
        assert_eq!(decode_segment("a%2"), "a%2");
        assert_eq!(decode_segment("a+b%2Fc"), "a+b/c");
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("ab", "abc"));
    }
}

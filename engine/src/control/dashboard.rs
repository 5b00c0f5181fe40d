//! The browser dashboard: plain HTML, CSS and JavaScript modules built into the
//! binary (no CDN, no build step), served by the session API's server. Opening
//! `/?token=TOKEN` (the URL `loop run` prints) sets an HttpOnly, SameSite=Strict
//! cookie and redirects to `/`; the page then uses the API with that cookie.

use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::http::{cookie_token, full, same_token, text, Body, Query};

const INDEX: &str = include_str!("assets/index.html");
const APP: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// `/`: the page for a browser holding the cookie; `/?token=` sets it.
pub(super) fn page<B>(req: &Request<B>, query: &Query, session_token: &str) -> Response<Body> {
    let valid = |t: &str| same_token(t, session_token);
    if let Some(token) = query.get("token").and_then(|t| t.first()) {
        if !valid(token) {
            return text(StatusCode::UNAUTHORIZED, "unauthorized: this token is not the session's; run `loop status` for the dashboard's URL");
        }
        let cookie = format!("loop_token={token}; HttpOnly; SameSite=Strict; Path=/");
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, "/")
            .header(header::SET_COOKIE, cookie)
            .body(full(""))
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, ""));
    }
    let has_cookie = cookie_token(req.headers().get(header::COOKIE)).is_some_and(|t| valid(&t));
    if !has_cookie {
        return text(StatusCode::UNAUTHORIZED, "unauthorized: open the dashboard with the URL that `loop run` printed or `loop status` shows");
    }
    with_type(INDEX, "text/html; charset=utf-8")
}

/// The page's scripts and styles.
pub(super) fn asset(name: &str) -> Response<Body> {
    match name {
        "app.js" => with_type(APP, "text/javascript; charset=utf-8"),
        "style.css" => with_type(STYLE, "text/css; charset=utf-8"),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn with_type(body: &'static str, kind: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; style-src 'self'; script-src 'self'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

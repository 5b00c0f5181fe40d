//! WebSocket upgrade for exec and port-forward: checks the handshake headers,
//! negotiates the channel subprotocol and answers `101 Switching Protocols`.

use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper::{header, Request, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::server::Body;
use crate::status::ApiError;

/// The server side of an upgraded connection.
pub type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Validate an upgrade request and pick the first of `supported` (server
/// preference order) that the client offers. Returns the 101 response, the
/// chosen protocol and the pending upgrade.
pub fn upgrade(
    req: &mut Request<Incoming>,
    supported: &[&str],
) -> Result<(Response<Body>, String, OnUpgrade), ApiError> {
    let h = req.headers();
    let is_ws = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_ws {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let key = h
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?
        .as_bytes()
        .to_vec();
    let offered: Vec<String> = h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let chosen = supported
        .iter()
        .find(|s| offered.iter().any(|o| o == *s))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to upgrade connection: none of the offered subprotocols {offered:?} is supported ({supported:?})"
            ))
        })?
        .to_string();
    let resp = Response::builder()
        .status(101)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(&key))
        .header(header::SEC_WEBSOCKET_PROTOCOL, chosen.as_str())
        .body(http_body_util::BodyExt::boxed_unsync(
            http_body_util::Empty::new(),
        ))
        .unwrap();
    Ok((resp, chosen, hyper::upgrade::on(req)))
}

/// Finish the upgrade into a server-role websocket.
pub async fn accept(on: OnUpgrade) -> Option<Ws> {
    let upgraded = on.await.ok()?;
    Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await)
}

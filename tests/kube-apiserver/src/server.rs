//! HTTP plumbing: the accept loop, URL routing, query parsing, response helpers.

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::discovery::{self, ResourceType};
use crate::status::ApiError;
use crate::Shared;

/// Response body: a whole buffer or a stream of chunks.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let s2 = shared.clone();
        shared.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let s = s2.clone();
                async move { Ok::<_, Infallible>(handle(s, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

/// A whole JSON response.
pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    bytes_response(code, "application/json", v.to_string().into_bytes())
}

pub fn bytes_response(code: u16, content_type: &str, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .unwrap()
}

pub fn error_response(e: ApiError) -> Response<Body> {
    json_response(e.code, &e.body)
}

/// A chunked streaming response fed by the returned sender (dropping it ends the body).
pub fn streaming_response(content_type: &str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    })
    .boxed();
    let resp = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private")
        .body(BodyExt::boxed_unsync(StreamBody::new(stream)))
        .unwrap();
    (tx, resp)
}

/// Decoded query parameters (repeated keys kept in order).
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `true`/`1` (as the server's bool parsing accepts).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True" | "TRUE"))
    }
}

/// Percent-decoding, with `+` as space.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request aimed at a resource type.
#[derive(Debug, Clone)]
pub struct Target {
    pub rt: ResourceType,
    /// Namespace from the URL (None for cluster-scoped or all-namespaces requests).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

enum Route {
    Version,
    Api,
    CoreResources,
    Apis,
    Group(String),
    GroupResources(String, String),
    Resource(String, String, Vec<String>),
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["api"] => Some(Route::Api),
        ["api", "v1"] => Some(Route::CoreResources),
        ["api", "v1", rest @ ..] => Some(Route::Resource(
            "".into(),
            "v1".into(),
            rest.iter().map(|s| s.to_string()).collect(),
        )),
        ["apis"] => Some(Route::Apis),
        ["apis", g] => Some(Route::Group(g.to_string())),
        ["apis", g, v] => Some(Route::GroupResources(g.to_string(), v.to_string())),
        ["apis", g, v, rest @ ..] => Some(Route::Resource(
            g.to_string(),
            v.to_string(),
            rest.iter().map(|s| s.to_string()).collect(),
        )),
        _ => None,
    }
}

/// Resolve `[namespaces/{ns}/]{plural}[/{name}[/{sub}]]`.
fn resolve(
    shared: &Shared,
    group: &str,
    version: &str,
    segs: &[String],
) -> Result<Target, ApiError> {
    let (namespace, rest): (Option<String>, &[String]) =
        if segs.len() >= 3 && segs[0] == "namespaces" {
            (Some(segs[1].clone()), &segs[2..])
        } else {
            (None, segs)
        };
    if rest.is_empty() || rest.len() > 3 {
        return Err(ApiError::no_such_resource());
    }
    let st = shared.lock();
    let rt = discovery::find(&st.store, group, version, &rest[0])
        .ok_or_else(ApiError::no_such_resource)?;
    if namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_such_resource());
    }
    let subresource = rest.get(2).cloned();
    if let Some(sub) = &subresource {
        if !rt.subresources.contains(sub) {
            return Err(ApiError::no_such_resource());
        }
    }
    Ok(Target {
        rt,
        namespace,
        name: rest.get(1).cloned(),
        subresource,
    })
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    {
        let line = if raw_query.is_empty() {
            format!("{} {path}", req.method())
        } else {
            format!("{} {path}?{raw_query}", req.method())
        };
        shared.lock().requests.push(line);
    }
    let query = Query::parse(&raw_query);
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let get = req.method() == hyper::Method::GET;
    let store_json = |f: &dyn Fn(&crate::store::Store) -> Option<Value>| {
        let st = shared.lock();
        match f(&st.store) {
            Some(v) => json_response(200, &v),
            None => error_response(ApiError::no_such_resource()),
        }
    };
    match route(&path) {
        Some(Route::Version) if get => json_response(200, &discovery::version()),
        Some(Route::Api) if get && discovery::wants_aggregated(&accept) => {
            let v = discovery::aggregated(&shared.lock().store, true);
            bytes_response(
                200,
                discovery::AGGREGATED_CONTENT_TYPE,
                v.to_string().into_bytes(),
            )
        }
        Some(Route::Apis) if get && discovery::wants_aggregated(&accept) => {
            let v = discovery::aggregated(&shared.lock().store, false);
            bytes_response(
                200,
                discovery::AGGREGATED_CONTENT_TYPE,
                v.to_string().into_bytes(),
            )
        }
        Some(Route::Api) if get => {
            json_response(200, &discovery::api_versions(&shared.addr.to_string()))
        }
        Some(Route::CoreResources) if get => store_json(&|s| discovery::resource_list(s, "", "v1")),
        Some(Route::Apis) if get => store_json(&|s| Some(discovery::api_group_list(s))),
        Some(Route::Group(g)) if get => store_json(&|s| discovery::api_group(s, &g)),
        Some(Route::GroupResources(g, v)) if get => {
            store_json(&|s| discovery::resource_list(s, &g, &v))
        }
        Some(Route::Resource(g, v, segs)) => match resolve(&shared, &g, &v, &segs) {
            Ok(t) => match resource(shared, req, t, query).await {
                Ok(r) => r,
                Err(e) => error_response(e),
            },
            Err(e) => error_response(e),
        },
        Some(_) => error_response(ApiError::method_not_allowed()),
        None => bytes_response(
            404,
            "text/plain; charset=utf-8",
            b"404 page not found\n".to_vec(),
        ),
    }
}

/// The RBAC verb of a request.
fn verb_of(method: &hyper::Method, t: &Target, query: &Query) -> &'static str {
    use hyper::Method as M;
    match (method, &t.name) {
        (&M::GET, None) if query.flag("watch") => "watch",
        (&M::GET, None) => "list",
        (&M::GET, Some(_))
            if matches!(
                t.subresource.as_deref(),
                Some("exec" | "portforward" | "attach")
            ) =>
        {
            "create"
        }
        (&M::GET, Some(_)) => "get",
        (&M::POST, _) => "create",
        (&M::PUT, _) => "update",
        (&M::PATCH, _) => "patch",
        (&M::DELETE, None) => "deletecollection",
        (&M::DELETE, Some(_)) => "delete",
        _ => "get",
    }
}

async fn resource(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    t: Target,
    query: Query,
) -> Result<Response<Body>, ApiError> {
    use hyper::Method as M;
    let verb = verb_of(req.method(), &t, &query);
    let resource = match &t.subresource {
        Some(s) => format!("{}/{s}", t.rt.plural),
        None => t.rt.plural.clone(),
    };
    {
        let st = shared.lock();
        let f = &st.forbidden;
        if f.contains(&(verb.to_string(), resource.clone()))
            || f.contains(&("*".to_string(), resource.clone()))
        {
            return Err(ApiError::forbidden(
                &t.rt,
                &resource,
                verb,
                t.name.as_deref(),
                t.namespace.as_deref(),
            ));
        }
    }
    let method = req.method().clone();
    let sub = t.subresource.clone();
    match (&method, t.name.is_some(), sub.as_deref()) {
        (&M::GET | &M::POST, true, Some("exec" | "attach")) => {
            return crate::exec::handle(shared, req, t, query)
        }
        (&M::GET | &M::POST, true, Some("portforward")) => {
            return crate::portforward::handle(shared, req, t, query)
        }
        (&M::GET, true, Some("log")) => return crate::logs::handle(shared, t, query),
        (&M::GET, false, None) if query.flag("watch") => {
            return crate::watch::watch(shared, t, query)
        }
        (&M::GET, false, None) => {
            return crate::watch::list(&shared, &t, &query).map(|v| json_response(200, &v))
        }
        (&M::GET, true, None | Some("status")) => {
            return crate::apply::get(&shared, &t).map(|v| json_response(200, &v))
        }
        _ => {}
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (code, v) = match (&method, t.name.is_some(), sub.as_deref()) {
        (&M::PATCH, true, None | Some("status")) => {
            crate::apply::patch(&shared, &t, &query, &content_type, &body)?
        }
        (&M::POST, false, None) => crate::apply::create(&shared, &t, &body)?,
        (&M::PUT, true, None | Some("status")) => crate::apply::replace(&shared, &t, &body)?,
        (&M::DELETE, true, None) => crate::apply::delete(&shared, &t, &query, &body)?,
        (&M::DELETE, false, None) => crate::apply::delete_collection(&shared, &t, &query)?,
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(json_response(code, &v))
}

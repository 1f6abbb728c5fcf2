//! Calling a Durable Object by name: the stub plumbing every object's
//! client shares. What goes in and comes out is the object's typed wire
//! (`plumgate_core::wire`); this only moves the bytes.

use worker::{Env, Headers, Method, Request, RequestInit};

/// Why a call to an object gave no answer.
#[derive(Debug)]
pub enum StubError {
    /// No such binding (a configuration problem).
    Binding,
    /// The request could not be built (a bug).
    Request,
    /// The call failed (the object threw, or was unreachable), with the
    /// runtime's message, for the log only.
    Call(String),
    /// The answer's body could not be read.
    Body,
}

/// `POST url` with `body` to the object named `name` in the namespace bound
/// as `binding`, with `header` (name, value) if any; the answer's status
/// and body.
pub async fn post(
    env: &Env,
    binding: &str,
    name: &str,
    url: &str,
    header: Option<(&str, &str)>,
    body: Option<String>,
) -> Result<(u16, Vec<u8>), StubError> {
    let stub = env.durable_object(binding).and_then(|ns| ns.get_by_name(name)).map_err(|_| StubError::Binding)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post);
    if let Some((k, v)) = header {
        let headers = Headers::new();
        headers.set(k, v).map_err(|_| StubError::Request)?;
        init.with_headers(headers);
    }
    if let Some(b) = body {
        init.with_body(Some(b.into()));
    }
    let req = Request::new_with_init(url, &init).map_err(|_| StubError::Request)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(|e| StubError::Call(e.to_string()))?;
    let status = resp.status_code();
    let bytes = resp.bytes().await.map_err(|_| StubError::Body)?;
    Ok((status, bytes))
}

//! Outbound HTTP to Xoxoday: one function, `send`, that runs a core-built
//! request through the runtime's `fetch` with a timeout and without
//! following redirects (a redirect would carry the bearer or the refresh
//! grant to wherever it points).

use plumgate_core::token::HttpRequest;
use futures_util::future::{select, Either};
use std::time::Duration;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

/// An answer: status, body and the `Retry-After` header when present.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Raw body.
    pub body: Vec<u8>,
    /// `Retry-After`.
    pub retry_after: Option<String>,
}

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the timeout (the request was aborted).
    Timeout,
    /// Connection or protocol failure, or an unreadable body.
    Transport,
}

/// Send `req`, waiting at most `timeout_ms` for the whole answer.
pub async fn send(req: &HttpRequest, timeout_ms: u64) -> Result<Answer, Failure> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let work = async {
        let headers = Headers::new();
        for (k, v) in &req.headers {
            headers.set(k, v).map_err(|_| Failure::Transport)?;
        }
        let mut init = RequestInit::new();
        init.with_method(if req.method == "GET" { Method::Get } else { Method::Post })
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if let Some(b) = &req.body {
            init.with_body(Some(b.clone().into()));
        }
        let request = Request::new_with_init(&req.url, &init).map_err(|_| Failure::Transport)?;
        let mut resp = Fetch::Request(request).send_with_signal(&signal).await.map_err(|_| Failure::Transport)?;
        let status = resp.status_code();
        let retry_after = resp.headers().get("retry-after").ok().flatten();
        let body = resp.bytes().await.map_err(|_| Failure::Transport)?;
        Ok(Answer { status, body, retry_after })
    };
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    futures_util::pin_mut!(work);
    match select(work, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            controller.abort();
            Err(Failure::Timeout)
        }
    }
}

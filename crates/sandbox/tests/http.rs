//! Real-HTTP tests: the router served on 127.0.0.1 port 0, driven by a tiny
//! raw HTTP/1.1 client (so a deliberately broken body is observable), plus
//! the built binary itself (ready line, SIGTERM, `--state` across restarts).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use plumgate_sandbox::{bind, App, Credentials, Options};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AT: &str = "plumgate-dev-access-token";
const RT: &str = "plumgate-dev-refresh-token";

struct Reply {
    status: u16,
    head: String,
    body: Result<Vec<u8>, String>,
}

impl Reply {
    fn json(&self) -> Value {
        let body = self.body.as_ref().expect("complete body");
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }
}

async fn start() -> (SocketAddr, Arc<App>) {
    let opts = Options {
        port: 0,
        log: false,
        ..Options::default()
    };
    let server = bind(&opts).await.expect("bind");
    let (addr, app) = (server.addr, Arc::clone(&server.app));
    tokio::spawn(server.run(std::future::pending()));
    (addr, app)
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let req = request(addr, method, path, "application/json", auth, body.unwrap_or(""));
    exchange(addr, &req).await
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    auth: Option<&str>,
    body: &str,
) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n", body.len());
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: Bearer {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

/// Writes `req` (a whole HTTP/1.1 request) and reads the answer to the end.
async fn exchange(addr: SocketAddr, req: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .map_or((text.clone(), String::new()), |(h, b)| {
            (h.to_owned(), b.to_owned())
        });
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = match read {
        Err(e) => Err(format!("transport error: {e}")),
        Ok(_)
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(&rest)
        }
        Ok(_) => Ok(rest.into_bytes()),
    };
    Reply { status, head, body }
}

fn dechunk(mut s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let (size, rest) = s.split_once("\r\n").ok_or("incomplete chunked body")?;
        let n = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..n).ok_or("incomplete chunk")?;
        out.extend_from_slice(chunk.as_bytes());
        s = rest.get(n + 2..).ok_or("incomplete chunk")?;
    }
}

fn refresh_body(rt: &str) -> String {
    json!({"grant_type":"refresh_token","refresh_token":rt,"client_id":"plumgate-dev-client","client_secret":"plumgate-dev-secret"})
        .to_string()
}

fn envelope(query: &str, data: Value) -> String {
    json!({"query": query, "tag": "plumProAPI", "variables": {"data": data}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_and_admin_over_http() {
    let (addr, _app) = start().await;
    assert_eq!(
        send(addr, "GET", "/__sandbox/health", None, None)
            .await
            .json(),
        json!({"ok": true})
    );

    let r = send(
        addr,
        "POST",
        "/chef/v1/oauth/token/user",
        None,
        Some(&refresh_body(RT)),
    )
    .await;
    assert_eq!(r.status, 200);
    let at = r.json()["access_token"].as_str().unwrap().to_owned();
    assert!(r
        .head
        .to_ascii_lowercase()
        .contains("cache-control: no-store"));
    let again = send(
        addr,
        "POST",
        "/chef/v1/oauth/token/user",
        None,
        Some(&refresh_body(RT)),
    )
    .await;
    assert_eq!(
        (again.status, again.json()["error"].clone()),
        (400, json!("invalid_token"))
    );
    let garbage = send(
        addr,
        "POST",
        "/chef/v1/oauth/token/user",
        None,
        Some("grant_type=refresh_token"),
    )
    .await;
    assert_eq!(
        (garbage.status, garbage.json()["error"].clone()),
        (400, json!("invalid_request"))
    );

    let v = send(addr, "GET", "/chef/v1/oauth/token", Some(&at), None).await;
    assert_eq!(
        (v.status, v.json()["expires_in"].clone()),
        (200, json!(1_296_000))
    );

    let bal = send(
        addr,
        "POST",
        "/chef/v1/oauth/api",
        Some(&at),
        Some(&envelope("plumProAPI.query.getBalance", json!({}))),
    )
    .await;
    assert_eq!(bal.json()["data"]["getBalance"]["data"]["currency"], "USD");
    let unauth = send(
        addr,
        "POST",
        "/chef/v1/oauth/api",
        None,
        Some(&envelope("plumProAPI.query.getBalance", json!({}))),
    )
    .await;
    assert_eq!(
        (unauth.status, unauth.json()["errorId"].clone()),
        (401, json!("PIPE10013"))
    );
    let bad = send(
        addr,
        "POST",
        "/chef/v1/oauth/api",
        Some(AT),
        Some("{\"query\":"),
    )
    .await;
    assert_eq!((bad.status, bad.json()["code"].clone()), (400, json!(400)));

    let vouchers = send(
        addr,
        "POST",
        "/chef/v1/oauth/api",
        Some(AT),
        Some(&envelope(
            "plumProAPI.mutation.getVouchers",
            json!({"limit":5,"page":1}),
        )),
    )
    .await;
    let first = vouchers.json()["data"]["getVouchers"]["data"][0].clone();
    let image = first["imageUrl"].as_str().unwrap().to_owned();
    assert_eq!(image, format!("http://{addr}/sandbox-assets/10100.svg"));
    let svg = send(
        addr,
        "GET",
        image.trim_start_matches(&format!("http://{addr}")),
        None,
        None,
    )
    .await;
    assert_eq!(svg.status, 200);
    assert!(svg.head.contains("image/svg+xml"));
    assert!(String::from_utf8_lossy(svg.body.as_ref().unwrap()).contains("<svg"));
    assert_eq!(
        send(addr, "GET", "/sandbox-assets/1.svg", None, None)
            .await
            .status,
        404
    );
    assert_eq!(send(addr, "GET", "/nowhere", None, None).await.status, 404);

    // Admin config: subset update, unknown field / wrong type rejected.
    let cfg = send(
        addr,
        "POST",
        "/__sandbox/config",
        None,
        Some(r#"{"penalty_seconds":5}"#),
    )
    .await;
    assert_eq!(
        (
            cfg.status,
            cfg.json()["penalty_seconds"].clone(),
            cfg.json()["rotation"].clone()
        ),
        (200, json!(5), json!("strict"))
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/__sandbox/config",
            None,
            Some(r#"{"penalty":5}"#)
        )
        .await
        .status,
        400
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/__sandbox/config",
            None,
            Some(r#"{"penalty_seconds":"5"}"#)
        )
        .await
        .status,
        400
    );
    assert_eq!(
        send(addr, "GET", "/__sandbox/config", None, None)
            .await
            .json()["penalty_seconds"],
        5
    );

    let issued = send(addr, "POST", "/__sandbox/tokens/issue", None, None)
        .await
        .json();
    assert!(issued["refresh_token"].is_string());
    assert_eq!(
        send(addr, "POST", "/__sandbox/tokens/revoke-access", None, None)
            .await
            .json(),
        json!({"affected": 3})
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/chef/v1/oauth/api",
            Some(&at),
            Some(&envelope("plumProAPI.query.getBalance", json!({})))
        )
        .await
        .status,
        401
    );
    let stats = send(addr, "GET", "/__sandbox/tokens", None, None)
        .await
        .json();
    assert_eq!(
        stats,
        json!({"live_access_tokens":0,"live_refresh_tokens":2,"spent_refresh_tokens_used":1})
    );

    let counters = send(addr, "GET", "/__sandbox/counters", None, None)
        .await
        .json();
    assert_eq!(counters["refresh_calls"], 3);
    assert_eq!(counters["validate_calls"], 1);
    assert_eq!(counters["api_calls"]["getBalance"], 3);
    assert_eq!(counters["api_calls"]["getOrderHistory"], 0);
    assert_eq!(counters["unauthorized_api_calls"], 2);

    let reqs = send(addr, "GET", "/__sandbox/requests?limit=2", None, None)
        .await
        .json();
    assert_eq!(reqs.as_array().unwrap().len(), 2);
    assert_eq!(reqs[1]["status"], 401);
    assert_eq!(reqs[1]["op"], "getBalance");
    assert_eq!(reqs[0]["body"]["variables"]["data"]["limit"], 5);

    assert_eq!(
        send(
            addr,
            "POST",
            "/__sandbox/faults/order",
            None,
            Some(r#"{"mode":"nope"}"#)
        )
        .await
        .status,
        400
    );
    assert_eq!(
        send(addr, "POST", "/__sandbox/reset", None, None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/chef/v1/oauth/token/user",
            None,
            Some(&refresh_body(RT))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        send(addr, "GET", "/__sandbox/counters", None, None)
            .await
            .json()["refresh_calls"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_concurrency_is_measured() {
    let (addr, _app) = start().await;
    send(
        addr,
        "POST",
        "/__sandbox/config",
        None,
        Some(r#"{"refresh_latency_ms":200}"#),
    )
    .await;
    let calls: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(async move {
                send(
                    addr,
                    "POST",
                    "/chef/v1/oauth/token/user",
                    None,
                    Some(&refresh_body("x")),
                )
                .await
                .status
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 400);
    }
    let c = send(addr, "GET", "/__sandbox/counters", None, None)
        .await
        .json();
    assert_eq!(
        (
            c["peak_concurrent_refreshes"].clone(),
            c["concurrent_refreshes"].clone()
        ),
        (json!(5), json!(0))
    );

    send(addr, "POST", "/__sandbox/counters/reset", None, None).await;
    send(
        addr,
        "POST",
        "/__sandbox/config",
        None,
        Some(r#"{"refresh_latency_ms":10}"#),
    )
    .await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        send(
            addr,
            "POST",
            "/chef/v1/oauth/token/user",
            None,
            Some(&refresh_body("x")),
        )
        .await;
    }
    assert!(started.elapsed() >= Duration::from_millis(30));
    let c = send(addr, "GET", "/__sandbox/counters", None, None)
        .await
        .json();
    assert_eq!(
        (
            c["peak_concurrent_refreshes"].clone(),
            c["refresh_calls"].clone()
        ),
        (json!(1), json!(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_fault_modes_over_http() {
    let (addr, _app) = start().await;
    send(
        addr,
        "POST",
        "/__sandbox/config",
        None,
        Some(r#"{"refresh_latency_ms":0}"#),
    )
    .await;

    send(
        addr,
        "POST",
        "/__sandbox/faults/refresh",
        None,
        Some(r#"{"mode":"rotate_then_drop"}"#),
    )
    .await;
    let dropped = send(
        addr,
        "POST",
        "/chef/v1/oauth/token/user",
        None,
        Some(&refresh_body(RT)),
    )
    .await;
    assert_eq!(dropped.status, 200, "status line and headers arrive");
    assert!(
        dropped.body.is_err(),
        "but the body breaks: {:?}",
        dropped.body
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/chef/v1/oauth/token/user",
            None,
            Some(&refresh_body(RT))
        )
        .await
        .status,
        400
    );
    let stats = send(addr, "GET", "/__sandbox/tokens", None, None)
        .await
        .json();
    assert_eq!(stats["live_refresh_tokens"], 1);

    // hang then 503
    let issued = send(addr, "POST", "/__sandbox/tokens/issue", None, None)
        .await
        .json();
    let rt = issued["refresh_token"].as_str().unwrap().to_owned();
    send(
        addr,
        "POST",
        "/__sandbox/faults/refresh",
        None,
        Some(r#"{"mode":"hang","hang_ms":300}"#),
    )
    .await;
    let started = std::time::Instant::now();
    let hung = send(
        addr,
        "POST",
        "/chef/v1/oauth/token/user",
        None,
        Some(&refresh_body(&rt)),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        (hung.status, hung.json()["error"].clone()),
        (503, json!("server_error"))
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/chef/v1/oauth/token/user",
            None,
            Some(&refresh_body(&rt))
        )
        .await
        .status,
        200
    );

    // The account refused (PIPE10015-17, the API's error shape): 401 by
    // default or the status given, and the refresh token untouched.
    let issued = send(addr, "POST", "/__sandbox/tokens/issue", None, None)
        .await
        .json();
    let rt = issued["refresh_token"].as_str().unwrap().to_owned();
    for (fault, status, id, info) in [
        (r#"{"mode":"PIPE10017","count":2}"#, 401, "PIPE10017", "Access restricted for this IP"),
        (r#"{"mode":"PIPE10015","status":403}"#, 403, "PIPE10015", "Plum Pro APIs: User is disabled"),
        (r#"{"mode":"PIPE10016"}"#, 401, "PIPE10016", "Plum Pro APIs: Company is disabled"),
    ] {
        send(addr, "POST", "/__sandbox/faults/refresh", None, Some(fault)).await;
        for _ in 0..if id == "PIPE10017" { 2 } else { 1 } {
            let refused = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(&rt))).await;
            assert_eq!(refused.status, status, "{fault}");
            assert_eq!(refused.json(), json!({"code": status, "errorId": id, "errorInfo": info, "error": info}), "{fault}");
        }
    }
    let kept = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(&rt))).await;
    assert_eq!(kept.status, 200, "the refresh token the refusals were given still refreshes");

    // order hang_after_create
    send(
        addr,
        "POST",
        "/__sandbox/faults/order",
        None,
        Some(r#"{"mode":"hang_after_create","hang_ms":300}"#),
    )
    .await;
    let started = std::time::Instant::now();
    let order =
        json!({"productId":10100,"quantity":1,"denomination":10,"poNumber":"PO-H","email":"a@b.c",
               "notifyReceiverEmail":0,"notifyAdminEmail":0});
    let placed = send(
        addr,
        "POST",
        "/chef/v1/oauth/api",
        Some(AT),
        Some(&envelope("plumProAPI.mutation.placeOrder", order)),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(placed.status, 200);
    send(addr, "POST", "/__sandbox/faults/clear", None, None).await;
    assert_eq!(
        send(addr, "GET", "/__sandbox/faults", None, None)
            .await
            .json(),
        json!({"refresh":null,"validate":null,"api":null,"order":null,"details":null,"proxy":null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_fault_routes_over_http() {
    let (addr, _app) = start().await;
    let post = |path: &'static str, body: &'static str| async move { send(addr, "POST", path, None, Some(body)).await };
    post("/__sandbox/config", r#"{"refresh_latency_ms":0}"#).await;

    // rotate_then_delay: the new pair arrives late, and is valid.
    post("/__sandbox/faults/refresh", r#"{"mode":"rotate_then_delay","hang_ms":400}"#).await;
    let started = std::time::Instant::now();
    let late = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(RT))).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(late.status, 200);
    let rt = late.json()["refresh_token"].as_str().unwrap().to_owned();

    // rotate_refresh_only: half a pair, whose refresh token is the live one.
    post("/__sandbox/faults/refresh", r#"{"mode":"rotate_refresh_only"}"#).await;
    let half = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(&rt))).await;
    assert_eq!(half.status, 200);
    let half = half.json();
    assert!(half.get("access_token").is_none() && half.get("expires_in").is_none(), "{half}");
    assert!(half["refresh_token_expiry"].is_number() || half["refresh_token_expiry"].is_string(), "{half}");
    let rt = half["refresh_token"].as_str().unwrap().to_owned();
    let whole = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(&rt))).await;
    assert_eq!(whole.status, 200);
    assert!(whole.json()["access_token"].is_string());
    let rt = whole.json()["refresh_token"].as_str().unwrap().to_owned();

    // rate_limited, 429 shape: Retry-After says the penalty left.
    post("/__sandbox/faults/refresh", r#"{"mode":"rate_limited","shape":"status429","penalty_seconds":40}"#).await;
    let limited = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(&rt))).await;
    assert_eq!(limited.status, 429);
    assert!(limited.head.to_ascii_lowercase().contains("retry-after: 40"), "{}", limited.head);
    assert_eq!(limited.json(), json!({"message":"auth.request_limit_exceeded"}));
    assert_eq!(send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(&rt))).await.status, 429);
    assert_eq!(send(addr, "GET", "/__sandbox/counters", None, None).await.json()["refresh_rate_limited"], 2);
    post("/__sandbox/faults/clear", "").await;
    assert_eq!(send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(&rt))).await.status, 200);

    // An API 401 for a valid token, one operation only.
    let r = post("/__sandbox/faults/api", r#"{"mode":"PIPE10016","op":"getBalance"}"#).await;
    assert_eq!(r.json()["api"]["op"], "getBalance");
    let issued = send(addr, "POST", "/__sandbox/tokens/issue", None, Some(r#"{"revoke_existing":true}"#)).await.json();
    let at = issued["access_token"].as_str().unwrap().to_owned();
    let bal = send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&envelope("plumProAPI.query.getBalance", json!({})))).await;
    assert_eq!((bal.status, bal.json()["errorId"].clone()), (401, json!("PIPE10016")));
    let bal = send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&envelope("plumProAPI.query.getBalance", json!({})))).await;
    assert_eq!(bal.status, 200);
    // An API rate-limit fault in the 429 shape carries Retry-After; the
    // other shapes do not.
    post("/__sandbox/faults/api", r#"{"mode":"rate_limited","shape":"status429","penalty_seconds":7}"#).await;
    let limited = send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&envelope("plumProAPI.query.getBalance", json!({})))).await;
    assert_eq!((limited.status, limited.json()), (429, json!({"message":"auth.request_limit_exceeded"})));
    assert!(limited.head.to_ascii_lowercase().contains("retry-after: 7"), "{}", limited.head);
    post("/__sandbox/faults/api", r#"{"mode":"rate_limited","shape":"errors_array","penalty_seconds":7}"#).await;
    let limited = send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&envelope("plumProAPI.query.getBalance", json!({})))).await;
    assert_eq!((limited.status, limited.json()["errors"][0]["penaltySeconds"].clone()), (400, json!(7)));
    assert!(!limited.head.to_ascii_lowercase().contains("retry-after"), "{}", limited.head);
    // Xoxoday's failure flag in place of an operation's answer, once.
    post("/__sandbox/faults/api", r#"{"mode":"status_zero","op":"getBalance"}"#).await;
    let flagged = send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&envelope("plumProAPI.query.getBalance", json!({})))).await;
    assert_eq!((flagged.status, flagged.json()["data"]["getBalance"]["status"].clone()), (200, json!(0)));
    let bal = send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&envelope("plumProAPI.query.getBalance", json!({})))).await;
    assert_eq!(bal.json()["data"]["getBalance"]["status"], 1);
    // The regeneration killed the old access token.
    let old = send(addr, "POST", "/chef/v1/oauth/api", Some(AT), Some(&envelope("plumProAPI.query.getBalance", json!({})))).await;
    assert_eq!(old.status, 401);
    // The token check fails on demand.
    post("/__sandbox/faults/validate", r#"{"mode":"5xx"}"#).await;
    assert_eq!(send(addr, "GET", "/chef/v1/oauth/token", Some(&at), None).await.status, 503);
    assert_eq!(send(addr, "GET", "/chef/v1/oauth/token", Some(&at), None).await.status, 200);
    // Or refuses the account, in the Plum API's shape, with no verdict.
    post("/__sandbox/faults/validate", r#"{"mode":"PIPE10017"}"#).await;
    let refused = send(addr, "GET", "/chef/v1/oauth/token", Some(&at), None).await;
    assert_eq!((refused.status, refused.json()["errorId"].clone()), (401, json!("PIPE10017")));
    assert!(refused.json().get("access_token").is_none());
    assert_eq!(send(addr, "GET", "/chef/v1/oauth/token", Some(&at), None).await.status, 200, "the token untouched");
    let e = post("/__sandbox/faults/validate", r#"{"mode":"PIPE10018"}"#).await;
    assert_eq!(e.status, 400);
    assert!(e.json().to_string().contains("unknown mode \\\"PIPE10018\\\" on this route; its modes: \\\"5xx\\\", \\\"rate_limited\\\""), "{}", e.json());
    // Bad fault bodies change nothing.
    assert_eq!(post("/__sandbox/faults/api", r#"{"mode":"PIPE10016","op":"nope"}"#).await.status, 400);
    assert_eq!(post("/__sandbox/tokens/issue", r#"{"revoke":true}"#).await.status, 400);

    // getOrderDetails that says "no such order" once, over the route.
    assert_eq!(post("/__sandbox/faults/details", r#"{"mode":"not_found","count":1}"#).await.json()["details"]["remaining"], 1);
    assert_eq!(post("/__sandbox/faults/details", r#"{"mode":"late"}"#).await.status, 400);
    // Or that answers Xoxoday's failure flag: HTTP 200, status 0, no order.
    post("/__sandbox/faults/details", r#"{"mode":"status_zero"}"#).await;
    let lookup = envelope("plumProAPI.mutation.getOrderDetails", json!({"poNumber":"PO-NONE","orderId":null,"sendMailToReceiver":0}));
    let zero = send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&lookup)).await;
    assert_eq!((zero.status, zero.json()["data"]["getOrderDetails"]["status"].clone()), (200, json!(0)));
    assert!(zero.json()["data"]["getOrderDetails"].get("data").is_none(), "{}", zero.json());
    assert_eq!(send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&lookup)).await.status, 404, "its count spent: no such order");
    post("/__sandbox/faults/clear", "").await;
    // The daily cap: HTTP 429 without Retry-After.
    post("/__sandbox/config", r#"{"daily_limits":{"getVouchers":1}}"#).await;
    let page = envelope("plumProAPI.mutation.getVouchers", json!({"limit":1,"page":1}));
    assert_eq!(send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&page)).await.status, 200);
    let capped = send(addr, "POST", "/chef/v1/oauth/api", Some(&at), Some(&page)).await;
    assert_eq!(capped.status, 429);
    assert!(!capped.head.to_ascii_lowercase().contains("retry-after"), "{}", capped.head);
    assert_eq!(capped.json()["error"], "rate_limit_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handles_520_concurrent_connections() {
    let (addr, _app) = start().await;
    send(
        addr,
        "POST",
        "/__sandbox/config",
        None,
        Some(r#"{"api_latency_ms":300,"rate_limits":{"getFilters":100000}}"#),
    )
    .await;
    let body = envelope(
        "plumProAPI.mutation.getFilters",
        json!({"filterGroupCode":"country"}),
    );
    let calls: Vec<_> = (0..520)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                send(addr, "POST", "/chef/v1/oauth/api", Some(AT), Some(&body))
                    .await
                    .status
            })
        })
        .collect();
    let started = std::time::Instant::now();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    // All were in flight together: far less than 520 × 300 ms.
    assert!(started.elapsed() < Duration::from_secs(10));
    let c = send(addr, "GET", "/__sandbox/counters", None, None)
        .await
        .json();
    assert_eq!(c["api_calls"]["getFilters"], 520);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_limit_query() {
    let (addr, _app) = start().await;
    for i in 0..60 {
        let body = envelope("plumProAPI.query.getBalance", json!({ "i": i }));
        assert_eq!(send(addr, "POST", "/chef/v1/oauth/api", None, Some(&body)).await.status, 401);
    }
    async fn shown(addr: SocketAddr, query: &str) -> usize {
        let r = send(addr, "GET", &format!("/__sandbox/requests{query}"), None, None).await;
        assert_eq!(r.status, 200, "{query}");
        let rows = r.json().as_array().cloned().expect("array");
        // Newest last: the last row is always the 60th call.
        if let Some(last) = rows.last() {
            assert_eq!(last["body"]["variables"]["data"]["i"], 59, "{query}");
        }
        rows.len()
    }
    assert_eq!(shown(addr, "").await, 50);
    assert_eq!(shown(addr, "?limit=2").await, 2);
    assert_eq!(shown(addr, "?limit=0").await, 0);
    assert_eq!(shown(addr, "?limit=1000").await, 60);
    assert_eq!(shown(addr, "?other=x&limit=4").await, 4);
    assert_eq!(shown(addr, "?limit=%33").await, 3);
    // Not a count: the default, never a rejection.
    for bad in ["?limit=abc", "?limit=-1", "?limit=", "?limit=1.5", "?limit=99999999999999999999999"] {
        assert_eq!(shown(addr, bad).await, 50, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_read_whatever_the_content_type() {
    let (addr, _app) = start().await;
    let plain = |method: &str, path: &str, auth: Option<&str>, body: &str| {
        request(addr, method, path, "text/plain", auth, body)
    };
    // Xoxoday's own error shapes for a body that is not JSON.
    let r = exchange(addr, &plain("POST", "/chef/v1/oauth/token/user", None, "{")).await;
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("invalid_request")));
    let r = exchange(addr, &plain("POST", "/chef/v1/oauth/api", Some(AT), "not json")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorId"], "PLE10001");
    // A well-formed body is read although it is not labelled JSON.
    let r = exchange(addr, &plain("POST", "/chef/v1/oauth/token/user", None, &refresh_body(RT))).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["access_token"].is_string());
    let balance = envelope("plumProAPI.query.getBalance", json!({}));
    let at = r.json()["access_token"].as_str().unwrap().to_owned();
    let r = exchange(addr, &plain("POST", "/chef/v1/oauth/api", Some(&at), &balance)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["getBalance"]["data"]["currency"], "USD");
    // Admin routes: an empty body changes nothing; a broken one is their 400.
    let r = exchange(addr, &plain("POST", "/__sandbox/config", None, "")).await;
    assert_eq!((r.status, r.json()["rotation"].clone()), (200, json!("strict")));
    let r = exchange(addr, &plain("POST", "/__sandbox/config", None, "{")).await;
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("bad_request")));
    assert!(r.json()["message"].is_string());
}

// ----- the binary -----

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_binary(state: &std::path::Path) -> (Proc, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plumgate-sandbox"))
        .args(["--port", "0", "--state"])
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sandbox binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let url = line
        .trim()
        .strip_prefix("SANDBOX_READY http://")
        .expect("ready line format")
        .to_owned();
    assert!(url.starts_with("127.0.0.1:"), "{line}");
    (Proc(child), url.parse().expect("addr"))
}

fn sigterm_and_wait(p: &mut Proc) {
    let ok = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    for _ in 0..100 {
        if let Ok(Some(status)) = p.0.try_wait() {
            assert!(status.success(), "clean exit: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sandbox did not exit after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_ready_line_sigterm_and_state_file() {
    let dir = std::env::temp_dir().join(format!(
        "plumgate-sandbox-test-{}-{}",
        std::process::id(),
        plumgate_sandbox::clock::wall_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");

    let (mut p, addr) = spawn_binary(&state);
    assert!(state.exists(), "fresh state written at start");
    let r = send(
        addr,
        "POST",
        "/chef/v1/oauth/token/user",
        None,
        Some(&refresh_body(RT)),
    )
    .await;
    let tokens = r.json();
    let (at, rt) = (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    );
    let order = json!({"productId":10100,"quantity":1,"denomination":25,"poNumber":"PO-S",
                       "notifyReceiverEmail":0,"notifyAdminEmail":0});
    assert_eq!(
        send(
            addr,
            "POST",
            "/chef/v1/oauth/api",
            Some(&at),
            Some(&envelope("plumProAPI.mutation.placeOrder", order))
        )
        .await
        .status,
        200
    );
    send(
        addr,
        "POST",
        "/__sandbox/config",
        None,
        Some(r#"{"rotation":"grace"}"#),
    )
    .await;
    sigterm_and_wait(&mut p);

    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(!saved.contains("refresh_calls"));
    let (_p2, addr) = spawn_binary(&state);
    assert_eq!(
        send(addr, "GET", "/__sandbox/config", None, None)
            .await
            .json()["rotation"],
        "grace"
    );
    let det = send(
        addr,
        "POST",
        "/chef/v1/oauth/api",
        Some(&at),
        Some(&envelope(
            "plumProAPI.mutation.getOrderDetails",
            json!({"poNumber":"PO-S","orderId":null,"sendMailToReceiver":0}),
        )),
    )
    .await;
    assert_eq!(
        det.json()["data"]["getOrderDetails"]["data"]["orderId"],
        100_001
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/chef/v1/oauth/token/user",
            None,
            Some(&refresh_body(RT))
        )
        .await
        .status,
        400,
        "old token stays dead"
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/chef/v1/oauth/token/user",
            None,
            Some(&refresh_body(&rt))
        )
        .await
        .status,
        200,
        "rotated token survived the restart"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn credentials_defaults() {
    let c = Credentials::default();
    assert_eq!(c.client_id, "plumgate-dev-client");
    assert_eq!(c.refresh_token, RT);
}

#[test]
fn sigterm_right_after_the_ready_line_is_a_clean_stop() {
    // The handlers are in place before the ready line: a stop sent the
    // moment it appears still flushes the state file and exits 0.
    let dir = std::env::temp_dir().join(format!(
        "plumgate-sandbox-stop-{}-{}",
        std::process::id(),
        plumgate_sandbox::clock::wall_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..5 {
        let state = dir.join(format!("state-{i}.json"));
        let (mut p, _addr) = spawn_binary(&state);
        sigterm_and_wait(&mut p);
        assert!(state.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_active_pair_over_http() {
    let (addr, _app) = start().await;
    let cfg = send(addr, "POST", "/__sandbox/config", None, Some(r#"{"rotation":"single"}"#)).await;
    assert_eq!((cfg.status, cfg.json()["rotation"].clone()), (200, json!("single")));
    let check = |token: String| async move { send(addr, "GET", "/chef/v1/oauth/token", Some(&token), None).await.status };
    assert_eq!(check(AT.to_owned()).await, 200, "the bootstrap pair is the active one");
    let r = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(RT))).await;
    assert_eq!(r.status, 200);
    let (at1, rt1) = (r.json()["access_token"].as_str().unwrap().to_owned(), r.json()["refresh_token"].as_str().unwrap().to_owned());
    // A refresh kills the earlier access token at once, not at its expiry.
    assert_eq!(check(AT.to_owned()).await, 401);
    let bal = send(addr, "POST", "/chef/v1/oauth/api", Some(AT), Some(&envelope("plumProAPI.query.getBalance", json!({})))).await;
    assert_eq!(bal.status, 401, "the old access token is refused by the API too");
    assert_eq!(check(at1.clone()).await, 200);
    // A pair issued from the dashboard kills the refreshed one, both tokens.
    let issued = send(addr, "POST", "/__sandbox/tokens/issue", None, Some("{}")).await;
    assert_eq!(issued.status, 200);
    assert_eq!(check(at1).await, 401);
    let spent = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(&rt1))).await;
    assert_eq!(spent.status, 400, "{:?}", spent.body);
    let at2 = issued.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(check(at2).await, 200);
}

/// A delayed refresh answer counts as a success once it is given, not when
/// the sandbox decided it: mid-delay the counters show the call in flight
/// and no success, as a test waiting for "the slow answer" needs. One the
/// caller hangs up on is never given: a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_refresh_answer_counts_once_given() {
    let (addr, _app) = start().await;
    let post = |path: &'static str, body: &'static str| async move { send(addr, "POST", path, None, Some(body)).await };
    let counters = || async move { send(addr, "GET", "/__sandbox/counters", None, None).await.json() };
    let counted = |c: &Value| (c["refresh_calls"].clone(), c["refresh_success"].clone(), c["refresh_failures"].clone());
    post("/__sandbox/config", r#"{"refresh_latency_ms":0}"#).await;
    post("/__sandbox/faults/refresh", r#"{"mode":"rotate_then_delay","hang_ms":3000}"#).await;
    let late = tokio::spawn(async move { send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(RT))).await });
    // Looked at once the call has arrived (not after a fixed sleep, which a
    // loaded machine can outrun), well inside the 3 s delay.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mid = loop {
        let c = counters().await;
        if c["refresh_calls"] == 1 || std::time::Instant::now() >= deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(counted(&mid), (json!(1), json!(0), json!(0)), "mid-delay: decided, not given: {mid}");
    assert_eq!(mid["concurrent_refreshes"], 1);
    let late = late.await.unwrap();
    assert_eq!(late.status, 200);
    assert!(late.json()["access_token"].is_string());
    assert_eq!(counted(&counters().await), (json!(1), json!(1), json!(0)), "given: a success");

    // Hung up on mid-delay: never given, a failure, never a success.
    let rt = late.json()["refresh_token"].as_str().unwrap().to_owned();
    post("/__sandbox/faults/refresh", r#"{"mode":"rotate_then_delay","hang_ms":60000}"#).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = request(addr, "POST", "/chef/v1/oauth/token/user", "application/json", None, &refresh_body(&rt));
    stream.write_all(req.as_bytes()).await.expect("write");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counters().await["refresh_calls"] != 2 {
        assert!(std::time::Instant::now() < deadline, "the refresh never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let c = counters().await;
        if c["refresh_failures"] == 1 {
            assert_eq!((counted(&c), c["concurrent_refreshes"].clone()), ((json!(2), json!(1), json!(1)), json!(0)));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the hang-up was not counted: {c}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A proxy fault on the token routes answers the layer's HTML page over
/// HTTP, with its status: the refresh with nothing rotated (`before`), the
/// token check too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_pages_on_the_token_routes() {
    let (addr, _app) = start().await;
    let post = |path: &'static str, body: &'static str| async move { send(addr, "POST", path, None, Some(body)).await };
    post("/__sandbox/config", r#"{"refresh_latency_ms":0}"#).await;
    let set = post("/__sandbox/faults/proxy", r#"{"mode":"before","route":"refresh","status":403}"#).await;
    assert_eq!((set.status, set.json()["proxy"]["route"].clone()), (200, json!("refresh")));
    let page = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(RT))).await;
    assert_eq!(page.status, 403);
    assert!(page.head.to_ascii_lowercase().contains("content-type: text/html"), "{}", page.head);
    assert!(String::from_utf8_lossy(page.body.as_ref().unwrap()).starts_with("<html>"));
    let ok = send(addr, "POST", "/chef/v1/oauth/token/user", None, Some(&refresh_body(RT))).await;
    assert_eq!(ok.status, 200, "nothing was rotated behind the page");
    let at = ok.json()["access_token"].as_str().unwrap().to_owned();
    post("/__sandbox/faults/proxy", r#"{"mode":"before","route":"validate","status":502}"#).await;
    let page = send(addr, "GET", "/chef/v1/oauth/token", Some(&at), None).await;
    assert_eq!(page.status, 502);
    assert!(page.head.to_ascii_lowercase().contains("content-type: text/html"), "{}", page.head);
    assert_eq!(send(addr, "GET", "/chef/v1/oauth/token", Some(&at), None).await.status, 200);
    let c = send(addr, "GET", "/__sandbox/counters", None, None).await.json();
    assert_eq!((c["proxy_pages"].clone(), c["refresh_calls"].clone(), c["validate_calls"].clone()), (json!(2), json!(1), json!(1)));
    assert_eq!(post("/__sandbox/faults/proxy", r#"{"mode":"before","route":"validate","op":"getBalance"}"#).await.status, 400);
}

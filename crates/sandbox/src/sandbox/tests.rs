//! Tests of the pure sandbox state: every flow is driven with an explicit
//! wall-clock time, so expiry, grace and penalties are checked exactly.

use serde_json::{json, Value};

use super::*;

const T0: i64 = 1_718_000_000_000;
const SEC: i64 = 1000;
const HOUR: i64 = 3600 * SEC;
const DAY: i64 = 24 * HOUR;

fn sb() -> Sandbox {
    Sandbox::new(Credentials::default(), T0)
}

fn refresh_body(rt: &str) -> Vec<u8> {
    json!({
        "grant_type": "refresh_token",
        "refresh_token": rt,
        "client_id": "plumgate-dev-client",
        "client_secret": "plumgate-dev-secret",
    })
    .to_string()
    .into_bytes()
}

/// Refreshes and returns (status, body).
fn refresh(s: &mut Sandbox, rt: &str, wall: i64) -> (u16, Value) {
    match s.refresh(&refresh_body(rt), wall) {
        RefreshOutcome::Answer { status, body } => (status, body),
        other => panic!("unexpected outcome {other:?}"),
    }
}

/// Asks the token check and returns (status, body).
fn check(s: &mut Sandbox, auth: Option<&str>, wall: i64) -> (u16, Value) {
    match s.validate_token(auth, wall) {
        RefreshOutcome::Answer { status, body } => (status, body),
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn tok(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

fn api(s: &mut Sandbox, at: &str, query: &str, data: Value, wall: i64) -> ApiOutcome {
    let body = json!({ "query": query, "tag": "plumProAPI", "variables": { "data": data } });
    s.api(
        Some(&format!("Bearer {at}")),
        body.to_string().as_bytes(),
        wall,
    )
}

const AT: &str = "plumgate-dev-access-token";
const RT: &str = "plumgate-dev-refresh-token";

#[test]
fn strict_rotation() {
    let mut s = sb();
    let (status, body) = refresh(&mut s, RT, T0 + SEC);
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1_296_000);
    assert_eq!(
        body["access_token_expiry"],
        (T0 + SEC + 1_296_000 * SEC).to_string()
    );
    assert_eq!(
        body["refresh_token_expiry"],
        (T0 + SEC + 2_592_000 * SEC).to_string()
    );
    assert_eq!(
        (body["success"].clone(), body["status"].clone()),
        (json!(1), json!(200))
    );
    let (at2, rt2) = (tok(&body, "access_token"), tok(&body, "refresh_token"));
    assert_ne!(rt2, RT);
    assert_ne!(at2, AT);

    // The old refresh token is dead at once; using it is counted. The
    // answer is the documented one for an expired or invalid token
    // (xoxoday-api.md §1.4, §1.8), or OAuth's `invalid_grant`, with the
    // status chosen (unconfirmed).
    let (status, body) = refresh(&mut s, RT, T0 + 2 * SEC);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error":"invalid_token","error_description":"invalid/expired token"})
    );
    assert_eq!(s.token_stats(T0)["spent_refresh_tokens_used"], 1);


    // Old and new access tokens both work.
    assert_eq!(
        api(
            &mut s,
            AT,
            "plumProAPI.query.getBalance",
            json!({}),
            T0 + 3 * SEC
        )
        .status,
        200
    );
    assert_eq!(
        api(
            &mut s,
            &at2,
            "plumProAPI.query.getBalance",
            json!({}),
            T0 + 3 * SEC
        )
        .status,
        200
    );

    // The new refresh token rotates again.
    let (status, body) = refresh(&mut s, &rt2, T0 + 4 * SEC);
    assert_eq!(status, 200);
    assert_ne!(tok(&body, "refresh_token"), rt2);
    let c = s.counters_json(0, 0);
    assert_eq!(
        (
            c["refresh_calls"].clone(),
            c["refresh_success"].clone(),
            c["refresh_failures"].clone()
        ),
        (json!(3), json!(2), json!(1))
    );
}

#[test]
fn grace_rotation_and_pair_cap() {
    let mut s = sb();
    s.patch_config(br#"{"rotation":"grace"}"#).unwrap();
    let (status, first) = refresh(&mut s, RT, T0);
    assert_eq!(status, 200);
    // Old token keeps working inside the 6 h grace (and rotates again)...
    let (status, second) = refresh(&mut s, RT, T0 + 6 * HOUR - SEC);
    assert_eq!(status, 200);
    assert_ne!(tok(&second, "refresh_token"), tok(&first, "refresh_token"));
    // ...but not after it.
    assert_eq!(refresh(&mut s, RT, T0 + 6 * HOUR).0, 400);
    assert_eq!(s.token_stats(T0)["spent_refresh_tokens_used"], 2);

    // Cap: the 11th live pair evicts the oldest (the bootstrap pair).
    let mut s = sb();
    s.patch_config(br#"{"rotation":"grace"}"#).unwrap();
    let mut rt = RT.to_owned();
    let mut pairs = vec![(AT.to_owned(), RT.to_owned())];
    for i in 0..10 {
        let (status, body) = refresh(&mut s, &rt, T0 + i * SEC);
        assert_eq!(status, 200);
        rt = tok(&body, "refresh_token");
        pairs.push((tok(&body, "access_token"), rt.clone()));
    }
    let now = T0 + 20 * SEC;
    assert_eq!(s.token_stats(now)["live_access_tokens"], 10);
    assert_eq!(
        api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), now).status,
        401
    );
    assert_eq!(refresh(&mut s, RT, now).0, 400);
    assert_eq!(
        api(
            &mut s,
            &pairs[1].0,
            "plumProAPI.query.getBalance",
            json!({}),
            now
        )
        .status,
        200
    );
    assert_eq!(refresh(&mut s, &pairs[1].1, now).0, 200);
}

#[test]
fn refresh_request_errors() {
    let mut s = sb();
    let answer = |s: &mut Sandbox, body: &[u8]| match s.refresh(body, T0) {
        RefreshOutcome::Answer { status, body } => (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        ),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        answer(&mut s, b"{not json"),
        (400, "invalid_request".into())
    );
    assert_eq!(answer(&mut s, b"[1,2]"), (400, "invalid_request".into()));
    let wrong_secret = json!({"grant_type":"refresh_token","refresh_token":RT,"client_id":"plumgate-dev-client","client_secret":"x"});
    assert_eq!(
        answer(&mut s, wrong_secret.to_string().as_bytes()),
        (401, "invalid_client".into())
    );
    let no_client = json!({"grant_type":"refresh_token","refresh_token":RT});
    assert_eq!(
        answer(&mut s, no_client.to_string().as_bytes()),
        (401, "invalid_client".into())
    );
    let grant = json!({"grant_type":"password","refresh_token":RT,"client_id":"plumgate-dev-client","client_secret":"plumgate-dev-secret"});
    assert_eq!(
        answer(&mut s, grant.to_string().as_bytes()),
        (400, "unsupported_grant_type".into())
    );
    assert_eq!(
        answer(&mut s, &refresh_body("unknown")),
        (400, "invalid_token".into())
    );
    // Expired by the clock offset (refresh lifetime 30 d).
    s.patch_config(br#"{"clock_offset_secs":2592000}"#).unwrap();
    assert_eq!(
        answer(&mut s, &refresh_body(RT)),
        (400, "invalid_token".into())
    );
    // OAuth's own code for a bad grant, under another status: the other
    // reading (the status is unconfirmed).
    s.patch_config(br#"{"dead_refresh_answer":"invalid_grant","dead_refresh_status":401}"#).unwrap();
    assert_eq!(
        refresh(&mut s, RT, T0),
        (401, json!({"error":"invalid_grant","error_description":"invalid/expired token"}))
    );
    assert!(s.patch_config(br#"{"dead_refresh_status":500}"#).is_err());
    s.patch_config(br#"{"clock_offset_secs":0}"#).unwrap();
    assert_eq!(answer(&mut s, &refresh_body(RT)).0, 200);
}

/// The dead refresh token answered with the password-reset body
/// (xoxoday-api.md §1.4: `{"success":0,"error_message_id":
/// "auth.token_error"}`), at HTTP 200 as the sandbox's other uses of it
/// answer; its status is unconfirmed, 200–499 like the other dead-token
/// answers. A live refresh token is served as before.
#[test]
fn dead_refresh_token_in_the_password_reset_body() {
    let mut s = sb();
    s.patch_config(br#"{"dead_refresh_answer":"token_error","dead_refresh_status":200}"#).unwrap();
    assert_eq!(s.config.to_json()["dead_refresh_answer"], "token_error");
    let reset = json!({"success":0,"error_message_id":"auth.token_error"});
    assert_eq!(refresh(&mut s, "never-issued", T0), (200, reset.clone()));
    let (status, fresh) = refresh(&mut s, RT, T0);
    assert_eq!(status, 200);
    assert!(fresh["access_token"].is_string(), "a live token is refreshed as before: {fresh}");
    assert_eq!(refresh(&mut s, RT, T0), (200, reset.clone()), "rotated away");
    s.patch_config(br#"{"dead_refresh_status":403}"#).unwrap();
    assert_eq!(refresh(&mut s, RT, T0), (403, reset));
    let c = s.counters_json(0, 0);
    assert_eq!((c["refresh_success"].as_u64(), c["refresh_failures"].as_u64()), (Some(1), Some(3)));
    assert!(s.patch_config(br#"{"dead_refresh_status":199}"#).is_err());
    assert!(s.patch_config(br#"{"dead_refresh_answer":"auth.token_error"}"#).is_err());
}

#[test]
fn token_response_formats_and_validate() {
    let mut s = sb();
    s.patch_config(br#"{"expires_in_as":"string","expiry_as":"number","extra_fields":false,"access_ttl_secs":100}"#).unwrap();
    let (_, body) = refresh(&mut s, RT, T0);
    assert_eq!(body["expires_in"], "100");
    assert_eq!(body["access_token_expiry"], T0 + 100 * SEC);
    assert!(body.get("success").is_none() && body.get("status").is_none());
    let at = tok(&body, "access_token");

    let (status, v) = check(&mut s, Some(&format!("Bearer {at}")), T0 + 40 * SEC);
    assert_eq!(status, 200);
    assert_eq!(v["expires_in"], "60");
    assert_eq!(v["access_token"], at);
    assert_eq!(
        check(&mut s, Some(&format!("Bearer {at}")), T0 + 100 * SEC)
            .0,
        401
    );
    assert_eq!(
        check(&mut s, Some("Bearer nope"), T0).1["error"],
        "invalid_token"
    );
    assert_eq!(check(&mut s, None, T0).0, 401);
    assert_eq!(s.counters_json(0, 0)["validate_calls"], 4);
    // The Rewards spec's check answer: three fields, no expiry timestamps.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"]);
}

#[test]
fn token_answers_in_each_documented_reading() {
    let mut s = sb();
    // Legacy GitBook's refresh answer: no expiry timestamps.
    s.patch_config(br#"{"expiry_fields":false}"#).unwrap();
    let (_, body) = refresh(&mut s, RT, T0);
    assert!(body.get("access_token_expiry").is_none() && body.get("refresh_token_expiry").is_none(), "{body}");
    assert_eq!(body["expires_in"], 1_296_000);
    let at = tok(&body, "access_token");
    // The token check: expires_in as the whole lifetime, with the
    // timestamps of the Reward-Link and Storefront variants.
    s.patch_config(br#"{"check_expires_in":"lifetime","check_expiry_fields":true}"#).unwrap();
    let (status, v) = check(&mut s, Some(&format!("Bearer {at}")), T0 + 86_400 * SEC);
    assert_eq!(status, 200);
    assert_eq!(v["expires_in"], 1_296_000, "the lifetime, not the 14 days left");
    assert_eq!(v["access_token_expiry"], (T0 + 1_296_000 * SEC).to_string());
    s.patch_config(br#"{"check_expires_in":"remaining"}"#).unwrap();
    assert_eq!(check(&mut s, Some(&format!("Bearer {at}")), T0 + 86_400 * SEC).1["expires_in"], 1_209_600);
    s.patch_config(br#"{"check_expires_in":"stamp"}"#).unwrap();
    assert_eq!(check(&mut s, Some(&format!("Bearer {at}")), T0 + 86_400 * SEC).1["expires_in"], (T0 + 1_296_000 * SEC) / 1000);
    assert!(s.patch_config(br#"{"check_expires_in":"total"}"#).is_err());
}

/// The check's `lifetime` reading is the token's own lifetime: one issued
/// under a 3-day TTL says 3 days after the TTL is set back to 15.
#[test]
fn the_lifetime_reading_is_the_tokens_own() {
    let mut s = sb();
    s.patch_config(br#"{"access_ttl_secs":259200,"check_expires_in":"lifetime"}"#).unwrap();
    let short = s.issue_tokens(b"", T0).unwrap();
    let short = tok(&short, "access_token");
    s.patch_config(br#"{"access_ttl_secs":1296000}"#).unwrap();
    let long = s.issue_tokens(b"", T0).unwrap();
    let long = tok(&long, "access_token");
    let lifetime = |s: &mut Sandbox, at: &str| {
        let (status, v) = check(s, Some(&format!("Bearer {at}")), T0 + HOUR);
        assert_eq!(status, 200, "{v}");
        v["expires_in"].clone()
    };
    assert_eq!(lifetime(&mut s, &short), 259_200);
    assert_eq!(lifetime(&mut s, &long), 1_296_000);
    // The bootstrap pair's, from the default config at the start.
    assert_eq!(lifetime(&mut s, AT), 1_296_000);
    // A refresh under a 3-day TTL: its token says 3 days, after any change.
    s.patch_config(br#"{"access_ttl_secs":259200}"#).unwrap();
    let (_, body) = refresh(&mut s, RT, T0);
    s.patch_config(br#"{"access_ttl_secs":1296000}"#).unwrap();
    assert_eq!(lifetime(&mut s, &tok(&body, "access_token")), 259_200);
    // Kept across a state file.
    let restored = Sandbox::parse_state(&s.snapshot().unwrap()).unwrap();
    let mut s = Sandbox::from_state(Credentials::default(), restored);
    assert_eq!(lifetime(&mut s, &short), 259_200);
}

/// xoxoday-api.md §1.2 and §1.5: a refresh token "cannot be regenerated
/// by the API" and expires "30 days after generation". Read as the chain's
/// generation (`refresh_expiry: fixed`), every rotated token keeps the
/// first one's expiry; the default renews it on every refresh.
#[test]
fn a_fixed_refresh_chain_keeps_its_first_expiry() {
    let mut s = sb();
    assert_eq!(s.config.to_json()["refresh_expiry"], "renew");
    let (_, renewed) = refresh(&mut s, RT, T0 + DAY);
    assert_eq!(renewed["refresh_token_expiry"], (T0 + 31 * DAY).to_string(), "renew: 30 days from the refresh");
    assert!(s.patch_config(br#"{"refresh_expiry":"never"}"#).is_err());

    let mut s = sb();
    s.patch_config(br#"{"refresh_expiry":"fixed","check_expiry_fields":true}"#).unwrap();
    let chain_end = (T0 + 30 * DAY).to_string();
    let (status, first) = refresh(&mut s, RT, T0 + DAY);
    assert_eq!((status, &first["refresh_token_expiry"]), (200, &json!(chain_end)));
    assert_eq!(first["access_token_expiry"], (T0 + 16 * DAY).to_string(), "access tokens keep their own life");
    // A new lifetime does not move the chain's end, nor does a rotation
    // whose answer lacks the access token.
    s.patch_config(br#"{"refresh_ttl_secs":100}"#).unwrap();
    s.set_refresh_fault(br#"{"mode":"rotate_refresh_only"}"#).unwrap();
    let (_, half) = refresh(&mut s, &tok(&first, "refresh_token"), T0 + 20 * DAY);
    assert_eq!(half["refresh_token_expiry"], json!(chain_end));
    let (_, last) = refresh(&mut s, &tok(&half, "refresh_token"), T0 + 30 * DAY - SEC);
    assert_eq!(last["refresh_token_expiry"], json!(chain_end));
    let at = tok(&last, "access_token");
    let (_, verdict) = check(&mut s, Some(&format!("Bearer {at}")), T0 + 30 * DAY - SEC);
    assert_eq!(verdict["refresh_token_expiry"], json!(chain_end), "the token check names the chain's end too");
    // The chain ends: its last refresh token is dead, with the documented
    // answer; the access token lives on to its own expiry.
    assert_eq!(
        refresh(&mut s, &tok(&last, "refresh_token"), T0 + 30 * DAY),
        (400, json!({"error":"invalid_token","error_description":"invalid/expired token"}))
    );
    let q = "plumProAPI.query.getBalance";
    assert_eq!(api(&mut s, &at, q, json!({}), T0 + 30 * DAY).status, 200);
    // The dashboard's "Generate Token" starts a new chain, with the
    // lifetime configured then.
    let issued = s.issue_tokens(b"", T0 + 31 * DAY).unwrap();
    assert_eq!(issued["refresh_token_expiry"], T0 + 31 * DAY + 100 * SEC);
    let (_, next) = refresh(&mut s, &tok(&issued, "refresh_token"), T0 + 31 * DAY + 50 * SEC);
    assert_eq!(next["refresh_token_expiry"], (T0 + 31 * DAY + 100 * SEC).to_string());

    // Grace: the old token, used again inside the grace, starts no new
    // chain either.
    let mut s = sb();
    s.patch_config(br#"{"refresh_expiry":"fixed","rotation":"grace"}"#).unwrap();
    for at in [T0 + DAY, T0 + DAY + HOUR] {
        assert_eq!(refresh(&mut s, RT, at).1["refresh_token_expiry"], json!(chain_end));
    }
}

#[test]
fn a_refresh_penalty_can_kill_the_refresh_token() {
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"rate_limited","penalty_seconds":30,"revoke":true}"#).unwrap();
    assert!(matches!(s.refresh(&refresh_body(RT), T0), RefreshOutcome::Limited { status: 400, .. }));
    // The penalty over, the token it was given is dead: Xoxoday's answer
    // to an expired or invalid token.
    assert_eq!(refresh(&mut s, RT, T0 + 31 * SEC), (400, json!({"error":"invalid_token","error_description":"invalid/expired token"})));
}

#[test]
fn refresh_fault_statuses_are_honoured() {
    let mut s = sb();
    // The defaults: the statuses seen or documented.
    s.set_refresh_fault(br#"{"mode":"invalid_grant"}"#).unwrap();
    assert_eq!(refresh(&mut s, RT, T0).0, 400);
    s.set_refresh_fault(br#"{"mode":"invalid_client"}"#).unwrap();
    assert_eq!(refresh(&mut s, RT, T0).0, 401);
    // Any other, when a test asks (Xoxoday's are unconfirmed).
    s.set_refresh_fault(br#"{"mode":"invalid_grant","status":401}"#).unwrap();
    let (status, body) = refresh(&mut s, RT, T0);
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_grant")));
    s.set_refresh_fault(br#"{"mode":"invalid_client","status":400}"#).unwrap();
    assert_eq!(refresh(&mut s, RT, T0).0, 400);
    s.set_refresh_fault(br#"{"mode":"token_error","status":401}"#).unwrap();
    let (status, body) = refresh(&mut s, RT, T0);
    assert_eq!((status, body["error_message_id"].as_str()), (401, Some("auth.token_error")));
}

#[test]
fn refresh_faults() {
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"5xx","count":2,"status":502}"#)
        .unwrap();
    // Invalid calls do not consume the fault.
    assert_eq!(refresh(&mut s, "unknown", T0).0, 400);
    assert_eq!(
        refresh(&mut s, RT, T0),
        (
            502,
            json!({"error":"server_error","error_description":"internal server error"})
        )
    );
    assert_eq!(refresh(&mut s, RT, T0).0, 502);
    // The token survived the faults.
    let (status, body) = refresh(&mut s, RT, T0);
    assert_eq!(status, 200);
    let rt = tok(&body, "refresh_token");

    s.set_refresh_fault(br#"{"mode":"invalid_grant"}"#).unwrap();
    assert_eq!(refresh(&mut s, &rt, T0).1["error"], "invalid_grant");
    assert_eq!(refresh(&mut s, &rt, T0).0, 200);

    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"hang","hang_ms":1234}"#)
        .unwrap();
    match s.refresh(&refresh_body(RT), T0) {
        RefreshOutcome::HangThen { ms, status, .. } => assert_eq!((ms, status), (1234, 503)),
        other => panic!("{other:?}"),
    }

    // rotate_then_drop: a real rotation whose answer is lost.
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"rotate_then_drop"}"#)
        .unwrap();
    assert_eq!(
        s.refresh(&refresh_body(RT), T0),
        RefreshOutcome::Drop { status: 200 }
    );
    assert_eq!(refresh(&mut s, RT, T0).0, 400, "strict: the old token died");
    assert_eq!(
        s.token_stats(T0)["live_refresh_tokens"],
        1,
        "the new pair exists"
    );

    let mut s = sb();
    s.patch_config(br#"{"rotation":"grace"}"#).unwrap();
    s.set_refresh_fault(br#"{"mode":"rotate_then_drop"}"#)
        .unwrap();
    assert_eq!(
        s.refresh(&refresh_body(RT), T0),
        RefreshOutcome::Drop { status: 200 }
    );
    assert_eq!(
        refresh(&mut s, RT, T0 + HOUR).0,
        200,
        "grace: the old token still works"
    );

    assert!(s.set_refresh_fault(br#"{"mode":"boom"}"#).is_err());
    s.set_refresh_fault(br#"{"mode":"5xx","count":3}"#).unwrap();
    s.clear_faults();
    assert_eq!(s.faults_json(), json!({"refresh": null, "validate": null, "api": null, "order": null, "details": null, "proxy": null}));
}

#[test]
fn rotate_then_delay_rotates_and_answers_late() {
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"rotate_then_delay","hang_ms":20000}"#).unwrap();
    let late = match s.refresh(&refresh_body(RT), T0) {
        RefreshOutcome::HangThen { ms: 20_000, status: 200, body } => body,
        other => panic!("{other:?}"),
    };
    let new_rt = tok(&late, "refresh_token");
    let counted = |s: &Sandbox| {
        let c = s.counters_json(0, 0);
        (c["refresh_calls"].as_u64(), c["refresh_success"].as_u64(), c["refresh_failures"].as_u64())
    };
    assert_eq!(counted(&s), (Some(1), Some(0), Some(0)), "decided, not given: not counted yet");
    assert_eq!(refresh(&mut s, RT, T0).0, 400, "strict: rotated at once, before the answer");
    let (status, next) = refresh(&mut s, &new_rt, T0);
    assert_eq!(status, 200, "the late answer's token works");
    assert_eq!(counted(&s), (Some(3), Some(1), Some(1)), "the late answer still not given");
    // The HTTP layer says when it goes out (after its delay).
    s.note_refresh_answered(200, &late);
    assert_eq!(counted(&s), (Some(3), Some(2), Some(1)));
    // One the caller hung up on is never given: a failure.
    s.set_refresh_fault(br#"{"mode":"rotate_then_delay"}"#).unwrap();
    assert!(matches!(s.refresh(&refresh_body(&tok(&next, "refresh_token")), T0), RefreshOutcome::HangThen { .. }));
    s.note_refresh_unanswered();
    assert_eq!(counted(&s), (Some(4), Some(2), Some(2)));
}

/// `refresh_success` counts only complete 2xx answers, both tokens in them
/// (README "Behaviour notes"): the password-reset body at 200, half a pair
/// and a pair under an error status are failures.
#[test]
fn only_a_whole_pair_in_a_2xx_is_a_refresh_success() {
    let counted = |s: &Sandbox| {
        let c = s.counters_json(0, 0);
        (c["refresh_success"].as_u64(), c["refresh_failures"].as_u64())
    };
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"token_error"}"#).unwrap();
    assert_eq!(refresh(&mut s, RT, T0).0, 200);
    assert_eq!(counted(&s), (Some(0), Some(1)), "auth.token_error at HTTP 200");

    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"rotate_refresh_only"}"#).unwrap();
    let (status, half) = refresh(&mut s, RT, T0);
    assert_eq!((status, half.get("access_token")), (200, None));
    assert_eq!(counted(&s), (Some(0), Some(1)), "half a pair");
    assert_eq!(refresh(&mut s, &tok(&half, "refresh_token"), T0).0, 200);
    assert_eq!(counted(&s), (Some(1), Some(1)), "then a whole one");

    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"rotate_then_delay","hang_ms":0,"status":500}"#).unwrap();
    let RefreshOutcome::HangThen { status: 500, body, .. } = s.refresh(&refresh_body(RT), T0) else { panic!() };
    s.note_refresh_answered(500, &body);
    assert_eq!(counted(&s), (Some(0), Some(1)), "a pair under HTTP 500");
}

#[test]
fn refresh_rate_limit_shapes_and_their_penalty() {
    let shapes = [
        ("status429", 429, json!({"message":"auth.request_limit_exceeded"})),
        ("errors_array", 400, json!({"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":30}]})),
        ("errors_object", 400, json!({"errors":{"message":"auth.request_limit_exceeded","penaltySeconds":30}})),
        ("message", 400, json!({"message":"auth.request_limit_exceeded"})),
        ("success0", 200, json!({"success":0,"message":"auth.request_limit_exceeded"})),
    ];
    for (shape, status, body) in shapes {
        let mut s = sb();
        s.set_refresh_fault(format!(r#"{{"mode":"rate_limited","shape":"{shape}","penalty_seconds":30}}"#).as_bytes())
            .unwrap();
        let header = |secs: u64| (shape == "status429").then_some(secs);
        let limited = RefreshOutcome::Limited { status, body: body.clone(), retry_after_secs: header(30) };
        assert_eq!(s.refresh(&refresh_body(RT), T0), limited, "{shape}");
        // During the penalty every refresh gets the same answer, even a
        // valid one; the token is not touched.
        match s.refresh(&refresh_body(RT), T0 + 10 * SEC) {
            RefreshOutcome::Limited { status: st, retry_after_secs, .. } => assert_eq!((st, retry_after_secs), (status, header(20))),
            other => panic!("{shape}: {other:?}"),
        }
        assert_eq!(refresh(&mut s, RT, T0 + 30 * SEC).0, 200, "{shape}: after the penalty");
        let c = s.counters_json(0, 0);
        assert_eq!(c["refresh_rate_limited"], 2, "{shape}");
        assert_eq!(c["refresh_calls"], 3);
    }
    // Clearing faults ends a penalty too.
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"rate_limited","penalty_seconds":600}"#).unwrap();
    assert!(matches!(s.refresh(&refresh_body(RT), T0), RefreshOutcome::Limited { status: 400, .. }));
    s.clear_faults();
    assert_eq!(refresh(&mut s, RT, T0 + SEC).0, 200);
}

/// The refresh endpoint's own rate limit (`refresh_limit`, off by
/// default: the threshold is unconfirmed): every refresh call counts in a
/// sliding window, the ones it answers too; the call over the limit starts
/// the penalty the `rate_limited` fault starts, in its shape, and with
/// `revoke` kills the refresh token it was given.
#[test]
fn refresh_limit_counts_every_call_in_a_sliding_window() {
    let mut s = sb();
    assert_eq!(s.config.to_json()["refresh_limit"], Value::Null, "off by default");
    for i in 0..30 {
        assert_eq!(refresh(&mut s, "never-issued", T0 + i * 100).0, 400, "no limit: call {i}");
    }
    let limited = |s: &mut Sandbox, rt: &str, at: i64| match s.refresh(&refresh_body(rt), at) {
        RefreshOutcome::Limited { status, body, retry_after_secs } => Some((status, body, retry_after_secs)),
        RefreshOutcome::Answer { .. } => None,
        other => panic!("{other:?}"),
    };
    s.patch_config(br#"{"refresh_limit":{"calls":2,"window_secs":10,"penalty_seconds":5}}"#).unwrap();
    assert_eq!(s.config.to_json()["refresh_limit"], json!({"calls":2,"window_secs":10,"penalty_seconds":5,"shape":"message","revoke":false}));
    let (_, first) = refresh(&mut s, RT, T0 + 100 * SEC);
    let rt = tok(&first, "refresh_token");
    assert_eq!(refresh(&mut s, "never-issued", T0 + 104 * SEC).0, 400, "a refused call counts too");
    let body = json!({"message":"auth.request_limit_exceeded"});
    assert_eq!(limited(&mut s, &rt, T0 + 108 * SEC), Some((400, body.clone(), None)), "the third call in 10 s");
    // The penalty starts the window afresh; every call during it gets the
    // penalty's answer, and each counts in the new window.
    assert_eq!(limited(&mut s, &rt, T0 + 111 * SEC), Some((400, body.clone(), None)));
    assert_eq!(limited(&mut s, &rt, T0 + 112 * SEC), Some((400, body.clone(), None)));
    // Penalty over at 113 s, but 111 s, 112 s and this call are in the
    // window: limited again (a client that keeps calling keeps itself limited).
    assert!(limited(&mut s, &rt, T0 + 115 * SEC).is_some());
    // Quiet for a window: the token, never touched, works.
    let (status, next) = refresh(&mut s, &rt, T0 + 130 * SEC);
    assert_eq!(status, 200);
    let c = s.counters_json(0, 0);
    assert_eq!((c["refresh_rate_limited"].as_u64(), c["refresh_success"].as_u64()), (Some(4), Some(2)));

    // revoke, in the HTTP 429 shape: the call over the limit kills its token.
    s.patch_config(br#"{"refresh_limit":{"calls":1,"window_secs":60,"penalty_seconds":30,"shape":"status429","revoke":true}}"#).unwrap();
    let rt = tok(&next, "refresh_token");
    let (_, next) = refresh(&mut s, &rt, T0 + 200 * SEC);
    let rt = tok(&next, "refresh_token");
    assert_eq!(limited(&mut s, &rt, T0 + 201 * SEC), Some((429, body, Some(30))));
    assert_eq!(refresh(&mut s, &rt, T0 + 400 * SEC).1["error"], "invalid_token", "revoked with the penalty");
    // faults/clear ends the penalty and empties the window: the next call
    // is the window's first, not one over a still-full window.
    s.patch_config(br#"{"refresh_limit":{"calls":1,"window_secs":60,"penalty_seconds":30}}"#).unwrap();
    let issued = s.issue_tokens(b"", T0 + 500 * SEC).unwrap();
    let (_, again) = refresh(&mut s, &tok(&issued, "refresh_token"), T0 + 500 * SEC);
    let rt = tok(&again, "refresh_token");
    assert!(limited(&mut s, &rt, T0 + 501 * SEC).is_some());
    s.clear_faults();
    assert_eq!(refresh(&mut s, &rt, T0 + 502 * SEC).0, 200, "cleared: the window starts afresh");
    // Off again with null; bad limits are refused and change nothing.
    s.patch_config(br#"{"refresh_limit":null}"#).unwrap();
    assert_eq!(s.config.refresh_limit, None);
    for bad in [
        &br#"{"refresh_limit":{"calls":0,"window_secs":60}}"#[..],
        br#"{"refresh_limit":{"calls":5,"window_secs":0}}"#,
        br#"{"refresh_limit":{"calls":5,"window_secs":60,"penalty_seconds":0}}"#,
        br#"{"refresh_limit":{"calls":5}}"#,
        br#"{"refresh_limit":{"calls":5,"window_secs":60,"burst":1}}"#,
        br#"{"refresh_limit":{"calls":5,"window_secs":60,"shape":"sideways"}}"#,
    ] {
        assert!(s.patch_config(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(s.config.refresh_limit, None);
    // A state file without the field: off.
    let old: Config = serde_json::from_str(r#"{"rotation":"grace"}"#).unwrap();
    assert_eq!(old.refresh_limit, None);
}

/// `refresh_limit`'s penalty starts its window afresh, as the API limiter's
/// does: a client that waits the answer's `Retry-After` (or
/// `penaltySeconds`) and calls once is let through, whatever
/// `window_secs` is. The calls made during the penalty still count.
#[test]
fn refresh_limit_s_penalty_ends_when_its_answer_says() {
    let limited = |s: &mut Sandbox, rt: &str, at: i64| match s.refresh(&refresh_body(rt), at) {
        RefreshOutcome::Limited { status, retry_after_secs, .. } => Some((status, retry_after_secs)),
        RefreshOutcome::Answer { .. } => None,
        other => panic!("{other:?}"),
    };
    let mut s = sb();
    s.patch_config(br#"{"refresh_limit":{"calls":2,"window_secs":60,"penalty_seconds":8,"shape":"status429"}}"#).unwrap();
    let (_, a) = refresh(&mut s, RT, T0);
    let (_, b) = refresh(&mut s, &tok(&a, "refresh_token"), T0 + SEC);
    let rt = tok(&b, "refresh_token");
    assert_eq!(limited(&mut s, &rt, T0 + 2 * SEC), Some((429, Some(8))), "the third call in 60 s");
    // Waits exactly Retry-After, then calls once: let through.
    let (status, c) = refresh(&mut s, &rt, T0 + 10 * SEC);
    assert_eq!(status, 200, "Retry-After honoured");
    // And a second: still within the limit of the window started afresh.
    assert_eq!(refresh(&mut s, &tok(&c, "refresh_token"), T0 + 11 * SEC).0, 200);
}

/// `refresh_limit: null` turns the limit off: the penalty it started ends
/// with it; one a `rate_limited` fault started runs on (`faults/clear` ends
/// that).
#[test]
fn turning_refresh_limit_off_ends_its_penalty() {
    let limited = |s: &mut Sandbox, rt: &str, at: i64| matches!(s.refresh(&refresh_body(rt), at), RefreshOutcome::Limited { .. });
    let mut s = sb();
    s.patch_config(br#"{"refresh_limit":{"calls":1,"window_secs":60,"penalty_seconds":60}}"#).unwrap();
    let (_, a) = refresh(&mut s, RT, T0);
    let rt = tok(&a, "refresh_token");
    assert!(limited(&mut s, &rt, T0 + SEC));
    s.patch_config(br#"{"refresh_limit":null}"#).unwrap();
    assert_eq!(refresh(&mut s, &rt, T0 + 2 * SEC).0, 200, "off: no penalty");

    let mut s = sb();
    s.patch_config(br#"{"refresh_limit":{"calls":1,"window_secs":60,"penalty_seconds":60}}"#).unwrap();
    s.set_refresh_fault(br#"{"mode":"rate_limited","penalty_seconds":60}"#).unwrap();
    assert!(limited(&mut s, RT, T0));
    s.patch_config(br#"{"refresh_limit":null}"#).unwrap();
    assert!(limited(&mut s, RT, T0 + SEC), "the fault's penalty runs on");
    // Another config change leaves a running limit's penalty alone.
    let mut s = sb();
    s.patch_config(br#"{"refresh_limit":{"calls":1,"window_secs":60,"penalty_seconds":60}}"#).unwrap();
    let (_, a) = refresh(&mut s, RT, T0);
    let rt = tok(&a, "refresh_token");
    assert!(limited(&mut s, &rt, T0 + SEC));
    s.patch_config(br#"{"api_latency_ms":0}"#).unwrap();
    assert!(limited(&mut s, &rt, T0 + 2 * SEC));
}

/// Moving the clock back ends a refresh or token-check penalty that has
/// not started yet in the new time, and empties `refresh_limit`'s window of
/// calls dated after it, as the API limiter does: else the penalty would
/// run until the clock caught up again (a day here).
#[test]
fn moving_the_clock_back_ends_penalties_started_later() {
    let back = br#"{"clock_offset_secs":-86400}"#;
    let limited = |s: &mut Sandbox, rt: &str, at: i64| matches!(s.refresh(&refresh_body(rt), at), RefreshOutcome::Limited { .. });
    // A rate_limited fault's penalty.
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"rate_limited","shape":"status429","penalty_seconds":60}"#).unwrap();
    assert!(limited(&mut s, RT, T0));
    s.patch_config(back).unwrap();
    assert_eq!(refresh(&mut s, RT, T0 + SEC).0, 200, "refresh: penalty not started in the new time");
    // The token check's.
    let bearer = format!("Bearer {AT}");
    s.set_validate_fault(br#"{"mode":"rate_limited","penalty_seconds":60}"#).unwrap();
    s.patch_config(br#"{"clock_offset_secs":0}"#).unwrap();
    assert!(matches!(s.validate_token(Some(&bearer), T0), RefreshOutcome::Limited { .. }));
    s.patch_config(back).unwrap();
    assert_eq!(check(&mut s, Some(&bearer), T0 + SEC).0, 200, "check: penalty not started in the new time");
    // refresh_limit's penalty, and its window's calls.
    let mut s = sb();
    s.patch_config(br#"{"refresh_limit":{"calls":1,"window_secs":60,"penalty_seconds":60}}"#).unwrap();
    let (_, a) = refresh(&mut s, RT, T0);
    let rt = tok(&a, "refresh_token");
    assert!(limited(&mut s, &rt, T0 + SEC));
    s.patch_config(back).unwrap();
    let (status, b) = refresh(&mut s, &rt, T0 + 2 * SEC);
    assert_eq!(status, 200, "limit: penalty not started in the new time");
    s.patch_config(br#"{"clock_offset_secs":0}"#).unwrap();
    let (_, c) = refresh(&mut s, &tok(&b, "refresh_token"), T0 + 3 * SEC);
    s.patch_config(back).unwrap();
    let (status, _) = refresh(&mut s, &tok(&c, "refresh_token"), T0 + 4 * SEC);
    assert_eq!(status, 200, "calls dated after now left the window");
}

#[test]
fn token_error_and_invalid_client_faults() {
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"token_error"}"#).unwrap();
    assert_eq!(refresh(&mut s, RT, T0), (200, json!({"success":0,"error_message_id":"auth.token_error"})));
    assert_eq!(refresh(&mut s, RT, T0).1["error"], "invalid_token", "the refresh token died");
    assert_eq!(api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), T0).status, 401, "and the access token with it");

    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"invalid_client","count":2}"#).unwrap();
    assert_eq!(refresh(&mut s, RT, T0), (401, json!({"error":"invalid_client","error_description":"invalid client credentials"})));
    assert_eq!(refresh(&mut s, RT, T0).0, 401);
    assert_eq!(refresh(&mut s, RT, T0).0, 200, "the refresh token was never spent");
    // Wrong credentials without any fault: invalid_client as well.
    let mut wrong = refresh_body(RT);
    wrong = String::from_utf8(wrong).unwrap().replace("plumgate-dev-secret", "nope").into_bytes();
    let mut s = sb();
    assert!(matches!(s.refresh(&wrong, T0), RefreshOutcome::Answer { status: 401, .. }));
}

#[test]
fn issued_vouchers_lists_every_order_s_codes_and_pins() {
    let mut s = sb();
    assert_eq!(s.issued_vouchers(), json!({"vouchers": []}));
    let placed = api(&mut s, AT, "plumProAPI.mutation.placeOrder", order("PO-V1"), T0);
    assert_eq!(placed.status, 200);
    let v = placed.body["data"]["placeOrder"]["data"]["vouchers"].as_array().unwrap();
    assert_eq!(v.len(), 2, "quantity 2");
    assert_eq!(s.issued_vouchers(), json!({"vouchers": [v[0]["voucherCode"], v[0]["pin"], v[1]["voucherCode"], v[1]["pin"]]}));
}

#[test]
fn an_echo_header_fault_quotes_the_token_sent() {
    let mut s = sb();
    s.set_api_fault(br#"{"mode":"echo_header","op":"getBalance"}"#).unwrap();
    let q = "plumProAPI.query.getBalance";
    let r = api(&mut s, AT, q, json!({}), T0);
    assert_eq!((r.status, r.body["errorId"].clone()), (400, json!("PLE10001")));
    assert_eq!(r.body["error"], format!("invalid request with authorization Bearer {AT}"));
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200, "count 1");
    assert!(s.set_api_fault(br#"{"mode":"echo_header","status":500}"#).is_err(), "a 4xx only");
}

#[test]
fn api_401_faults_answer_valid_tokens() {
    let mut s = sb();
    s.set_api_fault(br#"{"mode":"PLE10019","op":"placeOrder"}"#).unwrap();
    let q = "plumProAPI.query.getBalance";
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200, "another operation");
    let order = order("PO-F1");
    let o = api(&mut s, AT, "plumProAPI.mutation.placeOrder", order.clone(), T0);
    assert_eq!((o.status, o.body["errorId"].clone()), (401, json!("PLE10019")));
    assert_eq!(api(&mut s, AT, "plumProAPI.mutation.placeOrder", order, T0).status, 200, "count 1");
    s.set_api_fault(br#"{"mode":"PIPE10017","count":2}"#).unwrap();
    assert_eq!(api(&mut s, AT, q, json!({}), T0).body["errorId"], "PIPE10017");
    // An unauthorised call does not use the fault up.
    assert_eq!(api(&mut s, "nope", q, json!({}), T0).body["errorId"], "PIPE10013");
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 401);
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200);
    let c = s.counters_json(0, 0);
    assert_eq!((c["api_401_faults"].as_u64(), c["unauthorized_api_calls"].as_u64()), (Some(3), Some(1)));

    // The token check can fail on demand.
    s.set_validate_fault(br#"{"mode":"5xx","status":502}"#).unwrap();
    assert_eq!(check(&mut s, Some(&format!("Bearer {AT}")), T0).0, 502);
    assert_eq!(check(&mut s, Some(&format!("Bearer {AT}")), T0).0, 200);

    // ... or be rate-limited: a penalty every check meets until it ends.
    s.set_validate_fault(br#"{"mode":"rate_limited","shape":"status429","penalty_seconds":30}"#).unwrap();
    let bearer = format!("Bearer {AT}");
    let limited = |retry_after_secs| RefreshOutcome::Limited { status: 429, body: json!({"message":"auth.request_limit_exceeded"}), retry_after_secs };
    assert_eq!(s.validate_token(Some(&bearer), T0), limited(Some(30)));
    assert_eq!(s.validate_token(Some(&bearer), T0 + 10 * SEC), limited(Some(20)));
    assert_eq!(s.validate_token(Some("Bearer nope"), T0 + 10 * SEC), limited(Some(20)), "any token");
    assert_eq!(check(&mut s, Some(&bearer), T0 + 30 * SEC).0, 200, "over");
    assert_eq!(s.counters_json(0, 0)["validate_rate_limited"], 3);
    s.set_validate_fault(br#"{"mode":"rate_limited"}"#).unwrap();
    assert!(matches!(s.validate_token(Some(&bearer), T0 + 40 * SEC), RefreshOutcome::Limited { status: 400, retry_after_secs: None, .. }), "the flat body by default");
    assert!(s.set_validate_fault(br#"{"mode":"rate_limited","revoke":true}"#).is_err());
    s.clear_faults();
    assert_eq!(check(&mut s, Some(&bearer), T0 + 41 * SEC).0, 200, "clearing faults ends the penalty");
}

/// Killing access tokens (a `token_error` fault, `tokens/revoke-access`,
/// `tokens/issue` with `revoke_existing`) kills every one issued, the ones
/// expired at that moment of sandbox time too: moving the clock back does
/// not bring a killed token back.
#[test]
fn killed_access_tokens_stay_dead_when_the_clock_goes_back() {
    let q = "plumProAPI.query.getBalance";
    let later = br#"{"clock_offset_secs":1296001}"#; // past the bootstrap access token's expiry
    type Kill = fn(&mut Sandbox);
    let kills: [(&str, Kill); 3] = [
        ("token_error", |s| {
            let (_, a) = refresh(s, RT, T0);
            s.set_refresh_fault(br#"{"mode":"token_error"}"#).unwrap();
            assert_eq!(refresh(s, &tok(&a, "refresh_token"), T0), (200, json!({"success":0,"error_message_id":"auth.token_error"})));
        }),
        ("revoke-access", |s| {
            s.revoke_access(T0);
        }),
        ("issue revoke_existing", |s| {
            s.issue_tokens(br#"{"revoke_existing":true}"#, T0).unwrap();
        }),
    ];
    for (name, kill) in kills {
        let mut s = sb();
        s.patch_config(later).unwrap();
        assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 401, "{name}: expired for now");
        kill(&mut s);
        s.patch_config(br#"{"clock_offset_secs":0}"#).unwrap();
        assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 401, "{name}: revived with the clock back");
    }
}

#[test]
fn regenerating_tokens_kills_the_old_ones() {
    let mut s = sb();
    let fresh = s.issue_tokens(br#"{"revoke_existing":true}"#, T0).unwrap();
    assert_eq!(api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), T0).status, 401);
    assert_eq!(refresh(&mut s, RT, T0).0, 400);
    assert_eq!(refresh(&mut s, &tok(&fresh, "refresh_token"), T0).0, 200);
    assert!(s.issue_tokens(br#"{"revoke":1}"#, T0).is_err());
}

#[test]
fn dead_access_tokens_in_each_documented_body() {
    let mut s = sb();
    let q = "plumProAPI.query.getBalance";
    // The other documented dead-token bodies, under a chosen status.
    s.patch_config(br#"{"dead_access_answer":"token_error","dead_access_status":200}"#).unwrap();
    let reset = api(&mut s, "wrong", q, json!({}), T0);
    assert_eq!((reset.status, reset.body.clone()), (200, json!({"success":0,"error_message_id":"auth.token_error"})));
    s.patch_config(br#"{"dead_access_answer":"invalid_token","dead_access_status":403}"#).unwrap();
    let oauth = api(&mut s, "wrong", q, json!({}), T0);
    assert_eq!((oauth.status, oauth.body["error"].clone()), (403, json!("invalid_token")));
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200, "a live token is served as before");
    assert!(s.patch_config(br#"{"dead_access_status":500}"#).is_err());
    s.patch_config(br#"{"dead_access_answer":"pipe10013"}"#).unwrap();
    assert_eq!(api(&mut s, "wrong", q, json!({}), T0).status, 401, "PIPE10013 is always a 401");
}

/// The token check's answer to a dead access token: the body and status
/// chosen (xoxoday-api.md §1.6's `{"error":"Unauthorized"}`, §1.4's
/// password-reset body; both unconfirmed), a live token unaffected.
#[test]
fn dead_tokens_checked_in_each_documented_body() {
    let mut s = sb();
    let dead = Some("Bearer wrong");
    assert_eq!(check(&mut s, dead, T0), (401, json!({"error":"invalid_token","error_description":"invalid/expired token"})));
    s.patch_config(br#"{"dead_check_answer":"unauthorized"}"#).unwrap();
    assert_eq!(check(&mut s, dead, T0), (401, json!({"error":"Unauthorized"})));
    s.patch_config(br#"{"dead_check_answer":"token_error","dead_check_status":200}"#).unwrap();
    assert_eq!(check(&mut s, dead, T0), (200, json!({"success":0,"error_message_id":"auth.token_error"})));
    s.expire_access(T0);
    let (status, expired) = check(&mut s, Some(&format!("Bearer {AT}")), T0);
    assert_eq!((status, expired["success"].clone()), (200, json!(0)), "an expired token gets it too");
    let (_, fresh) = refresh(&mut s, RT, T0);
    let (status, valid) = check(&mut s, Some(&format!("Bearer {}", tok(&fresh, "access_token"))), T0);
    assert_eq!((status, valid["token_type"].as_str()), (200, Some("bearer")), "a live token is checked as before");
    assert_eq!(check(&mut s, None, T0).1["error"], "invalid_request", "a missing bearer is no dead token");
    for bad in [&br#"{"dead_check_status":199}"#[..], br#"{"dead_check_status":500}"#, br#"{"dead_check_answer":"forbidden"}"#] {
        assert!(s.patch_config(bad).is_err());
    }
    assert_eq!((s.config.dead_check_answer, s.config.dead_check_status), (DeadCheckAnswer::TokenError, 200));
}

#[test]
fn api_auth_parse_and_query_errors() {
    let mut s = sb();
    let q = "plumProAPI.query.getBalance";
    let out = api(&mut s, "wrong", q, json!({}), T0);
    assert_eq!(out.status, 401);
    assert_eq!(out.body["errorId"], "PIPE10013");
    assert_eq!(s.api(None, b"{}", T0).status, 401);
    assert_eq!(s.api(Some(&format!("Basic {AT}")), b"{}", T0).status, 401);
    let bad = s.api(Some(&format!("bearer {AT}")), b"{oops", T0);
    assert_eq!(
        (bad.status, bad.body["errorId"].clone()),
        (400, json!("PLE10001"))
    );
    let unknown = api(&mut s, AT, "plumProAPI.mutation.getBalance", json!({}), T0);
    assert_eq!(
        (unknown.status, unknown.body["errorInfo"].clone()),
        (400, json!("Invalid query"))
    );
    let bad_data = api(
        &mut s,
        AT,
        "plumProAPI.mutation.getVouchers",
        json!([1]),
        T0,
    );
    assert_eq!(bad_data.status, 400);

    let ok = api(&mut s, AT, q, json!({}), T0);
    assert_eq!(
        ok.body,
        json!({"data":{"getBalance":{"status":1,"data":{"points":250000,"value":250000,"currency":"USD"}}}})
    );

    // Revoked / expired access tokens.
    assert_eq!(s.revoke_access(T0), 1);
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 401);
    let c = s.counters_json(0, 0);
    assert_eq!(c["unauthorized_api_calls"], 4);
    assert_eq!(c["api_calls"]["getBalance"], 3);
    assert_eq!(c["api_calls"]["placeOrder"], 0);

    let log = s.requests_json(3);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2]["authorized"], false);
    assert_eq!(log[2]["status"], 401);
    assert_eq!(log[1]["body"]["query"], q);
    assert!(
        !log.iter().any(|r| r.to_string().contains(AT)),
        "no token values in the request log"
    );
    s.clear_requests();
    assert_eq!(s.requests_json(50), json!([]));
}

#[test]
fn rate_limit_and_penalty() {
    let mut s = sb();
    s.patch_config(
        br#"{"rate_limits":{"getBalance":3},"rate_limit_status":403,"penalty_seconds":30}"#,
    )
    .unwrap();
    let q = "plumProAPI.query.getBalance";
    for i in 0..3 {
        assert_eq!(api(&mut s, AT, q, json!({}), T0 + i).status, 200);
    }
    let limited = api(&mut s, AT, q, json!({}), T0 + 10);
    assert_eq!(limited.status, 403);
    assert_eq!(
        limited.body,
        json!({"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":30}]})
    );
    let later = api(&mut s, AT, q, json!({}), T0 + 10 + 20 * SEC);
    assert_eq!(later.body["errors"][0]["penaltySeconds"], 10);
    // Other ops are not penalised.
    assert_eq!(
        api(
            &mut s,
            AT,
            "plumProAPI.mutation.getFilters",
            json!({}),
            T0 + 20 * SEC
        )
        .status,
        200
    );
    // After the penalty, calls go through again.
    assert_eq!(api(&mut s, AT, q, json!({}), T0 + 31 * SEC).status, 200);
    assert_eq!(s.counters_json(0, 0)["rate_limited_calls"], 2);
    // Unauthorized calls do not use up the window.
    let mut s = sb();
    s.patch_config(br#"{"rate_limits":{"getBalance":1}}"#)
        .unwrap();
    assert_eq!(api(&mut s, "nope", q, json!({}), T0).status, 401);
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200);
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 429);
}

/// An operation's own failure (PLE10023, getBalance's; PLE10019, placeOrder's
/// refusal) happens inside Xoxoday's operation: the call has passed the
/// per-minute limit (xoxoday-api.md §3.9), so it counts toward it, and a
/// malformed call is a 400 PLE10001 that leaves the fault. The 401s of
/// Xoxoday's authorisation layer still come first, as a dead token's does:
/// not counted, whatever the envelope.
/// `faults/api` `rate_limited`: Xoxoday's rate-limit answer in the fault's
/// shape, to any authorised call, a query the sandbox does not implement
/// included; counted as rate limited; no penalty of the sandbox's own.
#[test]
fn a_rate_limited_api_fault_answers_any_query_in_its_shape() {
    let mut s = sb();
    let unknown = "plumProAPI.mutation.getSomethingNew";
    s.set_api_fault(br#"{"mode":"rate_limited","shape":"errors_array","penalty_seconds":120}"#).unwrap();
    let out = api(&mut s, AT, unknown, json!({}), T0);
    assert_eq!(out.status, 400);
    assert_eq!(out.body, json!({"errors": [{"message": "auth.request_limit_exceeded", "penaltySeconds": 120}]}));
    assert_eq!(s.counters_json(0, 0)["rate_limited_calls"], 1);
    let next = api(&mut s, AT, unknown, json!({}), T0 + 1);
    assert_eq!((next.status, next.body["errorId"].clone()), (400, json!("PLE10001")), "once: the unknown query's own answer again");
    // Default shape (the flat message), a status of its own, an operation's filter.
    s.set_api_fault(br#"{"mode":"rate_limited","status":429,"op":"getBalance"}"#).unwrap();
    assert_eq!(api(&mut s, AT, unknown, json!({}), T0 + 2).status, 400, "another query");
    let limited = api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), T0 + 3);
    assert_eq!((limited.status, limited.body.clone()), (429, json!({"message": "auth.request_limit_exceeded"})));
    assert!(s.set_api_fault(br#"{"mode":"rate_limited","revoke":true}"#).is_err(), "refresh faults only");
    assert!(s.set_api_fault(br#"{"mode":"PIPE10013","shape":"message"}"#).is_err(), "rate_limited only");
    assert!(s.set_api_fault(br#"{"mode":"rate_limited","penalty_seconds":0}"#).is_err());
}

#[test]
fn an_operation_fault_comes_after_the_rate_limit_and_the_envelope() {
    let q = "plumProAPI.query.getBalance";
    let mut s = sb();
    s.patch_config(br#"{"rate_limits":{"getBalance":1}}"#).unwrap();
    s.set_api_fault(br#"{"mode":"PLE10023","op":"getBalance"}"#).unwrap();
    let first = api(&mut s, AT, q, json!({}), T0);
    assert_eq!((first.status, first.body["errorId"].clone()), (502, json!("PLE10023")));
    assert_eq!(api(&mut s, AT, q, json!({}), T0 + 1).status, 429, "the faulted call counted");

    // A penalised call leaves the fault for the next call let through.
    let mut s = sb();
    s.patch_config(br#"{"rate_limits":{"getBalance":1},"penalty_seconds":30}"#).unwrap();
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200);
    s.set_api_fault(br#"{"mode":"PLE10023","status":503}"#).unwrap();
    assert_eq!(api(&mut s, AT, q, json!({}), T0 + 1).status, 429);
    assert_eq!(api(&mut s, AT, q, json!({}), T0 + 61 * SEC).status, 503);

    // A malformed call is refused first and leaves the fault.
    let mut s = sb();
    s.set_api_fault(br#"{"mode":"PLE10023","count":1}"#).unwrap();
    let bearer = format!("Bearer {AT}");
    let raw = |s: &mut Sandbox, body: Value| s.api(Some(&bearer), body.to_string().as_bytes(), T0);
    for bad in [
        json!({"query":q,"tag":"plumProAPI"}),
        json!({"query":q,"tag":"plumProAPI","variables":{}}),
        json!({"query":q,"tag":"plumProAPI","variables":{"data":"x"}}),
        json!({"query":"plumProAPI.query.nope","tag":"plumProAPI","variables":{"data":{}}}),
        json!([q]),
    ] {
        let out = raw(&mut s, bad.clone());
        assert_eq!((out.status, out.body["errorId"].clone()), (400, json!("PLE10001")), "{bad}");
    }
    assert!(!s.faults_json()["api"].is_null(), "still set");
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 502);
    s.set_api_fault(br#"{"mode":"PLE10019","op":"placeOrder"}"#).unwrap();
    let bad = api(&mut s, AT, "plumProAPI.mutation.placeOrder", json!([1]), T0);
    assert_eq!((bad.status, bad.body["errorId"].clone()), (400, json!("PLE10001")));
    let o = api(&mut s, AT, "plumProAPI.mutation.placeOrder", order("PO-R1"), T0);
    assert_eq!((o.status, o.body["errorId"].clone()), (401, json!("PLE10019")));
    assert_eq!(s.counters_json(0, 0)["api_401_faults"], 1);

    // An authorisation 401 answers before the limit and the envelope.
    let mut s = sb();
    s.patch_config(br#"{"rate_limits":{"getBalance":1}}"#).unwrap();
    s.set_api_fault(br#"{"mode":"PIPE10017","count":2}"#).unwrap();
    let bearer = format!("Bearer {AT}");
    let out = s.api(Some(&bearer), br#"{"query":"plumProAPI.query.getBalance"}"#, T0);
    assert_eq!((out.status, out.body["errorId"].clone()), (401, json!("PIPE10017")));
    assert_eq!(api(&mut s, AT, q, json!({}), T0).body["errorId"], "PIPE10017");
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200, "the 401s were not counted");
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 429);
}

/// An operation's own failure (PLE10019, PLE10023) answers only a call
/// the operation accepts: a call its checks refuse (a malformed one, 400
/// PLE10001, or placeOrder's duplicate poNumber) gets their answer and
/// leaves the fault, as an order fault is left.
#[test]
fn an_operation_fault_meets_only_a_call_its_operation_accepts() {
    let place = "plumProAPI.mutation.placeOrder";
    let mut s = sb();
    assert_eq!(api(&mut s, AT, place, order("PO-HELD"), T0).status, 200);
    s.set_api_fault(br#"{"mode":"PLE10019","op":"placeOrder"}"#).unwrap();
    let mut no_notify = order("PO-N1");
    no_notify.as_object_mut().unwrap().remove("notifyAdminEmail");
    for (data, status, id) in [
        (json!({}), 400, "PLE10001"),
        (no_notify, 400, "PLE10001"),
        (json!({"productId":"ten"}), 400, "PLE10001"),
        (order("PO-HELD"), 409, "PLE10043"),
    ] {
        let o = api(&mut s, AT, place, data.clone(), T0);
        assert_eq!((o.status, o.body["errorId"].clone()), (status, json!(id)), "{data}");
        assert!(!s.faults_json()["api"].is_null(), "left for a valid call: {data}");
    }
    let o = api(&mut s, AT, place, order("PO-N2"), T0);
    assert_eq!((o.status, o.body["errorId"].clone()), (401, json!("PLE10019")));
    assert_eq!(s.counters_json(0, 0)["orders"], 1, "refused: no order made");

    s.set_api_fault(br#"{"mode":"PLE10023","count":1}"#).unwrap();
    for (query, data, id) in [
        ("plumProAPI.mutation.getVouchers", json!({"limit":true}), "PLE10001"),
        ("plumProAPI.mutation.getFilters", json!({"filterGroupCode":7}), "PLE10001"),
        ("plumProAPI.mutation.getOrderDetails", json!({"poNumber":"PO-HELD","sendMailToReceiver":0}), "PLE10001"),
        ("plumProAPI.mutation.getOrderHistory", json!({"limit":10}), "PLE10032"),
    ] {
        let o = api(&mut s, AT, query, data.clone(), T0);
        assert_eq!((o.status, o.body["errorId"].clone()), (400, json!(id)), "{query} {data}");
        assert!(!s.faults_json()["api"].is_null(), "left: {query} {data}");
    }
    assert_eq!(api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), T0).status, 502);
}

fn order(po: &str) -> Value {
    json!({"productId":10100,"quantity":2,"denomination":50,"email":"r@example.com","contact":"+1-4705000000",
           "tag":"sbx","poNumber":po,"notifyReceiverEmail":0,"notifyAdminEmail":0})
}

#[test]
fn place_order_and_lookups() {
    let mut s = sb();
    let place = "plumProAPI.mutation.placeOrder";
    let out = api(&mut s, AT, place, order("PO-1"), T0);
    assert_eq!(out.status, 200);
    let d = &out.body["data"]["placeOrder"]["data"];
    assert_eq!(out.body["data"]["placeOrder"]["status"], 1);
    assert_eq!(d["orderId"], 100_001);
    assert_eq!(d["amountCharged"], 100);
    assert_eq!(d["vouchers"].as_array().unwrap().len(), 2);
    assert!(s.take_dirty());

    let dup = api(&mut s, AT, place, order("PO-1"), T0);
    assert_eq!(
        dup.body,
        json!({"code":409,"errorId":"PLE10043","errorInfo":"Duplicate poNumber","error":"Order with this poNumber already exists"})
    );
    assert_eq!(dup.status, 409);

    let bal = api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), T0);
    assert_eq!(bal.body["data"]["getBalance"]["data"]["value"], 249_900);

    let det = api(
        &mut s,
        AT,
        "plumProAPI.mutation.getOrderDetails",
        json!({"poNumber":"PO-1","orderId":null,"sendMailToReceiver":1}),
        T0,
    );
    assert_eq!(det.status, 200);
    let dd = &det.body["data"]["getOrderDetails"]["data"];
    assert_eq!(dd["orderId"], 100_001);
    assert_eq!(dd["vouchers"], d["vouchers"]);
    assert_eq!(dd["orderDate"], "2024-06-10 06:13:20");
    assert_eq!(s.counters_json(0, 0)["resend_mails"], 1);
    // Where the recipient is named (order_recipient): at the top by default;
    // on the lines, or nowhere, with the account's address at the top.
    assert_eq!((dd["email"].clone(), dd["voucherDetails"][0].get("receiverEmail")), (json!("r@example.com"), None));
    let details = |s: &mut Sandbox| {
        let body = json!({"poNumber":"PO-1","orderId":null,"sendMailToReceiver":0});
        api(s, AT, "plumProAPI.mutation.getOrderDetails", body, T0).body["data"]["getOrderDetails"]["data"].clone()
    };
    s.config.order_recipient = crate::config::OrderRecipient::Line;
    let line = details(&mut s);
    assert_eq!(line["email"], crate::orders::ACCOUNT_EMAIL);
    assert_eq!(line["voucherDetails"][0]["receiverEmail"], "r@example.com");
    assert_eq!(line["voucherDetails"][0]["receiverMobileNumber"], "+1-4705000000");
    s.config.order_recipient = crate::config::OrderRecipient::Account;
    let account = details(&mut s);
    assert_eq!((account["email"].clone(), account["voucherDetails"][0].get("receiverEmail")), (json!(crate::orders::ACCOUNT_EMAIL), None));
    s.config.order_recipient = crate::config::OrderRecipient::Top;
    let miss = api(
        &mut s,
        AT,
        "plumProAPI.mutation.getOrderDetails",
        json!({"poNumber":"","orderId":"42","sendMailToReceiver":0}),
        T0,
    );
    assert_eq!(
        (miss.status, miss.body["errorId"].clone()),
        (404, json!("PLE10016"))
    );

    let hist = api(
        &mut s,
        AT,
        "plumProAPI.mutation.getOrderHistory",
        json!({"startDate":"2024-06-10","endDate":"2024-06-10","limit":10,"page":1}),
        T0,
    );
    assert_eq!(
        hist.body["data"]["getOrderHistory"]["data"][0]["poNumber"],
        "PO-1"
    );
    let hist_bad = api(
        &mut s,
        AT,
        "plumProAPI.mutation.getOrderHistory",
        json!({"startDate":"10-06-2024","endDate":"2024-06-10"}),
        T0,
    );
    assert_eq!(
        (hist_bad.status, hist_bad.body["errorId"].clone()),
        (400, json!("PLE10032"))
    );

    // paymentHistory: input at top-level data.data, answer under getPaymentReport.
    let body = json!({"query":"plumProAPI.mutation.paymentHistory","tag":"plumProAPI",
                      "data":{"data":{"startDate":"2024-06-01","endDate":"2024-06-30","limit":10,"page":1}}});
    let pay = s.api(
        Some(&format!("Bearer {AT}")),
        body.to_string().as_bytes(),
        T0,
    );
    let rows = pay.body["data"]["getPaymentReport"]["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["closing_balance"], 249_900);
    assert_eq!(rows[1]["transaction_status"], "Complete");

    // Over-balance.
    s.patch_config(br#"{"initial_balance":150}"#).unwrap();
    let poor = api(&mut s, AT, place, order("PO-2"), T0);
    assert_eq!(
        (poor.status, poor.body["errorId"].clone()),
        (422, json!("PLE10010"))
    );
    assert_eq!(s.counters_json(0, 0)["orders"], 1);
}

/// A delayed product's order, through the API: placed and charged, pending,
/// no voucher in placeOrder's or getOrderDetails' answer, and nothing to
/// mail again; a realtime order's resend is counted (above). Once the
/// sandbox's clock (moved by `clock_offset_secs`) passes the product's
/// turnaround, it is delivered: its vouchers in getOrderDetails, delivered
/// in getOrderHistory, and a resend mails them.
#[test]
fn a_delayed_order_answers_no_vouchers_until_its_turnaround() {
    let mut s = sb();
    let delayed = crate::catalog::catalog()
        .products
        .iter()
        .find(|p| p.delayed && p.fixed && !p.phone_mandatory && p.currency.code == "USD")
        .unwrap();
    let mut o = order("PO-LATER");
    o["productId"] = json!(delayed.id);
    o["denomination"] = json!(delayed.denoms[0]);
    let out = api(&mut s, AT, "plumProAPI.mutation.placeOrder", o, T0);
    assert_eq!(out.status, 200, "{}", out.body);
    let d = &out.body["data"]["placeOrder"]["data"];
    assert_eq!((d["deliveryStatus"].clone(), d["vouchers"].clone()), (json!("pending"), json!([])));
    assert_eq!(d["voucherDetails"][0]["quantity"], 2);
    assert_eq!(s.counters_json(0, 0)["orders"], 1);
    let det = api(
        &mut s,
        AT,
        "plumProAPI.mutation.getOrderDetails",
        json!({"poNumber":"PO-LATER","orderId":null,"sendMailToReceiver":1}),
        T0,
    );
    assert_eq!(det.status, 200);
    let dd = &det.body["data"]["getOrderDetails"]["data"];
    assert_eq!((dd["deliveryStatus"].clone(), dd["vouchers"].clone()), (json!("pending"), json!([])));
    assert_eq!(dd["voucherDetails"][0]["productStatus"], "pending");
    assert_eq!(s.counters_json(0, 0)["resend_mails"], 0, "no voucher to mail again");

    // Its tatInDays is "1 - 7": still pending on day 6, delivered on day 7.
    assert_eq!(delayed.to_json("", false)["tatInDays"], "1 - 7");
    let details = |s: &mut Sandbox| {
        let det = api(s, AT, "plumProAPI.mutation.getOrderDetails", json!({"poNumber":"PO-LATER","orderId":null,"sendMailToReceiver":1}), T0);
        assert_eq!(det.status, 200, "{}", det.body);
        det.body["data"]["getOrderDetails"]["data"].clone()
    };
    let history = |s: &mut Sandbox| {
        let h = api(s, AT, "plumProAPI.mutation.getOrderHistory", json!({"startDate":"2024-06-10","endDate":"2024-06-10"}), T0);
        h.body["data"]["getOrderHistory"]["data"][0].clone()
    };
    s.patch_config(format!(r#"{{"clock_offset_secs":{}}}"#, 7 * 86_400 - 1).as_bytes()).unwrap();
    let dd = details(&mut s);
    assert_eq!((dd["deliveryStatus"].clone(), dd["vouchers"].clone()), (json!("pending"), json!([])), "a second before day 7");
    assert_eq!(history(&mut s)["deliveryStatus"], "pending");
    assert_eq!(s.counters_json(0, 0)["resend_mails"], 0);
    s.patch_config(format!(r#"{{"clock_offset_secs":{}}}"#, 7 * 86_400).as_bytes()).unwrap();
    let dd = details(&mut s);
    assert_eq!(dd["deliveryStatus"], "delivered");
    assert_eq!(dd["voucherDetails"][0]["productStatus"], "delivered");
    let codes: Vec<&str> = dd["vouchers"].as_array().unwrap().iter().map(|v| v["voucherCode"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), 2);
    assert!(codes.iter().all(|c| c.starts_with("SBX-")), "{codes:?}");
    assert_eq!(s.counters_json(0, 0)["resend_mails"], 1, "its vouchers mailed again");
    let row = history(&mut s);
    assert_eq!((row["poNumber"].clone(), row["deliveryStatus"].clone()), (json!("PO-LATER"), json!("delivered")));
    assert_eq!(row["products"][0]["orderProductStatus"], "delivered");
}

/// A failed or cancelled order delivered nothing: its answers list no
/// voucher and a resend mails none.
#[test]
fn a_failed_or_cancelled_order_answers_and_mails_no_voucher() {
    let mut s = sb();
    let place = "plumProAPI.mutation.placeOrder";
    for (po, status) in [("PO-F", "failed"), ("PO-C", "cancelled"), ("PO-L", "cancelled_lines")] {
        s.set_order_fault(format!(r#"{{"mode":"hang_after_create","hang_ms":1,"order_status":"{status}"}}"#).as_bytes()).unwrap();
        let out = api(&mut s, AT, place, order(po), T0);
        assert_eq!(out.body["data"]["placeOrder"]["data"]["vouchers"], json!([]), "{status}");
        let det = api(&mut s, AT, "plumProAPI.mutation.getOrderDetails", json!({"poNumber":po,"orderId":null,"sendMailToReceiver":1}), T0);
        assert_eq!(det.body["data"]["getOrderDetails"]["data"]["vouchers"], json!([]), "{status}");
    }
    assert_eq!(s.counters_json(0, 0)["resend_mails"], 0, "nothing to mail again");
}

/// The envelope and the fields GitBook stars: what Xoxoday documents is
/// accepted (PHP's `[]` for `{}`, numbers as strings), what it does not is
/// a 400, never silently defaulted.
#[test]
fn api_takes_exactly_the_documented_envelopes() {
    let mut s = sb();
    let call = |s: &mut Sandbox, body: Value| s.api(Some(&format!("Bearer {AT}")), body.to_string().as_bytes(), T0);
    let q = |op: &str| format!("plumProAPI.{op}");
    // getBalance with PHP's empty array.
    assert_eq!(call(&mut s, json!({"query": q("query.getBalance"), "tag": "plumProAPI", "variables": {"data": []}})).status, 200);
    for (body, what) in [
        (json!({"query": q("query.getBalance"), "tag": "plumProAPI"}), "no variables"),
        (json!({"query": q("query.getBalance"), "variables": {}}), "no variables.data"),
        (json!({"query": q("query.getBalance"), "variables": {"data": null}}), "null data"),
        (json!({"query": q("query.getBalance"), "variables": {"data": [1]}}), "a non-empty array"),
        (json!({"query": q("query.getBalance"), "variables": {"data": "x"}}), "a string"),
        // paymentHistory's data is in data.data.
        (json!({"query": q("mutation.paymentHistory"), "variables": {"data": {"startDate": "2024-01-01", "endDate": "2024-01-02"}}}), "paymentHistory in variables"),
        // The MCP client's name for the report is not a documented query.
        (json!({"query": q("mutation.getPaymentReport"), "data": {"data": {"startDate": "2024-01-01", "endDate": "2024-01-02"}}}), "getPaymentReport"),
    ] {
        let out = call(&mut s, body);
        assert_eq!((out.status, out.body["errorId"].clone()), (400, json!("PLE10001")), "{what}");
    }
    // placeOrder: the notify flags GitBook stars are required.
    let place = "plumProAPI.mutation.placeOrder";
    let mut o = order("PO-FLAGS");
    o.as_object_mut().unwrap().remove("notifyAdminEmail");
    let out = api(&mut s, AT, place, o, T0);
    assert_eq!((out.status, out.body["errorId"].clone()), (400, json!("PLE10001")));
    assert!(out.body["error"].as_str().unwrap().contains("notifyAdminEmail"));
    // ... and string numbers are Xoxoday's to accept.
    let strings = json!({"productId":"10100","quantity":"1","denomination":"25","poNumber":"PO-STR","email":"","contact":"",
                         "tag":"t","notifyReceiverEmail":"0","notifyAdminEmail":"0"});
    let out = api(&mut s, AT, place, strings, T0);
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.body["data"]["placeOrder"]["data"]["quantity"], 1);
    // getOrderDetails: sendMailToReceiver and orderId are required.
    let det = "plumProAPI.mutation.getOrderDetails";
    for data in [json!({"poNumber":"PO-STR","orderId":null}), json!({"poNumber":"PO-STR","sendMailToReceiver":0}),
                 json!({"orderId":"100001","sendMailToReceiver":true})] {
        let out = api(&mut s, AT, det, data.clone(), T0);
        assert_eq!((out.status, out.body["errorId"].clone()), (400, json!("PLE10001")), "{data}");
    }
    for data in [json!({"poNumber":"PO-STR","orderId":null,"sendMailToReceiver":0}),
                 json!({"orderId":"100001","sendMailToReceiver":"0"}), json!({"orderId":100001,"poNumber":"","sendMailToReceiver":1})] {
        assert_eq!(api(&mut s, AT, det, data.clone(), T0).status, 200, "{data}");
    }
}

#[test]
fn order_faults() {
    let mut s = sb();
    let place = "plumProAPI.mutation.placeOrder";
    s.set_order_fault(br#"{"mode":"fail_before_create","status":500}"#)
        .unwrap();
    // An invalid order does not consume the fault.
    assert_eq!(
        api(&mut s, AT, place, json!({"productId":10100}), T0).status,
        400
    );
    let before = api(&mut s, AT, place, order("PO-A"), T0);
    assert_eq!(
        (before.status, before.body["errorId"].clone()),
        (500, json!("PLE10035"))
    );
    let det = |s: &mut Sandbox, po: &str| {
        api(
            s,
            AT,
            "plumProAPI.mutation.getOrderDetails",
            json!({"poNumber":po,"orderId":"0","sendMailToReceiver":0}),
            T0,
        )
        .status
    };
    assert_eq!(det(&mut s, "PO-A"), 404, "not created");

    s.set_order_fault(br#"{"mode":"fail_after_create"}"#)
        .unwrap();
    let after = api(&mut s, AT, place, order("PO-B"), T0);
    assert_eq!(
        (after.status, after.body["errorId"].clone()),
        (502, json!("PLE10035"))
    );
    assert_eq!(det(&mut s, "PO-B"), 200, "created despite the error");
    assert_eq!(
        api(&mut s, AT, place, order("PO-B"), T0).status,
        409,
        "retry is a duplicate"
    );

    s.set_order_fault(br#"{"mode":"hang_after_create","hang_ms":5000}"#)
        .unwrap();
    let hang = api(&mut s, AT, place, order("PO-C"), T0);
    assert_eq!((hang.status, hang.delay_after_ms), (200, 5000));
    assert_eq!(det(&mut s, "PO-C"), 200);
    assert_eq!(
        api(&mut s, AT, place, order("PO-D"), T0).delay_after_ms,
        0,
        "count exhausted"
    );
}

/// An order fault takes `error_id` only in the modes that answer it
/// (`fail_*`) and `order_status` only in those that make an order
/// (`fail_after_create`, `hang_after_create`); elsewhere either is refused
/// (400, nothing changes), as other misplaced fields are, rather than taken
/// and ignored, or, for `error_id`, changing the mode's default status.
#[test]
fn order_fault_fields_only_where_the_mode_uses_them() {
    let mut s = sb();
    s.set_order_fault(br#"{"mode":"fail_before_create","error_id":"PLE10010"}"#).unwrap();
    for bad in [
        &br#"{"mode":"duplicate","error_id":"PLE10035"}"#[..],
        br#"{"mode":"hang_after_create","error_id":"PLE10011"}"#,
        br#"{"mode":"status_zero","error_id":"PLE10011"}"#,
        br#"{"mode":"duplicate","order_status":"failed"}"#,
        br#"{"mode":"status_zero","order_status":"cancelled"}"#,
        br#"{"mode":"fail_before_create","order_status":"failed"}"#,
    ] {
        assert!(s.set_order_fault(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        assert_eq!(s.faults_json()["order"]["error_id"], "PLE10010", "unchanged: {}", String::from_utf8_lossy(bad));
    }
    s.set_order_fault(br#"{"mode":"duplicate"}"#).unwrap();
    assert_eq!(s.faults_json()["order"]["status"], 409);
    for good in [
        &br#"{"mode":"fail_after_create","error_id":"PLE10011","order_status":"failed"}"#[..],
        br#"{"mode":"hang_after_create","order_status":"cancelled","hang_ms":0}"#,
    ] {
        assert!(s.set_order_fault(good).is_ok(), "{}", String::from_utf8_lossy(good));
    }
}

#[test]
fn the_duplicate_po_number_answer_has_each_reading() {
    let mut s = sb();
    let place = "plumProAPI.mutation.placeOrder";
    assert_eq!(api(&mut s, AT, place, order("PO-D"), T0).status, 200);
    let again = api(&mut s, AT, place, order("PO-D"), T0);
    assert_eq!((again.status, again.body["errorId"].clone()), (409, json!("PLE10043")));
    assert!(s.patch_config(br#"{"duplicate_answer":"nope"}"#).is_err());
    assert_eq!(s.patch_config(br#"{"duplicate_answer":"validation"}"#).unwrap()["duplicate_answer"], "validation");
    let again = api(&mut s, AT, place, order("PO-D"), T0);
    assert_eq!((again.status, again.body["errorId"].clone()), (400, json!("PLE10001")));
    let words = again.body.to_string().to_ascii_lowercase();
    assert!(!words.contains("duplicate") && !words.contains("already"), "{words}");
    // Worded: the same status and errorId, words saying why; the
    // duplicate fault (no order held) answers it too.
    s.patch_config(br#"{"duplicate_answer":"worded"}"#).unwrap();
    let again = api(&mut s, AT, place, order("PO-D"), T0);
    assert_eq!((again.status, again.body["errorId"].clone(), again.body["error"].clone()), (400, json!("PLE10001"), json!("poNumber already exists")));
    s.set_order_fault(br#"{"mode":"duplicate"}"#).unwrap();
    let ghost = api(&mut s, AT, place, order("PO-GHOST"), T0);
    assert_eq!((ghost.status, ghost.body["error"].clone()), (400, json!("poNumber already exists")));
    assert_eq!(s.counters_json(0, 0)["orders"], 1);
}

#[test]
fn proxy_faults_answer_a_page_before_or_after_xoxoday() {
    let mut s = sb();
    let place = "plumProAPI.mutation.placeOrder";
    let det = |s: &mut Sandbox, po: &str| {
        api(s, AT, "plumProAPI.mutation.getOrderDetails", json!({"poNumber":po,"orderId":"0","sendMailToReceiver":0}), T0).status
    };
    assert!(s.set_proxy_fault(br#"{"mode":"sideways"}"#).is_err());
    assert!(s.set_proxy_fault(br#"{"mode":"before","status":199}"#).is_err());
    assert!(s.set_proxy_fault(br#"{"mode":"before","op":"nope"}"#).is_err());
    // Only the named operation's calls are taken.
    s.set_proxy_fault(br#"{"mode":"before","op":"placeOrder"}"#).unwrap();
    assert!(!api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), T0).page);
    let before = api(&mut s, AT, place, order("PO-P1"), T0);
    assert_eq!((before.status, before.page, before.op), (502, true, Some("placeOrder")));
    assert_eq!(det(&mut s, "PO-P1"), 404, "never reached Xoxoday");
    assert_eq!(s.counters_json(0, 0)["api_calls"]["placeOrder"], 0, "not counted as a call Xoxoday saw");
    // After: the order is made, the answer is the page.
    s.set_proxy_fault(br#"{"mode":"after","status":200,"count":2}"#).unwrap();
    let after = api(&mut s, AT, place, order("PO-P2"), T0);
    assert_eq!((after.status, after.page), (200, true));
    assert_eq!(s.counters_json(0, 0)["orders"], 1);
    // The second page goes to the getOrderDetails call; then plain answers.
    assert!(api(&mut s, AT, "plumProAPI.mutation.getOrderDetails", json!({"poNumber":"PO-P2","orderId":"0","sendMailToReceiver":0}), T0).page);
    assert_eq!(det(&mut s, "PO-P2"), 200, "made despite the page");
    assert_eq!(s.counters_json(0, 0)["proxy_pages"], 3);
    assert_eq!(s.faults_json()["proxy"], Value::Null, "count exhausted");
}

/// The layer in front of Xoxoday covers its token routes too (`route`):
/// `before`, the refresh rotates nothing and the check checks nothing;
/// `after`, Xoxoday did its part and the caller gets the page. A fault on
/// one route is not taken by another's calls.
#[test]
fn proxy_faults_stand_in_front_of_the_token_routes_too() {
    let mut s = sb();
    let counted = |s: &Sandbox| {
        let c = s.counters_json(0, 0);
        [&c["refresh_calls"], &c["refresh_success"], &c["refresh_failures"], &c["validate_calls"], &c["proxy_pages"]].map(|v| v.as_u64().unwrap())
    };
    assert!(s.set_proxy_fault(br#"{"mode":"before","route":"nowhere"}"#).is_err());
    assert!(s.set_proxy_fault(br#"{"mode":"before","route":"refresh","op":"getBalance"}"#).is_err(), "op is the api route's");
    assert_eq!(s.faults_json()["proxy"], Value::Null, "a refused fault sets nothing");
    s.set_proxy_fault(br#"{"mode":"before","op":"getBalance"}"#).unwrap();
    assert_eq!(s.faults_json()["proxy"]["route"], "api", "the api route by default");

    // Before, on the refresh route: a 403 page, the token untouched.
    s.set_proxy_fault(br#"{"mode":"before","route":"refresh","status":403,"count":2}"#).unwrap();
    assert!(!api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), T0).page, "not the api route's");
    assert_eq!(check(&mut s, Some(&format!("Bearer {AT}")), T0).0, 200, "nor the check's");
    assert_eq!(s.refresh(&refresh_body(RT), T0), RefreshOutcome::Page { status: 403, delay_ms: 0 });
    assert_eq!(s.refresh(&refresh_body("never-issued"), T0), RefreshOutcome::Page { status: 403, delay_ms: 0 }, "any call");
    assert_eq!(counted(&s), [0, 0, 0, 1, 2], "never reached Xoxoday");
    assert_eq!(s.token_stats(T0)["spent_refresh_tokens_used"], 0);
    let (status, body) = refresh(&mut s, RT, T0);
    assert_eq!(status, 200, "nothing was rotated: the token works once the page is gone");

    // After, on the refresh route: rotated upstream, the page answered.
    let rt = tok(&body, "refresh_token");
    s.set_proxy_fault(br#"{"mode":"after","route":"refresh"}"#).unwrap();
    assert_eq!(s.refresh(&refresh_body(&rt), T0), RefreshOutcome::Page { status: 502, delay_ms: 0 });
    assert_eq!(refresh(&mut s, &rt, T0).0, 400, "strict: the token was spent behind the page");
    assert_eq!(counted(&s), [3, 1, 2, 1, 3]);

    // The token check: before, nothing checked; after, checked, the page answered.
    s.set_proxy_fault(br#"{"mode":"before","route":"validate","status":503}"#).unwrap();
    assert_eq!(refresh(&mut s, "x", T0).0, 400, "not the refresh route's");
    assert_eq!(s.validate_token(Some(&format!("Bearer {AT}")), T0), RefreshOutcome::Page { status: 503, delay_ms: 0 });
    s.set_proxy_fault(br#"{"mode":"after","route":"validate","status":200}"#).unwrap();
    assert_eq!(s.validate_token(Some(&format!("Bearer {AT}")), T0), RefreshOutcome::Page { status: 200, delay_ms: 0 });
    assert_eq!(counted(&s), [4, 1, 3, 2, 5], "the check before the page was not counted, the one after was");
    assert_eq!(check(&mut s, Some(&format!("Bearer {AT}")), T0).0, 200, "count exhausted");

    // An answer with a delay keeps it under the page.
    let fresh = s.issue_tokens(b"", T0).unwrap();
    s.set_refresh_fault(br#"{"mode":"rotate_then_delay","hang_ms":700}"#).unwrap();
    s.set_proxy_fault(br#"{"mode":"after","route":"refresh"}"#).unwrap();
    assert_eq!(s.refresh(&refresh_body(&tok(&fresh, "refresh_token")), T0), RefreshOutcome::Page { status: 502, delay_ms: 700 });
    assert_eq!(counted(&s), [5, 1, 4, 3, 6], "a failure, never a success");
}

/// `validate_rate_limited` counts the token checks answered with the
/// rate limit, as `refresh_rate_limited` counts refreshes: a check whose
/// rate-limit answer a proxy `after` page replaced was answered with the
/// page, not with it (the penalty it started still runs).
#[test]
fn a_rate_limit_answer_behind_a_proxy_page_is_not_counted_as_given() {
    let mut s = sb();
    let bearer = format!("Bearer {AT}");
    let counted = |s: &Sandbox| {
        let c = s.counters_json(0, 0);
        [&c["validate_rate_limited"], &c["refresh_rate_limited"], &c["proxy_pages"]].map(|v| v.as_u64().unwrap())
    };
    s.set_validate_fault(br#"{"mode":"rate_limited","penalty_seconds":30}"#).unwrap();
    s.set_proxy_fault(br#"{"mode":"after","route":"validate"}"#).unwrap();
    assert_eq!(s.validate_token(Some(&bearer), T0), RefreshOutcome::Page { status: 502, delay_ms: 0 });
    assert_eq!(counted(&s), [0, 0, 1], "the page was the answer");
    assert!(matches!(s.validate_token(Some(&bearer), T0 + SEC), RefreshOutcome::Limited { .. }), "the penalty started behind the page");
    assert_eq!(counted(&s), [1, 0, 1]);
    // The refresh route, the same way.
    s.set_refresh_fault(br#"{"mode":"rate_limited","penalty_seconds":30}"#).unwrap();
    s.set_proxy_fault(br#"{"mode":"after","route":"refresh"}"#).unwrap();
    assert!(matches!(s.refresh(&refresh_body(RT), T0), RefreshOutcome::Page { .. }));
    assert!(matches!(s.refresh(&refresh_body(RT), T0 + SEC), RefreshOutcome::Limited { .. }));
    assert_eq!(counted(&s), [1, 1, 2]);
}

#[test]
fn the_status_zero_fault_is_xoxoday_s_failure_flag() {
    let mut s = sb();
    assert!(s.set_order_fault(br#"{"mode":"status_zero","status":502}"#).is_err(), "always a 200");
    s.set_order_fault(br#"{"mode":"status_zero"}"#).unwrap();
    let a = api(&mut s, AT, "plumProAPI.mutation.placeOrder", order("PO-Z"), T0);
    assert_eq!((a.status, a.body["data"]["placeOrder"]["status"].clone()), (200, json!(0)));
    assert_eq!(s.counters_json(0, 0)["orders"], 0, "no order made");
    assert_eq!(api(&mut s, AT, "plumProAPI.mutation.placeOrder", order("PO-Z"), T0).status, 200, "then placed");
}

#[test]
fn order_faults_with_xoxoday_s_other_answers() {
    let mut s = sb();
    let place = "plumProAPI.mutation.placeOrder";
    let det = |s: &mut Sandbox, po: &str| {
        api(s, AT, "plumProAPI.mutation.getOrderDetails", json!({"poNumber":po,"orderId":null,"sendMailToReceiver":0}), T0)
    };
    // Made, then a 422 "failed to confirm"; the order failed.
    s.set_order_fault(br#"{"mode":"fail_after_create","error_id":"PLE10011","order_status":"failed"}"#).unwrap();
    let out = api(&mut s, AT, place, order("PO-422"), T0);
    assert_eq!(out.body, json!({"code":422,"errorId":"PLE10011","errorInfo":"Failed to confirm order","error":"Failed to confirm order"}));
    assert_eq!(out.status, 422);
    let found = det(&mut s, "PO-422");
    assert_eq!(found.status, 200);
    assert_eq!(found.body["data"]["getOrderDetails"]["data"]["orderStatus"], "failed");
    assert_eq!(found.body["data"]["getOrderDetails"]["data"]["deliveryStatus"], "failed");
    // Made and cancelled.
    s.set_order_fault(br#"{"mode":"hang_after_create","hang_ms":1,"order_status":"cancelled"}"#).unwrap();
    let out = api(&mut s, AT, place, order("PO-CXL"), T0);
    assert_eq!(out.body["data"]["placeOrder"]["data"]["orderStatus"], "cancelled");
    let d = det(&mut s, "PO-CXL").body["data"]["getOrderDetails"]["data"].clone();
    assert_eq!((d["deliveryStatus"].clone(), d["voucherDetails"][0]["cancelledQuantity"].clone()), (json!("canceled"), json!(2)), "every voucher cancelled");
    // Cancelled as the docs describe it: by cancelledQuantity alone.
    s.set_order_fault(br#"{"mode":"hang_after_create","hang_ms":1,"order_status":"cancelled_lines"}"#).unwrap();
    api(&mut s, AT, place, order("PO-CXL2"), T0);
    let d = det(&mut s, "PO-CXL2").body["data"]["getOrderDetails"]["data"].clone();
    assert_eq!(
        (d["orderStatus"].clone(), d["deliveryStatus"].clone(), d["voucherDetails"][0]["cancelledQuantity"].clone()),
        (json!("complete"), json!("delivered"), json!(2))
    );
    // A 422 with no order made.
    s.set_order_fault(br#"{"mode":"fail_before_create","error_id":"PLE10012"}"#).unwrap();
    let out = api(&mut s, AT, place, order("PO-NONE"), T0);
    assert_eq!((out.status, out.body["errorId"].clone()), (422, json!("PLE10012")));
    assert_eq!(det(&mut s, "PO-NONE").status, 404);
    // Xoxoday's duplicate answer for a poNumber it has no order for.
    s.set_order_fault(br#"{"mode":"duplicate"}"#).unwrap();
    let orders = s.counters.orders;
    let out = api(&mut s, AT, place, order("PO-DUP"), T0);
    assert_eq!(out.body, json!({"code":409,"errorId":"PLE10043","errorInfo":"Duplicate poNumber","error":"Order with this poNumber already exists"}));
    assert_eq!((det(&mut s, "PO-DUP").status, s.counters.orders), (404, orders));
    // Orders made without a fault are complete.
    assert_eq!(api(&mut s, AT, place, order("PO-OK"), T0).body["data"]["placeOrder"]["data"]["orderStatus"], "complete");
}

#[test]
fn details_faults_hide_an_order_or_fail() {
    let mut s = sb();
    assert_eq!(api(&mut s, AT, "plumProAPI.mutation.placeOrder", order("PO-LAG"), T0).status, 200);
    let det = |s: &mut Sandbox| api(s, AT, "plumProAPI.mutation.getOrderDetails", json!({"poNumber":"PO-LAG","orderId":null,"sendMailToReceiver":0}), T0);
    s.set_details_fault(br#"{"mode":"not_found","count":2}"#).unwrap();
    // An invalid request does not use the fault.
    let bad = api(&mut s, AT, "plumProAPI.mutation.getOrderDetails", json!({"poNumber":"PO-LAG"}), T0);
    assert_eq!(bad.status, 400);
    for _ in 0..2 {
        let out = det(&mut s);
        assert_eq!((out.status, out.body["errorId"].clone()), (404, json!("PLE10016")));
    }
    assert_eq!(det(&mut s).status, 200, "then found");
    s.set_details_fault(br#"{"mode":"5xx"}"#).unwrap();
    let out = det(&mut s);
    // getOrderDetails' own server error (xoxoday-api.md §3.5), not placeOrder's.
    assert_eq!((out.status, out.body["errorId"].clone()), (502, json!("PLE10034")));
    assert_eq!(det(&mut s).status, 200);
}

/// A details fault applies to valid getOrderDetails calls only (README:
/// "the next `count` valid getOrderDetails calls"): a lookup without
/// orderId (GitBook marks it required), with an orderId that is no integer,
/// or naming neither a poNumber nor an orderId is a 400 PLE10001 and leaves
/// the fault for the next valid call. A valid lookup of an order that does
/// not exist still meets it.
#[test]
fn a_malformed_lookup_does_not_use_a_details_fault() {
    let mut s = sb();
    assert_eq!(api(&mut s, AT, "plumProAPI.mutation.placeOrder", order("PO-D1"), T0).status, 200);
    let det = |s: &mut Sandbox, data: Value| api(s, AT, "plumProAPI.mutation.getOrderDetails", data, T0);
    for mode in [r#"{"mode":"5xx"}"#, r#"{"mode":"not_found"}"#, r#"{"mode":"PLE10021","po_number":"PO-D1"}"#] {
        s.set_details_fault(mode.as_bytes()).unwrap();
        for bad in [
            json!({"poNumber":"PO-D1","sendMailToReceiver":0}),
            json!({"poNumber":"PO-D1","orderId":"abc","sendMailToReceiver":0}),
            json!({"poNumber":"PO-D1","orderId":true,"sendMailToReceiver":0}),
            json!({"poNumber":"","orderId":null,"sendMailToReceiver":0}),
            json!({"poNumber":"PO-D1","orderId":0}),
        ] {
            let out = det(&mut s, bad.clone());
            assert_eq!((out.status, out.body["errorId"].clone()), (400, json!("PLE10001")), "{mode} {bad}");
        }
        assert!(!s.faults_json()["details"].is_null(), "{mode}: the fault is still set");
        let out = det(&mut s, json!({"poNumber":"PO-D1","orderId":null,"sendMailToReceiver":0}));
        assert_ne!(out.status, 200, "{mode}: the first valid call meets it");
        assert!(s.faults_json()["details"].is_null(), "{mode}: used");
        assert_eq!(det(&mut s, json!({"poNumber":"PO-D1","orderId":null,"sendMailToReceiver":0})).status, 200);
    }
    // A valid lookup of no order meets the fault too (its answer, not 404 PLE10016).
    s.set_details_fault(br#"{"mode":"5xx","status":503}"#).unwrap();
    let out = det(&mut s, json!({"orderId":999_999,"sendMailToReceiver":0}));
    assert_eq!((out.status, out.body["errorId"].clone()), (503, json!("PLE10034")));
    let out = det(&mut s, json!({"orderId":999_999,"sendMailToReceiver":0}));
    assert_eq!((out.status, out.body["errorId"].clone()), (404, json!("PLE10016")));
}

#[test]
fn a_daily_cap_answers_429_without_a_duration() {
    let mut s = sb();
    s.patch_config(br#"{"daily_limits":{"getVouchers":2}}"#).unwrap();
    let v = |s: &mut Sandbox, wall| api(s, AT, "plumProAPI.mutation.getVouchers", json!({"limit":1,"page":1}), wall);
    assert_eq!(v(&mut s, T0).status, 200);
    assert_eq!(v(&mut s, T0).status, 200);
    let capped = v(&mut s, T0);
    assert_eq!(capped.status, 429);
    assert_eq!(capped.body, json!({"code":429,"error":"rate_limit_exceeded","message":"Daily request limit of 2 reached for getVouchers API."}));
    assert_eq!(s.counters.daily_limited_calls, 1);
    // The next IST day (moving the clock) starts afresh.
    let next_day = (crate::ratelimit::ist_day(T0) + 1) * DAY - (5 * HOUR + 30 * 60 * SEC);
    assert_eq!(v(&mut s, next_day).status, 200);
}

#[test]
fn admin_token_actions() {
    let mut s = sb();
    let issued = s.issue_tokens(b"", T0).unwrap();
    let at = tok(&issued, "access_token");
    assert_eq!(issued["access_token_expiry"], T0 + 1_296_000 * SEC);
    assert_eq!(
        api(&mut s, &at, "plumProAPI.query.getBalance", json!({}), T0).status,
        200
    );
    assert_eq!(
        s.token_stats(T0),
        json!({"live_access_tokens":2,"live_refresh_tokens":2,"spent_refresh_tokens_used":0})
    );
    assert_eq!(s.expire_access(T0), 2);
    assert_eq!(
        api(&mut s, &at, "plumProAPI.query.getBalance", json!({}), T0).status,
        401
    );
    assert_eq!(s.revoke_refresh(T0), 2);
    assert_eq!(refresh(&mut s, &tok(&issued, "refresh_token"), T0).0, 400);
    assert_eq!(s.token_stats(T0)["live_refresh_tokens"], 0);

    // Access tokens expire by the clock too.
    let mut s = sb();
    assert_eq!(
        api(
            &mut s,
            AT,
            "plumProAPI.query.getBalance",
            json!({}),
            T0 + 15 * DAY - 1
        )
        .status,
        200
    );
    assert_eq!(
        api(
            &mut s,
            AT,
            "plumProAPI.query.getBalance",
            json!({}),
            T0 + 15 * DAY
        )
        .status,
        401
    );
}

#[test]
fn state_file_round_trip() {
    let mut s = sb();
    s.patch_config(br#"{"rotation":"grace","rate_limits":{"placeOrder":7}}"#)
        .unwrap();
    let (_, body) = refresh(&mut s, RT, T0);
    let (at, rt) = (tok(&body, "access_token"), tok(&body, "refresh_token"));
    assert_eq!(
        api(
            &mut s,
            AT,
            "plumProAPI.mutation.placeOrder",
            order("PO-1"),
            T0
        )
        .status,
        200
    );
    let bytes = s.snapshot().unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("refresh_calls"),
        "counters are not persisted"
    );

    let mut r = Sandbox::from_state(
        Credentials::default(),
        Sandbox::parse_state(&bytes).unwrap(),
    );
    assert_eq!(r.config, s.config);
    assert_eq!(
        api(&mut r, &at, "plumProAPI.query.getBalance", json!({}), T0).body["data"]["getBalance"]
            ["data"]["value"],
        249_900
    );
    assert_eq!(
        api(
            &mut r,
            AT,
            "plumProAPI.mutation.placeOrder",
            order("PO-1"),
            T0
        )
        .status,
        409
    );
    let next = api(
        &mut r,
        AT,
        "plumProAPI.mutation.placeOrder",
        order("PO-2"),
        T0,
    );
    assert_eq!(next.body["data"]["placeOrder"]["data"]["orderId"], 100_002);
    assert_eq!(
        refresh(&mut r, RT, T0 + HOUR).0,
        200,
        "grace token still in grace after reload"
    );
    assert_eq!(refresh(&mut r, &rt, T0 + HOUR).0, 200);
    assert_eq!(r.counters_json(0, 0)["refresh_calls"], 2);
    assert!(Sandbox::parse_state(b"{\"version\":1}").is_err());
}

#[test]
fn reset_restores_fresh_state() {
    let mut s = sb();
    s.set_asset_base("http://127.0.0.1:1".into());
    refresh(&mut s, RT, T0);
    api(
        &mut s,
        AT,
        "plumProAPI.mutation.placeOrder",
        order("PO-1"),
        T0,
    );
    s.patch_config(br#"{"rotation":"grace"}"#).unwrap();
    s.set_order_fault(br#"{"mode":"fail_before_create"}"#)
        .unwrap();
    s.reset(T0 + SEC);
    assert_eq!(s.config, Config::default());
    assert_eq!(
        refresh(&mut s, RT, T0 + 2 * SEC).0,
        200,
        "bootstrap pair valid again"
    );
    assert_eq!(s.faults_json(), json!({"refresh": null, "validate": null, "api": null, "order": null, "details": null, "proxy": null}));
    assert_eq!(s.counters_json(0, 0)["orders"], 0);
    let v = api(
        &mut s,
        AT,
        "plumProAPI.mutation.getVouchers",
        json!({"limit":1,"page":1}),
        T0 + 2 * SEC,
    );
    assert_eq!(
        v.body["data"]["getVouchers"]["data"][0]["imageUrl"],
        "http://127.0.0.1:1/sandbox-assets/10100.svg"
    );
    let out = api(
        &mut s,
        AT,
        "plumProAPI.mutation.placeOrder",
        order("PO-1"),
        T0 + 2 * SEC,
    );
    assert_eq!(out.body["data"]["placeOrder"]["data"]["orderId"], 100_001);
}

#[test]
fn never_panics_on_odd_input() {
    let mut s = sb();
    let odd: Vec<Value> = vec![
        json!(null),
        json!(1),
        json!("x"),
        json!([]),
        json!({"limit": 1e300, "page": -0.0}),
        json!({"productId": [], "quantity": {}, "denomination": "1e999", "poNumber": 5}),
        json!({"filters": "country", "sort": 3, "limit": "9999999999999999999999", "page": 1}),
        json!({"filters": [{"key": "price", "value": "abc"}], "limit": 1, "page": 1}),
        json!({"startDate": 20240101, "endDate": null, "orderId": -5, "poNumber": {}}),
    ];
    for op in OPS {
        let query = match op {
            "getBalance" => "plumProAPI.query.getBalance".to_owned(),
            _ => format!("plumProAPI.mutation.{op}"),
        };
        for data in &odd {
            let out = api(&mut s, AT, &query, data.clone(), T0);
            assert!(
                out.status == 200 || (400..500).contains(&out.status),
                "{op} {data} → {}",
                out.status
            );
            let top = json!({"query": query, "data": data, "variables": data});
            let _ = s.api(
                Some(&format!("Bearer {AT}")),
                top.to_string().as_bytes(),
                T0,
            );
        }
    }
    for raw in [
        &b""[..],
        b"\xff\xfe",
        b"null",
        b"{\"query\":5}",
        b"{\"query\":\"plumProAPI.query.getBalance\",\"variables\":7}",
    ] {
        let _ = s.api(Some(&format!("Bearer {AT}")), raw, T0);
        let _ = s.refresh(raw, T0);
        assert!(s.patch_config(raw).is_err() || raw.is_empty());
        assert!(s.set_refresh_fault(raw).is_err());
        assert!(s.set_order_fault(raw).is_err());
    }
}

#[test]
fn terms_are_padded_to_the_configured_length_only_when_asked() {
    let page = json!([{ "productId": 1, "termsAndConditionsInstructions": "<ul></ul>" }, { "productId": 2 }]);
    assert_eq!(pad_terms(page.clone(), 0), page);
    let padded = pad_terms(page, 5_000);
    let t = padded[0]["termsAndConditionsInstructions"].as_str().unwrap();
    assert!(t.starts_with("<ul></ul><li>") && t.len() <= 5_000 && t.len() > 4_900, "{}", t.len());
    assert!(padded[1].get("termsAndConditionsInstructions").is_none());
}

/// getFilters' "currency" group is the sandbox's own (xoxoday-api.md §3.1
/// names "Country" and "voucher_category"): there by default, and gone
/// with `currency_filter_group: false`, asked for by name or not.
#[test]
fn currency_filter_group_can_be_left_out() {
    let mut s = sb();
    let groups = |s: &mut Sandbox, group: &str| -> Vec<String> {
        let data = json!({"filterGroupCode": group, "includeFilters": "", "excludeFilters": ""});
        let out = api(s, AT, "plumProAPI.mutation.getFilters", data, T0);
        assert_eq!(out.status, 200, "{}", out.body);
        out.body["data"]["getFilters"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["filterGroupCode"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(groups(&mut s, ""), ["country", "voucher_category", "currency"]);
    assert_eq!(groups(&mut s, "currency"), ["currency"]);
    s.patch_config(br#"{"currency_filter_group":false}"#).unwrap();
    assert_eq!(groups(&mut s, ""), ["country", "voucher_category"]);
    assert!(groups(&mut s, "currency").is_empty());
    assert_eq!(groups(&mut s, "Country"), ["country"]);
    s.patch_config(br#"{"currency_filter_group":true}"#).unwrap();
    assert_eq!(groups(&mut s, ""), ["country", "voucher_category", "currency"]);
}

/// Which day an order is dated by (`order_day_zone`): an order placed at
/// 20:00 UTC is dated that day in UTC, the default, and the next in IST
/// (01:30), in getOrderHistory's date range and its `orderDate`, in
/// getOrderDetails' `orderDate`, and in paymentHistory's range and `date`.
#[test]
fn orders_are_dated_in_the_configured_zone() {
    let mut s = sb();
    let at = 1_717_977_600_000 + 20 * HOUR; // 2024-06-10 20:00 UTC
    assert_eq!(api(&mut s, AT, "plumProAPI.mutation.placeOrder", order("PO-20H"), at).status, 200);
    let history = |s: &mut Sandbox, day: &str| -> Vec<Value> {
        let range = json!({"startDate": day, "endDate": day, "limit": 10, "page": 1});
        let out = api(s, AT, "plumProAPI.mutation.getOrderHistory", range, at);
        assert_eq!(out.status, 200, "{}", out.body);
        out.body["data"]["getOrderHistory"]["data"].as_array().unwrap().clone()
    };
    let payments = |s: &mut Sandbox, day: &str| -> Vec<Value> {
        let body = json!({"query":"plumProAPI.mutation.paymentHistory","tag":"plumProAPI",
                          "data":{"data":{"startDate": day, "endDate": day, "limit": 10, "page": 1}}});
        let out = s.api(Some(&format!("Bearer {AT}")), body.to_string().as_bytes(), at);
        assert_eq!(out.status, 200, "{}", out.body);
        let rows = out.body["data"]["getPaymentReport"]["data"].as_array().unwrap().clone();
        rows.into_iter().filter(|r| r["reference_id"] == "100001").collect()
    };
    for (zone, day, other, shown) in [
        ("utc", "2024-06-10", "2024-06-11", "2024-06-10 20:00:00"),
        ("ist", "2024-06-11", "2024-06-10", "2024-06-11 01:30:00"),
    ] {
        s.patch_config(format!(r#"{{"order_day_zone":"{zone}"}}"#).as_bytes()).unwrap();
        let rows = history(&mut s, day);
        assert_eq!(rows.len(), 1, "{zone}: dated {day}");
        assert_eq!((rows[0]["poNumber"].as_str(), rows[0]["orderDate"].as_str()), (Some("PO-20H"), Some(shown)), "{zone}");
        assert!(history(&mut s, other).is_empty(), "{zone}: not dated {other}");
        let data = json!({"poNumber":"PO-20H","orderId":null,"sendMailToReceiver":0});
        let details = api(&mut s, AT, "plumProAPI.mutation.getOrderDetails", data, at);
        assert_eq!(details.body["data"]["getOrderDetails"]["data"]["orderDate"], shown, "{zone}");
        assert_eq!(details.body["data"]["getOrderDetails"]["data"]["deliveryDate"], shown, "{zone}: delivered at once");
        let debit = payments(&mut s, day);
        assert_eq!(debit.len(), 1, "{zone}: its debit dated {day}");
        assert_eq!(debit[0]["date"], shown, "{zone}");
        assert!(payments(&mut s, other).is_empty(), "{zone}: no debit dated {other}");
    }
    assert!(s.patch_config(br#"{"order_day_zone":"cet"}"#).is_err());
    assert_eq!(s.config.order_day_zone, crate::config::OrderDayZone::Ist, "a refused zone changes nothing");
}

/// Every documented call's envelope carries `"tag": "plumProAPI"`
/// (xoxoday-api.md §2); a call without it, or with another tag, is
/// answered as usual and counted in `not_plum_tag`.
#[test]
fn calls_without_the_plum_tag_are_counted() {
    let mut s = sb();
    let auth = format!("Bearer {AT}");
    let send = |s: &mut Sandbox, body: Value| s.api(Some(&auth), body.to_string().as_bytes(), T0).status;
    let q = "plumProAPI.query.getBalance";
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200);
    let history = json!({"query":"plumProAPI.mutation.paymentHistory","tag":"plumProAPI",
                         "data":{"data":{"startDate":"2024-01-01","endDate":"2024-12-31"}}});
    assert_eq!(send(&mut s, history), 200);
    assert_eq!(s.counters_json(0, 0)["not_plum_tag"], 0, "tagged calls are not counted");
    for (body, status) in [
        (json!({"query": q, "variables": {"data": {}}}), 200),
        (json!({"query": q, "tag": "plumproapi", "variables": {"data": {}}}), 200),
        (json!({"query": q, "tag": "xoxo_link", "variables": {"data": {}}}), 200),
        (json!({"query": q, "tag": null, "variables": {"data": {}}}), 200),
        (json!({"query": q, "tag": 1, "variables": {"data": {}}}), 200),
        (json!({"query": "plumProAPI.mutation.someNewOperation", "variables": {"data": {}}}), 400),
    ] {
        assert_eq!(send(&mut s, body.clone()), status, "answered as usual: {body}");
    }
    // Not JSON at all: no tag either; and an unauthorised call counts too.
    assert_eq!(s.api(Some(&auth), b"not json", T0).status, 400);
    assert_eq!(s.api(None, json!({"query": q, "variables": {"data": {}}}).to_string().as_bytes(), T0).status, 401);
    assert_eq!(s.counters_json(0, 0)["not_plum_tag"], 8);
    s.reset_counters();
    assert_eq!(s.counters_json(0, 0)["not_plum_tag"], 0);
}

/// An order a fault makes failed or cancelled gives its amount back:
/// getBalance is as before it, and paymentHistory shows the debit and a
/// credit row `Cancelled` (xoxoday-api.md §3.7).
#[test]
fn a_failed_order_leaves_the_balance_and_adds_a_cancelled_row() {
    let mut s = sb();
    let balance = |s: &mut Sandbox| api(s, AT, "plumProAPI.query.getBalance", json!({}), T0).body["data"]["getBalance"]["data"]["value"].clone();
    let report = |s: &mut Sandbox| {
        let body = json!({"query":"plumProAPI.mutation.paymentHistory","tag":"plumProAPI",
                          "data":{"data":{"startDate":"2024-01-01","endDate":"2024-12-31","limit":50,"page":1}}});
        let out = s.api(Some(&format!("Bearer {AT}")), body.to_string().as_bytes(), T0);
        out.body["data"]["getPaymentReport"]["data"].as_array().unwrap().clone()
    };
    let place = "plumProAPI.mutation.placeOrder";
    assert_eq!(api(&mut s, AT, place, order("PO-OK"), T0).status, 200);
    let before = balance(&mut s);
    assert_eq!(before, 249_900);
    s.set_order_fault(br#"{"mode":"fail_after_create","error_id":"PLE10011","order_status":"failed"}"#).unwrap();
    assert_eq!(api(&mut s, AT, place, order("PO-FAILED"), T0).status, 422);
    assert_eq!(balance(&mut s), before, "a failed order costs nothing");
    let rows = report(&mut s);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let statuses: Vec<&str> = rows.iter().map(|r| r["transaction_status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Complete", "Complete", "Complete", "Cancelled"]);
    assert_eq!((rows[2]["adjusted_amount"].clone(), rows[3]["adjusted_amount"].clone()), (json!(-100), json!(100)));
    assert_eq!(rows[3]["closing_balance"], before);
    // Cancelled: the same.
    s.set_order_fault(br#"{"mode":"hang_after_create","hang_ms":1,"order_status":"cancelled"}"#).unwrap();
    assert_eq!(api(&mut s, AT, place, order("PO-CXL"), T0).status, 200);
    assert_eq!(balance(&mut s), before);
    assert_eq!(report(&mut s).last().unwrap()["transaction_status"], "Cancelled");
    // A complete order costs its amount, as before.
    assert_eq!(api(&mut s, AT, place, order("PO-OK2"), T0).status, 200);
    assert_eq!(balance(&mut s), 249_800);
    assert_eq!(report(&mut s).last().unwrap()["transaction_status"], "Complete");
}

/// A JSON number where xoxoday-api.md types the field "string" (§3.4's
/// `email`, `contact`, `tag`, `poNumber`; §3.5's `poNumber`; §3.2's
/// "comma-separated product-ID strings"; §3.1's `filterGroupCode`,
/// `includeFilters`, `excludeFilters`; the text filters' values): 400
/// `PLE10001` naming the field, as any other wrong form, by default; read
/// as its text under `text_numbers: true`, as the sandbox once did.
#[test]
fn numbers_in_text_fields_are_refused_unless_text_numbers() {
    let mut s = sb();
    let order = |po: &str, extra: Value| {
        let mut d = json!({"productId": 10100, "quantity": 1, "denomination": 10, "poNumber": po,
                           "notifyReceiverEmail": 0, "notifyAdminEmail": 0});
        d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        d
    };
    let vouchers = |extra: Value| {
        let mut d = json!({"limit": 10, "page": 1});
        d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        d
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("plumProAPI.mutation.placeOrder", order("tn-1", json!({"tag": 12})), "tag must be a string"),
        ("plumProAPI.mutation.placeOrder", order("tn-2", json!({"email": 7})), "email must be a string"),
        ("plumProAPI.mutation.placeOrder", order("tn-3", json!({"contact": 14705000000_u64})), "contact must be a string"),
        ("plumProAPI.mutation.placeOrder", order("tn-4", json!({"shippingPostcode": 94105})), "shippingPostcode must be a string"),
        ("plumProAPI.mutation.placeOrder", json!({"productId": 10100, "quantity": 1, "denomination": 10, "poNumber": 424242,
                                                   "notifyReceiverEmail": 0, "notifyAdminEmail": 0}), "poNumber must be a string"),
        ("plumProAPI.mutation.getVouchers", vouchers(json!({"includeProducts": 10100})), "includeProducts must be a string"),
        ("plumProAPI.mutation.getVouchers", vouchers(json!({"excludeProducts": 10101})), "excludeProducts must be a string"),
        ("plumProAPI.mutation.getVouchers", vouchers(json!({"filters": [{"key": "productName", "value": 7}]})), "filter productName must be a string"),
        ("plumProAPI.mutation.getFilters", json!({"filterGroupCode": 5}), "filterGroupCode must be a string"),
        ("plumProAPI.mutation.getFilters", json!({"filterGroupCode": "country", "excludeFilters": 5}), "excludeFilters must be a string"),
        ("plumProAPI.mutation.getOrderDetails", json!({"poNumber": 424242, "orderId": null, "sendMailToReceiver": 0}), "poNumber must be a string"),
        ("plumProAPI.mutation.getOrderHistory", json!({"startDate": "2024-01-01", "endDate": "2024-12-31", "tag": 12}), "tag must be a string"),
    ];
    let orders_before = s.counters.orders;
    for (query, data, message) in &cases {
        let out = api(&mut s, AT, query, data.clone(), T0);
        assert_eq!(out.status, 400, "{query} {data}: {}", out.body);
        assert_eq!(out.body["errorId"], "PLE10001", "{query} {data}");
        assert_eq!(out.body["error"], *message, "{query} {data}");
    }
    assert_eq!(s.counters.orders, orders_before, "no order placed");

    assert_eq!(s.patch_config(br#"{"text_numbers":true}"#).unwrap()["text_numbers"], true);
    let placed = api(&mut s, AT, "plumProAPI.mutation.placeOrder", order("tn-5", json!({"tag": 12, "email": "a@example.com"})), T0);
    assert_eq!(placed.status, 200, "{}", placed.body);
    assert_eq!(placed.body["data"]["placeOrder"]["data"]["tag"], "12", "read as its text");
    let numbered = api(&mut s, AT, "plumProAPI.mutation.placeOrder", cases[4].1.clone(), T0);
    assert_eq!(numbered.status, 200, "{}", numbered.body);
    let found = api(&mut s, AT, "plumProAPI.mutation.getOrderDetails", cases[10].1.clone(), T0);
    assert_eq!(found.status, 200, "poNumber 424242 found as \"424242\": {}", found.body);
    let one = api(&mut s, AT, "plumProAPI.mutation.getVouchers", vouchers(json!({"includeProducts": 10100})), T0);
    assert_eq!(one.status, 200, "{}", one.body);
    let ids: Vec<Value> = one.body["data"]["getVouchers"]["data"].as_array().unwrap().iter().map(|p| p["productId"].clone()).collect();
    assert_eq!(ids, [json!(10100)]);
    for (query, data, _) in &cases {
        let out = api(&mut s, AT, query, data.clone(), T0);
        assert_ne!(out.status, 400, "{query} {data}: {}", out.body);
    }
    s.patch_config(br#"{"text_numbers":false}"#).unwrap();
    let refused = api(&mut s, AT, "plumProAPI.mutation.getVouchers", vouchers(json!({"includeProducts": 10100})), T0);
    assert_eq!((refused.status, refused.body["error"].as_str()), (400, Some("includeProducts must be a string")));
}

/// A penalty runs from the instant it starts: a second call in the same
/// millisecond is limited too (the refresh endpoint's and the token
/// check's). Its wait is the remaining time rounded up, so a client that
/// waits what the answer says is let through and never earlier.
#[test]
fn a_penalty_holds_from_its_first_instant_and_its_wait_rounds_up() {
    let mut s = sb();
    s.set_refresh_fault(br#"{"mode":"rate_limited","shape":"errors_array","penalty_seconds":60}"#).unwrap();
    assert!(matches!(s.refresh(&refresh_body(RT), T0), RefreshOutcome::Limited { .. }));
    match s.refresh(&refresh_body(RT), T0) {
        RefreshOutcome::Limited { body, .. } => assert_eq!(body["errors"][0]["penaltySeconds"], 60),
        other => panic!("same instant: {other:?}"),
    }
    // 59.5 s left: the answer says 60, not 59.
    match s.refresh(&refresh_body(RT), T0 + 500) {
        RefreshOutcome::Limited { body, .. } => assert_eq!(body["errors"][0]["penaltySeconds"], 60),
        other => panic!("{other:?}"),
    }
    assert_eq!(refresh(&mut s, RT, T0 + 60 * SEC).0, 200);
    let bearer = format!("Bearer {AT}");
    let mut s = sb();
    s.set_validate_fault(br#"{"mode":"rate_limited","shape":"status429","penalty_seconds":30}"#).unwrap();
    assert!(matches!(s.validate_token(Some(&bearer), T0), RefreshOutcome::Limited { .. }));
    match s.validate_token(Some(&bearer), T0) {
        RefreshOutcome::Limited { retry_after_secs, .. } => assert_eq!(retry_after_secs, Some(30)),
        other => panic!("same instant: {other:?}"),
    }
    match s.validate_token(Some(&bearer), T0 + 29 * SEC + 1) {
        RefreshOutcome::Limited { retry_after_secs, .. } => assert_eq!(retry_after_secs, Some(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(check(&mut s, Some(&bearer), T0 + 30 * SEC).0, 200);
}

/// `refresh_limit`'s window is `window_secs` long, as the API limiter's is
/// 60 s: a call exactly that old has left it.
#[test]
fn refresh_limit_s_window_ends_exactly_window_secs_later() {
    let mut s = sb();
    s.patch_config(br#"{"refresh_limit":{"calls":1,"window_secs":60,"penalty_seconds":60}}"#).unwrap();
    let (status, a) = refresh(&mut s, RT, T0);
    assert_eq!(status, 200);
    let (status, _) = refresh(&mut s, &tok(&a, "refresh_token"), T0 + 60 * SEC);
    assert_eq!(status, 200, "the first call has left the window");
}

/// The token check's penalty answers every check while it runs, one with
/// no token at all too: the rate limiter answers before anything else.
#[test]
fn the_token_check_s_penalty_answers_a_check_without_a_token_too() {
    let mut s = sb();
    s.set_validate_fault(br#"{"mode":"rate_limited","penalty_seconds":60}"#).unwrap();
    assert!(matches!(s.validate_token(Some(&format!("Bearer {AT}")), T0), RefreshOutcome::Limited { .. }));
    assert!(matches!(s.validate_token(None, T0 + SEC), RefreshOutcome::Limited { .. }));
    assert!(matches!(s.validate_token(Some("Basic x"), T0 + SEC), RefreshOutcome::Limited { .. }));
}

/// The daily cap's answer is HTTP 429 (xoxoday-api.md §3.9, "answered with
/// HTTP 429"), whatever `rate_limit_status` says for the per-minute limit.
#[test]
fn a_daily_cap_is_a_429_whatever_the_rate_limit_status() {
    let mut s = sb();
    s.patch_config(br#"{"daily_limits":{"getBalance":1},"rate_limit_status":403}"#).unwrap();
    let q = "plumProAPI.query.getBalance";
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200);
    let capped = api(&mut s, AT, q, json!({}), T0 + SEC);
    assert_eq!((capped.status, capped.body["code"].clone()), (429, json!(429)));
}

/// The API's per-minute penalty ends when the clock moves back before it
/// started (README: "Moved back, it ends every penalty (the API's, ...)
/// that starts after the new time").
#[test]
fn moving_the_clock_back_ends_an_api_penalty_started_later() {
    let mut s = sb();
    s.patch_config(br#"{"rate_limits":{"getBalance":1}}"#).unwrap();
    let q = "plumProAPI.query.getBalance";
    assert_eq!(api(&mut s, AT, q, json!({}), T0).status, 200);
    assert_eq!(api(&mut s, AT, q, json!({}), T0 + SEC).status, 429);
    s.patch_config(br#"{"clock_offset_secs":-86400}"#).unwrap();
    assert_eq!(api(&mut s, AT, q, json!({}), T0 + 2 * SEC).status, 200, "penalty not started in the new time");
}

/// "The wallet has to cover the order" (xoxoday-api.md §3.4): an order
/// costing exactly the balance goes through and empties it; one cent more
/// is 422 PLE10010.
#[test]
fn an_order_costing_exactly_the_balance_goes_through() {
    let place = "plumProAPI.mutation.placeOrder";
    let mut s = sb();
    s.patch_config(br#"{"initial_balance":99.99}"#).unwrap();
    let short = api(&mut s, AT, place, order("PO-SHORT"), T0);
    assert_eq!((short.status, short.body["errorId"].clone()), (422, json!("PLE10010")));
    let mut s = sb();
    s.patch_config(br#"{"initial_balance":100}"#).unwrap();
    let out = api(&mut s, AT, place, order("PO-EXACT"), T0);
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.body["data"]["placeOrder"]["data"]["amountCharged"], json!(100));
    let b = api(&mut s, AT, "plumProAPI.query.getBalance", json!({}), T0);
    assert_eq!(b.body["data"]["getBalance"]["data"]["value"], json!(0));
}

/// placeOrder checks in the README's order: a duplicate poNumber before the
/// product, the quantity before the denomination, the denomination before a
/// mandatory contact.
#[test]
fn place_order_checks_come_in_the_documented_order() {
    let place = "plumProAPI.mutation.placeOrder";
    let mut s = sb();
    assert_eq!(api(&mut s, AT, place, order("PO-1"), T0).status, 200);
    let mut dup = order("PO-1");
    dup["productId"] = json!(99_999_999);
    let out = api(&mut s, AT, place, dup, T0);
    assert_eq!((out.status, out.body["errorId"].clone()), (409, json!("PLE10043")), "duplicate before product");
    let limit = catalog().get(10100).unwrap().qty_limit;
    let mut over = order("PO-2");
    over["quantity"] = json!(limit + 1);
    over["denomination"] = json!(999_999);
    let out = api(&mut s, AT, place, over, T0);
    assert_eq!((out.status, out.body["errorId"].clone()), (409, json!("PLE10041")), "quantity before denomination");
    let p = catalog().products.iter().find(|p| p.phone_mandatory).unwrap();
    let mut no_contact = order("PO-3");
    no_contact["productId"] = json!(p.id);
    no_contact["quantity"] = json!(1);
    no_contact["denomination"] = json!(999_999);
    no_contact.as_object_mut().unwrap().remove("contact");
    let out = api(&mut s, AT, place, no_contact, T0);
    assert_eq!((out.status, out.body["errorId"].clone()), (404, json!("PLE10018")), "denomination before contact");
}

/// `check_expires_in: lifetime` on a token from a state file written
/// before lifetimes were kept: the current `access_ttl_secs` (README).
#[test]
fn the_lifetime_reading_of_a_token_without_one_is_the_current_ttl() {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("lifetime_ms");
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut state: Value = serde_json::from_slice(&sb().snapshot().unwrap()).unwrap();
    strip(&mut state);
    let restored = Sandbox::parse_state(state.to_string().as_bytes()).unwrap();
    let mut s = Sandbox::from_state(Credentials::default(), restored);
    s.patch_config(br#"{"check_expires_in":"lifetime","access_ttl_secs":259200}"#).unwrap();
    let (status, v) = check(&mut s, Some(&format!("Bearer {AT}")), T0 + HOUR);
    assert_eq!((status, v["expires_in"].clone()), (200, json!(259_200)), "{v}");
}

/// `duplicate_answer` changes the answer to a poNumber already held, and
/// nothing else: placeOrder's other refusals keep their own answers in
/// every reading.
#[test]
fn the_duplicate_readings_leave_place_order_s_other_answers_alone() {
    let place = "plumProAPI.mutation.placeOrder";
    for reading in ["ple10043", "validation", "worded"] {
        let mut s = sb();
        s.patch_config(format!(r#"{{"duplicate_answer":"{reading}"}}"#).as_bytes()).unwrap();
        let mut over = order("PO-Q");
        over["quantity"] = json!(catalog().get(10100).unwrap().qty_limit + 1);
        let out = api(&mut s, AT, place, over, T0);
        assert_eq!((out.status, out.body["errorId"].clone()), (409, json!("PLE10041")), "{reading}");
        let mut denom = order("PO-N");
        denom["denomination"] = json!(999_999);
        let out = api(&mut s, AT, place, denom, T0);
        assert_eq!((out.status, out.body["errorId"].clone()), (404, json!("PLE10018")), "{reading}");
        s.patch_config(br#"{"initial_balance":0}"#).unwrap();
        let out = api(&mut s, AT, place, order("PO-B"), T0);
        assert_eq!((out.status, out.body["errorId"].clone()), (422, json!("PLE10010")), "{reading}");
    }
}

/// The `duplicate` order fault answers 409 `PLE10043` by default and under
/// the fault's `status` when one is given, as every order fault does.
#[test]
fn the_duplicate_fault_answers_under_its_status() {
    let mut s = sb();
    let place = "plumProAPI.mutation.placeOrder";
    s.set_order_fault(br#"{"mode":"duplicate","status":400}"#).unwrap();
    let out = api(&mut s, AT, place, order("PO-G"), T0);
    assert_eq!((out.status, out.body["errorId"].clone(), out.body["code"].clone()), (400, json!("PLE10043"), json!(400)));
    s.set_order_fault(br#"{"mode":"duplicate"}"#).unwrap();
    let out = api(&mut s, AT, place, order("PO-G"), T0);
    assert_eq!((out.status, out.body["errorId"].clone()), (409, json!("PLE10043")));
    assert_eq!(s.counters_json(0, 0)["orders"], 0);
}

/// placeOrder of a product whose `isPhoneNumberMandatory` is set: without a
/// contact (absent, empty or blank) a 400 `PLE10001`; with one it goes
/// through (README: "contact when `isPhoneNumberMandatory`").
#[test]
fn a_phone_mandatory_product_needs_a_contact() {
    let place = "plumProAPI.mutation.placeOrder";
    let mut s = sb();
    let p = catalog().products.iter().find(|p| p.phone_mandatory && !p.delayed).unwrap();
    let denom = p.denoms.first().copied().unwrap_or(p.min);
    let mut o = order("PO-PHONE");
    o["productId"] = json!(p.id);
    o["quantity"] = json!(1);
    o["denomination"] = json!(denom);
    for contact in [None, Some(""), Some("   ")] {
        let mut bad = o.clone();
        match contact {
            None => drop(bad.as_object_mut().unwrap().remove("contact")),
            Some(c) => bad["contact"] = json!(c),
        }
        let out = api(&mut s, AT, place, bad, T0);
        assert_eq!((out.status, out.body["errorId"].clone()), (400, json!("PLE10001")), "{contact:?}");
    }
    assert_eq!(s.counters_json(0, 0)["orders"], 0);
    assert_eq!(api(&mut s, AT, place, o, T0).status, 200);
}

/// placeOrder's denomination: an open-value product takes `minValue` to
/// `maxValue`, both ends included; a fixed-denomination product takes
/// exactly one of its `valueDenominations`. Anything else: 404 `PLE10018`.
#[test]
fn denominations_are_the_product_s_range_or_its_listed_values() {
    let place = "plumProAPI.mutation.placeOrder";
    let mut s = sb();
    let base = |p: &crate::catalog::Product, po: &str, d: f64| {
        let mut o = order(po);
        o["productId"] = json!(p.id);
        o["quantity"] = json!(1);
        o["denomination"] = json!(d);
        o
    };
    let open = catalog().products.iter().find(|p| !p.fixed && !p.delayed && !p.phone_mandatory).unwrap();
    for (i, d) in [f64::from(open.min), f64::from(open.max)].into_iter().enumerate() {
        let out = api(&mut s, AT, place, base(open, &format!("PO-OPEN-{i}"), d), T0);
        assert_eq!(out.status, 200, "{d}: {}", out.body);
    }
    let fixed = catalog().products.iter().find(|p| p.fixed && !p.delayed && !p.phone_mandatory).unwrap();
    let listed = f64::from(fixed.denoms[0]);
    let off = [listed + 0.5, listed - 0.5, f64::from(open.max) + 0.01];
    for (i, d) in off.into_iter().enumerate() {
        let p = if i == 2 { open } else { fixed };
        let out = api(&mut s, AT, place, base(p, &format!("PO-OFF-{i}"), d), T0);
        assert_eq!((out.status, out.body["errorId"].clone()), (404, json!("PLE10018")), "{d}");
    }
    assert_eq!(api(&mut s, AT, place, base(fixed, "PO-FIXED", listed), T0).status, 200);
}

/// getOrderHistory's optional `tag` (xoxoday-api.md §3.6) selects the
/// orders placed with that tag; without it every order in the range.
/// `limit` and `page` (from 1) page them, newest first.
#[test]
fn order_history_s_tag_selects_orders() {
    let place = "plumProAPI.mutation.placeOrder";
    let mut s = sb();
    for (po, tag) in [("PO-T1", "alpha"), ("PO-T2", "beta"), ("PO-T3", "alpha")] {
        let mut o = order(po);
        o["tag"] = json!(tag);
        assert_eq!(api(&mut s, AT, place, o, T0).status, 200);
    }
    let paged = |s: &mut Sandbox, tag: Option<&str>, limit: u64, page: u64| {
        let mut data = json!({"startDate":"2024-01-01","endDate":"2024-12-31","limit":limit,"page":page});
        if let Some(t) = tag {
            data["tag"] = json!(t);
        }
        let out = api(s, AT, "plumProAPI.mutation.getOrderHistory", data, T0);
        assert_eq!(out.status, 200, "{}", out.body);
        let rows = out.body["data"]["getOrderHistory"]["data"].as_array().unwrap().clone();
        rows.iter().map(|r| r["poNumber"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let history = |s: &mut Sandbox, tag: Option<&str>| paged(s, tag, 50, 1);
    assert_eq!(history(&mut s, Some("alpha")), ["PO-T3", "PO-T1"]);
    assert_eq!(history(&mut s, Some("beta")), ["PO-T2"]);
    assert_eq!(history(&mut s, Some("gamma")), Vec::<String>::new());
    // The tag as given: another case or a padded one is another tag.
    assert_eq!(history(&mut s, Some("ALPHA")), Vec::<String>::new());
    assert_eq!(history(&mut s, Some(" alpha")), Vec::<String>::new());
    assert_eq!(history(&mut s, None), ["PO-T3", "PO-T2", "PO-T1"]);
    assert_eq!(paged(&mut s, None, 2, 1), ["PO-T3", "PO-T2"]);
    assert_eq!(paged(&mut s, None, 2, 2), ["PO-T1"]);
    assert_eq!(paged(&mut s, Some("alpha"), 1, 2), ["PO-T1"]);
    assert_eq!(paged(&mut s, None, 2, 3), Vec::<String>::new());
}

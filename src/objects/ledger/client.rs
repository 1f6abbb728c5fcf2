//! The `OrderLedger`'s client: what a worker (or another object) sends to
//! the ledger of a `poNumber` and how its reply becomes the caller's
//! response. Apart from the object itself so that objects the ledger calls
//! (the `KeyRegistry`) can ask it too without an import circle.

use crate::respond::{bytes_response, error_response, JSON};
use crate::runtime::http::Outgoing;
use crate::runtime::stub::{self, StubError};
use plumgate_core::config::{binding, missing_binding};
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::logline::Trace;
use plumgate_core::ops;
use plumgate_core::wire::ledger::{object_name, Fate, LedgerReply, LedgerRequest, Outcome, LOOK_URL, PLACE_URL};
use serde_json::Value;
use worker::Env;

/// Binding name of the ledger namespace.
pub const BINDING: &str = binding::ORDER_LEDGER;

/// A reply that is plumgate's error, with the order's fate.
pub(super) fn refusal(error: ApiError, fate: Fate) -> LedgerReply {
    LedgerReply { outcome: Outcome::Error { error, upstream_status: None }, replayed: false, fate }
}

/// The answer when the ledger's reply is lost: the order may exist.
pub(super) fn lost() -> LedgerReply {
    refusal(
        ApiError::upstream_error(
            "the order ledger could not be reached or its answer was lost: the order may be placed; send the same poNumber and body again for the one order, never a second",
        ),
        Fate::Unknown,
    )
}

/// A placeOrder whose answer from the ledger was lost, kept to ask the
/// ledger later what became of it ([`look`]).
pub struct Lost {
    name: String,
    body: String,
}

impl Lost {
    /// The look for the order with `fingerprint` of a hold whose requests
    /// may be gone (the registry's alarm), sent to the ledger object
    /// `name` (`object_name`, or `legacy_object_name` for one placed
    /// before per-account names): a look reads only the fingerprint.
    pub fn of_order(name: String, fingerprint: &str) -> Option<Lost> {
        let body = serde_json::to_string(&LedgerRequest { data: Value::Object(Default::default()), fingerprint: fingerprint.to_string() }).ok()?;
        Some(Lost { name, body })
    }
}

/// Send a prepared placeOrder (and the fingerprint of the order as the
/// caller wrote it) to its ledger on `account`: the typed reply, whatever
/// happens. A ledger that could not be asked, or whose answer was lost, is
/// [`Fate::Unknown`] (it may have sent the order), and comes with the
/// [`Lost`] request to [`look`] with; a request that never left is
/// [`Fate::NotPlaced`]. Not to `place`: a look (what a request would be
/// answered, never a placement; `plumgate_core::ledger::look`).
pub async fn send(env: &Env, account: &str, data: Value, fingerprint: String, place: bool) -> (LedgerReply, Option<Lost>) {
    let name = object_name(account, &ops::po_number(&data).unwrap_or_default());
    let Ok(body) = serde_json::to_string(&LedgerRequest { data, fingerprint }) else {
        return (refusal(ApiError::internal(), Fate::NotPlaced), None);
    };
    let url = if place { PLACE_URL } else { LOOK_URL };
    match stub::post(env, BINDING, &name, url, None, Some(body.clone())).await {
        Ok((_, bytes)) => match LedgerReply::read(&bytes) {
            Some(reply) => (reply, None),
            None => (lost(), Some(Lost { name, body })),
        },
        Err(StubError::Binding) => (refusal(ApiError::misconfigured(&[missing_binding(BINDING)]), Fate::NotPlaced), None),
        Err(StubError::Request) => (refusal(ApiError::internal(), Fate::NotPlaced), None),
        Err(StubError::Call(_) | StubError::Body) => (lost(), Some(Lost { name, body })),
    }
}

/// Ask the ledger what became of a placeOrder whose answer was lost
/// (`plumgate_core::ledger::look`: never a placement); `None` when this
/// answer is lost too.
pub async fn look(env: &Env, lost: &Lost) -> Option<LedgerReply> {
    let (_, bytes) = stub::post(env, BINDING, &lost.name, LOOK_URL, None, Some(lost.body.clone())).await.ok()?;
    LedgerReply::read(&bytes)
}

/// The caller's response for a ledger reply: Xoxoday's answer, or
/// plumgate's error in the route's `style`, with `x-plumgate-replayed` /
/// `x-plumgate-reconciled`. The [`Trace`] says what the log line needs
/// (upstream status, note, the error code).
pub fn render(reply: LedgerReply, style: ErrorStyle, request_id: &str) -> (Result<Outgoing, ApiError>, Trace) {
    let LedgerReply { outcome, replayed, .. } = reply;
    // Only an answer (Xoxoday's, stored or shared) is a replay of another
    // attempt's; an error of plumgate's that a joined call also got says
    // nothing was placed, so it goes without the header.
    let replayed = replayed && matches!(outcome, Outcome::Answer { .. });
    let mut trace = Trace { upstream_status: outcome.upstream_status(), ..Trace::default() };
    let (mut resp, reconciled) = match outcome {
        Outcome::Answer { status, body, reconciled, .. } => (bytes_response(status, body.into_bytes(), JSON), reconciled),
        Outcome::Error { error, .. } => {
            trace.error = Some(error.code.as_str());
            (error_response(&error, style, request_id), false)
        }
    };
    if replayed {
        trace.note = Some("replayed");
        resp.set("x-plumgate-replayed", "true");
    }
    if reconciled {
        trace.note = trace.note.or(Some("reconciled"));
        resp.set("x-plumgate-reconciled", "true");
    }
    (Ok(resp), trace)
}

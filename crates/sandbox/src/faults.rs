//! Injected faults for the refresh endpoint and for placeOrder. Owns the
//! fault requests' parsing/validation and the "next N calls" countdown.
//! Faults are runtime-only (not persisted) and cleared by `/faults/clear`
//! and `/reset`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshFaultMode {
    #[serde(rename = "5xx")]
    ServerError,
    Hang,
    InvalidGrant,
    RotateThenDrop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderFaultMode {
    FailAfterCreate,
    FailBeforeCreate,
    HangAfterCreate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fault<M> {
    pub mode: M,
    pub remaining: u32,
    pub status: u16,
    pub hang_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest<M> {
    mode: M,
    count: Option<u32>,
    status: Option<u16>,
    hang_ms: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Faults {
    pub refresh: Option<Fault<RefreshFaultMode>>,
    pub order: Option<Fault<OrderFaultMode>>,
}

fn parse<M: for<'de> Deserialize<'de>>(
    body: &[u8],
    default_status: u16,
    status_range: (u16, u16),
) -> Result<Option<Fault<M>>, String> {
    let req: FaultRequest<M> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let status = req.status.unwrap_or(default_status);
    if !(status_range.0..=status_range.1).contains(&status) {
        return Err(format!(
            "status must be between {} and {}",
            status_range.0, status_range.1
        ));
    }
    let hang_ms = req.hang_ms.unwrap_or(30_000);
    if hang_ms > 600_000 {
        return Err("hang_ms must be at most 600000".into());
    }
    let count = req.count.unwrap_or(1);
    Ok((count > 0).then_some(Fault {
        mode: req.mode,
        remaining: count,
        status,
        hang_ms,
    }))
}

fn take<M: Copy>(slot: &mut Option<Fault<M>>) -> Option<Fault<M>> {
    let f = slot.as_mut()?;
    let out = *f;
    f.remaining -= 1;
    if f.remaining == 0 {
        *slot = None;
    }
    Some(out)
}

impl Faults {
    /// `{"mode","count"=1,"status"=503,"hang_ms"=30000}`; count 0 clears.
    pub fn set_refresh(&mut self, body: &[u8]) -> Result<(), String> {
        self.refresh = parse(body, 503, (500, 599))?;
        Ok(())
    }

    /// `{"mode","count"=1,"status"=502,"hang_ms"=30000}`; count 0 clears.
    pub fn set_order(&mut self, body: &[u8]) -> Result<(), String> {
        self.order = parse(body, 502, (400, 599))?;
        Ok(())
    }

    pub fn take_refresh(&mut self) -> Option<Fault<RefreshFaultMode>> {
        take(&mut self.refresh)
    }

    pub fn take_order(&mut self) -> Option<Fault<OrderFaultMode>> {
        take(&mut self.order)
    }

    pub fn to_json(&self) -> Value {
        json!({ "refresh": self.refresh, "order": self.order })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_count_down() {
        let mut f = Faults::default();
        f.set_refresh(br#"{"mode":"5xx","count":2,"status":502}"#)
            .unwrap();
        assert_eq!(
            f.take_refresh().map(|x| (x.mode, x.status)),
            Some((RefreshFaultMode::ServerError, 502))
        );
        assert!(f.take_refresh().is_some());
        assert!(f.take_refresh().is_none());
        assert!(f.set_refresh(br#"{"mode":"explode"}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"5xx","status":404}"#).is_err());
        assert!(f.set_refresh(br#"{"mode":"hang","extra":1}"#).is_err());
        f.set_order(br#"{"mode":"hang_after_create"}"#).unwrap();
        assert_eq!(
            f.order.map(|o| (o.remaining, o.status, o.hang_ms)),
            Some((1, 502, 30_000))
        );
        assert_eq!(f.to_json()["order"]["mode"], "hang_after_create");
        f.set_order(br#"{"mode":"fail_after_create","count":0}"#)
            .unwrap();
        assert!(f.order.is_none());
    }
}

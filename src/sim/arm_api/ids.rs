//! Ids, times and places: GUID-shaped ids, ARM's timestamps, the location every simulated
//! resource lives in and the subscription + group a request addresses.

use chrono::{DateTime, Utc};

/// The location every simulated resource lives in.
pub(crate) const LOCATION: &str = "eastus";

/// The subscription and resource group a request addresses (names as the scenario spells them).
pub(crate) struct Place {
    /// Subscription id.
    pub sub: String,
    /// Resource group.
    pub group: String,
}

impl Place {
    /// `/subscriptions/{sub}/resourceGroups/{group}`.
    pub(crate) fn prefix(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/{}", self.sub, self.group)
    }
}

/// A fresh random id shaped like a GUID.
pub(crate) fn new_uuid() -> String {
    let a = fastrand::u128(..);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        8 + (a >> 120) as u8 % 4,
        &h[17..20],
        &h[20..32]
    )
}

/// RFC 3339 with 7 fractional digits, as ARM writes timestamps.
pub(crate) fn arm_time(t: DateTime<Utc>) -> String {
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), t.timestamp_subsec_nanos() / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_guids() {
        let id = new_uuid();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12], "{id}");
        assert_ne!(new_uuid(), new_uuid());
    }

    #[test]
    fn arm_times_have_seven_fraction_digits() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T09:00:00Z").map(|d| d.with_timezone(&Utc));
        assert_eq!(t.map(arm_time).ok().as_deref(), Some("2026-11-27T09:00:00.0000000Z"));
    }
}

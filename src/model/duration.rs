//! Durations as runbooks and flags write them: `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration parsed from the runbook notation (`"1h30m"`, `"10s"`, `"250ms"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// A duration of `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        Dur(Duration::from_secs(secs))
    }
    /// A duration of `ms` milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    /// The std duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// The longest duration a runbook or flag may name: a year. Longer ones are refused with a
/// clear error (they would overflow deadline arithmetic, and no recovery step waits that long).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86400);

/// Parses `"1h30m"`, `"5m"`, `"30s"`, `"250ms"`, `"1d"`; a bare `"0"` is zero. Durations above
/// [`MAX_DURATION`] are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration: write it like \"30s\", \"5m\" or \"1h30m\"".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration `{text}`: expected a number before `{rest}`"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: `{}` is not a number", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs_per_unit = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "invalid duration `{text}`: missing unit (use ms, s, m, h or d, as in \"30s\")"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{other}` (use ms, s, m, h or d)"
                ));
            }
        };
        let too_long = || format!("duration `{text}` is too long: the longest allowed is 365d");
        let part = Duration::try_from_secs_f64(number * secs_per_unit).map_err(|_| too_long())?;
        total = total.checked_add(part).filter(|t| *t <= MAX_DURATION).ok_or_else(too_long)?;
    }
    Ok(total)
}

/// Formats a duration compactly (`1h30m`, `5s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 || !ms.is_multiple_of(1000) {
        if ms < 10_000 {
            return format!("{ms}ms");
        }
        return format!("{:.1}s", d.as_secs_f64());
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Dur)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Dur).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_and_simple_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit `x`"));
        assert!(parse_duration("m5").unwrap_err().contains("expected a number"));
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        for s in ["99999999999999999999999d", "1e400s", "18446744073709551615s", "366d", "100000h"] {
            assert!(parse_duration(s).unwrap_err().contains("too long") || parse_duration(s).is_err(), "{s}");
        }
        assert!(parse_duration("99999999999999999999999d").unwrap_err().contains("too long"));
        assert_eq!(parse_duration("365d").unwrap(), MAX_DURATION);
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_errors_without_panic(text in ".{0,40}") {
            if let Ok(d) = parse_duration(&text) {
                proptest::prop_assert!(d <= MAX_DURATION);
                let _ = format_duration(d);
            }
        }

        #[test]
        fn duration_shaped_text_never_panics(
            parts in proptest::collection::vec(("[0-9]{0,25}(\\.[0-9]{0,5})?", "(ms|s|m|h|d|x|)"), 0..6)
        ) {
            let text: String = parts.iter().map(|(n, u)| format!("{n}{u}")).collect();
            if let Ok(d) = parse_duration(&text) {
                proptest::prop_assert!(d <= MAX_DURATION);
                proptest::prop_assert_eq!(parse_duration(&format_duration(d)).is_ok(), true);
            }
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["30s", "5m", "1h30m", "250ms", "1d2h"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}

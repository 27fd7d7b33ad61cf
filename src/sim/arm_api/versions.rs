//! `api-version` checks: each service names the first version it serves and the versions it
//! quotes in errors; a malformed version is refused in ARM's own words.

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};

use super::error::ArmError;
use super::ids::LOCATION;

/// The api-versions a service accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Versions {
    /// Provider namespace, lowercase (`microsoft.web`).
    pub namespace: &'static str,
    /// The resource type named in `NoRegisteredProviderFound` (`sites`).
    pub resource_type: &'static str,
    /// The oldest version served.
    pub first: &'static str,
    /// Versions quoted in errors, newest first.
    pub quoted: &'static [&'static str],
}

/// ARM's own (Microsoft.Resources) versions: the front door quotes them for any malformed
/// version, whatever the provider.
pub(crate) const ARM: Versions = Versions {
    namespace: "microsoft.resources",
    resource_type: "resources",
    first: "2014-04-01",
    quoted: &[
        "2026-06-01",
        "2025-04-01",
        "2025-03-01",
        "2024-11-01",
        "2024-07-01",
        "2024-03-01",
        "2023-07-01",
        "2022-09-01",
        "2021-04-01",
        "2021-01-01",
        "2020-10-01",
        "2020-06-01",
        "2019-10-01",
        "2019-05-10",
        "2019-05-01",
        "2018-05-01",
        "2017-05-10",
        "2016-09-01",
        "2016-02-01",
        "2015-11-01",
        "2014-04-01",
    ],
};

/// Parses `YYYY-MM-DD` with an optional `-suffix` (`-preview`, `-beta`…) into its date.
pub(crate) fn parse_api_version(v: &str) -> Option<NaiveDate> {
    let (date, suffix) = match v.get(10..) {
        Some("") => (v, None),
        Some(rest) => (v.get(..10)?, Some(rest)),
        None => return None,
    };
    if let Some(s) = suffix {
        let word = s.strip_prefix('-')?;
        if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
    }
    let b = date.as_bytes();
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if !date.chars().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// ARM's api-version check for a service's `versions` at `now`.
pub(crate) fn check_api_version(
    versions: &Versions,
    raw: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, ArmError> {
    let Some(v) = raw.filter(|v| !v.is_empty()) else {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    let invalid = || {
        ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid. The supported versions are '{}'.",
                ARM.quoted.join(",")
            ),
        )
    };
    let date = parse_api_version(v).ok_or_else(invalid)?;
    let first = parse_api_version(versions.first).ok_or_else(invalid)?;
    let today = now.date_naive();
    if date < first || date > today {
        if versions.namespace == ARM.namespace {
            return Err(invalid());
        }
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{LOCATION}' and API version '{v}' \
                 for type '{}'. The supported api-versions are '{}'. The supported locations are \
                 'eastus, westeurope'.",
                versions.resource_type,
                versions.quoted.join(", ")
            ),
        ));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T09:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    const WEB: Versions = Versions {
        namespace: "microsoft.web",
        resource_type: "sites",
        first: "2014-06-01",
        quoted: &["2025-05-01"],
    };

    #[test]
    fn api_versions_current_clients_send_are_accepted() {
        for (p, v) in [(WEB, "2025-05-01"), (WEB, "2022-03-01"), (ARM, "2026-06-01"), (ARM, "2021-04-01")] {
            assert_eq!(check_api_version(&p, Some(v), now()).ok().as_deref(), Some(v), "{p:?} {v}");
        }
        let preview = Versions { first: "2017-08-31", ..WEB };
        assert!(check_api_version(&preview, Some("2025-10-02-preview"), now()).is_ok());
    }

    #[test]
    fn missing_and_malformed_api_versions_are_refused_as_arm_does() {
        let e = check_api_version(&WEB, None, now()).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code.as_str()), (400, "MissingApiVersionParameter"));
        let e = check_api_version(&WEB, Some(""), now()).unwrap_err();
        assert_eq!(e.code, "MissingApiVersionParameter");
        for bad in ["2025-13-01", "2025-5-01", "latest", "2025-05-01preview", "2025-05-01-", "20250501"] {
            let e = check_api_version(&WEB, Some(bad), now()).unwrap_err();
            assert_eq!(e.code, "InvalidApiVersionParameter", "{bad}");
            assert!(e.message.contains(&format!("'{bad}'")), "{}", e.message);
        }
        let e = check_api_version(&WEB, Some("2099-01-01"), now()).unwrap_err();
        assert_eq!(e.code, "NoRegisteredProviderFound");
        assert!(e.message.contains("type 'sites'"), "{}", e.message);
        let e = check_api_version(&ARM, Some("2099-01-01"), now()).unwrap_err();
        assert_eq!(e.code, "InvalidApiVersionParameter");
    }
}

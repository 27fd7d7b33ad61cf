//! The one ARM client every Azure primitive uses: credentials, retries with backoff
//! and jitter, long-running operations, pagination and ARM's error envelope mapped to our
//! error kinds. Depends only on `model` (plus reqwest and azure_identity), never on the engine.
//!
//! Waits never sleep by themselves: they go through a [`Pause`] the caller supplies (the run's
//! clock), so tests make time pass without sleeping and a cancelled run stops waiting.

mod client;
mod credential;
mod error;

pub use client::{ArmClient, ArmRequest, ArmResponse, Idempotency, Pause, PauseFuture, RetryPolicy, encode};
pub use credential::{CredentialChoice, Credentials, Token, select_credential};
pub use error::{AzureError, Envelope};

/// The ARM endpoint when `ROLLBOOK_ARM_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";

/// Current stable api-versions, one per resource provider we call.
pub mod api_versions {
    /// Microsoft.Web (App Service sites and slots).
    pub const WEB: &str = "2025-03-01";
    /// Microsoft.Resources (template deployments).
    pub const RESOURCES: &str = "2025-04-01";
    /// Microsoft.Logic (consumption workflows); the only stable version.
    pub const LOGIC: &str = "2019-05-01";
    /// Microsoft.ContainerService (AKS).
    pub const CONTAINER_SERVICE: &str = "2025-10-01";
}

/// Whether `host` (as a URL gives it, IPv6 in brackets) is this machine: `localhost` or a
/// loopback address. Plain HTTP is accepted only there.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

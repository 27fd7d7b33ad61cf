//! The plumbing every simulated Azure service shares, in leaf modules that know no service:
//! the parsed request, the answer, ARM's error envelope, ids and times, paging, `api-version`
//! checks, the store of long-running operations, the state every service sees ([`core::Core`])
//! and the [`service::Service`] trait a service implements to join the router's table.
//!
//! Conventions shared by every service:
//! - Routes: everything under `/subscriptions/…` (first segment in lower, Title or UPPER case;
//!   every later segment is matched case-insensitively, names keep the case the scenario gave).
//! - Order of checks, as ARM does: `api-version` (400 `MissingApiVersionParameter` /
//!   `InvalidApiVersionParameter`), then `Authorization: Bearer <anything>` (401
//!   `AuthenticationFailed` / `AuthenticationFailedInvalidHeader`), then subscription (404
//!   `SubscriptionNotFound`), resource group (404 `ResourceGroupNotFound`), resource (404
//!   `ResourceNotFound`, deployments `DeploymentNotFound`).
//! - An `api-version` is accepted when it is `YYYY-MM-DD` (optionally `-preview` or another
//!   `-suffix`), a real calendar date, not before the provider's first version and not after
//!   today; an older or future one is refused as ARM refuses an unsupported version.
//! - Every answer, errors included, carries `x-ms-request-id` (fresh), `x-ms-correlation-request-id`
//!   (the caller's, else fresh) and ARM's rate-limit headers; `x-ms-client-request-id` is echoed
//!   when `x-ms-return-client-request-id: true` is sent.
//! - Long-running operations: the first `[sim] lro_polls` observations (default 2) answer "in
//!   progress"; the operation completes at the next one, and its effect becomes visible then.
//!   An observation is a GET of the operation's `Location` / `Azure-AsyncOperation` URL or any
//!   request to the resource it changes (so a client that lost the URL still sees it finish).
//!   `Retry-After` is `1` (seconds) so real clients do not fall back to their 30 s default.
//! - Paged lists return at most [`paging::PAGE_SIZE`] items per page and an absolute `nextLink`
//!   (`$skiptoken=<offset>`), so clients must follow it. Absolute URLs use the scheme and host
//!   the client used.

pub(crate) mod core;
pub(crate) mod error;
pub(crate) mod ids;
pub(crate) mod jsonc;
pub(crate) mod lro;
pub(crate) mod paging;
pub(crate) mod reply;
pub(crate) mod request;
pub(crate) mod service;
pub(crate) mod versions;

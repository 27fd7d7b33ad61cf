//! What a client needs before its first ARM call: cloud endpoint discovery
//! (`/metadata/endpoints`, as `az cloud register --endpoint-resource-manager` reads it) and a
//! Microsoft Entra–shaped token service for a service-principal login (OpenID configuration
//! and `oauth2/v2.0/token`, `oauth2/token`), so `az login --service-principal` and the SDK's
//! client-secret credential complete against the simulator. The login endpoint and the token
//! audience are the simulator itself. Any client id and non-empty secret is accepted; the
//! access token is JWT-shaped (unsigned) and, like every bearer token, accepted by ARM.

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::arm_router::TENANT;
use super::server::Scheme;

/// Routes for discovery and tokens.
pub(crate) fn router() -> Router {
    Router::new()
        .route("/metadata/endpoints", axum::routing::get(endpoints))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", axum::routing::get(openid))
        .route("/{tenant}/.well-known/openid-configuration", axum::routing::get(openid))
        .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token))
        .route("/{tenant}/oauth2/token", axum::routing::post(token))
        .route("/common/discovery/instance", axum::routing::get(instance))
}

fn base(uri: &Uri, headers: &HeaderMap, ext: &axum::http::Extensions) -> String {
    let scheme = ext.get::<Scheme>().map_or("http", |s| s.0);
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("127.0.0.1");
    format!("{scheme}://{host}")
}

fn json_reply(status: StatusCode, v: Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    if let Ok(ct) = "application/json; charset=utf-8".parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r
}

/// The cloud's endpoints: the simulator is resource manager, login endpoint and audience.
async fn endpoints(uri: Uri, headers: HeaderMap, ext: axum::http::Extensions) -> Response {
    let base = base(&uri, &headers, &ext);
    let slash = format!("{base}/");
    json_reply(
        StatusCode::OK,
        json!({
            "name": "RollbookSimulator",
            "resourceManager": slash,
            "portal": slash,
            "portalEndpoint": slash,
            "gallery": slash,
            "galleryEndpoint": slash,
            "graph": slash,
            "graphEndpoint": slash,
            "graphAudience": slash,
            "microsoftGraphResourceId": slash,
            "batch": slash,
            "sqlManagement": slash,
            "media": slash,
            "activeDirectoryDataLake": slash,
            "appInsightsResourceId": slash,
            "appInsightsTelemetryChannelResourceId": slash,
            "attestationResourceId": slash,
            "synapseAnalyticsResourceId": slash,
            "logAnalyticsResourceId": slash,
            "ossrDbmsResourceId": slash,
            "vmImageAliasDoc": format!("{base}/vm-image-aliases.json"),
            "authentication": {
                "loginEndpoint": slash,
                "audiences": [slash],
                "tenant": "common",
                "identityProvider": "AAD"
            },
            "suffixes": {
                "acrLoginServer": "azurecr.io",
                "keyVaultDns": "vault.azure.net",
                "sqlServerHostname": "database.windows.net",
                "storage": "core.windows.net",
                "mhsmDns": "managedhsm.azure.net"
            }
        }),
    )
}

async fn openid(
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ext: axum::http::Extensions,
) -> Response {
    let base = base(&uri, &headers, &ext);
    json_reply(
        StatusCode::OK,
        json!({
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/{tenant}/v2.0"),
            "request_uri_parameter_supported": false,
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "rollbook.simulator",
            "cloud_graph_host_name": "graph.rollbook.simulator",
            "msgraph_host": "graph.rollbook.simulator"
        }),
    )
}

/// Instance discovery, for clients that ask before trusting an authority.
async fn instance(Query(q): Query<Vec<(String, String)>>) -> Response {
    let endpoint =
        q.iter().find(|(k, _)| k == "authorization_endpoint").map(|(_, v)| v.clone()).unwrap_or_default();
    let issuer = endpoint.replace("/oauth2/v2.0/authorize", "/v2.0");
    json_reply(
        StatusCode::OK,
        json!({
            "tenant_discovery_endpoint": format!("{issuer}/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": []
        }),
    )
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// `client_credentials` (and refresh) grants: a JWT-shaped bearer token for the asked scope.
async fn token(Path(tenant): Path<String>, body: axum::body::Bytes) -> Response {
    let form: Vec<(String, String)> = url_form(&body);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("");
    let error = |status: StatusCode, code: &str, description: &str| {
        json_reply(
            status,
            json!({ "error": code, "error_description": description, "error_codes": [7000215], "timestamp": chrono::Utc::now().to_rfc3339() }),
        )
    };
    let client = get("client_id");
    if client.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
        );
    }
    if get("client_secret").is_empty()
        && get("client_assertion").is_empty()
        && get("grant_type") == "client_credentials"
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let scope = if get("scope").is_empty() { get("resource") } else { get("scope") };
    let audience = scope
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches(".default")
        .trim_end_matches('/')
        .to_string();
    let tid = if tenant.eq_ignore_ascii_case("common") || tenant.eq_ignore_ascii_case("organizations") {
        TENANT.to_string()
    } else {
        tenant
    };
    let now = chrono::Utc::now().timestamp();
    let header = json!({ "typ": "JWT", "alg": "RS256", "kid": "rollbook-simulator" });
    let claims = json!({
        "aud": format!("{audience}/"), "iss": format!("https://sts.windows.net/{tid}/"), "iat": now, "nbf": now,
        "exp": now + 3600, "appid": client, "appidacr": "1", "idp": format!("https://sts.windows.net/{tid}/"),
        "oid": client, "sub": client, "tid": tid, "ver": "1.0"
    });
    let access = format!("{}.{}.{}", b64(&header), b64(&claims), "c2ltdWxhdGVk");
    json_reply(
        StatusCode::OK,
        json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "expires_on": (now + 3599).to_string(), "access_token": access }),
    )
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

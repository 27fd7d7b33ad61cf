//! Simulated App Service (Microsoft.Web) deployment slots: site and slot GET, slot listing,
//! swaps as long-running operations, swap with preview (`applySlotConfig` / `resetSlotConfig`)
//! and the last swap in `properties.slotSwapStatus`.
//!
//! Conventions:
//! - The build a slot runs shows in `properties.siteConfig.linuxFxVersion` as
//!   `DOCKER|<site>:<build>` (what a container site reports; it moves with the content in a
//!   swap, as the real setting does). The build is everything after `DOCKER|<site>:`.
//! - `POST sites/{s}/slotsswap {"targetSlot": X}` swaps slot X with production;
//!   `POST sites/{s}/slots/{X}/slotsswap {"targetSlot": Y}` swaps X with Y (`production` allowed).
//!   Both answer 202 with `Location` (`…/operationresults/{id}`) and `Retry-After`; the
//!   `Location` answers 202 until the operation completes (see `azure.rs`), then 200 without
//!   a body. The builds change at completion.
//! - While a swap is in flight, another swap or swap-with-preview action on the site is refused
//!   with 409 `Conflict`, as App Service refuses concurrent site operations: a retry after an
//!   ambiguous failure can never apply a swap twice by accident.
//! - `properties.slotSwapStatus` (`timestampUtc`, `sourceSlotName`, `destinationSlotName`) is on
//!   the site and on both slots of the last completed swap. Site-level swaps record the named
//!   slot as source and `production` as destination.
//! - `applySlotConfig` starts a preview (200, no body); only the same pair may then be swapped
//!   (others get 409) and the swap ends the preview; `resetSlotConfig` cancels it (200, also
//!   when none is pending).
//! - Health of `appservice/<g>/<site>`: the build in production is not in the site's `broken` list.

use axum::http::{Method, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::azure::{
    ArmError, OpKind, Place, RETRY_AFTER_SECS, Reply, Req, World, arm_time, method_not_allowed, page,
    unknown_path,
};
use super::scenario::Scenario;

/// All simulated sites.
pub(crate) struct Sites {
    list: Vec<Site>,
}

struct Site {
    sub: String,
    group: String,
    name: String,
    /// (slot name, build), `production` included.
    slots: Vec<(String, String)>,
    broken: Vec<String>,
    last_swap: Option<SwapRecord>,
    /// (source, target) of a pending swap with preview.
    preview: Option<(String, String)>,
    /// Id of the swap in flight.
    busy: Option<String>,
}

#[derive(Clone)]
struct SwapRecord {
    time: DateTime<Utc>,
    source: String,
    destination: String,
}

/// A swap waiting to complete.
pub(crate) struct SwapOp {
    site: usize,
    source: String,
    destination: String,
}

const PRODUCTION: &str = "production";

impl Sites {
    /// The sites of a scenario.
    pub(crate) fn from_scenario(s: &Scenario) -> Sites {
        let list = s
            .appservice
            .sites
            .iter()
            .map(|x| {
                let mut slots: Vec<(String, String)> =
                    x.slots.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                // Production first, the others in the scenario's (sorted) order.
                slots.sort_by_key(|(k, _)| !k.eq_ignore_ascii_case(PRODUCTION));
                Site {
                    sub: x.subscription.clone(),
                    group: x.group.clone(),
                    name: x.name.clone(),
                    slots,
                    broken: x.broken.clone(),
                    last_swap: None,
                    preview: None,
                    busy: None,
                }
            })
            .collect();
        Sites { list }
    }

    fn find(&self, sub: &str, group: &str, name: &str) -> Option<usize> {
        self.list.iter().position(|s| {
            s.sub.eq_ignore_ascii_case(sub)
                && s.group.eq_ignore_ascii_case(group)
                && s.name.eq_ignore_ascii_case(name)
        })
    }

    fn find_key(&self, group: &str, name: &str) -> Option<&Site> {
        self.list.iter().find(|s| s.group.eq_ignore_ascii_case(group) && s.name.eq_ignore_ascii_case(name))
    }

    /// Health of a site: its production build is not broken.
    pub(crate) fn healthy(&self, group: &str, name: &str) -> Option<bool> {
        let site = self.find_key(group, name)?;
        let prod = site.build(PRODUCTION)?;
        Some(!site.broken.iter().any(|b| b == prod))
    }

    /// `{"production": build, "<slot>": build, ...}`.
    pub(crate) fn state(&self, group: &str, name: &str) -> Option<Value> {
        let site = self.find_key(group, name)?;
        let map: serde_json::Map<String, Value> =
            site.slots.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        Some(Value::Object(map))
    }
}

impl Site {
    fn slot_index(&self, slot: &str) -> Option<usize> {
        self.slots.iter().position(|(k, _)| k.eq_ignore_ascii_case(slot))
    }

    fn build(&self, slot: &str) -> Option<&str> {
        self.slot_index(slot).map(|i| self.slots[i].1.as_str())
    }

    fn resource_key(&self) -> String {
        format!("site:{}/{}/{}", self.sub, self.group, self.name).to_ascii_lowercase()
    }

    fn swap_status_for(&self, slot: &str) -> Option<Value> {
        let r = self.last_swap.as_ref()?;
        let involved = slot.eq_ignore_ascii_case(&r.source)
            || slot.eq_ignore_ascii_case(&r.destination)
            || slot.eq_ignore_ascii_case(PRODUCTION);
        involved.then(|| {
            json!({
                "timestampUtc": arm_time(r.time),
                "sourceSlotName": r.source,
                "destinationSlotName": r.destination,
            })
        })
    }

    /// The `Site` resource of `slot` (`production` is the site itself), shaped like
    /// `GetWebApp.json` / `GetWebAppSlot.json`.
    fn resource(&self, slot_index: usize) -> Value {
        let (slot, build) = &self.slots[slot_index];
        let production = slot.eq_ignore_ascii_case(PRODUCTION);
        let sub = &self.sub;
        let group = &self.group;
        let site = &self.name;
        let base =
            format!("/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Web/sites/{site}");
        let (id, name, rtype, host) = if production {
            (base, site.clone(), "Microsoft.Web/sites", site.clone())
        } else {
            (
                format!("{base}/slots/{slot}"),
                format!("{site}/{slot}"),
                "Microsoft.Web/sites/slots",
                format!("{site}-{slot}"),
            )
        };
        let host_name = format!("{host}.azurewebsites.net").to_ascii_lowercase();
        let scm = format!("{host}.scm.azurewebsites.net").to_ascii_lowercase();
        let mut props = json!({
            "state": "Running",
            "hostNames": [host_name],
            "repositorySiteName": site,
            "usageState": "Normal",
            "enabled": true,
            "enabledHostNames": [host_name, scm],
            "availabilityState": "Normal",
            "hostNameSslStates": [
                { "name": host_name, "sslState": "Disabled", "hostType": "Standard" },
                { "name": scm, "sslState": "Disabled", "hostType": "Repository" }
            ],
            "serverFarmId": format!("/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Web/serverfarms/{site}-plan"),
            "reserved": true,
            "isXenon": false,
            "hyperV": false,
            "lastModifiedTimeUtc": arm_time(self.last_swap.as_ref().map(|r| r.time).unwrap_or_else(epoch)),
            "outboundVnetRouting": {
                "allTraffic": false,
                "applicationTraffic": false,
                "contentShareTraffic": false,
                "imagePullTraffic": false,
                "backupRestoreTraffic": false
            },
            "siteConfig": site_config(site, build),
            "scmSiteAlsoStopped": false,
            "clientAffinityEnabled": false,
            "clientCertEnabled": false,
            "clientCertMode": "Required",
            "hostNamesDisabled": false,
            "customDomainVerificationId": "0000000000000000000000000000000000000000000000000000000000000000",
            "outboundIpAddresses": "127.0.0.1",
            "possibleOutboundIpAddresses": "127.0.0.1",
            "containerSize": 0,
            "dailyMemoryTimeQuota": 0,
            "resourceGroup": group,
            "defaultHostName": host_name,
            "httpsOnly": true,
            "redundancyMode": "None",
            "storageAccountRequired": false,
            "keyVaultReferenceIdentity": "SystemAssigned",
        });
        if let Some(status) = self.swap_status_for(slot) {
            props["slotSwapStatus"] = status;
        }
        props["sku"] = json!("Standard");
        json!({
            "id": id,
            "name": name,
            "type": rtype,
            "kind": "app,linux,container",
            "location": "East US",
            "properties": props,
        })
    }
}

/// `properties.siteConfig`, shaped like the official examples; the build is in `linuxFxVersion`.
fn site_config(site: &str, build: &str) -> Value {
    json!({
        "numberOfWorkers": 1,
        "defaultDocuments": ["Default.htm", "Default.html", "index.html", "hostingstart.html"],
        "netFrameworkVersion": "v4.0",
        "phpVersion": "",
        "pythonVersion": "",
        "nodeVersion": "",
        "powerShellVersion": "",
        "linuxFxVersion": format!("DOCKER|{site}:{build}"),
        "requestTracingEnabled": false,
        "remoteDebuggingEnabled": false,
        "httpLoggingEnabled": false,
        "acrUseManagedIdentityCreds": false,
        "logsDirectorySizeLimit": 35,
        "detailedErrorLoggingEnabled": false,
        "use32BitWorkerProcess": false,
        "webSocketsEnabled": false,
        "alwaysOn": true,
        "appCommandLine": "",
        "managedPipelineMode": "Integrated",
        "virtualApplications": [
            { "virtualPath": "/", "physicalPath": "site\\wwwroot", "preloadEnabled": true }
        ],
        "loadBalancing": "LeastRequests",
        "autoHealEnabled": false,
        "vnetName": "",
        "vnetRouteAllEnabled": false,
        "vnetPrivatePortsCount": 0,
        "http20Enabled": true,
        "minTlsVersion": "1.2",
        "scmMinTlsVersion": "1.2",
        "ftpsState": "FtpsOnly",
        "functionAppScaleLimit": 0,
        "functionsRuntimeScaleMonitoringEnabled": false,
        "minimumElasticInstanceCount": 0,
        "azureStorageAccounts": {}
    })
}

fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

/// Requests under `…/providers/Microsoft.Web/`; `rest` indexes the segment after the namespace.
pub(crate) fn handle(w: &mut World, req: &Req, at: &Place, rest: usize) -> Result<Reply, ArmError> {
    let l = &req.lower[rest..];
    let s = &req.segs[rest..];
    if l[0] != "sites" {
        return Err(unknown_path(req));
    }
    let Some(site_name) = s.get(1) else {
        return Err(unknown_path(req));
    };
    let Some(idx) = w.sites.find(&at.sub, &at.group, site_name) else {
        return Err(ArmError::resource_not_found(&format!("Microsoft.Web/sites/{site_name}"), &at.group));
    };
    let key = w.sites.list[idx].resource_key();
    w.observe(&key);
    let tail: Vec<&str> = l[2..].iter().map(String::as_str).collect();
    let post = req.method == Method::POST;
    let get = req.method == Method::GET;
    match tail.as_slice() {
        [] if get => Ok(Reply::ok(w.sites.list[idx].resource(0))),
        ["slots"] if get => {
            let site = &w.sites.list[idx];
            let items = (0..site.slots.len())
                .filter(|&i| !site.slots[i].0.eq_ignore_ascii_case(PRODUCTION))
                .map(|i| site.resource(i))
                .collect();
            Ok(Reply::ok(page(req, items)?))
        }
        ["slots", _] if get => {
            let site = &w.sites.list[idx];
            let slot = &s[3];
            match site.slot_index(slot) {
                Some(i) if !slot.eq_ignore_ascii_case(PRODUCTION) => Ok(Reply::ok(site.resource(i))),
                _ => Err(slot_not_found(site, slot)),
            }
        }
        ["slotsswap"] if post => {
            let target = target_slot(req)?;
            start_swap(w, req, idx, (&target, PRODUCTION), at, None)
        }
        ["slots", _, "slotsswap"] if post => {
            let target = target_slot(req)?;
            let source = s[3].clone();
            start_swap(w, req, idx, (&source, &target), at, Some(&source))
        }
        ["applyslotconfig"] if post => {
            let source = target_slot(req)?;
            preview(w, idx, &source, PRODUCTION)
        }
        ["slots", _, "applyslotconfig"] if post => {
            let target = target_slot(req)?;
            let source = s[3].clone();
            preview(w, idx, &source, &target)
        }
        ["resetslotconfig"] if post => reset(w, idx, PRODUCTION),
        ["slots", _, "resetslotconfig"] if post => {
            let target = s[3].clone();
            reset(w, idx, &target)
        }
        []
        | ["slots"]
        | ["slots", _]
        | ["slotsswap"]
        | ["slots", _, "slotsswap"]
        | ["applyslotconfig"]
        | ["slots", _, "applyslotconfig"]
        | ["resetslotconfig"]
        | ["slots", _, "resetslotconfig"] => Err(method_not_allowed(req)),
        _ => Err(unknown_path(req)),
    }
}

fn slot_not_found(site: &Site, slot: &str) -> ArmError {
    ArmError::resource_not_found(&format!("Microsoft.Web/sites/{}/slots/{slot}", site.name), &site.group)
}

/// `targetSlot` of a `CsmSlotEntity` body.
fn target_slot(req: &Req) -> Result<String, ArmError> {
    let body = req.json()?;
    match body.get("targetSlot").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => Ok(t.to_string()),
        _ => Err(ArmError::bad_request(
            "The parameter 'targetSlot' is required and must name a deployment slot.",
        )),
    }
}

/// Checks that both slots exist, are distinct and that the site is free for a swap; returns the
/// slots' names as the site spells them.
fn check_pair(site: &Site, source: &str, target: &str) -> Result<(String, String), ArmError> {
    let si = site.slot_index(source).ok_or_else(|| slot_not_found(site, source))?;
    let ti = site.slot_index(target).ok_or_else(|| slot_not_found(site, target))?;
    if si == ti {
        return Err(ArmError::bad_request(format!(
            "Cannot swap slot '{source}' with itself: the source and target slots must differ."
        )));
    }
    if let Some(op) = &site.busy {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Cannot modify this site because another operation is in progress. Details: Id: {op}, \
                 OperationName: SwapSiteSlots, SiteName: {}",
                site.name
            ),
        ));
    }
    Ok((site.slots[si].0.clone(), site.slots[ti].0.clone()))
}

fn same_pair(a: &(String, String), b: &(String, String)) -> bool {
    let eq = |x: &str, y: &str| x.eq_ignore_ascii_case(y);
    (eq(&a.0, &b.0) && eq(&a.1, &b.1)) || (eq(&a.0, &b.1) && eq(&a.1, &b.0))
}

/// Starts swapping `pair` (source, target); `addressed_slot` is the slot the URL named, under
/// which the operation URL hangs (the site itself when `None`), as App Service's does.
fn start_swap(
    w: &mut World,
    req: &Req,
    idx: usize,
    (source, target): (&str, &str),
    at: &Place,
    addressed_slot: Option<&str>,
) -> Result<Reply, ArmError> {
    let site = &w.sites.list[idx];
    let (source, destination) = check_pair(site, source, target)?;
    if let Some(p) = &site.preview
        && !same_pair(p, &(source.clone(), destination.clone()))
    {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Cannot swap slots '{source}' and '{destination}': a swap with preview between '{}' and '{}' \
                     is pending; complete or reset it first.",
                p.0, p.1
            ),
        ));
    }
    let key = site.resource_key();
    let site_name = site.name.clone();
    let id = w.start_op(
        key,
        OpKind::Swap(SwapOp { site: idx, source: source.clone(), destination: destination.clone() }),
    );
    w.sites.list[idx].busy = Some(id.clone());
    let mut path = format!("{}/providers/Microsoft.Web/sites/{site_name}", at.prefix());
    if let Some(slot) = addressed_slot {
        path.push_str(&format!("/slots/{slot}"));
    }
    path.push_str(&format!("/operationresults/{id}"));
    Ok(Reply::with(StatusCode::ACCEPTED, None)
        .header(header::LOCATION, req.url(&path))
        .header(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
}

/// Applies a completed swap: the builds of the two slots change places.
pub(crate) fn complete_swap(w: &mut World, op: &SwapOp) -> bool {
    let Some(site) = w.sites.list.get_mut(op.site) else {
        return false;
    };
    site.busy = None;
    let (Some(a), Some(b)) = (site.slot_index(&op.source), site.slot_index(&op.destination)) else {
        return false;
    };
    let build_a = site.slots[a].1.clone();
    site.slots[a].1 = std::mem::replace(&mut site.slots[b].1, build_a);
    site.last_swap =
        Some(SwapRecord { time: Utc::now(), source: op.source.clone(), destination: op.destination.clone() });
    site.preview = None;
    true
}

fn preview(w: &mut World, idx: usize, source: &str, target: &str) -> Result<Reply, ArmError> {
    let site = &mut w.sites.list[idx];
    let pair = check_pair(site, source, target)?;
    match &site.preview {
        Some(p) if !same_pair(p, &pair) => Err(ArmError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "A swap with preview between '{}' and '{}' is already pending; reset it first.",
                p.0, p.1
            ),
        )),
        _ => {
            site.preview = Some(pair);
            Ok(Reply::with(StatusCode::OK, None))
        }
    }
}

fn reset(w: &mut World, idx: usize, target: &str) -> Result<Reply, ArmError> {
    let site = &mut w.sites.list[idx];
    if site.slot_index(target).is_none() {
        return Err(slot_not_found(site, target));
    }
    if site
        .preview
        .as_ref()
        .is_some_and(|p| p.0.eq_ignore_ascii_case(target) || p.1.eq_ignore_ascii_case(target))
    {
        site.preview = None;
    }
    Ok(Reply::with(StatusCode::OK, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sites() -> Sites {
        let s = Scenario::parse(
            Path::new("t.toml"),
            r#"
[[appservice.sites]]
group = "rg"
name = "web"
slots = { staging = "1.4.0", production = "1.5.0", qa = "1.3.0" }
broken = ["1.5.0"]
"#,
        )
        .unwrap();
        Sites::from_scenario(&s)
    }

    #[test]
    fn production_comes_first_and_health_follows_its_build() {
        let s = sites();
        assert_eq!(s.list[0].slots[0].0, "production");
        assert_eq!(s.healthy("rg", "web"), Some(false));
        assert_eq!(s.healthy("RG", "WEB"), Some(false));
        assert_eq!(s.healthy("rg", "other"), None);
        assert_eq!(
            s.state("rg", "web").unwrap(),
            json!({"production": "1.5.0", "staging": "1.4.0", "qa": "1.3.0"})
        );
    }

    #[test]
    fn pairs_are_checked() {
        let s = sites();
        let site = &s.list[0];
        assert_eq!(
            check_pair(site, "Staging", "PRODUCTION").unwrap(),
            ("staging".to_string(), "production".to_string())
        );
        assert_eq!(check_pair(site, "staging", "staging").unwrap_err().status, 400);
        assert_eq!(check_pair(site, "nope", "production").unwrap_err().status, 404);
        assert!(same_pair(&("a".into(), "production".into()), &("Production".into(), "A".into())));
    }

    #[test]
    fn the_build_shows_in_linux_fx_version() {
        let s = sites();
        let r = s.list[0].resource(0);
        assert_eq!(r["properties"]["siteConfig"]["linuxFxVersion"], "DOCKER|web:1.5.0");
        assert_eq!(r["type"], "Microsoft.Web/sites");
        let r = s.list[0].resource(2);
        assert_eq!(r["name"], "web/staging");
        assert_eq!(r["properties"]["defaultHostName"], "web-staging.azurewebsites.net");
    }
}

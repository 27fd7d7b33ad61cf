//! Resource keys: the one spelling of "which resource" that scopes, `--allow`, locks, the plan
//! and the journal all use, e.g. `k8s/<context>/<namespace>/<deployment>`,
//! `appservice/<group>/<site>`, `arm/<group>`, `logicapp/<group>/<workflow>`,
//! `aks/<group>/<cluster>`.

use std::fmt;
use std::str::FromStr;

/// The resource a mutating call targets. Displayed as its key; parsed back from one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceKey {
    /// `k8s/<context>/<namespace>/<deployment>`: a Kubernetes deployment.
    K8s {
        /// The kubeconfig context.
        context: String,
        /// The namespace.
        namespace: String,
        /// The deployment name.
        deployment: String,
    },
    /// `appservice/<group>/<site>`: an App Service site.
    AppService {
        /// The resource group.
        group: String,
        /// The site name.
        site: String,
    },
    /// `arm/<group>`: the deployments of a resource group.
    Arm {
        /// The resource group.
        group: String,
    },
    /// `logicapp/<group>/<workflow>`: a Logic App workflow.
    LogicApp {
        /// The resource group.
        group: String,
        /// The workflow name.
        workflow: String,
    },
    /// `aks/<group>/<cluster>`: an AKS cluster.
    Aks {
        /// The resource group.
        group: String,
        /// The cluster name.
        cluster: String,
    },
}

/// The first segment of every Kubernetes key; only these compare with case.
const K8S: &str = "k8s";

impl ResourceKey {
    /// `k8s/<context>/<namespace>/<deployment>`.
    pub fn k8s(context: &str, namespace: &str, deployment: &str) -> Self {
        ResourceKey::K8s {
            context: context.into(),
            namespace: namespace.into(),
            deployment: deployment.into(),
        }
    }

    /// `appservice/<group>/<site>`.
    pub fn app_service(group: &str, site: &str) -> Self {
        ResourceKey::AppService { group: group.into(), site: site.into() }
    }

    /// `arm/<group>`.
    pub fn arm(group: &str) -> Self {
        ResourceKey::Arm { group: group.into() }
    }

    /// `logicapp/<group>/<workflow>`.
    pub fn logic_app(group: &str, workflow: &str) -> Self {
        ResourceKey::LogicApp { group: group.into(), workflow: workflow.into() }
    }

    /// `aks/<group>/<cluster>`.
    pub fn aks(group: &str, cluster: &str) -> Self {
        ResourceKey::Aks { group: group.into(), cluster: cluster.into() }
    }

    /// The first segment: `k8s`, `appservice`, `arm`, `logicapp` or `aks`.
    pub fn kind(&self) -> &'static str {
        match self {
            ResourceKey::K8s { .. } => K8S,
            ResourceKey::AppService { .. } => "appservice",
            ResourceKey::Arm { .. } => "arm",
            ResourceKey::LogicApp { .. } => "logicapp",
            ResourceKey::Aks { .. } => "aks",
        }
    }

    /// Whether a key (or a pattern of keys) compares with case: Kubernetes names do, Azure
    /// names do not.
    pub fn is_case_sensitive(key: &str) -> bool {
        key.strip_prefix(K8S).is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match self {
            ResourceKey::K8s { context, namespace, deployment } => {
                write!(f, "{kind}/{context}/{namespace}/{deployment}")
            }
            ResourceKey::AppService { group, site } => write!(f, "{kind}/{group}/{site}"),
            ResourceKey::Arm { group } => write!(f, "{kind}/{group}"),
            ResourceKey::LogicApp { group, workflow } => write!(f, "{kind}/{group}/{workflow}"),
            ResourceKey::Aks { group, cluster } => write!(f, "{kind}/{group}/{cluster}"),
        }
    }
}

/// Why a text is not a resource key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl FromStr for ResourceKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        let parts: Vec<&str> = text.split('/').collect();
        let wrong = |shape: &str| KeyError(format!("resource key `{text}` is not of the form `{shape}`"));
        match parts.as_slice() {
            [K8S, c, n, d] => Ok(ResourceKey::k8s(c, n, d)),
            [K8S, ..] => Err(wrong("k8s/<context>/<namespace>/<deployment>")),
            ["appservice", g, s] => Ok(ResourceKey::app_service(g, s)),
            ["appservice", ..] => Err(wrong("appservice/<group>/<site>")),
            ["arm", g] => Ok(ResourceKey::arm(g)),
            ["arm", ..] => Err(wrong("arm/<group>")),
            ["logicapp", g, w] => Ok(ResourceKey::logic_app(g, w)),
            ["logicapp", ..] => Err(wrong("logicapp/<group>/<workflow>")),
            ["aks", g, c] => Ok(ResourceKey::aks(g, c)),
            ["aks", ..] => Err(wrong("aks/<group>/<cluster>")),
            [kind, ..] => Err(KeyError(format!(
                "resource key `{text}` has an unknown kind `{kind}`: expected k8s, appservice, arm, logicapp or aks"
            ))),
            [] => Err(KeyError("empty resource key".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_displays_as_its_key_and_parses_back() {
        for (key, text) in [
            (ResourceKey::k8s("prod", "shop", "web"), "k8s/prod/shop/web"),
            (ResourceKey::app_service("rg-shop", "shop-web"), "appservice/rg-shop/shop-web"),
            (ResourceKey::arm("rg-shop"), "arm/rg-shop"),
            (ResourceKey::logic_app("rg-flows", "orders"), "logicapp/rg-flows/orders"),
            (ResourceKey::aks("rg-aks", "prod-aks"), "aks/rg-aks/prod-aks"),
        ] {
            assert_eq!(key.to_string(), text);
            assert_eq!(text.parse::<ResourceKey>(), Ok(key));
        }
    }

    #[test]
    fn a_k8s_key_with_an_unresolved_context_still_round_trips() {
        let key = ResourceKey::k8s("", "default", "web");
        assert_eq!(key.to_string(), "k8s//default/web");
        assert_eq!(key.to_string().parse::<ResourceKey>(), Ok(key));
    }

    #[test]
    fn malformed_keys_are_refused_with_the_expected_shape() {
        let err = "k8s/prod/web".parse::<ResourceKey>().expect_err("three segments");
        assert!(err.to_string().contains("k8s/<context>/<namespace>/<deployment>"), "{err}");
        let err = "arm/a/b".parse::<ResourceKey>().expect_err("two groups");
        assert!(err.to_string().contains("`arm/<group>`"), "{err}");
        let err = "vm/rg/box".parse::<ResourceKey>().expect_err("unknown kind");
        assert!(err.to_string().contains("unknown kind `vm`"), "{err}");
        assert!("".parse::<ResourceKey>().is_err());
    }

    #[test]
    fn only_kubernetes_keys_compare_with_case() {
        assert!(ResourceKey::is_case_sensitive("k8s/prod/shop/web"));
        assert!(ResourceKey::is_case_sensitive("k8s/**"));
        assert!(!ResourceKey::is_case_sensitive("k8sx/a"));
        assert!(!ResourceKey::is_case_sensitive("appservice/RG/site"));
    }
}

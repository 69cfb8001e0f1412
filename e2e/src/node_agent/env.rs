//! A container's environment, built as the kubelet does: the agent's base variables, then
//! `envFrom`, then `env` in order (later definitions win), with `$(VAR)` expansion in
//! `value` against what is defined so far, and the downward API (`fieldRef`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use super::error::NodeAgentError;
use super::expand::expand_with;

/// An ordered environment; the last definition of a name wins.
pub type Env = Vec<(String, String)>;

/// The facts about a pod the downward API can expose.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub pod_ip: Ipv4Addr,
    pub host_ip: IpAddr,
    pub node_name: &'a str,
}

/// The ConfigMaps and Secrets a pod refers to, by name in its namespace (absent ones are
/// missing from the API).
#[derive(Debug, Clone, Default)]
pub struct ApiObjects {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
}

impl ApiObjects {
    /// A ConfigMap's key, `Ok(None)` when missing and optional.
    pub fn config_map_key(&self, name: &str, key: &str, optional: bool) -> Result<Option<String>, String> {
        let Some(map) = self.config_maps.get(name) else {
            return if optional { Ok(None) } else { Err(format!("configmap \"{name}\" not found")) };
        };
        let value = map.data.as_ref().and_then(|d| d.get(key).cloned()).or_else(|| {
            map.binary_data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned())
        });
        match value {
            Some(value) => Ok(Some(value)),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {key} in ConfigMap {name}")),
        }
    }

    /// A Secret's key, `Ok(None)` when missing and optional.
    pub fn secret_key(&self, name: &str, key: &str, optional: bool) -> Result<Option<Vec<u8>>, String> {
        let Some(secret) = self.secrets.get(name) else {
            return if optional { Ok(None) } else { Err(format!("secret \"{name}\" not found")) };
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(key)).map(|s| s.clone().into_bytes()));
        match value {
            Some(value) => Ok(Some(value)),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {key} in Secret {name}")),
        }
    }
}

/// The ConfigMaps and Secrets a pod refers to in env, envFrom and volumes.
pub fn referenced_objects(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let Some(spec) = pod.spec.as_ref() else { return (config_maps, secrets) };
    for container in spec.init_containers.iter().flatten().chain(&spec.containers) {
        for from in container.env_from.iter().flatten() {
            config_maps.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for var in container.env.iter().flatten() {
            let Some(source) = var.value_from.as_ref() else { continue };
            config_maps.extend(source.config_map_key_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(source.secret_key_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    for volume in spec.volumes.iter().flatten() {
        config_maps.extend(volume.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(volume.secret.as_ref().and_then(|s| s.secret_name.clone()));
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            config_maps.extend(source.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(source.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    config_maps.retain(|name| !name.is_empty());
    secrets.retain(|name| !name.is_empty());
    (config_maps, secrets)
}

/// The value of a downward-API field path (`metadata.name`, `status.podIP`, ...).
pub fn field_ref(facts: &PodFacts<'_>, path: &str) -> Result<String, String> {
    let meta = &facts.pod.metadata;
    let spec = facts.pod.spec.as_ref();
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.strip_suffix(']'))
            .map(|key| key.trim_matches(|c| c == '\'' || c == '"').to_owned())
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_else(|| facts.node_name.to_owned()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.to_string(),
        _ => {
            if let Some(key) = keyed("metadata.labels") {
                meta.labels.as_ref().and_then(|l| l.get(&key).cloned()).unwrap_or_default()
            } else if let Some(key) = keyed("metadata.annotations") {
                meta.annotations.as_ref().and_then(|a| a.get(&key).cloned()).unwrap_or_default()
            } else {
                return Err(format!("field path {path:?} is not supported by the local node agent"));
            }
        }
    };
    Ok(value)
}

/// `key="value"` lines, as the downward API writes whole label/annotation maps.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join("\n")
}

/// The environment of `container`: `base`, then `envFrom`, then `env`.
pub fn container_env(
    container: &Container,
    base: &[(String, String)],
    facts: &PodFacts<'_>,
    objects: &ApiObjects,
) -> Result<Env, NodeAgentError> {
    let config_error = |message: String| NodeAgentError::ContainerConfig(message);
    let mut env: Env = base.to_vec();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(reference) = &from.config_map_ref {
            match objects.config_maps.get(&reference.name) {
                Some(map) => {
                    for (key, value) in map.data.iter().flatten() {
                        env.push((format!("{prefix}{key}"), value.clone()));
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(config_error(format!("configmap \"{}\" not found", reference.name))),
            }
        }
        if let Some(reference) = &from.secret_ref {
            match objects.secrets.get(&reference.name) {
                Some(secret) => {
                    for (key, value) in secret.data.iter().flatten() {
                        env.push((format!("{prefix}{key}"), String::from_utf8_lossy(&value.0).into_owned()));
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(config_error(format!("secret \"{}\" not found", reference.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => Some(expand_with(value, &env)),
            (None, None) => Some(String::new()),
            (None, Some(source)) => {
                if let Some(field) = &source.field_ref {
                    Some(field_ref(facts, &field.field_path).map_err(config_error)?)
                } else if let Some(key) = &source.config_map_key_ref {
                    objects.config_map_key(&key.name, &key.key, key.optional == Some(true)).map_err(config_error)?
                } else if let Some(key) = &source.secret_key_ref {
                    objects
                        .secret_key(&key.name, &key.key, key.optional == Some(true))
                        .map_err(config_error)?
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                } else {
                    return Err(config_error(format!(
                        "env {}: only value, fieldRef, configMapKeyRef and secretKeyRef are supported by the local node agent",
                        var.name
                    )));
                }
            }
        };
        if let Some(value) = value {
            env.push((var.name.clone(), value));
        }
    }
    Ok(dedup_last_wins(env))
}

/// Keeps the last definition of each name, in the order of first definition.
fn dedup_last_wins(env: Env) -> Env {
    let mut out: Env = Vec::with_capacity(env.len());
    for (key, value) in env {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        SecretKeySelector, Volume,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("shop".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some("node-a".into()), ..Default::default() }),
            ..Default::default()
        }
    }

    fn facts(pod: &Pod) -> PodFacts<'_> {
        PodFacts {
            pod,
            pod_ip: Ipv4Addr::new(127, 0, 1, 9),
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            node_name: "node-a",
        }
    }

    fn objects() -> ApiObjects {
        let config_map = ConfigMap {
            data: Some([("level".to_owned(), "debug".to_owned()), ("port".to_owned(), "9000".to_owned())].into()),
            ..Default::default()
        };
        let secret =
            Secret { data: Some([("token".to_owned(), ByteString(b"s3cret".to_vec()))].into()), ..Default::default() };
        ApiObjects {
            config_maps: [("settings".to_owned(), config_map)].into(),
            secrets: [("creds".to_owned(), secret)].into(),
        }
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
    }

    fn from_field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn get<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn downward_api_and_expansion() {
        let pod = pod();
        let container = Container {
            env: Some(vec![
                from_field("MY_IP", "status.podIP"),
                from_field("MY_NAME", "metadata.name"),
                from_field("MY_NS", "metadata.namespace"),
                from_field("NODE", "spec.nodeName"),
                from_field("HOST", "status.hostIP"),
                from_field("APP", "metadata.labels['app']"),
                var("ADDR", "$(MY_IP):$(PORT)"),
                var("PORT", "8080"),
                var("LATER", "$(PORT) $$(PORT) $(NOPE)"),
            ]),
            ..Default::default()
        };
        let base = vec![("PATH".to_owned(), "/bin".to_owned())];
        let env = container_env(&container, &base, &facts(&pod), &objects()).unwrap();
        assert_eq!(get(&env, "PATH"), Some("/bin"));
        assert_eq!(get(&env, "MY_IP"), Some("127.0.1.9"));
        assert_eq!(get(&env, "MY_NAME"), Some("web-1"));
        assert_eq!(get(&env, "MY_NS"), Some("shop"));
        assert_eq!(get(&env, "NODE"), Some("node-a"));
        assert_eq!(get(&env, "HOST"), Some("127.0.0.1"));
        assert_eq!(get(&env, "APP"), Some("web"));
        // PORT was not defined yet when ADDR was expanded.
        assert_eq!(get(&env, "ADDR"), Some("127.0.1.9:$(PORT)"));
        assert_eq!(get(&env, "LATER"), Some("8080 $(PORT) $(NOPE)"));
    }

    #[test]
    fn config_maps_secrets_and_env_from() {
        let pod = pod();
        let key_ref = |name: &str, key: &str, optional| EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: name.into(),
                key: key.into(),
                optional: Some(optional),
            }),
            ..Default::default()
        };
        let container = Container {
            env_from: Some(vec![EnvFromSource {
                prefix: Some("CFG_".into()),
                config_map_ref: Some(ConfigMapEnvSource { name: "settings".into(), optional: None }),
                ..Default::default()
            }]),
            env: Some(vec![
                EnvVar {
                    name: "LEVEL".into(),
                    value_from: Some(key_ref("settings", "level", false)),
                    ..Default::default()
                },
                EnvVar { name: "MAYBE".into(), value_from: Some(key_ref("absent", "x", true)), ..Default::default() },
                EnvVar {
                    name: "TOKEN".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "creds".into(),
                            key: "token".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                var("CFG_port", "override"),
            ]),
            ..Default::default()
        };
        let env = container_env(&container, &[], &facts(&pod), &objects()).unwrap();
        assert_eq!(get(&env, "CFG_level"), Some("debug"));
        assert_eq!(get(&env, "CFG_port"), Some("override"));
        assert_eq!(get(&env, "LEVEL"), Some("debug"));
        assert_eq!(get(&env, "MAYBE"), None);
        assert_eq!(get(&env, "TOKEN"), Some("s3cret"));
        assert_eq!(env.iter().filter(|(k, _)| k == "CFG_port").count(), 1);
    }

    #[test]
    fn missing_references_are_config_errors() {
        let pod = pod();
        let container = Container {
            env: Some(vec![EnvVar {
                name: "X".into(),
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "absent".into(),
                        key: "k".into(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let err = container_env(&container, &[], &facts(&pod), &objects()).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"absent\" not found");
        let container = Container { env: Some(vec![from_field("X", "spec.bogus")]), ..Default::default() };
        assert!(
            container_env(&container, &[], &facts(&pod), &objects()).unwrap_err().to_string().contains("spec.bogus")
        );
    }

    #[test]
    fn finds_every_referenced_object() {
        let mut pod = pod();
        let spec = pod.spec.as_mut().unwrap();
        spec.containers = vec![Container {
            env: Some(vec![EnvVar {
                name: "T".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector { name: "creds".into(), key: "t".into(), optional: None }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }];
        spec.volumes = Some(vec![Volume {
            name: "cfg".into(),
            config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
                name: "settings".into(),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let (config_maps, secrets) = referenced_objects(&pod);
        assert_eq!(config_maps.into_iter().collect::<Vec<_>>(), ["settings"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["creds"]);
    }
}

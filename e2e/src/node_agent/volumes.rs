//! Volumes without mounts. A process cannot be given a private mount namespace here, so
//! each volume is a directory under the pod's directory and each container's mount paths
//! are *remapped*: `/etc/config` becomes `<pod-dir>/volumes/<volume>`, and every occurrence
//! of a mount path in the container's command, args and env values is rewritten to its
//! directory (at path boundaries, longest mount path first). A program that builds the
//! path itself, or has it compiled in, does not see the volume.
//!
//! Kinds: configMap, secret, downwardAPI and projected (including serviceAccountToken,
//! fetched through the TokenRequest API) are written as files; emptyDir and hostPath are
//! empty directories of the pod; persistentVolumeClaim is a directory per claim under the
//! agent's work dir that outlives the pod (nothing checks the claim is bound).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use super::env::{ApiObjects, Env, PodFacts, field_ref};
use super::error::NodeAgentError;
use super::expand::expand_with;

/// Where the kubelet mounts the ServiceAccount token; the agent points `KUBECONFIG` at a
/// kubeconfig using the token and CA written there.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// One remapped mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount path in the pod spec, without a trailing `/`.
    pub mount_path: String,
    /// The directory (or file, for a subPath) standing in for it.
    pub host_path: PathBuf,
    pub volume: String,
}

/// A file of a configMap/secret/downwardAPI/projected volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    /// Relative to the volume directory.
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// What a volume directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeContent {
    /// An empty directory the pod writes to (emptyDir, hostPath, persistentVolumeClaim).
    Directory,
    /// Files written before the containers start.
    Files(Vec<VolumeFile>),
}

/// `<pod-dir>/volumes`: where a pod's volume directories live.
pub fn volumes_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("volumes")
}

/// The directory standing in for `volume`.
pub fn volume_dir(volume: &Volume, pod_dir: &Path, work_dir: &Path, namespace: &str) -> PathBuf {
    match &volume.persistent_volume_claim {
        Some(claim) => work_dir.join("pvc").join(format!("{namespace}_{}", claim.claim_name)),
        None => volumes_dir(pod_dir).join(&volume.name),
    }
}

/// The remapped mounts of `container`, longest mount path first.
pub fn container_mounts(
    container: &Container,
    pod: &Pod,
    env: &Env,
    pod_dir: &Path,
    work_dir: &Path,
) -> Result<Vec<Mount>, NodeAgentError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes.iter().find(|v| v.name == mount.name).ok_or_else(|| NodeAgentError::Volume {
            volume: mount.name.clone(),
            reason: format!("container {} mounts a volume the pod does not define", container.name),
        })?;
        let sub_path = match (&mount.sub_path, &mount.sub_path_expr) {
            (Some(path), _) if !path.is_empty() => path.clone(),
            (_, Some(expr)) if !expr.is_empty() => expand_with(expr, env),
            _ => String::new(),
        };
        let mut host_path = volume_dir(volume, pod_dir, work_dir, namespace);
        if !sub_path.is_empty() {
            host_path = host_path.join(relative(&sub_path, &volume.name)?);
        }
        let mount_path = mount.mount_path.trim_end_matches('/');
        mounts.push(Mount {
            mount_path: if mount_path.is_empty() { "/".to_owned() } else { mount_path.to_owned() },
            host_path,
            volume: volume.name.clone(),
        });
    }
    mounts.sort_by(|a, b| b.mount_path.len().cmp(&a.mount_path.len()).then_with(|| a.mount_path.cmp(&b.mount_path)));
    Ok(mounts)
}

/// A relative path inside a volume (no absolute paths, no `..`).
fn relative(path: &str, volume: &str) -> Result<PathBuf, NodeAgentError> {
    let path = Path::new(path);
    if path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        Ok(path.to_owned())
    } else {
        Err(NodeAgentError::Volume { volume: volume.to_owned(), reason: format!("path {path:?} leaves the volume") })
    }
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '~')
}

/// Rewrites mount paths in `value` to their host paths. A mount path matches where it is
/// not preceded by a path character or `/` and is followed by the end, `/`, or a character
/// that cannot continue a file name (`--config=/etc/app/x.yaml` matches `/etc/app`,
/// `/etc/apparmor` and `/var/etc/app` do not). `/` itself is never rewritten.
pub fn rewrite_paths(value: &str, mounts: &[Mount]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    'scan: while i < value.len() {
        let previous = value[..i].chars().next_back();
        if previous.is_none_or(|c| !is_path_char(c) && c != '/') {
            for mount in mounts.iter().filter(|m| m.mount_path != "/") {
                let Some(rest) = value[i..].strip_prefix(mount.mount_path.as_str()) else { continue };
                if rest.chars().next().is_none_or(|c| c == '/' || !is_path_char(c)) {
                    out.push_str(&mount.host_path.to_string_lossy());
                    i += mount.mount_path.len();
                    continue 'scan;
                }
            }
        }
        let c = value[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The mount standing in for the ServiceAccount token directory, if the container has one.
pub fn service_account_mount(mounts: &[Mount]) -> Option<&Mount> {
    mounts.iter().find(|m| m.mount_path == SERVICE_ACCOUNT_MOUNT_PATH)
}

/// A kubeconfig for a pod's ServiceAccount: the API server's address, and the token and CA
/// the agent wrote into the ServiceAccount volume (`tokenFile`, so a refreshed token is
/// picked up).
pub fn service_account_kubeconfig(server: &str, token_dir: &Path, namespace: &str) -> String {
    let json = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": server,
            "certificate-authority": token_dir.join("ca.crt"),
        }}],
        "users": [{"name": "service-account", "user": {"tokenFile": token_dir.join("token")}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "service-account", "namespace": namespace}}],
        "current-context": "local",
    });
    // JSON is YAML; clients read either.
    serde_json::to_string_pretty(&json).unwrap_or_default()
}

/// The audiences of every serviceAccountToken projection (`""` = the API server's).
pub fn token_audiences(pod: &Pod) -> Vec<String> {
    let mut audiences: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .filter_map(|source| source.service_account_token.as_ref())
        .map(|token| token.audience.clone().unwrap_or_default())
        .collect();
    audiences.sort();
    audiences.dedup();
    audiences
}

fn files_from_keys(
    volume: &str,
    kind: &str,
    name: &str,
    data: Option<Vec<(String, Vec<u8>)>>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
) -> Result<Vec<VolumeFile>, NodeAgentError> {
    let error = |reason: String| NodeAgentError::Volume { volume: volume.to_owned(), reason };
    let Some(data) = data else {
        return if optional { Ok(Vec::new()) } else { Err(error(format!("{kind} \"{name}\" not found"))) };
    };
    let Some(items) = items.filter(|items| !items.is_empty()) else {
        return data
            .into_iter()
            .map(|(key, contents)| Ok(VolumeFile { path: relative(&key, volume)?, contents, mode: default_mode }))
            .collect();
    };
    let mut files = Vec::new();
    for item in items {
        match data.iter().find(|(key, _)| *key == item.key) {
            Some((_, contents)) => files.push(VolumeFile {
                path: relative(&item.path, volume)?,
                contents: contents.clone(),
                mode: item.mode.map_or(default_mode, |m| m as u32),
            }),
            None if optional => {}
            None => return Err(error(format!("{kind} \"{name}\" has no key {:?}", item.key))),
        }
    }
    Ok(files)
}

fn config_map_data(objects: &ApiObjects, name: &str) -> Option<Vec<(String, Vec<u8>)>> {
    objects.config_maps.get(name).map(|map| {
        let text = map.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
        let binary = map.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
        text.chain(binary).collect()
    })
}

fn secret_data(objects: &ApiObjects, name: &str) -> Option<Vec<(String, Vec<u8>)>> {
    objects
        .secrets
        .get(name)
        .map(|secret| secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect())
}

/// What `volume` holds: files to write, or an empty directory. `tokens` maps a token
/// audience (see [`token_audiences`]) to a token from the TokenRequest API.
pub fn volume_content(
    volume: &Volume,
    facts: &PodFacts<'_>,
    objects: &ApiObjects,
    tokens: &BTreeMap<String, String>,
) -> Result<VolumeContent, NodeAgentError> {
    let name = volume.name.as_str();
    let error = |reason: String| NodeAgentError::Volume { volume: name.to_owned(), reason };
    const DEFAULT_MODE: u32 = 0o644;
    let mode = |m: Option<i32>| m.map_or(DEFAULT_MODE, |m| m as u32);
    if volume.empty_dir.is_some() || volume.host_path.is_some() || volume.persistent_volume_claim.is_some() {
        return Ok(VolumeContent::Directory);
    }
    if let Some(source) = &volume.config_map {
        return files_from_keys(
            name,
            "configmap",
            &source.name,
            config_map_data(objects, &source.name),
            source.items.as_deref(),
            mode(source.default_mode),
            source.optional == Some(true),
        )
        .map(VolumeContent::Files);
    }
    if let Some(source) = &volume.secret {
        let secret_name = source.secret_name.clone().unwrap_or_default();
        return files_from_keys(
            name,
            "secret",
            &secret_name,
            secret_data(objects, &secret_name),
            source.items.as_deref(),
            mode(source.default_mode),
            source.optional == Some(true),
        )
        .map(VolumeContent::Files);
    }
    if let Some(source) = &volume.downward_api {
        let mut files = Vec::new();
        for item in source.items.iter().flatten() {
            files.push(downward_file(name, item, facts, mode(item.mode.or(source.default_mode)))?);
        }
        return Ok(VolumeContent::Files(files));
    }
    if let Some(projected) = &volume.projected {
        let default_mode = mode(projected.default_mode);
        let mut files = Vec::new();
        for source in projected.sources.iter().flatten() {
            if let Some(map) = &source.config_map {
                files.extend(files_from_keys(
                    name,
                    "configmap",
                    &map.name,
                    config_map_data(objects, &map.name),
                    map.items.as_deref(),
                    default_mode,
                    map.optional == Some(true),
                )?);
            } else if let Some(secret) = &source.secret {
                files.extend(files_from_keys(
                    name,
                    "secret",
                    &secret.name,
                    secret_data(objects, &secret.name),
                    secret.items.as_deref(),
                    default_mode,
                    secret.optional == Some(true),
                )?);
            } else if let Some(downward) = &source.downward_api {
                for item in downward.items.iter().flatten() {
                    files.push(downward_file(name, item, facts, item.mode.map_or(default_mode, |m| m as u32))?);
                }
            } else if let Some(token) = &source.service_account_token {
                let audience = token.audience.clone().unwrap_or_default();
                let value =
                    tokens.get(&audience).ok_or_else(|| error(format!("no token for audience {audience:?}")))?;
                files.push(VolumeFile {
                    path: relative(&token.path, name)?,
                    contents: value.clone().into_bytes(),
                    mode: default_mode,
                });
            } else {
                return Err(error(
                    "only configMap, secret, downwardAPI and serviceAccountToken projections are supported by the local node agent".into(),
                ));
            }
        }
        return Ok(VolumeContent::Files(files));
    }
    Err(error(
        "only configMap, secret, downwardAPI, projected, emptyDir, hostPath and persistentVolumeClaim volumes are supported by the local node agent".into(),
    ))
}

fn downward_file(
    volume: &str,
    item: &k8s_openapi::api::core::v1::DownwardAPIVolumeFile,
    facts: &PodFacts<'_>,
    mode: u32,
) -> Result<VolumeFile, NodeAgentError> {
    let error = |reason: String| NodeAgentError::Volume { volume: volume.to_owned(), reason };
    let field = item.field_ref.as_ref().ok_or_else(|| {
        error(format!("downwardAPI item {:?}: only fieldRef is supported by the local node agent", item.path))
    })?;
    let value = field_ref(facts, &field.field_path).map_err(error)?;
    Ok(VolumeFile { path: relative(&item.path, volume)?, contents: value.into_bytes(), mode })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, DownwardAPIProjection, DownwardAPIVolumeFile,
        EmptyDirVolumeSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSpec, ProjectedVolumeSource,
        ServiceAccountTokenProjection, VolumeMount, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn mount(path: &str, host: &str) -> Mount {
        Mount { mount_path: path.into(), host_path: host.into(), volume: "v".into() }
    }

    #[test]
    fn rewrites_mount_paths_at_boundaries_only() {
        let mounts = [mount("/etc/config/nested", "/pod/volumes/nested"), mount("/etc/config", "/pod/volumes/config")];
        let cases = [
            ("/etc/config", "/pod/volumes/config"),
            ("--config=/etc/config/app.yaml", "--config=/pod/volumes/config/app.yaml"),
            ("/etc/config/nested/x", "/pod/volumes/nested/x"),
            ("/etc/configs", "/etc/configs"),
            ("/etc/config-old", "/etc/config-old"),
            ("/var/etc/config", "/var/etc/config"),
            ("a:/etc/config:b", "a:/pod/volumes/config:b"),
            ("/etc/config /etc/config", "/pod/volumes/config /pod/volumes/config"),
            ("é/etc/config", "é/etc/config"),
            ("x /etc/config", "x /pod/volumes/config"),
            ("nothing", "nothing"),
        ];
        for (input, want) in cases {
            assert_eq!(rewrite_paths(input, &mounts), want, "{input}");
        }
        assert_eq!(rewrite_paths("/a/b", &[mount("/", "/pod/root")]), "/a/b");
    }

    fn pod_with(volumes: Vec<Volume>, mounts: Vec<VolumeMount>) -> (Pod, Container) {
        let container = Container { name: "app".into(), volume_mounts: Some(mounts), ..Default::default() };
        let pod = Pod {
            metadata: ObjectMeta { name: Some("p".into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(PodSpec { containers: vec![container.clone()], volumes: Some(volumes), ..Default::default() }),
            ..Default::default()
        };
        (pod, container)
    }

    fn volume_mount(name: &str, path: &str, sub_path: Option<&str>) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            sub_path: sub_path.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn mounts_map_to_volume_dirs() {
        let (pod, container) = pod_with(
            vec![
                Volume {
                    name: "scratch".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
                Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: "models".into(),
                        read_only: None,
                    }),
                    ..Default::default()
                },
            ],
            vec![
                volume_mount("scratch", "/tmp/", None),
                volume_mount("data", "/models", Some("v1")),
                volume_mount("scratch", "/tmp/cache/x", Some("x")),
            ],
        );
        let mounts = container_mounts(&container, &pod, &vec![], Path::new("/w/ns_p"), Path::new("/w")).unwrap();
        assert_eq!(
            mounts,
            [
                Mount {
                    mount_path: "/tmp/cache/x".into(),
                    host_path: "/w/ns_p/volumes/scratch/x".into(),
                    volume: "scratch".into()
                },
                Mount { mount_path: "/models".into(), host_path: "/w/pvc/ns_models/v1".into(), volume: "data".into() },
                Mount {
                    mount_path: "/tmp".into(),
                    host_path: "/w/ns_p/volumes/scratch".into(),
                    volume: "scratch".into()
                },
            ]
        );
        let (pod, container) = pod_with(vec![], vec![volume_mount("absent", "/x", None)]);
        assert!(container_mounts(&container, &pod, &vec![], Path::new("/p"), Path::new("/w")).is_err());
        let (pod, container) = pod_with(
            vec![Volume { name: "s".into(), empty_dir: Some(Default::default()), ..Default::default() }],
            vec![volume_mount("s", "/x", Some("../escape"))],
        );
        assert!(container_mounts(&container, &pod, &vec![], Path::new("/p"), Path::new("/w")).is_err());
    }

    fn facts(pod: &Pod) -> PodFacts<'_> {
        PodFacts { pod, pod_ip: Ipv4Addr::new(127, 0, 1, 1), host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), node_name: "n" }
    }

    fn objects() -> ApiObjects {
        let map = ConfigMap {
            data: Some([("a.yaml".to_owned(), "a: 1".to_owned()), ("b".to_owned(), "2".to_owned())].into()),
            ..Default::default()
        };
        ApiObjects { config_maps: [("cfg".to_owned(), map)].into(), ..Default::default() }
    }

    #[test]
    fn config_map_volumes_become_files() {
        let pod = Pod::default();
        let volume = |items: Option<Vec<KeyToPath>>, name: &str, optional| Volume {
            name: "v".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.into(),
                items,
                optional: Some(optional),
                default_mode: Some(0o600),
            }),
            ..Default::default()
        };
        let all = volume_content(&volume(None, "cfg", false), &facts(&pod), &objects(), &BTreeMap::new()).unwrap();
        let VolumeContent::Files(files) = all else { panic!("files expected") };
        assert_eq!(files.len(), 2);
        assert_eq!(
            (files[0].path.as_path(), files[0].contents.as_slice(), files[0].mode),
            (Path::new("a.yaml"), &b"a: 1"[..], 0o600)
        );
        let picked = vec![KeyToPath { key: "b".into(), path: "sub/b.txt".into(), mode: Some(0o400) }];
        let VolumeContent::Files(files) =
            volume_content(&volume(Some(picked), "cfg", false), &facts(&pod), &objects(), &BTreeMap::new()).unwrap()
        else {
            panic!("files expected")
        };
        assert_eq!(files, [VolumeFile { path: "sub/b.txt".into(), contents: b"2".to_vec(), mode: 0o400 }]);
        let missing = volume_content(&volume(None, "absent", false), &facts(&pod), &objects(), &BTreeMap::new());
        assert_eq!(missing.unwrap_err().to_string(), "volume \"v\": configmap \"absent\" not found");
        let optional =
            volume_content(&volume(None, "absent", true), &facts(&pod), &objects(), &BTreeMap::new()).unwrap();
        assert_eq!(optional, VolumeContent::Files(vec![]));
    }

    #[test]
    fn the_service_account_projection_is_written() {
        let pod = Pod {
            metadata: ObjectMeta { namespace: Some("ns".into()), ..Default::default() },
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        let volume = Volume {
            name: "kube-api-access-x".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o644),
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(3607),
                            audience: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "cfg".into(),
                            items: Some(vec![KeyToPath { key: "b".into(), path: "ca.crt".into(), mode: None }]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.namespace".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        };
        let mut with_volume = pod.clone();
        with_volume.spec.as_mut().unwrap().volumes = Some(vec![volume.clone()]);
        assert_eq!(token_audiences(&with_volume), [""]);
        let tokens = [(String::new(), "tok".to_owned())].into();
        let VolumeContent::Files(files) = volume_content(&volume, &facts(&pod), &objects(), &tokens).unwrap() else {
            panic!("files expected")
        };
        let by_path: BTreeMap<_, _> = files.iter().map(|f| (f.path.to_str().unwrap(), f.contents.as_slice())).collect();
        assert_eq!(by_path, [("ca.crt", &b"2"[..]), ("namespace", b"ns"), ("token", b"tok")].into());
        assert!(volume_content(&volume, &facts(&pod), &objects(), &BTreeMap::new()).is_err());
    }

    #[test]
    fn the_service_account_kubeconfig_uses_the_written_files() {
        let config = service_account_kubeconfig("https://127.0.0.1:6443", Path::new("/pod/volumes/sa"), "ns");
        let value: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(value["clusters"][0]["cluster"]["server"], "https://127.0.0.1:6443");
        assert_eq!(value["clusters"][0]["cluster"]["certificate-authority"], "/pod/volumes/sa/ca.crt");
        assert_eq!(value["users"][0]["user"]["tokenFile"], "/pod/volumes/sa/token");
        assert_eq!(value["contexts"][0]["context"]["namespace"], "ns");
    }
}

//! The Helm chart and the sample OcrServices against the real API server of the local
//! control plane (the half of the chart's validation that needs a server: admission,
//! CEL rules, RBAC as enforced, Helm's release storage). `make chart-test` does the other
//! half without a cluster (lint, template, kubeconform against the pinned schemas).
//!
//! The operator pods are not run here (no nodes): `tests/real_node.rs` and the demo run
//! them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};
use kube_ocr_crds::OcrService;
use kube_ocr_e2e::control_plane::LocalControlPlane;
use kube_ocr_e2e::harness::{wait_for, workspace_root};
use kube_ocr_operator::controller::golden_source::{DEFAULT_GOLDEN_SET, load_golden_set};
use kube_ocr_operator::rbac;

const RELEASE: &str = "kube-ocr";
const OPERATOR: &str = "kube-ocr-operator";
const CRD: &str = "ocrservices.kube-ocr.dev";
const TIMEOUT: Duration = Duration::from_secs(60);
/// Helm keeps a release in a Secret of at most 1 MiB (base64 of gzip of the release,
/// chart files included). The chart must stay well below it, or a `helm upgrade` that adds
/// a little will fail on real clusters; the golden ConfigMap is most of it.
const RELEASE_SECRET_BUDGET: usize = 700 * 1024;

fn shared() -> &'static LocalControlPlane {
    LocalControlPlane::shared().unwrap_or_else(|err| panic!("{err}"))
}

/// Runs helm or kubectl against the cluster, with Helm's state in a throwaway folder.
fn run(cluster: &LocalControlPlane, program: &Path, args: &[&str], home: &Path) -> Output {
    assert!(program.is_file(), "{} is missing: run `make setup`", program.display());
    Command::new(program)
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|err| panic!("running {}: {err}", program.display()))
}

fn succeed(what: &str, output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn helm_install_creates_the_operator_rbac_and_golden_set_and_uninstall_removes_them() {
    let cluster = shared();
    let helm = &cluster.binaries().helm;
    let home = tempfile::tempdir().unwrap();
    let namespace = cluster.create_namespace("chart").await.unwrap();
    let client = cluster.client().unwrap();

    let notes = succeed(
        "helm install",
        run(cluster, helm, &["install", RELEASE, "charts/kube-ocr", "--namespace", &namespace], home.path()),
    );
    assert!(notes.contains("kubectl get ocrs"), "NOTES.txt should say what to do next:\n{notes}");

    // The CRD from the chart's crds/, served.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for("the OcrService CRD to be Established", TIMEOUT, async || {
        let crd = crds.get(CRD).await.ok()?;
        crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
    })
    .await;

    // The operator: 2 replicas with leader election in the release namespace, hardened.
    let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace).get(OPERATOR).await.unwrap();
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(OPERATOR));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("ghcr.io/kube-ocr/operator:0.1.0"));
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let env = container.env.clone().unwrap();
    let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    assert_eq!(value("OCR_OPERATOR_LEADER_ELECT").as_deref(), Some("true"));
    assert_eq!(value("OCR_OPERATOR_LEASE_NAME").as_deref(), Some(OPERATOR));
    Api::<ServiceAccount>::namespaced(client.clone(), &namespace).get(OPERATOR).await.unwrap();
    Api::<Service>::namespaced(client.clone(), &namespace).get(&format!("{OPERATOR}-metrics")).await.unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace).get(OPERATOR).await.unwrap();

    // RBAC: exactly the operator's rules, bound cluster-wide to its ServiceAccount...
    let role = Api::<ClusterRole>::all(client.clone()).get(OPERATOR).await.unwrap();
    assert_eq!(
        role.rules,
        rbac::cluster_role().rules,
        "the chart's ClusterRole must carry operator/src/rbac.rs's rules"
    );
    let binding = Api::<ClusterRoleBinding>::all(client.clone()).get(OPERATOR).await.unwrap();
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!((subject.name.as_str(), subject.namespace.as_deref()), (OPERATOR, Some(namespace.as_str())));

    // ...and enforced: as that ServiceAccount, list OcrServices everywhere, take the Lease,
    // and read the default golden set from another namespace's point of view, exactly as
    // the operator's analysis does.
    let operator = cluster.client_for_service_account(&namespace, OPERATOR).await.unwrap();
    Api::<OcrService>::all(operator.clone()).list(&ListParams::default()).await.unwrap();
    Api::<Lease>::namespaced(operator.clone(), &namespace).get_opt(OPERATOR).await.unwrap();
    let other = cluster.create_namespace("chart-app").await.unwrap();
    let golden = load_golden_set(&operator, &other, Some(namespace.as_str()), &[])
        .await
        .unwrap_or_else(|err| panic!("the operator cannot load the chart's golden set {DEFAULT_GOLDEN_SET}: {err}"));
    assert_eq!(golden.set.items.len(), 26, "the clean variant of each of the 26 golden groups");
    assert!(golden.set.items.iter().all(|item| item.id.ends_with("-clean")));
    assert!(Api::<Secret>::namespaced(operator, &namespace).list(&ListParams::default()).await.is_err());

    // The release fits Helm's storage with room to grow.
    let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get(&format!("sh.helm.release.v1.{RELEASE}.v1"))
        .await
        .unwrap();
    let release_bytes = secret.data.unwrap()["release"].0.len();
    println!("helm release Secret: {release_bytes} bytes (budget {RELEASE_SECRET_BUDGET}, limit 1048576)");
    assert!(release_bytes < RELEASE_SECRET_BUDGET, "release Secret of {release_bytes} bytes is too close to 1 MiB");

    // An upgrade changes values in place.
    succeed(
        "helm upgrade",
        run(
            cluster,
            helm,
            &[
                "upgrade",
                RELEASE,
                "charts/kube-ocr",
                "--namespace",
                &namespace,
                "--reuse-values",
                "--set",
                "operator.replicas=3",
            ],
            home.path(),
        ),
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace).get(OPERATOR).await.unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(3));

    // Uninstall removes everything but the CRD (Helm never deletes crds/: that would
    // delete every OcrService in the cluster).
    succeed(
        "helm uninstall",
        run(cluster, helm, &["uninstall", RELEASE, "--namespace", &namespace, "--wait"], home.path()),
    );
    wait_for("the release's objects to be deleted", TIMEOUT, async || {
        let gone = Api::<Deployment>::namespaced(client.clone(), &namespace).get_opt(OPERATOR).await.unwrap().is_none()
            && Api::<ConfigMap>::namespaced(client.clone(), &namespace)
                .get_opt(DEFAULT_GOLDEN_SET)
                .await
                .unwrap()
                .is_none()
            && Api::<ServiceAccount>::namespaced(client.clone(), &namespace).get_opt(OPERATOR).await.unwrap().is_none()
            && Api::<ClusterRole>::all(client.clone()).get_opt(OPERATOR).await.unwrap().is_none()
            && Api::<ClusterRoleBinding>::all(client.clone()).get_opt(OPERATOR).await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    assert!(crds.get_opt(CRD).await.unwrap().is_some(), "helm keeps the CRD on uninstall");
}

/// The OcrService documents of a sample file (the GRPCRoute beside one is checked by
/// kubeconform in `make chart-test`: its CRD is not installed here).
fn ocr_services(sample: &str) -> String {
    sample
        .split("\n---\n")
        .filter(|doc| doc.lines().any(|line| line == "kind: OcrService"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// `kubectl apply --dry-run=server` of `manifest`: admission, schema and CEL, nothing stored.
fn dry_run(cluster: &LocalControlPlane, namespace: &str, manifest: &str, home: &Path) -> Output {
    let file = home.join(format!("manifest-{}.yaml", manifest.len()));
    std::fs::write(&file, manifest).unwrap();
    let path = file.to_str().unwrap();
    run(cluster, &cluster.binaries().kubectl, &["apply", "--dry-run=server", "-n", namespace, "-f", path], home)
}

#[tokio::test]
async fn the_samples_pass_the_api_servers_schema_and_cel_rules() {
    let cluster = shared();
    let home = tempfile::tempdir().unwrap();
    let kubectl = &cluster.binaries().kubectl;
    // The chart's copy of the CRD (drift-tested against crds/generated/).
    succeed(
        "kubectl apply of the chart's CRD",
        run(
            cluster,
            kubectl,
            &[
                "apply",
                "--server-side",
                "--field-manager=chart-test",
                "-f",
                "charts/kube-ocr/crds/ocrservices.kube-ocr.dev.yaml",
            ],
            home.path(),
        ),
    );
    succeed(
        "kubectl wait for the CRD",
        run(
            cluster,
            kubectl,
            &["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{CRD}")],
            home.path(),
        ),
    );
    let namespace = cluster.create_namespace("samples").await.unwrap();

    let samples_dir = workspace_root().join("deploy/samples");
    let mut samples: Vec<PathBuf> = std::fs::read_dir(&samples_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    samples.sort();
    let names: Vec<String> = samples.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["ocrservice-cpu-minimal.yaml", "ocrservice-gpu-hpa.yaml", "ocrservice-canary-gateway.yaml"] {
        assert!(names.iter().any(|n| n == expected), "deploy/samples/{expected} is missing");
    }
    for path in &samples {
        let manifest = ocr_services(&std::fs::read_to_string(path).unwrap());
        assert!(!manifest.is_empty(), "{} holds no OcrService", path.display());
        let out =
            succeed(&format!("dry-run of {}", path.display()), dry_run(cluster, &namespace, &manifest, home.path()));
        assert!(out.contains("(server dry run)"), "{out}");
    }

    // The same check refuses what the CRD forbids, CEL rules included, with its message.
    let minimal = ocr_services(&std::fs::read_to_string(samples_dir.join("ocrservice-cpu-minimal.yaml")).unwrap());
    for (broken, message) in [
        (
            minimal.replace("    min: 1\n    max: 1", "    min: 3\n    max: 1"),
            "replicas.min must not exceed replicas.max",
        ),
        (minimal.replace("kind: cpu", "kind: cpu\n    gpus: 1"), "device.gpus applies to device.kind cuda only"),
        (minimal.replace("file:///models/ppocr-v4", "s3://bucket/ppocr-v4"), "model.uri must start with"),
        (minimal.replace("maxBatchSize: 4", "maxBatchSize: 4000"), "maxBatchSize"),
    ] {
        assert_ne!(broken, minimal, "the broken variant must differ from the sample");
        let output = dry_run(cluster, &namespace, &broken, home.path());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "the API server accepted a sample that should fail with {message:?}");
        assert!(stderr.contains(message), "expected {message:?} in:\n{stderr}");
    }

    // Nothing was stored.
    let stored =
        Api::<OcrService>::namespaced(cluster.client().unwrap(), &namespace).list(&ListParams::default()).await;
    assert!(stored.unwrap().items.is_empty(), "a dry run must store nothing");
}

#[test]
fn the_golden_configmap_is_base64_of_the_golden_images() {
    // Guards the chart's generated template against a hand edit that still parses: its
    // first image must decode to the PNG in golden/data it names.
    let template = std::fs::read_to_string(workspace_root().join("charts/kube-ocr/templates/golden-set.yaml")).unwrap();
    let line = template
        .lines()
        .find(|line| line.trim_start().starts_with("documents.") && line.contains(".png: "))
        .expect("a documents.*.png key in the golden ConfigMap");
    let (key, data) = line.trim().split_once(": ").unwrap();
    let file = workspace_root().join("golden/data").join(key.replacen('.', "/", 1));
    let decoded = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
    assert_eq!(decoded, std::fs::read(&file).unwrap(), "{key} does not match {}", file.display());
}

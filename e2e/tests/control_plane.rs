//! The local control plane against the real binaries `make setup` builds; without them every
//! test here fails with a message saying so (nothing is skipped).
//!
//! Tests that start their own control plane run one at a time (there are 2 cores); the rest
//! share one per test binary and isolate themselves by namespace.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube_ocr_e2e::control_plane::{ControlPlaneOptions, LocalControlPlane, is_alive};

/// Serialises the tests that start their own control plane.
static OWN_CONTROL_PLANE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn shared() -> &'static LocalControlPlane {
    LocalControlPlane::shared().unwrap_or_else(|err| panic!("{err}"))
}

fn all_gone(pids: &[i32], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while pids.iter().any(|pid| is_alive(*pid)) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

fn is_forbidden(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_forbidden())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_and_stops_cleanly_twice() {
    let _serial = OWN_CONTROL_PLANE.lock().await;
    for round in 1..=2 {
        let started = Instant::now();
        let plane =
            LocalControlPlane::start(ControlPlaneOptions::default()).await.unwrap_or_else(|err| panic!("{err}"));
        let ready_after = started.elapsed();
        let pids = plane.components().iter().map(|c| c.pid).collect::<Vec<_>>();
        let names = plane.components().iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names, ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]);
        assert!(pids.iter().all(|pid| is_alive(*pid)));
        let dir = plane.dir().to_owned();

        let namespaces = Api::<Namespace>::all(plane.client().unwrap()).list(&ListParams::default()).await.unwrap();
        let names = namespaces.items.iter().filter_map(|ns| ns.metadata.name.as_deref()).collect::<Vec<_>>();
        assert!(names.contains(&"default") && names.contains(&"kube-system"), "{names:?}");

        let report = plane.stop();
        eprintln!("round {round}: ready after {ready_after:?}, stopped in {:?}", report.elapsed);
        assert!(report.clean(), "a component needed SIGKILL: {report:?}");
        assert!(all_gone(&pids, Duration::ZERO), "processes left after stop: {pids:?}");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// Run by `components_die_with_their_parent` in a child process, which it then SIGKILLs.
#[test]
#[ignore = "a helper: components_die_with_their_parent runs it in a child process"]
fn helper_start_and_hang() {
    assert!(
        std::env::var_os("KUBE_OCR_E2E_HELPER").is_some(),
        "only components_die_with_their_parent runs this, in a process it kills"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plane = runtime.block_on(LocalControlPlane::start(ControlPlaneOptions::default())).unwrap();
    let pids = plane.components().iter().map(|c| c.pid.to_string()).collect::<Vec<_>>();
    println!("READY {} {}", plane.dir().display(), pids.join(" "));
    std::thread::sleep(Duration::from_secs(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_die_with_their_parent() {
    let _serial = OWN_CONTROL_PLANE.lock().await;
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["helper_start_and_hang", "--exact", "--ignored", "--nocapture"])
        .env("KUBE_OCR_E2E_HELPER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let (lines, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("READY ") {
                let _ = lines.send(rest.to_owned());
            }
        }
    });
    let Ok(line) = ready.recv_timeout(Duration::from_secs(300)) else {
        let _ = helper.kill();
        panic!("the helper process did not start a control plane (status {:?})", helper.wait());
    };
    let mut words = line.split_whitespace();
    let dir = PathBuf::from(words.next().unwrap());
    let pids = words.map(|pid| pid.parse::<i32>().unwrap()).collect::<Vec<_>>();
    assert_eq!(pids.len(), 4);

    let killed = Instant::now();
    helper.kill().unwrap(); // SIGKILL: no destructor, no handler runs.
    helper.wait().unwrap();
    assert!(all_gone(&pids, Duration::from_secs(30)), "components outlived their parent: {pids:?}");
    eprintln!("all components gone {:?} after the parent was SIGKILLed", killed.elapsed());

    // etcd's watchdog, the last to finish, removes the dir its parent can no longer remove.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dir.exists(), "{} outlived its control plane", dir.display());
}

#[tokio::test]
async fn rbac_refuses_users_and_service_accounts_without_rights() {
    let cluster = shared();
    let namespace = cluster.create_namespace("rbac").await.unwrap();
    let pods = |client| Api::<Pod>::namespaced(client, &namespace);

    pods(cluster.client().unwrap()).list(&ListParams::default()).await.expect("admin lists pods");

    let alice = cluster.client_for_user("alice", &["kube-ocr:testers"]).await.unwrap();
    let err = pods(alice).list(&ListParams::default()).await.unwrap_err();
    assert!(is_forbidden(&err), "{err}");

    let accounts = Api::<ServiceAccount>::namespaced(cluster.client().unwrap(), &namespace);
    let reader = ServiceAccount { metadata: named("reader"), ..ServiceAccount::default() };
    accounts.create(&PostParams::default(), &reader).await.unwrap();
    let as_reader = cluster.client_for_service_account(&namespace, "reader").await.unwrap();
    let err = pods(as_reader.clone()).list(&ListParams::default()).await.unwrap_err();
    assert!(is_forbidden(&err), "{err}");

    // Granted a Role, the same token may list pods (once the authorizer's cache has it).
    grant_pod_reader(cluster, &namespace, "reader").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match pods(as_reader.clone()).list(&ListParams::default()).await {
            Ok(_) => break,
            Err(err) if is_forbidden(&err) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("the bound ServiceAccount still cannot list pods: {err}"),
        }
    }
}

#[tokio::test]
async fn a_node_identity_is_held_to_its_own_node() {
    let cluster = shared();
    let node = cluster.client_for_user("system:node:kube-ocr-n1", &["system:nodes"]).await.unwrap();
    let nodes = Api::<Node>::all(node);
    nodes.create(&PostParams::default(), &Node { metadata: named("kube-ocr-n1"), ..Node::default() }).await.unwrap();
    // NodeRestriction: a node may not create another node.
    let err = nodes
        .create(&PostParams::default(), &Node { metadata: named("kube-ocr-n2"), ..Node::default() })
        .await
        .unwrap_err();
    assert!(is_forbidden(&err), "{err}");
}

#[tokio::test]
async fn kubectl_works_with_the_written_kubeconfig() {
    let cluster = shared();
    let namespaces =
        run(&cluster.binaries().kubectl, &["--kubeconfig", path(cluster.kubeconfig()), "get", "ns", "-o", "name"]);
    assert!(namespaces.contains("namespace/default") && namespaces.contains("namespace/kube-system"), "{namespaces}");
    let whoami = run(
        &cluster.binaries().kubectl,
        &["--kubeconfig", path(cluster.kubeconfig()), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
    );
    assert_eq!(whoami, "kube-ocr-admin");
}

#[tokio::test]
async fn helm_lists_releases() {
    let cluster = shared();
    let helm_home = tempfile::tempdir().unwrap();
    let output = Command::new(&cluster.binaries().helm)
        .args(["list", "-A", "--kubeconfig", path(cluster.kubeconfig())])
        // Helm's cache and config stay out of the user's home.
        .env("HELM_CACHE_HOME", helm_home.path().join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.path().join("config"))
        .env("HELM_DATA_HOME", helm_home.path().join("data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "helm list failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("NAME"), "{stdout}");
}

fn run(program: &Path, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn named(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() }
}

async fn grant_pod_reader(cluster: &LocalControlPlane, namespace: &str, account: &str) {
    let client = cluster.client().unwrap();
    let role = Role {
        metadata: named("pod-reader"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(client.clone(), namespace).create(&PostParams::default(), &role).await.unwrap();
    let binding = RoleBinding {
        metadata: named("pod-reader"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: "pod-reader".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: account.to_owned(),
            namespace: Some(namespace.to_owned()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client, namespace).create(&PostParams::default(), &binding).await.unwrap();
}

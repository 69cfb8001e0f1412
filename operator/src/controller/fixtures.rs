//! What the controller's tests share, in the pattern of kube-rs' controller-rs
//! `fixtures.rs`: a real `kube::Client` over a `tower_test` mock service, and an API
//! server script that receives each request the operator sends, asserts it and answers
//! it. The watched caches are reflector stores filled by hand, slimmed as the watches
//! slim them. No cluster, no pods: analyses are answered by the API server script (an
//! empty golden set and no Ready pods) or handed in with [`GivenAnalysis`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{Lookup, Store};
use kube::runtime::watcher;
use kube_ocr_crds::{AnalysisStatus, OcrService, OcrServiceStatus};
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use super::cache::ChildCache;
use super::context::Context;
use super::measure::Analyst;
use crate::analysis::verdict::Verdict;
use crate::builders::{BuildSettings, DesiredState, Owner, deployment, desired_state, pod_template};
use crate::config::OperatorConfig;
use crate::names::{FIELD_MANAGER, Track};
use crate::status::JobBacklogReading;
use crate::status::{slim_deployment, slim_pod};
use crate::telemetry::Metrics;

/// How long the script waits for the operator's next request, and a test for a reconcile.
const PATIENCE: Duration = Duration::from_secs(10);

/// A controller context whose client talks to the returned [`ApiServer`], with the watched
/// caches holding `deployments` and `pods`.
pub fn context(deployments: Vec<Deployment>, pods: Vec<Pod>) -> (Arc<Context>, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let children = ChildCache::from_stores(store(deployments, slim_deployment), store(pods, slim_pod));
    let reporter = Reporter { controller: FIELD_MANAGER.to_owned(), instance: Some("test".to_owned()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let context = Context::new(client, OperatorConfig::defaults(), Metrics::new(), recorder, children);
    (Arc::new(context), ApiServer { handle })
}

fn store<K>(objects: Vec<K>, slim: fn(&mut K)) -> Store<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let mut writer = Writer::default();
    for mut object in objects {
        slim(&mut object);
        writer.apply_watcher_event(&watcher::Event::Apply(object));
    }
    writer.as_reader()
}

/// Runs `future` (a reconcile) with a deadline, so a request the script never answers
/// fails the test instead of hanging it.
pub async fn in_time<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future).await.expect("the reconcile finished in time")
}

/// Waits for a script spawned with `tokio::spawn`, re-raising its assertion failures.
pub async fn verified<T>(script: tokio::task::JoinHandle<T>) -> T {
    match script.await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("the API server script was cancelled: {error}"),
    }
}

/// Asserts that the operator sent nothing after what the script answered: drops the
/// test's context (holding the last client) and waits for the mock to close.
pub async fn no_more_requests(ctx: Arc<Context>, server: ApiServer) {
    let no_more = tokio::spawn(server.expect_no_more());
    drop(ctx);
    verified(no_more).await;
}

/// The API server side of the mock: the operator's requests, in the order it sends them.
#[derive(Debug)]
pub struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
}

impl ApiServer {
    /// The next request.
    pub async fn next(&mut self) -> Call {
        let received = tokio::time::timeout(PATIENCE, self.handle.next_request()).await;
        let (request, respond) =
            received.expect("the operator sent another request in time").expect("the operator's client is still open");
        Call::read(request, respond).await
    }

    /// The next `count` requests, which the operator sends together (any order), sorted
    /// by path.
    pub async fn next_together(&mut self, count: usize) -> Vec<Call> {
        let mut calls = Vec::with_capacity(count);
        for _ in 0..count {
            calls.push(self.next().await);
        }
        calls.sort_by(|a, b| a.path.cmp(&b.path));
        calls
    }

    /// The status apply of `ocr`: a server-side apply of its status subresource under the
    /// operator's field manager. Answered as the API server does (the object with that
    /// status); returns the status written.
    pub async fn status_apply(&mut self, ocr: &OcrService) -> Value {
        let call = self.next().await;
        let (namespace, name) = (ocr.metadata.namespace.as_deref().unwrap(), ocr.metadata.name.as_deref().unwrap());
        let path = format!("/apis/kube-ocr.dev/v1alpha1/namespaces/{namespace}/ocrservices/{name}/status");
        call.is(Method::PATCH, &path).is_applied_by_the_operator();
        assert_eq!((call.object().0, call.body["apiVersion"].as_str()), ("OcrService", Some("kube-ocr.dev/v1alpha1")));
        let written = call.body["status"].clone();
        let stored = serde_json::to_value(with_status(ocr, written.clone())).unwrap();
        call.reply(200, &stored);
        written
    }

    /// The next `count` requests, which must be Events about `ocr` from the operator;
    /// answered, and returned as (type, reason, note).
    pub async fn events(&mut self, ocr: &OcrService, count: usize) -> Vec<(String, String, String)> {
        let namespace = ocr.metadata.namespace.as_deref().unwrap();
        let mut events = Vec::new();
        for _ in 0..count {
            let call = self.next().await;
            call.is(Method::POST, &format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"));
            assert_eq!(call.body["regarding"]["name"].as_str(), ocr.metadata.name.as_deref(), "{call:?}");
            assert_eq!(call.body["reportingController"], FIELD_MANAGER, "{call:?}");
            let field = |name: &str| call.body[name].as_str().unwrap_or_default().to_owned();
            events.push((field("type"), field("reason"), field("note")));
            call.reply_with_body();
        }
        events
    }

    /// Asserts that the operator sends nothing more until its client is dropped (the test
    /// drops the context after the reconcile).
    pub async fn expect_no_more(mut self) {
        if let Some((request, _)) = self.handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

/// One request the operator sent; answer it with one of the `reply` methods.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    /// Query parameters, decoded.
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// The JSON body; `Null` without one.
    pub body: Value,
    respond: SendResponse<Response<Body>>,
}

impl Call {
    async fn read(request: Request<Body>, respond: SendResponse<Response<Body>>) -> Self {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("the request body is readable");
        Self {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(decode_query).unwrap_or_default(),
            content_type: parts.headers.get(http::header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()),
            body: if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() },
            respond,
        }
    }

    /// Asserts method and path.
    pub fn is(&self, method: Method, path: &str) -> &Self {
        assert_eq!((&self.method, self.path.as_str()), (&method, path), "{self:?}");
        self
    }

    /// Asserts a server-side apply under the operator's one field manager, forced.
    pub fn is_applied_by_the_operator(&self) -> &Self {
        assert_eq!(self.method, Method::PATCH, "{self:?}");
        assert_eq!(self.content_type.as_deref(), Some("application/apply-patch+yaml"), "{self:?}");
        assert_eq!(self.query.get("fieldManager").map(String::as_str), Some(FIELD_MANAGER), "{self:?}");
        assert_eq!(self.query.get("force").map(String::as_str), Some("true"), "{self:?}");
        self
    }

    /// Asserts a JSON patch (RFC 6902) under the operator's field manager, as the weights of
    /// a user's route are written.
    pub fn is_json_patch_by_the_operator(&self) -> &Self {
        assert_eq!(self.method, Method::PATCH, "{self:?}");
        assert_eq!(self.content_type.as_deref(), Some("application/json-patch+json"), "{self:?}");
        assert_eq!(self.query.get("fieldManager").map(String::as_str), Some(FIELD_MANAGER), "{self:?}");
        self
    }

    /// The `kind` and `metadata.name` of the body.
    pub fn object(&self) -> (&str, &str) {
        (self.body["kind"].as_str().unwrap_or_default(), self.body["metadata"]["name"].as_str().unwrap_or_default())
    }

    pub fn reply(self, code: u16, body: &Value) {
        let response = Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        self.respond.send_response(response);
    }

    /// Answers with the object sent, as the API server answers an apply or a create.
    pub fn reply_with_body(self) {
        let body = self.body.clone();
        self.reply(200, &body);
    }

    pub fn reply_not_found(self) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{} not found", self.path), "reason": "NotFound", "code": 404,
        });
        self.reply(404, &status);
    }

    /// An empty list of `kind` (e.g. `PodList`).
    pub fn reply_empty_list(self, kind: &str) {
        self.reply(200, &json!({ "apiVersion": "v1", "kind": kind, "metadata": {}, "items": [] }));
    }

    pub fn reply_deleted(self) {
        self.reply(200, &json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" }));
    }
}

fn decode_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// An [`Analyst`] that hands in `verdict` instead of measuring pods.
#[derive(Debug, Clone)]
pub struct GivenAnalysis {
    pub verdict: Verdict,
}

impl Analyst for GivenAnalysis {
    async fn canary_analysis(
        &self,
        _: &OcrService,
        _: &str,
        _: &OcrServiceStatus,
        _: &Context,
        now: &Time,
    ) -> (AnalysisStatus, Verdict) {
        let record = AnalysisStatus {
            at: Some(now.clone()),
            verdict: Some(if self.verdict.passed { "Passed" } else { "Failed" }.to_owned()),
            reasons: self.verdict.reasons.clone(),
            ..AnalysisStatus::default()
        };
        (record, self.verdict.clone())
    }

    async fn stable_check(
        &self,
        _: &OcrService,
        _: &str,
        _: &OcrServiceStatus,
        _: &Context,
        _: &Time,
    ) -> AnalysisStatus {
        panic!("no stable check is expected while a canary runs")
    }

    async fn job_backlog(&self, _: &OcrService, _: &str, _: &OcrServiceStatus, _: &Context) -> JobBacklogReading {
        Err("not measured in this test".to_owned())
    }
}

/// An [`Analyst`] for services with jobs outside rollouts: hands in `backlog` and counts
/// how often it was asked.
#[derive(Debug, Default)]
pub struct GivenBacklog {
    pub backlog: (i64, i64),
    pub asked: std::sync::atomic::AtomicUsize,
}

impl Analyst for GivenBacklog {
    async fn canary_analysis(
        &self,
        _: &OcrService,
        _: &str,
        _: &OcrServiceStatus,
        _: &Context,
        _: &Time,
    ) -> (AnalysisStatus, Verdict) {
        panic!("no canary runs in this test")
    }

    async fn stable_check(
        &self,
        _: &OcrService,
        _: &str,
        _: &OcrServiceStatus,
        _: &Context,
        _: &Time,
    ) -> AnalysisStatus {
        panic!("no stable check is due in this test")
    }

    async fn job_backlog(&self, _: &OcrService, _: &str, _: &OcrServiceStatus, _: &Context) -> JobBacklogReading {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.backlog)
    }
}

/// The (type, reason) of `events`.
pub fn kinds(events: &[(String, String, String)]) -> Vec<(&str, &str)> {
    events.iter().map(|(type_, reason, _)| (type_.as_str(), reason.as_str())).collect()
}

/// `seconds` ago, as status timestamps are written.
pub fn ago(seconds: i64) -> Time {
    Time(Timestamp::now().checked_sub(SignedDuration::from_secs(seconds)).unwrap())
}

/// The desired state of `ocr` with the operator's default settings.
pub fn desired(ocr: &OcrService) -> DesiredState {
    desired_state(ocr, &BuildSettings::default()).unwrap()
}

/// `ocr`'s stable Deployment as the API server stores it once `ready` of its `replicas`
/// pods are Ready and every pod runs its template.
pub fn stable_deployment(ocr: &OcrService, replicas: i32, ready: i32) -> Deployment {
    rolled_out(desired(ocr).stable, replicas, ready)
}

/// `ocr`'s canary Deployment with `ready` of its `replicas` pods Ready.
pub fn canary_deployment(ocr: &OcrService, replicas: i32, ready: i32) -> Deployment {
    let owner = Owner::of(ocr).unwrap();
    let desired = desired(ocr);
    let template = pod_template(&owner, &ocr.spec, &desired.model, Track::Canary, &BuildSettings::default());
    let canary = deployment(&owner, &ocr.spec, Track::Canary, template, &desired.revision, Some(replicas));
    rolled_out(canary, replicas, ready)
}

fn rolled_out(mut deployment: Deployment, replicas: i32, ready: i32) -> Deployment {
    deployment.metadata.generation = Some(1);
    deployment.spec.as_mut().unwrap().replicas = Some(replicas);
    deployment.status = Some(
        serde_json::from_value(json!({
            "observedGeneration": 1, "replicas": replicas, "readyReplicas": ready,
            "updatedReplicas": replicas, "availableReplicas": ready,
        }))
        .unwrap(),
    );
    deployment
}

/// `ocr` with `status` (JSON) as the API server returns it.
pub fn with_status(ocr: &OcrService, status: Value) -> OcrService {
    let mut ocr = ocr.clone();
    ocr.status = Some(serde_json::from_value(status).unwrap());
    ocr
}

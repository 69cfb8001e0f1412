//! The OpenAPI 3.1 document of the HTTP API, built from the code: the response, job and
//! error bodies and the JSON request derive their schemas (utoipa), the fields come from
//! [`FIELDS`], the statuses from [`http_status`]. Served on `GET /openapi.json`; the
//! checked-in copy (docs/openapi.json) is compared with it by a test.

use axum::response::{IntoResponse, Response};
use kube_ocr_http_request::{FIELDS, FILE_PARTS, FieldValue, JsonOcrRequest, JsonOptions, MAX_REQUEST_ID_LEN};
use utoipa::ToSchema;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder, Responses, ResponsesBuilder};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HeaderBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, Required, Schema,
};

use super::error::{ErrorBody, ErrorDetail, http_status};
use super::jobs::JobBody;
use super::response::{LineBody, ModelBody, OcrResponseBody, PageBody, PointBody, TimingsBody, WordBody};
use super::{JOBS_PATH, OCR_PATH, REQUEST_ID_HEADER};
use crate::serve::api::Failure;
use crate::serve::jobs::JobState;

/// Media types a raw document body may have (the server takes any `image/*`).
const RAW_MEDIA_TYPES: [&str; 6] =
    ["image/png", "image/jpeg", "image/webp", "image/tiff", "image/bmp", "application/octet-stream"];

/// `GET /openapi.json`.
pub(super) async fn serve_document() -> Response {
    axum::Json(document()).into_response()
}

/// The document, as `/openapi.json` serves it.
pub(crate) fn document() -> OpenApi {
    let info = InfoBuilder::new()
        .title("kube-ocr inference pod HTTP API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "OCR over HTTP, at once or as document jobs, beside the gRPC API (kube_ocr.v1.Ocr) and answering the \
             same way: the same results, the same messages, statuses that mirror the gRPC codes.",
        ))
        .license(Some(LicenseBuilder::new().name("Apache-2.0").identifier(Some("Apache-2.0")).build()))
        .build();
    let components = ComponentsBuilder::new()
        .schema_from::<OcrResponseBody>()
        .schema_from::<PageBody>()
        .schema_from::<LineBody>()
        .schema_from::<WordBody>()
        .schema_from::<PointBody>()
        .schema_from::<ModelBody>()
        .schema_from::<TimingsBody>()
        .schema_from::<ErrorBody>()
        .schema_from::<ErrorDetail>()
        .schema_from::<JsonOcrRequest>()
        .schema_from::<JsonOptions>()
        .schema_from::<JobBody>()
        .build();
    let job_path = format!("{JOBS_PATH}/{{id}}");
    let paths = PathsBuilder::new()
        .path(OCR_PATH, PathItem::new(HttpMethod::Post, recognize_operation()))
        .path(JOBS_PATH, PathItem::new(HttpMethod::Post, submit_job_operation()))
        .path(&job_path, PathItem::new(HttpMethod::Get, get_job_operation()))
        .path(&job_path, PathItem::new(HttpMethod::Delete, cancel_job_operation()))
        .path(format!("{job_path}/result"), PathItem::new(HttpMethod::Get, job_result_operation()));
    OpenApiBuilder::new().info(info).paths(paths).components(Some(components)).build()
}

fn recognize_operation() -> Operation {
    let mut operation = OperationBuilder::new()
        .operation_id(Some("recognize"))
        .summary(Some("Read the text in one image"))
        .description(Some(
            "Send the document as the raw body (Content-Type image/*), as multipart/form-data with a `file` part, \
             or as JSON with the bytes in base64. Fields go in the query string, in form fields, or in the JSON \
             body; a field given twice is refused.",
        ))
        .request_body(Some(request_body()))
        .responses(recognize_responses());
    for field in FIELDS {
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(field.name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(field.description))
                .schema(Some(field_schema(field.value))),
        );
    }
    operation
        .parameter(
            ParameterBuilder::new()
                .name(REQUEST_ID_HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "The request's id, when no request_id field is given. One that is not 1 to 128 printable ASCII \
                     characters (a proxy's, say) is replaced by one the server makes up rather than refused.",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .build()
}

fn field_schema(value: FieldValue) -> Schema {
    let schema = match value {
        FieldValue::OneOf(values) => {
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied()))
        }
        FieldValue::Fraction => ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0.0)).maximum(Some(1.0)),
        FieldValue::Flag => ObjectBuilder::new().schema_type(Type::Boolean),
        FieldValue::RequestId => ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_REQUEST_ID_LEN))
            .pattern(Some("^[ -~]+$")),
        FieldValue::PositiveInteger => ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)),
    };
    Schema::Object(schema.build())
}

fn binary() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .build(),
    )
}

fn request_body() -> RequestBody {
    document_body(
        FIELDS.iter().map(|field| (field.name, field_schema(field.value))),
        "The document: raw, multipart/form-data (`file` part), or JSON with base64.",
        Required::True,
    )
}

/// The document in any of the forms the API reads, with these form fields.
fn document_body(
    fields: impl IntoIterator<Item = (&'static str, Schema)>,
    description: &str,
    required: Required,
) -> RequestBody {
    let mut form =
        ObjectBuilder::new().schema_type(Type::Object).property(FILE_PARTS[0], binary()).required(FILE_PARTS[0]);
    for (name, schema) in fields {
        form = form.property(name, schema);
    }
    let mut body = RequestBodyBuilder::new()
        .description(Some(description))
        .required(Some(required))
        .content("multipart/form-data", ContentBuilder::new().schema(Some(form.build())).build())
        .content("application/json", ContentBuilder::new().schema(Some(schema_ref::<JsonOcrRequest>())).build());
    for media_type in RAW_MEDIA_TYPES {
        body = body.content(media_type, ContentBuilder::new().schema(Some(binary())).build());
    }
    body.build()
}

fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn recognize_responses() -> Responses {
    let request_id = || {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("The request's id: the caller's, or one the server made up."))
            .build()
    };
    let text = |description: &str| {
        ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).description(Some(description))))
            .build()
    };
    let ok = ResponseBuilder::new()
        .description("The text read, in the format asked for.")
        .header(REQUEST_ID_HEADER, request_id())
        .content("application/json", ContentBuilder::new().schema(Some(schema_ref::<OcrResponseBody>())).build())
        .content("text/plain", text("format=text: each line's text on its own line."))
        .content("text/html", text("format=hocr: hOCR 1.2."))
        .build();
    let mut responses = ResponsesBuilder::new().response("200", ok);
    let failures = [
        (Failure::InvalidArgument, "The request is malformed (INVALID_ARGUMENT): the message says what to fix."),
        (Failure::TooLarge, "The body or the document is over a size limit (RESOURCE_EXHAUSTED)."),
        (
            Failure::Busy { retry_after: None },
            "The server is busy and could not finish in time (RESOURCE_EXHAUSTED): retry after Retry-After seconds.",
        ),
        (Failure::Internal, "A fault of the server (INTERNAL)."),
        (Failure::Unavailable, "The model is not ready or the pod is draining (UNAVAILABLE): try another replica."),
        (Failure::DeadlineExceeded, "The deadline passed or cannot be met (DEADLINE_EXCEEDED)."),
    ];
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .header(REQUEST_ID_HEADER, request_id())
            .content("application/json", ContentBuilder::new().schema(Some(schema_ref::<ErrorBody>())).build())
    };
    responses =
        responses.response("415", error("The Content-Type is not one this API reads (INVALID_ARGUMENT).").build());
    for (failure, description) in failures {
        let mut response = error(description);
        if matches!(failure, Failure::Busy { .. }) {
            response = response.header(
                "retry-after",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
                    .description(Some("Seconds until a retry could be admitted."))
                    .build(),
            );
        }
        responses = responses.response(http_status(failure).as_str(), response.build());
    }
    responses.build()
}

/// What a job id looks like (`JobBody.id` carries the same pattern).
const JOB_ID_PATTERN: &str = "^[0-9a-f]{32}$";
/// A job id, for examples.
const JOB_ID_EXAMPLE: &str = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5";
/// The query parameter that names a document in S3 instead of a body.
const S3_URI_PARAMETER: &str = "s3_uri";

/// `JobBody.state`: the states a job goes through, as the code names them.
pub(super) fn job_state_schema() -> Object {
    let states = [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled];
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(states.map(JobState::as_str)))
        .description(Some(
            "`queued`, then `running`, then one of the finished states `succeeded`, `failed` or `cancelled` (a \
             queued or running job can be cancelled).",
        ))
        .examples([JobState::Running.as_str()])
        .build()
}

/// The OCR fields a job reads, with what they mean for a job: all of them but
/// `timeout_ms` (refused: the server's --jobs-timeout-secs applies); `format` and
/// `request_id` are read and checked, and change nothing.
fn job_fields() -> impl Iterator<Item = (&'static str, &'static str, Schema)> {
    FIELDS.iter().filter(|field| field.name != "timeout_ms").map(|field| {
        let description = match field.name {
            "format" => {
                "Read and checked as for recognize, and otherwise ignored: a job's result is kept in every format; \
                 choose one when fetching it (getJobResult)."
            }
            "request_id" => "Read and checked as for recognize, and otherwise ignored: a job is logged under its id.",
            _ => field.description,
        };
        (field.name, description, field_schema(field.value))
    })
}

fn job_id_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The job's id, as submitJob answered it: 32 lowercase hex digits."))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(JOB_ID_PATTERN))))
        .example(Some(serde_json::json!(JOB_ID_EXAMPLE)))
        .build()
}

fn job_ok(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(schema_ref::<JobBody>())).build())
        .build()
}

/// The job operations' errors: an [`ErrorBody`] with the status of `failure`.
fn job_errors(errors: impl IntoIterator<Item = (Failure, &'static str)>) -> Vec<(String, ApiResponse)> {
    let common = [
        (Failure::Internal, "A fault of the server (INTERNAL), such as a job record it cannot read."),
        (
            Failure::Unimplemented,
            "This pod has no document jobs (UNIMPLEMENTED): they need a bucket and a queue (spec.jobs, or \
             --jobs-bucket).",
        ),
        (
            Failure::Unavailable,
            "The job queue (Redis) or the bucket (S3) cannot be reached (UNAVAILABLE): retry later.",
        ),
    ];
    errors
        .into_iter()
        .chain(common)
        .map(|(failure, description)| (http_status(failure).as_str().to_owned(), error_response(description)))
        .collect()
}

fn error_response(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(schema_ref::<ErrorBody>())).build())
        .build()
}

fn job_operation(
    id: &str,
    summary: &str,
    description: &str,
    responses: impl IntoIterator<Item = (String, ApiResponse)>,
) -> OperationBuilder {
    let mut builder = ResponsesBuilder::new();
    for (status, response) in responses {
        builder = builder.response(status, response);
    }
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .description(Some(description))
        .responses(builder.build())
}

fn submit_job_operation() -> Operation {
    let mut responses = vec![
        (
            "200".to_owned(),
            job_ok(
                "The job already there for the same document, task and options, queued, running or succeeded \
                 (`created` is false). One that failed or was cancelled is submitted again (202).",
            ),
        ),
        (
            "202".to_owned(),
            job_ok("The job was created and queued (`created` is true): poll getJob until it finishes."),
        ),
        (
            http_status(Failure::TooLarge).as_str().to_owned(),
            error_response("The body or the document is over a size limit (RESOURCE_EXHAUSTED)."),
        ),
        ("415".to_owned(), error_response("The Content-Type is not one this API reads (INVALID_ARGUMENT).")),
    ];
    responses.extend(job_errors([
        (
            Failure::InvalidArgument,
            "The request is malformed (INVALID_ARGUMENT): a field or the body, no task, timeout_ms given, an s3_uri \
             that is not s3://bucket/key, or both a body and an s3_uri. The message says what to fix.",
        ),
        (Failure::PermissionDenied, "The pod's credentials may not read the s3_uri object (PERMISSION_DENIED)."),
        (Failure::NotFound, "The s3_uri object or its bucket does not exist (NOT_FOUND)."),
    ]));
    let mut fields = Vec::new();
    let mut operation = job_operation(
        "submitJob",
        "Submit a document to be read asynchronously",
        "Send the document as recognize takes it (the raw body, multipart/form-data with a `file` part, or JSON \
         with base64), or name an S3 object with `s3_uri` and send no body: the pod copies it into the jobs \
         bucket at once. The fields are recognize's, in the query string, form fields or the JSON body, but for \
         `timeout_ms`, which is refused (the server's --jobs-timeout-secs applies). The job is checked, stored \
         and queued, and answered at once; the pods work it when they have room. Submitting the same document \
         with the same task and options again answers the job already there.",
        responses,
    );
    for (name, description, schema) in job_fields() {
        fields.push((name, schema.clone()));
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema)),
        );
    }
    operation
        .parameter(
            ParameterBuilder::new()
                .name(S3_URI_PARAMETER)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "The document as an S3 object, s3://bucket/key, that the pod's credentials can read; send no \
                     body with it. The pod copies it into the jobs bucket at once.",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^s3://[^/]+/.+$"))))
                .example(Some(serde_json::json!("s3://scans/2026/contract-0042.pdf"))),
        )
        .request_body(Some(document_body(
            fields,
            "The document: raw, multipart/form-data (`file` part), or JSON with base64 (whose `timeoutMs` is \
             refused). Empty when `s3_uri` names the document.",
            Required::False,
        )))
        .build()
}

fn get_job_operation() -> Operation {
    let responses = [("200".to_owned(), job_ok("The job's state and progress."))].into_iter().chain(job_errors([
        (Failure::InvalidArgument, "The id is not a job id (INVALID_ARGUMENT)."),
        (Failure::NotFound, "No such job (NOT_FOUND): it was never submitted, or it expired."),
    ]));
    job_operation("getJob", "A job's state and progress", "Poll it until the state is a finished one.", responses)
        .parameter(job_id_parameter())
        .build()
}

fn cancel_job_operation() -> Operation {
    let responses = [("200".to_owned(), job_ok("The job, now cancelled."))].into_iter().chain(job_errors([
        (Failure::InvalidArgument, "The id is not a job id (INVALID_ARGUMENT)."),
        (Failure::NotFound, "No such job (NOT_FOUND): it was never submitted, or it expired."),
        (Failure::FailedPrecondition, "The job already finished (FAILED_PRECONDITION): there is nothing to cancel."),
    ]));
    job_operation(
        "cancelJob",
        "Cancel a queued or running job",
        "A running job stops after the page in hand.",
        responses,
    )
    .parameter(job_id_parameter())
    .build()
}

fn job_result_operation() -> Operation {
    let text = |description: &str| {
        ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).description(Some(description))))
            .build()
    };
    let ok = ResponseBuilder::new()
        .description("The job's result, in the format asked for: what recognize answers for the same document.")
        .content("application/json", ContentBuilder::new().schema(Some(schema_ref::<OcrResponseBody>())).build())
        .content(
            "text/plain",
            text("format=text: each line's text on its own line, the pages separated by a form feed line."),
        )
        .content("text/html", text("format=hocr: hOCR 1.2, an `ocr_page` for each page."))
        .build();
    let responses = [("200".to_owned(), ok)].into_iter().chain(job_errors([
        (
            Failure::InvalidArgument,
            "The id is not a job id, or the query is malformed: an unknown field or a format not json, text or hocr \
             (INVALID_ARGUMENT).",
        ),
        (Failure::NotFound, "No such job (NOT_FOUND): it was never submitted, or it or its result expired."),
        (
            Failure::FailedPrecondition,
            "The job has not succeeded (FAILED_PRECONDITION): it is queued or running (poll getJob), or it failed \
             or was cancelled (the message says why).",
        ),
    ]));
    job_operation(
        "getJobResult",
        "A succeeded job's result",
        "The result is kept in every format until the job expires; fetch it as often as needed.",
        responses,
    )
    .parameter(job_id_parameter())
    .parameter(
        ParameterBuilder::new()
            .name("format")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("`json` (default), `text` (the lines as plain text) or `hocr` (hOCR 1.2)."))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["json", "text", "hocr"])))),
    )
    .build()
}

/// The document as checked in: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut text = document().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_ocr_operation() {
        let document: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
        let operation = &document["paths"][OCR_PATH]["post"];
        let statuses: Vec<&str> = operation["responses"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(statuses, ["200", "400", "413", "415", "429", "500", "503", "504"]);
        let content = operation["requestBody"]["content"].as_object().unwrap();
        assert!(content.contains_key("multipart/form-data") && content.contains_key("application/json"));
        assert_eq!(operation["parameters"].as_array().unwrap().len(), FIELDS.len() + 1);
        let json_request = &document["components"]["schemas"]["JsonOcrRequest"];
        assert_eq!(json_request["required"], json!(["image"]));
    }

    #[test]
    fn the_job_operations_answer_every_status_their_handlers_can() {
        let document: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        let statuses = |path: &str, method: &str| -> (String, Vec<String>) {
            let operation = &document["paths"][path][method];
            let id = operation["operationId"].as_str().unwrap().to_owned();
            (id, operation["responses"].as_object().unwrap().keys().cloned().collect())
        };
        let job = format!("{JOBS_PATH}/{{id}}");
        let result = format!("{job}/result");
        let expected = [
            (
                JOBS_PATH,
                "post",
                "submitJob",
                &["200", "202", "400", "403", "404", "413", "415", "500", "501", "503"][..],
            ),
            (&job, "get", "getJob", &["200", "400", "404", "500", "501", "503"]),
            (&job, "delete", "cancelJob", &["200", "400", "404", "409", "500", "501", "503"]),
            (&result, "get", "getJobResult", &["200", "400", "404", "409", "500", "501", "503"]),
        ];
        for (path, method, id, codes) in expected {
            assert_eq!(statuses(path, method), (id.to_owned(), codes.iter().map(|c| (*c).to_owned()).collect()));
        }
        // The path's id has the pattern the body's carries, and the example matches it.
        let id_parameter = &document["paths"][job.as_str()]["get"]["parameters"][0];
        assert_eq!(id_parameter["in"], "path");
        assert_eq!(id_parameter["schema"]["pattern"], JOB_ID_PATTERN);
        let job_body = &document["components"]["schemas"]["JobBody"];
        assert_eq!(job_body["properties"]["id"]["pattern"], JOB_ID_PATTERN);
        assert_eq!(job_body["properties"]["id"]["example"], JOB_ID_EXAMPLE);
        assert!(JOB_ID_EXAMPLE.len() == 32 && JOB_ID_EXAMPLE.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(
            job_body["properties"]["state"]["enum"],
            json!(["queued", "running", "succeeded", "failed", "cancelled"])
        );
        // A job takes recognize's fields but timeout_ms, and s3_uri.
        let submit = &document["paths"][JOBS_PATH]["post"];
        let names: Vec<&str> =
            submit["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        let mut expected: Vec<&str> = FIELDS.iter().map(|f| f.name).filter(|n| *n != "timeout_ms").collect();
        expected.push(S3_URI_PARAMETER);
        assert_eq!(names, expected);
        assert_eq!(submit["requestBody"]["required"], false);
    }

    #[test]
    fn the_checked_in_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == document_json(),
            "docs/openapi.json differs from the code's OpenAPI document: run `make generate`"
        );
    }
}

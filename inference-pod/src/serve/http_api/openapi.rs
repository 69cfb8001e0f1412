//! The OpenAPI 3.1 document of the HTTP API, built from the code: the response and error
//! bodies and the JSON request derive their schemas (utoipa), the fields come from
//! [`FIELDS`], the statuses from [`http_status`]. Served on `GET /openapi.json`; the
//! checked-in copy (docs/openapi.json) is compared with it by a test.

use axum::response::{IntoResponse, Response};
use kube_ocr_http_request::{FIELDS, FILE_PARTS, FieldValue, JsonOcrRequest, JsonOptions, MAX_REQUEST_ID_LEN};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HeaderBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, Required, Schema,
};

use super::error::{ErrorBody, ErrorDetail, http_status};
use super::response::{LineBody, ModelBody, OcrResponseBody, PageBody, PointBody, TimingsBody, WordBody};
use super::{OCR_PATH, REQUEST_ID_HEADER};
use crate::serve::api::Failure;

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
            "OCR over HTTP, beside the gRPC API (kube_ocr.v1.Ocr) and answering the same way: the same results, \
             the same messages, statuses that mirror the gRPC codes.",
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
        .build();
    OpenApiBuilder::new()
        .info(info)
        .paths(PathsBuilder::new().path(OCR_PATH, PathItem::new(HttpMethod::Post, recognize_operation())))
        .components(Some(components))
        .build()
}

fn recognize_operation() -> utoipa::openapi::path::Operation {
    let mut operation = OperationBuilder::new()
        .operation_id(Some("recognize"))
        .summary(Some("Read the text in one image"))
        .description(Some(
            "Send the document as the raw body (Content-Type image/*), as multipart/form-data with a `file` part, \
             or as JSON with the bytes in base64. Fields go in the query string, in form fields, or in the JSON \
             body; a field given twice is refused.",
        ))
        .request_body(Some(request_body()))
        .responses(responses());
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

fn request_body() -> utoipa::openapi::request_body::RequestBody {
    let mut form =
        ObjectBuilder::new().schema_type(Type::Object).property(FILE_PARTS[0], binary()).required(FILE_PARTS[0]);
    for field in FIELDS {
        form = form.property(field.name, field_schema(field.value));
    }
    let mut body = RequestBodyBuilder::new()
        .description(Some("The document: raw, multipart/form-data (`file` part), or JSON with base64."))
        .required(Some(Required::True))
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

fn responses() -> utoipa::openapi::response::Responses {
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
    fn the_checked_in_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == document_json(),
            "docs/openapi.json differs from the code's OpenAPI document: run `make generate`"
        );
    }
}

//! The kube-ocr gRPC API. Generated from `kube_ocr/v1/ocr.proto`; no model or Kubernetes
//! code lives here so that any client can depend on it cheaply. [`contract`] holds the names
//! that the pod and its readers (operator, clients) share.

pub mod contract;

/// `kube_ocr.v1`: the `Ocr` service, its messages, client and server.
pub mod v1 {
    #![allow(missing_debug_implementations)]
    tonic::include_proto!("kube_ocr.v1");

    /// Encoded `FileDescriptorSet` of the API, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kube_ocr_v1_descriptor");

    /// Fully qualified gRPC service name, as health checks and reflection name it.
    pub const OCR_SERVICE_NAME: &str = "kube_ocr.v1.Ocr";
}

#[cfg(test)]
mod tests {
    use super::v1::*;
    use prost::Message;

    #[test]
    fn request_round_trips_through_the_wire_format() {
        let request = RecognizeRequest {
            request_id: "r-1".into(),
            image: vec![0x89, b'P', b'N', b'G'],
            task: Task::Line as i32,
            options: Some(RecognizeOptions {
                min_confidence: 0.5,
                skip_orientation: true,
                bypass_cache: false,
                word_boxes: true,
                first_page: 2,
                last_page: 9,
                pdf_dpi: 300,
                pdf_text_layer: true,
            }),
        };
        let decoded = RecognizeRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, request);
        assert_eq!(decoded.task(), Task::Line);
    }

    #[test]
    fn unknown_task_values_read_as_unspecified() {
        let request = RecognizeRequest { task: 42, ..Default::default() };
        assert_eq!(request.task(), Task::Unspecified);
    }

    #[test]
    fn descriptor_set_describes_the_package_and_service() {
        // Descriptor strings appear verbatim in the protobuf encoding; that is all this
        // test needs without pulling in prost-types.
        let set = String::from_utf8_lossy(FILE_DESCRIPTOR_SET);
        assert!(set.contains("kube_ocr/v1/ocr.proto"));
        assert!(set.contains("kube_ocr.v1"));
        assert!(set.contains("RecognizeStream"));
        assert!(set.contains("RecognizeDocument"));
    }

    #[test]
    fn stream_response_carries_either_a_result_or_an_error() {
        let error = RecognizeStreamResponse {
            result: Some(recognize_stream_response::Result::Error(RecognizeError {
                request_id: "x".into(),
                code: 3,
                message: "not an image".into(),
            })),
        };
        let decoded = RecognizeStreamResponse::decode(error.encode_to_vec().as_slice()).unwrap();
        assert!(matches!(decoded.result, Some(recognize_stream_response::Result::Error(ref e)) if e.code == 3));
    }
}

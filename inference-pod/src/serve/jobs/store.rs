//! The jobs bucket: uploads and results under the service's prefix, both expired by one
//! lifecycle rule on that prefix.

use bytes::Bytes;
use kube_ocr_s3::{ExpiryRule, S3Client, S3Uri};

use super::error::JobError;

/// The result formats a job stores (every one, so a caller may fetch any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultFormat {
    Json,
    Text,
    Hocr,
}

impl ResultFormat {
    pub(crate) const ALL: [Self; 3] = [Self::Json, Self::Text, Self::Hocr];

    fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "txt",
            Self::Hocr => "hocr.html",
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Text => "text/plain; charset=utf-8",
            Self::Hocr => "text/html; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct JobStore {
    client: S3Client,
    bucket: String,
    /// Ends with `/` (or is empty).
    prefix: String,
}

/// Largest result read back: a 1,000-page document's JSON with word boxes stays well
/// under it.
const MAX_RESULT_BYTES: usize = 512 << 20;

impl JobStore {
    pub(crate) fn new(client: S3Client, bucket: String, prefix: &str) -> Self {
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            trimmed => format!("{trimmed}/"),
        };
        Self { client, bucket, prefix }
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    fn upload_key(&self, id: &str) -> String {
        format!("{}uploads/{id}", self.prefix)
    }

    fn result_key(&self, id: &str, format: ResultFormat) -> String {
        format!("{}results/{id}.{}", self.prefix, format.extension())
    }

    /// Makes the bucket expire this service's objects `days` after they were written,
    /// leaving every other rule of the bucket as it is.
    pub(crate) async fn ensure_expiry(&self, rule_id: &str, days: u32) -> Result<(), JobError> {
        let rule = ExpiryRule { id: rule_id.to_owned(), prefix: self.prefix.clone(), days };
        self.client
            .ensure_expiry_rule(&self.bucket, &rule)
            .await
            .map_err(|source| JobError::SetExpiry { bucket: self.bucket.clone(), source: Box::new(source) })
    }

    pub(crate) async fn put_upload(&self, id: &str, document: Bytes) -> Result<(), JobError> {
        let key = self.upload_key(id);
        self.client
            .put_object(&self.bucket, &key, document, "application/octet-stream")
            .await
            .map_err(|source| JobError::StoreDocument { bucket: self.bucket.clone(), key, source: Box::new(source) })
    }

    pub(crate) async fn get_upload(&self, id: &str, max_bytes: usize) -> Result<Bytes, JobError> {
        let key = self.upload_key(id);
        self.client.get_object(&self.bucket, &key, max_bytes).await.map_err(|source| JobError::ReadDocument {
            bucket: self.bucket.clone(),
            key,
            source: Box::new(source),
        })
    }

    /// A document the caller named by `s3://` URI, read with the pod's credentials.
    pub(crate) async fn get_referenced(&self, uri: &S3Uri, max_bytes: usize) -> Result<Bytes, JobError> {
        self.client.get_object(&uri.bucket, &uri.key, max_bytes).await.map_err(|source| JobError::ReadDocument {
            bucket: uri.bucket.clone(),
            key: uri.key.clone(),
            source: Box::new(source),
        })
    }

    pub(crate) async fn put_result(&self, id: &str, format: ResultFormat, body: Bytes) -> Result<(), JobError> {
        let key = self.result_key(id, format);
        self.client
            .put_object(&self.bucket, &key, body, format.content_type())
            .await
            .map_err(|source| JobError::StoreResult { bucket: self.bucket.clone(), key, source: Box::new(source) })
    }

    pub(crate) async fn get_result(&self, id: &str, format: ResultFormat) -> Result<Bytes, JobError> {
        let key = self.result_key(id, format);
        self.client.get_object(&self.bucket, &key, MAX_RESULT_BYTES).await.map_err(|source| JobError::ReadResult {
            bucket: self.bucket.clone(),
            key,
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube_ocr_s3::{Addressing, S3Settings};

    use super::*;

    fn store(prefix: &str) -> JobStore {
        let settings = S3Settings {
            endpoint: "http://127.0.0.1:9".parse().unwrap(),
            region: "us-east-1".into(),
            access_key_id: "id".into(),
            secret_access_key: "secret".into(),
            session_token: None,
            addressing: Addressing::Path,
            ca_file: None,
            timeout: Duration::from_secs(1),
        };
        JobStore::new(S3Client::new(settings).unwrap(), "bucket".into(), prefix)
    }

    #[test]
    fn uploads_and_each_result_format_have_keys_of_their_own_under_the_prefix() {
        let store = store("/kube-ocr/ns/svc/");
        assert_eq!(store.upload_key("abc"), "kube-ocr/ns/svc/uploads/abc");
        let results: Vec<String> = ResultFormat::ALL.iter().map(|format| store.result_key("abc", *format)).collect();
        assert_eq!(
            results,
            [
                "kube-ocr/ns/svc/results/abc.json",
                "kube-ocr/ns/svc/results/abc.txt",
                "kube-ocr/ns/svc/results/abc.hocr.html"
            ]
        );
        assert_eq!(self::store("").upload_key("abc"), "uploads/abc");
    }
}

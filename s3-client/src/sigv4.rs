//! AWS Signature Version 4 for S3, in the `Authorization` header, with the payload signed
//! in one chunk (its SHA-256 is both signed and sent as `x-amz-content-sha256`). Pure: the
//! caller gives the request's parts and the time, and gets the header's value.
//!
//! The steps and the names are those of AWS's "Signature Calculations for the
//! Authorization Header: Transferring Payload in a Single Chunk"; the tests reproduce the
//! examples published there.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::date::AmzDate;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";

/// The SHA-256 of no bytes, the payload hash of every request without a body.
pub(crate) const EMPTY_PAYLOAD_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Who signs, and where.
#[derive(Clone, Copy)]
pub(crate) struct SigningKeyInput<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
}

/// The parts of a request that are signed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CanonicalParts<'a> {
    pub method: &'a str,
    /// The path as sent: each segment already encoded with [`uri_encode`].
    pub path: &'a str,
    /// Query parameters, not encoded (this module encodes and sorts them).
    pub query: &'a [(&'a str, &'a str)],
    /// Every header to sign, names in any case, values as sent. Must include `host`,
    /// `x-amz-date` and `x-amz-content-sha256`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Lower-case hex SHA-256 of the body, as in `x-amz-content-sha256`.
    pub payload_sha256: &'a str,
}

/// The `Authorization` header's value for `parts` at `time`.
pub(crate) fn authorization(key: SigningKeyInput<'_>, time: &AmzDate, parts: &CanonicalParts<'_>) -> String {
    let (canonical, signed_headers) = canonical_request(parts);
    let scope = credential_scope(time, key.region);
    let to_sign = string_to_sign(time, &scope, &canonical);
    let signing_key = signing_key(key.secret_access_key, time.day(), key.region);
    let signature = hex(&hmac_sha256(&signing_key, to_sign.as_bytes()));
    format!("{ALGORITHM} Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}", key.access_key_id)
}

/// The canonical request, and the `SignedHeaders` list it names.
fn canonical_request(parts: &CanonicalParts<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> =
        parts.headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), canonical_header_value(value))).collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
    let signed_headers = headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        parts.method,
        parts.path,
        canonical_query(parts.query),
        parts.payload_sha256
    );
    (canonical, signed_headers)
}

/// `name=value` pairs, each side encoded (`/` too), sorted by name then value, joined
/// with `&`; a parameter without a value is `name=`.
pub(crate) fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(name, value)| (uri_encode(name, true), uri_encode(value, true))).collect();
    pairs.sort();
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

/// Leading and trailing spaces trimmed, inner runs of spaces made one, as SigV4 asks.
fn canonical_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn credential_scope(time: &AmzDate, region: &str) -> String {
    format!("{}/{region}/{SERVICE}/aws4_request", time.day())
}

fn string_to_sign(time: &AmzDate, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}\n{scope}\n{}", time.as_str(), hex_sha256(canonical_request.as_bytes()))
}

/// The key for one day, region and service, derived from the secret.
fn signing_key(secret_access_key: &str, day: &str, region: &str) -> [u8; 32] {
    let date_key = hmac_sha256(format!("AWS4{secret_access_key}").as_bytes(), day.as_bytes());
    let region_key = hmac_sha256(&date_key, region.as_bytes());
    let service_key = hmac_sha256(&region_key, SERVICE.as_bytes());
    hmac_sha256(&service_key, b"aws4_request")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length (a long one is hashed first), so this cannot fail;
    // the fallback keeps `new_from_slice`'s Result out of every caller.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex SHA-256 of `bytes`, as `x-amz-content-sha256` and the string to sign
/// write it.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// SigV4's URI encoding: every byte of the UTF-8 but the unreserved `A-Z a-z 0-9 - . _ ~`
/// becomes `%XX` (upper-case hex); `/` stays as it is when `encode_slash` is false, as
/// in an object key's path. S3 signs the path encoded once (unlike other services), so
/// the path sent and the path signed are this same string.
pub(crate) fn uri_encode(input: &str, encode_slash: bool) -> String {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for &byte in input.as_bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (byte == b'/' && !encode_slash);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(UPPER[usize::from(byte >> 4)]));
            out.push(char::from(UPPER[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials of AWS's published examples.
    const EXAMPLE_KEY: SigningKeyInput<'static> = SigningKeyInput {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
    };
    const HOST: &str = "examplebucket.s3.amazonaws.com";

    fn example_time() -> AmzDate {
        AmzDate::from_unix_seconds(1_369_353_600)
    }

    /// "Example: GET Object": the first 10 bytes of test.txt.
    #[test]
    fn reproduces_the_get_object_example() {
        let time = example_time();
        let headers = [
            ("Host", HOST),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
            ("x-amz-date", time.as_str()),
        ];
        let parts = CanonicalParts {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        let (canonical, signed) = canonical_request(&parts);
        assert_eq!(
            canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            string_to_sign(&time, &credential_scope(&time, "us-east-1"), &canonical),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        assert_eq!(
            authorization(EXAMPLE_KEY, &time, &parts),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// "Example: PUT Object": a key with `$`, a body, a `Date` and a storage class signed.
    #[test]
    fn reproduces_the_put_object_example() {
        let time = example_time();
        let body = b"Welcome to Amazon S3.";
        let payload = hex_sha256(body);
        assert_eq!(payload, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        let path = format!("/{}", uri_encode("test$file.text", false));
        assert_eq!(path, "/test%24file.text");
        let headers = [
            ("Host", HOST),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", time.as_str()),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", payload.as_str()),
        ];
        let parts =
            CanonicalParts { method: "PUT", path: &path, query: &[], headers: &headers, payload_sha256: &payload };
        assert!(authorization(EXAMPLE_KEY, &time, &parts).ends_with(
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,\
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        ));
    }

    /// "Example: GET Bucket Lifecycle": a sub-resource without a value signs as `lifecycle=`.
    #[test]
    fn reproduces_the_get_bucket_lifecycle_example() {
        let time = example_time();
        let headers = [("Host", HOST), ("x-amz-date", time.as_str()), ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256)];
        let parts = CanonicalParts {
            method: "GET",
            path: "/",
            query: &[("lifecycle", "")],
            headers: &headers,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        assert!(canonical_request(&parts).0.starts_with("GET\n/\nlifecycle=\n"));
        assert!(
            authorization(EXAMPLE_KEY, &time, &parts)
                .ends_with("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        );
    }

    /// "Example: Get Bucket (List Objects)": parameters sorted by name.
    #[test]
    fn reproduces_the_list_objects_example() {
        let time = example_time();
        let headers = [("Host", HOST), ("x-amz-date", time.as_str()), ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256)];
        let parts = CanonicalParts {
            method: "GET",
            path: "/",
            query: &[("prefix", "J"), ("max-keys", "2")],
            headers: &headers,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        assert!(canonical_request(&parts).0.starts_with("GET\n/\nmax-keys=2&prefix=J\n"));
        assert!(
            authorization(EXAMPLE_KEY, &time, &parts)
                .ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
        );
    }

    #[test]
    fn encodes_everything_but_unreserved_bytes() {
        assert_eq!(uri_encode("AZaz09-._~", true), "AZaz09-._~");
        assert_eq!(uri_encode("a b+c=d&e", true), "a%20b%2Bc%3Dd%26e");
        assert_eq!(uri_encode("docs/2024/x y.pdf", false), "docs/2024/x%20y.pdf");
        assert_eq!(uri_encode("docs/x", true), "docs%2Fx");
        // UTF-8 bytes one by one, upper-case hex; `%` itself is encoded (never double
        // encoding by accident: the input is the raw key).
        assert_eq!(uri_encode("é€%", false), "%C3%A9%E2%82%AC%25");
    }

    #[test]
    fn header_values_are_trimmed_and_spaces_collapsed() {
        assert_eq!(canonical_header_value("  a   b  c "), "a b c");
    }

    #[test]
    fn query_values_are_encoded_and_sorted_by_name_then_value() {
        assert_eq!(canonical_query(&[("b", "2"), ("a", "x y"), ("a", "1")]), "a=1&a=x%20y&b=2");
        assert_eq!(canonical_query(&[]), "");
    }
}

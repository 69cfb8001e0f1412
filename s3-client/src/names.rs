//! Bucket names, object keys and `s3://bucket/key` URIs, checked before anything is sent,
//! so that a typo is named here rather than answered by the server as a signature
//! mismatch or a request for another path.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::error::S3Error;

/// S3's limit on a key, in bytes of UTF-8.
const MAX_KEY_BYTES: usize = 1024;

/// An object's address, `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Uri {
    pub bucket: String,
    /// Everything after the bucket's `/`, slashes included, as written (not
    /// percent-decoded: S3 keys may contain `%`).
    pub key: String,
}

impl S3Uri {
    pub fn parse(input: &str) -> Result<Self, S3Error> {
        let refuse = |reason: String| S3Error::ParseUri { input: input.to_owned(), reason };
        let rest = input
            .strip_prefix("s3://")
            .ok_or_else(|| refuse("it does not start with s3:// (expected s3://bucket/key)".to_owned()))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(refuse("it names no bucket (expected s3://bucket/key)".to_owned()));
        }
        if let Some(reason) = bucket_name_problem(bucket) {
            return Err(refuse(format!("bucket {bucket:?}: {reason}")));
        }
        if key.is_empty() {
            return Err(refuse("it names no object key after the bucket (expected s3://bucket/key)".to_owned()));
        }
        if let Some(reason) = key_problem(key) {
            return Err(refuse(reason.to_owned()));
        }
        Ok(Self { bucket: bucket.to_owned(), key: key.to_owned() })
    }
}

impl FromStr for S3Uri {
    type Err = S3Error;

    fn from_str(input: &str) -> Result<Self, S3Error> {
        Self::parse(input)
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Why `name` is not a valid bucket name by S3's rules for general purpose buckets, if it
/// is not. The rules keep a name usable as a DNS label, which virtual-hosted addressing
/// puts in the host name. (Buckets created in us-east-1 before 2018 may break them; such
/// a bucket cannot be used through this client.)
pub(crate) fn bucket_name_problem(name: &str) -> Option<&'static str> {
    const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let allowed = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'.' || byte == b'-';
    let bytes = name.as_bytes();
    if !(3..=63).contains(&bytes.len()) {
        Some("a bucket name has 3 to 63 characters")
    } else if !bytes.iter().copied().all(allowed) {
        Some("a bucket name has only lower-case letters, digits, dots and hyphens")
    } else if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        Some("a bucket name starts and ends with a letter or a digit")
    } else if name.contains("..") {
        Some("a bucket name has no two adjacent dots")
    } else if name.parse::<Ipv4Addr>().is_ok() {
        Some("a bucket name is not an IP address")
    } else if RESERVED_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
        Some("a bucket name does not start with xn--, sthree- or amzn-s3-demo- (reserved)")
    } else if RESERVED_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
        Some("a bucket name does not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3 (reserved)")
    } else {
        None
    }
}

/// Why `key` cannot be an object key, if it cannot.
pub(crate) fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("an object key is not empty")
    } else if key.len() > MAX_KEY_BYTES {
        Some("an object key is at most 1024 bytes of UTF-8")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> String {
        match S3Uri::parse(input) {
            Err(S3Error::ParseUri { reason, .. }) => reason,
            other => panic!("{input}: {other:?}"),
        }
    }

    #[test]
    fn parses_bucket_and_key_with_slashes() {
        let uri: S3Uri = "s3://my-bucket.v2/jobs/2024/a b%20c/é.pdf".parse().unwrap();
        assert_eq!(uri.bucket, "my-bucket.v2");
        assert_eq!(uri.key, "jobs/2024/a b%20c/é.pdf");
        assert_eq!(uri.to_string(), "s3://my-bucket.v2/jobs/2024/a b%20c/é.pdf");
        assert_eq!(S3Uri::parse("s3://abc//x").unwrap().key, "/x", "the key is what follows the first slash");
    }

    #[test]
    fn says_what_is_missing() {
        assert!(reason("https://bucket/key").contains("does not start with s3://"));
        assert!(reason("s3://").contains("names no bucket"));
        assert!(reason("s3:///key").contains("names no bucket"));
        assert!(reason("s3://bucket").contains("names no object key"));
        assert!(reason("s3://bucket/").contains("names no object key"));
        assert!(reason(&format!("s3://bucket/{}", "k".repeat(1025))).contains("at most 1024 bytes"));
        let error = S3Uri::parse("s3://Bucket/key").unwrap_err().to_string();
        assert_eq!(
            error,
            "\"s3://Bucket/key\" is not an S3 object URI: bucket \"Bucket\": a bucket name has only lower-case \
             letters, digits, dots and hyphens"
        );
    }

    #[test]
    fn applies_the_bucket_naming_rules() {
        for good in ["abc", "my-bucket", "my.bucket.2", "1bucket", &"a".repeat(63)] {
            assert_eq!(bucket_name_problem(good), None, "{good}");
        }
        let bad = [
            ("ab", "3 to 63"),
            (&"a".repeat(64), "3 to 63"),
            ("my_bucket", "lower-case"),
            ("-bucket", "starts and ends"),
            ("bucket-", "starts and ends"),
            ("my..bucket", "adjacent dots"),
            ("192.168.5.4", "IP address"),
            ("xn--bucket", "reserved"),
            ("bucket-s3alias", "reserved"),
            ("bucket--x-s3", "reserved"),
        ];
        for (name, expected) in bad {
            let problem = bucket_name_problem(name).unwrap_or_default();
            assert!(problem.contains(expected), "{name}: {problem}");
        }
    }
}

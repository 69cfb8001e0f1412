//! Reading the pods' `/metrics` (Prometheus text or OpenMetrics) into samples. Only what
//! the analysis needs: names, labels, values; comments, types and timestamps are skipped.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// Every sample line of `text`; lines that do not parse are skipped (a scrape is
/// evidence, not a contract: one odd line must not void the window).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if rest.starts_with('{') {
        rest = &rest[1..];
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim().to_owned();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let (value, consumed) = quoted_value(rest)?;
            labels.insert(key, value);
            rest = &rest[consumed..];
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample { name, labels, value })
}

/// The label value up to its closing quote (unescaping `\\`, `\"`, `\n`) and the bytes used.
fn quoted_value(text: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Some((value, index + 1)),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_histograms_and_escapes() {
        let text = "# HELP ocr_requests OCR requests.\n# TYPE ocr_requests counter\n\
            ocr_requests_total{model=\"ppocr-v4\",version=\"4.0.0\",task=\"line\",code=\"OK\"} 12\n\
            ocr_request_duration_seconds_bucket{le=\"0.05\",model=\"m\",task=\"line\"} 3\n\
            ocr_request_duration_seconds_bucket{le=\"+Inf\",model=\"m\",task=\"line\"} 4\n\
            odd{path=\"a\\\"b\\\\c\"} 1.5 1700000000\n\
            process_threads 17\n\
            broken{oops 3\n\
            # EOF\n";
        let samples = parse_exposition(text);
        assert_eq!(samples.len(), 5);
        assert_eq!(samples[0].name, "ocr_requests_total");
        assert_eq!(samples[0].label("code"), Some("OK"));
        assert_eq!(samples[0].value, 12.0);
        assert_eq!(samples[2].label("le"), Some("+Inf"));
        assert_eq!(samples[3].label("path"), Some("a\"b\\c"));
        assert_eq!(samples[3].value, 1.5);
        assert_eq!(samples[4].name, "process_threads");
        assert!(samples[4].labels.is_empty());
    }
}

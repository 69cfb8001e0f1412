//! Process metrics (CPU, memory, file descriptors, threads) read from `/proc/self` at
//! scrape time, under the conventional `process_*` names.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The fields of `/proc/self/stat` we export.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProcStat {
    pub cpu_ticks: u64,
    pub threads: i64,
    pub virtual_bytes: u64,
    pub resident_pages: i64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    // After the name, field 3 (state) is index 0.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let utime: u64 = field(14)?.parse().ok()?;
    let stime: u64 = field(15)?.parse().ok()?;
    Some(ProcStat {
        cpu_ticks: utime + stime,
        threads: field(20)?.parse().ok()?,
        virtual_bytes: field(23)?.parse().ok()?,
        resident_pages: field(24)?.parse().ok()?,
    })
}

#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(parse_stat) else {
            return Ok(()); // not Linux: export nothing rather than zeros
        };
        let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
        let page_size = rustix::param::page_size() as i64;
        let open_fds = std::fs::read_dir("/proc/self/fd").map(|dir| dir.count() as i64).unwrap_or(0);

        let cpu = ConstCounter::new(stat.cpu_ticks as f64 / ticks);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            ("process_resident_memory_bytes", "Resident set size", stat.resident_pages * page_size),
            ("process_virtual_memory_bytes", "Virtual memory size", stat.virtual_bytes as i64),
            ("process_open_fds", "Open file descriptors", open_fds),
            ("process_threads", "OS threads", stat.threads),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (ocr (pod) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 150 50 0 0 20 0 \
                    17 0 123456 987654321 2500 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat { cpu_ticks: 200, threads: 17, virtual_bytes: 987654321, resident_pages: 2500 })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_reports_plausible_numbers() {
        let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert!(stat.threads >= 1 && stat.resident_pages > 0, "{stat:?}");
    }
}

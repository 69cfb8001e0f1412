//! GPU telemetry through NVML, sampled at scrape time.
//!
//! NVML is loaded at run time (`libnvidia-ml.so` comes with the driver, not with us): on
//! a node without a driver the monitor records why and every reading is simply absent;
//! the pod keeps serving on CPU and says so in `/healthz`.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, TemperatureSensor};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;

/// One GPU's readings; a field NVML cannot read on this device is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GpuSample {
    pub index: u32,
    pub name: Option<String>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub utilization_ratio: Option<f64>,
    pub temperature_celsius: Option<u32>,
    pub power_watts: Option<f64>,
    pub ecc_uncorrected_errors: Option<u64>,
}

/// What `/healthz` says about the GPU layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NvmlState {
    pub available: bool,
    /// Why NVML is unavailable, or the driver version when it is.
    pub detail: String,
    pub gpus: Vec<GpuSample>,
}

#[derive(Debug)]
pub(crate) struct GpuMonitor {
    nvml: Result<Nvml, String>,
}

impl GpuMonitor {
    /// Tries to load NVML once; failure is a state, not an error.
    pub(crate) fn init() -> Self {
        Self {
            nvml: Nvml::init().map_err(|error| format!("NVML unavailable (no NVIDIA driver on this node?): {error}")),
        }
    }

    /// A monitor that never looks for a GPU (`--device cpu`).
    pub(crate) fn disabled(reason: &str) -> Self {
        Self { nvml: Err(reason.to_owned()) }
    }

    pub(crate) fn state(&self) -> NvmlState {
        match &self.nvml {
            Ok(nvml) => NvmlState {
                available: true,
                detail: nvml.sys_driver_version().map(|v| format!("driver {v}")).unwrap_or_default(),
                gpus: sample_all(nvml),
            },
            Err(reason) => NvmlState { available: false, detail: reason.clone(), gpus: Vec::new() },
        }
    }
}

fn sample_all(nvml: &Nvml) -> Vec<GpuSample> {
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|index| {
            let device = nvml.device_by_index(index).ok()?;
            let memory = device.memory_info().ok();
            Some(GpuSample {
                index,
                name: device.name().ok(),
                memory_used_bytes: memory.as_ref().map(|m| m.used),
                memory_total_bytes: memory.as_ref().map(|m| m.total),
                utilization_ratio: device.utilization_rates().ok().map(|u| f64::from(u.gpu) / 100.0),
                temperature_celsius: device.temperature(TemperatureSensor::Gpu).ok(),
                power_watts: device.power_usage().ok().map(|milliwatts| f64::from(milliwatts) / 1000.0),
                ecc_uncorrected_errors: device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile).ok(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabels {
    gpu: String,
}

/// Exports `ocr_gpu_*` gauges from a fresh NVML sample on every scrape.
#[derive(Debug)]
pub(crate) struct GpuCollector(pub(crate) std::sync::Arc<GpuMonitor>);

impl Collector for GpuCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.0.state();
        let available = ConstGauge::new(i64::from(state.available));
        available.encode(encoder.encode_descriptor(
            "ocr_gpu_nvml_available",
            "1 when NVML (the NVIDIA driver) could be loaded",
            None,
            available.metric_type(),
        )?)?;
        type Reading = fn(&GpuSample) -> Option<f64>;
        let readings: [(&str, &str, Reading); 6] = [
            ("ocr_gpu_memory_used_bytes", "GPU memory in use", |s| s.memory_used_bytes.map(|v| v as f64)),
            ("ocr_gpu_memory_total_bytes", "GPU memory installed", |s| s.memory_total_bytes.map(|v| v as f64)),
            ("ocr_gpu_utilization_ratio", "Share of time a kernel was running (0-1)", |s| s.utilization_ratio),
            ("ocr_gpu_temperature_celsius", "GPU core temperature", |s| s.temperature_celsius.map(f64::from)),
            ("ocr_gpu_power_watts", "GPU power draw", |s| s.power_watts),
            ("ocr_gpu_ecc_uncorrected_errors", "Uncorrected ECC errors since the driver loaded", |s| {
                s.ecc_uncorrected_errors.map(|v| v as f64)
            }),
        ];
        for (name, help, read) in readings {
            let values: Vec<(GpuLabels, f64)> = state
                .gpus
                .iter()
                .filter_map(|gpu| Some((GpuLabels { gpu: gpu.index.to_string() }, read(gpu)?)))
                .collect();
            if values.is_empty() {
                continue;
            }
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, value) in &values {
                ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn no_driver_is_a_state_with_a_reason_not_a_crash() {
        // This machine has no NVIDIA driver; on one with a driver the state is available.
        let monitor = GpuMonitor::init();
        let state = monitor.state();
        if !state.available {
            assert!(state.detail.contains("NVML unavailable"), "{}", state.detail);
            assert!(state.gpus.is_empty());
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(GpuCollector(std::sync::Arc::new(monitor))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let expected = format!("ocr_gpu_nvml_available {}", i64::from(state.available));
        assert!(text.contains(&expected), "{text}");
    }
}

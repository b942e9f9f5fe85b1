//! `device = "cpu" | "gpu" | "auto"`: what the caller asked for, parsed once at the boundary.

use crate::error::GpuError;

/// Where a compute call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU engine (weft-compute), always.
    Cpu,
    /// A GPU adapter, CPU-emulated ones (lavapipe) included; no adapter is an error.
    Gpu,
    /// A real (non-emulated) GPU adapter when there is one, else the CPU engine.
    #[default]
    Auto,
}

impl DeviceChoice {
    /// Parses `value`; `option` names the option in the error (`device`, `--device`).
    pub fn parse(option: &str, value: &str) -> Result<Self, GpuError> {
        match value {
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            "auto" => Ok(Self::Auto),
            _ => Err(GpuError::BadDevice {
                option: option.to_string(),
                value: value.to_string(),
            }),
        }
    }

    /// The spelling [`DeviceChoice::parse`] accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
            Self::Auto => "auto",
        }
    }
}

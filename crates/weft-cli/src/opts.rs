//! Options shared by the batch commands, and the parsers of their values.

use clap::{Args, ValueEnum};
use weft_compute::Budget;

/// How progress is shown on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar with rate and ETA when stderr is a terminal; nothing otherwise.
    Bar,
    /// One JSON object per line and per update.
    Json,
    /// Nothing.
    None,
}

/// `--threads`, `--quiet` and `--progress`, taken by every batch command.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Worker threads, 1 to 1024 (default: every core of this machine).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=weft_compute::threads::MAX_THREADS as u64))]
    pub threads: Option<u64>,
    /// Print nothing on stderr but the error line of a failure.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Progress on stderr: `bar` (only when stderr is a terminal), `json` (one object per
    /// line), `none`.
    #[arg(long, value_enum, value_name = "MODE", default_value = "bar")]
    pub progress: ProgressMode,
}

impl Common {
    /// Threads for the engine (`None`: every core).
    pub fn threads(&self) -> Option<usize> {
        self.threads.map(|t| t as usize)
    }
}

/// Where a compute command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceOpt {
    /// The CPU engine.
    Cpu,
    /// A GPU adapter (a CPU-emulated one such as lavapipe included); an error without one.
    Gpu,
    /// A real GPU when there is one, else the CPU engine.
    Auto,
}

/// `--device cpu|gpu|auto`, taken by similarity, topk, diversity and diversity-cache.
#[derive(Args, Clone, Debug)]
pub struct DeviceArg {
    /// Where to compute: `cpu`, `gpu` (any GPU adapter, CPU-emulated ones included; an
    /// error without one) or `auto` (a real GPU when there is one, else the CPU). `weft
    /// devices` lists the adapters.
    #[arg(long, value_enum, value_name = "DEVICE", default_value = "auto")]
    pub device: DeviceOpt,
}

impl DeviceArg {
    /// The choice in weft-lua's terms (the routing is shared with the Lua module).
    pub fn get(&self) -> weft_lua::device::Device {
        use weft_lua::device::Device;
        match self.device {
            DeviceOpt::Cpu => Device::Cpu,
            DeviceOpt::Gpu => Device::Gpu,
            DeviceOpt::Auto => Device::Auto,
        }
    }
}

/// `--budget BYTES`: the memory the engine may use for the similarity matrix (default:
/// half of physical memory). Accepts `4096`, `512M`, `8G`, `1.5GiB` (K/M/G/T are powers
/// of 1,024).
pub fn parse_budget(s: &str) -> Result<Budget, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown unit '{other}' (use K, M, G or T)")),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a byte count such as 4096, 512M or 8G"))?;
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Budget::bytes(bytes as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        assert_eq!(parse_budget("4096").unwrap().get(), 4096);
        assert_eq!(parse_budget("512M").unwrap().get(), 512 << 20);
        assert_eq!(parse_budget("1.5GiB").unwrap().get(), 3 << 29);
        assert!(parse_budget("12 parsecs").is_err());
        assert!(parse_budget("").is_err());
        assert!(parse_budget("-1").is_err());
    }
}

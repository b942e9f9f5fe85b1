//! `weft devices`: the GPU adapters weft can compute on, best first, and what
//! `--device auto` and `--device gpu` would pick.

use crate::error::Outcome;

const EXAMPLE: &str = "\
Example:
  $ weft devices
  1. llvmpipe (LLVM 15.0.6, 256 bits)  vulkan  cpu  f64: yes
     max buffer 2.0 GiB, max storage binding 128.0 MiB (8 a shader), workgroup memory 32 KiB
  --device gpu: llvmpipe (LLVM 15.0.6, 256 bits)
  --device auto: the CPU engine (no adapter but CPU-emulated ones)";

/// List the compute adapters (GPUs through Vulkan, Metal or DX12): name, backend, type
/// (discrete, integrated, virtual, cpu, other), the limits that matter and f64 support.
#[derive(clap::Args)]
#[command(after_help = EXAMPLE)]
pub struct Args {
    /// One JSON object per adapter and line instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
#[cfg(feature = "gpu")]
pub fn run(a: Args) -> Outcome {
    use weft_gpu::{pick, DeviceChoice};
    let list = weft_gpu::adapters();
    if a.json {
        for d in &list {
            let line = serde_json::json!({
                "name": d.name, "backend": d.backend, "type": d.kind.as_str(), "driver": d.driver,
                "max_buffer_size": d.max_buffer_size,
                "max_storage_binding_size": d.max_storage_binding_size,
                "max_storage_buffers_per_stage": d.max_storage_buffers_per_stage,
                "max_workgroup_storage_size": d.max_workgroup_storage_size,
                "f64": d.f64,
            });
            println!("{line}");
        }
        return Ok(());
    }
    if list.is_empty() {
        println!("no GPU adapter found (no Vulkan, Metal or DX12 driver answered)");
    }
    for (i, d) in list.iter().enumerate() {
        println!(
            "{}. {}  {}  {}  f64: {}",
            i + 1,
            d.name,
            d.backend,
            d.kind.as_str(),
            if d.f64 { "yes" } else { "no" }
        );
        println!(
            "   max buffer {}, max storage binding {} ({} a shader), workgroup memory {}",
            bytes(d.max_buffer_size),
            bytes(d.max_storage_binding_size),
            d.max_storage_buffers_per_stage,
            bytes(d.max_workgroup_storage_size as u64)
        );
    }
    let name = |c| pick(&list, c).map(|i| list[i].name.clone());
    match name(DeviceChoice::Gpu) {
        Some(n) => println!("--device gpu: {n}"),
        None => println!("--device gpu: an error (no adapter)"),
    }
    match name(DeviceChoice::Auto) {
        Some(n) => println!(
            "--device auto: {n} (inputs of {} rows or more; smaller ones: the CPU engine)",
            weft_lua::device::AUTO_MIN_ROWS
        ),
        None => println!("--device auto: the CPU engine (no adapter but CPU-emulated ones)"),
    }
    Ok(())
}

/// Runs the command: a build without the `gpu` feature has no adapters to list.
#[cfg(not(feature = "gpu"))]
pub fn run(_: Args) -> Outcome {
    Err(crate::error::Failure::new(
        "devices: this weft was built without GPU support (cargo feature `gpu`); every command runs on the CPU",
    ))
}

/// A byte count in KiB / MiB / GiB.
#[cfg(feature = "gpu")]
fn bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} KiB", b >> 10),
    }
}

//! Adapter listing and choice, and the split upload / read-back, on the machine's driver
//! (lavapipe in CI).

mod common;

use weft_gpu::{adapters, pick, AdapterKind, AdapterSummary, DeviceChoice, GpuOptions};

fn fake(kind: AdapterKind) -> AdapterSummary {
    AdapterSummary {
        name: format!("{kind:?}"),
        backend: "vulkan".into(),
        kind,
        driver: String::new(),
        max_buffer_size: 1 << 30,
        max_storage_binding_size: 1 << 27,
        max_storage_buffers_per_stage: 8,
        max_workgroup_storage_size: 16384,
        f64: true,
    }
}

#[test]
fn auto_never_picks_an_emulated_adapter_gpu_does() {
    let only_cpu = [fake(AdapterKind::Cpu)];
    assert_eq!(pick(&only_cpu, DeviceChoice::Auto), None);
    assert_eq!(pick(&only_cpu, DeviceChoice::Gpu), Some(0));
    assert_eq!(pick(&only_cpu, DeviceChoice::Cpu), None);
    let mixed = [
        fake(AdapterKind::Cpu),
        fake(AdapterKind::Integrated),
        fake(AdapterKind::Discrete),
    ];
    assert_eq!(pick(&mixed, DeviceChoice::Auto), Some(2));
    assert_eq!(pick(&mixed, DeviceChoice::Gpu), Some(2));
    assert_eq!(pick(&[], DeviceChoice::Gpu), None);
}

#[test]
fn device_values_are_checked() {
    assert_eq!(
        DeviceChoice::parse("device", "auto").unwrap(),
        DeviceChoice::Auto
    );
    let e = DeviceChoice::parse("--device", "tpu")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--device") && e.contains("\"tpu\"") && e.contains("\"cpu\", \"gpu\", \"auto\""),
        "{e}"
    );
}

#[test]
fn the_real_adapters_follow_the_rule() {
    let list = adapters();
    let Some(g) = common::gpu() else { return };
    // `gpu` opened the best adapter listed; `auto` takes it only if it is not emulated.
    assert_eq!(g.summary(), &list[0]);
    let auto = weft_gpu::Gpu::open(DeviceChoice::Auto, &GpuOptions::default()).unwrap();
    match auto {
        Some(a) => assert_ne!(a.summary().kind, AdapterKind::Cpu),
        None => assert!(list.iter().all(|a| a.kind == AdapterKind::Cpu)),
    }
    assert!(g.max_binding() > 0 && g.max_binding() <= list[0].max_storage_binding_size);
    assert_eq!(g.has_f64(), list[0].f64);
}

#[test]
fn a_matrix_split_across_bindings_reads_back_whole() {
    // 37 rows of 5 f32 with a cap of 64 bytes: 3 rows a part, 13 parts.
    let Some(g) = common::gpu_with(&GpuOptions {
        max_binding: Some(64),
    }) else {
        return;
    };
    let data: Vec<f32> = (0..37 * 5).map(|i| i as f32 * 0.25 - 3.0).collect();
    let m = g.upload_rows("test matrix", &data, 37, 5, None).unwrap();
    assert_eq!(m.rows_per_part, 3);
    assert_eq!(m.parts.len(), 13);
    let mut back = Vec::new();
    for (p, buf) in m.parts.iter().enumerate() {
        let (a, b) = m.part_rows(p);
        back.extend(g.download::<f32>("test read", buf, 0, (b - a) * 5).unwrap());
    }
    assert_eq!(back, data);
    // A row wider than a binding is a clear error, not a crash.
    let e = g
        .upload_rows("wide", &[0.0; 17], 1, 17, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("exceeds a storage binding of 64 bytes"), "{e}");
}

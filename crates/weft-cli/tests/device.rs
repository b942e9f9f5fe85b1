//! `--device` and `weft devices`: the GPU path (lavapipe in CI) writes the CPU engine's
//! outputs, `auto` never picks an emulated adapter, bad values name the option.

mod common;
use common::*;

/// The adapters `weft devices --json` lists; `None` (after a SKIPPED line, a failure
/// under CI or WEFT_REQUIRE_GPU=1) when there is none.
fn adapters(test: &str) -> Option<Vec<serde_json::Value>> {
    let out = weft(&["devices", "--json"]);
    ok(&out);
    let list: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    if list.is_empty() {
        assert!(
            std::env::var("WEFT_REQUIRE_GPU").as_deref() != Ok("1"),
            "WEFT_REQUIRE_GPU=1 but no GPU adapter"
        );
        skip(
            test,
            "no GPU adapter (install a Vulkan driver, e.g. mesa-vulkan-drivers)",
        );
        return None;
    }
    Some(list)
}

#[test]
fn devices_lists_adapters_and_what_each_choice_picks() {
    let Some(list) = adapters("devices_lists_adapters_and_what_each_choice_picks") else {
        return;
    };
    for a in &list {
        for field in [
            "name",
            "backend",
            "type",
            "max_buffer_size",
            "max_storage_binding_size",
            "max_workgroup_storage_size",
            "f64",
        ] {
            assert!(a.get(field).is_some(), "{field} missing in {a}");
        }
    }
    let out = weft(&["devices"]);
    ok(&out);
    let table = text(&out.stdout);
    let first = list[0]["name"].as_str().unwrap();
    assert!(table.contains(&format!("--device gpu: {first}")), "{table}");
    let real = list.iter().find(|a| a["type"] != "cpu");
    match real {
        Some(a) => assert!(
            table.contains(&format!("--device auto: {}", a["name"].as_str().unwrap())),
            "{table}"
        ),
        None => assert!(table.contains("--device auto: the CPU engine"), "{table}"),
    }
}

#[test]
fn gpu_outputs_equal_cpu_outputs() {
    let Some(_) = adapters("gpu_outputs_equal_cpu_outputs") else {
        return;
    };
    let dir = TempDir::new("device");
    let (n, d) = (300, 16);
    let emb = dir.path("exact.npy");
    write_f32(&dir.join("exact.npy"), &exact_set(n, d, 5), n, d);
    for device in ["cpu", "gpu", "auto"] {
        ok(&weft(&[
            "similarity",
            &emb,
            "-o",
            &dir.path(&format!("sim-{device}.npy")),
            "--device",
            device,
        ]));
        ok(&weft(&[
            "topk",
            &emb,
            "-k",
            "9",
            "--ids",
            &dir.path(&format!("ids-{device}.npy")),
            "--scores",
            &dir.path(&format!("sc-{device}.npy")),
            "--device",
            device,
        ]));
    }
    let bytes = |name: &str| std::fs::read(dir.join(name)).unwrap();
    for device in ["gpu", "auto"] {
        // Exact data: every order of summation gives the float64 value, on any adapter.
        assert!(
            bytes(&format!("sim-{device}.npy")) == bytes("sim-cpu.npy"),
            "similarity --device {device}"
        );
        assert!(
            bytes(&format!("ids-{device}.npy")) == bytes("ids-cpu.npy"),
            "topk ids --device {device}"
        );
        assert!(
            bytes(&format!("sc-{device}.npy")) == bytes("sc-cpu.npy"),
            "topk scores --device {device}"
        );
    }
    // Real embeddings (the first 400 example rows: lavapipe is slow): top-k is the CPU
    // engine's bit for bit (the GPU shortlist is re-scored exactly).
    let (_, d, all) = read_f32(&example_emb());
    write_f32(&dir.join("real.npy"), &all[..400 * d], 400, d);
    let real = dir.path("real.npy");
    let real = real.as_str();
    for device in ["cpu", "gpu"] {
        ok(&weft(&[
            "topk",
            real,
            "-k",
            "10",
            "--ids",
            &dir.path(&format!("rids-{device}.npy")),
            "--scores",
            &dir.path(&format!("rsc-{device}.npy")),
            "--device",
            device,
        ]));
    }
    assert!(
        bytes("rids-gpu.npy") == bytes("rids-cpu.npy"),
        "topk ids on the example data"
    );
    assert!(
        bytes("rsc-gpu.npy") == bytes("rsc-cpu.npy"),
        "topk scores on the example data"
    );
    // Orderings and the cache (gpu-b's kernels): the same bytes on both devices.
    for device in ["cpu", "gpu"] {
        let seq = dir.path(&format!("seq-{device}.npy"));
        ok(&weft(&[
            "diversity",
            real,
            "--starts",
            "0,7,399",
            "-o",
            &seq,
            "--device",
            device,
        ]));
        let cache = dir.path(&format!("c-{device}.cache"));
        let err = ok(&weft(&[
            "diversity-cache",
            &emb,
            "-o",
            &cache,
            "--device",
            device,
        ]));
        if device == "gpu" {
            // The summary gives the bytes of S the device read: per ordering, the
            // unchosen entries of n − 1 rows (299·300/2) of 4 bytes; 300 orderings.
            assert!(err.contains("53.8 MB of its rows read"), "{err}");
            assert!(number_before(&err, " GB/s") > 0.0, "{err}");
        }
    }
    assert!(
        bytes("seq-gpu.npy") == bytes("seq-cpu.npy"),
        "diversity --device gpu"
    );
    assert!(
        bytes("c-gpu.cache") == bytes("c-cpu.cache"),
        "diversity-cache --device gpu"
    );
}

#[test]
fn a_bad_device_names_the_option_and_the_choices() {
    let dir = TempDir::new("device-bad");
    let emb = dir.path("e.npy");
    write_f32(&dir.join("e.npy"), &exact_set(20, 4, 1), 20, 4);
    for cmd in [
        vec!["similarity", &emb, "-o", "x.npy"],
        vec!["topk", &emb, "-k", "2", "--ids", "x.npy"],
        vec!["diversity", &emb, "-o", "x.npy"],
        vec!["diversity-cache", &emb, "-o", "x.cache"],
    ] {
        let mut args = cmd.clone();
        args.extend(["--device", "tpu"]);
        let out = weft(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("--device") && err.contains("tpu") && err.contains("cpu, gpu, auto"),
            "{err}"
        );
    }
    // The CPU engine on request, for the orderings too.
    ok(&weft(&[
        "diversity",
        &emb,
        "--starts",
        "0,3",
        "-o",
        &dir.path("seq.npy"),
        "--device",
        "cpu",
    ]));
}

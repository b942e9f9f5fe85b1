//! Links LuaJIT's CPU detection through `src/cpu_detect.rs` (see there why).

fn main() {
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_ARCH") == "x86_64" && target("CARGO_CFG_TARGET_OS") == "linux" {
        // Every target of this package (the binary, and its tests, which link the same
        // code): calls LuaJIT makes to `lj_vm_cpuid` go to `__wrap_lj_vm_cpuid`.
        println!("cargo:rustc-link-arg=-Wl,--wrap=lj_vm_cpuid");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

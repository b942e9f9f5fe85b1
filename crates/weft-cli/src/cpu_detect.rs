//! The embedded LuaJIT detects the CPU once per process instead of once per Lua state.
//!
//! Opening the `jit` library (every state does: `luaL_openlibs`) runs LuaJIT's
//! `jit_cpudetect`, three `cpuid` instructions. On a virtual machine each `cpuid` exits
//! to the hypervisor: 7–12 µs apiece on the KVM machines this project runs on, a third of
//! the CPU a fresh state costs, and `weft.spawn` builds a fresh state per thread
//! (BENCHMARKS.md, "The embedded LuaJIT's CPU detection"). What `cpuid` reports about the
//! instruction set cannot change while a process runs, so `build.rs` links LuaJIT's calls
//! to its `lj_vm_cpuid` (`-Wl,--wrap`) to [`__wrap_lj_vm_cpuid`], which asks the CPU once
//! per leaf and answers later calls from memory.
//!
//! Only this binary's LuaJIT is affected: the loadable module (`weft.so`) runs inside the
//! user's `luajit`, whose detection is its own.

use std::sync::OnceLock;

extern "C" {
    /// LuaJIT's own `int lj_vm_cpuid(uint32_t f, uint32_t res[4])` (lj_vm.h): runs `cpuid`
    /// for leaf `f`, stores eax, ebx, ecx, edx in `res`, returns eax (x86-64).
    fn __real_lj_vm_cpuid(leaf: u32, res: *mut u32) -> i32;
}

/// Leaves answered from memory; LuaJIT asks 0, 1 and 7. Others go to the CPU each time.
const CACHED_LEAVES: usize = 8;

/// Per leaf: what `lj_vm_cpuid` returned and the four registers it stored.
static ANSWERS: [OnceLock<(i32, [u32; 4])>; CACHED_LEAVES] =
    [const { OnceLock::new() }; CACHED_LEAVES];

/// What LuaJIT calls instead of `lj_vm_cpuid` (the linker's `--wrap`): the same answer,
/// from memory after the first call for a leaf.
///
/// Leaf 1's ebx holds the APIC id of the core that ran the first call, which differs from
/// core to core; LuaJIT reads only ecx of that leaf (SSE3, SSE4.1), and ebx of leaf 7
/// (BMI2), feature bits every core of a machine shares.
///
/// # Safety
/// `res` must point to four writable `u32`, as LuaJIT's callers guarantee.
#[no_mangle]
pub unsafe extern "C" fn __wrap_lj_vm_cpuid(leaf: u32, res: *mut u32) -> i32 {
    let Some(answer) = ANSWERS.get(leaf as usize) else {
        // SAFETY: the caller's `res`, passed on unchanged.
        return unsafe { __real_lj_vm_cpuid(leaf, res) };
    };
    let (eax, regs) = *answer.get_or_init(|| {
        let mut regs = [0u32; 4];
        // SAFETY: `regs` is four writable u32, what the function stores to.
        let eax = unsafe { __real_lj_vm_cpuid(leaf, regs.as_mut_ptr()) };
        (eax, regs)
    });
    // SAFETY: the caller guarantees `res` points to four writable u32.
    unsafe { res.cast::<[u32; 4]>().write_unaligned(regs) };
    eax
}

#[cfg(test)]
mod tests {
    use super::{__real_lj_vm_cpuid, __wrap_lj_vm_cpuid};

    /// The wrapper answers what LuaJIT's own function answers (feature bits compared: the
    /// APIC id in leaf 1's ebx may differ between cores), the first time and from memory,
    /// for cached leaves and for one passed through.
    #[test]
    fn answers_what_luajits_cpuid_answers() {
        for leaf in [0u32, 1, 7, 0x8000_0000] {
            let mut direct = [0u32; 4];
            // SAFETY: `direct` is four writable u32.
            let direct_eax = unsafe { __real_lj_vm_cpuid(leaf, direct.as_mut_ptr()) };
            for _ in 0..2 {
                let mut res = [0u32; 4];
                // SAFETY: `res` is four writable u32.
                let eax = unsafe { __wrap_lj_vm_cpuid(leaf, res.as_mut_ptr()) };
                assert_eq!(eax, direct_eax, "leaf {leaf:#x}: the return value");
                assert_eq!(
                    eax as u32, res[0],
                    "leaf {leaf:#x}: the return value is eax"
                );
                let apic_id = if leaf == 1 { 0x00FF_FFFF } else { u32::MAX };
                let masked = |r: [u32; 4]| [r[0], r[1] & apic_id, r[2], r[3]];
                assert_eq!(masked(res), masked(direct), "leaf {leaf:#x}");
            }
        }
    }
}

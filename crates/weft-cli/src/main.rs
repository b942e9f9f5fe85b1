//! The `weft` command.
//!
//! `weft run SCRIPT.lua [ARGS...]` runs a script on the embedded LuaJIT with `weft`
//! preloaded, so a user with only cargo can run weft programs. The batch commands —
//! `similarity`, `topk`, `diversity`, `diversity-cache`, `cache info|export` and `bench` —
//! run the compute engine (weft-compute) on `.npy` embeddings without Lua or Python;
//! docs/cli.md describes them, their exit codes and progress formats.
//!
//! Ids, starts and rows are 0-based on the command line and in every file, as numpy
//! expects. Exit codes: 0 when the output is complete, 1 for a failure (one line on stderr
//! naming the input and the problem; an internal bug too, through the panic hook), 2 for a
//! usage error, 130/143 after SIGINT/SIGTERM stopped a `diversity-cache` run.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cmd;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod cpu_detect;
mod error;
mod input;
mod mpi_guard;
mod opts;
mod output;
mod progress;
mod run;
mod signals;
mod starts;

use clap::{Parser, Subcommand};
use error::Failure;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Parallel Lua and fast native compute for embeddings",
    after_help = "Ids, starts and rows are 0-based (as in numpy). Exit codes: 0 output complete, \
                  1 failure (one line on stderr), 2 usage error, 130/143 interrupted \
                  (diversity-cache: work so far saved). See docs/cli.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Lua script on the embedded LuaJIT with `weft` preloaded.
    ///
    /// Example: weft run examples/nearest_fortunes.lua
    Run {
        /// The script to run (`-` reads it from standard input).
        script: String,
        /// Arguments for the script: `arg[1]`, `arg[2]`, … and `...`, as in `luajit`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    Similarity(cmd::similarity::Args),
    Topk(cmd::topk::Args),
    Diversity(cmd::diversity::Args),
    DiversityCache(cmd::diversity_cache::Args),
    Cache(cmd::cache::Args),
    Bench(cmd::bench::Args),
    Devices(cmd::devices::Args),
}

fn dispatch(command: Command) -> error::Outcome {
    if std::env::var_os("WEFT_CLI_TEST_PANIC").is_some() {
        // Lets the tests check that an internal bug still ends in one line and exit 1.
        panic!("test panic requested by WEFT_CLI_TEST_PANIC");
    }
    match command {
        Command::Run { .. } => unreachable!("handled in main"),
        Command::Similarity(a) => cmd::similarity::run(a),
        Command::Topk(a) => cmd::topk::run(a),
        Command::Diversity(a) => cmd::diversity::run(a),
        Command::DiversityCache(a) => cmd::diversity_cache::run(a),
        Command::Cache(a) => cmd::cache::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Devices(a) => cmd::devices::run(a),
    }
}

/// Prints a panic as one line (`weft: internal error: …`), once per process.
fn install_panic_hook() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static PRINTED: AtomicBool = AtomicBool::new(false);
    std::panic::set_hook(Box::new(|info| {
        if PRINTED.swap(true, Ordering::SeqCst) {
            return;
        }
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = Failure::new(format!(
            "internal error: {payload}{at} (a bug in weft; please report it)"
        ))
        .line();
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    }));
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` connects to a Wayland
/// display to rank GPUs; on a headless machine (no XDG_RUNTIME_DIR) it prints
/// `error: XDG_RUNTIME_DIR is invalid…` twice on stderr whenever weft opens the GPU. weft
/// ranks adapters itself, so there the layer is switched off (its own documented switch,
/// NODEVICE_SELECT=1), unless the user set it. Done first in `main`, before any thread
/// exists, so no other thread reads the environment meanwhile.
fn quiet_vulkan_layer() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn main() -> ExitCode {
    // Before anything else: P copies of a build without MPI would overwrite each other.
    // (A build with MPI runs as ranks: `weft run` scripts through weft.mpi.)
    if let Some((name, value)) =
        mpi_guard::several_ranks(|v| std::env::var(v).ok()).filter(|_| !cfg!(feature = "mpi"))
    {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("{}\n", mpi_guard::refusal(&name, &value)).as_bytes(),
        );
        return ExitCode::FAILURE;
    }
    quiet_vulkan_layer();
    let cli = Cli::parse();
    // With MPI, the commands that use it run as several ranks (scripts through weft.mpi,
    // the cache); the others would still be P copies of one command.
    #[cfg(feature = "mpi")]
    if let Some((name, value)) = mpi_guard::several_ranks(|v| std::env::var(v).ok()) {
        if !matches!(
            cli.command,
            Command::DiversityCache(_) | Command::Run { .. }
        ) {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("{}\n", mpi_guard::single_rank_command(&name, &value)).as_bytes(),
            );
            return ExitCode::FAILURE;
        }
    }
    if let Command::Run { script, args } = &cli.command {
        return run::run(script, args);
    }
    install_panic_hook();
    let code =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli.command))) {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(failure)) => {
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!("{}\n", failure.line()).as_bytes(),
                );
                failure.code()
            }
            Err(_) => {
                // Other ranks may wait for this one: end them all.
                #[cfg(feature = "mpi")]
                if weft_mpi::get().is_some() {
                    weft_mpi::abort(1, "stopped by the internal error above");
                }
                ExitCode::FAILURE
            }
        };
    // Every rank ends MPI together once its command is over (nothing without MPI).
    #[cfg(feature = "mpi")]
    weft_mpi::finalize();
    code
}

//! A build of weft without MPI, launched by `mpirun -n P` (P > 1), would run P independent
//! copies that all write the same outputs; so it recognises the launcher
//! ([`weft_mpi::launcher`]) and stops with one line before doing anything. A build with
//! MPI stops the same way for the commands that do not use it.

pub use weft_mpi::launcher::several_ranks;

/// The one line printed when a command that does not use MPI is one of several ranks of
/// a build with MPI.
#[cfg(feature = "mpi")]
pub fn single_rank_command(name: &str, value: &str) -> String {
    format!(
        "weft: only `weft diversity-cache` and `weft run` run as several MPI ranks; this command was \
         started as one of several ({name}={value}) and each rank would run all of it, so \
         it stops. Run it without mpirun (or with -n 1)"
    )
}

/// The one line printed when [`several_ranks`] finds a launcher with several ranks.
pub fn refusal(name: &str, value: &str) -> String {
    format!(
        "weft: this build of weft has no MPI support, but it was started as one of several \
         MPI ranks ({name}={value}); each rank would run the whole command and overwrite the \
         others' output, so it stops. Run it without mpirun (or with -n 1), build weft with \
         `--features mpi`, or split the work with `weft diversity-cache --shard K/M` and \
         `weft cache merge` (docs/cluster.md)"
    )
}

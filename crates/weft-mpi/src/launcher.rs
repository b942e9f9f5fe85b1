//! Is this process one of several MPI ranks? Read from the variables MPI launchers give each
//! rank, before (or without) initialising MPI, so that it works in a build without MPI too:
//!
//! - Open MPI 4 (`mpirun`/`orterun`): `OMPI_COMM_WORLD_SIZE`, `OMPI_COMM_WORLD_RANK`, and
//!   the PMIx ones, `PMIX_RANK` (with `PMIX_NAMESPACE`).
//! - MPICH and Intel MPI (Hydra `mpiexec`): `PMI_SIZE`, `PMI_RANK`.
//! - PMIx launchers that set no size (`srun --mpi=pmix`, `prterun`): `PMIX_RANK` and, under
//!   Slurm, `SLURM_STEP_NUM_TASKS`.
//!
//! A single rank (`mpirun -n 1`: size 1, rank 0) counts as "several" nowhere: it may run
//! as without a launcher.

/// Variables that hold the number of ranks; more than 1 means several copies.
const SIZES: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];
/// Variables that hold this process's rank; above 0 means it is not the only copy.
const RANKS: [&str; 3] = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"];

/// The variable (and its value) that shows this process is one of several MPI ranks, read
/// through `var`; `None` for no launcher or a single rank.
pub fn several_ranks(var: impl Fn(&str) -> Option<String>) -> Option<(String, String)> {
    let number = |name: &str| {
        var(name).and_then(|v| {
            let n = v.trim().parse::<u64>().ok()?;
            Some((name.to_string(), v, n))
        })
    };
    let pmix_sizes = var("PMIX_RANK").map(|_| "SLURM_STEP_NUM_TASKS");
    let sizes = SIZES.iter().copied().chain(pmix_sizes);
    sizes
        .filter_map(number)
        .find(|(_, _, n)| *n > 1)
        .or_else(|| {
            RANKS
                .iter()
                .filter_map(|r| number(r))
                .find(|(_, _, n)| *n > 0)
        })
        .map(|(name, v, _)| (name, v))
}

/// Whether a launcher started this process at all (any of the variables above is set, even
/// for a single rank), read through `var`.
pub fn launched(var: impl Fn(&str) -> Option<String>) -> bool {
    SIZES
        .iter()
        .chain(RANKS.iter())
        .any(|name| var(name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn launchers() {
        assert_eq!(several_ranks(env(&[])), None);
        // mpirun -n 1 (Open MPI, MPICH).
        let one = [
            ("OMPI_COMM_WORLD_SIZE", "1"),
            ("OMPI_COMM_WORLD_RANK", "0"),
            ("PMIX_RANK", "0"),
        ];
        assert_eq!(several_ranks(env(&one)), None);
        assert_eq!(
            several_ranks(env(&[("PMI_SIZE", "1"), ("PMI_RANK", "0")])),
            None
        );
        // Rank 0 of 4 under each launcher.
        let ompi = [("OMPI_COMM_WORLD_SIZE", "4"), ("OMPI_COMM_WORLD_RANK", "0")];
        assert_eq!(
            several_ranks(env(&ompi)),
            Some(("OMPI_COMM_WORLD_SIZE".into(), "4".into()))
        );
        let hydra = [("PMI_SIZE", "3"), ("PMI_RANK", "0")];
        assert!(several_ranks(env(&hydra)).is_some());
        let srun = [("PMIX_RANK", "0"), ("SLURM_STEP_NUM_TASKS", "8")];
        assert!(several_ranks(env(&srun)).is_some());
        // A Slurm job step without PMIx is not an MPI launch.
        assert_eq!(several_ranks(env(&[("SLURM_STEP_NUM_TASKS", "8")])), None);
        // A rank above 0 alone is enough.
        assert!(several_ranks(env(&[("PMIX_RANK", "2")])).is_some());
        // Garbage is not a count.
        assert_eq!(several_ranks(env(&[("PMI_SIZE", "many")])), None);
    }

    #[test]
    fn launched_even_as_a_single_rank() {
        assert!(!launched(env(&[])));
        assert!(!launched(env(&[("SLURM_STEP_NUM_TASKS", "8")])));
        assert!(launched(env(&[("OMPI_COMM_WORLD_SIZE", "1")])));
        assert!(launched(env(&[("PMI_RANK", "0")])));
        assert!(launched(env(&[("PMIX_RANK", "3")])));
    }
}

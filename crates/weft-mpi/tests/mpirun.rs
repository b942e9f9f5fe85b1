//! weft-mpi in real MPI jobs: this test binary runs itself under `mpirun -n 2` (the ranks
//! run the `#[ignore]`d `rank_*` tests, which only make sense as ranks of a job) and checks
//! what every rank reported and how the job ended.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use weft_mpi::mpi::collective::{CommunicatorCollectives, SystemOperation};
use weft_mpi::mpi::topology::Communicator;

/// Run the ignored test `name` of this binary as `ranks` ranks of one `mpirun` job. A job
/// still running after two minutes is killed (the caller's assertions then fail): a hang
/// must fail the test, not stall `make test`.
fn mpirun(ranks: u32, name: &str) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-n"])
        .arg(ranks.to_string())
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun (Open MPI: apt-get install openmpi-bin) could not be started");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "mpirun -n {ranks} {name}: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn two_ranks_initialise_once_with_thread_multiple_and_communicate() {
    let out = mpirun(2, "rank_init_and_allreduce");
    assert!(out.status.success(), "the job failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for rank in 0..2 {
        let line = format!("rank {rank} of 2: sum of ranks 1, launched");
        assert!(stdout.contains(&line), "no `{line}` in the output");
    }
}

#[test]
fn abort_on_one_rank_ends_the_job_with_its_message() {
    let out = mpirun(2, "rank_one_aborts_while_zero_waits");
    assert_eq!(
        out.status.code(),
        Some(7),
        "mpirun's exit code is the abort's"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("weft: rank 1 of 2: the batch file is unreadable"));
    // Rank 0 never got past the barrier that rank 1 did not reach.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("rank 0 passed"));
}

#[test]
#[ignore = "a rank of the job started by two_ranks_initialise_once_with_thread_multiple_and_communicate"]
fn rank_init_and_allreduce() {
    let mpi = weft_mpi::init().unwrap();
    // Any later caller, from any thread, gets the same MPI.
    let again = std::thread::spawn(|| weft_mpi::init().unwrap() as *const _ as usize);
    assert_eq!(again.join().unwrap(), mpi as *const _ as usize);
    assert_eq!(
        weft_mpi::mpi::environment::threading_support(),
        weft_mpi::THREADING
    );
    assert_eq!(mpi.size(), 2);
    // MPI calls from another thread (THREAD_MULTIPLE): the sum of all ranks.
    let sum = std::thread::spawn(|| {
        let mut sum = 0i32;
        let world = weft_mpi::get().unwrap().world();
        world.all_reduce_into(&world.rank(), &mut sum, SystemOperation::sum());
        sum
    })
    .join()
    .unwrap();
    let launched = weft_mpi::launcher::launched(|v| std::env::var(v).ok());
    let several = weft_mpi::launcher::several_ranks(|v| std::env::var(v).ok()).is_some();
    assert!(several);
    println!(
        "rank {} of {}: sum of ranks {sum}, {}",
        mpi.rank(),
        mpi.size(),
        if launched { "launched" } else { "not launched" }
    );
    weft_mpi::finalize();
    weft_mpi::finalize(); // a second call is nothing
}

#[test]
#[ignore = "a rank of the job started by abort_on_one_rank_ends_the_job_with_its_message"]
fn rank_one_aborts_while_zero_waits() {
    let mpi = weft_mpi::init().unwrap();
    if mpi.rank() == 1 {
        weft_mpi::abort(7, "the batch file is unreadable");
    }
    mpi.world().barrier();
    println!("rank {} passed the barrier", mpi.rank());
    weft_mpi::finalize();
}

//! One MPI per process: initialised by whoever asks first, at the thread level weft needs.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use mpi::environment::{self, Threading, Universe};
use mpi::topology::{Communicator, SimpleCommunicator};

/// The thread level weft needs: its pools' threads may call MPI (the cache's workers hand
/// batches over from any thread, `weft.mpi` may be called from any weft thread).
pub const THREADING: Threading = Threading::Multiple;

/// MPI in this process, initialised: the world's size and this process's rank in it.
#[derive(Debug)]
pub struct Mpi {
    rank: i32,
    size: i32,
}

impl Mpi {
    /// The world communicator: every process of the job.
    pub fn world(&self) -> SimpleCommunicator {
        SimpleCommunicator::world()
    }

    /// This process's rank in the world, `0..size`.
    pub fn rank(&self) -> i32 {
        self.rank
    }

    /// The number of processes in the world.
    pub fn size(&self) -> i32 {
        self.size
    }
}

/// The outcome of the first [`init`], shared by every later one.
static MPI: OnceLock<Result<Mpi, String>> = OnceLock::new();

/// The universe when this crate initialised MPI (and so must finalise it); `None` when MPI
/// was initialised by someone else (a host program) or has been finalised.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// MPI for this process: the first call initialises it with [`THREADING`] (or adopts an MPI
/// a host program already initialised), later calls return the same. An error (one line)
/// when the library cannot give weft [`THREADING`], or MPI was already finalised.
pub fn init() -> Result<&'static Mpi, String> {
    MPI.get_or_init(|| {
        let provided = match environment::initialize_with_threading(THREADING) {
            Some((universe, provided)) => {
                // Kept even when the level is too low: MPI is initialised and must be
                // finalised like any other.
                *UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()) = Some(universe);
                provided
            }
            None if environment::is_finalized() => {
                return Err("weft: MPI was already finalised in this process".to_string());
            }
            None => environment::threading_support(),
        };
        if provided != THREADING {
            return Err(format!(
                "weft: this MPI library provides thread level {provided:?}, weft needs \
                 {THREADING:?} (MPI_THREAD_MULTIPLE); use an MPI built with thread support \
                 (Debian's Open MPI has it)"
            ));
        }
        let world = SimpleCommunicator::world();
        Ok(Mpi {
            rank: world.rank(),
            size: world.size(),
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// MPI if [`init`] already succeeded in this process; never initialises it.
pub fn get() -> Option<&'static Mpi> {
    MPI.get().and_then(|r| r.as_ref().ok())
}

/// Finalise MPI if this crate initialised it and it is not finalised yet; otherwise
/// nothing. Every rank must call it (MPI_Finalize waits for the others), after its last
/// MPI call: so only on the way out of a run that went well; a failing rank calls
/// [`abort`] instead, which ends the others too.
pub fn finalize() {
    let universe = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take();
    // Dropping the universe calls MPI_Finalize.
    drop(universe);
}

/// Print `msg` as this rank's one line on stderr, then end the whole job with exit code
/// `code` (MPI_Abort on the world: the launcher kills every other rank, none is left
/// waiting). Without an initialised MPI (or after [`finalize`]) it exits this process.
pub fn abort(code: i32, msg: &str) -> ! {
    let line = match get() {
        Some(mpi) => format!("weft: rank {} of {}: {msg}\n", mpi.rank, mpi.size),
        None => format!("weft: {msg}\n"),
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
    drop(err);
    if get().is_some() && !environment::is_finalized() {
        // Never returns: MPI_Abort ends the job (rsmpi aborts the process if it returned).
        SimpleCommunicator::world().abort(code);
    }
    std::process::exit(code)
}

/// Register [`finalize`] to run when the process exits normally (`exit`, end of `main`,
/// or, for a loadable module, when it is unloaded). For hosts that cannot call
/// [`finalize`] themselves; beware that a rank exiting this way while others still
/// communicate waits for them in MPI_Finalize: a failure must go through [`abort`].
pub fn finalize_at_exit() {
    extern "C" fn at_exit() {
        // A panic must not unwind into libc.
        let _ = std::panic::catch_unwind(finalize);
    }
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: `at_exit` is a plain `extern "C" fn()` that catches every panic; glibc's
        // atexit, linked into this object, runs it at exit or when this object is unloaded.
        unsafe {
            libc::atexit(at_exit);
        }
    });
}
